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

/// A receiver on 127.0.0.1 written with Python's `standardwebhooks`: `/ok` verifies each message
/// with the secret it was given and answers 204 (400 if it does not verify), `/slow` too after
/// 0.3 s, `/redirect` answers
/// 302 to `/landed`, `/hang` answers after 5 s, `/big` answers 1 MB. It prints one line per
/// request: `verified <webhook-id> <type>`, `refused <why>`, or the path it served.
struct Receiver {
    child: std::process::Child,
    port: u16,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Receiver {
    fn start(python: &str, secret: &str) -> Self {
        Self::start_on(python, secret, 0)
    }

    /// On `port` (0: a free one).
    fn start_on(python: &str, secret: &str, port: u16) -> Self {
        const SERVER: &str = r#"
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from standardwebhooks import Webhook
hook = Webhook(sys.argv[1])
lock = threading.Lock()
def say(*words):
    # Messages arrive side by side: one whole line at a time.
    with lock:
        print(*words, flush=True)
class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path in ("/ok", "/slow"):
            if self.path == "/slow":
                time.sleep(0.3)
            try:
                event = hook.verify(body, dict(self.headers))
                say("verified", self.headers["webhook-id"], event["type"], json.dumps(event["data"], sort_keys=True))
                self.send_response(204); self.end_headers()
            except Exception as e:
                say("refused", type(e).__name__)
                self.send_response(400); self.end_headers()
            return
        say(self.path)
        if self.path == "/redirect":
            self.send_response(302); self.send_header("location", "/landed"); self.end_headers()
        elif self.path == "/hang":
            time.sleep(5); self.send_response(204); self.end_headers()
        elif self.path == "/big":
            self.send_response(200); self.send_header("content-length", str(1 << 20)); self.end_headers()
            self.wfile.write(b"x" * (1 << 20))
        else:
            self.send_response(404); self.end_headers()
server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2]) if len(sys.argv) > 2 else 0), Handler)
print("port", server.server_address[1], flush=True)
server.serve_forever()
"#;
        let mut child = Command::new(python)
            .args(["-c", SERVER, secret, &port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the receiver starts");
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let first = lines.recv_timeout(std::time::Duration::from_secs(20)).expect("the receiver says its port");
        let port = first.strip_prefix("port ").and_then(|p| p.parse().ok()).expect("port N");
        Self { child, port, lines }
    }

    /// What it printed since last asked, after a moment for a request still arriving.
    fn heard(&self) -> Vec<String> {
        std::thread::sleep(std::time::Duration::from_millis(300));
        self.lines.try_iter().collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One attempt per case, as the delivery workers will make them: delivered and verified by the
/// Python package; a redirect not followed; a receiver that hangs cut at the time limit; a large
/// answer not read whole; and on AWS's rules, the loopback refused before any connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_attempt_delivers_signed_or_fails_in_words_and_never_goes_where_it_may_not() {
    use keygate::webhook::UrlPolicy;
    use keygate::webhook_delivery::{Outcome, Sender};
    let Some(python) = python() else { return };
    let secret = new_secret();
    let receiver = Receiver::start(&python, secret.expose());
    let base = format!("http://127.0.0.1:{}", receiver.port);
    let local =
        Sender::with_timeout(UrlPolicy { local: true, ..Default::default() }, std::time::Duration::from_secs(1));
    let event = Event::new(EventType::KeyRevoked, Utc::now(), json!({"key_id": "K1", "project_id": "P1"})).unwrap();
    let payload = event.payload();
    let id = message_id(&event.id, "WH1");
    macro_rules! send {
        ($sender:expr, $url:expr) => {
            $sender.send(&$url, &id, Utc::now(), &payload, &[&secret]).await
        };
    }

    let ok = send!(local, format!("{base}/ok"));
    assert_eq!(ok.outcome, Outcome::Delivered { status: 204 });
    assert_eq!(receiver.heard(), [format!(r#"verified {id} key.revoked {{"key_id": "K1", "project_id": "P1"}}"#)]);
    let by_name = send!(local, format!("http://localhost:{}/ok", receiver.port));
    assert_eq!(by_name.outcome, Outcome::Delivered { status: 204 }, "a name, resolved and checked at connection");
    assert_eq!(receiver.heard().len(), 1);

    let redirected = send!(local, format!("{base}/redirect"));
    assert_eq!(redirected.outcome, Outcome::Rejected { status: 302 });
    assert_eq!(receiver.heard(), ["/redirect"], "where it pointed is not called");

    let hung = send!(local, format!("{base}/hang"));
    assert_eq!(hung.outcome, Outcome::TimedOut);
    assert!(hung.took < std::time::Duration::from_secs(3), "cut at the time limit: {:?}", hung.took);

    let big = send!(local, format!("{base}/big"));
    assert_eq!(big.outcome, Outcome::Delivered { status: 200 }, "a large answer is read in part and dropped");
    receiver.heard();

    let aws = Sender::with_timeout(UrlPolicy::default(), std::time::Duration::from_secs(1));
    for (url, rule) in [
        (format!("{base}/ok"), "must use https"),
        (format!("https://127.0.0.1:{}/ok", receiver.port), "a loopback address"),
        (format!("https://localhost:{}/ok", receiver.port), "localhost is a loopback address"),
        ("https://169.254.169.254/latest/meta-data/".to_owned(), "the cloud metadata address"),
    ] {
        match send!(aws, url.clone()).outcome {
            Outcome::Refused { why } => assert!(why.contains(rule), "{url}: {why}"),
            other => panic!("{url}: {other:?}"),
        }
    }
    assert_eq!(receiver.heard(), Vec::<String>::new(), "nothing refused reached the receiver");
    assert!(!payload.contains(secret.expose()));
}

/// The verified messages heard within `within`, until `n` of them: (webhook-id, type, data).
fn verified(receiver: &Receiver, n: usize, within: std::time::Duration) -> Vec<(String, String, Value)> {
    let deadline = std::time::Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n && std::time::Instant::now() < deadline {
        if let Ok(line) = receiver.lines.recv_timeout(std::time::Duration::from_millis(100)) {
            let mut parts = line.splitn(4, ' ');
            assert_eq!(parts.next(), Some("verified"), "every message verifies: {line}");
            let (id, kind, data) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
            let data: Value = serde_json::from_str(data).unwrap();
            // Every event is what the documentation (the OpenAPI document's schemas) says.
            let event_type: EventType = serde_json::from_value(json!(kind)).expect("a known type");
            event_type.check_data(&data).unwrap_or_else(|e| panic!("undocumented payload: {e}: {data}"));
            got.push((id.to_owned(), kind.to_owned(), data));
        }
    }
    got
}

/// keygate-local with `--webhook-url`: every change of every project reaches the platform's
/// endpoint signed, verified by Python's `standardwebhooks`; a receiver down at first gets every
/// event once it is up (the first retry comes within seconds), each once by its webhook-id; a
/// change made while it is up arrives within 2 s; no token or secret in a payload or the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygate_local_sends_every_change_to_the_deployment_endpoint_once() {
    let Some(python) = python() else { return };
    every_change_once(&python, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygate_local_sends_every_change_to_the_deployment_endpoint_once_on_dynamodb() {
    let Some(python) = python() else { return };
    let Some(endpoint) = keygate_tests::require_aws!() else { return };
    every_change_once(&python, Some(&endpoint)).await;
}

/// A secret of the test's own, in a file for `--webhook-secret-file`.
fn secret_in_file() -> (keygate::secret::SecretValue, keygate_tests::Scratch, String) {
    let secret = new_secret();
    let dir = keygate_tests::Scratch::new("webhook-secret");
    let file = dir.0.join("webhook-secret");
    std::fs::write(&file, secret.expose()).unwrap();
    (secret, dir, file.to_str().unwrap().to_owned())
}

/// keygate-local sending to `url`, on SQLite, or on the emulator's DynamoDB at `aws`.
fn gateway_sending_to(url: &str, secret_file: &str, aws: Option<&str>) -> keygate_tests::LocalGateway {
    let flags = ["--webhook-url", url, "--webhook-secret-file", secret_file];
    match aws {
        None => keygate_tests::LocalGateway::start(&flags),
        Some(endpoint) => {
            let table = keygate_tests::aws::unique_table("webhooks");
            keygate_tests::LocalGateway::start_on_aws_with(endpoint, &table, &flags)
        }
    }
}

async fn every_change_once(python: &str, aws: Option<&str>) {
    let (secret, _dir, secret_file) = secret_in_file();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/ok");
    let gateway = gateway_sending_to(&url, &secret_file, aws);
    assert!(gateway.logs().contains(&format!("every event to {url}")), "{}", gateway.logs());

    // Changes while nobody listens: a template, a request, its approval, a revocation.
    let (ann, bob) = (gateway.token("ann"), gateway.token("bob"));
    let template = json!({"name": "Forecast API", "role": "reader", "price_per_request": 3});
    let (p, t) = gateway.project_with_template(&ann, "Weather", ("reader", &["project_view"]), template).await;
    let (key, token) = gateway.issue_key(&ann, &bob, &p, &t).await;
    let k = key["id"].as_str().unwrap();
    let (status, _) = gateway.call("DELETE", &format!("/v1/projects/{p}/keys/{k}"), Some(&ann), None).await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;

    // The receiver comes up: the first retry (5 s after each failed attempt) delivers them all.
    let receiver = Receiver::start_on(python, secret.expose(), port);
    let heard = verified(&receiver, 4, std::time::Duration::from_secs(15));
    // Retried independently, each on its own schedule: delivery after a failure keeps no order
    // (each payload carries its change's timestamp), but every event arrives, once.
    let mut kinds: Vec<&str> = heard.iter().map(|(_, kind, _)| kind.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["key.revoked", "request.approved", "request.created", "template.created"], "{heard:?}");
    let ids: std::collections::BTreeSet<&str> = heard.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids.len(), 4, "one webhook-id per event: {heard:?}");
    let of = |kind: &str| &heard.iter().find(|h| h.1 == kind).unwrap().2;
    let approved = of("request.approved");
    assert_eq!(
        (&approved["project_id"], &approved["key_id"], &approved["user_id"]),
        (&json!(p), &json!(k), &json!("bob"))
    );
    assert_eq!((&of("template.created")["template_id"], &of("key.revoked")["key_id"]), (&json!(t), &json!(k)));

    // Up: a change arrives within 2 s, once.
    let started = std::time::Instant::now();
    let (status, _) = gateway
        .call("PATCH", &format!("/v1/projects/{p}/templates/{t}"), Some(&ann), Some(json!({"price_per_request": 4})))
        .await;
    assert_eq!(status, 200);
    let changed = verified(&receiver, 1, std::time::Duration::from_secs(2));
    assert_eq!(changed.iter().map(|(_, kind, _)| kind.as_str()).collect::<Vec<_>>(), ["template.changed"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(receiver.heard(), Vec::<String>::new(), "nothing twice");

    let everything = format!("{heard:?}{changed:?}");
    assert!(!everything.contains(&token) && !everything.contains("whsec_"), "no token or secret in a payload");
    gateway.assert_no_secrets_logged(&[&token, secret.expose(), &ann]);
}

/// An endpoint that hangs holds up its own deliveries, never an operation: a request and its
/// approval answer in their usual time while the worker waits on the endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_hangs_does_not_slow_an_operation() {
    let Some(python) = python() else { return };
    let (secret, _dir, secret_file) = secret_in_file();
    let receiver = Receiver::start(&python, secret.expose());
    let gateway = gateway_sending_to(&format!("http://127.0.0.1:{}/hang", receiver.port), &secret_file, None);
    let (ann, bob) = (gateway.token("ann"), gateway.token("bob"));
    let template = json!({"name": "Forecast API", "role": "reader"});
    let (p, t) = gateway.project_with_template(&ann, "Weather", ("reader", &["project_view"]), template).await;
    // The template's event is being sent to the endpoint, which answers after 5 s.
    let line = receiver.lines.recv_timeout(std::time::Duration::from_secs(5)).expect("the endpoint is called");
    assert_eq!(line, "/hang");
    let started = std::time::Instant::now();
    gateway.issue_key(&ann, &bob, &p, &t).await;
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(2),
        "request, approval and token took {took:?} while the endpoint hangs"
    );
}

/// A project's own endpoints on keygate-local, over the API: the secret shown once and never
/// listed; only the types asked for, only the project's events; a rotated secret verifies
/// beside the old one, then alone; a deleted endpoint hears nothing more; URLs that would reach
/// inside refused with the rule they break.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_endpoint_hears_its_projects_events_of_the_types_it_asked_for() {
    let Some(python) = python() else { return };
    let gateway = keygate_tests::LocalGateway::start(&[]);
    let (ann, bob) = (gateway.token("ann"), gateway.token("bob"));
    let template = json!({"name": "Forecast API", "role": "reader"});
    let (p, t) = gateway.project_with_template(&ann, "Weather", ("reader", &["project_view"]), template.clone()).await;
    let (other, other_t) = gateway.project_with_template(&ann, "Other", ("reader", &["project_view"]), template).await;
    let hooks = format!("/v1/projects/{p}/webhooks");

    for (url, rule) in [
        ("http://hooks.example.com/in", "plain http only to the loopback"),
        ("https://10.0.0.7/in", "a private address"),
        ("https://169.254.169.254/latest/meta-data/", "the cloud metadata address"),
        ("https://user:pw@hooks.example.com/in", "user name or password"),
        ("ftp://hooks.example.com/in", "must use https"),
        ("https://keygate-test.invalid/in", "does not resolve"),
    ] {
        let (status, problem) = gateway.call("POST", &hooks, Some(&ann), Some(json!({"url": url}))).await;
        assert_eq!(status, 422, "{url}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "url", "{url}: {problem}");
        assert!(problem["errors"][0]["message"].as_str().unwrap().contains(rule), "{url}: {problem}");
    }
    let (status, problem) = gateway
        .call(
            "POST",
            &hooks,
            Some(&ann),
            Some(json!({"url": "https://hooks.example.com/in", "events": ["key.created"]})),
        )
        .await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (422, Some("events")), "{problem}");
    let (status, _) =
        gateway.call("POST", &hooks, Some(&bob), Some(json!({"url": "https://hooks.example.com/in"}))).await;
    assert_eq!(status, 403, "a member who does not manage the project");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let events = json!(["request.approved", "key.revoked"]);
    let body = json!({"url": format!("http://127.0.0.1:{port}/ok"), "events": events});
    let (status, added) = gateway.call("POST", &hooks, Some(&ann), Some(body)).await;
    assert_eq!(status, 201, "{added}");
    let old_secret = added["secret"].as_str().unwrap().to_owned();
    assert!(old_secret.starts_with("whsec_"));
    let id = added["webhook"]["id"].as_str().unwrap().to_owned();
    let (_, listed) = gateway.call("GET", &hooks, Some(&ann), None).await;
    assert_eq!((listed["items"][0]["id"].as_str(), &listed["items"][0]["events"]), (Some(id.as_str()), &events));
    assert!(!listed.to_string().contains("whsec_"), "no secret in the list: {listed}");

    // Its project's request and approval, the other project's approval: only its own approval.
    let receiver = Receiver::start_on(&python, &old_secret, port);
    let (key, _) = gateway.issue_key(&ann, &bob, &p, &t).await;
    gateway.issue_key(&ann, &bob, &other, &other_t).await;
    let heard = verified(&receiver, 2, std::time::Duration::from_secs(3));
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!((heard[0].1.as_str(), &heard[0].2["project_id"]), ("request.approved", &json!(p)));
    assert!(heard[0].0.ends_with(&id), "the webhook-id names the event and the endpoint: {}", heard[0].0);

    // A new secret: the receiver that knows only the old one still verifies during the overlap.
    let (status, rotated) = gateway.call("POST", &format!("{hooks}/{id}/rotate"), Some(&ann), None).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    assert!(rotated["webhook"]["previous_secret_until"].is_string(), "{rotated}");
    let k = key["id"].as_str().unwrap();
    let (status, _) = gateway.call("DELETE", &format!("/v1/projects/{p}/keys/{k}"), Some(&ann), None).await;
    assert_eq!(status, 200);
    let heard = verified(&receiver, 1, std::time::Duration::from_secs(3));
    assert_eq!(heard.iter().map(|h| h.1.as_str()).collect::<Vec<_>>(), ["key.revoked"]);
    drop(receiver);
    // And a receiver that knows only the new one verifies too.
    let receiver = Receiver::start_on(&python, &new_secret, port);
    let (second, _) = gateway.issue_key(&ann, &bob, &p, &t).await;
    let heard = verified(&receiver, 1, std::time::Duration::from_secs(3));
    assert_eq!(heard.iter().map(|h| h.1.as_str()).collect::<Vec<_>>(), ["request.approved"]);

    // Disabled, then deleted: nothing more.
    let (status, edited) =
        gateway.call("PATCH", &format!("{hooks}/{id}"), Some(&ann), Some(json!({"enabled": false}))).await;
    assert_eq!((status, &edited["enabled"]), (200, &json!(false)), "{edited}");
    let s = second["id"].as_str().unwrap();
    gateway.call("DELETE", &format!("/v1/projects/{p}/keys/{s}"), Some(&ann), None).await;
    let (status, _) = gateway.call("DELETE", &format!("{hooks}/{id}"), Some(&ann), None).await;
    assert_eq!(status, 200);
    gateway.issue_key(&ann, &bob, &p, &t).await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(receiver.heard(), Vec::<String>::new(), "a disabled or deleted endpoint hears nothing");
    let (_, listed) = gateway.call("GET", &hooks, Some(&ann), None).await;
    assert_eq!(listed["items"], json!([]));
    gateway.assert_no_secrets_logged(&[&old_secret, &new_secret]);
}

/// An endpoint's deliveries as its managers see them: one that failed (nobody listening) is
/// listed as retrying with the outcome in words; once the receiver is up, Retry sends it at
/// once, with the same webhook-id, and the list says delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_listed_and_retried_with_the_same_id() {
    let Some(python) = python() else { return };
    let gateway = keygate_tests::LocalGateway::start(&[]);
    let (ann, bob) = (gateway.token("ann"), gateway.token("bob"));
    let template = json!({"name": "Forecast API", "role": "reader"});
    let (p, t) = gateway.project_with_template(&ann, "Weather", ("reader", &["project_view"]), template).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let body = json!({"url": format!("http://127.0.0.1:{port}/ok"), "events": ["request.approved"]});
    let (_, added) = gateway.call("POST", &format!("/v1/projects/{p}/webhooks"), Some(&ann), Some(body)).await;
    let (id, secret) = (added["webhook"]["id"].as_str().unwrap(), added["secret"].as_str().unwrap());
    let deliveries = format!("/v1/projects/{p}/webhooks/{id}/deliveries");
    gateway.issue_key(&ann, &bob, &p, &t).await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let failed = loop {
        let (status, listed) = gateway.call("GET", &deliveries, Some(&ann), None).await;
        assert_eq!(status, 200, "{listed}");
        if listed["items"].as_array().is_some_and(|i| !i.is_empty()) || std::time::Instant::now() > deadline {
            break listed["items"][0].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        (&failed["state"], &failed["attempts"], &failed["event"]["type"]),
        (&json!("retrying"), &json!(1), &json!("request.approved")),
        "{failed}"
    );
    assert!(failed["last_outcome"].as_str().unwrap().starts_with("unreachable"), "{failed}");
    assert!(failed["next_at"].is_string(), "{failed}");

    let receiver = Receiver::start_on(&python, secret, port);
    let d = failed["id"].as_str().unwrap();
    let (status, retried) = gateway.call("POST", &format!("{deliveries}/{d}/retry"), Some(&ann), None).await;
    assert_eq!(status, 202, "{retried}");
    let heard = verified(&receiver, 1, std::time::Duration::from_secs(2));
    assert_eq!(heard.len(), 1, "sent within 2 s of Retry, not 5 s later");
    assert_eq!(heard[0].0, failed["message_id"].as_str().unwrap(), "the same webhook-id");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, listed) = gateway.call("GET", &deliveries, Some(&ann), None).await;
    // Its attempts count the failed one too (2), unless the event had left the queue and the
    // retry queued it anew (1).
    assert_eq!(listed["items"][0]["state"], json!("delivered"), "{listed}");
    assert!((1..=2).contains(&listed["items"][0]["attempts"].as_i64().unwrap()), "{listed}");
    let (status, _) = gateway
        .call("POST", &format!("{deliveries}/{}/retry", keygate::ids::DeliveryId::generate()), Some(&ann), None)
        .await;
    assert_eq!(status, 404);
}

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A DynamoDB stream batch as Lambda hands it to the delivery function: one outbox insert,
/// keys only, as the template's filter lets through.
fn stream_batch(table: &str) -> Value {
    json!({"Records": [{
        "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"pk": {"S": keygate::store::layout::WEBHOOK_EVENTS_PK}, "sk": {"S": "evt_01"}},
            "SequenceNumber": "100", "SizeBytes": 60, "StreamViewType": "KEYS_ONLY"
        },
        "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2026-12-05T00:00:00.000")
    }]})
}

