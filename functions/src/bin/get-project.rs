//! Lambda function `get-project`: `GET /v1/projects/{project}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::GetProject>().await
}
