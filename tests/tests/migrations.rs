//! Upgrading a store that keygate 0.1 wrote (issue 31), on SQLite and on DynamoDB: the
//! migration to layout 2 backfills the import records of keys imported before they existed,
//! survives an interruption half-way and resumes where it stopped, and a reroll on the
//! migrated data then updates every secret imported before. A newer layout stops a gateway
//! and a function at start, naming both versions.

use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use keygate::App;
use keygate::identity::Caller;
use keygate::ids::{KeyId, ProjectId};
use keygate::migrate::{self, Found, LAYOUT, Options, Progress};
use keygate::service::RerollInput;
use keygate::store::sqlite::SqliteStore;
use keygate::store::{Cond, Query, Store, StoreError, Write, layout};
use keygate::testing::{Faults, Faulty, TestApp};
use keygate_tests::runtime::{RuntimeApi, function_binary};
use keygate_tests::{Scratch, aws, local_binary, require_aws, story};

/// Fails every transaction once `writes` went through: a migration stopped half-way (the
/// process killed, the network gone).
struct Interrupting {
    writes: AtomicIsize,
}

impl Faults for Interrupting {
    fn transact(&self) -> Option<StoreError> {
        (self.writes.fetch_sub(1, Ordering::SeqCst) <= 0)
            .then(|| StoreError::Unavailable("the migration's process was stopped".into()))
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
    let interrupting = Faulty { inner: store.clone(), faults: Interrupting { writes: AtomicIsize::new(5) } };
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

#[tokio::test]
async fn a_gateway_on_a_newer_layout_refuses_to_start_and_migrate_names_it_too() {
    let dir = Scratch::new("newer-layout");
    {
        let store = SqliteStore::open(&dir.0.join("keygate.db")).unwrap();
        keygate_tests::layout_from_the_future(&store).await;
    }
    for args in [&["--port", "0"][..], &["migrate"][..]] {
        let out = std::process::Command::new(local_binary())
            .arg("--data-dir")
            .arg(&dir.0)
            .args(args)
            .output()
            .expect("keygate-local runs");
        assert!(!out.status.success(), "{args:?}");
        keygate_tests::names_both_layouts(&String::from_utf8_lossy(&out.stderr));
    }
}

#[tokio::test]
async fn a_function_on_a_newer_layout_refuses_to_start() {
    let Some(endpoint) = require_aws!() else { return };
    let store = aws::store(&endpoint, "newer-layout").await;
    keygate_tests::layout_from_the_future(&store).await;
    let runtime = RuntimeApi::start().await;
    let pem = keygate::signing::KeyRing::generate_pem();
    let env = keygate_tests::runtime::function_env(&endpoint, store.table(), &pem);
    let (ok, logs) = keygate_tests::runtime::run_to_exit(&function_binary("my-key-token"), &runtime, env);
    assert!(!ok);
    keygate_tests::names_both_layouts(&logs);
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

/// The authorizer reads the layout item with its first key record: on a newer layout it
/// refuses the call as unavailable, and every call after it (SQLite; the compiled authorizer on
/// DynamoDB is in `lambda_functions.rs`). On a known layout it decides as usual.
#[tokio::test]
async fn the_authorizer_refuses_every_call_on_a_newer_layout() {
    for newer in [false, true] {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let TestApp { app, authorizer, .. } = TestApp::on(store.clone());
        let s = story::pending_request(&app).await;
        let key = app.approve(&s.owner, &s.project, &s.request).await.unwrap().key;
        let token = app.my_key_token(&s.holder, &key.id).await.unwrap().token;
        if newer {
            keygate_tests::layout_from_the_future(store.as_ref()).await;
        } else {
            migrate::check(store.as_ref()).await.unwrap();
        }
        let path = format!("/api/projects/{}/data_layers/last", s.project);
        let bearer = format!("Bearer {}", token.expose());
        for _ in 0..2 {
            let decided = authorizer.authorize(&http::Method::GET, &path, Some(&bearer)).await;
            match newer {
                true => assert!(matches!(decided, Err(keygate::authorizer::Denial::StoreFailed)), "{decided:?}"),
                false => assert!(decided.is_ok(), "{decided:?}"),
            }
        }
    }
}
