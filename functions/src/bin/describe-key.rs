//! Lambda function `describe-key`: `GET /v1/key`, the key in `Authorization` describes itself.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::DescribeKey>().await
}
