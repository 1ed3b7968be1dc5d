//! Lambda function `register-project`: `POST /v1/projects`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::RegisterProject>().await
}
