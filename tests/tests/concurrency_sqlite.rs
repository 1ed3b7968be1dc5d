//! Concurrency on the embedded store: racing approvals and a burst of metered calls.

use std::sync::Arc;

use keygate::store::sqlite::SqliteStore;
use keygate::testing::TestApp;
use keygate_tests::{Scratch, story};

fn app(dir: &Scratch) -> Arc<keygate::App> {
    let store = SqliteStore::open(&dir.0.join("keygate.db")).unwrap();
    Arc::new(TestApp::on(Arc::new(store)).app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_approvals_issue_exactly_one_key() {
    let dir = Scratch::new("approvals");
    story::concurrent_approvals_issue_one_key(app(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_parallel_calls_count_exactly_a_thousand() {
    let dir = Scratch::new("metering");
    story::concurrent_calls_are_counted_exactly(app(&dir), 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quota_of_fifty_allows_exactly_fifty_of_two_hundred_parallel_calls() {
    let dir = Scratch::new("quota");
    let store = SqliteStore::open(&dir.0.join("keygate.db")).unwrap();
    story::a_quota_holds_exactly_under_concurrency(TestApp::on(Arc::new(store))).await;
}

#[tokio::test]
async fn a_quota_set_again_counts_what_was_used() {
    let dir = Scratch::new("quota-again");
    let store = SqliteStore::open(&dir.0.join("keygate.db")).unwrap();
    story::a_quota_set_again_counts_what_was_used(TestApp::on(Arc::new(store))).await;
}

#[tokio::test]
async fn the_billing_export_agrees_with_the_issued_keys_page() {
    let dir = Scratch::new("export");
    story::the_export_agrees_with_the_issued_keys_page(&app(&dir)).await;
}

#[tokio::test]
async fn an_allowed_call_writes_once_without_limits_and_twice_with_a_quota() {
    let dir = Scratch::new("writes");
    story::store_writes_per_allowed_call(Arc::new(SqliteStore::open(&dir.0.join("keygate.db")).unwrap())).await;
}

#[tokio::test]
async fn pending_counts_follow_every_decision() {
    let dir = Scratch::new("pending");
    story::pending_counts_follow_every_decision(&app(&dir)).await;
}
