//! Lambda function `console`: `GET /` and `GET /{proxy+}`, the web console's page and files.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve_console().await
}
