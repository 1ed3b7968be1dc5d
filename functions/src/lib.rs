//! keygate's Lambda functions. Each binary in `src/bin/` is one function, named after its
//! operation; its `main` only calls one of the runners here, which set up JSON logs, build
//! from the environment what that function needs (and nothing else), and serve events until
//! the runtime stops.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use keygate::App;
use keygate::config::{Config, KeyUse, Needs, build_app, build_authorizer};
use keygate::figures::{Emf, Figures};
use keygate::http::routes::Served;
use lambda_http::{Error, LambdaEvent, service_fn};

/// Structured JSON logs (CloudWatch adds the time). `RUST_LOG` sets the level, for all or per
/// module (`info`, `warn,keygate=debug`); an unreadable value is reported and `info` used.
fn init_tracing() {
    use tracing_subscriber::filter::Targets;
    let filter = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    let parsed = filter.as_deref().map(str::parse::<Targets>);
    let unreadable = parsed.as_ref().and_then(|p| p.as_ref().err()).map(ToString::to_string);
    let targets = parsed.and_then(Result::ok).unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let format = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false);
    tracing_subscriber::registry().with(format).with(targets).init();
    tracing::info!(
        version = keygate::migrate::VERSION,
        commit = keygate::migrate::COMMIT,
        layout = keygate::migrate::LAYOUT,
        "keygate {}",
        keygate::migrate::VERSION_LINE
    );
    if let Some(e) = unreadable {
        tracing::warn!(error = %e, "RUST_LOG is not a list of levels; logging at info");
    }
}

/// Builds the application with what `needs` names, or stops with the name of the bad setting.
async fn app(needs: Needs) -> Result<Arc<App>, Error> {
    let config = Config::from_env(needs.key_use()).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let app = build_app(&config, needs).await.inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    // A table of a newer layout stops the function; an older one is named in a warning.
    keygate::migrate::check_at_start(app.store.as_ref())
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot start: storage layout"))?;
    Ok(Arc::new(app))
}

/// Serves one operation of the route table behind API Gateway: `O` is its
/// `routes::one::<Operation>`, named at compile time, so that the function links that handler
/// alone and not the route table's dispatch over every operation, and builds only what the
/// table says the operation needs.
///
/// An answer of 503 (the store could not be read or written) is counted as a store error in
/// the function's EMF log lines, at once: errors are rare, and each is worth a line.
pub async fn serve<O: Served>() -> Result<(), Error> {
    init_tracing();
    let app = app(O::NEEDS).await?;
    let figures = Arc::new(Emf::new(&metrics_namespace(), std::time::Duration::ZERO));
    lambda_http::run(service_fn(move |req| {
        let (app, figures) = (app.clone(), figures.clone());
        async move {
            let response = O::handle(app, req).await;
            if response.status() == lambda_http::http::StatusCode::SERVICE_UNAVAILABLE {
                figures.store_error();
            } else if O::OPERATION == keygate::http::routes::Operation::DescribeKey {
                figures.described(response.status().is_success());
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    }))
    .await
}

/// The CloudWatch namespace of this function's figures (the stack names its own).
fn metrics_namespace() -> String {
    std::env::var(keygate::config::METRICS_NAMESPACE).unwrap_or_else(|_| keygate::figures::NAMESPACE.into())
}

/// The HTTP API Lambda authorizer (payload 2.0, simple responses). Its figures go to its log
/// lines in Embedded Metric Format; the refusals it counted in memory and its last figures are
/// written when Lambda shuts the instance down.
pub async fn serve_authorizer() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env(KeyUse::Verify).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let figures = Arc::new(Emf::new(&config.metrics_namespace, config.refusal_flush));
    let authorizer = build_authorizer(&config).inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let authorizer = Arc::new(authorizer.reporting_to(figures.clone()));
    let on_shutdown = authorizer.clone();
    lambda_runtime::spawn_graceful_shutdown_handler(move || async move {
        let flushed = on_shutdown.flush_refusals().await;
        tracing::info!(refusals = flushed.refusals, writes = flushed.writes, "shutting down: refusals written");
        figures.emit();
    })
    .await;
    // The HTTP API's events (payload 2.0, simple responses), or with
    // KEYGATE_AUTHORIZER_EVENTS=rest the optional REST stage's (REQUEST authorizer, IAM policy).
    match std::env::var("KEYGATE_AUTHORIZER_EVENTS").as_deref() {
        Ok("rest") => lambda_http::lambda_runtime::run(service_fn(
            move |event: LambdaEvent<aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest>| {
                let authorizer = authorizer.clone();
                async move { Ok::<_, std::convert::Infallible>(authorizer.authorize_rest_event(&event.payload).await) }
            },
        ))
        .await,
        Ok("http") | Err(std::env::VarError::NotPresent) => {
            lambda_http::lambda_runtime::run(service_fn(
                move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| {
                    let authorizer = authorizer.clone();
                    async move { Ok::<_, std::convert::Infallible>(authorizer.authorize_event(&event.payload).await) }
                },
            ))
            .await
        }
        Ok(other) => {
            let e = format!("KEYGATE_AUTHORIZER_EVENTS must be http or rest, not {other:?}");
            tracing::error!(error = %e, "bad configuration");
            Err(e.into())
        }
        Err(e) => Err(format!("KEYGATE_AUTHORIZER_EVENTS: {e}").into()),
    }
}

/// The scheduled retry of mail that could not be sent when its operation ran (or was left in
/// the outbox by a function that sends none: the authorizer's quota notices).
pub async fn serve_mail_retry() -> Result<(), Error> {
    init_tracing();
    let app = app(Needs::MAIL).await?;
    // Written after every run: the schedule runs it every few minutes.
    let figures = Arc::new(Emf::new(&metrics_namespace(), std::time::Duration::ZERO));
    lambda_http::lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let (app, figures) = (app.clone(), figures.clone());
        async move {
            let sent = app.retry_reporting(figures.as_ref()).await.map_err(|e| Box::new(e) as Error)?;
            tracing::info!(sent, "pending mail retried");
            Ok::<_, Error>(serde_json::json!({ "sent": sent }))
        }
    }))
    .await
}

