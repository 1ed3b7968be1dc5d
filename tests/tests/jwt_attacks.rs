//! Forged and misused API keys are denied and never metered, on both stores.

use std::sync::Arc;

use keygate::store::sqlite::SqliteStore;
use keygate_tests::{attacks, aws, require_aws};

#[tokio::test]
async fn forgeries_are_denied_on_sqlite() {
    attacks::forged_keys_are_denied_and_never_metered(Arc::new(SqliteStore::in_memory().unwrap())).await;
}

#[tokio::test]
async fn rotation_on_sqlite() {
    attacks::rotated_out_keys_live_while_their_public_key_is_kept(Arc::new(SqliteStore::in_memory().unwrap())).await;
}

#[tokio::test]
async fn forgeries_are_denied_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    attacks::forged_keys_are_denied_and_never_metered(Arc::new(aws::store(&endpoint, "attacks").await)).await;
}

#[tokio::test]
async fn rotation_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    attacks::rotated_out_keys_live_while_their_public_key_is_kept(Arc::new(aws::store(&endpoint, "rotation").await))
        .await;
}
