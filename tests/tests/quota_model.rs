//! The quota rule against its model (`keygate_tests::quota_model`), on SQLite and on the
//! DynamoDB-compatible server, and the regressions it was written for.

use std::sync::Arc;

use keygate::store::Store;
use keygate::store::sqlite::SqliteStore;
use keygate::testing::TestApp;
use keygate_tests::{aws, quota_model, require_aws, story};

#[test]
fn any_sequence_of_limit_edits_decides_every_call_as_the_rule_says_on_sqlite() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    quota_model::check(async { store }, 96, 24);
}

#[test]
fn any_sequence_of_limit_edits_decides_every_call_as_the_rule_says_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let store = async move { Arc::new(aws::store(&endpoint, "quota-model").await) as Arc<dyn Store> };
    quota_model::check(store, 12, 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_back_on_its_templates_quota_counts_every_call_of_the_day() {
    story::a_key_back_on_its_templates_quota_counts_every_call(TestApp::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_back_on_its_templates_quota_counts_every_call_of_the_day_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let store = aws::store(&endpoint, "quota-null").await;
    story::a_key_back_on_its_templates_quota_counts_every_call(TestApp::on(Arc::new(store))).await;
}
