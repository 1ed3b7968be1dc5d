//! The authorizer's cost, beside the physical floor (a bare `jsonwebtoken` EdDSA verify of the
//! same token), the permission lookup, and the owner's issued-keys page.
//!
//! `cargo bench -p keygate-tests --bench authorizer`; figures and method in BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use http::Method;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use keygate::authorizer::{Authorizer, Caches, Counting};
use keygate::figures::Emf;
use keygate::permission::required_permission;
use keygate::platform::api_path;
use keygate::service::ExportFormat;
use keygate::signing::{KeyRing, PublicJwk};
use keygate::store::sqlite::SqliteStore;
use keygate::testing::{ISSUER, TestApp};
use keygate::usage;
use keygate_tests::story;

struct Fixture {
    app: Authorizer,
    /// The same authorizer without a token cache: every token is verified as if first seen.
    uncached: Authorizer,
    path: String,
    denied_path: String,
    bearer: String,
    bad_bearer: String,
    token: String,
    public_x: Vec<u8>,
    project: keygate::ids::ProjectId,
    /// A key whose template has a quota and a rate limit (too high to refuse any call here).
    limited_path: String,
    limited_bearer: String,
    /// A revoked key: every call refused, and counted.
    revoked_path: String,
    revoked_bearer: String,
    /// The authorizer as on AWS: refusals summed in memory (flushed every 5 s), figures in EMF.
    flushed: Authorizer,
}

fn fixture(rt: &tokio::runtime::Runtime) -> Fixture {
    rt.block_on(async {
        let pem = KeyRing::generate_pem();
        let t = TestApp::with_key(Arc::new(SqliteStore::in_memory().unwrap()), &pem);
        let s = story::pending_request(&t.app).await;
        let key = t.app.approve(&s.owner, &s.project, &s.request).await.unwrap().key;
        let token = t.app.my_key_token(&s.holder, &key.id).await.unwrap().token.expose().to_owned();
        let uncached = Authorizer::with_caches(&t.app, Caches::new(0));
        let jwk: PublicJwk = serde_json::from_value(t.app.keys.jwks()["keys"][0].clone()).unwrap();
        use base64::Engine;
        let public_x = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwk.x).unwrap();
        // A different signature that still decodes: a character inside it changed (the last one
        // may only carry padding bits, and would be refused before any signature check).
        let at = token.len() - 10;
        let swap = if &token[at..=at] == "A" { "B" } else { "A" };
        let bad = format!("{}{swap}{}", &token[..at], &token[at + 1..]);
        let l = story::pending_request(&t.app).await;
        let most = serde_json::json!({"quota": {"requests": keygate::template::MAX_QUOTA, "per": "month"},
            "rate_limit": {"per_second": keygate::template::MAX_RATE, "burst": keygate::template::MAX_BURST}});
        story::limit_template(&t.app, &l, most).await;
        let limited = t.app.approve(&l.owner, &l.project, &l.request).await.unwrap().key;
        let limited_token = t.app.my_key_token(&l.holder, &limited.id).await.unwrap().token;
        let r = story::pending_request(&t.app).await;
        let revoked = t.app.approve(&r.owner, &r.project, &r.request).await.unwrap().key;
        let revoked_token = t.app.my_key_token(&r.holder, &revoked.id).await.unwrap().token;
        t.app.revoke(&r.owner, &r.project, &revoked.id).await.unwrap();
        let every = std::time::Duration::from_secs(5);
        let flushed = Authorizer::of(&t.app).counting_refusals(Counting::Flushed(every)).reporting_to(Arc::new(
            Emf::writing_to(every, |line| {
                black_box(line);
            }),
        ));
        Fixture {
            revoked_path: format!("/api/projects/{}/data_layers/last", r.project),
            revoked_bearer: format!("Bearer {}", revoked_token.expose()),
            flushed,
            limited_path: format!("/api/projects/{}/data_layers/last", l.project),
            limited_bearer: format!("Bearer {}", limited_token.expose()),
            path: format!("/api/projects/{}/data_layers/last", s.project),
            denied_path: format!("/api/projects/{}/nodes/in/packages", s.project),
            bearer: format!("Bearer {token}"),
            bad_bearer: format!("Bearer {bad}"),
            token,
            public_x,
            project: s.project,
            app: t.authorizer,
            uncached,
        }
    })
}

