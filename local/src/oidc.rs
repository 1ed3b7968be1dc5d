//! The identity provider's signing keys, kept current: its JWKS is read again in the background
//! as often as the answer's `Cache-Control: max-age` says (every hour when it says nothing), and
//! at once when a token names a key the set does not hold (at most once a minute, so that
//! tokens with made-up `kid`s cannot make keygate-local hammer the provider). A key the provider
//! withdraws is refused within that time; a key it adds is used at once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use keygate::user_token::UserTokens;

/// How often the JWKS is read when the provider names no `max-age`.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);
/// The bounds on a provider's `max-age`.
pub const REFRESH_BOUNDS: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(24 * 3600));
/// At most one read on an unknown `kid` per this long.
pub const UNKNOWN_KID_REFRESH: Duration = Duration::from_secs(60);
/// After a failed read, the next try comes this much later.
const RETRY: Duration = Duration::from_secs(60);

pub struct ProviderKeys {
    client: reqwest::Client,
    jwks_uri: String,
    last_unknown_kid_read: Mutex<Option<Instant>>,
}

impl ProviderKeys {
    pub fn new(client: reqwest::Client, jwks_uri: String) -> Self {
        Self { client, jwks_uri, last_unknown_kid_read: Mutex::new(None) }
    }

    /// The JWKS document, and how long it may be kept.
    pub async fn read(&self) -> Result<(String, Duration), String> {
        let url = &self.jwks_uri;
        let response = self.client.get(url).send().await.map_err(|e| format!("cannot read {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        let cache_control = response.headers().get(reqwest::header::CACHE_CONTROL).and_then(|v| v.to_str().ok());
        let keep = max_age(cache_control).unwrap_or(DEFAULT_REFRESH).clamp(REFRESH_BOUNDS.0, REFRESH_BOUNDS.1);
        let body = response.text().await.map_err(|e| format!("cannot read {url}: {e}"))?;
        Ok((body, keep))
    }

    /// Reads the JWKS again and trusts exactly its keys; says when to read it next.
    async fn refresh(&self, users: &UserTokens) -> Duration {
        match self.read().await {
            Ok((jwks, keep)) => match users.replace_provider_keys(&jwks) {
                Ok(count) => {
                    tracing::debug!(keys = count, next_in_s = keep.as_secs(), "identity provider's keys read");
                    keep
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the identity provider's JWKS has no usable key; keeping the keys held");
                    RETRY
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the identity provider's keys; keeping the keys held");
                RETRY
            }
        }
    }

    /// Reads the keys again for a token naming an unknown key, unless that was done less than
    /// [`UNKNOWN_KID_REFRESH`] ago.
    pub async fn on_unknown_key(&self, users: &UserTokens) {
        {
            let mut last = self.last_unknown_kid_read.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < UNKNOWN_KID_REFRESH) {
                return;
            }
            *last = Some(Instant::now());
        }
        self.refresh(users).await;
    }

    /// Keeps the keys current for as long as the gateway runs; `first` is the `max-age` of the
    /// read made at start.
    pub fn keep_current(self: std::sync::Arc<Self>, gateway: std::sync::Arc<crate::gateway::Gateway>, first: Duration) {
        tokio::spawn(async move {
            let mut wait = first;
            loop {
                tokio::time::sleep(wait).await;
                wait = self.refresh(&gateway.users).await;
            }
        });
    }
}

/// `max-age` of a `Cache-Control` value (`no-store` and `no-cache` mean read every time: the
/// lower bound).
fn max_age(value: Option<&str>) -> Option<Duration> {
    let mut age = None;
    for directive in value?.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            age = n.trim_matches('"').parse().ok().map(Duration::from_secs);
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(max_age(Some("public, max-age=300")), Some(Duration::from_secs(300)));
        assert_eq!(max_age(Some("Max-Age=\"20\"")), Some(Duration::from_secs(20)));
        assert_eq!(max_age(Some("no-store")), Some(Duration::ZERO));
        assert_eq!(max_age(Some("public")), None);
        assert_eq!(max_age(Some("max-age=soon")), None);
        assert_eq!(max_age(None), None);
    }
}
