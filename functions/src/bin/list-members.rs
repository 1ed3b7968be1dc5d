//! Lambda function `list-members`: `GET /v1/projects/{project}/members`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::ListMembers>().await
}