/// The delivery function's environment as the template sets it (the rules of keygate-local, so
/// that it may send to the test's receiver on 127.0.0.1), sending to `url` signed with `secret`.
fn delivery_env(
    endpoint: &str,
    table: &str,
    pem: &str,
    url: &str,
    secret: &keygate::secret::SecretValue,
) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&str, String)> = keygate_tests::runtime::function_env(endpoint, table, pem)
        .into_iter()
        .filter(|(k, _)| *k != "KEYGATE_SIGNING_KEY")
        .collect();
    env.extend([
        ("KEYGATE_WEBHOOKS", "local".to_owned()),
        ("KEYGATE_WEBHOOK_URL", url.to_owned()),
        ("KEYGATE_WEBHOOK_SECRET", secret.expose().to_owned()),
    ]);
    env
}

/// An application that queues webhook events, on a table of its own on the emulator, with its
/// table's name and signing key (for the functions started on it).
async fn queueing_on_emulator(endpoint: &str, label: &str) -> (keygate::App, String, String) {
    let store = keygate_tests::aws::store(endpoint, label).await;
    let table = store.table().to_owned();
    let pem = keygate::signing::KeyRing::generate_pem();
    let mut t = keygate::testing::TestApp::with_key(std::sync::Arc::new(store), &pem);
    t.app.settings.webhook_events = true;
    (t.app, table, pem)
}

