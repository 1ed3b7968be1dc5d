//! Upgrading a store that keygate 0.1 wrote (issue 31), on SQLite and on DynamoDB: the
//! migration to layout 2 backfills the import records of keys imported before they existed,
//! survives an interruption half-way and resumes where it stopped, and a reroll on the
//! migrated data then updates every secret imported before. A newer layout stops a gateway
//! and a function at start, naming both versions.

use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use async_trait::async_trait;
use keygate::App;
use keygate::identity::Caller;
use keygate::ids::{KeyId, ProjectId};
use keygate::migrate::{self, Found, LAYOUT, Options, Progress};
use keygate::service::RerollInput;
use keygate::store::sqlite::SqliteStore;
use keygate::store::{Cond, Counters, Cursor, Increment, Item, ItemKey, Page, Query, Store, StoreError, Write, layout};
use keygate::testing::TestApp;
use keygate_tests::runtime::{RuntimeApi, function_binary};
use keygate_tests::{Scratch, aws, local_binary, require_aws, story};

/// A store whose writes fail once `writes` transactions went through: a migration stopped
/// half-way (the process killed, the network gone).
struct Interrupting {
    inner: Arc<dyn Store>,
    writes: AtomicIsize,
}

#[async_trait]
impl Store for Interrupting {
    async fn get(&self, key: &ItemKey) -> Result<Option<Item>, StoreError> {
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[ItemKey]) -> Result<Vec<Option<Item>>, StoreError> {
        self.inner.get_many(keys).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.inner.query(query).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        if self.writes.fetch_sub(1, Ordering::SeqCst) <= 0 {
            return Err(StoreError::Unavailable("the migration's process was stopped".into()));
        }
        self.inner.transact(writes).await
    }
    async fn count(&self, increments: Vec<Increment>) -> Result<Vec<Counters>, StoreError> {
        self.inner.count(increments).await
    }
    async fn scan(&self, after: Option<Cursor>, limit: usize) -> Result<Page, StoreError> {
        self.inner.scan(after, limit).await
    }
}

/// A key as 0.1 left it: issued and imported into two client projects of its holder.
struct OldKey {
    holder: Caller,
    project: ProjectId,
    key: KeyId,
    clients: Vec<ProjectId>,
}

/// The data set as keygate 0.1 wrote it: three holders' keys, each imported into two client
/// projects (a token secret and a secret per field each time), and neither the import records
/// nor a layout item, which 0.1 never wrote. The items are written by today's code, which
/// writes them as 0.1 did, and the records 0.1 lacked are then taken away.
async fn as_keygate_0_1_left_it(app: &App) -> Vec<OldKey> {
    let first = story::pending_request(app).await;
    let mut stories = vec![story::another_request(app, &first, 1).await, story::another_request(app, &first, 2).await];
    stories.insert(0, first);
    let mut keys = Vec::new();
    for s in stories {
        let key = app.approve(&s.owner, &s.project, &s.request).await.unwrap().key.id;
        let clients = story::import_into_new_projects(app, &s.holder, &key, &["Lab", "Notebooks"]).await;
        keys.push(OldKey { holder: s.holder, project: s.project, key, clients });
    }
    for k in &keys {
        let records = keygate::store::query_all(
            app.store.as_ref(),
            Query::prefix(layout::project_pk(&k.project), layout::imports_of(&k.key)),
        )
        .await
        .unwrap();
        assert_eq!(records.len(), 2, "today's import writes its record");
        let deletes = records.into_iter().map(|r| Write::Delete { key: r.key, cond: Cond::Exists }).collect();
        app.store.transact(deletes).await.unwrap();
    }
    assert!(app.store.get(&migrate::meta_key()).await.unwrap().is_none());
    keys
}

async fn secret(app: &App, holder: &Caller, client: &ProjectId, name: &str) -> String {
    let secrets = app.list_secrets(holder, client, true, &Default::default()).await.unwrap();
    let s = secrets.items.iter().find(|s| s.name.as_str() == name).unwrap_or_else(|| panic!("secret {name}"));
    s.value.as_ref().unwrap().expose().to_owned()
}

