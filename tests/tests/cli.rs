//! The `keygate` command line, run as a holder and an owner run it, against a real
//! `keygate-local` over HTTP: each command's `--json` output parsed, its exit codes (refused 3,
//! not found 4, unavailable 5), the sign-in kept in a file only its owner reads, and no token in
//! any output unless the command exists to give one (`token mint`) or `--show-token` asks.

use std::sync::{Arc, Mutex};

use assert_cmd::Command;
use keygate_tests::{LocalGateway, Scratch, cli_binary};
use serde_json::{Value, json};

/// One user's command line: their config directory and the deployment's URL.
struct Shell {
    url: String,
    config: Scratch,
}

impl Shell {
    fn new(gateway: &LocalGateway, who: &str) -> Self {
        Self { url: gateway.url.clone(), config: Scratch::new(&format!("cli-{who}")) }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(cli_binary());
        c.env_clear()
            .env("KEYGATE_CONFIG_DIR", &self.config.0)
            .env("KEYGATE_URL", &self.url)
            .env("NO_COLOR", "1")
            .args(args)
            .timeout(std::time::Duration::from_secs(30));
        c
    }

    /// Runs `args` and expects exit `code`: (stdout, stderr).
    fn run(&self, args: &[&str], key: Option<&str>, code: i32) -> (String, String) {
        let mut c = self.cmd(args);
        if let Some(key) = key {
            c.env("KEYGATE_API_KEY", key);
        }
        let out = c.output().expect("keygate runs");
        let (stdout, stderr) =
            (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        assert_eq!(out.status.code(), Some(code), "keygate {args:?}\nstdout: {stdout}\nstderr: {stderr}");
        (stdout, stderr)
    }

    /// Runs `args --json`, expects exit `code`, and parses its output.
    fn json(&self, args: &[&str], key: Option<&str>, code: i32) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let (stdout, _) = self.run(&args, key, code);
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("keygate {args:?} printed no JSON ({e}): {stdout}"))
    }
}

fn assert_no_secret(output: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!output.contains(secret), "a token reached the output: {output}");
    }
}