/// The compiled `webhook-delivery` function, started as Lambda starts it (a Runtime API served
/// by the test), on the DynamoDB-compatible server, configured only through its environment:
/// woken by a stream batch, it sends each change's event to the deployment's endpoint, signed
/// (Python's `standardwebhooks` verifies); the receiver is down at first, and the retry 5 s
/// later, within the same invocation, reaches it; the schedule's next invocation finds nothing
/// left to send; no secret in its logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_compiled_delivery_function_sends_what_the_stream_wakes_it_for() {
    use keygate_tests::runtime::{RuntimeApi, function_binary};
    let Some(python) = python() else { return };
    let Some(endpoint) = keygate_tests::require_aws!() else { return };
    let (app, table, pem) = queueing_on_emulator(&endpoint, "webhook-fn").await;
    let s = keygate_tests::story::pending_request(&app).await;
    app.approve(&s.owner, &s.project, &s.request).await.unwrap();

    let (port, secret) = (free_port(), new_secret());
    let env = delivery_env(&endpoint, &table, &pem, &format!("http://127.0.0.1:{port}/ok"), &secret);
    let runtime = RuntimeApi::start().await;
    let function = runtime.spawn(&function_binary("webhook-delivery"), &env);
    let up = {
        let (python, secret) = (python.clone(), secret.expose().to_owned());
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(2));
            Receiver::start_on(&python, &secret, port)
        })
    };
    let started = std::time::Instant::now();
    let answer = runtime.invoke(stream_batch(&table)).await.expect("an answer, never a crash");
    let took = started.elapsed();
    let receiver = up.join().expect("the receiver starts");
    assert_eq!(answer["failed"], 3, "the first attempts found the receiver down: {answer}");
    assert_eq!(answer["delivered"], 3, "and the retry 5 s later reached it: {answer}");
    assert!(took >= std::time::Duration::from_secs(4), "the retry waited for its time: {took:?}");
    let got = verified(&receiver, 3, std::time::Duration::from_secs(5));
    let mut kinds: Vec<&str> = got.iter().map(|(_, kind, _)| kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["request.approved", "request.created", "template.created"], "{got:?}");
    let ids: std::collections::BTreeSet<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids.len(), 3, "one webhook-id per event: {got:?}");
    assert!(got.iter().all(|(_, _, data)| data["project_id"] == s.project.as_str()), "{got:?}");

    let again = runtime.invoke(json!({"source": "aws.scheduler"})).await.expect("an answer");
    assert_eq!((again["delivered"].as_u64(), again["failed"].as_u64()), (Some(0), Some(0)), "{again}");
    assert_eq!(receiver.heard(), Vec::<String>::new(), "nothing is sent twice");
    let logs = function.logs();
    assert!(logs.contains("webhook delivery"), "{logs}");
    assert!(!logs.contains(secret.expose()), "no secret in the logs");
    assert!(!logs.contains(&pem), "no key in the logs");
}

