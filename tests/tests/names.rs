//! Look-alike names, on both stores (tests/src/names.rs).

use std::sync::Arc;

use keygate::store::sqlite::SqliteStore;
use keygate_tests::{aws, names, require_aws};

#[tokio::test]
async fn look_alike_names_on_sqlite() {
    let t = keygate::testing::TestApp::on(Arc::new(SqliteStore::in_memory().unwrap()));
    names::look_alike_template_names_are_refused_or_taken(&t.app).await;
}

#[tokio::test]
async fn look_alike_names_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let t = keygate::testing::TestApp::on(Arc::new(aws::store(&endpoint, "names").await));
    names::look_alike_template_names_are_refused_or_taken(&t.app).await;
}
