//! The key page's API over HTTP, on keygate-local: one key with its figures in a period
//! (`GET /v1/projects/{project}/keys/{key}`) for its owner and its holder, nobody else; a key's
//! narrowed token revoked by the project's owner; and a period that ended before a key was issued
//! neither lists nor counts it.

use keygate_tests::LocalGateway;
use serde_json::{Value, json};

#[tokio::test]
async fn a_key_has_a_page_for_its_owner_and_its_holder() {
    let gateway = LocalGateway::start(&[]);
    let (ann, bob, eve) = (gateway.token("ann"), gateway.token("bob"), gateway.token("eve"));
    let template = json!({"name": "Forecast API", "role": "reader", "price_per_request": 3,
                          "quota": {"requests": 100, "per": "day"}});
    let (p, t) = gateway.project_with_template(&ann, "Weather", ("reader", &["project_view"]), template).await;
    let (key, token) = gateway.issue_key(&ann, &bob, &p, &t).await;
    let k = key["id"].as_str().unwrap();
    let url = format!("{}/api/projects/{p}/data_layers/last", gateway.url);
    for _ in 0..3 {
        let answer = gateway.http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(answer.status(), 200);
    }

    // The owner and the holder read the same figures; the request counted on read is exact.
    let page = format!("/v1/projects/{p}/keys/{k}");
    let (status, owner_view) = gateway.call("GET", &page, Some(&ann), None).await;
    assert_eq!(status, 200, "{owner_view}");
    let figures =
        |v: &Value| (v["key_id"].clone(), v["requests"].clone(), v["cost"].clone(), v["quota"]["used"].clone());
    assert_eq!(figures(&owner_view), (json!(k), json!(3), json!(9), json!(3)), "{owner_view}");
    assert_eq!((&owner_view["user_id"], &owner_view["template_name"]), (&json!("bob"), &json!("Forecast API")));
    assert!(owner_view["last_used_at"].is_string(), "{owner_view}");
    let (status, holder_view) = gateway.call("GET", &page, Some(&bob), None).await;
    assert_eq!((status, figures(&holder_view)), (200, figures(&owner_view)));
    let (status, problem) = gateway.call("GET", &page, Some(&eve), None).await;
    assert_eq!(status, 404, "someone outside the project does not learn the key exists: {problem}");
    assert!(!problem.to_string().contains(&token), "{problem}");
    let (status, problem) = gateway.call("GET", &format!("{page}?from=tomorrow"), Some(&ann), None).await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (422, Some("from")), "{problem}");

    // A period that ended before the key was issued: the list and its totals leave it out.
    let before = "from=2026-01-01&to=2026-01-02";
    let (status, list) = gateway.call("GET", &format!("/v1/projects/{p}/keys?{before}"), Some(&ann), None).await;
    assert_eq!((status, list["items"].as_array().map(Vec::len)), (200, Some(0)), "{list}");
    let (status, totals) = gateway.call("GET", &format!("/v1/projects/{p}/usage?{before}"), Some(&ann), None).await;
    assert_eq!((status, &totals["keys"]), (200, &json!(0)), "{totals}");
    let (_, now) = gateway.call("GET", &format!("/v1/projects/{p}/usage"), Some(&ann), None).await;
    assert_eq!((&now["keys"], &now["requests"]), (&json!(1), &json!(3)), "{now}");

    // The holder mints a narrowed token; the owner revokes it from the key's page.
    let (status, minted) =
        gateway.call("POST", &format!("/v1/me/keys/{k}/tokens"), Some(&bob), Some(json!({"label": "ci"}))).await;
    assert_eq!(status, 201, "{minted}");
    let child = minted["token"].as_str().unwrap().to_owned();
    let id = minted["id"].as_str().unwrap();
    let revoke = format!("/v1/projects/{p}/keys/{k}/tokens/{id}");
    let (status, _) = gateway.call("DELETE", &revoke, Some(&eve), None).await;
    assert_eq!(status, 404);
    let (status, revoked) = gateway.call("DELETE", &revoke, Some(&ann), None).await;
    assert_eq!((status, &revoked["label"]), (200, &json!("ci")), "{revoked}");
    let answer = gateway.http.get(&url).bearer_auth(&child).send().await.unwrap();
    assert_eq!(answer.status(), 403, "a revoked narrowed token is refused at once");
    let refusal: Value = answer.json().await.unwrap();
    assert!(refusal["detail"].as_str().unwrap_or_default().contains("revoked"), "{refusal}");
    let (status, again) = gateway.call("DELETE", &revoke, Some(&ann), None).await;
    assert_eq!(status, 404, "{again}");
    assert!(again["detail"].as_str().unwrap_or_default().contains("narrowed token"), "{again}");
    gateway.assert_no_secrets_logged(&[&token, &child]);
}
