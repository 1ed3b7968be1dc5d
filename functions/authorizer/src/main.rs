//! Lambda function `authorizer`: the HTTP API Lambda authorizer of `ANY /api/projects/{project}/{proxy+}`.
//!
//! On a single-threaded runtime: a Lambda instance handles one event at a time, so worker
//! threads would only add their start-up to every cold start (docs/benchmarks-history.md, "Cold start against its yardsticks").

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve_authorizer().await
}
