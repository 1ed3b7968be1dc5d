//! The Lambda binaries run for real: each is started as Lambda starts it (pointed at a Runtime
//! API served by the test), configured only through its environment, on the DynamoDB- and
//! SES-compatible server, and fed API Gateway v2 event JSON shaped like the fixtures shipped
//! with `aws_lambda_events` (`tests/fixtures`).

use std::sync::Arc;
use std::time::Duration;

use keygate::ids::ProjectId;
use keygate::signing::KeyRing;
use keygate::store::Store;
use keygate::testing::{ISSUER, TestApp};
use keygate_tests::runtime::{RuntimeApi, function_binary};
use keygate_tests::{aws, require_aws, story};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

/// A function's environment as the template sets it: the signing key and its public half.
fn env(endpoint: &str, table: &str, pem: &str) -> Vec<(&'static str, String)> {
    keygate_tests::runtime::function_env(endpoint, table, pem)
}

/// The authorizer's environment: the signing key's public half alone (it never holds the
/// private key).
fn authorizer_env(endpoint: &str, table: &str, pem: &str) -> Vec<(&'static str, String)> {
    env(endpoint, table, pem).into_iter().filter(|(name, _)| *name != "KEYGATE_SIGNING_KEY").collect()
}

/// An HTTP API authorizer event (payload 2.0) for `method path` with `authorization`.
fn authorizer_event(method: &str, path: &str, project: &str, authorization: Option<&str>) -> Value {
    let mut e = fixture("example-apigw-v2-custom-authorizer-v2-request.json");
    e["routeKey"] = json!("ANY /api/projects/{project}/{proxy+}");
    e["rawPath"] = json!(path);
    e["rawQueryString"] = json!("");
    e["queryStringParameters"] = json!({});
    e["requestContext"]["http"]["method"] = json!(method);
    e["requestContext"]["http"]["path"] = json!(path);
    e["pathParameters"] = json!({"project": project, "proxy": path.splitn(5, '/').nth(4).unwrap_or_default()});
    e["headers"] = match authorization {
        Some(a) => json!({"authorization": a}),
        None => json!({}),
    };
    e["identitySource"] = json!(authorization.into_iter().collect::<Vec<_>>());
    e
}

/// The authorizer's event for a read of project `p`'s last data layer with `token`.
fn data_call(p: &str, token: &str) -> Value {
    authorizer_event("GET", &format!("/api/projects/{p}/data_layers/last"), p, Some(&format!("Bearer {token}")))
}

/// An HTTP API request event with a JWT authorizer's claims, as a `/v1` function receives it.
fn api_event(method: &str, route: &str, params: Value, sub: &str, body: Option<Value>) -> Value {
    let mut path = route.to_owned();
    for (k, v) in params.as_object().unwrap() {
        path = path.replace(&format!("{{{k}}}"), v.as_str().unwrap());
    }
    let mut e = fixture("example-apigw-v2-request-jwt-authorizer.json");
    e["routeKey"] = json!(format!("{method} {route}"));
    e["rawPath"] = json!(path);
    e["rawQueryString"] = json!("");
    e["queryStringParameters"] = json!({});
    e["cookies"] = json!([]);
    e["pathParameters"] = params;
    e["headers"] = json!({"content-type": "application/json"});
    e["requestContext"]["http"]["method"] = json!(method);
    e["requestContext"]["http"]["path"] = json!(path);
    e["requestContext"]["authorizer"]["jwt"]["claims"] = json!({"sub": sub, "email": format!("{sub}@example.com")});
    e["body"] = body.map_or(Value::Null, |b| json!(b.to_string()));
    e
}

/// A key approved on a table of its own on the emulator, and its token.
struct Issued {
    table: String,
    pem: String,
    app: keygate::App,
    s: story::Story,
    key: keygate::key::IssuedKey,
    token: keygate::secret::SecretValue,
    bearer: String,
    p: String,
}

