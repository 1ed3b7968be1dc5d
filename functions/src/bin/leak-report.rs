//! Lambda function `leak-report`: `POST /v1/leaks/github`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::LeakReport>().await
}
