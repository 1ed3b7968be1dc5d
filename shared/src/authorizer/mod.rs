//! The Lambda authorizer of the platform API (SPEC section 6): verifies the API key, checks
//! the key's record and its role's permission for the call, applies the template's rate limit
//! and quota, meters the call, and answers allow with a context, or deny. It fails closed and
//! never panics on any input.
//!
//! It sits above the operations: it reads what they wrote (keys, templates, roles) and writes
//! only usage, quota counters and quota notices (through the outbox). Nothing below imports it;
//! the operations tell it of revoked keys and changed templates through [`KeyEvents`].

mod limits;
mod tally;

use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayV2CustomAuthorizerSimpleResponse,
    ApiGatewayV2CustomAuthorizerV2Request,
};
use chrono::{DateTime, Duration, Utc};
use http::Method;
use quick_cache::sync::Cache;
use serde::Serialize;

pub use limits::{Limit, Limited, QuotaUse};
use tally::Subject;
pub use tally::{Counting, Flushed, Tally};

use crate::clock::Clock;
use crate::figures::{Figures, NoFigures};
use crate::ids::RoleName;
use crate::ids::{DataLayerId, KeyId, ProjectId, TemplateId, UserId};
use crate::key::IssuedKey;
use crate::limits::InForce;
use crate::permission::{Permission, Permissions, required_permission};
use crate::platform::{self, CallProblem};
use crate::project::Role;
use crate::service::{App, KeyEvents};
use crate::signing::{KeyClaims, KeyRing, Refusal};
use crate::store::{Store, layout};
#[cfg(test)]
use crate::template::RateLimit;
use crate::template::{KeyTemplate, RateMode};

/// How long a key's record and its template are trusted without reading them again. Below one
/// second, so that a revocation takes effect within one second on every instance, and below
/// [`crate::limits::SETTLE`], so that every instance decides on the limits in force.
pub const KEY_RECORD_TTL: Duration = Duration::milliseconds(900);
/// How long a role's permissions are trusted: changes apply within a minute (at once on the
/// instance that made them).
pub const GRANT_TTL: Duration = Duration::seconds(55);
/// Entries per cache; a token is about 400 bytes, so the token cache stays under 5 MB.
pub const CACHE_CAPACITY: usize = 10_000;

#[derive(Clone)]
struct Stamped<T> {
    value: T,
    at: DateTime<Utc>,
}

/// What a key's template grants at the moment of a call: the role's permissions, the price of
/// a call, and the limits in force (the key's own over the template's, [`crate::limits`]).
#[derive(Clone, Debug)]
struct Grant {
    permissions: Permissions,
    price: i64,
    limits: InForce,
}

/// What a template grants, as read: its role's permissions, its price, and its limits with
/// those before their last change (until it takes effect).
struct Granted {
    permissions: Permissions,
    price: i64,
    limits: crate::limits::TemplateLimits,
    before: Option<crate::limits::Before<crate::limits::TemplateLimits>>,
    /// No limits now nor before: the common case, decided without working limits out.
    unlimited: bool,
}

/// What the authorizer remembers between calls, all bounded:
/// - verified tokens, keyed by their exact bytes (a signature is checked once per instance;
///   `exp`, `nbf` and `aud` are checked again on every call);
/// - key records and their templates, for under a second ([`KEY_RECORD_TTL`]), read together;
/// - each role's permissions, for under a minute ([`GRANT_TTL`]).
///
/// Usage is never cached: every allowed call is counted in the store before it is allowed.
pub struct Caches {
    tokens: Option<Cache<String, Arc<KeyClaims>>>,
    keys: Cache<(ProjectId, KeyId), Stamped<Arc<IssuedKey>>>,
    templates: Cache<(ProjectId, TemplateId), Stamped<Arc<Granted>>>,
    roles: Cache<(ProjectId, RoleName), Stamped<Permissions>>,
}

impl Caches {
    /// Caches holding `tokens` verified tokens (0: verify every token, as for a first-seen one).
    pub fn new(tokens: usize) -> Self {
        Self {
            tokens: (tokens > 0).then(|| bounded(tokens)),
            keys: bounded(CACHE_CAPACITY),
            templates: bounded(CACHE_CAPACITY),
            roles: bounded(CACHE_CAPACITY),
        }
    }
}

/// A cache of about `capacity` entries. Built on a single-threaded runtime (the Lambda
/// authorizer, one call at a time), it has one shard: quick_cache would otherwise ask the
/// machine how many cores it has, which reads cgroup files, about 2 % of a cold start.
fn bounded<K: Eq + std::hash::Hash, V: Clone>(capacity: usize) -> Cache<K, V> {
    let single = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
    if !single {
        return Cache::new(capacity);
    }
    let options = quick_cache::OptionsBuilder::new()
        .estimated_items_capacity(capacity)
        .weight_capacity(capacity as u64)
        .shards(1)
        .build()
        .expect("capacity and weight are set");
    Cache::with_options(options, Default::default(), Default::default(), Default::default())
}

