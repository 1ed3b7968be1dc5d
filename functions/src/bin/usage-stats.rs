//! Lambda function `usage-stats`: `GET /v1/projects/{project}/keys`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::ListIssuedKeys>().await
}
