//! Lambda function `list-my-key-tokens`: `GET /v1/me/keys/{key}/tokens`, the holder's live narrowed tokens of a key.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::ListMyKeyTokens>().await
}
