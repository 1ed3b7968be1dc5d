//! The storage layout's version, and the migrations that bring a table (or a SQLite file) from
//! one version to the next.
//!
//! The store records its layout in one item, `META` / `LAYOUT`. Every gateway and function
//! checks it at start ([`check`]): a layout newer than this release knows stops it with both
//! versions named; an older one that a migration would complete lets it run (each migration
//! only adds what a newer release reads: expand now, contract in a later release) and says
//! which command migrates it. A store without the item is new (it is given this release's
//! layout) or was written before layouts were recorded: layout 1.
//!
//! A migration ([`migrate`]) reads the table a page at a time and writes what the page needs,
//! then records its cursor in the layout item, so that an interrupted migration resumes where
//! it stopped; every write is idempotent (a page done twice changes nothing). It never deletes
//! an item. Only one migration runs at a time: the layout item is written on its version.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{KeyId, ProjectId};
use crate::secret::{ImportRef, Secret};
use crate::store::{Cond, Cursor, Item, ItemKey, Store, StoreError, Write, layout};

/// The layout this release writes: every migration up to it done.
pub const LAYOUT: u32 = 2;

/// This release: its version, and the commit it was built from (`KEYGATE_COMMIT` when the
/// build has no git checkout).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("KEYGATE_COMMIT");
/// `0.2.0 (3f2a9c1d0b7e)`, as `--version` and the first log line of every function print it.
pub const VERSION_LINE: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("KEYGATE_COMMIT"), ")");

/// A migration: the layout it brings the store to, its name and what it does.
pub struct Migration {
    pub to: u32,
    pub name: &'static str,
    pub what: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[Migration {
    to: 2,
    name: "import-records",
    what: "records where each key was imported before import records existed (keygate 0.1), so that a reroll updates those secrets too",
}];

/// The command that migrates a store, as the start-up warning names it.
pub const MIGRATE_COMMAND: &str = "keygate-local migrate, with the gateway's --data-dir or --table (on AWS: docs/operations.md, \"Upgrade and migrate\")";

/// The item that records the layout.
pub fn meta_key() -> ItemKey {
    ItemKey::new("META", "LAYOUT")
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meta {
    layout: u32,
    /// The release that last wrote this item.
    written_by: String,
    /// A migration under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    migration: Option<Progress>,
}

/// How far a migration has come: where its next page starts, and what it did so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub to: u32,
    pub name: String,
    pub started_at: DateTime<Utc>,
    /// The scan's cursor after the last page done; `None` before the first.
    pub cursor: Option<Cursor>,
    pub pages: u64,
    pub scanned: u64,
    pub written: u64,
}

/// The store's layout, as a gateway or function finds it at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// This release's layout (a new store is given it).
    Current,
    /// An older layout this release runs on; the migrations named complete it.
    Behind { stored: u32, pending: Vec<&'static str> },
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "the store holds storage layout {stored} (written by keygate {written_by}); this is keygate {VERSION}, which knows layouts up to {LAYOUT}: run keygate {written_by} or later on it"
    )]
    Newer { stored: u32, written_by: String },
    #[error("the store's layout item META/LAYOUT is unreadable: {0}")]
    Unreadable(String),
    #[error("another migration moved the layout item meanwhile; run the migration again once it has finished")]
    Busy,
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

async fn read(store: &dyn Store) -> Result<Option<(Meta, u64)>, LayoutError> {
    let Some(item) = store.get(&meta_key()).await? else { return Ok(None) };
    let meta = serde_json::from_str(&item.body).map_err(|e| LayoutError::Unreadable(e.to_string()))?;
    Ok(Some((meta, item.version)))
}

async fn write(store: &dyn Store, meta: &Meta, cond: Cond, version: u64) -> Result<(), LayoutError> {
    let item = Item {
        key: meta_key(),
        index_key: None,
        version,
        body: serde_json::to_string(meta).expect("the layout item serializes"),
        counters: Default::default(),
    };
    match store.transact(vec![Write::Put { item, cond }]).await {
        Ok(()) => Ok(()),
        Err(StoreError::ConditionFailed { .. }) => Err(LayoutError::Busy),
        Err(e) => Err(e.into()),
    }
}