impl Default for Caches {
    fn default() -> Self {
        Self::new(CACHE_CAPACITY)
    }
}

/// This instance sees a revocation, or a template's new role or price, at once (other
/// instances within [`KEY_RECORD_TTL`]; a role's new permissions within [`GRANT_TTL`]).
impl KeyEvents for Caches {
    fn key_retired(&self, project: &ProjectId, key: &KeyId) {
        self.keys.remove(&(project.clone(), key.clone()));
    }

    fn template_changed(&self, project: &ProjectId, template: &TemplateId) {
        self.templates.remove(&(project.clone(), template.clone()));
    }
}

/// The authorizer: what it reads and writes, and what it remembers between calls.
pub struct Authorizer {
    store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    clock: Arc<dyn Clock>,
    usage_shards: u32,
    console_url: String,
    caches: Arc<Caches>,
    limits: limits::Limits,
    tally: Arc<Tally>,
    figures: Arc<dyn Figures>,
    /// What the store's layout item said, read with the first key record this instance read.
    layout: LayoutGate,
    /// Whether the quota notices also queue their `quota.threshold` webhook event.
    webhook_events: bool,
}

/// The storage layout as the authorizer found it. It does not read it at start (that would
/// add a round trip to every cold start): it reads the layout item in the same `BatchGetItem`
/// as its first key record and template. On a layout newer than this release knows, it
/// decides nothing more: every call that needs the store is refused as unavailable, and the
/// reason is logged, with both versions.
#[derive(Default)]
struct LayoutGate(std::sync::atomic::AtomicU8);

impl LayoutGate {
    const UNREAD: u8 = 0;
    const KNOWN: u8 = 1;
    const NEWER: u8 = 2;

    fn state(&self) -> u8 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes what the layout item says (`None`: no item, a new store or one of layout 1).
    fn read(&self, item: Option<&crate::store::Item>) -> Result<(), Denial> {
        match item.and_then(crate::migrate::newer_than_known) {
            None => {
                self.0.store(Self::KNOWN, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Some(e) => {
                self.0.store(Self::NEWER, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(error = %e, "cannot decide: storage layout; refusing every call");
                Err(Denial::StoreFailed)
            }
        }
    }
}

impl Authorizer {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
        usage_shards: u32,
        console_url: String,
        caches: Arc<Caches>,
    ) -> Self {
        Self {
            store,
            keys,
            clock,
            usage_shards,
            console_url,
            caches,
            limits: limits::Limits::default(),
            tally: Arc::new(Tally::new(Counting::Exact)),
            figures: Arc::new(NoFigures),
            layout: LayoutGate::default(),
            webhook_events: false,
        }
    }

    /// The same, queueing a `quota.threshold` webhook event with each quota notice (on a
    /// deployment that delivers webhooks).
    pub fn with_webhook_events(mut self, on: bool) -> Self {
        self.webhook_events = on;
        self
    }

    /// The same, reporting its decisions, latencies and cache use to `figures`.
    pub fn reporting_to(mut self, figures: Arc<dyn Figures>) -> Self {
        self.figures = figures;
        self
    }

    /// The same, counting refusals as `counting` says (exact by default).
    pub fn counting_refusals(mut self, counting: Counting) -> Self {
        self.tally = Arc::new(Tally::new(counting));
        self
    }

    /// Writes the refusals counted in memory and not written yet, after any write of them in
    /// flight (on shutdown; tests, before they read the counts).
    pub async fn flush_refusals(&self) -> Flushed {
        self.tally.flush(self.store.as_ref()).await
    }

    fn flush_in_background(&self) {
        let (tally, store) = (self.tally.clone(), self.store.clone());
        tokio::spawn(async move { tally.flush(store.as_ref()).await });
    }

    /// An authorizer on `app`'s store, signing keys and clock, with caches of its own.
    pub fn of(app: &App) -> Self {
        Self::with_caches(app, Caches::default())
    }

    /// The same, with the given caches (for example without the token cache).
    pub fn with_caches(app: &App, caches: Caches) -> Self {
        let s = &app.settings;
        Self::new(
            app.store.clone(),
            app.keys.clone(),
            app.clock.clone(),
            s.usage_shards,
            s.console_url.clone(),
            Arc::new(caches),
        )
        .with_webhook_events(s.webhook_events)
    }

    /// An authorizer beside `app` in one process (the local gateway, tests): `app`'s
    /// revocations and template changes reach its caches at once.
    pub fn beside(app: &mut App) -> Self {
        let authorizer = Self::of(app);
        app.key_events = authorizer.caches.clone();
        authorizer
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// What API Gateway passes on to the platform with an allowed call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallContext {
    pub key_id: KeyId,
    pub user_id: UserId,
    pub project_id: ProjectId,
    pub template_id: TemplateId,
    pub data_layer_id: DataLayerId,
    /// Calls left in the key's quota period, when its template has a quota; passed on as
    /// `unlimited` otherwise, so that the platform always finds the header.
    #[serde(serialize_with = "remaining_or_unlimited")]
    pub quota_remaining: Option<i64>,
    /// The quota this call was counted against (for the caller's `RateLimit` headers).
    #[serde(skip)]
    pub quota: Option<QuotaUse>,
}

impl CallContext {
    /// The context as `x-keygate-*` request headers.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("x-keygate-key-id", self.key_id.to_string()),
            ("x-keygate-user-id", self.user_id.to_string()),
            ("x-keygate-project-id", self.project_id.to_string()),
            ("x-keygate-template-id", self.template_id.to_string()),
            ("x-keygate-data-layer-id", self.data_layer_id.to_string()),
        ];
        let remaining = self.quota_remaining.map_or_else(|| UNLIMITED.to_owned(), |n| n.to_string());
        headers.push(("x-keygate-quota-remaining", remaining));
        headers
    }
}

/// `x-keygate-quota-remaining` of a key without a quota.
pub const UNLIMITED: &str = "unlimited";

fn remaining_or_unlimited<S: serde::Serializer>(remaining: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match remaining {
        Some(n) => s.serialize_i64(*n),
        None => s.serialize_str(UNLIMITED),
    }
}

/// Why a call was denied. The caller is told in words ([`Denial::outcome`],
/// [`Denial::advice`]): what went wrong and what to do, without saying more about a token
/// that is not keygate's than that it is not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    NoKey,
    BadKey(Refusal),
    /// The call cannot be decided as the platform would serve it (refused before the key is
    /// looked at; never forwarded).
    BadCall(CallProblem),
    UnknownKey,
    /// The key's record says it was revoked.
    Revoked,
    /// The key's record says it has expired.
    Expired,
    /// The token is of a generation the key's rerolls have replaced, past its grace period.
    Rerolled,
    /// The key no longer matches its record or its template.
    KeyNotUsable,
    MissingPermission(Permission),
    /// A narrowed token was revoked by its holder, or is not one of its key's.
    TokenRevoked,
    /// A narrowed token's narrowing leaves out this call.
    Narrowed(NarrowedOut),
    Limited(Limited),
    StoreFailed,
}

