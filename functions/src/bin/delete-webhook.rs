//! Lambda function `delete-webhook`: `DELETE /v1/projects/{project}/webhooks/{webhook}`, deletes a webhook endpoint.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::DeleteWebhook>().await
}
