//! The floor of a Rust Lambda function's cold start: the `lambda_runtime` loop alone, built
//! with the same profile as keygate's authorizer, answering every authorizer event with a
//! denial at once. BENCHMARKS.md measures the authorizer against it.
//!
//! Its runtime is `#[tokio::main]`'s (multi-threaded), as in the runtime's own examples;
//! `BARE_LAMBDA_RUNTIME=current_thread` gives it the authorizer's single-threaded one instead.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

fn main() -> Result<(), Error> {
    let mut runtime = match std::env::var("BARE_LAMBDA_RUNTIME").as_deref() {
        Ok("current_thread") => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime.enable_all().build()?.block_on(lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async {
        Ok::<_, Error>(json!({ "isAuthorized": false }))
    })))
}
