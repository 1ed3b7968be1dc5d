//! Lambda function `approve-request`: `POST /v1/projects/{project}/requests/{request}/approve`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::ApproveRequest>().await
}