async fn a_store_of_keygate_0_1_is_migrated_and_a_reroll_updates_every_import(store: Arc<dyn Store>) {
    let TestApp { app, .. } = TestApp::on(store.clone());
    let old = as_keygate_0_1_left_it(&app).await;
    assert_eq!(
        migrate::check(store.as_ref()).await.unwrap(),
        Found::Behind { stored: 1, pending: vec!["import-records"] }
    );

    // Interrupted half-way: after 5 of its writes (import records and progress).
    let interrupting = Interrupting { inner: store.clone(), writes: AtomicIsize::new(5) };
    let mut before: Vec<Progress> = Vec::new();
    let options = Options { page: 7 };
    let stopped = migrate::migrate(&interrupting, options, &mut |p| before.push(p.clone())).await;
    assert!(matches!(stopped, Err(migrate::LayoutError::Store(StoreError::Unavailable(_)))), "{stopped:?}");
    let last = before.last().expect("some pages were done before the stop").clone();
    assert!(last.cursor.is_some(), "stopped half-way: {last:?}");
    assert_eq!(
        migrate::check(store.as_ref()).await.unwrap(),
        Found::Behind { stored: 1, pending: vec!["import-records"] },
        "an interrupted migration leaves the layout as it was"
    );

    // Resumed: it goes on from the page after the last one recorded, to the end.
    let mut after: Vec<Progress> = Vec::new();
    let summary = migrate::migrate(store.as_ref(), options, &mut |p| after.push(p.clone())).await.unwrap();
    assert_eq!(after[0].pages, last.pages + 1, "resumed where it stopped, not from the start");
    assert_eq!(after[0].started_at, last.started_at);
    assert_eq!((summary.from, summary.to), (1, LAYOUT));
    let done = &summary.done[0];
    assert!(done.cursor.is_none());
    assert!(done.written >= 6, "the six token secrets' records: {done:?}");
    assert_eq!(migrate::check(store.as_ref()).await.unwrap(), Found::Current);
    let again = migrate::migrate(store.as_ref(), options, &mut |_| panic!("nothing to do")).await.unwrap();
    assert!(again.done.is_empty(), "a migrated store is not migrated again");
    for k in &old {
        let records = keygate::store::query_all(
            store.as_ref(),
            Query::prefix(layout::project_pk(&k.project), layout::imports_of(&k.key)),
        )
        .await
        .unwrap();
        assert_eq!(records.len(), 2, "one record per secret holding the token, none for the fields' secrets");
    }

    // The seed story on the migrated data, and a reroll of every key imported under 0.1.
    let s = story::pending_request(&app).await;
    app.approve(&s.owner, &s.project, &s.request).await.unwrap();
    for k in &old {
        let token = app.my_key_token(&k.holder, &k.key).await.unwrap().token.expose().to_owned();
        let field = secret(&app, &k.holder, &k.clients[0], "forecast_input").await;
        let reroll = app.reroll(&k.holder, &k.project, &k.key, RerollInput { grace_seconds: Some(60) }).await;
        let reroll = reroll.expect("the holder rerolls his key");
        assert_eq!(reroll.secrets.len(), 2, "both secrets imported under 0.1 are updated");
        let new = app.my_key_token(&k.holder, &k.key).await.unwrap().token.expose().to_owned();
        assert_ne!(new, token);
        for client in &k.clients {
            assert_eq!(secret(&app, &k.holder, client, "forecast_token").await, new);
            assert_eq!(secret(&app, &k.holder, client, "forecast_input").await, field, "a field's secret stays");
        }
    }
}

#[tokio::test]
async fn a_store_of_keygate_0_1_is_migrated_on_sqlite() {
    a_store_of_keygate_0_1_is_migrated_and_a_reroll_updates_every_import(Arc::new(SqliteStore::in_memory().unwrap()))
        .await;
}

#[tokio::test]
async fn a_store_of_keygate_0_1_is_migrated_on_dynamodb() {
    let Some(endpoint) = require_aws!() else { return };
    let store = aws::store(&endpoint, "migrate").await;
    a_store_of_keygate_0_1_is_migrated_and_a_reroll_updates_every_import(Arc::new(store)).await;
}

/// Writes the layout item of a release from the future.
async fn from_the_future(store: &dyn Store) {
    let body = serde_json::json!({"layout": LAYOUT + 1, "written_by": "9.0.0"}).to_string();
    let item = Item { key: migrate::meta_key(), index_key: None, version: 1, body, counters: Default::default() };
    store.transact(vec![Write::Put { item, cond: Cond::Always }]).await.unwrap();
}

fn names_both_versions(output: &str) {
    assert!(output.contains(&format!("storage layout {} (written by keygate 9.0.0)", LAYOUT + 1)), "{output}");
    assert!(output.contains(&format!("which knows layouts up to {LAYOUT}")), "{output}");
}

#[tokio::test]
async fn a_gateway_on_a_newer_layout_refuses_to_start_and_migrate_names_it_too() {
    let dir = Scratch::new("newer-layout");
    {
        let store = SqliteStore::open(&dir.0.join("keygate.db")).unwrap();
        from_the_future(&store).await;
    }
    for args in [&["--port", "0"][..], &["migrate"][..]] {
        let out = std::process::Command::new(local_binary())
            .arg("--data-dir")
            .arg(&dir.0)
            .args(args)
            .output()
            .expect("keygate-local runs");
        assert!(!out.status.success(), "{args:?}");
        names_both_versions(&String::from_utf8_lossy(&out.stderr));
    }
}

#[tokio::test]
async fn a_function_on_a_newer_layout_refuses_to_start() {
    let Some(endpoint) = require_aws!() else { return };
    let store = aws::store(&endpoint, "newer-layout").await;
    from_the_future(&store).await;
    let runtime = RuntimeApi::start().await;
    let pem = keygate::signing::KeyRing::generate_pem();
    let env = keygate_tests::runtime::function_env(&endpoint, store.table(), &pem);
    let out = std::process::Command::new(function_binary("my-key-token"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &runtime.address)
        .envs(env)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let logs = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    names_both_versions(&logs);
    assert!(
        logs.contains(&format!("\"version\":\"{}\"", migrate::VERSION)),
        "the first line names the release: {logs}"
    );
}

/// `--version` names the release and the commit it was built from, as the functions' first
/// log line does.
#[test]
fn the_gateway_names_its_release_and_commit() {
    let out = std::process::Command::new(local_binary()).arg("--version").output().expect("keygate-local runs");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.trim(), format!("keygate-local {} ({})", migrate::VERSION, migrate::COMMIT));
    let head = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output();
    if let Ok(head) = head
        && head.status.success()
    {
        assert_eq!(migrate::COMMIT, String::from_utf8_lossy(&head.stdout).trim(), "built from this checkout");
    }
}
