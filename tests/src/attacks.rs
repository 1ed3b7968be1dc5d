//! Forged and misused API keys (RFC 8725 and the classes jwt_tool tries), each sent through the
//! authorizer: every one must be denied, and none may be metered.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::Utc;
use http::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keygate::App;
use keygate::authorizer::Authorizer;
use keygate::signing::{API_KEY_TYP, KeyRing, PublicJwk};
use keygate::testing::{ISSUER, TestApp};
use keygate::user_token::UserTokens;
use serde_json::{Value, json};

use crate::story::{self, Story};

fn b64(v: &Value) -> String {
    B64.encode(v.to_string())
}

fn parts(token: &str) -> (String, String, String) {
    let mut it = token.split('.');
    let (h, p, s) = (it.next().unwrap_or(""), it.next().unwrap_or(""), it.next().unwrap_or(""));
    (h.to_owned(), p.to_owned(), s.to_owned())
}

fn decode(part: &str) -> Value {
    serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
}

fn sign_ed(pem: &str, header: Value, claims: &Value) -> String {
    let signing_input = format!("{}.{}", b64(&header), b64(claims));
    let der = pem::parse(pem).unwrap();
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(der.contents()).unwrap();
    format!("{signing_input}.{}", B64.encode(pair.sign(signing_input.as_bytes()).as_ref()))
}

/// Everything an attack needs: a live key, its claims, the signing key, and a second project.
pub struct Target {
    pub app: Arc<App>,
    pub authorizer: Arc<Authorizer>,
    pub story: Story,
    pub pem: String,
    pub token: String,
    pub claims: Value,
    pub header: Value,
    pub other_project_token: String,
    pub revoked_token: String,
}

pub async fn target(store: Arc<dyn keygate::store::Store>) -> Target {
    let pem = KeyRing::generate_pem();
    let TestApp { app, authorizer, .. } = TestApp::with_key(store, &pem);
    let (app, authorizer) = (Arc::new(app), Arc::new(authorizer));
    let story = story::pending_request(&app).await;
    let key = app.approve(&story.owner, &story.project, &story.request).await.unwrap().key;
    let token = app.my_key_token(&story.holder, &key.id).await.unwrap().token.expose().to_owned();
    let (h, p, _) = parts(&token);
    // A key of another project, held by the same user; and a revoked key of the same user.
    let other = story::pending_request(&app).await;
    let other_key = app.approve(&other.owner, &other.project, &other.request).await.unwrap().key;
    let other_project_token = app.my_key_token(&other.holder, &other_key.id).await.unwrap().token.expose().to_owned();
    let third = story::pending_request(&app).await;
    let third_key = app.approve(&third.owner, &third.project, &third.request).await.unwrap().key;
    let revoked_token = app.my_key_token(&third.holder, &third_key.id).await.unwrap().token.expose().to_owned();
    app.revoke(&third.owner, &third.project, &third_key.id).await.unwrap();
    Target {
        app,
        authorizer,
        story,
        pem,
        token,
        claims: decode(&p),
        header: decode(&h),
        other_project_token,
        revoked_token,
    }
}

impl Target {
    fn path(&self) -> String {
        format!("/api/projects/{}/data_layers/last", self.story.project)
    }

    fn with_claims(&self, f: impl FnOnce(&mut Value)) -> String {
        let mut claims = self.claims.clone();
        f(&mut claims);
        sign_ed(&self.pem, self.header.clone(), &claims)
    }

    fn with_header(&self, f: impl FnOnce(&mut Value)) -> String {
        let mut header = self.header.clone();
        f(&mut header);
        sign_ed(&self.pem, header, &self.claims)
    }

