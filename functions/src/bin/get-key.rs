//! Lambda function `get-key`: `GET /v1/projects/{project}/keys/{key}`, one key with its figures in a period (the key page), for its managers and its holder.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::GetKey>().await
}
