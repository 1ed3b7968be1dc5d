//! Building blocks for tests: an application on a real SQLite store, a mailer that records what
//! it sends (and can be told to fail), and a clock tests set.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::ManualClock;
use crate::identity::Caller;
use crate::ids::UserId;
use crate::mail::{Mail, MailError, Mailer};
use crate::service::{App, Settings};
use crate::signing::KeyRing;
use crate::store::sqlite::SqliteStore;
use crate::store::{Counters, Increment, Item, ItemKey, Page, Query, Store, StoreError, Write};

/// Records every mail; fails while `failing` is set.
#[derive(Default)]
pub struct RecordingMailer {
    pub sent: Mutex<Vec<Mail>>,
    pub failing: std::sync::atomic::AtomicBool,
}

impl RecordingMailer {
    pub fn sent(&self) -> Vec<Mail> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(MailError("the mail service is down (test)".into()));
        }
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).push(mail.clone());
        Ok(())
    }
}

/// Passes every call on to another store and counts them, for tests that bound round trips.
pub struct CountingStore {
    inner: Arc<dyn Store>,
    gets: AtomicUsize,
    queries: AtomicUsize,
    transactions: AtomicUsize,
    counter_writes: AtomicUsize,
}

/// Calls made to a [`CountingStore`] so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Calls {
    pub gets: usize,
    pub queries: usize,
    pub transactions: usize,
    /// Items written by [`Store::count`] (one `UpdateItem` each on DynamoDB).
    pub counter_writes: usize,
}

impl std::ops::Sub for Calls {
    type Output = Calls;
    fn sub(self, before: Calls) -> Calls {
        Calls {
            gets: self.gets - before.gets,
            queries: self.queries - before.queries,
            transactions: self.transactions - before.transactions,
            counter_writes: self.counter_writes - before.counter_writes,
        }
    }
}

impl CountingStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            gets: AtomicUsize::new(0),
            queries: AtomicUsize::new(0),
            transactions: AtomicUsize::new(0),
            counter_writes: AtomicUsize::new(0),
        }
    }

    pub fn calls(&self) -> Calls {
        Calls {
            gets: self.gets.load(Ordering::SeqCst),
            queries: self.queries.load(Ordering::SeqCst),
            transactions: self.transactions.load(Ordering::SeqCst),
            counter_writes: self.counter_writes.load(Ordering::SeqCst),
        }
    }
}

#[async_trait]
impl Store for CountingStore {
    async fn get(&self, key: &ItemKey) -> Result<Option<Item>, StoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }

    /// Counted as one get: one round trip.
    async fn get_many(&self, keys: &[ItemKey]) -> Result<Vec<Option<Item>>, StoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get_many(keys).await
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        self.inner.query(query).await
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.transactions.fetch_add(1, Ordering::SeqCst);
        self.inner.transact(writes).await
    }

    async fn count(&self, increments: Vec<Increment>) -> Result<Vec<Counters>, StoreError> {
        self.counter_writes.fetch_add(increments.len(), Ordering::SeqCst);
        self.inner.count(increments).await
    }

    async fn scan(&self, after: Option<crate::store::Cursor>, limit: usize) -> Result<Page, StoreError> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        self.inner.scan(after, limit).await
    }
}

/// When a [`Faulty`] store fails a write: before the inner store sees it, as DynamoDB refuses a
/// throttled write or a lost connection ends a migration.
pub trait Faults: Send + Sync {
    /// The error for this transaction, if it fails.
    fn transact(&self) -> Option<StoreError> {
        None
    }
    /// The error for this metering write, if it fails.
    fn count(&self) -> Option<StoreError> {
        None
    }
}

/// A store that fails the writes its [`Faults`] say, and passes everything else through.
pub struct Faulty<F> {
    pub inner: Arc<dyn Store>,
    pub faults: F,
}

#[async_trait]
impl<F: Faults> Store for Faulty<F> {
    async fn get(&self, key: &ItemKey) -> Result<Option<Item>, StoreError> {
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[ItemKey]) -> Result<Vec<Option<Item>>, StoreError> {
        self.inner.get_many(keys).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.inner.query(query).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        match self.faults.transact() {
            Some(e) => Err(e),
            None => self.inner.transact(writes).await,
        }
    }
    async fn count(&self, increments: Vec<Increment>) -> Result<Vec<Counters>, StoreError> {
        match self.faults.count() {
            Some(e) => Err(e),
            None => self.inner.count(increments).await,
        }
    }
    async fn scan(&self, after: Option<crate::store::Cursor>, limit: usize) -> Result<Page, StoreError> {
        self.inner.scan(after, limit).await
    }
}

pub struct TestApp {
    pub app: App,
    /// The authorizer beside the application, as in the local gateway.
    pub authorizer: crate::authorizer::Authorizer,
    pub mailer: Arc<RecordingMailer>,
    pub clock: Arc<ManualClock>,
}

pub const ISSUER: &str = "https://keygate.test";

impl TestApp {
    /// An application on `store` with a fresh signing key.
    pub fn on(store: Arc<dyn Store>) -> Self {
        let mailer = Arc::new(RecordingMailer::default());
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let keys = KeyRing::new(ISSUER, &KeyRing::generate_pem(), &[]).expect("a generated key loads");
        let mut app = App::new(store, mailer.clone(), Arc::new(keys), clock.clone(), Settings::default());
        let authorizer = crate::authorizer::Authorizer::beside(&mut app);
        Self { app, authorizer, mailer, clock }
    }

    /// An application on a private in-memory SQLite database.
    pub fn new() -> Self {
        Self::on(Arc::new(SqliteStore::in_memory().expect("SQLite opens in memory")))
    }