/// Two instances of the compiled delivery function (two processes, as Lambda runs them side by
/// side) woken at once on one table, both sending: each event is claimed by one, so the
/// receiver hears every event exactly once between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_delivery_functions_on_one_table_send_each_event_once() {
    use keygate_tests::runtime::{RuntimeApi, function_binary};
    let Some(python) = python() else { return };
    let Some(endpoint) = keygate_tests::require_aws!() else { return };
    let (app, table, pem) = queueing_on_emulator(&endpoint, "webhook-two").await;
    let s = keygate_tests::story::pending_request(&app).await;
    for n in 0..38 {
        let template = serde_json::from_value(json!({"name": format!("Extra {n}"), "role": "reader"})).unwrap();
        app.create_template(&s.owner, &s.project, template).await.unwrap();
    }
    let events = 40;

    let secret = new_secret();
    let receiver = Receiver::start(&python, secret.expose());
    // A receiver that takes its time, so that both functions are at work at once.
    let env = delivery_env(&endpoint, &table, &pem, &format!("http://127.0.0.1:{}/slow", receiver.port), &secret);
    let (one, two) = (RuntimeApi::start().await, RuntimeApi::start().await);
    let _functions =
        [one.spawn(&function_binary("webhook-delivery"), &env), two.spawn(&function_binary("webhook-delivery"), &env)];
    let (a, b) = tokio::join!(one.invoke(stream_batch(&table)), two.invoke(stream_batch(&table)));
    let (a, b) = (a.expect("an answer"), b.expect("an answer"));
    let sent = a["delivered"].as_u64().unwrap() + b["delivered"].as_u64().unwrap();
    eprintln!("delivery functions: {a} / {b}");
    assert_eq!(sent, events, "between them, each event once: {a} {b}");
    assert!(a["delivered"].as_u64() > Some(0) && b["delivered"].as_u64() > Some(0), "both sent: {a} {b}");
    let got = verified(&receiver, events as usize, std::time::Duration::from_secs(10));
    let ids: std::collections::BTreeSet<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!((got.len(), ids.len()), (events as usize, events as usize), "{got:?}");
    assert_eq!(receiver.heard(), Vec::<String>::new(), "nothing twice");
}

