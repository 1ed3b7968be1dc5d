//! The embedded store: one SQLite database file, used by the local gateway and fast tests.
//!
//! One connection behind a mutex serializes every operation, which is what makes a transaction's
//! conditions and writes atomic. Each operation takes microseconds (WAL journal, no fsync per
//! commit), so it runs inline on the async worker instead of paying for a blocking-pool hop.
//!
//! Metering writes ([`Store::count`], one per allowed call) are group-committed: each call's
//! increments are queued, and one commit task at a time takes every queued call, applies them
//! in order (a call whose ceiling would be passed is refused, and later calls see what the earlier
//! ones took), writes each touched item once in one transaction and only then answers each
//! caller. Every call is still counted before it is allowed, a ceiling is never passed, and a
//! failed commit denies every call of its batch; but a busy gateway pays for one commit per batch
//! instead of one per call. The commit runs as a task on the same runtime (no thread hand-off),
//! after yielding once so that a batch forms.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{
    Cond, Counters, Increment, Index, Item, ItemKey, Page, Query, SkRange, Store, StoreError, Write, check_increments,
    check_transaction,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    gpk TEXT,
    gsk TEXT,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    counters TEXT,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_secondary ON items (gpk, gsk, pk, sk) WHERE gpk IS NOT NULL;
";

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    meter: Arc<Meter>,
}

/// The queue of metering writes and the flag of the one commit that may run at a time.
struct Meter {
    conn: Arc<Mutex<Connection>>,
    queued: Mutex<Vec<Queued>>,
    committing: AtomicBool,
}

/// One call's increments waiting for the group commit, and where to send its outcome.
struct Queued {
    increments: Vec<Increment>,
    done: tokio::sync::oneshot::Sender<Result<Vec<Counters>, Refused>>,
}

/// Why a queued call was not counted.
#[derive(Clone, Debug)]
enum Refused {
    /// The ceiling or the pace of increment `index` refused it; the item's counters as they were.
    Ceiling(usize, Counters),
    /// The batch's commit failed.
    Store(String),
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

impl SqliteStore {
    /// Opens (creating when missing) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::setup(Connection::open(path).map_err(unavailable)?)
    }

    /// A private database in memory, for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::setup(Connection::open_in_memory().map_err(unavailable)?)
    }

    fn setup(conn: Connection) -> Result<Self, StoreError> {
        // One process owns the database (exclusive locking: no file locks taken per
        // transaction; a second gateway on the same data directory is refused at start).
        conn.execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 1000;",
        )
            .map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        let conn = Arc::new(Mutex::new(conn));
        let meter =
            Arc::new(Meter { conn: conn.clone(), queued: Mutex::new(Vec::new()), committing: AtomicBool::new(false) });
        Ok(Self { conn, meter })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        lock(&self.conn)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a transaction half-applied (SQLite rolls it
    // back when the transaction is dropped), so a poisoned lock is safe to reuse.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Meter {
    /// Queues a call's increments; the first queued while no commit is pending schedules one.
    fn enqueue(self: &Arc<Self>, call: Queued) {
        lock(&self.queued).push(call);
        self.schedule();
    }

    /// Starts a commit task unless one is pending. The task first yields, so that the calls
    /// already runnable queue their increments too and share its commit; it runs as a task of
    /// its own, so that a caller that goes away cannot cancel a commit others wait for.
    fn schedule(self: &Arc<Self>) {
        if self.committing.swap(true, Ordering::SeqCst) {
            return;
        }
        let meter = self.clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            meter.commit_queued();
        });
    }

    /// Commits every queued increment and answers their callers; run by the one pending task.
    fn commit_queued(self: &Arc<Self>) {
        /// Clears the flag however this ends (a panic included), then looks for late arrivals:
        /// an increment queued while the flag was set did not schedule a commit of its own.
        struct Done<'a>(&'a Arc<Meter>);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.committing.store(false, Ordering::SeqCst);
                if !lock(&self.0.queued).is_empty() {
                    self.0.schedule();
                }
            }
        }
        let _done = Done(self);
        let batch = std::mem::take(&mut *lock(&self.queued));
        if batch.is_empty() {
            return;
        }
        match apply_batch(&self.conn, &batch) {
            Ok(outcomes) => {
                for (call, outcome) in batch.into_iter().zip(outcomes) {
                    // A caller that gave up waiting has nothing left to tell.
                    let _ = call.done.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, calls = batch.len(), "metering commit failed");
                for call in batch {
                    let _ = call.done.send(Err(Refused::Store(e.to_string())));
                }
            }
        }
    }
}

