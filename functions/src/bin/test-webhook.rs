//! Lambda function `test-webhook`: `POST /v1/projects/{project}/webhooks/{webhook}/test`, a `webhook.test` event queued for one endpoint.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::TestWebhook>().await
}
