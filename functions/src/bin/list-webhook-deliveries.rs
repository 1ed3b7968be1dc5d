//! Lambda function `list-webhook-deliveries`: `GET /v1/projects/{project}/webhooks/{webhook}/deliveries`, an endpoint's last deliveries.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    keygate_functions::serve::<keygate::http::routes::one::ListDeliveries>().await
}
