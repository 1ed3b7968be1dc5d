//! Lambda function `revoke-key-token`: `DELETE /v1/projects/{project}/keys/{key}/tokens/{token}`, revokes a key's narrowed token, for its managers and its holder.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::RevokeKeyToken>().await
}