async fn issued(endpoint: &str, label: &str) -> Issued {
    let store = aws::store(endpoint, label).await;
    let table = store.table().to_owned();
    let pem = KeyRing::generate_pem();
    let app = TestApp::with_key(Arc::new(store), &pem).app;
    let s = story::pending_request(&app).await;
    let key = app.approve(&s.owner, &s.project, &s.request).await.unwrap().key;
    let token = app.my_key_token(&s.holder, &key.id).await.unwrap().token;
    let bearer = format!("Bearer {}", token.expose());
    let p = s.project.to_string();
    Issued { table, pem, app, s, key, token, bearer, p }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_compiled_authorizer_allows_meters_and_denies() {
    let Some(endpoint) = require_aws!() else { return };
    let Issued { table, pem, app, s, key, token, bearer, p } = issued(&endpoint, "authorizer").await;

    let runtime = RuntimeApi::start().await;
    let function = runtime.spawn(&function_binary("authorizer"), &authorizer_env(&endpoint, &table, &pem));
    let path = format!("/api/projects/{p}/data_layers/last");
    let allowed = runtime.invoke(authorizer_event("GET", &path, &p, Some(&bearer))).await.expect("an answer");
    eprintln!("authorizer: first answer {:?} after start", function.started.elapsed());
    assert_eq!(allowed["isAuthorized"], true, "{allowed}");
    assert_eq!(allowed["context"]["key_id"], key.id.as_str());
    assert_eq!(allowed["context"]["user_id"], "bob");
    assert_eq!(allowed["context"]["data_layer_id"], key.data_layer_id.as_str());

    let post = format!("/api/projects/{p}/nodes/in/packages");
    let refusals = [
        (authorizer_event("POST", &post, &p, Some(&bearer)), "permission"),
        (authorizer_event("GET", &path, &p, None), "no_key"),
        (authorizer_event("GET", &path, &p, Some("Bearer not.a.key")), "invalid_key"),
        (authorizer_event("GET", &path, &p, Some(&format!("{bearer}x"))), "invalid_key"),
    ];
    for (event, outcome) in refusals {
        let denied = runtime.invoke(event).await.expect("an answer, never a crash");
        assert_eq!(denied["isAuthorized"], false, "{denied}");
        assert_eq!(denied["context"]["outcome"], outcome, "the refusal is named: {denied}");
        assert!(denied["context"]["detail"].as_str().is_some_and(|d| d.len() > 20), "and explained: {denied}");
    }

    let period = keygate::usage::Period::parse(None, None, app.now() + chrono::Duration::hours(1), 366).unwrap();
    let rows = app.list_issued_keys(&s.owner, &s.project, period, &Default::default()).await.unwrap();
    assert_eq!((rows.items[0].requests, rows.items[0].cost), (1, story::PRICE), "only the allowed call is metered");
    assert_eq!(allowed["context"]["quota_remaining"], "unlimited", "{allowed}");

    // A key with a quota of one call a day: the second call is refused (fail closed: an HTTP API
    // answers 403; the context names the limit for the logs and a gateway that maps it), and
    // the holder's notices wait in the outbox for the mail-retry function.
    let q = story::pending_request(&app).await;
    story::limit_template(&app, &q, serde_json::json!({"quota": {"requests": 1, "per": "day"}})).await;
    // The edit takes effect one second after it is saved; the test's application skipped that
    // second on its own clock, the compiled authorizer lives it on the real one.
    tokio::time::sleep(keygate::limits::SETTLE.to_std().unwrap()).await;
    let limited = app.approve(&q.owner, &q.project, &q.request).await.unwrap().key;
    let limited_bearer = format!("Bearer {}", app.my_key_token(&q.holder, &limited.id).await.unwrap().token.expose());
    let qp = q.project.to_string();
    let qpath = format!("/api/projects/{qp}/data_layers/last");
    let first = runtime.invoke(authorizer_event("GET", &qpath, &qp, Some(&limited_bearer))).await.unwrap();
    assert_eq!((&first["isAuthorized"], &first["context"]["quota_remaining"]), (&json!(true), &json!(0)), "{first}");
    let over = runtime.invoke(authorizer_event("GET", &qpath, &qp, Some(&limited_bearer))).await.unwrap();
    assert_eq!(over["isAuthorized"], false, "{over}");
    assert_eq!(over["context"]["limit"], "quota", "{over}");
    assert!(over["context"]["retry_after"].as_u64().is_some_and(|s| (1..=86_400).contains(&s)), "{over}");
    assert!(over["context"]["ratelimit_policy"].as_str().unwrap().starts_with("\"quota\";q=1;"), "{over}");
    let outbox =
        app.store.query(&keygate::store::Query::prefix(keygate::store::layout::OUTBOX_PK, "Q#")).await.unwrap();
    let notices: Vec<_> = outbox.items.iter().filter(|i| i.key.sk.contains(limited.id.as_str())).collect();
    assert_eq!(notices.len(), 2, "the 80 % and 100 % notices, once each: {notices:?}");
    let logs = function.logs();
    assert!(logs.contains("call denied"), "the function's JSON logs were captured: {logs}");
    let signature = token.expose().rsplit('.').next().unwrap();
    assert!(!logs.contains(signature), "the key reached the function's logs");
}

/// A REST API `REQUEST` authorizer event (the optional REST stage) for `method path`.
fn rest_event(method: &str, path: &str, headers: Value) -> Value {
    let mut e = fixture("example-apigw-custom-auth-request-type-request.json");
    e["methodArn"] = json!(format!("arn:aws:execute-api:eu-west-1:123456789012:api1/platform/{method}{path}"));
    e["resource"] = json!("/api/projects/{project}/{proxy+}");
    e["path"] = json!(path);
    e["httpMethod"] = json!(method);
    let multi: serde_json::Map<String, Value> =
        headers.as_object().unwrap().iter().map(|(k, v)| (k.clone(), json!([v]))).collect();
    e["headers"] = headers;
    e["multiValueHeaders"] = Value::Object(multi);
    e["queryStringParameters"] = json!({});
    e["multiValueQueryStringParameters"] = json!({});
    e
}

/// The compiled authorizer of the REST stage (KEYGATE_AUTHORIZER_EVENTS=rest) makes the same
/// decisions and answers them as IAM policies on the method's ARN, a denial with the context
/// the stage's ACCESS_DENIED response reads: the caller learns the outcome and its words. The
/// attacker's classes (an encoded separator, a method override, a second Authorization) are
/// refused here too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_compiled_rest_stage_authorizer_answers_policies_with_the_refusals_words() {
    let Some(endpoint) = require_aws!() else { return };
    let Issued { table, pem, key, token, bearer, p, .. } = issued(&endpoint, "restauth").await;
    let runtime = RuntimeApi::start().await;
    let mut env = authorizer_env(&endpoint, &table, &pem);
    env.push(("KEYGATE_AUTHORIZER_EVENTS", "rest".into()));
    let function = runtime.spawn(&function_binary("authorizer"), &env);

    let path = format!("/api/projects/{p}/data_layers/last");
    let allowed = runtime.invoke(rest_event("GET", &path, json!({"Authorization": bearer}))).await.expect("an answer");
    let statement = &allowed["policyDocument"]["Statement"][0];
    assert_eq!(
        (statement["Effect"].as_str(), statement["Action"].as_str()),
        (Some("Allow"), Some("execute-api:Invoke")),
        "{allowed}"
    );
    assert!(statement["Resource"].as_str().unwrap().ends_with(&format!("/platform/GET{path}")), "{allowed}");
    assert_eq!(allowed["context"]["key_id"], key.id.as_str());

    let post = format!("/api/projects/{p}/nodes/in/packages");
    let refusals = [
        (rest_event("POST", &post, json!({"Authorization": bearer})), "permission"),
        (rest_event("GET", &path, json!({"Authorization": "Bearer not.a.key"})), "invalid_key"),
        (
            rest_event("GET", &format!("/api/projects/{p}/data_layers%2Flast"), json!({"Authorization": bearer})),
            "bad_call",
        ),
        (rest_event("GET", &path, json!({"Authorization": bearer, "X-HTTP-Method-Override": "DELETE"})), "bad_call"),
        (
            rest_event("GET", &format!("/API/projects/{p}/data_layers/last"), json!({"Authorization": bearer})),
            "bad_call",
        ),
    ];
    for (event, outcome) in refusals {
        let denied = runtime.invoke(event).await.expect("an answer, never a crash");
        assert_eq!(denied["policyDocument"]["Statement"][0]["Effect"], "Deny", "{denied}");
        assert_eq!(denied["context"]["outcome"], outcome, "the refusal is named: {denied}");
        assert!(denied["context"]["detail"].as_str().is_some_and(|d| d.len() > 20), "and explained: {denied}");
        assert!(denied["context"].as_object().unwrap().values().all(|v| !v.is_object() && !v.is_array()), "{denied}");
    }
    // Two Authorization headers (multiValueHeaders) are not one.
    let mut two = rest_event("GET", &path, json!({"Authorization": bearer}));
    two["multiValueHeaders"]["Authorization"] = json!([bearer, "Bearer other"]);
    let denied = runtime.invoke(two).await.unwrap();
    assert_eq!(denied["policyDocument"]["Statement"][0]["Effect"], "Deny", "{denied}");
    let signature = token.expose().rsplit('.').next().unwrap();
    assert!(!function.logs().contains(signature), "the key reached the function's logs");
}

