//! Lambda function `revoke-my-key-token`: `DELETE /v1/me/keys/{key}/tokens/{token}`, the holder revokes one narrowed token.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::RevokeMyKeyToken>().await
}