    /// Every forgery, named.
    pub fn forgeries(&self) -> Vec<(&'static str, String)> {
        let (h, p, s) = parts(&self.token);
        let none_header = b64(&json!({"alg": "none", "typ": API_KEY_TYP, "kid": self.header["kid"]}));
        let public = {
            let ring = KeyRing::new(ISSUER, &self.pem, &[]).unwrap();
            let jwk: PublicJwk = serde_json::from_value(ring.jwks()["keys"][0].clone()).unwrap();
            B64.decode(jwk.x).unwrap()
        };
        let confused = {
            let mut header = Header::new(Algorithm::HS256);
            header.typ = Some(API_KEY_TYP.into());
            header.kid = self.header["kid"].as_str().map(str::to_owned);
            jsonwebtoken::encode(&header, &self.claims, &EncodingKey::from_secret(&public)).unwrap()
        };
        let confused_pem = {
            let pem = format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                base64::engine::general_purpose::STANDARD.encode(&public)
            );
            let mut header = Header::new(Algorithm::HS256);
            header.typ = Some(API_KEY_TYP.into());
            header.kid = self.header["kid"].as_str().map(str::to_owned);
            jsonwebtoken::encode(&header, &self.claims, &EncodingKey::from_secret(pem.as_bytes())).unwrap()
        };
        let attacker_pem = KeyRing::generate_pem();
        let attacker = KeyRing::new(ISSUER, &attacker_pem, &[]).unwrap();
        let attacker_jwk = attacker.jwks()["keys"][0].clone();
        let attacker_signed = |header: Value| sign_ed(&attacker_pem, header, &self.claims);
        let mut flipped = s.clone().into_bytes();
        flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
        let altered = {
            let mut claims = self.claims.clone();
            claims["sub"] = json!("mallory");
            format!("{h}.{}.{s}", b64(&claims))
        };
        let now = Utc::now().timestamp();
        let tokens = UserTokens::new(&UserTokens::generate_secret());
        let user_token = tokens.mint("bob", "bob@example.com", None, chrono::Duration::hours(1)).unwrap();
        vec![
            ("alg none, no signature", format!("{none_header}.{p}.")),
            ("alg none, with the real signature", format!("{none_header}.{p}.{s}")),
            ("HS256 keyed with the Ed25519 public key", confused),
            ("HS256 keyed with the public key PEM", confused_pem),
            (
                "embedded jwk of the attacker's key",
                attacker_signed(json!({"alg": "EdDSA", "typ": API_KEY_TYP, "jwk": attacker_jwk})),
            ),
            (
                "embedded jwk with the real kid",
                attacker_signed(
                    json!({"alg": "EdDSA", "typ": API_KEY_TYP, "kid": self.header["kid"], "jwk": attacker_jwk}),
                ),
            ),
            (
                "jku header",
                attacker_signed(
                    json!({"alg": "EdDSA", "typ": API_KEY_TYP, "kid": self.header["kid"], "jku": "https://evil.example/jwks.json"}),
                ),
            ),
            (
                "x5u header",
                attacker_signed(
                    json!({"alg": "EdDSA", "typ": API_KEY_TYP, "kid": self.header["kid"], "x5u": "https://evil.example/cert.pem"}),
                ),
            ),
            ("signed by an unknown key", attacker_signed(self.header.clone())),
            ("kid with a path", self.with_header(|hd| hd["kid"] = json!("../../../../dev/null"))),
            ("kid with quotes", self.with_header(|hd| hd["kid"] = json!("x' OR '1'='1\""))),
            (
                "no kid",
                self.with_header(|hd| {
                    hd.as_object_mut().unwrap().remove("kid");
                }),
            ),
            ("wrong typ", self.with_header(|hd| hd["typ"] = json!("JWT"))),
            ("bad signature", format!("{h}.{p}.{}", String::from_utf8(flipped).unwrap())),
            ("empty signature", format!("{h}.{p}.")),
            ("payload altered after signing", altered),
            ("expired", self.with_claims(|c| c["exp"] = json!(now - 60))),
            ("not valid yet (nbf)", self.with_claims(|c| c["nbf"] = json!(now + 3600))),
            ("wrong iss", self.with_claims(|c| c["iss"] = json!("https://evil.example"))),
            (
                "aud of another project",
                self.with_claims(|c| c["aud"] = json!(format!("project:{}", keygate::ids::ProjectId::generate()))),
            ),
            ("aud as an array", self.with_claims(|c| c["aud"] = json!([c["aud"].clone()]))),
            (
                "missing jti",
                self.with_claims(|c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
            ),
            (
                "jti of a key that does not exist",
                self.with_claims(|c| c["jti"] = json!(keygate::ids::KeyId::generate())),
            ),
            ("jti of another project's key", {
                let other = decode(&parts(&self.other_project_token).1);
                self.with_claims(|c| c["jti"] = other["jti"].clone())
            }),
            ("another user's sub", self.with_claims(|c| c["sub"] = json!("mallory"))),
            ("another template", self.with_claims(|c| c["tpl"] = json!(keygate::ids::TemplateId::generate()))),
            ("a valid key of another project", self.other_project_token.clone()),
            ("a revoked key", self.revoked_token.clone()),
            ("a user token", user_token),
            ("malformed base64", format!("{h}.{p}!!.{s}")),
            ("two segments", format!("{h}.{p}")),
            ("four segments", format!("{h}.{p}.{s}.{s}")),
            ("non-JSON header", format!("{}.{p}.{s}", B64.encode("not json"))),
            ("non-JSON payload", format!("{h}.{}.{s}", B64.encode("[1,2"))),
            ("100 KB token", format!("{h}.{}.{s}", "A".repeat(100 * 1024))),
            ("empty", String::new()),
        ]
    }
}