/// The compiled authorizer's figures are CloudWatch metrics in Embedded Metric Format in its
/// own log lines, and the refusals it adds up in memory are written at once for the first,
/// then when Lambda shuts the instance down (SIGTERM, which Lambda sends only to a runtime with
/// an extension: the function registers a no-op one).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_compiled_authorizer_writes_figures_in_its_log_lines_and_refusals_on_shutdown() {
    let Some(endpoint) = require_aws!() else { return };
    let store = aws::store(&endpoint, "authorizer-figures").await;
    let table = store.table().to_owned();
    let pem = KeyRing::generate_pem();
    let app = TestApp::with_key(Arc::new(store), &pem).app;
    let (good, gone) = (story::pending_request(&app).await, story::pending_request(&app).await);
    let good_key = app.approve(&good.owner, &good.project, &good.request).await.unwrap().key;
    let gone_key = app.approve(&gone.owner, &gone.project, &gone.request).await.unwrap().key;
    let bearer = |k: &keygate::key::IssuedKey, s: &story::Story| {
        let app = &app;
        let (id, holder) = (k.id.clone(), s.holder.clone());
        async move { format!("Bearer {}", app.my_key_token(&holder, &id).await.unwrap().token.expose()) }
    };
    let (good_bearer, gone_bearer) = (bearer(&good_key, &good).await, bearer(&gone_key, &gone).await);
    app.revoke(&gone.owner, &gone.project, &gone_key.id).await.unwrap();

    let runtime = RuntimeApi::start().await;
    let mut function = runtime.spawn(&function_binary("authorizer"), &authorizer_env(&endpoint, &table, &pem));
    let (gp, rp) = (good.project.to_string(), gone.project.to_string());
    let read = |p: &str| format!("/api/projects/{p}/data_layers/last");
    let mut calls = Vec::new();
    calls.extend((0..5).map(|_| (authorizer_event("GET", &read(&rp), &rp, Some(&gone_bearer)), false)));
    calls.extend((0..3).map(|_| (authorizer_event("GET", &read(&gp), &gp, Some(&good_bearer)), true)));
    let post = format!("/api/projects/{gp}/nodes/in/packages");
    calls.extend((0..2).map(|_| (authorizer_event("POST", &post, &gp, Some(&good_bearer)), false)));
    for (event, allowed) in calls {
        assert_eq!(runtime.invoke(event).await.unwrap()["isAuthorized"], allowed);
    }
    assert_eq!(runtime.extensions(), 1, "the no-op extension registered, so that Lambda sends SIGTERM");
    let hour = keygate::usage::hour_of(app.now());
    let refusals = |key: &keygate::ids::KeyId| {
        let store = app.store.clone();
        let row = keygate::store::layout::key_refusals(key, hour);
        async move { store.get(&row).await.unwrap().map(|i| i.counters).unwrap_or_default() }
    };
    assert_eq!(refusals(&gone_key.id).await.get("revoked"), Some(&1), "the first refusal is written at once");
    assert!(function.terminate(), "the function ends within Lambda's 500 ms of its SIGTERM");
    assert_eq!(refusals(&gone_key.id).await.get("revoked"), Some(&5), "the rest when it shuts down");
    assert_eq!(refusals(&good_key.id).await.get("permission"), Some(&2));

    let logs = function.logs();
    let emf: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l.get("_aws").is_some())
        .collect();
    let mut decisions = std::collections::BTreeMap::new();
    let (mut timed, mut metered) = (0, 0);
    for line in &emf {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "keygate", "{line}");
        assert!(line["_aws"]["Timestamp"].as_u64().is_some(), "{line}");
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(line.get(name).is_some(), "every metric named has its value: {line}");
        }
        if let Some(n) = line["decisions"].as_u64() {
            *decisions.entry(line["outcome"].as_str().unwrap().to_owned()).or_insert(0) += n;
        }
        let counts =
            |name: &str| line[name]["Counts"].as_array().map_or(0, |c| c.iter().filter_map(Value::as_u64).sum());
        timed += counts("decision_time");
        metered += counts("metering_time");
    }
    let expected: std::collections::BTreeMap<String, u64> =
        [("allowed".into(), 3), ("revoked".into(), 5), ("permission".into(), 2)].into();
    assert_eq!(decisions, expected, "every decision counted by outcome in the EMF lines: {emf:?}");
    assert_eq!((timed, metered), (10, 3), "every decision timed, every metering write timed");
    assert!(emf.iter().any(|l| l["cache"] == "token"), "and the caches' hits: {emf:?}");
}

