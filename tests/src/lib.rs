//! Test support: start a real `keygate-local` process on a free port with its own data
//! directory, talk to it over HTTP, read its mail files and its captured logs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The `keygate-local` binary next to the test binaries (built by the test command), or the
/// one `KEYGATE_LOCAL_BIN` names.
pub fn local_binary() -> PathBuf {
    if let Ok(path) = std::env::var("KEYGATE_LOCAL_BIN") {
        return path.into();
    }
    sibling_binary("keygate-local", "keygate-local")
}

/// The `keygate` command line next to the test binaries (built by the test command).
pub fn cli_binary() -> PathBuf {
    sibling_binary("keygate", "keygate-cli")
}

/// The binary `name` of package `package` in the test binaries' target directory.
fn sibling_binary(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p {package}), or run scripts/test",
        bin.display()
    );
    bin
}

/// A unique scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("keygate-{label}-{}-{}", std::process::id(), ulid_like()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ulid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{nanos:x}")
}

/// Where a gateway's mail goes.
pub enum Mailbox {
    /// `.eml` files in the data directory.
    Files,
    /// The SES emulator at this endpoint.
    Ses(String),
}

/// A running `keygate-local`, stopped (and its data directory removed) on drop.
pub struct LocalGateway {
    child: Child,
    pub url: String,
    pub data: Scratch,
    logs: Arc<Mutex<String>>,
    pub http: reqwest::Client,
    pub mailbox: Mailbox,
}

impl LocalGateway {
    pub fn start(extra: &[&str]) -> Self {
        let data = Scratch::new("local");
        let mut child = Command::new(local_binary())
            .args(["--port", "0", "--data-dir"])
            .arg(&data.0)
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("keygate-local starts");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let out_logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("keygate-local listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
                out_logs.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let stderr = child.stderr.take().expect("piped stderr");
        let err_logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                err_logs.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("keygate-local did not start; its output:\n{}", logs.lock().unwrap());
            }
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        Self { child, url, data, logs, http, mailbox: Mailbox::Files }
    }

    /// A gateway on the emulator: DynamoDB table `table`, mail through SES.
    pub fn start_on_aws(endpoint: &str, table: &str) -> Self {
        Self::start_on_aws_with(endpoint, table, &[])
    }

    /// As [`LocalGateway::start_on_aws`], with more flags.
    pub fn start_on_aws_with(endpoint: &str, table: &str, extra: &[&str]) -> Self {
        let timeout = aws::EMULATOR_ATTEMPT_TIMEOUT.as_millis().to_string();
        let mut args = vec![
            "--table",
            table,
            "--dynamodb-endpoint",
            endpoint,
            "--ses",
            "--ses-endpoint",
            endpoint,
            "--mail-from",
            aws::MAIL_FROM,
            "--aws-attempt-timeout-ms",
            &timeout,
        ];
        args.extend_from_slice(extra);
        let mut gw = Self::start(&args);
        gw.mailbox = Mailbox::Ses(endpoint.to_owned());
        gw
    }