/// What of a call a narrowed token's narrowing leaves out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NarrowedOut {
    /// A permission its key's role has and the token does not keep.
    Permission(Permission),
    /// The path is not on one of its nodes.
    Node,
}

impl Denial {
    /// 400 when the call is not spelled the way the platform would serve it, 401 when there is
    /// no readable key at all, 429 when a limit refuses the call, 403 when the key is not good
    /// for this call.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadCall(_) => 400,
            Self::NoKey | Self::BadKey(Refusal::Malformed) => 401,
            Self::Limited(_) => 429,
            _ => 403,
        }
    }

    /// The refusal's stable name, for the caller, the logs and the authorizer's context.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::NoKey => "no_key",
            Self::BadKey(Refusal::Expired) | Self::Expired => "expired",
            Self::BadKey(Refusal::NotYetValid) => "not_yet_valid",
            Self::BadKey(Refusal::OtherProject) => "other_project",
            Self::BadKey(_) => "invalid_key",
            Self::BadCall(_) => "bad_call",
            Self::UnknownKey => "unknown_key",
            Self::Revoked => "revoked",
            Self::Rerolled => "rerolled",
            Self::KeyNotUsable => "key_not_usable",
            Self::MissingPermission(_) | Self::Narrowed(_) => "permission",
            Self::TokenRevoked => "revoked",
            Self::Limited(limited) => limited.name(),
            Self::StoreFailed => "unavailable",
        }
    }

    /// What happened and what to do, in words.
    pub fn advice(&self) -> String {
        const NEW_KEY: &str = "request a new key in the project's API keys section";
        match self {
            Self::NoKey => "send the API key as 'Authorization: Bearer <key>'".into(),
            Self::BadKey(Refusal::Expired) | Self::Expired => format!("this key has expired; {NEW_KEY}"),
            Self::BadKey(Refusal::NotYetValid) => "this key is not valid yet; check this machine's clock".into(),
            Self::BadKey(Refusal::OtherProject) => {
                "this key is for another project: call that project's /api/projects/{project}/..., or use a key of this one".into()
            }
            Self::BadKey(_) => {
                "this is not a key this keygate issued, or it was altered; copy it again from My keys".into()
            }
            Self::BadCall(problem) => format!("{problem}; this call was not forwarded"),
            Self::UnknownKey => format!("this project has no such key; {NEW_KEY}"),
            Self::Revoked => format!("this key was revoked; ask the project's owner why, or {NEW_KEY}"),
            Self::Rerolled => "this key was given a new token (rerolled) and this old one no longer works; copy the new token from My keys, or read it again from the secrets the key was imported into".into(),
            Self::KeyNotUsable => format!("this key no longer matches its template; {NEW_KEY}"),
            Self::MissingPermission(p) => {
                format!("this key's role lacks the {p} permission this call needs; ask the project's owner for a key whose role has it")
            }
            Self::TokenRevoked => "this narrowed token was revoked by its key's holder; mint a new one".into(),
            Self::Narrowed(NarrowedOut::Permission(p)) => format!(
                "this narrowed token does not keep the {p} permission this call needs; use a token minted with it, or the key"
            ),
            Self::Narrowed(NarrowedOut::Node) => {
                "this narrowed token may only call the paths of its nodes (nodes/{node}/...); use a token minted for this node, or the key".into()
            }
            Self::Limited(limited) => limited.detail(),
            Self::StoreFailed => "keygate could not check this key just now; retry in a moment".into(),
        }
    }

    /// The problem type URI of the refusal: the same on keygate-local and on the REST stage.
    pub fn problem_type(&self) -> String {
        format!("urn:keygate:problem:{}", self.outcome().replace('_', "-"))
    }

    /// The problem+json body keygate-local answers a refused call with (a limit's is
    /// [`Limited::problem`]). It keeps API Gateway's `message` beside the problem's members.
    pub fn problem(&self) -> serde_json::Value {
        if let Self::Limited(limited) = self {
            return limited.problem();
        }
        let title = match self.status() {
            400 => "Bad Request",
            401 => "Unauthorized",
            _ => "Forbidden",
        };
        let mut body = serde_json::json!({
            "type": self.problem_type(),
            "title": title,
            "status": self.status(),
            "detail": self.advice(),
            "outcome": self.outcome(),
            "message": title,
        });
        if let Self::MissingPermission(p) | Self::Narrowed(NarrowedOut::Permission(p)) = self {
            body["permission"] = serde_json::json!(p.as_str());
        }
        body
    }

    /// The authorizer's context of a refused call on AWS: the same outcome and words, for the
    /// logs and for a gateway that maps them (strings only, as API Gateway requires).
    pub fn context(&self) -> serde_json::Value {
        let mut context = match self {
            Self::Limited(limited) => limited.context(),
            _ => serde_json::json!({}),
        };
        context["type"] = serde_json::json!(self.problem_type());
        context["outcome"] = serde_json::json!(self.outcome());
        context["detail"] = serde_json::json!(self.advice());
        match self {
            Self::BadCall(problem) => context["refused"] = serde_json::json!(problem.code()),
            Self::MissingPermission(p) | Self::Narrowed(NarrowedOut::Permission(p)) => {
                context["permission"] = serde_json::json!(p.as_str())
            }
            _ => {}
        }
        context
    }
}

