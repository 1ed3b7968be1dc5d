//! Lambda function `key-usage`: `GET /v1/projects/{project}/keys/{key}/usage`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::KeyUsage>().await
}
