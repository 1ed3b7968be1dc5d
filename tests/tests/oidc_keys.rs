//! keygate-local signing people in with an OpenID Connect provider keeps the provider's keys
//! current: a key the provider adds is used at once (read again on an unknown `kid`, at most
//! once a minute), and a key it withdraws is refused within the answer's `max-age`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keygate::signing::KeyRing;
use keygate_tests::LocalGateway;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// One signing key of the provider: its private half and its public JWK.
struct ProviderKey {
    encoding: EncodingKey,
    jwk: Value,
    kid: String,
}

fn provider_key() -> ProviderKey {
    let pem = KeyRing::generate_pem();
    let ring = KeyRing::new("provider", &pem, &[]).unwrap();
    let jwk = ring.current_public().clone();
    ProviderKey {
        encoding: EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
        kid: jwk.kid.clone(),
        jwk: serde_json::to_value(jwk).unwrap(),
    }
}

/// A provider on 127.0.0.1: discovery, and a JWKS whose keys and `max-age` the test sets; it
/// counts the JWKS reads.
struct Provider {
    issuer: String,
    keys: Arc<Mutex<Vec<Value>>>,
    reads: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Provider {
    async fn start(max_age: u64, keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let (held, reads) = (Arc::new(Mutex::new(keys)), Arc::new(AtomicUsize::new(0)));
        let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks"),
            "authorization_endpoint": format!("{issuer}/authorize"), "token_endpoint": format!("{issuer}/token")});
        let (jwks_keys, jwks_reads) = (held.clone(), reads.clone());
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { axum::Json(discovery) }),
            )
            .route(
                "/jwks",
                axum::routing::get(move || async move {
                    jwks_reads.fetch_add(1, Ordering::SeqCst);
                    let keys = jwks_keys.lock().await.clone();
                    ([("cache-control", format!("public, max-age={max_age}"))], axum::Json(json!({ "keys": keys })))
                }),
            );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { issuer, keys: held, reads, server }
    }

    fn id_token(&self, key: &ProviderKey, kid: &str) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        let exp = chrono::Utc::now().timestamp() + 600;
        let claims =
            json!({"iss": self.issuer, "aud": "console", "sub": "ann", "email": "ann@example.com", "exp": exp});
        jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn status(gw: &LocalGateway, token: &str) -> u16 {
    gw.call("GET", "/v1/me/keys", Some(token), None).await.0
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_the_provider_adds_is_used_at_once_and_unknown_kids_read_the_keys_at_most_once_a_minute() {
    let (a, b, c) = (provider_key(), provider_key(), provider_key());
    let provider = Provider::start(3600, vec![a.jwk.clone()]).await;
    let gw = LocalGateway::start(&["--oidc-issuer", &provider.issuer, "--oidc-client-id", "console"]);
    assert_eq!(status(&gw, &provider.id_token(&a, &a.kid)).await, 200);
    assert_eq!(provider.reads.load(Ordering::SeqCst), 1, "read once at start");

    provider.keys.lock().await.push(b.jwk.clone());
    assert_eq!(status(&gw, &provider.id_token(&b, &b.kid)).await, 200, "the added key is used at once");
    assert_eq!(provider.reads.load(Ordering::SeqCst), 2, "read again for the unknown kid");

    provider.keys.lock().await.push(c.jwk.clone());
    for i in 0..20 {
        assert_eq!(status(&gw, &provider.id_token(&c, &format!("made-up-{i}"))).await, 401);
    }
    assert_eq!(status(&gw, &provider.id_token(&c, &c.kid)).await, 401, "not read again within the minute");
    assert_eq!(provider.reads.load(Ordering::SeqCst), 2, "unknown kids cannot make keygate hammer the provider");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_the_provider_withdraws_is_refused_within_its_max_age() {
    let (a, b) = (provider_key(), provider_key());
    let provider = Provider::start(1, vec![a.jwk.clone(), b.jwk.clone()]).await;
    let gw = LocalGateway::start(&["--oidc-issuer", &provider.issuer, "--oidc-client-id", "console"]);
    let (token_a, token_b) = (provider.id_token(&a, &a.kid), provider.id_token(&b, &b.kid));
    assert_eq!(status(&gw, &token_a).await, 200);
    *provider.keys.lock().await = vec![b.jwk.clone()];
    let withdrawn = tokio::time::Instant::now();
    while status(&gw, &token_a).await == 200 {
        assert!(withdrawn.elapsed() < Duration::from_secs(10), "the withdrawn key is still trusted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(&gw, &token_a).await, 401);
    assert!(
        withdrawn.elapsed() < Duration::from_secs(3),
        "refused within max-age (1 s) and a read: {:?}",
        withdrawn.elapsed()
    );
    assert_eq!(status(&gw, &token_b).await, 200, "the kept key still works");
}
