//! Lambda function `mint-key-token`: `POST /v1/key/tokens`, the API key in `Authorization` mints a narrowed token.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::MintKeyToken>().await
}
