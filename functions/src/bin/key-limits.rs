//! Lambda function `key-limits`: `PATCH /v1/projects/{project}/keys/{key}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::SetKeyLimits>().await
}