/// Applies a batch of calls in order and writes every touched item once, in one transaction.
fn apply_batch(conn: &Mutex<Connection>, batch: &[Queued]) -> Result<Vec<Result<Vec<Counters>, Refused>>, StoreError> {
    let mut conn = lock(conn);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
    // Each touched item's counters and newest body, read once from the database.
    let mut items: HashMap<&ItemKey, (Counters, Option<&str>)> = HashMap::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    for call in batch {
        for inc in &call.increments {
            if !items.contains_key(&inc.key) {
                items.insert(&inc.key, (read_counters(&tx, &inc.key)?.unwrap_or_default(), None));
            }
        }
        // Tried on copies: all apply or none.
        let mut after = Vec::with_capacity(call.increments.len());
        let mut refused = None;
        for (index, inc) in call.increments.iter().enumerate() {
            let mut counters = items[&inc.key].0.clone();
            if !inc.apply(&mut counters) {
                refused = Some(Refused::Ceiling(index, items[&inc.key].0.clone()));
                break;
            }
            after.push(counters);
        }
        outcomes.push(match refused {
            Some(refused) => Err(refused),
            None => Ok(call
                .increments
                .iter()
                .zip(after)
                .map(|(inc, counters)| {
                    let (stored, body) = items.get_mut(&inc.key).expect("read above");
                    *stored = counters.clone();
                    *body = Some(&inc.body);
                    counters
                })
                .collect()),
        });
    }
    {
        let mut upsert = tx.prepare_cached(UPSERT_COUNTERS).map_err(unavailable)?;
        for (key, (counters, body)) in &items {
            let Some(body) = body else { continue };
            let counters = serde_json::to_string(counters).unwrap_or_default();
            upsert.execute(params![key.pk, key.sk, body, counters]).map_err(unavailable)?;
        }
    }
    tx.commit().map_err(unavailable)?;
    Ok(outcomes)
}

/// An item's counters (`None` when the item is absent).
fn read_counters(tx: &rusqlite::Transaction<'_>, key: &ItemKey) -> Result<Option<Counters>, StoreError> {
    let row: Option<Option<String>> = tx
        .prepare_cached("SELECT counters FROM items WHERE pk = ?1 AND sk = ?2")
        .and_then(|mut s| s.query_row(params![key.pk, key.sk], |r| r.get(0)).optional())
        .map_err(unavailable)?;
    row.map(|json| parse_counters(key, json.as_deref())).transpose()
}

fn parse_counters(key: &ItemKey, json: Option<&str>) -> Result<Counters, StoreError> {
    json.map(serde_json::from_str::<Counters>)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("{}/{}", key.pk, key.sk), Box::new(e)))
        .map(Option::unwrap_or_default)
}

/// A row as read, before its counters (JSON text) are parsed.
type Row = (ItemKey, Option<ItemKey>, u64, String, Option<String>);

fn read_item(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let key = ItemKey::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?);
    let gpk: Option<String> = row.get(2)?;
    let gsk: Option<String> = row.get(3)?;
    let index_key = gpk.zip(gsk).map(|(p, s)| ItemKey::new(p, s));
    Ok((key, index_key, row.get::<_, i64>(4)? as u64, row.get(5)?, row.get(6)?))
}

fn to_item((key, index_key, version, body, counters): Row) -> Result<Item, StoreError> {
    let counters = match counters {
        None => BTreeMap::new(),
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("{}/{}", key.pk, key.sk), Box::new(e)))?,
    };
    Ok(Item { key, index_key, version, body, counters })
}

