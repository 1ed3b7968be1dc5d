//! A hot key (issue 30): one DynamoDB item takes about 1,000 writes a second, and a key with a
//! quota or a strict rate limit is decided on one item. Past that rate DynamoDB throttles its
//! writes (and applies nothing); keygate retries those a few times and then refuses the call as
//! `unavailable`: never counted twice, never allowed past its limit. Here a store that throttles
//! every third metering write stands in for the hot item, on SQLite and on DynamoDB.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use keygate::authorizer::Denial;
use keygate::store::sqlite::SqliteStore;
use keygate::store::{Store, StoreError};
use keygate::testing::{Faults, Faulty, TestApp};
use keygate_tests::{aws, require_aws, story};
use serde_json::json;

/// Refuses every `every`-th metering write (`count`) while `on`, as DynamoDB refuses a write
/// it throttles: before applying anything.
struct Throttling {
    every: usize,
    writes: AtomicUsize,
    on: std::sync::atomic::AtomicBool,
}

impl Faults for Throttling {
    fn count(&self) -> Option<StoreError> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        (self.on.load(Ordering::SeqCst) && n.is_multiple_of(self.every))
            .then(|| StoreError::Unavailable("ThrottlingException: the item's write rate is exceeded".into()))
    }
}

async fn a_throttled_hot_key_is_refused_as_unavailable_never_counted_twice(store: Arc<dyn Store>) {
    let throttling = Arc::new(Faulty {
        inner: store,
        faults: Throttling { every: 3, writes: AtomicUsize::new(0), on: true.into() },
    });
    let TestApp { app, authorizer, .. } = TestApp::on(throttling.clone());
    let s = story::pending_request(&app).await;
    let limits = json!({"quota": {"requests": 100, "per": "day"}, "rate_limit": {"per_second": 1000, "burst": 1000, "mode": "strict"}});
    story::limit_template(&app, &s, limits).await;
    let key = app.approve(&s.owner, &s.project, &s.request).await.unwrap().key;
    let token = app.my_key_token(&s.holder, &key.id).await.unwrap().token;
    let path = format!("/api/projects/{}/data_layers/last", s.project);
    let bearer = format!("Bearer {}", token.expose());
    let authorizer = Arc::new(authorizer);
    let burst = |n: usize| {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (authorizer, path, bearer) = (authorizer.clone(), path.clone(), bearer.clone());
                tokio::spawn(async move { authorizer.authorize(&http::Method::GET, &path, Some(&bearer)).await })
            })
            .collect();
        async move {
            let (mut allowed, mut unavailable, mut quota) = (0, 0, 0);
            for verdict in futures_util::future::join_all(tasks).await {
                match verdict.unwrap() {
                    Ok(_) => allowed += 1,
                    Err(Denial::StoreFailed) => unavailable += 1,
                    Err(d) if d.outcome() == "quota" => quota += 1,
                    Err(other) => panic!("{other:?}"),
                }
            }
            (allowed, unavailable, quota)
        }
    };
    let (allowed, unavailable, quota) = burst(150).await;
    assert!(unavailable >= 40, "every third write throttled: {allowed} allowed, {unavailable} unavailable");
    assert_eq!(allowed + unavailable + quota, 150);
    assert!(allowed <= 100);
    // The throttling passes: the rest of the quota, exactly.
    throttling.faults.on.store(false, Ordering::SeqCst);
    let (more, unavailable, _) = burst(150).await;
    assert_eq!((allowed + more, unavailable), (100, 0), "never past the quota, and nothing counted twice");
    let today = keygate::usage::Period::parse(None, None, app.now() + chrono::Duration::hours(1), 366).unwrap();
    let rows = app.list_issued_keys(&s.owner, &s.project, today, &Default::default()).await.unwrap();
    assert_eq!(rows.items[0].requests, 100, "every allowed call counted once");
    assert_eq!(rows.items[0].quota.as_ref().map(|q| q.used), Some(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_hot_key_is_refused_as_unavailable_on_sqlite() {
    a_throttled_hot_key_is_refused_as_unavailable_never_counted_twice(Arc::new(SqliteStore::in_memory().unwrap()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_hot_key_is_refused_as_unavailable_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let store = aws::store(&endpoint, "hot-key").await;
    a_throttled_hot_key_is_refused_as_unavailable_never_counted_twice(Arc::new(store)).await;
}
