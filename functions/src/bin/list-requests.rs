//! Lambda function `list-requests`: `GET /v1/projects/{project}/requests`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::ListRequests>().await
}
