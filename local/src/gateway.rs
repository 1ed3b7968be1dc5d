//! The local stand-in for API Gateway: routes each request of the route table to the same
//! handler a Lambda runs, with an API-Gateway-shaped request (path parameters, query map, and
//! the JWT authorizer's claims in the request context), and guards `/api/projects/...` with the
//! authorizer before forwarding to the upstream platform (or echoing the context).

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription, ApiGatewayV2httpRequestContext,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use keygate::App;
use keygate::authorizer::Denial;
use keygate::error::Error;
use keygate::figures::Figures;
use keygate::http::routes::{self, Auth, Match};
use keygate::user_token::UserTokens;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};

/// Largest body the gateway reads (API Gateway's own limit is 10 MB).
pub const MAX_GATEWAY_BODY: usize = 10 * 1024 * 1024;

pub struct Gateway {
    pub app: App,
    /// Runs before every call of the platform API, as API Gateway runs the authorizer Lambda.
    pub authorizer: keygate::authorizer::Authorizer,
    pub users: UserTokens,
    /// How the console signs people in: keygate-local's form, or an identity provider.
    /// What the console's page is told: how people sign in, and the currency.
    pub console: keygate::console::ConsoleConfig,
    pub upstream: Option<Upstream>,
    pub openapi: String,
    /// The `Host` values this gateway answers (SECURITY.md, "The Host rule").
    pub hosts: AllowedHosts,
    /// With an identity provider: its JWKS, read again when a token names an unknown key.
    pub provider_keys: Option<Arc<crate::oidc::ProviderKeys>>,
    /// Decisions by outcome and their time, served at `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The names keygate-local answers to: the address it listens on (`127.0.0.1:PORT`,
/// `localhost:PORT`, `[::1]:PORT`) and any the operator adds (`--allowed-host`, with or
/// without the port). Any other `Host` is refused: a web page whose name an attacker points at
/// 127.0.0.1 (DNS rebinding) must not become same-origin with the open local sign-in.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    port: u16,
    added: Vec<String>,
}

const LOOPBACK_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "[::1]"];

impl AllowedHosts {
    pub fn new(port: u16, added: &[String]) -> Self {
        let added = added.iter().map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()).collect();
        Self { port, added }
    }

    /// Whether a request's `Host` is ours: a name of ours with our port (or without it on port
    /// 80), or an added name exactly as given (say, with the port of a proxy in front).
    pub fn admits(&self, host: Option<&str>) -> bool {
        let Some(host) = host.map(str::to_ascii_lowercase) else { return false };
        let ours = |name: &str| host == format!("{name}:{}", self.port) || (self.port == 80 && host == name);
        LOOPBACK_NAMES.iter().any(|n| ours(n)) || self.added.iter().any(|n| ours(n) || host == *n)
    }

    /// The names admitted, for the refusal's message.
    pub fn listed(&self) -> String {
        let names = LOOPBACK_NAMES.iter().map(|n| n.to_string()).chain(self.added.iter().cloned());
        names.map(|n| format!("{n}:{}", self.port)).collect::<Vec<_>>().join(", ")
    }
}

pub struct Upstream {
    pub client: reqwest::Client,
    pub base: String,
}

pub async fn serve(State(gw): State<Arc<Gateway>>, req: axum::extract::Request) -> Response {
    let started = std::time::Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let response = route(&gw, req).await;
    // Paths carry ids only; headers (tokens) and bodies (secret values) are never logged.
    tracing::info!(%method, %path, status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    response
}

async fn route(gw: &Gateway, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_GATEWAY_BODY).await else {
        return problem(&Error::PayloadTooLarge { limit: MAX_GATEWAY_BODY });
    };
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !gw.hosts.admits(host) {
        return problem(&Error::MisdirectedRequest(format!(
            "this keygate-local answers to {} only (Host header); add a name with --allowed-host",
            gw.hosts.listed()
        )));
    }
    let path = parts.uri.path();
    if path == "/metrics" && parts.method == Method::GET {
        return ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], gw.metrics.render()).into_response();
    }
    if path == "/openapi.json" && parts.method == Method::GET {
        return ([(header::CONTENT_TYPE, "application/json")], gw.openapi.clone()).into_response();
    }
    if path.starts_with("/api/projects/") {
        return platform(gw, parts, body).await;
    }
    if path == LOCAL_SIGN_IN {
        return sign_in(gw, &parts, &body);
    }
    if keygate::console::owns(&parts.method, path) {
        let encoding = parts.headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok());
        let gzip = keygate::console::accepts_gzip(encoding);
        return to_axum(keygate::console::serve(path, gzip, &gw.console));
    }
    v1(gw, parts, body).await
}

