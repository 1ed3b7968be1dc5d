//! The HTTP edge shared by every function and the local gateway: turning a
//! `lambda_http::Request` into typed input and results into responses (problem+json for
//! errors, mapped in `problem`, the one place that does so).

pub mod handlers;
pub mod openapi;
pub mod routes;

use http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, FieldError, Result};
use crate::identity::Caller;
use crate::ids::UserId;
use crate::project::is_email;

/// Largest request body accepted (413 beyond).
pub const MAX_BODY: usize = 64 * 1024;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The caller, from the claims API Gateway's JWT authorizer (or the local gateway) verified.
pub fn caller(req: &Request) -> Result<Caller> {
    let claims = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            ctx.authorizer.as_ref().and_then(|a| a.jwt.as_ref()).map(|j| &j.claims)
        }
        _ => None,
    };
    let claims = claims.ok_or_else(|| Error::Unauthenticated("a user token is required".into()))?;
    let id = claims
        .get("sub")
        .and_then(|s| UserId::parse(s).ok())
        .ok_or_else(|| Error::Unauthenticated("the user token has no usable subject (sub)".into()))?;
    let email = claims
        .get("email")
        .filter(|e| is_email(e))
        .cloned()
        .ok_or_else(|| Error::Unauthenticated("the user token has no e-mail address (email claim)".into()))?;
    let name =
        claims.get("name").filter(|n| !n.is_empty() && n.len() <= 256 && !n.chars().any(char::is_control)).cloned();
    Ok(Caller { id, email, name })
}

/// A path parameter parsed into its type; one that does not parse names an object that
/// cannot exist, so it is "not found".
pub fn path<T>(req: &Request, name: &str, what: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<T> {
    req.path_parameters_ref().and_then(|p| p.first(name)).and_then(parse).ok_or_else(|| Error::not_found(what))
}

/// A path parameter that the caller names (a new node, role, member or secret): a bad one is
/// a validation error naming the rule.
pub fn path_name<T>(
    req: &Request,
    name: &str,
    parse: impl FnOnce(&str) -> std::result::Result<T, String>,
) -> Result<T> {
    let raw = req.path_parameters_ref().and_then(|p| p.first(name)).unwrap_or_default();
    parse(raw).map_err(|rule| Error::invalid(name, rule))
}

pub fn query<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query_string_parameters_ref().and_then(|q| q.first(name))
}

/// `?flag=true|false`; anything else is a validation error.
pub fn query_flag(req: &Request, name: &str) -> Result<bool> {
    match query(req, name) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(_) => Err(Error::invalid(name, "must be true or false")),
    }
}

fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(s) => s.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// The body as sent, within the size limit: what a signature is checked on.
pub fn raw_body(req: &Request) -> Result<&[u8]> {
    let bytes = body_bytes(req);
    if bytes.len() > MAX_BODY {
        return Err(Error::PayloadTooLarge { limit: MAX_BODY });
    }
    Ok(bytes)
}

/// Refuses a body that is not declared JSON (`application/json` or `application/*+json`): a
/// browser sends other types cross-site without asking, JSON only after a CORS preflight.
pub fn require_json(headers: &http::HeaderMap) -> Result<()> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "application/json" && !(mime.starts_with("application/") && mime.ends_with("+json")) {
        return Err(Error::UnsupportedMediaType(format!(
            "the body must be JSON (Content-Type: application/json), not '{}'",
            if mime.is_empty() { "nothing" } else { &mime }
        )));
    }
    Ok(())
}

/// Parses a JSON body into `T`, naming the field that is wrong when it is.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T> {
    let bytes = body_bytes(req);
    if bytes.len() > MAX_BODY {
        return Err(Error::PayloadTooLarge { limit: MAX_BODY });
    }
    require_json(req.headers())?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::BadRequest("the request body is empty; a JSON object is expected".into()));
    }
    parse_json(bytes)
}

