//! The embedded store: one SQLite database file, used by the local gateway and fast tests.
//!
//! One connection behind a mutex serializes every operation, which is what makes a transaction's
//! conditions and writes atomic. Each operation takes microseconds (WAL journal, no fsync per
//! commit), so it runs inline on the async worker instead of paying for a blocking-pool hop.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Cond, Index, Item, ItemKey, Page, Query, SkRange, Store, StoreError, Write, check_transaction};

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
    conn: Mutex<Connection>,
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
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")
            .map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction half-applied (SQLite rolls
        // it back when the transaction is dropped), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
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

/// Adds counters in one statement (atomic on its own, no explicit transaction): the existing
/// counters and the added ones are summed key by key with SQLite's JSON functions.
const UPSERT_COUNTERS: &str = "
INSERT INTO items (pk, sk, gpk, gsk, version, body, counters) VALUES (?1, ?2, NULL, NULL, 1, ?3, ?4)
ON CONFLICT (pk, sk) DO UPDATE SET
    body = excluded.body,
    counters = (
        SELECT json_group_object(key, total) FROM (
            SELECT key, SUM(value) AS total FROM (
                SELECT key, value FROM json_each(coalesce(items.counters, '{}'))
                UNION ALL
                SELECT key, value FROM json_each(excluded.counters)
            ) GROUP BY key
        )
    )";

impl SqliteStore {
    /// The metering write: one UPSERT instead of a read-modify-write transaction.
    fn increment_one(&self, key: &ItemKey, add: &[(&'static str, i64)], body: &str) -> Result<(), StoreError> {
        let mut counters = BTreeMap::new();
        for (name, n) in add {
            *counters.entry(*name).or_insert(0i64) += n;
        }
        let counters = serde_json::to_string(&counters).unwrap_or_default();
        let conn = self.lock();
        conn.prepare_cached(UPSERT_COUNTERS)
            .and_then(|mut s| s.execute(params![key.pk, key.sk, body, counters]))
            .map(|_| ())
            .map_err(unavailable)
    }
}

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

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        check_transaction(&writes)?;
        if let [Write::Increment { key, add, body }] = writes.as_slice() {
            return self.increment_one(key, add, body);
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
                Write::Increment { add, body, .. } => {
                    let (version, mut counters) = match &current {
                        None => (1, BTreeMap::new()),
                        Some((v, c)) => (
                            *v,
                            c.as_deref()
                                .map(serde_json::from_str::<BTreeMap<String, i64>>)
                                .transpose()
                                .map_err(|e| StoreError::Corrupt(format!("{}/{}", key.pk, key.sk), Box::new(e)))?
                                .unwrap_or_default(),
                        ),
                    };
                    for (name, n) in add {
                        *counters.entry((*name).to_owned()).or_default() += n;
                    }
                    let counters = serde_json::to_string(&counters).unwrap_or_default();
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO items (pk, sk, gpk, gsk, version, body, counters) VALUES (?1, ?2, NULL, NULL, ?3, ?4, ?5)",
                    )
                    .and_then(|mut s| s.execute(params![key.pk, key.sk, version, body, counters]))
                }
            };
            result.map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)
    }
}