/// The local console's sign-in: mints the user token `keygate-local token` would print. Only
/// `keygate-local` has this route; on AWS people sign in with the identity provider.
pub const LOCAL_SIGN_IN: &str = "/local/sign-in";

fn sign_in(gw: &Gateway, parts: &http::request::Parts, body: &[u8]) -> Response {
    if !gw.users.mints() {
        return problem(&Error::NotFound("route /local/sign-in (people sign in with the identity provider)".into()));
    }
    if parts.method != Method::POST {
        let mut r = problem(&Error::MethodNotAllowed(format!("{LOCAL_SIGN_IN} allows POST")));
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    if let Err(e) = keygate::http::require_json(&parts.headers) {
        return problem(&e);
    }
    let user: keygate::user_token::LocalUser = match serde_json::from_slice(body) {
        Ok(user) => user,
        Err(_) => {
            return problem(&Error::BadRequest(
                "send JSON {\"sub\": user id, \"email\": address, \"name\": optional display name}".into(),
            ));
        }
    };
    if let Err(e) = user.validate() {
        return problem(&e);
    }
    match gw.users.mint(&user.sub, &user.email, user.name(), chrono::Duration::hours(12)) {
        Ok(token) => {
            tracing::info!(user = %user.sub, "signed in to the local console");
            let mut r = axum::Json(serde_json::json!({ "token": token })).into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => problem(&e),
    }
}

fn problem(e: &Error) -> Response {
    to_axum(keygate::http::problem(e))
}

fn to_axum(response: lambda_http::Response<Body>) -> Response {
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = match body {
        Body::Text(s) => s.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    };
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

fn decode_segments(path: &str) -> Option<Vec<String>> {
    path.trim_start_matches('/')
        .split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8().ok().map(|s| s.into_owned()))
        .collect()
}

fn query_map(query: Option<&str>) -> HashMap<String, Vec<String>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        map.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    map
}

/// The user token's claims, checked as API Gateway's JWT authorizer would (which also reads the
/// provider's keys again when a token names one it does not know).
async fn user_claims(gw: &Gateway, headers: &HeaderMap) -> Result<HashMap<String, String>, Error> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(keygate::authorizer::bearer)
        .ok_or_else(|| Error::Unauthenticated("send a user token: Authorization: Bearer <token>".into()))?;
    if let Some(keys) = &gw.provider_keys
        && gw.users.names_an_unknown_provider_key(token)
    {
        keys.on_unknown_key(&gw.users).await;
    }
    gw.users.verify(token)
}

async fn v1(gw: &Gateway, parts: http::request::Parts, body: Bytes) -> Response {
    let Some(segments) = decode_segments(parts.uri.path()) else {
        return problem(&Error::not_found("route"));
    };
    let (route, params) = match routes::find(&parts.method, &segments) {
        Match::Found(route, params) => (route, params),
        Match::NotFound => return problem(&Error::NotFound(format!("route {}", parts.uri.path()))),
        Match::MethodNotAllowed(allowed) => {
            let list: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            let mut r = problem(&Error::MethodNotAllowed(format!("{} allows {}", parts.uri.path(), list.join(", "))));
            if let Ok(v) = HeaderValue::from_str(&list.join(", ")) {
                r.headers_mut().insert(header::ALLOW, v);
            }
            return r;
        }
    };
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some(format!("{} {}", route.method, route.path));
    context.http.method = parts.method.clone();
    context.http.path = Some(parts.uri.path().to_owned());
    if route.auth == Auth::User {
        match user_claims(gw, &parts.headers).await {
            Ok(claims) => {
                let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
                jwt.claims = claims;
                let mut authorizer = ApiGatewayRequestAuthorizer::default();
                authorizer.jwt = Some(jwt);
                context.authorizer = Some(authorizer);
            }
            Err(e) => return problem(&e),
        }
    }
    let body = if body.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(s) => Body::Text(s),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    let query = query_map(parts.uri.query());
    let req = lambda_http::Request::from_parts(parts, body)
        .with_path_parameters(params)
        .with_query_string_parameters(query)
        .with_request_context(RequestContext::ApiGatewayV2(context));
    let response = routes::handle(&gw.app, route.operation, req).await;
    if route.operation == routes::Operation::DescribeKey && response.status() != StatusCode::SERVICE_UNAVAILABLE {
        gw.metrics.described(response.status().is_success());
    }
    to_axum(response)
}

