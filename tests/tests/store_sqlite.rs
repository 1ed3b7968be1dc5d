//! The storage conformance suite on the embedded store, a real SQLite database file.

use std::sync::Arc;

use keygate::store::sqlite::SqliteStore;
use keygate_tests::{Scratch, conformance};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_conforms() {
    let dir = Scratch::new("sqlite");
    let store = SqliteStore::open(&dir.0.join("keygate.db")).unwrap();
    conformance::run(Arc::new(store)).await;
}

#[tokio::test]
async fn data_survives_reopening_the_file() {
    use keygate::store::{Cond, Item, ItemKey, Store, Write};
    let dir = Scratch::new("sqlite-reopen");
    let path = dir.0.join("keygate.db");
    let item = Item {
        key: ItemKey::new("P#1", "X"),
        index_key: None,
        version: 1,
        body: "{}".into(),
        counters: Default::default(),
    };
    SqliteStore::open(&path)
        .unwrap()
        .transact(vec![Write::Put { item: item.clone(), cond: Cond::NotExists }])
        .await
        .unwrap();
    assert_eq!(SqliteStore::open(&path).unwrap().get(&item.key).await.unwrap(), Some(item));
}

#[tokio::test]
async fn the_issued_keys_page_costs_one_query_per_key() {
    let dir = Scratch::new("sqlite-page");
    let store = SqliteStore::open(&dir.0.join("keygate.db")).unwrap();
    keygate_tests::story::issued_keys_page_costs_one_query_per_key(Arc::new(store)).await;
}