/// The spellings of `tests/src/spellings.rs` through the compiled authorizer, on `rawPath` as
/// API Gateway hands it: each decided like its canonical form, or denied with the reason named
/// in the context; and the headers and query that keygate-local drops or refuses, refused here
/// (an HTTP API cannot drop them on the way to the platform).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_compiled_authorizer_decides_on_the_canonical_path_and_refuses_what_cannot_be_dropped() {
    use keygate_tests::spellings::{SPELLINGS, canonical_method, keys};
    let Some(endpoint) = require_aws!() else { return };
    let store = aws::store(&endpoint, "spellings-lambda").await;
    let table = store.table().to_owned();
    let pem = KeyRing::generate_pem();
    let app = TestApp::with_key(Arc::new(store), &pem).app;
    let k = keys(&app).await;
    let p = k.story.project.to_string();
    let runtime = RuntimeApi::start().await;
    let _function = runtime.spawn(&function_binary("authorizer"), &authorizer_env(&endpoint, &table, &pem));
    let mut allowed = 0;
    for token in [&k.viewer, &k.packager] {
        let bearer = format!("Bearer {token}");
        for (spelling, canonical) in SPELLINGS {
            for m in ["GET", "post", "DELETE"] {
                let path = format!("/api/projects/{p}/{spelling}");
                let got = runtime.invoke(authorizer_event(m, &path, &p, Some(&bearer))).await.expect("an answer");
                match canonical {
                    None => {
                        assert_eq!(got["isAuthorized"], false, "{m} {spelling}: {got}");
                        assert!(got["context"]["refused"].is_string(), "{m} {spelling}: the reason is named: {got}");
                        assert!(got["context"]["detail"].as_str().is_some_and(|d| d.contains("path")), "{got}");
                    }
                    Some(c) => {
                        let canonical_path = format!("/api/projects/{p}/{c}");
                        let event = authorizer_event(canonical_method(m).as_str(), &canonical_path, &p, Some(&bearer));
                        let want = runtime.invoke(event).await.expect("an answer");
                        assert_eq!(got["isAuthorized"], want["isAuthorized"], "{m} {spelling} is decided unlike {c}");
                        allowed += 2 * usize::from(got["isAuthorized"] == true);
                    }
                }
            }
        }
    }
    assert!(allowed > 0);

    let bearer = format!("Bearer {}", k.packager);
    let path = format!("/api/projects/{p}/data_layers/last");
    let with = |headers: Value, query: &str| {
        let mut e = authorizer_event("GET", &path, &p, Some(&bearer));
        for (name, value) in headers.as_object().unwrap() {
            e["headers"][name] = value.clone();
        }
        e["rawQueryString"] = json!(query);
        e
    };
    let cases = [
        (json!({"x-keygate-user-id": "mallory"}), "", None),
        (json!({"x_keygate_user_id": "mallory"}), "", Some("context_header")),
        (json!({"x-keygate-anything": "1"}), "", Some("context_header")),
        (json!({"proxy-authorization": "Basic c2VjcmV0"}), "", Some("proxy_authorization")),
        (json!({"x-http-method-override": "DELETE"}), "", Some("method_override")),
        (json!({"x_method_override": "DELETE"}), "", Some("method_override")),
        (json!({}), "a=1&_method=DELETE", Some("method_override")),
    ];
    for (headers, query, refused) in cases {
        let answer = runtime.invoke(with(headers.clone(), query)).await.expect("an answer");
        match refused {
            None => {
                assert_eq!(answer["isAuthorized"], true, "{headers}: {answer}");
                allowed += 1;
            }
            Some(code) => {
                assert_eq!(answer["isAuthorized"], false, "{headers} {query}: {answer}");
                assert_eq!(answer["context"]["refused"], code, "{answer}");
            }
        }
    }
    let period = keygate::usage::Period::parse(None, None, app.now() + chrono::Duration::hours(1), 366).unwrap();
    let rows = app.list_issued_keys(&k.story.owner, &k.story.project, period, &Default::default()).await.unwrap();
    let metered: i64 = rows.items.iter().map(|r| r.requests).sum();
    assert_eq!(metered, allowed as i64, "refused calls are never metered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_authorizer_fails_closed_when_its_store_is_missing() {
    let Some(endpoint) = require_aws!() else { return };
    let store = aws::store(&endpoint, "closed").await;
    let pem = KeyRing::generate_pem();
    let app = TestApp::with_key(Arc::new(store), &pem).app;
    let s = story::pending_request(&app).await;
    let key = app.approve(&s.owner, &s.project, &s.request).await.unwrap().key;
    let token = app.my_key_token(&s.holder, &key.id).await.unwrap().token;
    let runtime = RuntimeApi::start().await;
    let _f = runtime.spawn(&function_binary("authorizer"), &authorizer_env(&endpoint, "no-such-table", &pem));
    let answer = runtime.invoke(data_call(s.project.as_str(), token.expose())).await.expect("an answer");
    assert_eq!(answer["isAuthorized"], false);
}