    /// A user token from `keygate-local token`, as a user would get one.
    pub fn token(&self, sub: &str) -> String {
        let out = Command::new(local_binary())
            .arg("--data-dir")
            .arg(&self.data.0)
            .args(["token", "--sub", sub, "--email", &format!("{sub}@example.com"), "--name", sub])
            .output()
            .expect("keygate-local token runs");
        assert!(out.status.success(), "token failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
    }

    /// Everything the gateway printed so far, stdout and stderr.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Fails if any of `secrets` (or the signature part of one) appears in the gateway's output.
    pub fn assert_no_secrets_logged(&self, secrets: &[&str]) {
        let logs = self.logs();
        assert!(!logs.is_empty(), "the gateway's output was captured");
        for secret in secrets {
            let signature = secret.rsplit('.').next().unwrap_or(secret);
            assert!(!logs.contains(secret) && !logs.contains(signature), "a secret reached the gateway's output");
        }
    }

    /// The `.eml` files written so far.
    pub fn mail(&self) -> Vec<String> {
        let dir = self.data.0.join("mail");
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect()
    }

    /// Mail to `address` (from files or the SES emulator), waiting briefly for it to arrive.
    pub async fn mail_to(&self, address: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let all = match &self.mailbox {
                Mailbox::Files => self.mail(),
                Mailbox::Ses(endpoint) => aws::sent_mail(endpoint).await,
            };
            let found: Vec<String> = all
                .into_iter()
                .filter(|m| {
                    m.starts_with(&format!("To: {address}\r\n")) || m.contains(&format!("\r\nTo: {address}\r\n"))
                })
                .collect();
            if !found.is_empty() || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Through the API: `owner`'s new project `name` with a role `role` of `permissions`, Bob a
    /// member with that role, and a template (`template`: its JSON, naming the role). Returns the
    /// project's and the template's ids.
    pub async fn project_with_template(
        &self,
        owner: &str,
        name: &str,
        (role, permissions): (&str, &[&str]),
        template: Value,
    ) -> (String, String) {
        let (status, project) = self.call("POST", "/v1/projects", Some(owner), Some(json!({"name": name}))).await;
        assert_eq!(status, 201, "{project}");
        let p = project["id"].as_str().expect("a project id").to_owned();
        let steps = [
            (format!("/v1/projects/{p}/roles/{role}"), json!({"permissions": permissions})),
            (format!("/v1/projects/{p}/members/bob"), json!({"role": role, "email": "bob@example.com"})),
        ];
        for (path, body) in steps {
            let (status, answer) = self.call("PUT", &path, Some(owner), Some(body)).await;
            assert!(status < 300, "PUT {path}: {status} {answer}");
        }
        let (status, t) = self.call("POST", &format!("/v1/projects/{p}/templates"), Some(owner), Some(template)).await;
        assert_eq!(status, 201, "{t}");
        (p, t["id"].as_str().expect("a template id").to_owned())
    }

    /// Through the API: `holder` requests a key of template `template` in `project`, `owner`
    /// approves, and `holder` fetches its token. Returns the approved key (JSON) and the token.
    pub async fn issue_key(&self, owner: &str, holder: &str, project: &str, template: &str) -> (Value, String) {
        let (status, r) = self
            .call("POST", &format!("/v1/projects/{project}/templates/{template}/requests"), Some(holder), None)
            .await;
        assert_eq!(status, 201, "{r}");
        let request = r["request"]["id"].as_str().expect("a request id");
        let (status, a) =
            self.call("POST", &format!("/v1/projects/{project}/requests/{request}/approve"), Some(owner), None).await;
        assert_eq!(status, 200, "{a}");
        let key = a["key"].clone();
        let id = key["id"].as_str().expect("a key id");
        let (status, t) = self.call("GET", &format!("/v1/me/keys/{id}/token"), Some(holder), None).await;
        assert_eq!(status, 200, "{t}");
        (key, t["token"].as_str().expect("a token").to_owned())
    }

    /// `method path` with an optional bearer token and JSON body: (status, JSON answer).
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let method = http::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("the gateway answers");
        let status = res.status().as_u16();
        let text = res.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

impl Drop for LocalGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub mod attacks;
pub mod aws;
pub mod conformance;
pub mod lifecycle;
pub mod names;
pub mod proxy;
pub mod quota_model;
pub mod refusals;
pub mod rerolls;
pub mod runtime;
pub mod spellings;
pub mod story;
pub mod upstream;

/// Writes the layout item of a release from the future (layout one above this release's,
/// written by keygate 9.0.0).
pub async fn layout_from_the_future(store: &dyn keygate::store::Store) {
    use keygate::store::{Cond, Item, Write};
    let body = serde_json::json!({"layout": keygate::migrate::LAYOUT + 1, "written_by": "9.0.0"}).to_string();
    let item =
        Item { key: keygate::migrate::meta_key(), index_key: None, version: 1, body, counters: Default::default() };
    store.transact(vec![Write::Put { item, cond: Cond::Always }]).await.expect("the layout item is written");
}

/// Checks that a refusal to run on [`layout_from_the_future`] names both layouts.
pub fn names_both_layouts(output: &str) {
    let (newer, known) = (keygate::migrate::LAYOUT + 1, keygate::migrate::LAYOUT);
    assert!(output.contains(&format!("storage layout {newer} (written by keygate 9.0.0)")), "{output}");
    assert!(output.contains(&format!("which knows layouts up to {known}")), "{output}");
}