    pub fn set_time(&self, at: DateTime<Utc>) {
        self.clock.set(at);
    }
}

impl Default for TestApp {
    fn default() -> Self {
        Self::new()
    }
}

pub fn user(id: &str) -> Caller {
    Caller { id: UserId::parse(id).expect("a valid user id"), email: format!("{id}@example.com"), name: None }
}

/// A request as API Gateway hands it to a function: path parameters from the route table, the
/// query map, and the caller's claims in the JWT authorizer context. Runs it and returns the
/// status and JSON answer.
pub async fn call(
    app: &App,
    method: &str,
    path: &str,
    caller: Option<&Caller>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let response = call_response(app, method, path, caller, body).await;
    let status = response.status().as_u16();
    let value = match response.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap_or(serde_json::Value::Null),
        _ => serde_json::Value::Null,
    };
    (status, value)
}

/// Like [`call`], with the whole response (status, headers, body).
pub async fn call_response(
    app: &App,
    method: &str,
    path: &str,
    caller: Option<&Caller>,
    body: Option<serde_json::Value>,
) -> lambda_http::Response<lambda_http::Body> {
    let body = body.map(|b| b.to_string());
    call_with(app, method, path, caller, &[], body).await
}

/// Like [`call_response`], with extra headers and the body as sent (a signed report's).
pub async fn call_with(
    app: &App,
    method: &str,
    path: &str,
    caller: Option<&Caller>,
    headers: &[(&'static str, String)],
    body: Option<String>,
) -> lambda_http::Response<lambda_http::Body> {
    use aws_lambda_events::apigw::{
        ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription, ApiGatewayV2httpRequestContext,
    };
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;

    let method = http::Method::from_bytes(method.as_bytes()).expect("a method");
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let segments: Vec<String> = path.trim_start_matches('/').split('/').map(str::to_owned).collect();
    let crate::http::routes::Match::Found(route, params) = crate::http::routes::find(&method, &segments) else {
        panic!("no route for {method} {path}");
    };
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.http.method = method.clone();
    if let Some(c) = caller {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = [("sub", c.id.to_string()), ("email", c.email.clone())]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        context.authorizer = Some(authorizer);
    }
    let mut query_map: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        query_map.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    let body = match body {
        Some(b) => lambda_http::Body::Text(b),
        None => lambda_http::Body::Empty,
    };
    let mut req = lambda_http::Request::new(body);
    *req.method_mut() = method;
    req.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    for (name, value) in headers {
        req.headers_mut().insert(*name, http::HeaderValue::from_str(value).expect("a header value"));
    }
    let req = req
        .with_path_parameters(params)
        .with_query_string_parameters(query_map)
        .with_request_context(RequestContext::ApiGatewayV2(context));
    // As the operation's Lambda function would run it: with only what its row says it needs.
    crate::http::routes::handle(&as_deployed(app, route.needs), route.operation, req).await
}

/// The application as an operation's Lambda function holds it, with only what the route table
/// says the operation needs: without `mail`, a mailer that leaves mail in the outbox; without
/// `signing_key`, the key ring's public half. A row that claims too little fails the tests
/// that call through [`call`] (an operation that signs answers 500; mail is not sent).
pub fn as_deployed(app: &App, needs: crate::config::Needs) -> App {
    App {
        store: app.store.clone(),
        mailer: if needs.mail { app.mailer.clone() } else { Arc::new(crate::mail::OutboxOnly) },
        keys: if needs.signing_key { app.keys.clone() } else { Arc::new(app.keys.without_private_key()) },
        clock: app.clock.clone(),
        settings: app.settings.clone(),
        key_events: app.key_events.clone(),
    }
}

impl TestApp {
    /// An application on `store` that signs with `pem` (to share keys with another process).
    pub fn with_key(store: Arc<dyn Store>, pem: &str) -> Self {
        let mut t = Self::on(store);
        let keys = Arc::new(KeyRing::new(ISSUER, pem, &[]).expect("a valid signing key"));
        t.app = t.app.with(t.app.store.clone(), t.app.mailer.clone(), keys, t.app.clock.clone());
        t.authorizer = crate::authorizer::Authorizer::beside(&mut t.app);
        t
    }
}

/// A secret scanner of the test's own: its key pair, signing reports as GitHub does, and the
/// keys an application must be configured with to trust it (identifier `test-key`).
pub struct Scanner {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
}

impl Scanner {
    pub const KEY_ID: &'static str = "test-key";

    pub fn new() -> Self {
        let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING)
            .expect("a P-256 key");
        Self { pair }
    }

    /// GitHub's public-keys document holding this scanner's key.
    pub fn document(&self) -> String {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::KeyPair;
        let der = self.pair.public_key().as_der().expect("a public key encodes");
        let pem = pem::encode(&pem::Pem::new("PUBLIC KEY", der.as_ref().to_vec()));
        serde_json::json!({"public_keys": [{"key_identifier": Self::KEY_ID, "key": pem, "is_current": true}]})
            .to_string()
    }

    pub fn keys(&self) -> crate::scanning::ScanningKeys {
        crate::scanning::ScanningKeys::from_document(&self.document()).expect("the document reads")
    }

    /// The headers GitHub sends with `body`.
    pub fn headers(&self, body: &str) -> Vec<(&'static str, String)> {
        use base64::Engine;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = self.pair.sign(&rng, body.as_bytes()).expect("signing works");
        vec![
            (crate::scanning::KEY_IDENTIFIER_HEADER, Self::KEY_ID.to_owned()),
            (crate::scanning::SIGNATURE_HEADER, base64::engine::general_purpose::STANDARD.encode(signature)),
        ]
    }
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}