fn authorizer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let f = fixture(&rt);
    // Warm the record caches, as a warm Lambda instance has them.
    rt.block_on(async {
        assert!(f.app.check(&Method::GET, &f.path, Some(&f.bearer)).await.is_ok());
        assert!(f.uncached.check(&Method::GET, &f.path, Some(&f.bearer)).await.is_ok());
        assert!(f.flushed.authorize(&Method::GET, &f.path, Some(&f.bearer)).await.is_ok());
        assert!(f.flushed.authorize(&Method::GET, &f.revoked_path, Some(&f.revoked_bearer)).await.is_err());
    });

    let mut g = c.benchmark_group("authorizer");
    let key = DecodingKey::from_ed_der(&f.public_x);
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[format!("project:{}", f.project)]);
    validation.set_required_spec_claims(&["iss", "aud", "sub"]);
    g.bench_function("bare jsonwebtoken EdDSA verify", |b| {
        b.iter(|| jsonwebtoken::decode::<serde_json::Value>(black_box(&f.token), &key, &validation).unwrap())
    });
    // Below the bare verify: the Ed25519 signature check alone, without any JWT parsing.
    let (message, signature) = f.token.rsplit_once('.').unwrap();
    let signature = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature).unwrap()
    };
    let raw = aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &f.public_x);
    g.bench_function("raw Ed25519 signature check (aws-lc-rs)", |b| {
        b.iter(|| raw.verify(black_box(message.as_bytes()), &signature).unwrap())
    });
    // The pure-Rust alternative (its vector backend on x86_64), with the public key decompressed
    // once and the same cofactorless check as aws-lc's; BENCHMARKS.md says why aws-lc-rs stays.
    let dalek_key = ed25519_dalek::VerifyingKey::from_bytes(&f.public_x[..].try_into().unwrap()).unwrap();
    let dalek_signature = ed25519_dalek::Signature::from_slice(&signature).unwrap();
    g.bench_function("raw Ed25519 signature check (ed25519-dalek, key decompressed once)", |b| {
        b.iter(|| {
            use ed25519_dalek::Verifier;
            dalek_key.verify(black_box(message.as_bytes()), &dalek_signature).unwrap()
        })
    });
    g.bench_function("decision, first-seen token, allowed", |b| {
        b.to_async(&rt)
            .iter(|| async { f.uncached.check(&Method::GET, black_box(&f.path), Some(&f.bearer)).await.unwrap() })
    });
    g.bench_function("decision, repeated token, allowed", |b| {
        b.to_async(&rt).iter(|| async { f.app.check(&Method::GET, black_box(&f.path), Some(&f.bearer)).await.unwrap() })
    });
    g.bench_function("decision, first-seen token, denied (bad signature)", |b| {
        b.to_async(&rt)
            .iter(|| async { f.uncached.check(&Method::GET, &f.path, Some(&f.bad_bearer)).await.unwrap_err() })
    });
    g.bench_function("decision, repeated token, denied (permission)", |b| {
        b.to_async(&rt)
            .iter(|| async { f.app.check(&Method::POST, &f.denied_path, Some(&f.bearer)).await.unwrap_err() })
    });
    g.bench_function("decision + metering on SQLite, repeated token", |b| {
        b.to_async(&rt).iter(|| async { f.app.authorize(&Method::GET, &f.path, Some(&f.bearer)).await.unwrap() })
    });
    // The same, as keygate-local decides a whole call: its headers (method overrides) and query
    // read too; eight headers of an ordinary client call.
    let mut headers = http::HeaderMap::new();
    for (name, value) in [
        ("host", "127.0.0.1:3000"),
        ("user-agent", "python-requests/2.32.3"),
        ("accept", "*/*"),
        ("accept-encoding", "gzip, deflate"),
        ("connection", "keep-alive"),
        ("content-type", "application/json"),
        ("x-amzn-trace-id", "Root=1-67891233-abcdef012345678912345678"),
    ] {
        headers.insert(http::HeaderName::from_static(name), http::HeaderValue::from_static(value));
    }
    headers.insert(http::header::AUTHORIZATION, f.bearer.parse().unwrap());
    g.bench_function("decision + metering on SQLite, repeated token, whole call (headers and query read)", |b| {
        b.to_async(&rt).iter(|| async {
            let call = keygate::authorizer::PlatformCall {
                method: &Method::GET,
                path: black_box(&f.path),
                query: Some("limit=10&cursor=abc"),
                headers: &headers,
            };
            f.app.authorize_call(&call).await.unwrap()
        })
    });
    // As the Lambda authorizer runs: its figures recorded for EMF, refusals summed in memory.
    g.bench_function("decision + metering on SQLite, repeated token, EMF figures", |b| {
        b.to_async(&rt).iter(|| async { f.flushed.authorize(&Method::GET, &f.path, Some(&f.bearer)).await.unwrap() })
    });
    // What a refused call costs: counted at once on SQLite (keygate-local), or in memory.
    g.bench_function("refused call (revoked key), counted at once on SQLite", |b| {
        b.to_async(&rt).iter(|| async {
            f.app.authorize(&Method::GET, &f.revoked_path, Some(&f.revoked_bearer)).await.unwrap_err()
        })
    });
    g.bench_function("refused call (revoked key), counted in memory, flushed every 5 s", |b| {
        b.to_async(&rt).iter(|| async {
            f.flushed.authorize(&Method::GET, &f.revoked_path, Some(&f.revoked_bearer)).await.unwrap_err()
        })
    });
    g.bench_function("decision + rate limit + quota + metering on SQLite, repeated token", |b| {
        b.to_async(&rt).iter(|| async {
            let context = f.app.authorize(&Method::GET, &f.limited_path, Some(&f.limited_bearer)).await.unwrap();
            assert!(context.quota_remaining.is_some());
        })
    });
    g.finish();

    // The path read as the platform serves it, then the table: a canonical path, and one whose
    // segments need decoding and Unicode folding.
    c.bench_function("permission lookup", |b| {
        b.iter(|| {
            let path =
                api_path(black_box("/api/projects/01JDQ2ZK3M4N5P6Q7R8S9T0V1W/nodes/out/packages/42/files")).unwrap();
            required_permission(&Method::GET, &path.segments)
        })
    });
    c.bench_function("permission lookup, non-ASCII segments", |b| {
        b.iter(|| {
            let path =
                api_path(black_box("/api/projects/01JDQ2ZK3M4N5P6Q7R8S9T0V1W/nodes/out/pac%E2%84%AAages/%D0%B0"))
                    .unwrap();
            required_permission(&Method::GET, &path.segments)
        })
    });
}