/// A test event on demand, and an endpoint that fails for 3 days, on SQLite with a clock the
/// test moves: the test event goes to its endpoint alone, whatever types it asked for; each
/// failure is counted in the figures; when its delivery is given up after 3 days of failures,
/// the endpoint is disabled, says why, and the project's owner is mailed; enabled again, it
/// starts afresh, and the next test event reaches a receiver that verifies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_event_on_demand_and_an_endpoint_failing_for_3_days_disabled_and_its_owner_mailed() {
    use keygate::webhook::{EndpointInput, UrlPolicy};
    use keygate::webhook_delivery::Sender;
    let Some(python) = python() else { return };
    let dir = keygate_tests::Scratch::new("webhook-disable");
    let store = keygate::store::sqlite::SqliteStore::open(&dir.0.join("keygate.db")).unwrap();
    let mut t = keygate::testing::TestApp::on(std::sync::Arc::new(store));
    let policy = UrlPolicy { local: true, ..Default::default() };
    t.app.settings.webhook_events = true;
    t.app.settings.webhook_policy = Some(policy.clone());
    let (app, clock, mailer) = (t.app, t.clock, t.mailer);
    let s = keygate_tests::story::pending_request(&app).await;
    let port = free_port();
    let added = app
        .add_webhook(
            &s.owner,
            &s.project,
            EndpointInput {
                url: Some(format!("http://127.0.0.1:{port}/ok")),
                events: Some(vec!["key.revoked".into()]),
                enabled: None,
            },
        )
        .await
        .unwrap();
    let id = added.webhook.id.clone();
    let sender = Sender::with_timeout(policy, std::time::Duration::from_secs(2));
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let figures = {
        let lines = lines.clone();
        keygate::figures::Emf::writing_to(std::time::Duration::ZERO, move |l| lines.lock().unwrap().push(l.to_owned()))
    };

    // Nobody listens: the test event's first attempt fails, and is tried again later.
    let sent = app.test_webhook(&s.owner, &s.project, &id).await.unwrap();
    let round = app.deliver_webhooks(&sender, None).await.unwrap();
    round.report(&figures);
    assert_eq!((round.delivered, round.failed), (0, 1), "{round:?}");
    let deliveries = app.list_deliveries(&s.owner, &s.project, &id).await.unwrap();
    assert_eq!(deliveries.len(), 1, "only the test event: the endpoint asked for key.revoked alone");
    assert_eq!(
        (deliveries[0].event.kind.as_str(), deliveries[0].message_id.as_str()),
        ("webhook.test", sent.message_id.as_str())
    );
    assert!(deliveries[0].last_outcome.starts_with("unreachable"), "{:?}", deliveries[0].last_outcome);
    let listed = app.list_webhooks(&s.owner, &s.project).await.unwrap();
    assert!(listed[0].failing_since.is_some() && listed[0].enabled, "{listed:?}");
    let emitted = lines.lock().unwrap().join("\n");
    assert!(
        emitted.contains("\"webhook_deliveries\":1") && emitted.contains("\"outcome\":\"unreachable\""),
        "{emitted}"
    );

    // Three days later it still fails: the delivery is given up, the endpoint disabled.
    clock.set(app.now() + chrono::Duration::days(3) + chrono::Duration::minutes(1));
    let round = app.deliver_webhooks(&sender, None).await.unwrap();
    round.report(&figures);
    assert_eq!((round.given_up, round.disabled, round.failing_for_an_hour), (1, 1, 1), "{round:?}");
    let listed = app.list_webhooks(&s.owner, &s.project).await.unwrap();
    assert!(!listed[0].enabled, "{listed:?}");
    let reason = listed[0].disabled_reason.clone().unwrap_or_default();
    assert!(reason.contains("every delivery failed for 3 days"), "{reason}");
    let mail = mailer.sent().into_iter().find(|m| m.subject.contains("was disabled")).expect("the owner is mailed");
    assert_eq!(mail.to, "ann@example.com");
    assert!(mail.text.contains("127.0.0.1") && mail.text.contains("/projects/"), "{}", mail.text);
    assert!(lines.lock().unwrap().join("\n").contains("\"webhooks_failing\":1"), "the alarm's figure");
    let refused = app.test_webhook(&s.owner, &s.project, &id).await.unwrap_err();
    assert!(refused.to_string().contains("disabled"), "{refused}");

    // Back up and enabled again: a fresh start, and the test event arrives, verified.
    let receiver = Receiver::start_on(&python, added.secret.expose(), port);
    let enabled = EndpointInput { enabled: Some(true), ..Default::default() };
    let view = app.edit_webhook(&s.owner, &s.project, &id, enabled).await.unwrap();
    assert!(view.enabled && view.failing_since.is_none() && view.disabled_reason.is_none(), "{view:?}");
    let again = app.test_webhook(&s.owner, &s.project, &id).await.unwrap();
    let round = app.deliver_webhooks(&sender, None).await.unwrap();
    assert_eq!(round.delivered, 1, "{round:?}");
    let got = verified(&receiver, 1, std::time::Duration::from_secs(5));
    assert_eq!((got[0].0.as_str(), got[0].1.as_str()), (again.message_id.as_str(), "webhook.test"));
    assert_eq!(got[0].2["webhook_id"], id.as_str());
}

