//! Lambda function `reroll-key`: `POST /v1/projects/{project}/keys/{key}/reroll`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::RerollKey>().await
}
