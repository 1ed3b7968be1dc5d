//! The storage conformance suite: what every `Store` implementation must do, run against each
//! (SQLite here; DynamoDB where a DynamoDB-compatible server runs). Each check uses its own
//! partition keys, so checks can share one table.

use std::sync::Arc;

use futures_util::future::join_all;
use keygate::store::{
    Cond, Cursor, Increment, Item, ItemKey, Pace, Query, SkRange, Store, StoreError, Write, query_all,
};

fn item(pk: &str, sk: &str, version: u64, body: &str) -> Item {
    Item { key: ItemKey::new(pk, sk), index_key: None, version, body: body.into(), counters: Default::default() }
}

fn put(pk: &str, sk: &str, version: u64, cond: Cond) -> Write {
    Write::Put { item: item(pk, sk, version, &format!(r#"{{"v":{version}}}"#)), cond }
}

fn unique(label: &str) -> String {
    format!("T#{label}#{}", keygate::ids::EventId::generate())
}

pub async fn batch_reads_answer_in_order(store: &dyn Store) {
    let pk = unique("batch");
    store.transact(vec![put(&pk, "a", 1, Cond::NotExists), put(&pk, "c", 3, Cond::NotExists)]).await.unwrap();
    let keys: Vec<ItemKey> = ["c", "missing", "a", "c"].iter().map(|sk| ItemKey::new(&pk, *sk)).collect();
    let got = store.get_many(&keys).await.unwrap();
    let versions: Vec<Option<u64>> = got.iter().map(|i| i.as_ref().map(|i| i.version)).collect();
    assert_eq!(versions, [Some(3), None, Some(1), Some(3)], "in the order asked, absent as None, repeats answered");
    assert_eq!(got[2].as_ref().unwrap(), &store.get(&keys[2]).await.unwrap().unwrap());
}

pub async fn conditions_hold_or_nothing_is_written(store: &dyn Store) {
    let pk = unique("cond");
    assert!(store.get(&ItemKey::new(&pk, "a")).await.unwrap().is_none());
    store.transact(vec![put(&pk, "a", 1, Cond::NotExists)]).await.unwrap();
    let err = store.transact(vec![put(&pk, "a", 1, Cond::NotExists)]).await.unwrap_err();
    assert!(matches!(err, StoreError::ConditionFailed { index: 0 }), "{err:?}");
    store.transact(vec![put(&pk, "a", 2, Cond::Version(1))]).await.unwrap();
    let err = store.transact(vec![put(&pk, "a", 3, Cond::Version(1))]).await.unwrap_err();
    assert!(matches!(err, StoreError::ConditionFailed { index: 0 }), "a stale version: {err:?}");
    let got = store.get(&ItemKey::new(&pk, "a")).await.unwrap().unwrap();
    assert_eq!((got.version, got.body.as_str()), (2, r#"{"v":2}"#));
    let err = store
        .transact(vec![Write::Delete { key: ItemKey::new(&pk, "missing"), cond: Cond::Exists }])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ConditionFailed { index: 0 }));
    store.transact(vec![Write::Delete { key: ItemKey::new(&pk, "a"), cond: Cond::Version(2) }]).await.unwrap();
    assert!(store.get(&ItemKey::new(&pk, "a")).await.unwrap().is_none());
}

pub async fn a_failed_transaction_rolls_back_whole(store: &dyn Store) {
    let pk = unique("tx");
    store.transact(vec![put(&pk, "taken", 1, Cond::NotExists)]).await.unwrap();
    let err = store
        .transact(vec![
            put(&pk, "new1", 1, Cond::NotExists),
            Write::Increment(Increment::new(ItemKey::new(&pk, "counter"), vec![("n", 5)], "{}".into())),
            put(&pk, "taken", 2, Cond::NotExists),
            put(&pk, "new2", 1, Cond::NotExists),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ConditionFailed { index: 2 }), "the failed write is named: {err:?}");
    for sk in ["new1", "counter", "new2"] {
        assert!(store.get(&ItemKey::new(&pk, sk)).await.unwrap().is_none(), "{sk} was written by a failed transaction");
    }
    assert_eq!(store.get(&ItemKey::new(&pk, "taken")).await.unwrap().unwrap().version, 1);
    let err = store
        .transact(vec![Write::Check { key: ItemKey::new(&pk, "taken"), cond: Cond::Version(7) }])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ConditionFailed { index: 0 }));
}

pub async fn invalid_transactions_are_refused(store: &dyn Store) {
    let pk = unique("invalid");
    let twice = store.transact(vec![put(&pk, "a", 1, Cond::Always), put(&pk, "a", 1, Cond::Always)]).await;
    assert!(matches!(twice, Err(StoreError::InvalidTransaction(_))));
    let many = (0..101).map(|i| put(&pk, &format!("{i:03}"), 1, Cond::Always)).collect();
    assert!(matches!(store.transact(many).await, Err(StoreError::InvalidTransaction(_))));
    assert!(store.get(&ItemKey::new(&pk, "000")).await.unwrap().is_none());
}

pub async fn queries_page_in_order_with_round_tripping_cursors(store: &dyn Store) {
    let pk = unique("page");
    let writes: Vec<Write> = (0..25).map(|i| put(&pk, &format!("ITEM#{i:02}"), 1, Cond::NotExists)).collect();
    store.transact(writes).await.unwrap();
    store.transact(vec![put(&pk, "OTHER#1", 1, Cond::NotExists)]).await.unwrap();
    let mut seen = Vec::new();
    let mut query = Query::prefix(&pk, "ITEM#").limit(10);
    loop {
        let page = store.query(&query).await.unwrap();
        assert!(page.items.len() <= 10);
        seen.extend(page.items.iter().map(|i| i.key.sk.clone()));
        match page.next {
            // What a client sends back is the encoded form.
            Some(c) => query.cursor = Some(Cursor::decode(&c.encode()).unwrap()),
            None => break,
        }
    }
    let want: Vec<String> = (0..25).map(|i| format!("ITEM#{i:02}")).collect();
    assert_eq!(seen, want);
    let mut desc = Query::prefix(&pk, "ITEM#").limit(3);
    desc.descending = true;
    let page = store.query(&desc).await.unwrap();
    assert_eq!(page.items.iter().map(|i| i.key.sk.as_str()).collect::<Vec<_>>(), ["ITEM#24", "ITEM#23", "ITEM#22"]);
    let mut between = Query::prefix(&pk, "").limit(100);
    between.sk = SkRange::Between("ITEM#05".into(), "ITEM#07".into());
    let got: Vec<String> = query_all(store, between).await.unwrap().into_iter().map(|i| i.key.sk).collect();
    assert_eq!(got, ["ITEM#05", "ITEM#06", "ITEM#07"]);
    let foreign =
        Query::prefix(&pk, "ITEM#").after(Some(Cursor { key: ItemKey::new("elsewhere", "x"), index_key: None }));
    assert!(matches!(store.query(&foreign).await, Err(StoreError::BadCursor)));
}

/// A scan (the migrations' read) visits every item of the table once, over pages of any size.
pub async fn a_scan_visits_every_item_once(store: &dyn Store) {
    let pks = [unique("scan-a"), unique("scan-b"), unique("scan-c")];
    for pk in &pks {
        let writes: Vec<Write> = (0..7).map(|i| put(pk, &format!("ITEM#{i}"), 1, Cond::NotExists)).collect();
        store.transact(writes).await.unwrap();
    }
    for limit in [1, 5, 1000] {
        let (mut seen, mut cursor, mut pages) = (Vec::new(), None, 0);
        loop {
            let page = store.scan(cursor, limit).await.unwrap();
            assert!(page.items.len() <= limit);
            pages += 1;
            seen.extend(page.items.into_iter().map(|i| i.key).filter(|k| pks.contains(&k.pk)));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let unique_seen: std::collections::BTreeSet<_> = seen.iter().cloned().collect();
        assert_eq!((seen.len(), unique_seen.len()), (21, 21), "every item once, pages of {limit}");
        assert!(limit > 1 || pages >= 21);
    }
}

pub async fn the_secondary_index_pages_too(store: &dyn Store) {
    let owner = unique("owner");
    let mut writes = Vec::new();
    for i in 0..7 {
        let mut it = item(&unique("proj"), &format!("KEY#{i}"), 1, "{}");
        it.index_key = Some(ItemKey::new(&owner, format!("KEY#{i}")));
        writes.push(Write::Put { item: it, cond: Cond::NotExists });
    }
    store.transact(writes).await.unwrap();
    let mut query = Query::prefix(&owner, "KEY#").on_index().limit(3);
    let mut seen = Vec::new();
    loop {
        let page = store.query(&query).await.unwrap();
        seen.extend(page.items.iter().map(|i| i.index_key.clone().unwrap().sk));
        match page.next {
            Some(c) => query.cursor = Some(Cursor::decode(&c.encode()).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("KEY#{i}")).collect::<Vec<_>>());
    let exact = Query::prefix(&owner, "KEY#3").on_index();
    assert_eq!(store.query(&exact).await.unwrap().items.len(), 1);
}

pub async fn counters_add_atomically(store: Arc<dyn Store>, calls: usize) {
    let key = ItemKey::new(unique("counter"), "H#2026-11-23T16");
    let tasks = (0..calls).map(|i| {
        let store = store.clone();
        let key = key.clone();
        tokio::spawn(async move {
            store
                .transact(vec![Write::Increment(Increment::new(
                    key,
                    vec![("requests", 1), ("cost", 3)],
                    format!(r#"{{"i":{i}}}"#),
                ))])
                .await
        })
    });
    for r in join_all(tasks).await {
        r.unwrap().unwrap();
    }
    let got = store.get(&key).await.unwrap().unwrap();
    assert_eq!(got.counter("requests"), calls as i64);
    assert_eq!(got.counter("cost"), 3 * calls as i64);
}

pub async fn one_of_many_racing_creators_wins(store: Arc<dyn Store>) {
    let pk = unique("race");
    let tasks = (0..20).map(|_| {
        let store = store.clone();
        let pk = pk.clone();
        tokio::spawn(async move { store.transact(vec![put(&pk, "only", 1, Cond::NotExists)]).await })
    });
    let results: Vec<_> = join_all(tasks).await.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(StoreError::ConditionFailed { .. }) | Err(StoreError::Contention)))
    );
}

/// Bounded increments from many callers at once: the ceiling is never passed, the items
/// counted with it move together, and the counters answered are each caller's own.
pub async fn ceilings_hold_under_concurrency(store: Arc<dyn Store>) {
    let (quota, bucket) = (ItemKey::new(unique("quota"), "D2026-12-02"), ItemKey::new(unique("usage"), "H#1"));
    let tasks = (0..60).map(|_| {
        let (store, quota, bucket) = (store.clone(), quota.clone(), bucket.clone());
        tokio::spawn(async move {
            let take = Increment::new(quota, vec![("requests", 1)], "{}".into()).at_most("requests", 25);
            store.count(vec![take, Increment::new(bucket, vec![("requests", 1), ("cost", 2)], "{}".into())]).await
        })
    });
    let mut seen = Vec::new();
    for r in join_all(tasks).await {
        match r.unwrap() {
            Ok(counters) => {
                assert_eq!(counters.len(), 2);
                seen.push(counters[0]["requests"]);
            }
            Err(e) => assert!(matches!(e, StoreError::Refused { index: 0, .. }), "{e:?}"),
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=25).collect::<Vec<i64>>());
    assert_eq!(store.get(&quota).await.unwrap().unwrap().counter("requests"), 25);
    let b = store.get(&bucket).await.unwrap().unwrap();
    assert_eq!((b.counter("requests"), b.counter("cost")), (25, 50), "refused calls leave the bucket alone");
}

/// A later increment's failed ceiling takes back the earlier ones; a lone ceiling with no room
/// fails without writing; `transact` honours ceilings too.
pub async fn a_refused_count_leaves_nothing(store: &dyn Store) {
    let (a, b) = (ItemKey::new(unique("first"), "x"), ItemKey::new(unique("second"), "x"));
    store.count(vec![Increment::new(b.clone(), vec![("n", 1)], "{}".into())]).await.unwrap();
    let err = store
        .count(vec![
            Increment::new(a.clone(), vec![("n", 5)], "{}".into()),
            Increment::new(b.clone(), vec![("n", 1)], "{}".into()).at_most("n", 1),
        ])
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::Refused { index: 1, counters } if counters["n"] == 1), "{err:?}");
    assert_eq!(store.get(&a).await.unwrap().map(|i| i.counter("n")).unwrap_or(0), 0, "the first was taken back");
    let none =
        store.count(vec![Increment::new(unique_key("empty"), vec![("n", 2)], "{}".into()).at_most("n", 1)]).await;
    assert!(matches!(none, Err(StoreError::Refused { index: 0, .. })), "{none:?}");
    let over = Write::Increment(Increment::new(b.clone(), vec![("n", 1)], "{}".into()).at_most("n", 1));
    assert!(matches!(store.transact(vec![over]).await, Err(StoreError::ConditionFailed { index: 0 })));
    assert_eq!(store.get(&b).await.unwrap().unwrap().counter("n"), 1);
}

