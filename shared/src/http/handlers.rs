//! One thin handler per operation: read the typed input from the request, call the operation,
//! shape the response. No rules live here.

use http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::{attachment, caller, json, json_body, no_content, optional_json_body, path, path_name, query, query_flag};
use crate::error::{Error, Result};
use crate::ids::{KeyId, NodeId, ProjectId, RequestId, RoleName, SecretName, TemplateId, UserId};
use crate::request::RequestStatus;
use crate::service::{App, ExportFormat, MAX_EXPORT_KEYS, PageRequest};
use crate::usage::{Granularity, MAX_PERIOD_DAYS, Period};

type Answer = Result<Response<Body>>;

fn project(req: &Request) -> Result<ProjectId> {
    path(req, "project", "project", ProjectId::parse)
}

fn page(req: &Request) -> Result<PageRequest> {
    PageRequest::parse(query(req, "limit"), query(req, "cursor"))
}

pub async fn register_project(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    Ok(json(StatusCode::CREATED, &app.register_project(&caller, json_body(&req)?).await?))
}

pub async fn get_project(app: &App, req: Request) -> Answer {
    Ok(json(StatusCode::OK, &app.get_project(&caller(&req)?, &project(&req)?).await?))
}

pub async fn put_role(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let role = path_name(&req, "role", RoleName::parse)?;
    Ok(json(StatusCode::OK, &app.put_role(&caller, &project(&req)?, role, json_body(&req)?).await?))
}

pub async fn list_roles(app: &App, req: Request) -> Answer {
    Ok(json(StatusCode::OK, &app.list_roles(&caller(&req)?, &project(&req)?).await?))
}

pub async fn put_node(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let node = path_name(&req, "node", NodeId::parse)?;
    Ok(json(StatusCode::OK, &app.put_node(&caller, &project(&req)?, node, json_body(&req)?).await?))
}

pub async fn list_nodes(app: &App, req: Request) -> Answer {
    Ok(json(StatusCode::OK, &app.list_nodes(&caller(&req)?, &project(&req)?, &page(&req)?).await?))
}

pub async fn put_member(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let user = path_name(&req, "user", UserId::parse)?;
    Ok(json(StatusCode::OK, &app.put_member(&caller, &project(&req)?, user, json_body(&req)?).await?))
}

pub async fn list_members(app: &App, req: Request) -> Answer {
    Ok(json(StatusCode::OK, &app.list_members(&caller(&req)?, &project(&req)?, &page(&req)?).await?))
}

pub async fn my_projects(app: &App, req: Request) -> Answer {
    Ok(json(StatusCode::OK, &app.my_projects(&caller(&req)?, &page(&req)?).await?))
}

pub async fn create_template(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    Ok(json(StatusCode::CREATED, &app.create_template(&caller, &project(&req)?, json_body(&req)?).await?))
}

pub async fn list_templates(app: &App, req: Request) -> Answer {
    Ok(json(StatusCode::OK, &app.list_templates(&caller(&req)?, &project(&req)?, &page(&req)?).await?))
}

fn template(req: &Request) -> Result<TemplateId> {
    path(req, "template", "template", TemplateId::parse)
}

/// `If-Match: "3"` (or `3`, or `W/"3"`): the template version the edit expects.
fn if_match(req: &Request) -> Result<Option<u64>> {
    let Some(value) = req.headers().get(http::header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| Error::invalid("If-Match", "must be the template's version, for example \"3\""))
}

pub async fn edit_template(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let expected = crate::service::Expected { if_match: if_match(&req)? };
    let patch = json_body(&req)?;
    let t = app.edit_template(&caller, &project(&req)?, &template(&req)?, patch, expected).await?;
    let mut response = json(StatusCode::OK, &t);
    if let Ok(etag) = http::HeaderValue::from_str(&format!("\"{}\"", t.version)) {
        response.headers_mut().insert(http::header::ETAG, etag);
    }
    Ok(response)
}

pub async fn delete_template(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let revoke = query_flag(&req, "revoke_keys")?;
    app.delete_template(&caller, &project(&req)?, &template(&req)?, revoke).await?;
    Ok(no_content())
}

pub async fn request_key(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let decision = app.request_key(&caller, &project(&req)?, &template(&req)?).await?;
    Ok(json(StatusCode::CREATED, &decision))
}

pub async fn list_requests(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let status = query(&req, "status")
        .map(|s| {
            RequestStatus::parse(s)
                .ok_or_else(|| Error::invalid("status", "must be pending, approved, rejected or cancelled"))
        })
        .transpose()?;
    Ok(json(StatusCode::OK, &app.list_requests(&caller, &project(&req)?, status, &page(&req)?).await?))
}

fn request_id(req: &Request) -> Result<RequestId> {
    path(req, "request", "request", RequestId::parse)
}

pub async fn approve_request(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    Ok(json(StatusCode::OK, &app.approve(&caller, &project(&req)?, &request_id(&req)?).await?))
}

