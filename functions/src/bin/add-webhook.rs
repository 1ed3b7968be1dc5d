//! Lambda function `add-webhook`: `POST /v1/projects/{project}/webhooks`, adds a project's webhook endpoint (its secret shown once).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::AddWebhook>().await
}
