//! Lambda function `put-member`: `PUT /v1/projects/{project}/members/{user}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::PutMember>().await
}
