//! An allowed call is forwarded to `--upstream` with the same method, path (with `/api`), query
//! and body, plus the authorizer's context as `x-keygate-*` headers; the API key and any
//! client-sent `x-keygate-*` header are not passed on; the upstream's answer comes back.

use keygate_tests::LocalGateway;
use keygate_tests::upstream::RecordingUpstream;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn allowed_calls_reach_the_upstream_with_the_context() {
    let upstream = RecordingUpstream::start().await;
    let gw = LocalGateway::start(&["--upstream", &upstream.url]);
    let (ann, bob) = (gw.token("ann"), gw.token("bob"));
    let role = ("writer", ["project_view", "package_create"].as_slice());
    let (p, t) = gw.project_with_template(&ann, "Up", role, json!({"name": "W", "role": "writer"})).await;
    let (a, token) = gw.issue_key(&ann, &bob, &p, &t).await;
    let key_id = a["id"].as_str().unwrap().to_owned();
    let token = token.as_str();

    let res = gw
        .http
        .post(format!("{}/api/projects/{p}/nodes/in/packages?label=x&n=1", gw.url))
        .bearer_auth(token)
        .header("x-keygate-user-id", "mallory")
        .header("content-type", "application/json")
        .body(r#"{"fields":{"size":3}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "the upstream's status comes back");
    assert_eq!(res.headers()["x-upstream"], "yes");
    assert_eq!(res.text().await.unwrap(), "{\"id\": \"pkg-1\"}");

    let calls = upstream.seen().await;
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.uri, format!("/api/projects/{p}/nodes/in/packages?label=x&n=1"));
    assert_eq!(call.body, r#"{"fields":{"size":3}}"#);
    let header = |name: &str| call.header(name);
    assert_eq!(header("x-keygate-key-id"), [key_id.as_str()]);
    assert_eq!(header("x-keygate-user-id"), ["bob"], "a client cannot forge the context");
    assert_eq!(header("x-keygate-project-id"), [p.as_str()]);
    assert_eq!(header("x-keygate-data-layer-id"), [a["data_layer_id"].as_str().unwrap()]);
    assert!(header("authorization").is_empty(), "the API key is not passed on");
    assert_eq!(header("content-type"), ["application/json"]);

    // A denied call never reaches the upstream.
    let denied = gw
        .http
        .get(format!("{}/api/projects/{p}/data_layers/last", gw.url))
        .bearer_auth("forged.token.here")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(upstream.seen().await.len(), 1, "the denied call did not reach the upstream");
    gw.assert_no_secrets_logged(&[token, &ann, &bob]);
}