#[tokio::test]
async fn a_holder_and_an_owner_work_from_the_command_line() {
    let gateway = LocalGateway::start(&[]);
    let (ann_token, bob_token) = (gateway.token("ann"), gateway.token("bob"));
    let template = json!({"name": "Forecast API", "role": "reader", "price_per_request": 3});
    let (p, t) = gateway
        .project_with_template(&ann_token, "Weather", ("reader", &["project_view", "package_view"]), template)
        .await;
    let (ann, bob) = (Shell::new(&gateway, "ann"), Shell::new(&gateway, "bob"));

    // Both sign in with keygate-local's sign-in; the token is kept with mode 0600, not printed.
    for (shell, user) in [(&ann, "ann"), (&bob, "bob")] {
        let (stdout, stderr) =
            shell.run(&["login", "--user", user, "--email", &format!("{user}@example.com")], None, 0);
        assert!(stdout.starts_with("Signed in to "), "{stdout}");
        let file = shell.config.0.join("credentials.json");
        let kept: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let token = kept["tokens"][&gateway.url].as_str().expect("a kept token");
        assert_no_secret(&format!("{stdout}{stderr}"), &[token]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
    let (status, request) =
        gateway.call("POST", &format!("/v1/projects/{p}/templates/{t}/requests"), Some(&bob_token), None).await;
    assert_eq!(status, 201, "{request}");
    let r = request["request"]["id"].as_str().unwrap();

    // The owner lists the pending request and approves it.
    let listed = ann.json(&["requests", "list", "--project", &p], None, 0);
    assert_eq!(listed["items"][0]["id"], r, "{listed}");
    let (table, _) = ann.run(&["requests", "list", "--project", &p], None, 0);
    assert!(table.starts_with("id ") && table.contains("bob@example.com"), "{table}");
    let approved = ann.json(&["requests", "approve", "--project", &p, r], None, 0);
    let k = approved["key"]["id"].as_str().expect("a key").to_owned();
    let (status, token) = gateway.call("GET", &format!("/v1/me/keys/{k}/token"), Some(&bob_token), None).await;
    assert_eq!(status, 200);
    let key = token["token"].as_str().unwrap().to_owned();

    // The key describes itself (whoami), as JSON and for a person, the key in neither.
    let me = bob.json(&["whoami"], Some(&key), 0);
    assert_eq!(
        (me["key_id"].as_str(), me["state"].as_str(), me["works"].as_bool()),
        (Some(k.as_str()), Some("active"), Some(true))
    );
    let (text, _) = bob.run(&["whoami"], Some(&key), 0);
    assert!(text.contains(&k) && text.contains("active") && text.contains("project_view"), "{text}");
    assert_no_secret(&text, &[&key]);
    let key_file = Scratch::new("cli-key");
    std::fs::write(key_file.0.join("key"), format!("{key}\n")).unwrap();
    let from_file = bob.json(&["whoami", "--key-file", key_file.0.join("key").to_str().unwrap()], None, 0);
    assert_eq!(from_file["key_id"], k.as_str());

    // A narrowed token: minted with the key (printed alone: it was asked for), then with the
    // sign-in; listed (no token in the list) and used on the platform.
    let (minted, about) =
        bob.run(&["token", "mint", "--ttl", "1h", "--only", "project_view", "--label", "ci"], Some(&key), 0);
    let child = minted.trim().to_owned();
    assert_eq!(child.split('.').count(), 3, "a JWT alone on standard output: {minted}");
    assert!(about.contains("(ci)"), "{about}");
    let nightly = bob.json(&["token", "mint", "--key", &k, "--ttl", "2h", "--label", "nightly"], None, 0);
    assert_eq!(nightly["label"], "nightly");
    let listed = bob.json(&["token", "list", "--key", &k], None, 0);
    let labels: Vec<&str> = listed["items"].as_array().unwrap().iter().filter_map(|t| t["label"].as_str()).collect();
    assert_eq!(labels.len(), 2, "{listed}");
    assert!(labels.contains(&"ci") && labels.contains(&"nightly"));
    assert_no_secret(&listed.to_string(), &[&child, nightly["token"].as_str().unwrap()]);
    let call = gateway
        .http
        .get(format!("{}/api/projects/{p}/data_layers/last", gateway.url))
        .bearer_auth(&child)
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), 200, "the narrowed token works on the platform");
    let narrowed = bob.json(&["whoami"], Some(&child), 0);
    assert_eq!((narrowed["narrowed"].as_bool(), narrowed["token"]["label"].as_str()), (Some(true), Some("ci")));
    // A token cannot widen its key: 422 is a failed command (1), its problem as JSON.
    let widen = bob.json(&["token", "mint", "--only", "package_create", "--label", "x"], Some(&key), 1);
    assert_eq!(widen["status"], 422, "{widen}");

    // Usage by label; the export as CSV (with its label column) and as JSON Lines.
    let usage = bob.json(&["keys", "usage", "--project", &p, "--key", &k], None, 0);
    let ci = usage["by_label"].as_array().unwrap().iter().find(|l| l["label"] == "ci").cloned();
    assert_eq!(ci.map(|l| l["requests"].clone()), Some(json!(1)), "{usage}");
    let (csv, _) = ann.run(&["export", "--project", &p], None, 0);
    assert!(csv.lines().next().unwrap().ends_with(",label"), "{csv}");
    assert!(csv.lines().any(|l| l.ends_with(",ci")), "{csv}");
    let (lines, _) = ann.run(&["export", "--project", &p, "--json"], None, 0);
    let rows: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert!(rows.iter().any(|r| r["label"] == "ci"), "{lines}");

    // My keys; a reroll prints no token unless asked.
    let mine = bob.json(&["keys", "list"], None, 0);
    assert_eq!(mine["items"][0]["id"], k.as_str());
    let rerolled = bob.json(&["keys", "reroll", "--project", &p, "--key", &k, "--grace", "1h"], None, 0);
    assert!(rerolled.get("token").is_none(), "{rerolled}");
    assert_eq!(rerolled["key"]["generation"], 1);
    let shown = bob.json(&["keys", "reroll", "--project", &p, "--key", &k, "--grace", "1h", "--show-token"], None, 0);
    let newest = shown["token"].as_str().expect("the new token, asked for").to_owned();

    // Exit codes: not found 4, refused 3, unavailable 5; and revoking a token.
    let missing = bob.json(&["token", "revoke", "--key", &k, "01J0000000000000000000000A"], None, 4);
    assert_eq!(missing["status"], 404);
    let ci_id = listed["items"].as_array().unwrap().iter().find(|t| t["label"] == "ci").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = bob.json(&["token", "revoke", "--key", &k, &ci_id], None, 0);
    assert_eq!(revoked["id"], ci_id.as_str());
    let (_, why) = bob.run(&["requests", "approve", "--project", &p, r], None, 3);
    assert!(why.starts_with("keygate: "), "{why}");
    let forged = format!("{}x", &newest[..newest.len() - 1]);
    let refused = bob.json(&["whoami"], Some(&forged), 3);
    assert_eq!(refused["status"], 401, "{refused}");
    let (status, _) = gateway.call("DELETE", &format!("/v1/projects/{p}/keys/{k}"), Some(&ann_token), None).await;
    assert_eq!(status, 200);
    let dead = bob.json(&["whoami"], Some(&newest), 3);
    assert_eq!((dead["state"].as_str(), dead["works"].as_bool()), (Some("revoked"), Some(false)), "{dead}");
    let (_, stderr) = bob.run(&["--url", "http://127.0.0.1:9", "whoami"], Some(&newest), 5);
    assert!(stderr.contains("cannot reach http://127.0.0.1:9"), "{stderr}");
    let (_, stderr) =
        Shell { url: gateway.url.clone(), config: Scratch::new("cli-nobody") }.run(&["keys", "list"], None, 1);
    assert!(stderr.contains("not signed in"), "{stderr}");

    // Each answer of GET /v1/key is counted as its own figure, not as a decision: five keys
    // told what they are (a revoked one too), one forged token refused.
    let metrics = gateway.http.get(format!("{}/metrics", gateway.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("keygate_key_described_total{answer=\"described\"} 5"), "{metrics}");
    assert!(metrics.contains("keygate_key_described_total{answer=\"refused\"} 1"), "{metrics}");

    // Signing out forgets the token.
    bob.run(&["logout"], None, 0);
    let (_, stderr) = bob.run(&["keys", "list"], None, 1);
    assert!(stderr.contains("keygate login"), "{stderr}");
    gateway.assert_no_secrets_logged(&[&key, &child, &newest, &bob_token]);
}

/// A provider on 127.0.0.1 with the device flow (RFC 8628): discovery, JWKS, a device endpoint
/// and a token endpoint that answers `authorization_pending` once, then an ID token. It keeps
/// the forms it was sent.
async fn device_flow_provider() -> (String, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let pem = keygate::signing::KeyRing::generate_pem();
    let jwk = keygate::signing::KeyRing::new("provider", &pem, &[]).unwrap().current_public().clone();
    let kid = jwk.kid.clone();
    let encoding = EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks"),
        "authorization_endpoint": format!("{issuer}/authorize"), "token_endpoint": format!("{issuer}/token"),
        "device_authorization_endpoint": format!("{issuer}/device")});
    let forms = Arc::new(Mutex::new(Vec::<String>::new()));
    let (device_forms, token_forms) = (forms.clone(), forms.clone());
    let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let claims_issuer = issuer.clone();
    let jwks = json!({"keys": [jwk]});
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", axum::routing::get(move || async move { axum::Json(discovery) }))
        .route("/jwks", axum::routing::get(move || async move { axum::Json(jwks) }))
        .route(
            "/device",
            axum::routing::post(move |body: String| async move {
                device_forms.lock().unwrap().push(body);
                axum::Json(json!({"device_code": "dev-123", "user_code": "WDJB-MJHT",
                    "verification_uri": "https://provider.example/device", "interval": 1, "expires_in": 60}))
            }),
        )
        .route(
            "/token",
            axum::routing::post(move |body: String| async move {
                token_forms.lock().unwrap().push(body);
                if polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    return (axum::http::StatusCode::BAD_REQUEST, axum::Json(json!({"error": "authorization_pending"})));
                }
                let mut header = Header::new(Algorithm::EdDSA);
                header.kid = Some(kid.clone());
                let exp = chrono::Utc::now().timestamp() + 600;
                let claims = json!({"iss": claims_issuer, "aud": "console", "sub": "carol", "email": "carol@example.com", "exp": exp});
                let id_token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
                (axum::http::StatusCode::OK, axum::Json(json!({"id_token": id_token, "token_type": "Bearer"})))
            }),
        );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (issuer, forms, server)
}