/// The two events no request makes: `quota.threshold`, queued by the authorizer with its 80 %
/// and 100 % notices (200 calls at once on a quota of 50 a day make exactly one of each), and
/// `key.expiring`, queued when the 7-day notice falls due (once, whatever its mail does); both
/// delivered to an endpoint that asked for them, verified by Python's `standardwebhooks`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quota_thresholds_and_expiry_notices_are_events_too_once_each() {
    use chrono::TimeZone;
    use keygate::webhook::{EndpointInput, UrlPolicy};
    let Some(python) = python() else { return };
    let dir = keygate_tests::Scratch::new("webhook-notices");
    let store = keygate::store::sqlite::SqliteStore::open(&dir.0.join("keygate.db")).unwrap();
    let t = keygate::testing::TestApp::on(std::sync::Arc::new(store));
    let (mut app, clock) = (t.app, t.clock);
    let policy = UrlPolicy { local: true, ..Default::default() };
    app.settings.webhook_events = true;
    app.settings.webhook_policy = Some(policy.clone());
    let authorizer = std::sync::Arc::new(keygate::authorizer::Authorizer::beside(&mut app));
    let day = chrono::Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap();
    clock.set(day - keygate::limits::SETTLE);
    let s = keygate_tests::story::pending_request(&app).await;
    let limits = json!({"quota": {"requests": 50, "per": "day"}, "validity_days": 10});
    keygate_tests::story::limit_template(&app, &s, limits).await;
    let key = app.approve(&s.owner, &s.project, &s.request).await.unwrap().key;
    let token = app.my_key_token(&s.holder, &key.id).await.unwrap().token;
    let secret_of = |w: &keygate::webhook::WithSecret| w.secret.expose().to_owned();
    let receiver_port = free_port();
    let added = app
        .add_webhook(
            &s.owner,
            &s.project,
            EndpointInput {
                url: Some(format!("http://127.0.0.1:{receiver_port}/ok")),
                events: Some(vec!["quota.threshold".into(), "key.expiring".into()]),
                enabled: None,
            },
        )
        .await
        .unwrap();
    let receiver = Receiver::start_on(&python, &secret_of(&added), receiver_port);
    let sender = keygate::webhook_delivery::Sender::new(policy);

    let path = format!("/api/projects/{}/data_layers/last", s.project);
    let authorization = format!("Bearer {}", token.expose());
    let calls = (0..200).map(|_| {
        let (authorizer, path, authorization) = (authorizer.clone(), path.clone(), authorization.clone());
        tokio::spawn(async move { authorizer.authorize(&http::Method::GET, &path, Some(&authorization)).await.is_ok() })
    });
    let allowed = futures_util::future::join_all(calls).await.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(allowed, 50);
    app.deliver_webhooks(&sender, None).await.unwrap();
    let mut got = verified(&receiver, 2, std::time::Duration::from_secs(5));
    got.sort_by_key(|(_, _, data)| data["percent"].as_u64());
    assert_eq!(got.iter().map(|(_, kind, _)| kind.as_str()).collect::<Vec<_>>(), ["quota.threshold"; 2], "{got:?}");
    let (eighty, full) = (&got[0].2, &got[1].2);
    assert_eq!((&eighty["percent"], &eighty["key_id"]), (&json!(80), &json!(key.id)));
    // The calls counted when the notice was queued: at least the threshold (calls at once).
    assert!(eighty["used"].as_i64().is_some_and(|u| (40..=50).contains(&u)), "{eighty}");
    assert_eq!(
        (&full["percent"], &full["used"], &full["quota"]),
        (&json!(100), &json!(50), &json!({"requests": 50, "per": "day"}))
    );
    assert_eq!(full["period"], "2026-12-02");

    // Seven days before it expires, the notice falls due: one key.expiring event.
    clock.set(key.expires_at.unwrap() - chrono::Duration::days(7) + chrono::Duration::minutes(1));
    app.retry_pending().await.unwrap();
    app.retry_pending().await.unwrap();
    app.deliver_webhooks(&sender, None).await.unwrap();
    let expiring = verified(&receiver, 1, std::time::Duration::from_secs(5));
    assert_eq!(expiring.len(), 1, "{expiring:?}");
    let (kind, data) = (&expiring[0].1, &expiring[0].2);
    assert_eq!((kind.as_str(), &data["key_id"], &data["days_left"]), ("key.expiring", &json!(key.id), &json!(7)));
    assert_eq!(data["data_layer_id"], key.data_layer_id.as_str());
    assert_eq!(receiver.heard(), Vec::<String>::new(), "each once");
    let everything = format!("{got:?}{expiring:?}");
    assert!(!everything.contains(token.expose()), "no token in a payload");
}

