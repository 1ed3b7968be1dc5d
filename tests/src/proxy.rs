//! Network faults on 127.0.0.1: a TCP proxy in front of a server that can lose one answer (it
//! forwards a request, lets the server process it, and closes the client's connection instead
//! of passing the answer on: the fault that makes a retried write ambiguous), and a server that
//! takes connections and requests and never answers (a hung connection).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

pub struct LossyProxy {
    pub url: String,
    /// The text (a header value, say) of the request whose answer is lost next; once.
    armed: Arc<std::sync::Mutex<Option<&'static str>>>,
    lost: Arc<AtomicBool>,
    tasks: tokio::task::JoinHandle<()>,
}

impl LossyProxy {
    /// A proxy to `upstream` (`http://host:port`), started on a free port of 127.0.0.1.
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("a bound address"));
        let armed: Arc<std::sync::Mutex<Option<&'static str>>> = Arc::default();
        let lost = Arc::new(AtomicBool::new(false));
        let (a, l) = (armed.clone(), lost.clone());
        let tasks = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                connections.spawn(relay(client, server, a.clone(), l.clone()));
            }
        });
        Self { url, armed, lost, tasks }
    }

    /// The answer to the next request that contains `marker` is lost.
    pub fn lose_next_answer_to(&self, marker: &'static str) {
        self.lost.store(false, Ordering::SeqCst);
        *self.armed.lock().expect("not poisoned") = Some(marker);
    }

    /// Whether an answer was lost since [`Self::lose_next_answer_to`].
    pub fn lost_one(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its `JoinSet`, which aborts every relay.
        self.tasks.abort();
    }
}

/// Relays one connection both ways. A request is what the client sends until the server
/// starts answering (HTTP/1.1 without pipelining, as the SDK sends).
async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    armed: Arc<std::sync::Mutex<Option<&'static str>>>,
    lost: Arc<AtomicBool>,
) {
    let (mut up, mut down) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let (mut lose, mut answered) = (false, false);
    loop {
        tokio::select! {
            read = client.read(&mut up) => {
                let Ok(n) = read else { return };
                if n == 0 {
                    return;
                }
                if answered {
                    (lose, answered) = (false, false);
                }
                lose |= take_if_marked(&armed, &up[..n]);
                if server.write_all(&up[..n]).await.is_err() {
                    return;
                }
            }
            read = server.read(&mut down) => {
                let Ok(n) = read else { return };
                if n == 0 {
                    return;
                }
                answered = true;
                if lose {
                    // The server has processed the request and answered: hang up instead.
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
                if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Whether `request` holds the armed marker; disarms it if so.
fn take_if_marked(armed: &std::sync::Mutex<Option<&'static str>>, request: &[u8]) -> bool {
    let mut armed = armed.lock().expect("not poisoned");
    let marked = armed.is_some_and(|marker| String::from_utf8_lossy(request).contains(marker));
    if marked {
        *armed = None;
    }
    marked
}

/// A server on 127.0.0.1 that accepts connections, reads what is sent, and never answers.
pub struct Silent {
    pub url: String,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    tasks: tokio::task::JoinHandle<()>,
}

impl Silent {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("a bound address"));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = connections.clone();
        let tasks = tokio::spawn(async move {
            let mut held = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.spawn(async move {
                    let mut sink = vec![0u8; 64 * 1024];
                    while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
                });
            }
        });
        Self { url, connections, tasks }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.tasks.abort();
    }
}
