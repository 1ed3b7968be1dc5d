//! Lambda function `put-role`: `PUT /v1/projects/{project}/roles/{role}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::PutRole>().await
}