/// Headers not passed upstream: hop-by-hop ones, the API key and proxy credentials, and any
/// header a client sent that a server could read as one of the authorizer's `x-keygate-*`
/// context headers (`x_keygate_user_id` too: WSGI and CGI read `_` as `-`).
fn forwardable(name: &header::HeaderName) -> bool {
    let n = name.as_str();
    !(keygate::platform::is_context_header(name)
        || matches!(
            n,
            "authorization"
                | "proxy-authorization"
                | "host"
                | "connection"
                | "keep-alive"
                | "proxy-connection"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "upgrade"
                | "content-length"
        ))
}

async fn platform(gw: &Gateway, parts: http::request::Parts, body: Bytes) -> Response {
    let call = keygate::authorizer::PlatformCall {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
    };
    let verdict = gw.authorizer.authorize_call(&call).await;
    let context = match verdict {
        Ok(context) => context,
        Err(Denial::Limited(limited)) => return too_many(&limited),
        // Never forwarded; the caller is told why and what to do, as problem+json (API
        // Gateway's status, and its `message` kept beside the problem's members).
        Err(denial) => {
            let status = StatusCode::from_u16(denial.status()).unwrap_or(StatusCode::FORBIDDEN);
            let mut response = (status, axum::Json(denial.problem())).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(keygate::http::PROBLEM_JSON));
            return response;
        }
    };
    let Some(upstream) = &gw.upstream else {
        let echo = serde_json::json!({
            "allowed": true,
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "context": context,
        });
        return with_quota(gw, &context, axum::Json(echo).into_response());
    };
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{}{}", upstream.base.trim_end_matches('/'), path_and_query);
    let mut forward = upstream.client.request(parts.method.clone(), url).body(body);
    for (name, value) in parts.headers.iter().filter(|(n, _)| forwardable(n)) {
        forward = forward.header(name, value);
    }
    for (name, value) in context.headers() {
        forward = forward.header(name, value);
    }
    match forward.send().await {
        Ok(answer) => {
            let status = answer.status();
            let headers = answer.headers().clone();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = Response::new(axum::body::Body::from(bytes));
            *response.status_mut() = status;
            for (name, value) in headers.iter().filter(|(n, _)| forwardable(n)) {
                response.headers_mut().append(name, value.clone());
            }
            with_quota(gw, &context, response)
        }
        Err(e) => {
            tracing::warn!(error = %e, "upstream unreachable");
            let mut r =
                (StatusCode::BAD_GATEWAY, axum::Json(serde_json::json!({ "message": "Bad Gateway" }))).into_response();
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    }
}

/// The 429 of a call a limit refused: problem+json naming the limit, `Retry-After` and the
/// `RateLimit-Policy` / `RateLimit` headers. Never forwarded.
fn too_many(limited: &keygate::authorizer::Limited) -> Response {
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(limited.problem())).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(keygate::http::PROBLEM_JSON));
    for (name, value) in limited.headers() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

/// An allowed call's answer, with the `RateLimit-Policy` / `RateLimit` headers of its quota.
fn with_quota(gw: &Gateway, context: &keygate::authorizer::CallContext, mut response: Response) -> Response {
    if let Some(quota) = &context.quota {
        for (name, value) in quota.headers(gw.authorizer.now()) {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_cannot_forge_context_headers_or_leak_keys_upstream() {
        assert!(!forwardable(&header::HeaderName::from_static("x-keygate-user-id")));
        assert!(!forwardable(&header::HeaderName::from_static("x_keygate_user_id")));
        assert!(!forwardable(&header::HeaderName::from_static("x-keygate_data_layer-id")));
        assert!(!forwardable(&header::AUTHORIZATION));
        assert!(!forwardable(&header::PROXY_AUTHORIZATION));
        assert!(forwardable(&header::CONTENT_TYPE));
    }

    #[test]
    fn only_our_own_names_are_answered() {
        let hosts = AllowedHosts::new(4100, &["Keygate.Test".into(), "kg.example:8443".into()]);
        for ok in
            ["127.0.0.1:4100", "LOCALHOST:4100", "[::1]:4100", "keygate.test:4100", "keygate.test", "kg.example:8443"]
        {
            assert!(hosts.admits(Some(ok)), "{ok}");
        }
        for bad in
            ["rebind.attacker.example:4100", "127.0.0.1:4101", "localhost", "127.0.0.1", "", "127.0.0.1:4100.evil"]
        {
            assert!(!hosts.admits(Some(bad)), "{bad}");
        }
        assert!(!hosts.admits(None));
        assert!(AllowedHosts::new(80, &[]).admits(Some("localhost")));
    }

    #[test]
    fn segments_are_percent_decoded() {
        assert_eq!(decode_segments("/v1/projects/a%20b").unwrap(), ["v1", "projects", "a b"]);
        assert!(decode_segments("/v1/%FF").is_none());
    }
}
