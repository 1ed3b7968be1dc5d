//! A fixed number of the authorizer's decisions, to count their instructions under valgrind:
//! unlike wall time on a shared machine, the count repeats (docs/benchmarks-history.md, "Refusals counted").
//!
//! `decisions N check|meter`: N decisions of a repeated token, allowed, without metering
//! (`Authorizer::check`) or with it on SQLite (`Authorizer::authorize`), after one to warm the
//! caches. Run it with N = 0 and N > 0 under `valgrind --tool=callgrind`; the difference of the
//! two totals divided by N is one decision's instructions.

use std::sync::Arc;

use http::Method;
use keygate::store::sqlite::SqliteStore;
use keygate::testing::TestApp;
use keygate_tests::story;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).expect("usage: decisions N check|meter");
    let meter = match args.next().as_deref() {
        Some("check") => false,
        Some("meter") => true,
        _ => panic!("usage: decisions N check|meter"),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let t = TestApp::on(Arc::new(SqliteStore::in_memory().unwrap()));
        let s = story::pending_request(&t.app).await;
        let key = t.app.approve(&s.owner, &s.project, &s.request).await.unwrap().key;
        let token = t.app.my_key_token(&s.holder, &key.id).await.unwrap().token;
        let (path, bearer) =
            (format!("/api/projects/{}/data_layers/last", s.project), format!("Bearer {}", token.expose()));
        let authorizer = t.authorizer;
        assert!(authorizer.authorize(&Method::GET, &path, Some(&bearer)).await.is_ok());
        for _ in 0..n {
            if meter {
                std::hint::black_box(authorizer.authorize(&Method::GET, &path, Some(&bearer)).await.unwrap());
            } else {
                std::hint::black_box(authorizer.check(&Method::GET, &path, Some(&bearer)).await.unwrap());
            }
        }
    });
}