pub async fn reject_request(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let rejection = optional_json_body(&req)?;
    Ok(json(StatusCode::OK, &app.reject(&caller, &project(&req)?, &request_id(&req)?, rejection).await?))
}

fn period(req: &Request, app: &App, max_days: i64) -> Result<Period> {
    Period::parse(query(req, "from"), query(req, "to"), app.now(), max_days)
}

fn key(req: &Request) -> Result<KeyId> {
    path(req, "key", "key", KeyId::parse)
}

pub async fn list_issued_keys(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let period = period(&req, app, MAX_PERIOD_DAYS)?;
    Ok(json(StatusCode::OK, &app.list_issued_keys(&caller, &project(&req)?, period, &page(&req)?).await?))
}

/// The period's totals over every key of the project.
pub async fn project_usage(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let period = period(&req, app, MAX_PERIOD_DAYS)?;
    Ok(json(StatusCode::OK, &app.project_usage(&caller, &project(&req)?, period).await?))
}

/// One key with its figures in the period: the key page.
pub async fn get_key(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let period = period(&req, app, MAX_PERIOD_DAYS)?;
    Ok(json(StatusCode::OK, &app.issued_key(&caller, &project(&req)?, &key(&req)?, period).await?))
}

pub async fn key_usage(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let granularity = Granularity::parse(query(&req, "granularity"))?;
    let period = period(&req, app, granularity.max_days())?;
    Ok(json(StatusCode::OK, &app.key_usage(&caller, &project(&req)?, &key(&req)?, period, granularity).await?))
}

/// The billing export: CSV or JSON Lines, one page of keys per answer; a `Link` header names
/// the next page.
pub async fn export_usage(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let project = project(&req)?;
    let granularity = Granularity::parse(query(&req, "granularity"))?;
    let format = ExportFormat::parse(query(&req, "format"))?;
    let period = period(&req, app, granularity.max_days())?;
    let page = PageRequest::parse_up_to(query(&req, "limit"), query(&req, "cursor"), MAX_EXPORT_KEYS)?;
    let export = app.export_usage(&caller, &project, period, granularity, format, &page).await?;
    let day = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d").to_string();
    let name = format!("usage-{project}-{}-{}.{}", day(period.from), day(period.to), format.extension());
    let next = export.next_cursor.as_ref().map(|cursor| {
        let time = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("from", &time(period.from))
            .append_pair("to", &time(period.to))
            .append_pair("granularity", query(&req, "granularity").unwrap_or("hour"))
            .append_pair("format", format.extension())
            .append_pair("limit", &page.limit.to_string())
            .append_pair("cursor", cursor)
            .finish();
        format!("/v1/projects/{project}/usage/export?{query}")
    });
    Ok(attachment(export.body, format.content_type(), &name, export.rows, next.as_deref()))
}

pub async fn revoke_key(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    Ok(json(StatusCode::OK, &app.revoke(&caller, &project(&req)?, &key(&req)?).await?))
}

pub async fn reroll_key(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let input = optional_json_body(&req)?;
    Ok(json(StatusCode::OK, &app.reroll(&caller, &project(&req)?, &key(&req)?, input).await?))
}

pub async fn set_key_limits(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let patch = json_body(&req)?;
    Ok(json(StatusCode::OK, &app.set_key_limits(&caller, &project(&req)?, &key(&req)?, patch).await?))
}

/// GitHub's secret scanning report: the signature is checked on the body as sent, before the
/// body is read at all.
pub async fn leak_report(app: &App, req: Request) -> Answer {
    use crate::scanning;
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let body = crate::http::raw_body(&req)?;
    app.settings.scanning.verify(body, header(scanning::KEY_IDENTIFIER_HEADER), header(scanning::SIGNATURE_HEADER))?;
    crate::http::require_json(req.headers())?;
    let found = scanning::parse_report(body)?;
    Ok(json(StatusCode::OK, &app.leak_reports(scanning::GITHUB, &found).await?))
}

pub async fn my_keys(app: &App, req: Request) -> Answer {
    Ok(json(StatusCode::OK, &app.my_keys(&caller(&req)?, &page(&req)?).await?))
}

pub async fn my_key_token(app: &App, req: Request) -> Answer {
    Ok(json(StatusCode::OK, &app.my_key_token(&caller(&req)?, &key(&req)?).await?))
}

/// The API key of a request authenticated by the key itself: `Authorization: Bearer <key>`.
fn presented_key(req: &Request) -> Result<&str> {
    let missing = || Error::Unauthenticated("send the API key as Authorization: Bearer <key>".into());
    let header = req.headers().get(http::header::AUTHORIZATION).ok_or_else(missing)?;
    header.to_str().ok().and_then(crate::authorizer::bearer).ok_or_else(missing)
}

/// An answer that no cache may keep: what a key says of itself, a token shown once.
fn not_stored(mut response: Response<Body>) -> Response<Body> {
    response.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}

/// `GET /v1/key`: the key in `Authorization: Bearer <key>` describes itself.
pub async fn describe_key(app: &App, req: Request) -> Answer {
    Ok(not_stored(json(StatusCode::OK, &app.describe_key(presented_key(&req)?).await?)))
}

