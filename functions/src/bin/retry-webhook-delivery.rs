//! Lambda function `retry-webhook-delivery`: `POST /v1/projects/{project}/webhooks/{webhook}/deliveries/{delivery}/retry`, sends a delivery again.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::RetryDelivery>().await
}
