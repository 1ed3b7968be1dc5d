//! Lambda function `list-webhooks`: `GET /v1/projects/{project}/webhooks`, a project's webhook endpoints, without their secrets.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::ListWebhooks>().await
}
