//! Lambda function `import-key`: `POST /v1/projects/{project}/secrets/import`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::ImportKey>().await
}