/// A paced increment (GCRA, a strict rate limit): a burst of 3 passes at once, the 4th waits and
/// is told until when by the counters the refusal returns; 60 callers at once let exactly the
/// burst through; the rate moves on with time; a refused call writes nothing else.
pub async fn paces_hold_under_concurrency(store: Arc<dyn Store>) {
    let item = unique_key("rate");
    let pace = |now: i64, busy: bool| Pace { counter: "next", now, interval: 100_000, tolerance: 200_000, busy };
    let tasks = (0..60).map(|i| {
        let (store, item) = (store.clone(), item.clone());
        tokio::spawn(async move {
            let take = Increment::new(item, vec![("calls", 1)], "{}".into()).paced(pace(1_000_000, i % 2 == 0));
            store.count(vec![take]).await
        })
    });
    let mut passed = 0;
    for r in join_all(tasks).await {
        match r.unwrap() {
            Ok(_) => passed += 1,
            Err(StoreError::Refused { index: 0, counters }) => {
                assert_eq!(pace(1_000_000, false).wait(counters["next"]), 100_000, "{counters:?}");
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(passed, 3, "the burst, exactly");
    let stored = store.get(&item).await.unwrap().unwrap();
    assert_eq!((stored.counter("calls"), stored.counter("next")), (3, 1_300_000));
    // 100 ms later one more passes (from the stored time), then none; idle, from now again.
    let later = |now, busy| {
        store.count(vec![Increment::new(item.clone(), vec![("calls", 1)], "{}".into()).paced(pace(now, busy))])
    };
    assert!(later(1_100_000, false).await.is_ok(), "the other condition is tried");
    assert!(matches!(later(1_100_000, true).await, Err(StoreError::Refused { .. })));
    assert!(later(5_000_000, true).await.is_ok());
    let stored = store.get(&item).await.unwrap().unwrap();
    assert_eq!((stored.counter("calls"), stored.counter("next")), (5, 5_100_000));
}

fn unique_key(prefix: &str) -> ItemKey {
    ItemKey::new(unique(prefix), "x")
}

/// Runs the whole suite.
pub async fn run(store: Arc<dyn Store>) {
    conditions_hold_or_nothing_is_written(store.as_ref()).await;
    batch_reads_answer_in_order(store.as_ref()).await;
    a_failed_transaction_rolls_back_whole(store.as_ref()).await;
    invalid_transactions_are_refused(store.as_ref()).await;
    queries_page_in_order_with_round_tripping_cursors(store.as_ref()).await;
    the_secondary_index_pages_too(store.as_ref()).await;
    a_scan_visits_every_item_once(store.as_ref()).await;
    counters_add_atomically(store.clone(), 1000).await;
    ceilings_hold_under_concurrency(store.clone()).await;
    a_refused_count_leaves_nothing(store.as_ref()).await;
    paces_hold_under_concurrency(store.clone()).await;
    one_of_many_racing_creators_wins(store).await;
}
