//! Lambda function `my-keys`: `GET /v1/me/keys`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::MyKeys>().await
}
