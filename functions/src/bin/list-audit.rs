//! Lambda function `list-audit`: `GET /v1/projects/{project}/audit`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::ListAudit>().await
}
