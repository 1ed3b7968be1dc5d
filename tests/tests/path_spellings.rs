//! Every spelling of a platform API path and method is decided like its canonical form, or
//! refused and never metered, on both stores (tests/src/spellings.rs).

use std::sync::Arc;

use keygate::store::sqlite::SqliteStore;
use keygate_tests::{aws, require_aws, spellings};

#[tokio::test]
async fn spellings_on_sqlite() {
    spellings::spellings_are_decided_like_their_canonical_form(Arc::new(SqliteStore::in_memory().unwrap())).await;
}

#[tokio::test]
async fn spellings_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    spellings::spellings_are_decided_like_their_canonical_form(Arc::new(aws::store(&endpoint, "spellings").await))
        .await;
}
