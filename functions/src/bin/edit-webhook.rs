//! Lambda function `edit-webhook`: `PATCH /v1/projects/{project}/webhooks/{webhook}`, changes an endpoint's URL, event types or state.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::EditWebhook>().await
}
