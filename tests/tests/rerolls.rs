//! A leaked key answered (issue 23): rerolls with a grace period that update every imported
//! secret, signed leak reports acted on once, per-key limits and top-ups exact under 200
//! concurrent calls; on SQLite and on the DynamoDB-compatible server the test command starts.
//! Also: the key pattern SECURITY.md publishes for secret scanners.

use std::sync::Arc;

use keygate::store::sqlite::SqliteStore;
use keygate::testing::TestApp;
use keygate_tests::{Scratch, aws, require_aws, rerolls};

fn sqlite(dir: &Scratch) -> TestApp {
    TestApp::on(Arc::new(SqliteStore::open(&dir.0.join("keygate.db")).unwrap()))
}

#[tokio::test]
async fn a_reroll_keeps_the_old_token_for_its_grace_period() {
    let dir = Scratch::new("reroll");
    rerolls::a_reroll_keeps_the_old_token_for_its_grace_period(sqlite(&dir)).await;
}

#[tokio::test]
async fn a_reroll_keeps_the_old_token_for_its_grace_period_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let store = Arc::new(aws::store(&endpoint, "reroll").await);
    rerolls::a_reroll_keeps_the_old_token_for_its_grace_period(TestApp::on(store)).await;
}

#[tokio::test]
async fn a_signed_leak_report_acts_once() {
    let dir = Scratch::new("leak");
    rerolls::a_signed_leak_report_acts_once(sqlite(&dir)).await;
}

#[tokio::test]
async fn a_signed_leak_report_acts_once_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    rerolls::a_signed_leak_report_acts_once(TestApp::on(Arc::new(aws::store(&endpoint, "leak").await))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_override_and_a_top_up_are_exact_under_concurrency() {
    let dir = Scratch::new("key-limits");
    rerolls::an_override_and_a_top_up_are_exact_under_concurrency(sqlite(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_override_and_a_top_up_are_exact_under_concurrency_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let store = Arc::new(aws::store(&endpoint, "key-limits").await);
    rerolls::an_override_and_a_top_up_are_exact_under_concurrency(TestApp::on(store)).await;
}

/// The pattern finds every keygate key (first token and rerolled ones) and no other JWT: not
/// an HS256 or RS256 one, not an EdDSA one with another `typ`, not keygate's own user tokens.
#[tokio::test]
async fn the_published_key_pattern_finds_keygate_keys_and_no_other_jwt() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let pattern = regex::Regex::new(keygate::scanning::KEY_PATTERN).unwrap();
    let security = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../SECURITY.md")).unwrap();
    assert!(security.contains(keygate::scanning::KEY_PATTERN), "SECURITY.md publishes the pattern as the code has it");

    let t = TestApp::new();
    let story = keygate_tests::story::pending_request(&t.app).await;
    let key = t.app.approve(&story.owner, &story.project, &story.request).await.unwrap().key.id;
    let mut tokens = vec![t.app.my_key_token(&story.holder, &key).await.unwrap().token.expose().to_owned()];
    for _ in 0..3 {
        let input = keygate::service::RerollInput { grace_seconds: Some(0) };
        let reroll = t.app.reroll(&story.holder, &story.project, &key, input).await.unwrap();
        tokens.push(reroll.token.unwrap().expose().to_owned());
    }
    for token in &tokens {
        let line = format!("API_KEY = \"{token}\"\n");
        let found = pattern.find(&line).map(|m| m.as_str());
        assert_eq!(found, Some(token.as_str()), "the whole key, in a line of code");
    }

    let jwt = |header: serde_json::Value| {
        let claims = serde_json::json!({"sub": "ann", "iat": 1_800_000_000, "aud": "project:x", "jti": "k"});
        let signature = URL_SAFE_NO_PAD.encode([7u8; 64]);
        format!(
            "{}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    };
    let others = [
        jwt(serde_json::json!({"alg": "HS256", "typ": "JWT"})),
        jwt(serde_json::json!({"typ": "JWT", "alg": "EdDSA", "kid": "abc"})),
        jwt(serde_json::json!({"alg": "EdDSA", "typ": "apikey+jwt", "kid": "abc"})),
        jwt(serde_json::json!({"typ": "at+jwt", "alg": "RS256", "kid": "abc"})),
        keygate::user_token::UserTokens::new(&keygate::user_token::UserTokens::generate_secret())
            .mint("ann", "ann@example.com", None, chrono::Duration::hours(1))
            .unwrap(),
    ];
    for other in &others {
        assert!(!pattern.is_match(other), "not a keygate key: {other}");
    }
}
