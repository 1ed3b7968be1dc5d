//! Refused calls, counted: per key and UTC hour by outcome when the token names a key keygate
//! issued, per existing project and hour by reason when it names none.
//!
//! - **Who a refusal is counted against.** A key only when its token's signature is keygate's
//!   (so the key id was chosen by keygate, never by the caller); a project only through a
//!   conditional write that requires the project to exist. So no caller-chosen value ever
//!   becomes a key of the store, and the rows a flood can touch are bounded: one per key and
//!   hour, one per existing project and hour.
//! - **When it is written.** Never before the refusal is answered: the answer does not wait
//!   for a store write, and is as fast when the store is down. [`Counting::Exact`]
//!   (keygate-local, tests): each refusal starts its write in the background at once (writes
//!   that meet in time are one). [`Counting::Flushed`] (the Lambda authorizer): refusals add up
//!   in memory and are written together in the background, at most once per interval (on AWS
//!   a task left when the answer went runs at the instance's next invocation), and on
//!   shutdown; so a key refused a thousand times a second costs one write per key per
//!   interval, not a thousand. An instance that dies without its shutdown loses at most the
//!   refusals of its last interval (SECURITY.md); a store that fails keeps them waiting for the
//!   next flush.
//! - A refusal never costs the allowed path anything: allowed calls only start a flush that is
//!   due, in the background.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::ids::{KeyId, ProjectId};
use crate::store::{Cond, Increment, Store, StoreError, Write, layout};
use crate::usage;

/// How refusals reach the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Counting {
    /// Every refusal written at once, after the answer.
    #[default]
    Exact,
    /// Summed in memory, written at most once per interval (and by [`Tally::flush`]).
    Flushed(Duration),
}

/// Who a refusal is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Subject {
    /// A key keygate issued (the token's signature is keygate's).
    Key(KeyId),
    /// The project of the path, if it exists (checked by the write).
    Project(ProjectId),
}

/// Pending entries beyond which a flush is written at once, whatever the interval: the memory
/// a flood of distinct keys or projects can take is bounded.
const MAX_PENDING: usize = 10_000;

type Counts = BTreeMap<&'static str, i64>;

#[derive(Default)]
struct Pending {
    counts: HashMap<(Subject, DateTime<Utc>), Counts>,
    last_flush: Option<Instant>,
}

/// The refusals of one process not yet written, and how they are written.
pub struct Tally {
    counting: Counting,
    pending: Mutex<Pending>,
    /// Whether refusals wait: read without the lock by every allowed call.
    waiting: AtomicBool,
    /// Held by the flush under way, so that [`Tally::flush`] also waits for one in flight.
    flushing: tokio::sync::Mutex<()>,
}

/// What one flush wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Refusals written.
    pub refusals: i64,
    /// Store writes it took (one per key or project and hour).
    pub writes: usize,
    /// Refusals dropped: for a project that does not exist.
    pub dropped: i64,
}

