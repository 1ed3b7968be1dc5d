//! Lambda function `rotate-webhook-secret`: `POST /v1/projects/{project}/webhooks/{webhook}/rotate`, a new secret for an endpoint (the old one signs beside it for 24 h).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::RotateWebhookSecret>().await
}
