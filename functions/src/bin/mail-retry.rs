//! Lambda function `mail-retry`: sends mail that is still pending, on a schedule.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve_mail_retry().await
}
