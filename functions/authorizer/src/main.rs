//! Lambda function `authorizer`: the HTTP API Lambda authorizer of `ANY /api/projects/{project}/{proxy+}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve_authorizer().await
}