impl From<Limited> for Denial {
    fn from(limited: Limited) -> Self {
        Self::Limited(limited)
    }
}

pub type Verdict = Result<CallContext, Denial>;

/// One call of the platform API as it arrived: `path` as sent (still percent-encoded), the
/// raw query, and every header.
#[derive(Clone, Copy, Debug)]
pub struct PlatformCall<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A refused call, and whom its refusal is counted against ([`tally`]).
struct Refused {
    denial: Denial,
    subject: Option<Subject>,
}

impl Refused {
    fn of_key(key: &KeyId) -> impl FnOnce(Denial) -> Self {
        let subject = Some(Subject::Key(key.clone()));
        move |denial| Self { denial, subject }
    }

    fn of_project(project: &ProjectId) -> impl FnOnce(Denial) -> Self {
        let subject = Some(Subject::Project(project.clone()));
        move |denial| Self { denial, subject }
    }
}

/// A refusal counted against nobody: the call names no project, or keygate could not decide.
impl From<Denial> for Refused {
    fn from(denial: Denial) -> Self {
        Self { denial, subject: None }
    }
}

/// A call that passed every check but the limits, with what they need.
struct Admitted {
    context: CallContext,
    key: Arc<IssuedKey>,
    grant: Grant,
    /// A narrowed token's label, which its calls are also counted under.
    label: Option<String>,
}

impl Authorizer {
    /// Decides an API Gateway v2 authorizer event.
    pub async fn authorize_event(
        &self,
        event: &ApiGatewayV2CustomAuthorizerV2Request,
    ) -> ApiGatewayV2CustomAuthorizerSimpleResponse {
        let call = PlatformCall {
            method: &event.request_context.http.method,
            // As sent, still percent-encoded: what the platform is handed (SECURITY.md).
            path: event.raw_path.as_deref().or(event.request_context.http.path.as_deref()).unwrap_or_default(),
            query: event.raw_query_string.as_deref(),
            headers: &event.headers,
        };
        let started = std::time::Instant::now();
        // Headers that keygate-local drops cannot be dropped on the way to the platform here.
        let verdict = match platform::undroppable_headers(&event.headers) {
            Ok(()) => self.call_verdict(&call).await,
            Err(problem) => self.refused(&call, problem),
        };
        self.report(&verdict, started);
        simple_response(verdict)
    }

