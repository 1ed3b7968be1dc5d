//! Lambda function `list-roles`: `GET /v1/projects/{project}/roles`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::ListRoles>().await
}
