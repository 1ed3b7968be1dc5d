//! Lambda function `my-projects`: `GET /v1/me/projects`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::MyProjects>().await
}