/// `POST /v1/key/tokens`: the key in `Authorization: Bearer <key>` mints a narrowed token.
pub async fn mint_key_token(app: &App, req: Request) -> Answer {
    let input = json_body(&req)?;
    Ok(not_stored(json(StatusCode::CREATED, &app.mint_with_key(presented_key(&req)?, input).await?)))
}

pub async fn mint_my_key_token(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let input = json_body(&req)?;
    Ok(not_stored(json(StatusCode::CREATED, &app.mint_for_holder(&caller, &key(&req)?, input).await?)))
}

pub async fn list_my_key_tokens(app: &App, req: Request) -> Answer {
    let items = app.my_key_tokens(&caller(&req)?, &key(&req)?).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "items": items })))
}

fn token_id(req: &Request) -> Result<crate::ids::TokenId> {
    path(req, "token", "narrowed token", crate::ids::TokenId::parse)
}

pub async fn revoke_my_key_token(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let token = token_id(&req)?;
    Ok(json(StatusCode::OK, &app.revoke_my_key_token(&caller, &key(&req)?, &token).await?))
}

pub async fn revoke_key_token(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let token = token_id(&req)?;
    Ok(json(StatusCode::OK, &app.revoke_key_token(&caller, &project(&req)?, &key(&req)?, &token).await?))
}

pub async fn list_key_tokens(app: &App, req: Request) -> Answer {
    let items = app.key_tokens(&caller(&req)?, &project(&req)?, &key(&req)?).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "items": items })))
}

pub async fn import_key(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    Ok(json(StatusCode::CREATED, &app.import_key(&caller, &project(&req)?, json_body(&req)?).await?))
}

pub async fn list_secrets(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let reveal = query_flag(&req, "reveal")?;
    Ok(json(StatusCode::OK, &app.list_secrets(&caller, &project(&req)?, reveal, &page(&req)?).await?))
}

fn secret_name(req: &Request) -> Result<SecretName> {
    path_name(req, "name", SecretName::parse)
}

pub async fn put_secret(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    Ok(json(StatusCode::OK, &app.put_secret(&caller, &project(&req)?, secret_name(&req)?, json_body(&req)?).await?))
}

pub async fn delete_secret(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    app.delete_secret(&caller, &project(&req)?, &secret_name(&req)?).await?;
    Ok(no_content())
}

pub async fn list_audit(app: &App, req: Request) -> Answer {
    Ok(json(StatusCode::OK, &app.list_audit(&caller(&req)?, &project(&req)?, &page(&req)?).await?))
}

/// The JWKS route's handler, shaped like every other.
pub async fn jwks_route(app: &App, _req: Request) -> Answer {
    Ok(jwks(app))
}

pub fn jwks(app: &App) -> Response<Body> {
    let mut response = json(StatusCode::OK, &app.keys.jwks());
    response.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("public, max-age=300"));
    response
}

fn webhook(req: &Request) -> Result<crate::ids::WebhookId> {
    path(req, "webhook", "webhook endpoint", crate::ids::WebhookId::parse)
}

/// Adds a project's webhook endpoint: its secret is in this answer only.
pub async fn add_webhook(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let input = json_body(&req)?;
    Ok(not_stored(json(StatusCode::CREATED, &app.add_webhook(&caller, &project(&req)?, input).await?)))
}

pub async fn list_webhooks(app: &App, req: Request) -> Answer {
    let items = app.list_webhooks(&caller(&req)?, &project(&req)?).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "items": items })))
}

pub async fn edit_webhook(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let input = json_body(&req)?;
    Ok(json(StatusCode::OK, &app.edit_webhook(&caller, &project(&req)?, &webhook(&req)?, input).await?))
}

pub async fn delete_webhook(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    Ok(json(StatusCode::OK, &app.delete_webhook(&caller, &project(&req)?, &webhook(&req)?).await?))
}

/// A new secret for an endpoint, in this answer only.
pub async fn rotate_webhook_secret(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    Ok(not_stored(json(StatusCode::OK, &app.rotate_webhook_secret(&caller, &project(&req)?, &webhook(&req)?).await?)))
}

/// Queues a `webhook.test` event for the endpoint: 202, sent within a second.
pub async fn test_webhook(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    Ok(json(StatusCode::ACCEPTED, &app.test_webhook(&caller, &project(&req)?, &webhook(&req)?).await?))
}

pub async fn list_deliveries(app: &App, req: Request) -> Answer {
    let items = app.list_deliveries(&caller(&req)?, &project(&req)?, &webhook(&req)?).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "items": items })))
}

/// Queues a delivery again: 202, sent within a second.
pub async fn retry_delivery(app: &App, req: Request) -> Answer {
    let caller = caller(&req)?;
    let delivery = path(&req, "delivery", "webhook delivery", crate::ids::DeliveryId::parse)?;
    Ok(json(StatusCode::ACCEPTED, &app.retry_delivery(&caller, &project(&req)?, &webhook(&req)?, &delivery).await?))
}