/// The layout the store holds: from its item, else 1 when the store holds data written before
/// layouts were recorded, else (a new store) this release's, which is then recorded.
async fn stored(store: &dyn Store) -> Result<(u32, Option<(Meta, u64)>), LayoutError> {
    if let Some((meta, version)) = read(store).await? {
        return Ok((meta.layout, Some((meta, version))));
    }
    if !store.scan(None, 1).await?.items.is_empty() {
        return Ok((1, None));
    }
    let meta = Meta { layout: LAYOUT, written_by: VERSION.into(), migration: None };
    match write(store, &meta, Cond::NotExists, 1).await {
        Ok(()) => Ok((LAYOUT, None)),
        // Another instance recorded it first: read what it wrote.
        Err(LayoutError::Busy) => Box::pin(stored(store)).await,
        // A function that may not write there (a read-only one) leaves it to the others.
        Err(e) => {
            tracing::debug!(error = %e, "the new store's layout is left for another instance to record");
            Ok((LAYOUT, None))
        }
    }
}

/// The error for a layout item of a layout newer than this release knows (the authorizer reads
/// the item beside its first key record); `None` for a known one. An unreadable item is taken
/// as newer: its form changed.
pub fn newer_than_known(item: &Item) -> Option<LayoutError> {
    match serde_json::from_str::<Meta>(&item.body) {
        Ok(meta) if meta.layout <= LAYOUT => None,
        Ok(meta) => Some(LayoutError::Newer { stored: meta.layout, written_by: meta.written_by }),
        Err(e) => Some(LayoutError::Unreadable(e.to_string())),
    }
}

/// Checks the store's layout at start: an error for one newer than this release knows.
pub async fn check(store: &dyn Store) -> Result<Found, LayoutError> {
    let (layout, meta) = stored(store).await?;
    if layout > LAYOUT {
        let written_by = meta.map(|(m, _)| m.written_by).unwrap_or_else(|| "unknown".into());
        return Err(LayoutError::Newer { stored: layout, written_by });
    }
    if layout == LAYOUT {
        return Ok(Found::Current);
    }
    let pending = MIGRATIONS.iter().filter(|m| m.to > layout).map(|m| m.name).collect();
    Ok(Found::Behind { stored: layout, pending })
}

/// Says at start what [`check`] found: nothing for the current layout, a warning with the
/// command for an older one. Answers the error's message for a newer one.
pub async fn check_at_start(store: &dyn Store) -> Result<(), String> {
    match check(store).await {
        Ok(Found::Current) => Ok(()),
        Ok(Found::Behind { stored, pending }) => {
            tracing::warn!(
                stored,
                layout = LAYOUT,
                pending = pending.join(", "),
                "the store's layout is older than this release's; it runs on it, but migrate it: {MIGRATE_COMMAND}"
            );
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// How a migration run is carried out.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Items read per page (DynamoDB reads at most 1 MB per page whatever this says).
    pub page: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { page: 200 }
    }
}

/// What one call of [`migrate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub from: u32,
    pub to: u32,
    /// The migrations completed, each with its last progress.
    pub done: Vec<Progress>,
}

/// Runs every migration the store still needs, resuming one that was interrupted; `report` is
/// told after every page. Safe to run again at any time: on a current store it does nothing.
pub async fn migrate(
    store: &dyn Store,
    options: Options,
    report: &mut dyn FnMut(&Progress),
) -> Result<Summary, LayoutError> {
    let (from, _) = stored(store).await?;
    if from > LAYOUT {
        return Err(check(store).await.err().unwrap_or(LayoutError::Busy));
    }
    let mut done = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.to > from) {
        done.push(run(store, migration, options, report).await?);
    }
    Ok(Summary { from, to: LAYOUT, done })
}

async fn run(
    store: &dyn Store,
    migration: &Migration,
    options: Options,
    report: &mut dyn FnMut(&Progress),
) -> Result<Progress, LayoutError> {
    let (mut meta, mut version) = match read(store).await? {
        Some(found) => found,
        None => {
            let meta = Meta { layout: migration.to - 1, written_by: VERSION.into(), migration: None };
            write(store, &meta, Cond::NotExists, 1).await?;
            (meta, 1)
        }
    };
    let mut progress = match meta.migration.take() {
        Some(p) if p.to == migration.to => p,
        _ => Progress {
            to: migration.to,
            name: migration.name.into(),
            started_at: Utc::now(),
            cursor: None,
            pages: 0,
            scanned: 0,
            written: 0,
        },
    };
    let context = Context::read(store, migration.to).await?;
    loop {
        let page = store.scan(progress.cursor.clone(), options.page).await?;
        let writes = context.writes(&page.items);
        progress.written += writes.len() as u64;
        for chunk in writes.chunks(25) {
            store.transact(chunk.to_vec()).await?;
        }
        progress.scanned += page.items.len() as u64;
        progress.pages += 1;
        progress.cursor = page.next;
        let finished = progress.cursor.is_none();
        meta = Meta {
            layout: if finished { migration.to } else { migration.to - 1 },
            written_by: VERSION.into(),
            migration: (!finished).then(|| progress.clone()),
        };
        write(store, &meta, Cond::Version(version), version + 1).await?;
        version += 1;
        report(&progress);
        if finished {
            tracing::info!(
                migration = migration.name,
                scanned = progress.scanned,
                written = progress.written,
                "migration done"
            );
            return Ok(progress);
        }
    }
}

