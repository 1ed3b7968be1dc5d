//! Lambda function `create-template`: `POST /v1/projects/{project}/templates`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::CreateTemplate>().await
}
