//! The floor for `keygate-local`'s load figures: the same HTTP stack (axum on tokio, one
//! fallback handler, 127.0.0.1) answering every request with a small JSON body and nothing
//! else. `cargo run --release -p keygate-local --example hello -- 3999`

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(3999);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("a free port");
    println!("hello listening on http://{}", listener.local_addr().expect("address"));
    let app = axum::Router::new().fallback(|| async { axum::Json(serde_json::json!({"allowed": true})) });
    axum::serve(listener, app).await.expect("serves");
}