/// On a table of a newer storage layout (issue 31) the compiled authorizer decides nothing: it
/// reads the layout item with its first key record (no round trip of its own), refuses the
/// call as unavailable, and logs why, naming both versions; and so every call after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_compiled_authorizer_refuses_every_call_on_a_newer_storage_layout() {
    let Some(endpoint) = require_aws!() else { return };
    let store = aws::store(&endpoint, "newer-layout-authorizer").await;
    let table = store.table().to_owned();
    let store: Arc<dyn Store> = Arc::new(store);
    let pem = KeyRing::generate_pem();
    let app = TestApp::with_key(store.clone(), &pem).app;
    let s = story::pending_request(&app).await;
    let key = app.approve(&s.owner, &s.project, &s.request).await.unwrap().key;
    let token = app.my_key_token(&s.holder, &key.id).await.unwrap().token;
    keygate_tests::layout_from_the_future(store.as_ref()).await;
    let runtime = RuntimeApi::start().await;
    let f = runtime.spawn(&function_binary("authorizer"), &authorizer_env(&endpoint, &table, &pem));
    let event = data_call(s.project.as_str(), token.expose());
    for _ in 0..2 {
        let answer = runtime.invoke(event.clone()).await.expect("an answer");
        assert_eq!(
            (answer["isAuthorized"].as_bool(), answer["context"]["outcome"].as_str()),
            (Some(false), Some("unavailable")),
            "{answer}"
        );
    }
    let logs = f.logs();
    keygate_tests::names_both_layouts(&logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compiled_management_functions_serve_api_gateway_events() {
    let Some(endpoint) = require_aws!() else { return };
    aws::verify_sender(&endpoint).await;
    let store = Arc::new(aws::store(&endpoint, "functions").await);
    let table = store.table().to_owned();
    let pem = KeyRing::generate_pem();
    let app = TestApp::with_key(store.clone(), &pem).app;
    let s = story::pending_request(&app).await;
    let p = s.project.to_string();
    let runtime = RuntimeApi::start().await;

    let create = runtime.spawn(&function_binary("create-template"), &env(&endpoint, &table, &pem));
    let body = json!({"name": "Bulk API", "role": "reader", "price_per_request": 2, "fields": [{"name": "project", "kind": "project"}]});
    let answer = runtime
        .invoke(api_event("POST", "/v1/projects/{project}/templates", json!({"project": p}), "ann", Some(body)))
        .await
        .expect("an answer");
    assert_eq!(answer["statusCode"], 201, "{answer}");
    let created: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(created["fields"][0]["value"], p.as_str());
    let stored = store
        .get(&keygate::store::layout::template(
            &s.project,
            &keygate::ids::TemplateId::parse(created["id"].as_str().unwrap()).unwrap(),
        ))
        .await
        .unwrap();
    assert!(stored.is_some(), "the function wrote to the table");

    let refused = runtime
        .invoke(api_event(
            "POST",
            "/v1/projects/{project}/templates",
            json!({"project": p}),
            "bob",
            Some(json!({"name": "x", "role": "reader"})),
        ))
        .await
        .expect("an answer");
    assert_eq!(refused["statusCode"], 403, "{refused}");
    assert!(refused["headers"]["content-type"].as_str().unwrap().starts_with("application/problem+json"));
    drop(create);

    // Approving signs nothing (the key's token is made when its holder asks for it): the
    // function is given the public key alone, and reads no private key.
    let approve = runtime.spawn(&function_binary("approve-request"), &authorizer_env(&endpoint, &table, &pem));
    let answer = runtime
        .invoke(api_event(
            "POST",
            "/v1/projects/{project}/requests/{request}/approve",
            json!({"project": p, "request": s.request.as_str()}),
            "ann",
            None,
        ))
        .await
        .expect("an answer");
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let approval: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(approval["notification"], "sent", "mail went through SES");
    let mail = aws::sent_mail(&endpoint).await;
    assert!(
        mail.iter()
            .any(|m| m.starts_with("To: bob@example.com\r\n") && m.contains(approval["key"]["id"].as_str().unwrap()))
    );

    drop(approve);

    // The holder's token comes from the function that signs, with the private key.
    let _token = runtime.spawn(&function_binary("my-key-token"), &env(&endpoint, &table, &pem));
    let key_id = approval["key"]["id"].as_str().unwrap();
    let answer = runtime
        .invoke(api_event("GET", "/v1/me/keys/{key}/token", json!({"key": key_id}), "bob", None))
        .await
        .expect("an answer");
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let token: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    let claims = KeyRing::new(ISSUER, &pem, &[]).unwrap().verify(
        token["token"].as_str().unwrap(),
        &s.project,
        chrono::Utc::now(),
    );
    assert!(claims.is_ok_and(|c| c.jti == key_id), "the token is signed with the deployed key");

    // The key describes itself through its own function, with the public key alone: no user
    // token (no JWT authorizer on the route), the key in Authorization.
    let runtime = RuntimeApi::start().await;
    let describe = runtime.spawn(&function_binary("describe-key"), &authorizer_env(&endpoint, &table, &pem));
    let mut event = api_event("GET", "/v1/key", json!({}), "bob", None);
    event["requestContext"].as_object_mut().unwrap().remove("authorizer");
    event["headers"] = json!({"authorization": format!("Bearer {}", token["token"].as_str().unwrap())});
    let answer = runtime.invoke(event).await.expect("an answer");
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let described: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (described["key_id"].as_str(), described["state"].as_str()),
        (Some(key_id), Some("active")),
        "{described}"
    );
    // Counted as its own figure (EMF in the function's log), not as a decision.
    let mut figure = None;
    for _ in 0..40 {
        figure = describe.logs().lines().find(|l| l.contains("\"key_described\"")).map(str::to_owned);
        if figure.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let figure: Value = serde_json::from_str(&figure.expect("a key_described EMF line")).unwrap();
    assert_eq!((figure["answer"].as_str(), figure["key_described"].as_u64()), (Some("described"), Some(1)), "{figure}");

    // The key mints a narrowed token of itself through the function that signs (no user
    // token); its holder lists the token and revokes it through functions of their own.
    let runtime = RuntimeApi::start().await;
    let _mint = runtime.spawn(&function_binary("mint-key-token"), &env(&endpoint, &table, &pem));
    let mut event =
        api_event("POST", "/v1/key/tokens", json!({}), "bob", Some(json!({"label": "ci", "ttl_seconds": 3600})));
    event["requestContext"].as_object_mut().unwrap().remove("authorizer");
    event["headers"]["authorization"] = json!(format!("Bearer {}", token["token"].as_str().unwrap()));
    let answer = runtime.invoke(event).await.expect("an answer");
    assert_eq!(answer["statusCode"], 201, "{answer}");
    let minted: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    let child = KeyRing::new(ISSUER, &pem, &[]).unwrap().verify(
        minted["token"].as_str().unwrap(),
        &s.project,
        chrono::Utc::now(),
    );
    let token_id = minted["id"].as_str().unwrap();
    assert!(
        child.is_ok_and(|c| c.jti == token_id && c.key_id() == key_id),
        "a narrowed token of the key, signed with the deployed key"
    );

    let runtime = RuntimeApi::start().await;
    let _list = runtime.spawn(&function_binary("list-my-key-tokens"), &authorizer_env(&endpoint, &table, &pem));
    let answer = runtime
        .invoke(api_event("GET", "/v1/me/keys/{key}/tokens", json!({"key": key_id}), "bob", None))
        .await
        .expect("an answer");
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let listed: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(listed["items"][0]["label"], "ci", "{listed}");
    assert!(!answer["body"].as_str().unwrap().contains(minted["token"].as_str().unwrap()), "no token in a list");

    let runtime = RuntimeApi::start().await;
    let _revoke = runtime.spawn(&function_binary("revoke-my-key-token"), &authorizer_env(&endpoint, &table, &pem));
    let answer = runtime
        .invoke(api_event(
            "DELETE",
            "/v1/me/keys/{key}/tokens/{token}",
            json!({"key": key_id, "token": token_id}),
            "bob",
            None,
        ))
        .await
        .expect("an answer");
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let record = keygate::store::layout::narrowed_token(
        &s.project,
        &keygate::ids::KeyId::parse(key_id).unwrap(),
        &keygate::ids::TokenId::parse(token_id).unwrap(),
    );
    assert!(store.get(&record).await.unwrap().is_none(), "the token's record is gone");
}

#[tokio::test]
async fn a_function_with_bad_configuration_stops_naming_the_setting() {
    let runtime = RuntimeApi::start().await;
    let binary = function_binary("authorizer");
    let out = std::process::Command::new(&binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &runtime.address)
        .env("KEYGATE_TABLE", "t")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("KEYGATE_SIGNING_PUBLIC_KEY is not set"), "{stderr}");
}