const COLUMNS: &str = "pk, sk, gpk, gsk, version, body, counters";

/// The upper bound of every sort key that starts with `prefix`.
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// Writes an item's counters and body, keeping its version (1 when new).
const UPSERT_COUNTERS: &str = "
INSERT INTO items (pk, sk, gpk, gsk, version, body, counters) VALUES (?1, ?2, NULL, NULL, 1, ?3, ?4)
ON CONFLICT (pk, sk) DO UPDATE SET body = excluded.body, counters = excluded.counters";

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &ItemKey) -> Result<Option<Item>, StoreError> {
        let conn = self.lock();
        let row = conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM items WHERE pk = ?1 AND sk = ?2"))
            .and_then(|mut s| s.query_row(params![key.pk, key.sk], read_item).optional())
            .map_err(unavailable)?;
        row.map(to_item).transpose()
    }

    async fn query(&self, q: &Query) -> Result<Page, StoreError> {
        q.check_cursor()?;
        let (lo, hi) = match &q.sk {
            SkRange::Prefix(p) => (p.clone(), prefix_end(p)),
            SkRange::Between(a, b) => (a.clone(), b.clone()),
        };
        let (dir, cmp) = if q.descending { ("DESC", "<") } else { ("ASC", ">") };
        let limit = q.limit.clamp(1, 1000);
        let (p, s, order_after) = match q.index {
            Index::Primary => ("pk", "sk", format!("sk {cmp} ?4")),
            Index::Secondary => ("gpk", "gsk", format!("(gsk, pk, sk) {cmp} (?4, ?5, ?6)")),
        };
        let order = match q.index {
            Index::Primary => format!("sk {dir}"),
            Index::Secondary => format!("gsk {dir}, pk {dir}, sk {dir}"),
        };
        let after = if q.cursor.is_some() { format!("AND {order_after}") } else { String::new() };
        let sql = format!(
            "SELECT {COLUMNS} FROM items WHERE {p} = ?1 AND {s} >= ?2 AND {s} <= ?3 {after} ORDER BY {order} LIMIT {}",
            limit + 1
        );
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&sql).map_err(unavailable)?;
        let rows: Vec<_> = match (&q.cursor, q.index) {
            (None, _) => stmt.query_map(params![q.pk, lo, hi], read_item),
            (Some(c), Index::Primary) => stmt.query_map(params![q.pk, lo, hi, c.key.sk], read_item),
            (Some(c), Index::Secondary) => {
                let gsk = c.index_key.as_ref().map(|k| k.sk.as_str()).unwrap_or_default();
                stmt.query_map(params![q.pk, lo, hi, gsk, c.key.pk, c.key.sk], read_item)
            }
        }
        .and_then(|rows| rows.collect::<Result<_, _>>())
        .map_err(unavailable)?;
        let mut items = rows.into_iter().map(to_item).collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|i| super::Cursor::after(i, q.index))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn scan(&self, after: Option<super::Cursor>, limit: usize) -> Result<Page, StoreError> {
        let limit = limit.clamp(1, 1000);
        let (pk, sk) = after.map(|c| (c.key.pk, c.key.sk)).unwrap_or_default();
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM items WHERE (pk, sk) > (?1, ?2) ORDER BY pk, sk LIMIT {}",
                limit + 1
            ))
            .map_err(unavailable)?;
        let rows: Vec<_> = stmt
            .query_map(params![pk, sk], read_item)
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(unavailable)?;
        let mut items = rows.into_iter().map(to_item).collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|i| super::Cursor::after(i, Index::Primary))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn transact(&self, mut writes: Vec<Write>) -> Result<(), StoreError> {
        check_transaction(&writes)?;
        if let [Write::Increment(_)] = writes.as_slice()
            && let Some(Write::Increment(inc)) = writes.pop()
        {
            return self.count(vec![inc]).await.map(drop).map_err(super::refused_is_a_condition);
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
        for (index, write) in writes.iter().enumerate() {
            let key = write.key();
            let current: Option<(i64, Option<String>)> = tx
                .prepare_cached("SELECT version, counters FROM items WHERE pk = ?1 AND sk = ?2")
                .and_then(|mut s| s.query_row(params![key.pk, key.sk], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                .map_err(unavailable)?;
            let holds = |cond: &Cond| match cond {
                Cond::Always => true,
                Cond::NotExists => current.is_none(),
                Cond::Exists => current.is_some(),
                Cond::Version(v) => current.as_ref().is_some_and(|(have, _)| *have as u64 == *v),
            };
            let result = match write {
                Write::Put { item, cond } => {
                    if !holds(cond) {
                        return Err(StoreError::ConditionFailed { index });
                    }
                    let counters =
                        (!item.counters.is_empty()).then(|| serde_json::to_string(&item.counters).unwrap_or_default());
                    let (gpk, gsk) = item.index_key.as_ref().map(|k| (&k.pk, &k.sk)).unzip();
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO items (pk, sk, gpk, gsk, version, body, counters) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![key.pk, key.sk, gpk, gsk, item.version as i64, item.body, counters])
                    })
                }
                Write::Delete { cond, .. } => {
                    if !holds(cond) {
                        return Err(StoreError::ConditionFailed { index });
                    }
                    tx.prepare_cached("DELETE FROM items WHERE pk = ?1 AND sk = ?2")
                        .and_then(|mut s| s.execute(params![key.pk, key.sk]))
                }
                Write::Check { cond, .. } => {
                    if !holds(cond) {
                        return Err(StoreError::ConditionFailed { index });
                    }
                    Ok(0)
                }
                Write::Increment(inc) => {
                    let (version, mut counters) = match &current {
                        None => (1, Counters::new()),
                        Some((v, c)) => (*v, parse_counters(key, c.as_deref())?),
                    };
                    if !inc.apply(&mut counters) {
                        return Err(StoreError::ConditionFailed { index });
                    }
                    let counters = serde_json::to_string(&counters).unwrap_or_default();
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO items (pk, sk, gpk, gsk, version, body, counters) VALUES (?1, ?2, NULL, NULL, ?3, ?4, ?5)",
                    )
                    .and_then(|mut s| s.execute(params![key.pk, key.sk, version, inc.body, counters]))
                }
            };
            result.map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)
    }

    /// Queued for the next group commit, answered once it is committed.
    async fn count(&self, increments: Vec<Increment>) -> Result<Vec<Counters>, StoreError> {
        check_increments(&increments)?;
        let (done, outcome) = tokio::sync::oneshot::channel();
        self.meter.enqueue(Queued { increments, done });
        match outcome.await {
            Ok(Ok(counters)) => Ok(counters),
            Ok(Err(Refused::Ceiling(index, counters))) => Err(StoreError::Refused { index, counters }),
            Ok(Err(Refused::Store(e))) => Err(StoreError::Unavailable(e.into())),
            Err(_) => Err(StoreError::Unavailable("the metering commit stopped".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn concurrent_increments_are_summed_per_bucket_and_keep_the_newest_body() {
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let (a, b) = (ItemKey::new("USAGE#a#0", "H#1"), ItemKey::new("USAGE#b#0", "H#1"));
        let calls = (0..200).map(|i| {
            let (store, key) = (store.clone(), if i % 2 == 0 { a.clone() } else { b.clone() });
            tokio::spawn(async move {
                let write = Write::Increment(Increment::new(key, vec![("requests", 1), ("cost", 3)], format!("{i}")));
                store.transact(vec![write]).await
            })
        });
        for call in calls.collect::<Vec<_>>() {
            call.await.unwrap().unwrap();
        }
        for key in [&a, &b] {
            let item = store.get(key).await.unwrap().unwrap();
            assert_eq!((item.counter("requests"), item.counter("cost")), (100, 300), "{key:?}");
        }
        let (req, body) = (ItemKey::new("x", "y"), "last".to_owned());
        store.transact(vec![Write::Increment(Increment::new(req.clone(), vec![("requests", 1)], body))]).await.unwrap();
        assert_eq!(store.get(&req).await.unwrap().unwrap().body, "last");
    }
}
