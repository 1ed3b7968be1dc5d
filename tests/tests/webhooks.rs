//! Webhook signatures as a receiver checks them: keygate signs (`keygate::webhook`), and
//! Standard Webhooks' own Python package (`standardwebhooks`, from PyPI, an implementation
//! nobody here wrote) verifies: with the one secret, with each secret of a rotation's overlap,
//! and never an edited payload, another secret or a stale timestamp.

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::Utc;
use keygate::webhook::{Event, EventType, message_id, new_secret, signed_headers};
use serde_json::{Value, json};

/// The Python of the webhooks virtual environment the test command installs
/// (`scripts/requirements-webhooks.txt`); without it the test fails if the test command asked
/// for every test, and is skipped otherwise, as the emulator's tests are.
fn python() -> Option<String> {
    keygate_tests::aws::required(
        "KEYGATE_WEBHOOK_PYTHON",
        "no Python with standardwebhooks (run ./scripts/test to install one)",
    )
}

/// Each case: a secret, a payload and headers; the Python package's verdict on each, in order.
fn verify_in_python(python: &str, cases: &[Value]) -> Vec<String> {
    const VERIFY: &str = r#"
import json, sys
from standardwebhooks import Webhook
for case in json.load(sys.stdin):
    try:
        Webhook(case["secret"]).verify(case["payload"], case["headers"])
        print("verified")
    except Exception as e:
        print(type(e).__name__)
"#;
    let mut child = Command::new(python)
        .args(["-c", VERIFY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the webhooks Python starts");
    child.stdin.take().unwrap().write_all(serde_json::to_string(cases).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
}

#[test]
fn standard_webhooks_python_package_verifies_what_keygate_signs() {
    let Some(python) = python() else { return };
    let now = Utc::now();
    let event = Event::new(EventType::RequestApproved, now, json!({"project_id": "P1", "request_id": "R1"})).unwrap();
    let payload = event.payload();
    let id = message_id(&event.id, "WH1");
    let (current, previous) = (new_secret(), new_secret());
    let headers = |secrets: &[&keygate::secret::SecretValue], at| -> Value {
        let h = signed_headers(&id, at, &payload, secrets).unwrap();
        Value::Object(h.into_iter().map(|(k, v)| (k.to_owned(), Value::String(v))).collect())
    };
    let case = |secret: &keygate::secret::SecretValue, payload: &str, headers: &Value| json!({"secret": secret.expose(), "payload": payload, "headers": headers});
    let one = headers(&[&current], now);
    let rotating = headers(&[&current, &previous], now);
    let stale = headers(&[&current], now - chrono::Duration::minutes(10));
    let edited = payload.replace("R1", "R2");
    let verdicts = verify_in_python(
        &python,
        &[
            case(&current, &payload, &one),
            case(&current, &payload, &rotating),
            case(&previous, &payload, &rotating),
            case(&previous, &payload, &one),
            case(&current, &edited, &one),
            case(&new_secret(), &payload, &rotating),
            case(&current, &payload, &stale),
        ],
    );
    assert_eq!(verdicts[..4], ["verified", "verified", "verified", "WebhookVerificationError"], "{verdicts:?}");
    assert!(verdicts[4..].iter().all(|v| v == "WebhookVerificationError"), "{verdicts:?}");
    assert!(!payload.contains("whsec_"), "no secret in the payload");
}
