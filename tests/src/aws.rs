//! The DynamoDB- and SES-compatible server the test command starts (moto, on 127.0.0.1): its
//! endpoint, a table of one's own per test, and the mail it received.

use keygate::config::{Clients, Config, SigningKeySource};
use keygate::store::dynamodb::DynamoStore;
use serde_json::Value;

/// The sender every test uses; its domain is verified with SES first.
pub const MAIL_FROM: &str = "keygate@example.com";

/// The emulator's endpoint. Without one, a test returns early, unless the test command asked
/// for every test to run (`KEYGATE_REQUIRE_AWS_TESTS=1`), in which case it fails: the test
/// command never skips silently.
pub fn endpoint() -> Option<String> {
    required("KEYGATE_TEST_AWS_ENDPOINT", "no DynamoDB/SES emulator (run ./scripts/test to start one)")
}

/// The value of `var`, something the test command provides: without it a test fails under the
/// test command (`KEYGATE_REQUIRE_AWS_TESTS=1`), and is skipped with `missing` said otherwise.
pub fn required(var: &str, missing: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(e) if !e.is_empty() => Some(e),
        _ if std::env::var("KEYGATE_REQUIRE_AWS_TESTS").is_ok_and(|v| v == "1") => {
            panic!("{var} is not set: run the tests with ./scripts/test")
        }
        _ => {
            eprintln!("skipped: {missing}");
            None
        }
    }
}

/// `let Some(endpoint) = require_aws!() else { return };`
#[macro_export]
macro_rules! require_aws {
    () => {
        $crate::aws::endpoint()
    };
}

/// The emulator processes one request at a time, so under the tests' concurrent load a request
/// can wait seconds in its queue: the tests give each attempt this long (AWS itself: 2 s).
pub const EMULATOR_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub fn unique_table(label: &str) -> String {
    format!("keygate-{label}-{}", keygate::ids::EventId::generate().as_str().to_lowercase())
}

pub fn config(endpoint: &str, table: &str) -> Config {
    Config {
        table: table.to_owned(),
        dynamodb_endpoint: Some(endpoint.to_owned()),
        ses_endpoint: Some(endpoint.to_owned()),
        mail_from: MAIL_FROM.into(),
        console_url: "http://127.0.0.1:3000".into(),
        issuer: keygate::testing::ISSUER.into(),
        signing_key: SigningKeySource::Pem(String::new()),
        signing_public_key: None,
        retired_public_keys: Vec::new(),
        usage_shards: 1,
        refusal_flush: keygate::config::DEFAULT_REFUSAL_FLUSH,
        metrics_namespace: keygate::figures::NAMESPACE.into(),
        scanning: Default::default(),
        currency: Default::default(),
        tls_roots: Default::default(),
        aws_timeouts: keygate::config::AwsTimeouts::with_attempt(EMULATOR_ATTEMPT_TIMEOUT),
        region: None,
        webhooks: Default::default(),
    }
}

/// `KEYGATE_SIGNING_PUBLIC_KEY` for the signing key `pem`: its public JWK, as deployed.
pub fn signing_public_key(pem: &str) -> String {
    let ring = keygate::signing::KeyRing::new(keygate::testing::ISSUER, pem, &[]).expect("a valid signing key");
    serde_json::to_string(ring.current_public()).expect("a JWK serializes")
}

pub async fn clients(endpoint: &str) -> Clients {
    Clients::new(&config(endpoint, "")).await
}

/// A fresh table of its own on the emulator.
pub async fn store(endpoint: &str, label: &str) -> DynamoStore {
    let store = DynamoStore::new(clients(endpoint).await.dynamodb, unique_table(label));
    store.ensure_table().await.expect("the emulator creates tables");
    store
}

/// Lets SES send from [`MAIL_FROM`] (the emulator, like SES, refuses unverified senders).
pub async fn verify_sender(endpoint: &str) {
    let ses = clients(endpoint).await.ses;
    let result = ses.create_email_identity().email_identity("example.com").send().await;
    if let Err(e) = result {
        let already = e.as_service_error().is_some_and(|e| e.is_already_exists_exception());
        assert!(already, "cannot verify the sender: {}", aws_sdk_sesv2::error::DisplayErrorContext(e));
    }
}

/// Every message the emulator's SES accepted, as `To:`, `Subject:` and body lines (the
/// emulator keeps only the HTML part of a message that has both).
pub async fn sent_mail(endpoint: &str) -> Vec<String> {
    let data: Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .expect("the emulator answers")
        .json()
        .await
        .expect("JSON");
    let messages = data["ses"]["Message"].as_array().cloned().unwrap_or_default();
    messages
        .iter()
        .flat_map(|m| {
            let to: Vec<String> = m["destinations"]["ToAddresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            to.into_iter().map(move |to| {
                format!(
                    "To: {to}\r\nFrom: {}\r\nSubject: {}\r\n\r\n{}",
                    m["source"].as_str().unwrap_or_default(),
                    m["subject"].as_str().unwrap_or_default(),
                    m["body"].as_str().unwrap_or_default()
                )
            })
        })
        .collect()
}
