//! Lambda function `request-key`: `POST /v1/projects/{project}/templates/{template}/requests`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::RequestKey>().await
}
