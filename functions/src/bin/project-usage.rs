//! Lambda function `project-usage`: `GET /v1/projects/{project}/usage`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::ProjectUsage>().await
}
