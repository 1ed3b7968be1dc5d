//! Lambda function `list-key-tokens`: `GET /v1/projects/{project}/keys/{key}/tokens`, a key's live narrowed tokens, for its managers.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::ListKeyTokens>().await
}
