//! keygate-local in front of the platform, attacked as with curl (raw requests, byte for byte):
//! path spellings are decided like their canonical form or refused and never forwarded; method
//! overrides are refused; headers a server could read as keygate's context never reach the
//! platform; a `Host` that is not ours is refused (DNS rebinding); the local sign-in takes JSON
//! only.

use keygate_tests::LocalGateway;
use keygate_tests::spellings::{SPELLINGS, canonical_method};
use keygate_tests::upstream::{RawAnswer, RecordingUpstream, raw};
use serde_json::{Value, json};

const PROBLEM: &str = "application/problem+json";

/// A gateway before a recording upstream, with Bob's `viewer` (project_view) and `packager`
/// (every package permission, no project_edit) keys of Ann's project.
async fn gateway() -> (RecordingUpstream, LocalGateway, String, [String; 2]) {
    let (upstream, gw, p, keys, _) = gateway_with_ids().await;
    (upstream, gw, p, keys)
}

/// The same, with the two keys' ids and Ann's user token.
async fn gateway_with_ids() -> (RecordingUpstream, LocalGateway, String, [String; 2], ([String; 2], String)) {
    let upstream = RecordingUpstream::start().await;
    let gw = LocalGateway::start(&["--upstream", &upstream.url]);
    let (ann, bob) = (gw.token("ann"), gw.token("bob"));
    let reader = ("reader", ["project_view"].as_slice());
    let (p, viewer_template) =
        gw.project_with_template(&ann, "Spell", reader, json!({"name": "V", "role": "reader"})).await;
    let perms = json!({"permissions": ["project_view", "package_view", "package_create", "package_delete"]});
    let (status, _) = gw.call("PUT", &format!("/v1/projects/{p}/roles/packager"), Some(&ann), Some(perms)).await;
    assert_eq!(status, 200);
    let template = json!({"name": "P", "role": "packager"});
    let (status, t) = gw.call("POST", &format!("/v1/projects/{p}/templates"), Some(&ann), Some(template)).await;
    assert_eq!(status, 201, "{t}");
    let (viewer_key, viewer) = gw.issue_key(&ann, &bob, &p, &viewer_template).await;
    let (packager_key, packager) = gw.issue_key(&ann, &bob, &p, t["id"].as_str().unwrap()).await;
    let ids = [&viewer_key, &packager_key].map(|k| k["id"].as_str().unwrap().to_owned());
    (upstream, gw, p, [viewer, packager], (ids, ann))
}

