//! Lambda function `webhook-delivery`: sends the webhook events changes queue, woken by the
//! table's stream and by a schedule for the retries.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve_webhook_delivery().await
}
