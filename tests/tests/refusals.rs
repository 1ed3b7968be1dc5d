//! Refused calls counted per key and outcome, per existing project when no key is named, at
//! a bounded cost under a flood; and the expiry notices. On SQLite and on the DynamoDB-compatible
//! server the test command starts.

use std::sync::Arc;

use keygate::store::sqlite::SqliteStore;
use keygate::testing::TestApp;
use keygate_tests::{Scratch, aws, refusals, require_aws};

fn sqlite(dir: &Scratch) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(&dir.0.join("keygate.db")).unwrap())
}

#[tokio::test]
async fn each_outcome_is_counted_once_per_call() {
    let dir = Scratch::new("outcomes");
    refusals::each_outcome_is_counted_once_per_call(TestApp::on(sqlite(&dir))).await;
}

#[tokio::test]
async fn each_outcome_is_counted_once_per_call_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    refusals::each_outcome_is_counted_once_per_call(TestApp::on(Arc::new(aws::store(&endpoint, "outcomes").await)))
        .await;
}

#[tokio::test]
async fn tokens_that_name_no_key_are_counted_per_existing_project_only() {
    let dir = Scratch::new("no-key");
    refusals::refusals_without_a_key_are_counted_per_existing_project(sqlite(&dir)).await;
}

#[tokio::test]
async fn tokens_that_name_no_key_are_counted_per_existing_project_only_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    refusals::refusals_without_a_key_are_counted_per_existing_project(Arc::new(aws::store(&endpoint, "no-key").await))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_allowed_and_ten_thousand_refused_calls() {
    let dir = Scratch::new("flood");
    refusals::a_flood_of_refusals_costs_a_bounded_number_of_writes(sqlite(&dir), 20_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_allowed_and_ten_thousand_refused_calls_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let store = Arc::new(aws::store(&endpoint, "flood").await);
    refusals::a_flood_of_refusals_costs_a_bounded_number_of_writes(store, 20_000).await;
}

#[tokio::test]
async fn expiry_notices_are_mailed_once_seven_and_one_day_before() {
    let dir = Scratch::new("expiry");
    refusals::expiry_notices_are_mailed_once_seven_and_one_day_before(TestApp::on(sqlite(&dir))).await;
}

#[tokio::test]
async fn expiry_notices_are_mailed_once_seven_and_one_day_before_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let t = TestApp::on(Arc::new(aws::store(&endpoint, "expiry").await));
    refusals::expiry_notices_are_mailed_once_seven_and_one_day_before(t).await;
}
