//! A platform API stand-in that records every call it receives, and a raw HTTP/1.1 client that
//! sends a request target byte for byte (an HTTP client library would normalise `..`, `%2e` or
//! `\` before sending, which is exactly what an attacker's curl does not).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use tokio::sync::Mutex;

/// One call as the upstream received it.
#[derive(Default, Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    /// The values of header `name` (lower case), in order.
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// An upstream on 127.0.0.1 answering every call 201 with `{"id": "pkg-1"}`; stopped on drop.
pub struct RecordingUpstream {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: tokio::task::JoinHandle<()>,
}

impl RecordingUpstream {
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
        let record = seen.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let record = record.clone();
            async move {
                let headers =
                    headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned())).collect();
                record.lock().await.push(Seen {
                    method: method.to_string(),
                    uri: uri.to_string(),
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                (axum::http::StatusCode::CREATED, [("x-upstream", "yes")], "{\"id\": \"pkg-1\"}")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, seen, server }
    }

    /// Every call received so far.
    pub async fn seen(&self) -> Vec<Seen> {
        self.seen.lock().await.clone()
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A raw answer: status, headers (lower-case names) and body.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Sends `method target` to `base` (`http://127.0.0.1:PORT`) exactly as written, with `headers`
/// (a `Host` of the base's address unless one is given) and `Connection: close`.
pub async fn raw(base: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> RawAnswer {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://").to_owned();
    let mut request = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()));
    let bytes = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&addr).expect("the gateway listens");
        stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("a timeout");
        stream.write_all(request.as_bytes()).expect("the request is sent");
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).expect("an answer in time");
        bytes
    })
    .await
    .expect("the raw call ran");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawAnswer { status, headers, body: body.to_owned() }
}
