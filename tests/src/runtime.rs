//! A minimal AWS Lambda Runtime API (the interface a Lambda's runtime polls for events), so a
//! compiled function binary can be started as Lambda starts it and fed real event JSON.

use std::collections::{HashMap, VecDeque};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Mutex, Notify, oneshot};

#[derive(Default)]
struct Shared {
    events: Mutex<VecDeque<(String, Value)>>,
    arrived: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Result<Value, Value>>>>,
    init_error: Mutex<Option<Value>>,
    /// When the function first asked for an event: the end of its initialisation.
    first_poll: std::sync::OnceLock<Instant>,
    /// Extensions registered.
    extensions: std::sync::atomic::AtomicUsize,
}

/// What a function answered to one invocation: its response, or the error it reported.
pub type Outcome = Result<Value, Value>;

pub struct RuntimeApi {
    pub address: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

async fn next(State(s): State<Arc<Shared>>) -> (HeaderMap, String) {
    s.first_poll.get_or_init(Instant::now);
    loop {
        let notified = s.arrived.notified();
        if let Some((id, event)) = s.events.lock().await.pop_front() {
            let mut headers = HeaderMap::new();
            let deadline = (std::time::SystemTime::now() + Duration::from_secs(30))
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis();
            headers.insert("lambda-runtime-aws-request-id", id.parse().expect("header"));
            headers.insert("lambda-runtime-deadline-ms", deadline.to_string().parse().expect("header"));
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:test".parse().expect("header"),
            );
            headers
                .insert("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000".parse().expect("header"));
            return (headers, event.to_string());
        }
        notified.await;
    }
}

async fn finish(s: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    if let Some(tx) = s.waiting.lock().await.remove(id) {
        let _ = tx.send(outcome);
    }
    StatusCode::ACCEPTED
}

async fn response(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    finish(&s, &id, Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))).await
}

async fn error(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    finish(&s, &id, Err(serde_json::from_slice(&body).unwrap_or(Value::Null))).await
}

/// The Extensions API's registration, as Lambda answers it: the function's no-op extension
/// (which makes Lambda send it SIGTERM before shutting it down) registers here.
async fn register_extension(State(s): State<Arc<Shared>>) -> (HeaderMap, axum::Json<Value>) {
    s.extensions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let mut headers = HeaderMap::new();
    headers.insert("lambda-extension-identifier", "test-extension".parse().expect("header"));
    (
        headers,
        axum::Json(serde_json::json!({ "functionName": "test", "functionVersion": "$LATEST", "handler": "bootstrap" })),
    )
}

/// An extension that subscribed to no event waits here until the process ends.
async fn extension_event() -> StatusCode {
    std::future::pending::<()>().await;
    StatusCode::OK
}

async fn init_error(State(s): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *s.init_error.lock().await = Some(serde_json::from_slice(&body).unwrap_or(Value::Null));
    StatusCode::ACCEPTED
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .route("/2020-01-01/extension/register", post(register_extension))
            .route("/2020-01-01/extension/event/next", get(extension_event))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = listener.local_addr().expect("address").to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { address, shared, server }
    }

    /// Hands `event` to the function and waits for its answer.
    pub async fn invoke(&self, event: Value) -> Outcome {
        let id = keygate::ids::EventId::generate().to_string();
        let (tx, rx) = oneshot::channel();
        self.shared.waiting.lock().await.insert(id.clone(), tx);
        self.shared.events.lock().await.push_back((id, event));
        self.shared.arrived.notify_waiters();
        self.shared.arrived.notify_one();
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(outcome)) => outcome,
            _ => panic!("the function did not answer; init error: {:?}", self.shared.init_error.lock().await),
        }
    }

    /// How many extensions registered (a function that wants SIGTERM registers one).
    pub fn extensions(&self) -> usize {
        self.shared.extensions.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// When a function first polled this API for an event (its initialisation was done).
    pub fn first_poll(&self) -> Option<Instant> {
        self.shared.first_poll.get().copied()
    }

    /// Starts a function binary the way Lambda does, pointed at this runtime API.
    pub fn spawn(&self, binary: &std::path::Path, env: &[(&str, String)]) -> Function {
        let started = Instant::now();
        let child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", &self.address)
            .env(
                "AWS_LAMBDA_FUNCTION_NAME",
                binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            )
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut child = child;
        let logs = Arc::new(std::sync::Mutex::new(String::new()));
        for pipe in [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    logs.lock().unwrap_or_else(|p| p.into_inner()).push_str(&format!("{line}\n"));
                }
            });
        }
        Function { child, started, logs }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A running function process, stopped on drop.
pub struct Function {
    child: Child,
    pub started: Instant,
    logs: Arc<std::sync::Mutex<String>>,
}

impl Function {
    /// What the function printed so far (its JSON logs).
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Shuts the function down as Lambda does: SIGTERM, then SIGKILL after the 500 ms a runtime
    /// with an internal extension is given. Answers whether it exited by itself in time.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                // Let the log readers take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        false
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A compiled function binary next to the test binaries (built by the test command).
pub fn function_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let dir = exe.parent().and_then(std::path::Path::parent).expect("target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p keygate-functions), or run scripts/test",
        bin.display()
    );
    bin
}

/// A function's environment as the template sets it: the signing key and its public half.
pub fn function_env(endpoint: &str, table: &str, pem: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KEYGATE_TABLE", table.to_owned()),
        ("KEYGATE_DYNAMODB_ENDPOINT", endpoint.to_owned()),
        ("KEYGATE_SES_ENDPOINT", endpoint.to_owned()),
        ("KEYGATE_MAIL_FROM", crate::aws::MAIL_FROM.to_owned()),
        ("KEYGATE_CONSOLE_URL", "https://console.example.com".to_owned()),
        ("KEYGATE_ISSUER", keygate::testing::ISSUER.to_owned()),
        ("KEYGATE_SIGNING_KEY", pem.to_owned()),
        ("KEYGATE_SIGNING_PUBLIC_KEY", crate::aws::signing_public_key(pem)),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("RUST_LOG", "info".to_owned()),
        ("KEYGATE_AWS_ATTEMPT_TIMEOUT_MS", crate::aws::EMULATOR_ATTEMPT_TIMEOUT.as_millis().to_string()),
    ]
}

/// Starts `binary` once with `env` alone, pointed at `runtime`, and waits for it to stop (a
/// function that refuses to start); answers whether it succeeded, and all it printed.
pub fn run_to_exit(binary: &std::path::Path, runtime: &RuntimeApi, env: Vec<(&str, String)>) -> (bool, String) {
    let out = Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &runtime.address)
        .envs(env)
        .output()
        .expect("the function runs");
    let printed = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    (out.status.success(), printed.into_owned())
}
