//! The floor for the authorizer's cold start: a hello-world `lambda_http` function built the
//! same way (same crate, profile and runtime), answering every event at once.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_: Request| async { Ok::<_, Error>(Response::new(Body::from("hello"))) })).await
}
