//! Lambda function `list-secrets`: `GET /v1/projects/{project}/secrets`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::ListSecrets>().await
}