/// On a deployment with an identity provider, `keygate login` runs the provider's device flow:
/// it prints the code and the address, waits out `authorization_pending`, keeps the ID token,
/// and the commands that follow are the provider's user's.
#[tokio::test(flavor = "multi_thread")]
async fn login_through_the_providers_device_flow() {
    let (issuer, forms, server) = device_flow_provider().await;
    let gateway = LocalGateway::start(&["--oidc-issuer", &issuer, "--oidc-client-id", "console"]);
    let carol = Shell::new(&gateway, "carol");
    let (stdout, stderr) = carol.run(&["login"], None, 0);
    assert!(
        stderr.contains("open https://provider.example/device in a browser and enter the code WDJB-MJHT"),
        "{stderr}"
    );
    assert!(stdout.starts_with("Signed in to "), "{stdout}");
    let forms = forms.lock().unwrap().clone();
    assert!(forms[0].contains("client_id=console") && forms[0].contains("scope=openid"), "{forms:?}");
    assert_eq!(forms.len(), 3, "the device request, one pending poll, the token: {forms:?}");
    assert!(
        forms[2].contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code")
            && forms[2].contains("device_code=dev-123")
    );
    // The kept token is the provider's, and keygate-local takes it.
    let listed = carol.json(&["keys", "list"], None, 0);
    assert_eq!(listed["items"], json!([]), "{listed}");
    let (_, why) = carol.run(&["login", "--user", "x", "--email", "x@example.com"], None, 1);
    assert!(why.contains("signs in with its identity provider"), "{why}");
    server.abort();
}
