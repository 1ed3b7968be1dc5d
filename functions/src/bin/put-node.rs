//! Lambda function `put-node`: `PUT /v1/projects/{project}/nodes/{node}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::PutNode>().await
}