    /// Decides a REST API `REQUEST` authorizer event: the stack's optional REST stage in front
    /// of the platform route (SECURITY.md, "A refused caller learns why"). The same decision as
    /// [`Authorizer::authorize_event`], answered as an IAM policy on the method's ARN with the
    /// same context, so that the stage's `ACCESS_DENIED` response can tell the caller the
    /// outcome and its words.
    pub async fn authorize_rest_event(
        &self,
        event: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    ) -> serde_json::Value {
        // Every value of a repeated header, not only the last: two Authorization headers are
        // seen as two, as keygate-local sees them.
        let headers = if event.multi_value_headers.is_empty() { &event.headers } else { &event.multi_value_headers };
        let parameters = if event.multi_value_query_string_parameters.is_empty() {
            &event.query_string_parameters
        } else {
            &event.multi_value_query_string_parameters
        };
        let query: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(parameters.iter()).finish();
        let started = std::time::Instant::now();
        let verdict = match &event.http_method {
            Some(method) => {
                let call = PlatformCall {
                    method,
                    path: event.path.as_deref().unwrap_or_default(),
                    query: (!query.is_empty()).then_some(query.as_str()),
                    headers,
                };
                match platform::undroppable_headers(headers) {
                    Ok(()) => self.call_verdict(&call).await,
                    Err(problem) => self.refused(&call, problem),
                }
            }
            None => Err(Denial::BadCall(CallProblem::NotAPlatformPath)),
        };
        self.report(&verdict, started);
        rest_response(verdict, event.method_arn.as_deref().unwrap_or("*"))
    }

    /// Decides a whole platform API call: its headers and query, then [`Authorizer::authorize`].
    pub async fn authorize_call(&self, call: &PlatformCall<'_>) -> Verdict {
        let started = std::time::Instant::now();
        let verdict = self.call_verdict(call).await;
        self.report(&verdict, started);
        verdict
    }

    async fn call_verdict(&self, call: &PlatformCall<'_>) -> Verdict {
        if let Err(problem) = platform::method_override(call.headers, call.query) {
            return self.refused(call, problem);
        }
        if call.headers.get_all(http::header::AUTHORIZATION).iter().nth(1).is_some() {
            return self.refused(call, CallProblem::RepeatedAuthorization);
        }
        let authorization = call.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        self.verdict(call.method, call.path, authorization).await
    }

    /// Tells the figures of one decision: its outcome and how long it took.
    fn report(&self, verdict: &Verdict, started: std::time::Instant) {
        let outcome = verdict.as_ref().map_or_else(Denial::outcome, |_| "allowed");
        if matches!(verdict, Err(Denial::StoreFailed)) {
            self.figures.store_error();
        }
        self.figures.decided(outcome, started.elapsed());
    }

    fn refused(&self, call: &PlatformCall<'_>, problem: CallProblem) -> Verdict {
        tracing::info!(problem = problem.code(), method = %call.method, "call refused before the key was read");
        Err(Denial::BadCall(problem))
    }

    /// Decides one call of the platform API: `path` is the whole request path
    /// (`/api/projects/{project}/...`).
    pub async fn authorize(&self, method: &Method, path: &str, authorization: Option<&str>) -> Verdict {
        let started = std::time::Instant::now();
        let verdict = self.verdict(method, path, authorization).await;
        self.report(&verdict, started);
        verdict
    }

    /// The decision, its refusal counted ([`tally`]).
    async fn verdict(&self, method: &Method, path: &str, authorization: Option<&str>) -> Verdict {
        let verdict = match self.decide(method, path, authorization).await {
            Ok(context) => {
                if self.tally.due() {
                    self.flush_in_background();
                }
                Ok(context)
            }
            Err(Refused { denial, subject }) => {
                // Answered first, counted after: the write never holds the answer back.
                if let Some(subject) = subject
                    && self.tally.refused(subject, denial.outcome(), self.now())
                {
                    self.flush_in_background();
                }
                Err(denial)
            }
        };
        match &verdict {
            Ok(ctx) => tracing::debug!(key_id = %ctx.key_id, %method, "call allowed"),
            Err(Denial::StoreFailed) => {}
            Err(Denial::Limited(limited)) => tracing::debug!(limit = limited.name(), %method, "call limited"),
            Err(denial) => tracing::info!(?denial, %method, "call denied"),
        }
        verdict
    }

    async fn decide(&self, method: &Method, path: &str, authorization: Option<&str>) -> Result<CallContext, Refused> {
        let Admitted { mut context, key, grant, label } = self.admit(method, path, authorization).await?;
        if let Some(rate) = grant.limits.rate_limit.filter(|r| r.mode == RateMode::Local) {
            self.limits.take_rate(&key.id, rate).map_err(|limited| Refused::of_key(&key.id)(limited.into()))?;
        }
        context.quota = self.meter(&key, &grant, label.as_deref()).await.map_err(|denial| match denial {
            Denial::StoreFailed => Refused::from(denial),
            denial => Refused::of_key(&key.id)(denial),
        })?;
        context.quota_remaining = context.quota.as_ref().map(QuotaUse::remaining);
        Ok(context)
    }

