//! Sending one webhook message (issue 32): the attempt that the delivery workers will make,
//! with every rule of [`crate::webhook`] applied where it matters, at the connection.
//!
//! - The URL's form and the addresses of its host are checked before the attempt, for a
//!   problem in words; and the client's own resolver checks the addresses again as it connects
//!   ([`CheckedResolver`]), so a name re-pointed inside in between (DNS rebinding) is refused.
//! - No redirect is followed (a 3xx is a failed attempt, and where it pointed is not called); no
//!   proxy from the environment is used (it would connect where the check did not look).
//! - 10 s per attempt; the answer's body is read up to 64 KB and dropped.
//!
//! Built only with the shared crate's `delivery` feature: the operations' Lambda functions do
//! not carry an HTTP client they never use.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::secret::SecretValue;
use crate::webhook::{ATTEMPT_TIMEOUT, MAX_RESPONSE_BYTES, UrlPolicy, signed_headers};

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered 2xx.
    Delivered { status: u16 },
    /// It answered otherwise (a 3xx included: redirects are not followed).
    Rejected { status: u16 },
    /// The URL or an address of its host is not one keygate sends to: not tried.
    Refused { why: String },
    /// No answer within the time limit.
    TimedOut,
    /// No connection, or the exchange broke.
    Unreachable { why: String },
}

impl Outcome {
    pub fn delivered(&self) -> bool {
        matches!(self, Self::Delivered { .. })
    }

    /// The outcome's name, for figures and the console: delivered, rejected, refused,
    /// timed_out, unreachable.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Delivered { .. } => "delivered",
            Self::Rejected { .. } => "rejected",
            Self::Refused { .. } => "refused",
            Self::TimedOut => "timed_out",
            Self::Unreachable { .. } => "unreachable",
        }
    }
}

/// One attempt's outcome and how long it took.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub outcome: Outcome,
    pub took: Duration,
}

/// Resolves names for the client and refuses any whose addresses the policy refuses: the
/// check at connection time.
struct CheckedResolver(Arc<UrlPolicy>);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            type BoxError = Box<dyn std::error::Error + Send + Sync>;
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let url = url::Url::parse(&format!("https://{host}/")).map_err(|e| -> BoxError { Box::new(e) })?;
            let addresses: Vec<_> = found.iter().map(SocketAddr::ip).collect();
            policy.check_addresses(&url, &addresses).map_err(|e| -> BoxError { e.to_string().into() })?;
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Sends webhook messages under one [`UrlPolicy`]; one client, reused across attempts.
pub struct Sender {
    policy: Arc<UrlPolicy>,
    client: reqwest::Client,
}

impl Sender {
    pub fn new(policy: UrlPolicy) -> Self {
        Self::with_timeout(policy, ATTEMPT_TIMEOUT)
    }

    /// As [`Sender::new`] with another time limit per attempt (tests).
    pub fn with_timeout(policy: UrlPolicy, timeout: Duration) -> Self {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .user_agent(concat!("keygate-webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(CheckedResolver(policy.clone()))
            .build()
            .expect("the webhook client's settings are valid");
        Self { policy, client }
    }

    /// One attempt to deliver `payload` as message `message_id` to `url`, signed with every
    /// secret in `secrets` (the new one first) at `at`.
    pub async fn send(
        &self,
        url: &str,
        message_id: &str,
        at: DateTime<Utc>,
        payload: &str,
        secrets: &[&SecretValue],
    ) -> Attempt {
        let started = Instant::now();
        let outcome = self.attempt(url, message_id, at, payload, secrets).await;
        let took = started.elapsed();
        tracing::info!(message_id, outcome = outcome.name(), took_ms = took.as_millis() as u64, "webhook attempt");
        Attempt { outcome, took }
    }

    async fn attempt(
        &self,
        url: &str,
        message_id: &str,
        at: DateTime<Utc>,
        payload: &str,
        secrets: &[&SecretValue],
    ) -> Outcome {
        let parsed = match self.policy.check_url(url) {
            Ok(u) => u,
            Err(e) => return Outcome::Refused { why: e.to_string() },
        };
        if let Err(e) = self.policy.resolve(&parsed).await {
            return Outcome::Refused { why: e.to_string() };
        }
        let headers = match signed_headers(message_id, at, payload, secrets) {
            Ok(h) => h,
            Err(e) => return Outcome::Unreachable { why: e.to_string() },
        };
        let mut request = self.client.post(parsed).header("content-type", "application/json").body(payload.to_owned());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Outcome::TimedOut,
            Err(e) => return Outcome::Unreachable { why: without_url(e) },
        };
        let status = response.status().as_u16();
        // The answer's body is read up to the limit and dropped: an endpoint cannot make keygate
        // hold a large answer, nor wait on one it streams slowly past the time limit.
        let mut read = 0;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    read += chunk.len();
                    if read >= MAX_RESPONSE_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Outcome::TimedOut,
                Err(_) => break,
            }
        }
        if (200..300).contains(&status) { Outcome::Delivered { status } } else { Outcome::Rejected { status } }
    }
}

/// A client error in words, without the URL (its path or query may hold what the endpoint's
/// owner considers a credential).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut words = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        words = format!("{words}: {s}");
        source = s.source();
    }
    words
}
