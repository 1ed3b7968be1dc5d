//! The narrow storage interface (SPEC section 9): get, query one partition by sort-key prefix or
//! range with pagination, and conditional transactional writes. Every implementation behaves
//! the same; the conformance suite in `keygate-tests` runs against each.

pub mod dynamodb;
pub mod layout;
pub mod sqlite;

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// DynamoDB's limit on items in one transaction; every store enforces it.
pub const MAX_TRANSACTION_ITEMS: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ItemKey {
    pub pk: String,
    pub sk: String,
}

impl ItemKey {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self { pk: pk.into(), sk: sk.into() }
    }
}

/// One stored item: its key, an optional key in the secondary index, a version for optimistic
/// concurrency, the entity as JSON, and integer counters that [`Write::Increment`] adds to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub key: ItemKey,
    pub index_key: Option<ItemKey>,
    pub version: u64,
    pub body: String,
    pub counters: BTreeMap<String, i64>,
}

impl Item {
    pub fn counter(&self, name: &str) -> i64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}

/// What must hold of the stored item for a write to happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    Always,
    NotExists,
    Exists,
    /// The item exists with exactly this version.
    Version(u64),
}

#[derive(Clone, Debug)]
pub enum Write {
    Put {
        item: Item,
        cond: Cond,
    },
    Delete {
        key: ItemKey,
        cond: Cond,
    },
    Check {
        key: ItemKey,
        cond: Cond,
    },
    /// Adds to counters, creating the item when absent, and replaces its body.
    Increment(Increment),
}

impl Write {
    pub fn key(&self) -> &ItemKey {
        match self {
            Self::Put { item, .. } => &item.key,
            Self::Delete { key, .. } | Self::Check { key, .. } => key,
            Self::Increment(inc) => &inc.key,
        }
    }
}

/// Counters to add to one item (created when absent), whose body is replaced; with a
/// [`Ceiling`], only if the named counter stays within it.
#[derive(Clone, Debug)]
pub struct Increment {
    pub key: ItemKey,
    pub add: Vec<(&'static str, i64)>,
    pub body: String,
    pub ceiling: Option<Ceiling>,
    pub pace: Option<Pace>,
}

impl Increment {
    pub fn new(key: ItemKey, add: Vec<(&'static str, i64)>, body: String) -> Self {
        Self { key, add, body, ceiling: None, pace: None }
    }

    /// The increment, applied only when `pace` lets a call through now (and moving it on).
    pub fn paced(mut self, pace: Pace) -> Self {
        self.pace = Some(pace);
        self
    }

    /// Applies the increment to an item's counters, or leaves them as they are and answers
    /// `false` when its ceiling or its pace refuses it.
    pub fn apply(&self, counters: &mut Counters) -> bool {
        if !self.fits(counters) {
            return false;
        }
        if let Some(pace) = &self.pace {
            let Some(next) = pace.next(counters.get(pace.counter).copied().unwrap_or(0)) else { return false };
            counters.insert(pace.counter.to_owned(), next);
        }
        for (name, amount) in &self.add {
            *counters.entry((*name).to_owned()).or_default() += amount;
        }
        true
    }

    /// The increment, applied only while counter `counter` stays at most `max` after it.
    pub fn at_most(mut self, counter: &'static str, max: i64) -> Self {
        self.ceiling = Some(Ceiling { counter, max });
        self
    }

    /// How much this adds to `counter`.
    pub fn adds(&self, counter: &str) -> i64 {
        self.add.iter().filter(|(name, _)| *name == counter).map(|(_, n)| n).sum()
    }

    /// Whether the ceiling lets this increment apply to an item whose counter holds `current`.
    pub fn fits(&self, current: &BTreeMap<String, i64>) -> bool {
        self.ceiling.is_none_or(|c| current.get(c.counter).copied().unwrap_or(0) + self.adds(c.counter) <= c.max)
    }

    /// The same item's counters less what this added: the undoing of an applied increment. (A
    /// pace moved on stays moved: a call that was not let through only slows the next.)
    pub fn undo(&self) -> Self {
        Self {
            key: self.key.clone(),
            add: self.add.iter().map(|(k, n)| (*k, -n)).collect(),
            body: self.body.clone(),
            ceiling: None,
            pace: None,
        }
    }
}

/// The condition of a bounded increment: counter `counter` is at most `max` after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ceiling {
    pub counter: &'static str,
    pub max: i64,
}

/// A rate decided in the store (GCRA): counter `counter` holds the theoretical arrival time of
/// the next call, in microseconds. A call at `now` passes when that time is at most
/// `tolerance` ahead of it (the burst), and moves it `interval` on from the later of the two.
/// Every instance deciding on one item shares one rate, exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    pub counter: &'static str,
    pub now: i64,
    pub interval: i64,
    pub tolerance: i64,
    /// Whether the caller expects the item's time ahead of `now` (a busy rate): which of the
    /// two conditional writes DynamoDB tries first.
    pub busy: bool,
}

