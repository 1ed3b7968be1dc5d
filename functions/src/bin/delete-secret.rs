//! Lambda function `delete-secret`: `DELETE /v1/projects/{project}/secrets/{name}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::DeleteSecret>().await
}