/// The webhook delivery: woken by the table's stream when a change queues an event (within a
/// second) and by a schedule every minute (the retries), it runs delivery rounds
/// ([`App::deliver_webhooks`]) until nothing is due before its time is up, waiting for a retry
/// due within that time (the first retry comes 5 s after a failure). Several instances may run
/// at once: each event is claimed before it is sent. A round the store failed is counted and
/// left to the next invocation; the invocation itself never fails (a failed stream batch would
/// hold the stream back, and the schedule retries anyway).
pub async fn serve_webhook_delivery() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env(KeyUse::Verify).inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let Some(policy) = config.webhooks.policy.clone() else {
        let e = format!("{} is not true: this deployment delivers no webhooks", keygate::config::WEBHOOKS);
        tracing::error!(error = %e, "bad configuration");
        return Err(e.into());
    };
    let app = app(Needs::MAIL).await?;
    let deployment = keygate::config::LambdaParts::new(&config)?
        .webhook_deployment()
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let sender = Arc::new(keygate::webhook_delivery::Sender::new(policy));
    let deployment = Arc::new(deployment);
    let figures = Arc::new(Emf::new(&metrics_namespace(), std::time::Duration::ZERO));
    lambda_http::lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let (app, sender, deployment, figures) = (app.clone(), sender.clone(), deployment.clone(), figures.clone());
        async move {
            // Leave 10 s of the invocation for the last attempt (10 s at most) to end in.
            let left = event.context.deadline().duration_since(std::time::SystemTime::now()).unwrap_or_default();
            let until = std::time::Instant::now() + left.saturating_sub(std::time::Duration::from_secs(12));
            let woken = if event.payload.get("Records").is_some() { "stream" } else { "schedule" };
            let done = keygate::service::deliver_until(&app, &sender, deployment.as_ref().as_ref(), until).await;
            done.report(figures.as_ref());
            tracing::info!(
                woken,
                delivered = done.delivered,
                failed = done.failed,
                given_up = done.given_up,
                disabled = done.disabled,
                errors = done.errors,
                "webhook delivery"
            );
            Ok::<_, Error>(serde_json::json!({
                "delivered": done.delivered, "failed": done.failed, "given_up": done.given_up, "errors": done.errors,
            }))
        }
    }))
    .await
}

/// The web console's files (`GET /` and `GET /{proxy+}`), embedded in the binary: no store, no
/// key, no mail; only how people sign in (the platform's OpenID Connect provider).
pub async fn serve_console() -> Result<(), Error> {
    init_tracing();
    let config =
        keygate::config::console_config_from_env().inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let config = Arc::new(config);
    lambda_http::run(service_fn(move |req: lambda_http::Request| {
        let config = config.clone();
        async move { Ok::<_, std::convert::Infallible>(keygate::console::answer(&req, &config)) }
    }))
    .await
}