impl Pace {
    /// The counter's next value when a call passes with `tat` stored, or none when it waits.
    pub fn next(&self, tat: i64) -> Option<i64> {
        let start = tat.max(self.now);
        (start - self.now <= self.tolerance).then_some(start + self.interval)
    }

    /// Microseconds until a call may pass, with `tat` stored.
    pub fn wait(&self, tat: i64) -> i64 {
        (tat - self.tolerance - self.now).max(0)
    }
}

/// An item's counters, as an increment left them.
pub type Counters = BTreeMap<String, i64>;

/// Which key a query reads: the table's or the secondary index's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    Primary,
    Secondary,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkRange {
    Prefix(String),
    /// Inclusive at both ends.
    Between(String, String),
}

#[derive(Clone, Debug)]
pub struct Query {
    pub index: Index,
    pub pk: String,
    pub sk: SkRange,
    pub limit: usize,
    pub cursor: Option<Cursor>,
    pub descending: bool,
}

impl Query {
    pub fn prefix(pk: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            index: Index::Primary,
            pk: pk.into(),
            sk: SkRange::Prefix(prefix.into()),
            limit: 100,
            cursor: None,
            descending: false,
        }
    }

    pub fn on_index(mut self) -> Self {
        self.index = Index::Secondary;
        self
    }

    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    pub fn after(mut self, cursor: Option<Cursor>) -> Self {
        self.cursor = cursor;
        self
    }

    /// Checks that a cursor from a client belongs to this query's partition.
    pub fn check_cursor(&self) -> Result<(), StoreError> {
        let Some(c) = &self.cursor else { return Ok(()) };
        let ok = match self.index {
            Index::Primary => c.key.pk == self.pk && c.index_key.is_none(),
            Index::Secondary => c.index_key.as_ref().is_some_and(|k| k.pk == self.pk),
        };
        if ok { Ok(()) } else { Err(StoreError::BadCursor) }
    }
}

/// Where the next page starts: the key of the last item returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "k")]
    pub key: ItemKey,
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub index_key: Option<ItemKey>,
}

impl Cursor {
    pub fn after(item: &Item, index: Index) -> Self {
        Self { key: item.key.clone(), index_key: if index == Index::Secondary { item.index_key.clone() } else { None } }
    }

    /// The opaque form clients see as `next_cursor`.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(s: &str) -> Result<Self, StoreError> {
        if s.len() > 2048 {
            return Err(StoreError::BadCursor);
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).map_err(|_| StoreError::BadCursor)?;
        serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<Cursor>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The condition of write number `index` of a transaction did not hold; nothing was written.
    #[error("the condition of write {index} did not hold")]
    ConditionFailed { index: usize },
    /// Increment number `index` of a [`Store::count`] was refused by its ceiling or its pace;
    /// nothing was written. `counters` are the item's as the refusal saw them.
    #[error("increment {index} was refused by its limit")]
    Refused { index: usize, counters: Counters },
    /// Another transaction touched the same items at the same time; nothing was written.
    #[error("concurrent transaction on the same items")]
    Contention,
    #[error("invalid pagination cursor")]
    BadCursor,
    #[error("invalid transaction: {0}")]
    InvalidTransaction(String),
    #[error("store unavailable")]
    Unavailable(#[source] BoxError),
    #[error("stored item {0} is unreadable")]
    Corrupt(String, #[source] BoxError),
}

/// A [`Store::count`] refusal as [`Store::transact`] reports it.
pub fn refused_is_a_condition(e: StoreError) -> StoreError {
    match e {
        StoreError::Refused { index, .. } => StoreError::ConditionFailed { index },
        e => e,
    }
}

/// Checks the rules every store shares, so that SQLite refuses what DynamoDB would refuse.
pub fn check_transaction(writes: &[Write]) -> Result<(), StoreError> {
    check_keys(writes.iter().map(Write::key))
}

/// The same rules for the items of [`Store::count`].
pub fn check_increments(increments: &[Increment]) -> Result<(), StoreError> {
    check_keys(increments.iter().map(|i| &i.key))
}

fn check_keys<'a>(keys: impl ExactSizeIterator<Item = &'a ItemKey>) -> Result<(), StoreError> {
    if keys.len() == 0 || keys.len() > MAX_TRANSACTION_ITEMS {
        return Err(StoreError::InvalidTransaction(format!("{} writes", keys.len())));
    }
    let mut seen = std::collections::HashSet::new();
    for k in keys {
        if !seen.insert(k) {
            return Err(StoreError::InvalidTransaction(format!("{}/{} written twice", k.pk, k.sk)));
        }
    }
    Ok(())
}

#[async_trait]
pub trait Store: Send + Sync {
    async fn get(&self, key: &ItemKey) -> Result<Option<Item>, StoreError>;
    /// Several items, in the order asked (`None` where absent), strongly consistent like
    /// [`Store::get`]: one round trip on a store with a batch read, concurrent gets otherwise.
    async fn get_many(&self, keys: &[ItemKey]) -> Result<Vec<Option<Item>>, StoreError> {
        futures_util::future::try_join_all(keys.iter().map(|k| self.get(k))).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError>;
    /// All writes happen, or none (and the error names the first failed condition).
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError>;
    /// Applies increments to distinct items, in order, and answers each item's counters after
    /// it: the metering write. All apply or none: on a failure (a ceiling or a pace, named by
    /// its index in [`StoreError::Refused`], or the store) nothing stays applied. A store whose
    /// transactions refuse rather than queue concurrent writers of one item (DynamoDB) applies
    /// them one by one and takes back the ones before a failure.
    async fn count(&self, increments: Vec<Increment>) -> Result<Vec<Counters>, StoreError>;

    /// Reads the whole table a page at a time, after `after` (a cursor of the page before): for
    /// the migrations (`crate::migrate`), never on a request's path. Pages come in no
    /// particular order on DynamoDB; every item comes once.
    async fn scan(&self, after: Option<Cursor>, limit: usize) -> Result<Page, StoreError>;
}

/// A store built when a call first needs it: a Lambda function starts polling for its first
/// event at once, and a call that never reaches the store (the authorizer's denial of a
/// forged key) never pays for its clients. On the authorizer's single thread a build started
/// in the background would run before the first poll is answered, delaying every first answer.
pub struct Deferred<S> {
    store: std::sync::Arc<tokio::sync::OnceCell<S>>,
    build: std::sync::Arc<dyn Fn() -> S + Send + Sync>,
}

impl<S: Store + 'static> Deferred<S> {
    /// A store that `build` makes when a call first needs it.
    pub fn on_first_use(build: impl Fn() -> S + Send + Sync + 'static) -> Self {
        Self { store: std::sync::Arc::new(tokio::sync::OnceCell::new()), build: std::sync::Arc::new(build) }
    }

