//! The story of keygate, end to end, over real HTTP against a started `keygate-local`:
//! an owner publishes a key template, a user requests a key, the owner approves, the user
//! imports it into another project's secrets, programs call the platform API with it, every
//! call is metered and priced, the owner sees the usage and revokes the key.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::LocalGateway;

const PRICE: i64 = 7;

fn names(secrets: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        secrets["items"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect();
    v.sort();
    v
}

fn value_of<'a>(secrets: &'a Value, name: &str) -> &'a str {
    secrets["items"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()["value"].as_str().unwrap()
}

/// Walks the whole story against a running gateway, asserting every step.
pub async fn walk(gw: &LocalGateway) {
    let ann = gw.token("ann"); // the project owner
    let bob = gw.token("bob"); // the user who wants a key
    let (ann, bob) = (ann.as_str(), bob.as_str());

    // Ann registers her project, its roles and its nodes. It has no public role.
    let (status, project) = gw.call("POST", "/v1/projects", Some(ann), Some(json!({"name": "Weather"}))).await;
    assert_eq!(status, 201, "{project}");
    let p = project["id"].as_str().unwrap().to_owned();
    for (role, permissions) in [
        ("writer", json!(["package_create"])),
        ("reader", json!(["project_view", "package_view"])),
        ("viewer", json!(["project_view"])),
    ] {
        let (status, body) = gw
            .call(
                "PUT",
                &format!("/v1/projects/{p}/roles/{role}"),
                Some(ann),
                Some(json!({"permissions": permissions})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    for node in ["in", "out"] {
        let (status, _) =
            gw.call("PUT", &format!("/v1/projects/{p}/nodes/{node}"), Some(ann), Some(json!({"name": node}))).await;
        assert_eq!(status, 200);
    }

    // A template whose role cannot see the project is refused, naming the rule.
    let (status, problem) = gw
        .call("POST", &format!("/v1/projects/{p}/templates"), Some(ann), Some(json!({"name": "Raw", "role": "writer"})))
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "role");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("project_view"), "{problem}");

    // The template of the seeds: project, input and output fields, and a price per request.
    let (status, template) = gw
        .call(
            "POST",
            &format!("/v1/projects/{p}/templates"),
            Some(ann),
            Some(json!({
                "name": "Forecast API",
                "description": "Send data to the input node, read results from the output node",
                "role": "reader",
                "price_per_request": PRICE,
                "fields": [
                    {"name": "project", "description": "Project ID", "kind": "project"},
                    {"name": "input", "description": "Input node ID", "kind": "node", "value": "in"},
                    {"name": "output", "description": "Output node ID", "kind": "node", "value": "out"},
                ],
            })),
        )
        .await;
    assert_eq!(status, 201, "{template}");
    let t = template["id"].as_str().unwrap().to_owned();
    assert_eq!(template["fields"][0]["value"], p.as_str(), "the project field is filled in");

    // Bob cannot see the project until Ann makes him a member.
    let (status, _) = gw.call("GET", &format!("/v1/projects/{p}/templates"), Some(bob), None).await;
    assert_eq!(status, 404);
    let (status, _) = gw
        .call(
            "PUT",
            &format!("/v1/projects/{p}/members/bob"),
            Some(ann),
            Some(json!({"role": "viewer", "email": "bob@example.com"})),
        )
        .await;
    assert_eq!(status, 200);

    // Bob requests a key; his tile shows it pending and Ann is mailed.
    let (status, requested) =
        gw.call("POST", &format!("/v1/projects/{p}/templates/{t}/requests"), Some(bob), None).await;
    assert_eq!(status, 201, "{requested}");
    assert_eq!(requested["request"]["status"], "pending");
    assert_eq!(requested["notification"], "sent");
    let r = requested["request"]["id"].as_str().unwrap().to_owned();
    let (_, tiles) = gw.call("GET", &format!("/v1/projects/{p}/templates"), Some(bob), None).await;
    assert_eq!(tiles["items"][0]["tile"]["state"], "pending", "{tiles}");
    // (Other tests may mail ann@example.com through a shared SES emulator: pick this request's.)
    let owner_mail: Vec<String> = gw.mail_to("ann@example.com").await.into_iter().filter(|m| m.contains(&r)).collect();
    assert_eq!(owner_mail.len(), 1, "one mail to the owner about this request");
    assert!(owner_mail[0].contains("bob@example.com") && owner_mail[0].contains("Forecast API"), "{}", owner_mail[0]);

    // A second request while one is pending is a conflict.
    let (status, problem) = gw.call("POST", &format!("/v1/projects/{p}/templates/{t}/requests"), Some(bob), None).await;
    assert_eq!(status, 409, "{problem}");

    // Ann approves: a key and a personal data layer are issued, and Bob is mailed.
    let (status, approval) = gw.call("POST", &format!("/v1/projects/{p}/requests/{r}/approve"), Some(ann), None).await;
    assert_eq!(status, 200, "{approval}");
    assert_eq!(approval["request"]["status"], "approved");
    assert_eq!(approval["notification"], "sent");
    let k = approval["key"]["id"].as_str().unwrap().to_owned();
    let layer = approval["key"]["data_layer_id"].as_str().unwrap().to_owned();
    let user_mail = gw.mail_to("bob@example.com").await;
    assert!(user_mail.iter().any(|m| m.contains("is ready") && m.contains(&k)), "{user_mail:?}");
    let (_, tiles) = gw.call("GET", &format!("/v1/projects/{p}/templates"), Some(bob), None).await;
    assert_eq!(tiles["items"][0]["tile"]["state"], "active");
    assert_eq!(tiles["items"][0]["tile"]["key_id"], k.as_str());

    // Bob imports the key into his own project's secrets, for its worker node.
    let (_, client) = gw.call("POST", "/v1/projects", Some(bob), Some(json!({"name": "Client"}))).await;
    let c = client["id"].as_str().unwrap().to_owned();
    gw.call("PUT", &format!("/v1/projects/{c}/nodes/worker"), Some(bob), Some(json!({"name": "worker"}))).await;
    let (status, imported) = gw
        .call(
            "POST",
            &format!("/v1/projects/{c}/secrets/import"),
            Some(bob),
            Some(json!({"key_id": k, "prefix": "project_server", "nodes": ["worker"]})),
        )
        .await;
    assert_eq!(status, 201, "{imported}");
    let (_, hidden) = gw.call("GET", &format!("/v1/projects/{c}/secrets"), Some(bob), None).await;
    assert!(hidden["items"][0].get("value").is_none(), "values only when asked for");
    let (_, secrets) = gw.call("GET", &format!("/v1/projects/{c}/secrets?reveal=true"), Some(bob), None).await;
    assert_eq!(
        names(&secrets),
        ["project_server_input", "project_server_output", "project_server_project", "project_server_token"]
    );
    assert_eq!(value_of(&secrets, "project_server_project"), p);
    assert_eq!(value_of(&secrets, "project_server_input"), "in");
    assert_eq!(value_of(&secrets, "project_server_output"), "out");
    let (_, fetched) = gw.call("GET", &format!("/v1/me/keys/{k}/token"), Some(bob), None).await;
    let key = value_of(&secrets, "project_server_token").to_owned();
    assert_eq!(fetched["token"], key.as_str(), "the imported token is the key's token");
    assert_eq!(secrets["items"][0]["nodes"], json!(["worker"]));

    // Bob's program calls the platform API as in the seeds' client code.
    let (status, allowed) = gw.call("GET", &format!("/api/projects/{p}/data_layers/last"), Some(&key), None).await;
    assert_eq!(status, 200, "{allowed}");
    assert_eq!(allowed["context"]["key_id"], k.as_str());
    assert_eq!(allowed["context"]["user_id"], "bob");
    assert_eq!(allowed["context"]["data_layer_id"], layer.as_str());
    assert_eq!(allowed["context"]["project_id"], p.as_str());

    // Posting a package needs package_create, which the reader role lacks.
    let (status, _) =
        gw.call("POST", &format!("/api/projects/{p}/nodes/in/packages"), Some(&key), Some(json!({"label": "x"}))).await;
    assert_eq!(status, 403);
    // The script asks its key what it may do: the role's permissions, and that it works.
    let (status, described) = gw.call("GET", "/v1/key", Some(&key), None).await;
    assert_eq!(status, 200, "{described}");
    assert_eq!((described["state"].as_str(), described["works"].as_bool()), (Some("active"), Some(true)));
    assert!(!described["permissions"].as_array().unwrap().contains(&json!("package_create")), "{described}");
    // The key is for Ann's project only.
    let (status, _) = gw.call("GET", &format!("/api/projects/{c}/data_layers/last"), Some(&key), None).await;
    assert_eq!(status, 403);
    // No key, or a garbled one, is 401.
    let (status, _) = gw.call("GET", &format!("/api/projects/{p}/data_layers/last"), None, None).await;
    assert_eq!(status, 401);

    // More allowed calls: searching and reading packages of the output node.
    let (status, _) = gw
        .call("POST", &format!("/api/projects/{p}/nodes/out/packages/search?page_size=1"), Some(&key), Some(json!({})))
        .await;
    assert_eq!(status, 200);
    for _ in 0..3 {
        let (status, _) =
            gw.call("GET", &format!("/api/projects/{p}/nodes/out/packages/42/files"), Some(&key), None).await;
        assert_eq!(status, 200);
    }
    let allowed_calls = 5;

    // Ann sees exactly those calls, priced, for a period that covers them, and none before.
    let now = Utc::now();
    let covering = format!(
        "from={}&to={}",
        (now - Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        (now + Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ")
    );
    let (status, keys) = gw.call("GET", &format!("/v1/projects/{p}/keys?{covering}"), Some(ann), None).await;
    assert_eq!(status, 200, "{keys}");
    let row = &keys["items"][0];
    assert_eq!(row["key_id"], k.as_str());
    assert_eq!(row["template_name"], "Forecast API");
    assert_eq!(row["user_email"], "bob@example.com");
    assert_eq!(row["status"], "active");
    assert_eq!(row["requests"], allowed_calls);
    assert_eq!(row["cost"], allowed_calls * PRICE);
    assert!(row["last_used_at"].is_string());
    let before = format!(
        "from={}&to={}",
        (now - Duration::days(3)).format("%Y-%m-%d"),
        (now - Duration::days(2)).format("%Y-%m-%d")
    );
    let (_, old) = gw.call("GET", &format!("/v1/projects/{p}/keys?{before}"), Some(ann), None).await;
    assert_eq!(old["items"], json!([]), "a period that ended before the key was issued does not list it");
    let (_, series) =
        gw.call("GET", &format!("/v1/projects/{p}/keys/{k}/usage?{covering}&granularity=hour"), Some(ann), None).await;
    let total: i64 = series["points"].as_array().unwrap().iter().map(|pt| pt["requests"].as_i64().unwrap()).sum();
    assert_eq!(total, allowed_calls);

    // Ann revokes the key; the next call is refused and Bob is told.
    let (status, revoked) = gw.call("DELETE", &format!("/v1/projects/{p}/keys/{k}"), Some(ann), None).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["key"]["status"], "revoked");
    let (status, _) = gw.call("GET", &format!("/api/projects/{p}/data_layers/last"), Some(&key), None).await;
    assert_eq!(status, 403);
    let bob_mail = gw.mail_to("bob@example.com").await;
    assert!(bob_mail.iter().any(|m| m.contains("was revoked") && m.contains(&k)), "{bob_mail:?}");
    let (_, tiles) = gw.call("GET", &format!("/v1/projects/{p}/templates"), Some(bob), None).await;
    assert_eq!(tiles["items"][0]["tile"]["state"], "revoked", "Bob may request again");

    // Everything that changed is in the audit log.
    let (_, audit) = gw.call("GET", &format!("/v1/projects/{p}/audit"), Some(ann), None).await;
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in ["template_created", "key_requested", "request_approved", "key_revoked"] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }

    // Nothing secret reached the gateway's output.
    let logs = gw.logs();
    assert!(logs.contains("call denied"), "the logs were captured");
    for secret in [key.as_str(), ann, bob] {
        assert!(!logs.contains(secret), "a token leaked into the logs");
        let signature = secret.rsplit('.').next().unwrap();
        assert!(!logs.contains(signature), "a token signature leaked into the logs");
    }
}
