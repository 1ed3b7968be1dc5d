//! keygate's Lambda functions. Each binary in `src/bin/` is one function, named after its
//! operation; its `main` only calls one of the runners here, which set up JSON logs, build the
//! application once from the environment, and serve events until the runtime stops.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use keygate::App;
use keygate::authorizer::Authorizer;
use keygate::config::{Config, KeyUse, build_app, build_authorizer};
use lambda_http::{Error, LambdaEvent, service_fn};

/// Structured JSON logs (CloudWatch adds the time); `RUST_LOG` sets the filter.
fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .init();
}

/// Builds the application, or stops with the name of the bad setting.
async fn app(key_use: KeyUse) -> Result<Arc<App>, Error> {
    let config = Config::from_env(key_use).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let app = build_app(&config).await.inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    Ok(Arc::new(app))
}

/// Serves one operation of the route table behind API Gateway: `handler` is its
/// `routes::one::<handler>`, named at compile time, so that the function links that handler
/// alone and not the route table's dispatch over every operation.
pub async fn serve<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(Arc<App>, lambda_http::Request) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = lambda_http::Response<lambda_http::Body>> + Send + 'static,
{
    init_tracing();
    let app = app(KeyUse::Sign).await?;
    lambda_http::run(service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, std::convert::Infallible>(handler(app, req).await) }
    }))
    .await
}

/// The HTTP API Lambda authorizer (payload 2.0, simple responses).
pub async fn serve_authorizer() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env(KeyUse::Verify).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let authorizer: Arc<Authorizer> =
        Arc::new(build_authorizer(&config).await.inspect_err(|e| tracing::error!(error = %e, "cannot start"))?);
    lambda_http::lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| {
        let authorizer = authorizer.clone();
        async move { Ok::<_, std::convert::Infallible>(authorizer.authorize_event(&event.payload).await) }
    }))
    .await
}

/// The scheduled retry of mail that could not be sent when its operation ran.
pub async fn serve_mail_retry() -> Result<(), Error> {
    init_tracing();
    let app = app(KeyUse::Sign).await?;
    lambda_http::lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let app = app.clone();
        async move {
            let sent = app.retry_pending().await.map_err(|e| Box::new(e) as Error)?;
            tracing::info!(sent, "pending mail retried");
            Ok::<_, Error>(serde_json::json!({ "sent": sent }))
        }
    }))
    .await
}

/// The web console's files (`GET /` and `GET /{proxy+}`), embedded in the binary: no store, no
/// key, no mail; only how people sign in (the platform's OpenID Connect provider).
pub async fn serve_console() -> Result<(), Error> {
    init_tracing();
    let sign_in = keygate::config::console_sign_in_from_env()
        .inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sign_in = Arc::new(sign_in);
    lambda_http::run(service_fn(move |req: lambda_http::Request| {
        let sign_in = sign_in.clone();
        async move { Ok::<_, std::convert::Infallible>(keygate::console::answer(&req, &sign_in)) }
    }))
    .await
}
