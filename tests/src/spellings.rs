//! Spellings of platform API paths and methods, as an attacker with curl sends them: each is
//! decided exactly like its canonical form, or refused (and then never metered, never
//! forwarded). Run against each store here, over HTTP in `tests/tests/platform_calls.rs`, and
//! through the compiled authorizer in `tests/tests/lambda_functions.rs`.

use std::sync::Arc;

use http::Method;
use keygate::App;
use keygate::authorizer::{Authorizer, Denial};
use keygate::ids::RoleName;
use keygate::project::RoleInput;
use keygate::template::TemplateInput;
use serde_json::json;

use crate::story::{self, Story};

/// A path after `/api/projects/{project}/`, and the canonical path it must be decided as
/// (`None`: it must be refused).
pub const SPELLINGS: &[(&str, Option<&str>)] = &[
    // Percent-encoded unreserved characters: RFC 3986 says %70 and p are the same.
    ("nodes/in/%70ackages", None),
    ("%6eodes/in/packages", None),
    ("nodes/in/%70%61%63%6b%61%67%65%73/p1/files", None),
    ("nodes/in/pack%41ges", None),
    ("nodes/in/pack%61ges/p1", None),
    ("nodes/in/%50ACKAGES", None),
    ("%64ata_layers/last", None),
    // Double encoding, encoded separators, controls, bad escapes.
    ("nodes/in/%2570ackages", None),
    ("nodes/in%2Fpackages", None),
    ("nodes/in%2fpackages", None),
    ("nodes/in%5Cpackages", None),
    ("nodes/in/packages%3Bx", None),
    ("nodes/in/packages%00", None),
    ("nodes/in/packages%0D%0A", None),
    ("nodes/in/packages%", None),
    ("nodes/in/packages%zz", None),
    // UTF-8 overlong forms of '.', '/' and 'p'.
    ("nodes/%C0%AE%C0%AE/packages", None),
    ("nodes/in%C0%AFpackages", None),
    ("nodes/in/%E0%81%B0ackages", None),
    ("nodes/in/%C1%B0ackages", None),
    // Path parameters, dot and empty segments.
    ("nodes/in/packages;x", None),
    ("nodes/in/packages;jsessionid=1/p1", None),
    ("nodes/in/./packages", None),
    ("nodes/x/../in/packages", None),
    ("nodes/in/%2e%2e/in/packages", None),
    ("nodes//in/packages", None),
    // Case, and spellings a platform with Unicode-aware matching routes alike: decided as the
    // canonical path.
    ("nodes/in/PACKAGES", Some("nodes/in/packages")),
    ("NODES/in/Packages/p1", Some("nodes/in/packages/p1")),
    ("Nodes/in/packages/SEARCH", Some("nodes/in/packages/search")),
    ("DATA_LAYERS/last", Some("data_layers/last")),
    ("nodes/in/%EF%BD%90%EF%BD%81%EF%BD%83%EF%BD%8B%EF%BD%81%EF%BD%87%EF%BD%85%EF%BD%93", Some("nodes/in/packages")),
    ("nodes/in/pac%E2%84%AAages", Some("nodes/in/packages")),
    ("nodes/in/package%C5%BF", Some("nodes/in/packages")),
    ("nodes/in/packages/", Some("nodes/in/packages")),
    // Canonical already.
    ("nodes/in/packages", Some("nodes/in/packages")),
    ("nodes/in/packages/p1/files", Some("nodes/in/packages/p1/files")),
    ("data_layers/last", Some("data_layers/last")),
    ("nodes/in/packages/a%20file%D0%B0", Some("nodes/in/packages/a%20file%D0%B0")),
];

/// Methods as sent; a platform that reads methods case-insensitively runs `post` as `POST`.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "get", "post", "delete", "Head"];

/// The canonical form of a method as the tests expect it (capitals).
pub fn canonical_method(m: &str) -> Method {
    Method::from_bytes(m.to_ascii_uppercase().as_bytes()).unwrap()
}

/// Bob's two keys of the story's project: `viewer` (project_view only) and `packager`
/// (project_view and every package permission, but not project_edit), so that a spelling that
/// fell through to a weaker or another rule is decided differently from its canonical form.
pub struct Keys {
    pub story: Story,
    pub viewer: String,
    pub packager: String,
}