/// A signing key that is not the deployed public key's would have every key it issues refused
/// by the authorizer: the function stops at start instead, naming the setting.
#[tokio::test]
async fn a_function_whose_signing_key_is_not_the_deployed_one_stops() {
    let runtime = RuntimeApi::start().await;
    let pem = KeyRing::generate_pem();
    let mut env = env("http://127.0.0.1:9", "t", &pem);
    for (name, value) in env.iter_mut() {
        if *name == "KEYGATE_SIGNING_PUBLIC_KEY" {
            *value = aws::signing_public_key(&KeyRing::generate_pem());
        }
    }
    let (ok, stderr) = keygate_tests::runtime::run_to_exit(&function_binary("my-key-token"), &runtime, env);
    assert!(!ok);
    assert!(stderr.contains("KEYGATE_SIGNING_PUBLIC_KEY is invalid: is not the public half"), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
}

/// A GET as API Gateway hands it to the console function (no authorizer).
fn console_event(path: &str) -> Value {
    let mut e = fixture("example-apigw-v2-request-jwt-authorizer.json");
    e["routeKey"] = json!(if path == "/" { "GET /" } else { "GET /{proxy+}" });
    e["rawPath"] = json!(path);
    e["rawQueryString"] = json!("");
    e["queryStringParameters"] = json!({});
    e["cookies"] = json!([]);
    e["pathParameters"] = json!({"proxy": path.trim_start_matches('/')});
    e["headers"] = json!({"accept-encoding": "gzip, br"});
    e["requestContext"]["http"]["method"] = json!("GET");
    e["requestContext"]["http"]["path"] = json!(path);
    e["requestContext"]["authorizer"] = Value::Null;
    e["body"] = Value::Null;
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compiled_console_serves_its_page_files_and_sign_in_settings() {
    use base64::Engine;
    let runtime = RuntimeApi::start().await;
    let env = [
        ("KEYGATE_OIDC_ISSUER", "https://id.example.com/realms/platform".to_owned()),
        ("KEYGATE_OIDC_CLIENT_ID", "keygate-console".to_owned()),
        ("KEYGATE_CURRENCY", "JPY".to_owned()),
        ("KEYGATE_CURRENCY_EXPONENT", "0".to_owned()),
    ];
    let _console = runtime.spawn(&function_binary("console"), &env);
    let page = runtime.invoke(console_event("/projects/01ABC/requests")).await.expect("an answer");
    assert_eq!(page["statusCode"], 200, "{page}");
    assert_eq!(page["headers"]["content-encoding"], "gzip");
    assert!(
        page["headers"]["content-security-policy"]
            .as_str()
            .unwrap()
            .contains("connect-src 'self' https://id.example.com;")
    );
    assert_eq!(page["isBase64Encoded"], true, "gzip travels base64-encoded through API Gateway");
    let gzip = base64::engine::general_purpose::STANDARD.decode(page["body"].as_str().unwrap()).unwrap();
    let mut html = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gzip.as_slice()), &mut html).unwrap();
    assert!(html.contains("/console/app.js"), "{html}");
    let config = runtime.invoke(console_event("/console/config.json")).await.expect("an answer");
    let body = base64::engine::general_purpose::STANDARD.decode(config["body"].as_str().unwrap_or_default()).ok();
    let text =
        body.map(|b| String::from_utf8(b).unwrap()).unwrap_or_else(|| config["body"].as_str().unwrap().to_owned());
    let config: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        config,
        json!({"sign_in": "oidc", "issuer": "https://id.example.com/realms/platform", "client_id": "keygate-console", "scope": "openid email profile", "currency": {"code": "JPY", "exponent": 0}})
    );
    let api = runtime.invoke(console_event("/v1/nothing")).await.expect("an answer");
    assert_eq!(api["statusCode"], 404);
    assert_eq!(api["headers"]["content-type"], keygate::http::PROBLEM_JSON);
}

