//! The floor of a Rust Lambda function's cold start: the `lambda_runtime` loop alone, built
//! with the same profile and runtime as keygate's authorizer, answering every authorizer event
//! with a denial at once. BENCHMARKS.md measures the authorizer against it.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async { Ok::<_, Error>(json!({ "isAuthorized": false })) }))
        .await
}