/// Sends every forgery through the authorizer: all denied, none metered, the real key still good.
pub async fn forged_keys_are_denied_and_never_metered(store: Arc<dyn keygate::store::Store>) {
    let t = target(store).await;
    let path = t.path();
    for (name, token) in t.forgeries() {
        let verdict = t.authorizer.authorize(&Method::GET, &path, Some(&format!("Bearer {token}"))).await;
        assert!(verdict.is_err(), "{name}: allowed");
    }
    let period = keygate::usage::Period::parse(None, None, Utc::now() + chrono::Duration::hours(1), 366).unwrap();
    let rows = t.app.list_issued_keys(&t.story.owner, &t.story.project, period, &Default::default()).await.unwrap();
    assert_eq!(rows.items[0].requests, 0, "a denied call was metered");
    let verdict = t.authorizer.authorize(&Method::GET, &path, Some(&format!("Bearer {}", t.token))).await;
    assert!(verdict.is_ok(), "the real key still works: {verdict:?}");
}

/// Keys signed by a rotated-out signing key work while its public key is kept, and fail after.
pub async fn rotated_out_keys_live_while_their_public_key_is_kept(store: Arc<dyn keygate::store::Store>) {
    let t = target(store.clone()).await;
    let path = t.path();
    let old = KeyRing::new(ISSUER, &t.pem, &[]).unwrap();
    let retired: Vec<PublicJwk> = serde_json::from_value(old.jwks()["keys"].clone()).unwrap();
    let with_ring = |ring: KeyRing| {
        Authorizer::of(&t.app.with(store.clone(), t.app.mailer.clone(), Arc::new(ring), t.app.clock.clone()))
    };
    let rotated = with_ring(KeyRing::new(ISSUER, &KeyRing::generate_pem(), &retired).unwrap());
    assert!(rotated.authorize(&Method::GET, &path, Some(&format!("Bearer {}", t.token))).await.is_ok());
    let forgotten = with_ring(KeyRing::new(ISSUER, &KeyRing::generate_pem(), &[]).unwrap());
    assert!(forgotten.authorize(&Method::GET, &path, Some(&format!("Bearer {}", t.token))).await.is_err());
}
