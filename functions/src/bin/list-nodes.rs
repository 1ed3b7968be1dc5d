//! Lambda function `list-nodes`: `GET /v1/projects/{project}/nodes`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::ListNodes>().await
}
