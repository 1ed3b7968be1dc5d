//! Lambda function `jwks`: `GET /.well-known/jwks.json`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::Jwks>().await
}
