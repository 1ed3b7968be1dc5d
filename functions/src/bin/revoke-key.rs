//! Lambda function `revoke-key`: `DELETE /v1/projects/{project}/keys/{key}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::RevokeKey>().await
}