    /// Starts building the store with `build` on the runtime; must be called inside one.
    pub fn start(build: impl Fn() -> S + Send + Sync + 'static) -> Self {
        let this = Self { store: std::sync::Arc::new(tokio::sync::OnceCell::new()), build: std::sync::Arc::new(build) };
        let (store, build) = (this.store.clone(), this.build.clone());
        tokio::spawn(async move {
            store.get_or_init(|| async { build() }).await;
        });
        this
    }

    /// The store, once built (by the background task, or here if it has not started yet).
    async fn get_store(&self) -> &S {
        self.store.get_or_init(|| async { (self.build)() }).await
    }
}

#[async_trait]
impl<S: Store + 'static> Store for Deferred<S> {
    async fn get(&self, key: &ItemKey) -> Result<Option<Item>, StoreError> {
        self.get_store().await.get(key).await
    }
    async fn get_many(&self, keys: &[ItemKey]) -> Result<Vec<Option<Item>>, StoreError> {
        self.get_store().await.get_many(keys).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.get_store().await.query(query).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.get_store().await.transact(writes).await
    }
    async fn count(&self, increments: Vec<Increment>) -> Result<Vec<Counters>, StoreError> {
        self.get_store().await.count(increments).await
    }
    async fn scan(&self, after: Option<Cursor>, limit: usize) -> Result<Page, StoreError> {
        self.get_store().await.scan(after, limit).await
    }
}

/// Reads every page of a query (for small partitions: roles, fields, a key's usage range).
pub async fn query_all(store: &dyn Store, mut query: Query) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    loop {
        let page = store.query(&query).await?;
        items.extend(page.items);
        match page.next {
            Some(c) => query.cursor = Some(c),
            None => return Ok(items),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor { key: ItemKey::new("P#1", "TPL#2"), index_key: None };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(matches!(Cursor::decode("not base64!"), Err(StoreError::BadCursor)));
        assert!(matches!(Cursor::decode("e30"), Err(StoreError::BadCursor)));
    }

    #[test]
    fn a_cursor_from_another_partition_is_refused() {
        let c = Cursor { key: ItemKey::new("P#other", "TPL#2"), index_key: None };
        let q = Query::prefix("P#mine", "TPL#").after(Some(c));
        assert!(matches!(q.check_cursor(), Err(StoreError::BadCursor)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deferred_store_is_built_once_and_answers_every_caller() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let builds = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = builds.clone();
        let store = std::sync::Arc::new(Deferred::start(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            sqlite::SqliteStore::in_memory().expect("SQLite opens in memory")
        }));
        let key = ItemKey::new("a", "b");
        let item =
            Item { key: key.clone(), index_key: None, version: 1, body: "{}".into(), counters: Default::default() };
        store.transact(vec![Write::Put { item, cond: Cond::NotExists }]).await.unwrap();
        let readers = (0..8).map(|_| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { store.get(&key).await.unwrap().map(|i| i.version) })
        });
        for reader in readers {
            assert_eq!(reader.await.unwrap(), Some(1), "every caller sees the one store");
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn transactions_may_not_touch_an_item_twice() {
        let k = ItemKey::new("a", "b");
        let w = || Write::Check { key: k.clone(), cond: Cond::Exists };
        assert!(check_transaction(&[w()]).is_ok());
        assert!(check_transaction(&[w(), w()]).is_err());
        assert!(check_transaction(&[]).is_err());
    }
}