pub async fn keys(app: &App) -> Keys {
    let story = story::pending_request(app).await;
    let (owner, p) = (&story.owner, &story.project);
    let role = |perms: serde_json::Value| serde_json::from_value::<RoleInput>(json!({ "permissions": perms })).unwrap();
    app.put_role(owner, p, RoleName::parse("reader").unwrap(), role(json!(["project_view"]))).await.unwrap();
    let packages = json!(["project_view", "package_view", "package_create", "package_delete"]);
    app.put_role(owner, p, RoleName::parse("packager").unwrap(), role(packages)).await.unwrap();
    let viewer = app.approve(owner, p, &story.request).await.unwrap().key;
    let input: TemplateInput =
        serde_json::from_value(json!({"name": "Packages API", "role": "packager", "price_per_request": 1})).unwrap();
    let template = app.create_template(owner, p, input).await.unwrap();
    let request = app.request_key(&story.holder, p, &template.id).await.unwrap().request;
    let packager = app.approve(owner, p, &request.id).await.unwrap().key;
    let mut tokens = Vec::new();
    for id in [&viewer.id, &packager.id] {
        tokens.push(app.my_key_token(&story.holder, id).await.unwrap().token.expose().to_owned());
    }
    let [viewer, packager]: [String; 2] = tokens.try_into().unwrap();
    Keys { viewer, packager, story }
}

/// What a decision says, without the context: allowed, or the denial.
pub fn outcome(verdict: &keygate::authorizer::Verdict) -> Result<(), Denial> {
    verdict.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// Every spelling × method × key through the authorizer: decided like the canonical form or
/// refused as a bad call; refused calls are not metered; every allowed call is, once.
pub async fn spellings_are_decided_like_their_canonical_form(store: Arc<dyn keygate::store::Store>) {
    let t = keygate::testing::TestApp::on(store);
    let app = &t.app;
    let k = keys(app).await;
    // A fresh authorizer: the roles as they are now.
    let authorizer = Authorizer::with_caches(app, keygate::authorizer::Caches::new(0));
    let base = format!("/api/projects/{}/", k.story.project);
    let mut allowed = 0;
    let mut refused = 0;
    for token in [&k.viewer, &k.packager] {
        let bearer = format!("Bearer {token}");
        for (spelling, canonical) in SPELLINGS {
            for m in METHODS {
                let method = Method::from_bytes(m.as_bytes()).unwrap();
                let got = outcome(&authorizer.authorize(&method, &format!("{base}{spelling}"), Some(&bearer)).await);
                match canonical {
                    None => {
                        assert!(matches!(got, Err(Denial::BadCall(_))), "{m} {spelling}: {got:?}, not refused");
                        refused += 1;
                    }
                    Some(canonical) => {
                        let path = format!("{base}{canonical}");
                        let want = outcome(&authorizer.authorize(&canonical_method(m), &path, Some(&bearer)).await);
                        assert_eq!(got, want, "{m} {spelling} is decided unlike {canonical}");
                        allowed += 2 * usize::from(got.is_ok());
                    }
                }
            }
        }
    }
    assert!(refused > 0 && allowed > 0);
    let period = keygate::usage::Period::parse(None, None, app.now() + chrono::Duration::hours(1), 366).unwrap();
    let rows = app.list_issued_keys(&k.story.owner, &k.story.project, period, &Default::default()).await.unwrap();
    let metered: i64 = rows.items.iter().map(|r| r.requests).sum();
    assert_eq!(metered, allowed as i64, "every allowed call metered once, no refused call");

    // The holes of the report, named: the viewer key never reaches packages.
    for spelling in ["nodes/in/%70ackages", "%6eodes/in/packages", "nodes/in/PACKAGES", "nodes/in/packages;x"] {
        let bearer = format!("Bearer {}", k.viewer);
        let verdict = authorizer.authorize(&Method::GET, &format!("{base}{spelling}"), Some(&bearer)).await;
        assert!(verdict.is_err(), "GET {spelling} with project_view alone: {verdict:?}");
    }
}