/// What a migration needs to know about the whole store before its pages: for the import
/// records, which project each key belongs to (read again on every run, never written).
enum Context {
    ImportRecords { key_projects: HashMap<KeyId, ProjectId> },
}

impl Context {
    async fn read(store: &dyn Store, to: u32) -> Result<Self, LayoutError> {
        debug_assert_eq!(to, 2, "the only migration so far");
        let mut key_projects = HashMap::new();
        let mut cursor = None;
        loop {
            let page = store.scan(cursor, 1000).await?;
            for item in &page.items {
                if let Some((project, key)) = key_item(&item.key) {
                    key_projects.insert(key, project);
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(Self::ImportRecords { key_projects }),
            }
        }
    }

    /// The writes one page needs: for every secret holding a key's token, its record beside
    /// the key (as an import writes it since 0.2). Written as they are, whatever is there:
    /// doing a page twice writes the same records.
    fn writes(&self, items: &[Item]) -> Vec<Write> {
        let Self::ImportRecords { key_projects } = self;
        let token_suffix = format!("_{}", crate::template::RESERVED_FIELD);
        items
            .iter()
            .filter_map(|item| {
                let client = project_of(&item.key)?;
                item.key.sk.strip_prefix(layout::SECRETS)?;
                let secret: Secret = serde_json::from_str(&item.body).ok()?;
                let origin = secret.origin.as_ref()?;
                if !secret.name.as_str().ends_with(&token_suffix) {
                    return None;
                }
                let key_project = key_projects.get(&origin.key_id)?;
                let record = ImportRef { project_id: client.clone(), name: secret.name.clone() };
                Some(Write::Put {
                    item: crate::service::encode(
                        layout::import(key_project, &origin.key_id, &client, &secret.name),
                        1,
                        &record,
                    ),
                    cond: Cond::Always,
                })
            })
            .collect()
    }
}

fn project_of(key: &ItemKey) -> Option<ProjectId> {
    ProjectId::parse(key.pk.strip_prefix("P#")?)
}

fn key_item(key: &ItemKey) -> Option<(ProjectId, KeyId)> {
    Some((project_of(key)?, KeyId::parse(key.sk.strip_prefix(layout::KEYS)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn a_new_store_is_given_this_layout_and_an_older_one_is_named() {
        let store = SqliteStore::in_memory().unwrap();
        assert_eq!(check(&store).await.unwrap(), Found::Current);
        let meta = read(&store).await.unwrap().unwrap().0;
        assert_eq!((meta.layout, meta.written_by.as_str()), (LAYOUT, VERSION));

        let old = SqliteStore::in_memory().unwrap();
        let item = crate::service::encode(ItemKey::new("P#x", "PROJECT"), 1, &serde_json::json!({}));
        old.transact(vec![Write::Put { item, cond: Cond::NotExists }]).await.unwrap();
        assert_eq!(check(&old).await.unwrap(), Found::Behind { stored: 1, pending: vec!["import-records"] });
        assert!(read(&old).await.unwrap().is_none(), "checking writes nothing on a store with data");
    }

    #[tokio::test]
    async fn a_newer_layout_is_refused_naming_both_versions() {
        let store = SqliteStore::in_memory().unwrap();
        let meta = Meta { layout: LAYOUT + 1, written_by: "9.1.0".into(), migration: None };
        write(&store, &meta, Cond::NotExists, 1).await.unwrap();
        let message = check(&store).await.unwrap_err().to_string();
        assert!(message.contains(&format!("layout {}", LAYOUT + 1)), "{message}");
        assert!(message.contains(&format!("knows layouts up to {LAYOUT}")), "{message}");
        assert!(message.contains("keygate 9.1.0 or later"), "{message}");
        assert!(migrate(&store, Options::default(), &mut |_| {}).await.is_err(), "nor is it migrated");
    }

    #[test]
    fn the_version_line_names_the_version_and_a_commit() {
        assert!(VERSION_LINE.starts_with(VERSION), "{VERSION_LINE}");
        assert!(!COMMIT.is_empty());
    }
}