impl Tally {
    pub fn new(counting: Counting) -> Self {
        Self {
            counting,
            pending: Mutex::new(Pending::default()),
            waiting: AtomicBool::new(false),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn counting(&self) -> Counting {
        self.counting
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one refusal of `outcome` against `subject` at `now`, in memory; answers whether a
    /// flush is due (the caller starts it in the background, never before its answer).
    pub(super) fn refused(&self, subject: Subject, outcome: &'static str, now: DateTime<Utc>) -> bool {
        let hour = usage::hour_of(now);
        let mut pending = self.pending();
        *pending.counts.entry((subject, hour)).or_default().entry(outcome).or_default() += 1;
        self.waiting.store(true, Ordering::Release);
        Self::claim_if_due(self.counting, &mut pending)
    }

    /// Whether a flush is due: refusals wait, and none was written within the interval (or
    /// too many wait).
    pub(super) fn due(&self) -> bool {
        self.waiting.load(Ordering::Acquire) && Self::claim_if_due(self.counting, &mut self.pending())
    }

    /// Whether a flush is due, and if so claims it at once: the calls decided before the flush
    /// starts see the interval begun, so a slow store never gets several flushes for one.
    fn claim_if_due(counting: Counting, pending: &mut Pending) -> bool {
        let due = Self::is_due_for(counting, pending);
        if due && matches!(counting, Counting::Flushed(_)) && pending.counts.len() < MAX_PENDING {
            pending.last_flush = Some(Instant::now());
        }
        due
    }

    fn is_due_for(counting: Counting, pending: &Pending) -> bool {
        let Counting::Flushed(every) = counting else { return !pending.counts.is_empty() };
        !pending.counts.is_empty()
            && (pending.counts.len() >= MAX_PENDING || pending.last_flush.is_none_or(|at| at.elapsed() >= every))
    }

    /// Writes every pending refusal, after the flush in flight if any: one store write per key
    /// or project and hour. What cannot be written (the store failed) waits for the next flush.
    pub async fn flush(&self, store: &dyn Store) -> Flushed {
        let _turn = self.flushing.lock().await;
        let batch = {
            let mut pending = self.pending();
            pending.last_flush = Some(Instant::now());
            self.waiting.store(false, Ordering::Release);
            std::mem::take(&mut pending.counts)
        };
        let mut done = Flushed::default();
        let mut failed = Vec::new();
        for ((subject, hour), counts) in batch {
            let n: i64 = counts.values().sum();
            match write(store, &subject, hour, &counts).await {
                Ok(()) => {
                    done.refusals += n;
                    done.writes += 1;
                }
                Err(StoreError::ConditionFailed { .. }) => done.dropped += n,
                Err(e) => {
                    tracing::warn!(error = %e, refusals = n, "refusals not written yet; kept for the next flush");
                    failed.push(((subject, hour), counts));
                }
            }
        }
        if !failed.is_empty() {
            let mut pending = self.pending();
            self.waiting.store(true, Ordering::Release);
            for (at, counts) in failed {
                let into = pending.counts.entry(at).or_default();
                for (outcome, n) in counts {
                    *into.entry(outcome).or_default() += n;
                }
            }
        }
        if done.refusals > 0 || done.dropped > 0 {
            tracing::debug!(refusals = done.refusals, writes = done.writes, dropped = done.dropped, "refusals flushed");
        }
        done
    }
}

/// One refusal row's increment: the key's `R#` hour row, or the project's, the latter only if
/// the project exists (a transaction with its check).
async fn write(store: &dyn Store, subject: &Subject, hour: DateTime<Utc>, counts: &Counts) -> Result<(), StoreError> {
    let add: Vec<_> = counts.iter().map(|(outcome, n)| (*outcome, *n)).collect();
    match subject {
        Subject::Key(key) => {
            let row = Increment::new(layout::key_refusals(key, hour), add, REFUSAL_BODY.to_owned());
            store.count(vec![row]).await.map(drop)
        }
        Subject::Project(project) => {
            let row = Increment::new(layout::project_refusals(project, hour), add, REFUSAL_BODY.to_owned());
            let exists = Write::Check { key: layout::project(project), cond: Cond::Exists };
            store.transact(vec![exists, Write::Increment(row)]).await
        }
    }
}

/// The body of a refusal row: its counters say everything.
const REFUSAL_BODY: &str = "{}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::testing::CountingStore;
    use std::sync::Arc;

    #[tokio::test]
    async fn flushed_refusals_cost_one_write_per_key_and_interval() {
        let store = CountingStore::new(Arc::new(SqliteStore::in_memory().unwrap()));
        let tally = Tally::new(Counting::Flushed(Duration::from_secs(3600)));
        let key = KeyId::generate();
        let now = Utc::now();
        // The first refusal is due at once (its write starts after the answer); the rest wait
        // for the interval or a flush.
        assert!(tally.refused(Subject::Key(key.clone()), "revoked", now));
        assert_eq!(store.calls().counter_writes, 0, "nothing written before the answer");
        assert_eq!(tally.flush(&store).await.refusals, 1);
        for _ in 0..999 {
            assert!(!tally.refused(Subject::Key(key.clone()), "revoked", now));
        }
        assert!(!tally.refused(Subject::Key(key.clone()), "permission", now));
        assert_eq!(store.calls().counter_writes, 1);
        assert!(!tally.due());
        let flushed = tally.flush(&store).await;
        assert_eq!((flushed.refusals, flushed.writes), (1000, 1));
        assert_eq!(store.calls().counter_writes, 2);
        let row = store.get(&layout::key_refusals(&key, usage::hour_of(now))).await.unwrap().unwrap();
        assert_eq!((row.counter("revoked"), row.counter("permission")), (1000, 1));
    }

    /// The refusals decided before a due flush has started (a slow store, a busy runtime) do
    /// not start more flushes: the first one claims the interval when it is found due.
    #[tokio::test]
    async fn a_due_flush_is_started_once_however_many_refusals_wait_for_it() {
        let store = CountingStore::new(Arc::new(SqliteStore::in_memory().unwrap()));
        let tally = Tally::new(Counting::Flushed(Duration::from_secs(3600)));
        let key = KeyId::generate();
        let now = Utc::now();
        let due: usize = (0..1000).map(|_| tally.refused(Subject::Key(key.clone()), "revoked", now) as usize).sum();
        assert_eq!((due, tally.due()), (1, false), "one flush started, none more due");
        let flushed = tally.flush(&store).await;
        assert_eq!((flushed.refusals, flushed.writes, store.calls().counter_writes), (1000, 1, 1));
    }

    #[tokio::test]
    async fn a_project_that_does_not_exist_gets_no_row() {
        let store = SqliteStore::in_memory().unwrap();
        let tally = Tally::new(Counting::Exact);
        let project = ProjectId::generate();
        let now = Utc::now();
        assert!(tally.refused(Subject::Project(project.clone()), "invalid_key", now), "due at once");
        assert_eq!(tally.flush(&store).await.dropped, 1);
        assert_eq!(store.get(&layout::project_refusals(&project, usage::hour_of(now))).await.unwrap(), None);
    }
}
