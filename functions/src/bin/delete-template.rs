//! Lambda function `delete-template`: `DELETE /v1/projects/{project}/templates/{template}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::DeleteTemplate>().await
}
