//! Lambda function `reject-request`: `POST /v1/projects/{project}/requests/{request}/reject`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::RejectRequest>().await
}