/// Every audited kind of change, made one after another with the deployment's endpoint
/// listening (on SQLite): each makes exactly its event, once, with the data the OpenAPI
/// document's schema describes (checked for every message by [`verified`]), verified by
/// Python's `standardwebhooks`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_makes_its_event_once_with_the_documented_payload() {
    use keygate_tests::story;
    let Some(python) = python() else { return };
    let dir = keygate_tests::Scratch::new("webhook-every-type");
    let store = keygate::store::sqlite::SqliteStore::open(&dir.0.join("keygate.db")).unwrap();
    let mut t = keygate::testing::TestApp::on(std::sync::Arc::new(store));
    t.app.settings.webhook_events = true;
    let app = t.app;
    let secret = new_secret();
    let receiver = Receiver::start(&python, secret.expose());
    let deployment = keygate::webhook::Deployment {
        url: format!("http://127.0.0.1:{}/ok", receiver.port),
        secrets: vec![secret.clone()],
    };
    let sender =
        keygate::webhook_delivery::Sender::new(keygate::webhook::UrlPolicy { local: true, ..Default::default() });
    let heard = |want: &[&str]| {
        let (app, sender, deployment, receiver) = (&app, &sender, &deployment, &receiver);
        let want: Vec<String> = want.iter().map(|w| (*w).to_owned()).collect();
        async move {
            app.deliver_webhooks(sender, Some(deployment)).await.unwrap();
            let got = verified(receiver, want.len(), std::time::Duration::from_secs(5));
            let mut kinds: Vec<String> = got.iter().map(|(_, kind, _)| kind.clone()).collect();
            kinds.sort();
            let mut sorted = want.clone();
            sorted.sort();
            assert_eq!(kinds, sorted, "{got:?}");
            assert_eq!(receiver.heard(), Vec::<String>::new(), "nothing more");
            got
        }
    };

    let s = story::pending_request(&app).await;
    heard(&["template.created", "request.created"]).await;
    app.reject(&s.owner, &s.project, &s.request, serde_json::from_value(json!({"reason": "not now"})).unwrap())
        .await
        .unwrap();
    heard(&["request.rejected"]).await;
    let s2 = story::another_request(&app, &s, 1).await;
    heard(&["request.created"]).await;
    let key = app.approve(&s2.owner, &s2.project, &s2.request).await.unwrap().key;
    let approved = heard(&["request.approved"]).await;
    assert_eq!(approved[0].2["data_layer_id"], key.data_layer_id.as_str());
    let patch = serde_json::from_value(json!({"quota": {"requests": 100, "per": "day"}})).unwrap();
    app.set_key_limits(&s2.owner, &s2.project, &key.id, patch).await.unwrap();
    heard(&["key.limits_changed"]).await;
    let grace = serde_json::from_value(json!({"grace_seconds": 60})).unwrap();
    app.reroll(&s2.holder, &s2.project, &key.id, grace).await.unwrap();
    let rerolled = heard(&["key.rerolled"]).await;
    assert!(rerolled[0].2["previous_until"].is_string(), "the old token's grace end: {:?}", rerolled[0].2);
    story::import_into_new_projects(&app, &s2.holder, &key.id, &["Client"]).await;
    heard(&["secrets.imported"]).await;
    let token = app.my_key_token(&s2.holder, &key.id).await.unwrap().token;
    let found = keygate::scanning::Found {
        token: token.clone(),
        token_type: "keygate_api_key".into(),
        url: "https://github.com/someone/repo/blob/main/config.py".into(),
        source: "content".into(),
    };
    app.leak_report("github", &found).await.unwrap();
    let leaked = heard(&["key.leak_reported"]).await;
    assert_eq!(leaked[0].2["key_id"], key.id.as_str());
    app.revoke(&s2.owner, &s2.project, &key.id).await.unwrap();
    heard(&["key.revoked"]).await;
    story::limit_template(&app, &s, json!({"price_per_request": 5})).await;
    heard(&["template.changed"]).await;
    app.delete_template(&s.owner, &s.project, &s.template, true).await.unwrap();
    let deleted = heard(&["template.deleted"]).await;
    let everything = format!("{approved:?}{rerolled:?}{leaked:?}{deleted:?}");
    assert!(!everything.contains(token.expose()) && !everything.contains("whsec_"), "no token or secret");
}