/// Like [`json_body`], but an empty body means `T::default()` (for optional bodies).
pub fn optional_json_body<T: DeserializeOwned + Default>(req: &Request) -> Result<T> {
    if body_bytes(req).iter().all(u8::is_ascii_whitespace) { Ok(T::default()) } else { json_body(req) }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = strip_position(&inner.to_string());
                Error::Validation(vec![FieldError::new(field_of(&path, &message), message)])
            }
            _ => Error::BadRequest(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    Ok(value)
}

/// serde_json adds " at line 1 column 9" to messages; the field name says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// The field a serde message is about: its path, or the name a "missing/unknown field" quotes.
fn field_of(path: &str, message: &str) -> String {
    let quoted = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split('`').next());
    match (path, quoted) {
        (".", Some(name)) => name.to_owned(),
        (path, Some(name)) if path == name || path.ends_with(&format!(".{name}")) => path.to_owned(),
        (path, Some(name)) => format!("{path}.{name}"),
        (".", None) => "body".to_owned(),
        (path, None) => path.to_owned(),
    }
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_string(value).expect("responses serialize to JSON");
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A file to download: `rows` rows of `content_type` named `filename`, and the `Link` to the
/// next part when there is one.
pub fn attachment(
    body: Vec<u8>,
    content_type: &'static str,
    filename: &str,
    rows: usize,
    next: Option<&str>,
) -> Response<Body> {
    let mut response = Response::new(Body::Binary(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-export-rows", HeaderValue::from(rows));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(v) = next.and_then(|next| HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")).ok()) {
        headers.insert(header::LINK, v);
    }
    response
}

pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// The one mapping from [`Error`] to an HTTP response.
pub fn problem(error: &Error) -> Response<Body> {
    let status = error.status();
    if status.is_server_error() {
        tracing::error!(error = %error, source = ?std::error::Error::source(error), "request failed");
    } else {
        tracing::info!(status = status.as_u16(), error = %error, "request refused");
    }
    let mut response = json(status, &error.to_problem());
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    if let Some(seconds) = error.retry_after() {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::TemplateInput;

    fn request(content_type: &str, body: &str) -> Request {
        let mut req = Request::new(Body::Text(body.to_owned()));
        req.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        req
    }

    fn field(err: Error) -> String {
        err.to_problem().errors.first().map(|e| e.field.clone()).unwrap_or_default()
    }

    #[test]
    fn wrong_types_name_their_field() {
        let err = json_body::<TemplateInput>(&request(
            "application/json",
            r#"{"name":"t","role":"r","price_per_request":"5"}"#,
        ))
        .unwrap_err();
        assert_eq!(err.status(), 422);
        assert_eq!(field(err), "price_per_request");
        let err = json_body::<TemplateInput>(&request(
            "application/json",
            r#"{"name":"t","role":"r","fields":[{"name":"a","kind":"blob"}]}"#,
        ))
        .unwrap_err();
        assert_eq!(field(err), "fields[0].kind");
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let err = json_body::<TemplateInput>(&request("application/json", r#"{"role":"r"}"#)).unwrap_err();
        assert_eq!(field(err), "name");
        let err = json_body::<TemplateInput>(&request("application/json", r#"{"name":"t","role":"r","colour":1}"#))
            .unwrap_err();
        assert_eq!(field(err), "colour");
    }

    #[test]
    fn malformed_json_is_400_and_other_media_415_and_big_bodies_413() {
        assert_eq!(json_body::<TemplateInput>(&request("application/json", "{nope")).unwrap_err().status(), 400);
        assert_eq!(json_body::<TemplateInput>(&request("text/plain", "{}")).unwrap_err().status(), 415);
        let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(MAX_BODY));
        assert_eq!(json_body::<TemplateInput>(&request("application/json", &big)).unwrap_err().status(), 413);
        assert_eq!(
            json_body::<TemplateInput>(&request("application/json; charset=utf-8", " ")).unwrap_err().status(),
            400
        );
    }

    #[test]
    fn problems_are_problem_json_with_retry_after_when_temporary() {
        let r = problem(&Error::Unavailable(crate::store::StoreError::Unavailable("x".into())));
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn no_claims_is_401() {
        let err = caller(&Request::new(Body::Empty)).unwrap_err();
        assert_eq!(err.status(), 401);
    }
}
