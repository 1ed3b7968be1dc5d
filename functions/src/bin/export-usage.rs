//! Lambda function `export-usage`: `GET /v1/projects/{project}/usage/export`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::ExportUsage>().await
}