/// A refusal never waits for a store write (issue 30): with a DynamoDB endpoint that accepts
/// connections and never answers, the compiled authorizer refuses a forged key, and a call
/// without one, within 50 ms each, its first refusal (whose count is written in the
/// background) included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_compiled_authorizer_refuses_a_forged_key_at_once_while_its_store_does_not_answer() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            sockets.push(socket);
        }
    });
    let pem = KeyRing::generate_pem();
    let runtime = RuntimeApi::start().await;
    let _f = runtime.spawn(&function_binary("authorizer"), &authorizer_env(&endpoint, "silent", &pem));
    let started = std::time::Instant::now();
    while runtime.first_poll().is_none() {
        assert!(started.elapsed() < Duration::from_secs(10), "the authorizer did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let project = ProjectId::generate();
    let p = project.to_string();
    let path = format!("/api/projects/{p}/data_layers/last");
    let forged = format!("Bearer {}", keygate_tests::refusals::forged_token(&project));
    for (authorization, outcome) in
        [(Some(forged.as_str()), "invalid_key"), (None, "no_key"), (Some(forged.as_str()), "invalid_key")]
    {
        let asked = std::time::Instant::now();
        let answer = runtime.invoke(authorizer_event("GET", &path, &p, authorization)).await.expect("an answer");
        let took = asked.elapsed();
        assert_eq!(
            (answer["isAuthorized"].as_bool(), answer["context"]["outcome"].as_str()),
            (Some(false), Some(outcome))
        );
        assert!(took < Duration::from_millis(50), "{outcome} refused after {took:?}");
    }
    held.abort();
}

/// Three compiled authorizers on one table, as API Gateway runs instances side by side (issue
/// 30): a quota of 100 allows exactly 100 of 300 calls spread over them; a template's quota
/// lowered from 200 to 100 after 60 calls allows exactly 40 more on all three, raised from 100
/// to 200 exactly 140; a strict rate of 5/s with bursts of 5 allows at most 5 + 5 t calls in
/// t seconds across the three, and at least 90 % of that; a revocation is refused by all three
/// within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_compiled_authorizers_on_one_table_keep_the_quota_exact() {
    let Some(endpoint) = require_aws!() else { return };
    let store = aws::store(&endpoint, "three-authorizers").await;
    let table = store.table().to_owned();
    let pem = KeyRing::generate_pem();
    let t = TestApp::with_key(Arc::new(store), &pem);
    let app = &t.app;
    let mut instances = Vec::new();
    for _ in 0..3 {
        let runtime = RuntimeApi::start().await;
        let function = runtime.spawn(&function_binary("authorizer"), &authorizer_env(&endpoint, &table, &pem));
        instances.push((runtime, function));
    }
    // The application decides with the authorizers' clock: the real one.
    let now = || t.set_time(chrono::Utc::now());
    let key_with = |quota: i64| async move {
        now();
        let s = story::pending_request(app).await;
        story::limit_template(app, &s, json!({"quota": {"requests": quota, "per": "day"}})).await;
        tokio::time::sleep(keygate::limits::SETTLE.to_std().unwrap()).await;
        let key = app.approve(&s.owner, &s.project, &s.request).await.unwrap().key;
        let token = app.my_key_token(&s.holder, &key.id).await.unwrap().token.expose().to_owned();
        (s, key.id, token)
    };
    let calls = |s: &story::Story, token: &str, n: usize| {
        let p = s.project.to_string();
        let bearer = format!("Bearer {token}");
        let instances = &instances;
        async move {
            let per_instance = (0..3).map(|i| {
                let (p, bearer) = (p.clone(), bearer.clone());
                async move {
                    let path = format!("/api/projects/{p}/data_layers/last");
                    let mut allowed = 0;
                    for _ in (0..n).skip(i).step_by(3) {
                        let answer = instances[i].0.invoke(authorizer_event("GET", &path, &p, Some(&bearer))).await;
                        let answer = answer.expect("an answer");
                        match answer["isAuthorized"].as_bool() {
                            Some(true) => allowed += 1,
                            _ => assert_eq!(answer["context"]["outcome"], "quota", "{answer}"),
                        }
                    }
                    allowed
                }
            });
            futures_util::future::join_all(per_instance).await.into_iter().sum::<usize>()
        }
    };

    let (s, _, token) = key_with(100).await;
    assert_eq!(calls(&s, &token, 300).await, 100, "exactly the quota across three instances");
    let period =
        keygate::usage::Period::parse(None, None, chrono::Utc::now() + chrono::Duration::hours(1), 366).unwrap();
    let rows = app.list_issued_keys(&s.owner, &s.project, period, &Default::default()).await.unwrap();
    assert_eq!(rows.items[0].requests, 100, "each allowed call counted once");

    let (s, key, token) = key_with(200).await;
    assert_eq!(calls(&s, &token, 60).await, 60);
    now();
    story::limit_template(app, &s, json!({"quota": {"requests": 100, "per": "day"}})).await;
    tokio::time::sleep(keygate::limits::SETTLE.to_std().unwrap()).await;
    assert_eq!(calls(&s, &token, 300).await, 40, "200 → 100 after 60 calls: 40 more on all three");

    let (raised, _, raised_token) = key_with(100).await;
    assert_eq!(calls(&raised, &raised_token, 60).await, 60);
    now();
    story::limit_template(app, &raised, json!({"quota": {"requests": 200, "per": "day"}})).await;
    tokio::time::sleep(keygate::limits::SETTLE.to_std().unwrap()).await;
    assert_eq!(calls(&raised, &raised_token, 300).await, 140, "100 → 200 after 60 calls: 140 more on all three");

    // A strict rate of 5 a second with bursts of 5, called as fast as the three answer.
    now();
    let paced = story::pending_request(app).await;
    story::limit_template(app, &paced, json!({"rate_limit": {"per_second": 5, "burst": 5, "mode": "strict"}})).await;
    tokio::time::sleep(keygate::limits::SETTLE.to_std().unwrap()).await;
    let paced_key = app.approve(&paced.owner, &paced.project, &paced.request).await.unwrap().key;
    let paced_bearer =
        format!("Bearer {}", app.my_key_token(&paced.holder, &paced_key.id).await.unwrap().token.expose());
    let p = paced.project.to_string();
    let path = format!("/api/projects/{p}/data_layers/last");
    let started = std::time::Instant::now();
    let deadline = started + Duration::from_secs(3);
    let per_instance = instances.iter().map(|(runtime, _)| {
        let (path, p, bearer) = (path.clone(), p.clone(), paced_bearer.clone());
        async move {
            let mut allowed = 0;
            while std::time::Instant::now() < deadline {
                let answer =
                    runtime.invoke(authorizer_event("GET", &path, &p, Some(&bearer))).await.expect("an answer");
                match answer["isAuthorized"].as_bool() {
                    Some(true) => allowed += 1,
                    _ => assert_eq!(answer["context"]["outcome"], "rate_limit", "{answer}"),
                }
            }
            allowed
        }
    });
    let allowed: usize = futures_util::future::join_all(per_instance).await.into_iter().sum();
    let most = 5.0 + 5.0 * started.elapsed().as_secs_f64();
    assert!(allowed as f64 <= most && allowed as f64 >= 0.9 * most, "{allowed} allowed, the limit {most:.1}");

    now();
    app.revoke(&s.owner, &s.project, &key).await.unwrap();
    let revoked = std::time::Instant::now();
    let p = s.project.to_string();
    let path = format!("/api/projects/{p}/data_layers/last");
    let bearer = format!("Bearer {token}");
    for (runtime, _) in &instances {
        loop {
            let answer = runtime.invoke(authorizer_event("GET", &path, &p, Some(&bearer))).await.expect("an answer");
            if answer["context"]["outcome"] == "revoked" {
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_secs(1),
                "not refused as revoked after {:?}: {answer}",
                revoked.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