    /// The decision without the limits and the metering: who calls, and what one call costs.
    /// Exposed for the benchmarks; everything else goes through [`Authorizer::authorize`].
    pub async fn check(
        &self,
        method: &Method,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<(CallContext, i64), Denial> {
        let admitted = self.admit(method, path, authorization).await.map_err(|refused| refused.denial)?;
        Ok((admitted.context, admitted.grant.price))
    }

    /// Every check but the limits. A refusal is counted against the key when the token is
    /// keygate's and names one, against the path's project otherwise ([`tally`]).
    async fn admit(&self, method: &Method, path: &str, authorization: Option<&str>) -> Result<Admitted, Refused> {
        let platform::ApiPath { project, segments } = platform::api_path(path).map_err(Denial::BadCall)?;
        let of_project = || Refused::of_project(&project);
        let token = authorization.and_then(bearer).ok_or_else(|| of_project()(Denial::NoKey))?;
        let now = self.now();
        let claims = self.verified(token).map_err(|refusal| of_project()(Denial::BadKey(refusal)))?;
        let key_id = KeyId::parse(claims.key_id()).ok_or_else(|| of_project()(Denial::UnknownKey))?;
        let of_key = || Refused::of_key(&key_id);
        claims.admit(self.keys.issuer(), &project, now).map_err(|refusal| match refusal {
            // Keygate's signature on this project's key, used too late or too early.
            Refusal::Expired | Refusal::NotYetValid => of_key()(Denial::BadKey(refusal)),
            _ => of_project()(Denial::BadKey(refusal)),
        })?;
        let template_id = TemplateId::parse(&claims.tpl).ok_or_else(|| of_key()(Denial::KeyNotUsable))?;
        let (key, grant) =
            self.key_and_grant(&project, &key_id, &template_id, &claims, now).await.map_err(|denial| match denial {
                Denial::UnknownKey => of_project()(denial),
                Denial::StoreFailed => Refused::from(denial),
                denial => of_key()(denial),
            })?;
        if key.template_id != template_id || key.user_id.as_str() != claims.sub {
            return Err(of_key()(Denial::KeyNotUsable));
        }
        if key.status == crate::key::KeyStatus::Revoked {
            return Err(of_key()(Denial::Revoked));
        }
        if !key.is_usable(now) {
            return Err(of_key()(Denial::Expired));
        }
        if !key.admits_generation(claims.generation, now) {
            return Err(of_key()(Denial::Rerolled));
        }
        let needed = required_permission(method, &segments);
        if !grant.permissions.contains(needed) {
            return Err(of_key()(Denial::MissingPermission(needed)));
        }
        // A narrowed token: alive on its key's record (read already), and within its narrowing.
        if let Some(narrowing) = &claims.narrowed {
            if !key.admits_token(&claims.jti, now) {
                return Err(of_key()(Denial::TokenRevoked));
            }
            if !narrowing.permissions(grant.permissions).contains(needed) {
                return Err(of_key()(Denial::Narrowed(NarrowedOut::Permission(needed))));
            }
            if !narrowing.reaches(&segments) {
                return Err(of_key()(Denial::Narrowed(NarrowedOut::Node)));
            }
        }
        let context = CallContext {
            key_id: key.id.clone(),
            user_id: key.user_id.clone(),
            project_id: project,
            template_id: key.template_id.clone(),
            data_layer_id: key.data_layer_id.clone(),
            quota_remaining: None,
            quota: None,
        };
        let label = claims.narrowed.as_ref().map(|n| n.lbl.clone());
        Ok(Admitted { context, key, grant, label })
    }
    /// The claims of a token keygate signed: its signature checked now, or earlier by this
    /// instance (same bytes). The caller checks them for the call ([`KeyClaims::admit`]).
    fn verified(&self, token: &str) -> Result<Arc<KeyClaims>, Refusal> {
        if let Some(claims) = self.caches.tokens.as_ref().and_then(|c| c.get(token)) {
            self.figures.cache("token", true);
            return Ok(claims);
        }
        self.figures.cache("token", false);
        let claims = Arc::new(self.keys.verify_signature(token)?);
        if let Some(cache) = &self.caches.tokens {
            cache.insert(token.to_owned(), claims.clone());
        }
        Ok(claims)
    }

    /// The key's record and what its template grants now, from the caches where fresh (a
    /// record older than the token's `generation` is not). The signed token names the
    /// template, so the key record and the template are read in one round trip (they expire
    /// together), and the role only when its permissions are stale.
    async fn key_and_grant(
        &self,
        project: &ProjectId,
        key: &KeyId,
        template: &TemplateId,
        claims: &KeyClaims,
        now: DateTime<Utc>,
    ) -> Result<(Arc<IssuedKey>, Grant), Denial> {
        if self.layout.state() == LayoutGate::NEWER {
            return Err(Denial::StoreFailed);
        }
        let key_cache = (project.clone(), key.clone());
        let template_cache = (project.clone(), template.clone());
        // A token of a newer generation than the record remembered (a reroll made through
        // another instance), or a narrowed token it does not list (minted through another
        // instance), reads the record again: the new token works at once everywhere.
        let known = |record: &IssuedKey| {
            record.generation >= claims.generation
                && (claims.narrowed.is_none() || record.tokens.iter().any(|t| t.id.as_str() == claims.jti))
        };
        let cached_key =
            self.caches.keys.get(&key_cache).filter(|hit| now - hit.at < KEY_RECORD_TTL && known(&hit.value));
        let cached_template = self.caches.templates.get(&template_cache).filter(|hit| now - hit.at < KEY_RECORD_TTL);
        self.figures.cache("key", cached_key.is_some());
        self.figures.cache("template", cached_template.is_some());
        let (record, granted) = match (cached_key, cached_template) {
            (Some(k), Some(t)) => (k.value, t.value),
            (Some(k), None) => {
                let t = self.read(&layout::template(project, template)).await?;
                (k.value, self.granted(template_cache, t, now).await?)
            }
            (None, Some(t)) => {
                let record: IssuedKey = self.read(&layout::key(project, key)).await?.ok_or(Denial::UnknownKey)?;
                (self.remember_key(key_cache, record, now), t.value)
            }
            (None, None) => {
                let mut keys = vec![layout::key(project, key), layout::template(project, template)];
                let unread = self.layout.state() == LayoutGate::UNREAD;
                if unread {
                    keys.push(crate::migrate::meta_key());
                }
                let items = self.store.get_many(&keys).await.map_err(store_failed)?;
                let (record, template_item) = match items.as_slice() {
                    [record, template_item] => (record, template_item),
                    [record, template_item, meta] if unread => {
                        self.layout.read(meta.as_ref())?;
                        (record, template_item)
                    }
                    _ => return Err(Denial::StoreFailed),
                };
                let record: IssuedKey = record.as_ref().map(decode_item).transpose()?.ok_or(Denial::UnknownKey)?;
                let t: Option<KeyTemplate> = template_item.as_ref().map(decode_item).transpose()?;
                let granted = self.granted(template_cache, t, now).await?;
                (self.remember_key(key_cache, record, now), granted)
            }
        };
        // Most keys have no limits at all: nothing to work out.
        let limits = if granted.unlimited && record.limits.is_default() {
            InForce::NONE
        } else {
            let template_limits = crate::limits::at(&granted.limits, granted.before.as_ref(), now);
            record.limits_in_force(&template_limits, now)
        };
        Ok((record, Grant { permissions: granted.permissions, price: granted.price, limits }))
    }

    /// What template `t` grants, its role's permissions from the role cache or the store;
    /// remembered for [`KEY_RECORD_TTL`].
    async fn granted(
        &self,
        cache_key: (ProjectId, TemplateId),
        t: Option<KeyTemplate>,
        now: DateTime<Utc>,
    ) -> Result<Arc<Granted>, Denial> {
        let t = t.ok_or(Denial::KeyNotUsable)?;
        let role_cache = (cache_key.0.clone(), t.role.clone());
        let cached_role = self.caches.roles.get(&role_cache).filter(|hit| now - hit.at < GRANT_TTL);
        self.figures.cache("role", cached_role.is_some());
        let permissions = match cached_role {
            Some(hit) => hit.value,
            None => {
                let role: Role = self.read(&layout::role(&cache_key.0, &t.role)).await?.ok_or(Denial::KeyNotUsable)?;
                self.caches.roles.insert(role_cache, Stamped { value: role.permissions, at: now });
                role.permissions
            }
        };
        let limits = t.limits();
        let unlimited = limits.quota.is_none() && limits.rate_limit.is_none() && t.limits_before.is_none();
        let granted =
            Arc::new(Granted { permissions, price: t.price_per_request, limits, before: t.limits_before, unlimited });
        self.caches.templates.insert(cache_key, Stamped { value: granted.clone(), at: now });
        Ok(granted)
    }

    fn remember_key(&self, cache_key: (ProjectId, KeyId), record: IssuedKey, now: DateTime<Utc>) -> Arc<IssuedKey> {
        let record = Arc::new(record);
        self.caches.keys.insert(cache_key, Stamped { value: record.clone(), at: now });
        record
    }

    async fn read<T: serde::de::DeserializeOwned>(&self, key: &crate::store::ItemKey) -> Result<Option<T>, Denial> {
        self.store.get(key).await.map_err(store_failed)?.as_ref().map(decode_item).transpose()
    }
}

fn store_failed(e: crate::store::StoreError) -> Denial {
    tracing::error!(error = %e, source = ?std::error::Error::source(&e), "authorizer store read failed; denying");
    Denial::StoreFailed
}

fn decode_item<T: serde::de::DeserializeOwned>(item: &crate::store::Item) -> Result<T, Denial> {
    crate::service::decode(item).map_err(|e| {
        tracing::error!(error = %e, "unreadable item; denying");
        Denial::StoreFailed
    })
}

/// The answer to API Gateway. A refused call is denied with a context naming its outcome and
/// what to do ([`Denial::context`]; a limit's also says when it renews): an HTTP API answers
/// every denial 403, and SECURITY.md describes the gateway shape that turns it into a 429 or a
/// readable 403.
pub fn simple_response(verdict: Verdict) -> ApiGatewayV2CustomAuthorizerSimpleResponse {
    let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    match verdict {
        Ok(ctx) => {
            response.is_authorized = true;
            response.context = serde_json::to_value(ctx).unwrap_or_default();
        }
        Err(denial) => {
            response.is_authorized = false;
            response.context = denial.context();
        }
    }
    response
}

/// The answer to a REST API: allow or deny `execute-api:Invoke` on the called method, with the
/// context of [`simple_response`]. A REST API passes the context of a denial to its
/// `ACCESS_DENIED` gateway response (`$context.authorizer.outcome`, `.detail`, ...).
pub fn rest_response(verdict: Verdict, method_arn: &str) -> serde_json::Value {
    let (effect, principal, context) = match verdict {
        Ok(ctx) => ("Allow", ctx.key_id.to_string(), serde_json::to_value(ctx).unwrap_or_default()),
        Err(denial) => ("Deny", "refused".to_owned(), denial.context()),
    };
    serde_json::json!({
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn}],
        },
        "context": context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rest_answer_denies_the_method_with_the_outcome_and_its_words() {
        let arn = "arn:aws:execute-api:eu-west-1:1:api/platform/GET/api/projects/p/x";
        let denied = rest_response(Err(Denial::MissingPermission(Permission::PackageCreate)), arn);
        assert_eq!(denied["policyDocument"]["Statement"][0]["Effect"], "Deny");
        assert_eq!(denied["policyDocument"]["Statement"][0]["Resource"], arn);
        assert_eq!(denied["context"]["outcome"], "permission");
        assert_eq!(denied["context"]["permission"], "package_create");
        assert!(denied["context"]["detail"].as_str().is_some_and(|d| d.contains("package_create")), "{denied}");
        // A REST API takes only strings, numbers and booleans in a context.
        for denial in [Denial::NoKey, Denial::Revoked, Denial::StoreFailed] {
            let answer = rest_response(Err(denial), arn);
            assert!(
                answer["context"].as_object().unwrap().values().all(|v| !v.is_object() && !v.is_array()),
                "{answer}"
            );
        }
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
    }

