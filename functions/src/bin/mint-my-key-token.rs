//! Lambda function `mint-my-key-token`: `POST /v1/me/keys/{key}/tokens`, the holder mints a narrowed token from a key.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::MintMyKeyToken>().await
}