/// The owner's issued-keys page: 50 keys, each with 30 days of hourly usage.
fn issued_keys_page(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = keygate_tests::Scratch::new("bench-keys");
    let (app, owner, project) = rt.block_on(async {
        let t = TestApp::on(Arc::new(SqliteStore::open(&dir.0.join("keygate.db")).unwrap()));
        let first = story::pending_request(&t.app).await;
        let now = t.app.now();
        for i in 0..50 {
            let request =
                if i == 0 { first.request.clone() } else { story::another_request(&t.app, &first, i).await.request };
            let key = t.app.approve(&first.owner, &first.project, &request).await.unwrap().key;
            for h in 0..(30 * 24) {
                story::record_use(&t.app, &key.id, now - chrono::Duration::hours(h), 3).await;
            }
        }
        (t.app, first.owner.clone(), first.project.clone())
    });
    let period = usage::Period::parse(None, None, app.now() + chrono::Duration::hours(1), 366).unwrap();
    let page = keygate::service::PageRequest { limit: 50, cursor: None };
    let rows = rt.block_on(app.list_issued_keys(&owner, &project, period, &page)).unwrap();
    assert_eq!(rows.items.len(), 50);
    assert!(rows.items.iter().all(|r| r.requests == 3 * 30 * 24));
    c.bench_function("issued-keys page, 50 keys x 30 days hourly, SQLite", |b| {
        b.to_async(&rt).iter(|| async { app.list_issued_keys(&owner, &project, period, &page).await.unwrap() })
    });
    let export = || app.export_usage(&owner, &project, period, usage::Granularity::Hour, ExportFormat::Csv, &page);
    let first = rt.block_on(export()).unwrap();
    assert_eq!((first.rows, first.next_cursor.is_none()), (36_000, true), "every hour of every key, one page");
    c.bench_function("billing export, 50 keys x 30 days hourly (36,000 rows), CSV, SQLite", |b| {
        b.to_async(&rt).iter(|| async { export().await.unwrap() })
    });
}

criterion_group!(benches, authorizer, issued_keys_page);
criterion_main!(benches);