    #[test]
    fn missing_or_unreadable_keys_are_401_the_rest_403() {
        assert_eq!(Denial::BadCall(CallProblem::DotSegment).status(), 400);
        assert_eq!(Denial::NoKey.status(), 401);
        assert_eq!(Denial::BadKey(Refusal::Malformed).status(), 401);
        assert_eq!(Denial::BadKey(Refusal::UnknownKey).status(), 403);
        assert_eq!(Denial::MissingPermission(Permission::PackageCreate).status(), 403);
        assert_eq!(Denial::StoreFailed.status(), 403);
        let limited = Limited { limit: Limit::Rate(RateLimit::new(1, 1)), retry_after: 1 };
        assert_eq!(Denial::Limited(limited).status(), 429);
    }

    #[test]
    fn every_refusal_says_what_happened_and_what_to_do() {
        let cases = [
            (Denial::NoKey, "no_key", "Authorization: Bearer"),
            (Denial::BadKey(Refusal::BadSignatureOrClaims), "invalid_key", "not a key this keygate issued"),
            (Denial::BadKey(Refusal::UnknownKey), "invalid_key", "not a key this keygate issued"),
            (Denial::BadKey(Refusal::Expired), "expired", "expired"),
            (Denial::Expired, "expired", "request a new key"),
            (Denial::BadKey(Refusal::NotYetValid), "not_yet_valid", "clock"),
            (Denial::BadKey(Refusal::OtherProject), "other_project", "another project"),
            (Denial::Revoked, "revoked", "ask the project's owner"),
            (Denial::Rerolled, "rerolled", "copy the new token"),
            (Denial::MissingPermission(Permission::PackageCreate), "permission", "package_create"),
            (Denial::BadCall(CallProblem::DotSegment), "bad_call", "not forwarded"),
            (Denial::StoreFailed, "unavailable", "retry"),
        ];
        for (denial, outcome, words) in cases {
            let problem = denial.problem();
            assert_eq!(problem["outcome"], outcome, "{denial:?}");
            assert_eq!(problem["status"], denial.status(), "{denial:?}");
            assert!(problem["detail"].as_str().unwrap().contains(words), "{denial:?}: {problem}");
            assert!(problem["message"].is_string(), "API Gateway's member is kept");
            let response = simple_response(Err(denial.clone()));
            assert!(!response.is_authorized);
            assert_eq!(response.context["outcome"], outcome);
            assert_eq!(response.context["detail"], problem["detail"]);
        }
        let missing = Denial::MissingPermission(Permission::PackageView);
        assert_eq!(
            (missing.problem()["permission"].clone(), missing.context()["permission"].clone()),
            (serde_json::json!("package_view"), serde_json::json!("package_view"))
        );
        let limited = Limited { limit: Limit::Rate(RateLimit::new(1, 1)), retry_after: 1 };
        let context = Denial::Limited(limited).context();
        assert_eq!((context["outcome"].as_str(), context["limit"].as_str()), (Some("rate_limit"), Some("rate_limit")));
    }
}