fn problem_detail(answer: &RawAnswer) -> String {
    assert_eq!(answer.header("content-type"), Some(PROBLEM), "{answer:?}");
    let body: Value = serde_json::from_str(&answer.body).expect("a problem document");
    body["detail"].as_str().expect("a detail").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn path_spellings_are_decided_like_their_canonical_form_or_refused_and_never_forwarded() {
    let (upstream, gw, p, keys) = gateway().await;
    let mut forwarded = 0;
    for token in &keys {
        let auth = format!("Bearer {token}");
        let headers = [("Authorization", auth.as_str())];
        for (spelling, canonical) in SPELLINGS {
            for m in ["GET", "post", "DELETE", "PUT"] {
                let target = format!("/api/projects/{p}/{spelling}");
                let answer = raw(&gw.url, m, &target, &headers, "").await;
                match canonical {
                    None => {
                        assert_eq!(answer.status, 400, "{m} {spelling}: {answer:?}");
                        let detail = problem_detail(&answer);
                        assert!(detail.contains("not forwarded"), "{m} {spelling}: {detail}");
                    }
                    Some(c) => {
                        let path = format!("/api/projects/{p}/{c}");
                        let want = raw(&gw.url, canonical_method(m).as_str(), &path, &headers, "").await;
                        assert_eq!(answer.status, want.status, "{m} {spelling} is decided unlike {c}");
                        if answer.status == 201 {
                            forwarded += 2;
                            let seen = upstream.seen().await;
                            let call = &seen[seen.len() - 2];
                            assert_eq!(
                                (call.method.as_str(), call.uri.as_str()),
                                (m, target.as_str()),
                                "sent as decided"
                            );
                        }
                    }
                }
                assert_eq!(upstream.seen().await.len(), forwarded, "{m} {spelling}: only allowed calls are forwarded");
            }
        }
    }
    assert!(forwarded > 0);
    // The report's first hole: a project_view key and %70ackages.
    let viewer = format!("Bearer {}", keys[0]);
    let target = format!("/api/projects/{p}/nodes/n1/%70ackages");
    let hole = raw(&gw.url, "GET", &target, &[("Authorization", &viewer)], "").await;
    assert_eq!(hole.status, 400);
    assert!(problem_detail(&hole).contains("'p' percent-encoded"), "{hole:?}");
    gw.assert_no_secrets_logged(&[&keys[0], &keys[1]]);
}

#[tokio::test(flavor = "multi_thread")]
async fn method_overrides_are_refused_and_context_spellings_and_proxy_credentials_dropped() {
    let (upstream, gw, p, keys) = gateway().await;
    let auth = format!("Bearer {}", keys[1]);
    let path = format!("/api/projects/{p}/data_layers/last");
    for header in ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "x_http_method_override"] {
        let answer = raw(&gw.url, "GET", &path, &[("Authorization", &auth), (header, "DELETE")], "").await;
        assert_eq!(answer.status, 400, "{header}: {answer:?}");
        assert!(problem_detail(&answer).contains("another method"), "{answer:?}");
    }
    let answer = raw(&gw.url, "POST", &format!("{path}?x=1&_method=DELETE"), &[("Authorization", &auth)], "").await;
    assert_eq!(answer.status, 400, "{answer:?}");
    // Two Authorization headers: which one a platform would read is not keygate's to guess.
    let other = format!("Bearer {}", keys[0]);
    let answer = raw(&gw.url, "GET", &path, &[("Authorization", &auth), ("Authorization", &other)], "").await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(problem_detail(&answer).contains("more than one Authorization"), "{answer:?}");
    assert!(upstream.seen().await.is_empty(), "no override reached the platform");

    let smuggled = [
        ("Authorization", auth.as_str()),
        ("x_keygate_user_id", "mallory"),
        ("X_Keygate-User_Id", "mallory"),
        ("x-keygate_data_layer_id", "theirs"),
        ("x-keygate-anything", "1"),
        ("Proxy-Authorization", "Basic c2VjcmV0"),
    ];
    let answer = raw(&gw.url, "GET", &path, &smuggled, "").await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let seen = upstream.seen().await;
    let call = &seen[0];
    let names: Vec<&str> = call.headers.iter().map(|(k, _)| k.as_str()).collect();
    for name in &names {
        let folded = name.replace('_', "-");
        assert!(
            !folded.starts_with("x-keygate-") || keygate::platform::OVERWRITTEN_ON_AWS.contains(name),
            "{name} reached the platform"
        );
    }
    assert!(!names.contains(&"proxy-authorization"), "{names:?}");
    assert_eq!(call.header("x-keygate-user-id"), ["bob"]);
    assert!(!call.headers.iter().any(|(_, v)| v == "mallory" || v == "theirs"), "{:?}", call.headers);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_our_own_host_names_are_answered_and_the_sign_in_takes_json_only() {
    let gw = LocalGateway::start(&["--allowed-host", "keygate.test"]);
    let port = gw.url.rsplit(':').next().unwrap().to_owned();
    let json = ("Content-Type", "application/json");
    let ann = r#"{"sub":"ann","email":"ann@example.com"}"#;

    let rebinding = format!("rebind.attacker.example:{port}");
    for (method, path) in [("POST", "/local/sign-in"), ("GET", "/v1/me/keys"), ("GET", "/"), ("GET", "/openapi.json")] {
        let answer = raw(&gw.url, method, path, &[("Host", &rebinding), json], ann).await;
        assert_eq!(answer.status, 421, "{method} {path}: {answer:?}");
        assert!(problem_detail(&answer).contains("--allowed-host"), "{answer:?}");
        assert!(!answer.body.contains("token"), "no token minted");
    }
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("keygate.test:{port}")] {
        let answer = raw(&gw.url, "POST", "/local/sign-in", &[("Host", &host), json], ann).await;
        assert_eq!(answer.status, 200, "{host}: {answer:?}");
    }
    let wrong_port = format!("127.0.0.1:{}", port.parse::<u16>().unwrap().wrapping_add(1));
    assert_eq!(raw(&gw.url, "GET", "/", &[("Host", &wrong_port)], "").await.status, 421);

    // A form post (a cross-site page may send one without a CORS preflight) is refused.
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let answer = raw(&gw.url, "POST", "/local/sign-in", &[("Content-Type", content_type)], ann).await;
        assert_eq!(answer.status, 415, "{content_type}: {answer:?}");
        assert!(problem_detail(&answer).contains("application/json"), "{answer:?}");
    }
    assert_eq!(raw(&gw.url, "POST", "/local/sign-in", &[], ann).await.status, 415, "no Content-Type");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_caller_is_told_why_and_what_to_do() {
    let (upstream, gw, p, [viewer, packager], ([viewer_id, _], ann)) = gateway_with_ids().await;
    let problem = |answer: &RawAnswer| -> Value {
        assert_eq!(answer.header("content-type"), Some(PROBLEM), "{answer:?}");
        serde_json::from_str(&answer.body).unwrap()
    };
    let call = |path: String, bearer: Option<String>| {
        let url = gw.url.clone();
        async move {
            let auth = bearer.map(|b| format!("Bearer {b}"));
            let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
            raw(&url, "GET", &path, &headers, "").await
        }
    };
    let packages = format!("/api/projects/{p}/nodes/in/packages");
    let elsewhere = format!("/api/projects/{}/data_layers/last", keygate::ids::ProjectId::generate());
    let forged = format!("{}x", &packager[..packager.len() - 1]);
    let cases = [
        (call(packages.clone(), None).await, 401, "no_key", "Authorization: Bearer"),
        (call(packages.clone(), Some("not.a.key".into())).await, 401, "invalid_key", "copy it again"),
        (call(packages.clone(), Some(forged)).await, 403, "invalid_key", "copy it again"),
        (call(packages.clone(), Some(viewer.clone())).await, 403, "permission", "package_view"),
        (call(elsewhere, Some(packager.clone())).await, 403, "other_project", "another project"),
    ];
    for (answer, status, outcome, words) in cases {
        assert_eq!(answer.status, status, "{answer:?}");
        let body = problem(&answer);
        assert_eq!(body["outcome"], outcome, "{body}");
        assert!(body["detail"].as_str().unwrap().contains(words), "{body}");
    }
    assert_eq!(problem(&call(packages.clone(), Some(viewer.clone())).await)["permission"], "package_view");

    let (status, answer) = gw.call("DELETE", &format!("/v1/projects/{p}/keys/{viewer_id}"), Some(&ann), None).await;
    assert!(status < 300, "{status} {answer}");
    let revoked = call(format!("/api/projects/{p}/data_layers/last"), Some(viewer.clone())).await;
    assert_eq!(revoked.status, 403);
    let body = problem(&revoked);
    assert_eq!(body["outcome"], "revoked", "{body}");
    assert!(body["detail"].as_str().unwrap().contains("ask the project's owner"), "{body}");
    assert!(upstream.seen().await.is_empty(), "no refused call reached the platform");
    gw.assert_no_secrets_logged(&[&viewer, &packager, &ann]);
}
