//! Lambda function `my-key-token`: `GET /v1/me/keys/{key}/token`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::MyKeyToken>().await
}
