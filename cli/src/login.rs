//! Signing in: the deployment's console configuration (`/console/config.json`) says how people
//! sign in. On `keygate-local` that is its own sign-in (a user id and an e-mail address); on a
//! deployment with an OpenID Connect provider it is the provider's device flow (RFC 8628): the
//! command prints a code and an address to open in any browser, and waits for the provider.
//!
//! The device flow is two form POSTs and a poll; it is written here with the HTTP client the
//! command line already has rather than with a second OAuth stack (the `oauth2` crate brings
//! its own HTTP client version).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Client, Failure, Result};

/// Who signs in on `keygate-local`.
pub struct LocalUser {
    pub sub: String,
    pub email: String,
    pub name: Option<String>,
}

/// Signs in to the deployment at `client`'s URL: its user token.
pub async fn sign_in(client: &Client, local: Option<LocalUser>) -> Result<String> {
    let config = client.call(Method::GET, "/console/config.json", None, None).await?.body;
    match config.get("sign_in").and_then(Value::as_str) {
        Some("local") => {
            let user = local.ok_or_else(|| {
                Failure::Local(format!(
                    "{} signs in locally: give --user <id> and --email <address> (and --name)",
                    client.base()
                ))
            })?;
            let body = json!({"sub": user.sub, "email": user.email, "name": user.name});
            let answer = client.call(Method::POST, "/local/sign-in", None, Some(&body)).await?;
            token_of(&answer.body, "token")
        }
        Some("oidc") if local.is_some() => Err(Failure::Local(format!(
            "{} signs in with its identity provider: run keygate login without --user and --email",
            client.base()
        ))),
        Some("oidc") => device_flow(client, &config).await,
        _ => Err(Failure::Local(format!("{} did not say how to sign in (is it a keygate deployment?)", client.base()))),
    }
}

fn token_of(body: &Value, field: &str) -> Result<String> {
    body.get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Failure::Local(format!("the answer carried no {field}")))
}

async fn device_flow(client: &Client, config: &Value) -> Result<String> {
    let field = |k: &str| config.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (issuer, client_id, scope) = (field("issuer"), field("client_id"), field("scope"));
    let discovery = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let provider = client.call(Method::GET, &discovery, None, None).await?.body;
    let endpoint = |k: &str| provider.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(device), Some(token)) = (endpoint("device_authorization_endpoint"), endpoint("token_endpoint")) else {
        return Err(Failure::Local(format!(
            "the identity provider {issuer} offers no device flow; sign in to the console and pass its token with --token"
        )));
    };
    let (status, grant) = client.post_form(&device, &[("client_id", &client_id), ("scope", &scope)]).await?;
    if !status.is_success() {
        return Err(Failure::Local(format!("the identity provider refused the device sign-in ({status}): {grant}")));
    }
    let device_code = token_of(&grant, "device_code")?;
    let user_code = token_of(&grant, "user_code")?;
    let uri = grant
        .get("verification_uri_complete")
        .or_else(|| grant.get("verification_uri"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    eprintln!("To sign in, open {uri} in a browser and enter the code {user_code}");
    let mut interval = Duration::from_secs(grant.get("interval").and_then(Value::as_u64).unwrap_or(5));
    let deadline = Instant::now() + Duration::from_secs(grant.get("expires_in").and_then(Value::as_u64).unwrap_or(600));
    while Instant::now() < deadline {
        tokio::time::sleep(interval).await;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code.as_str()),
            ("client_id", client_id.as_str()),
        ];
        let (status, answer) = client.post_form(&token, &form).await?;
        if status.is_success() {
            // keygate's routes take the provider's ID token, as API Gateway's JWT authorizer does.
            return token_of(&answer, "id_token");
        }
        match answer.get("error").and_then(Value::as_str) {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += Duration::from_secs(5),
            Some("access_denied") => return Err(Failure::Local("the sign-in was declined in the browser".into())),
            Some("expired_token") => break,
            other => {
                return Err(Failure::Local(format!(
                    "the identity provider refused the sign-in: {}",
                    other.unwrap_or("no reason")
                )));
            }
        }
    }
    Err(Failure::Local("the sign-in code expired before it was used; run keygate login again".into()))
}
