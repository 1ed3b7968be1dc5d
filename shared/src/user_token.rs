//! User tokens where keygate checks them itself (the local gateway; on AWS, API Gateway's JWT
//! authorizer does): either HS256 with a local secret that keygate-local also mints with, or the
//! ID tokens of an OpenID Connect provider, checked with the public keys of its JWKS. Either way
//! the algorithm is pinned (per key for a provider), issuer, audience, `exp` and `nbf` are
//! checked (30 s of leeway each), a `crit` header is refused (keygate understands no extension,
//! RFC 7515 4.1.11), and a `typ` that an API key can never have is required.
//!
//! A provider's key set can be replaced while running ([`UserTokens::replace_provider_keys`]):
//! keygate-local reads the JWKS again in the background and on an unknown `kid`, so a key the
//! provider withdraws stops being trusted and a key it adds is used (SECURITY.md).

use std::collections::HashMap;
use std::sync::RwLock;

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError, Result};

pub const LOCAL_ISSUER: &str = "keygate-local";
pub const LOCAL_AUDIENCE: &str = "keygate-local";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    iat: i64,
    exp: i64,
}

/// Who a local user token is minted for: `keygate-local token` and the local console's sign-in
/// form take the same details under the same rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalUser {
    pub sub: String,
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
}

impl LocalUser {
    pub fn validate(&self) -> Result<()> {
        let mut errors = Vec::new();
        if let Err(rule) = crate::ids::UserId::parse(&self.sub) {
            errors.push(FieldError::new("sub", format!("the user id {rule}")));
        }
        if !crate::project::is_email(&self.email) {
            errors.push(FieldError::new("email", "must be an e-mail address, like ann@example.com"));
        }
        if let Some(name) = &self.name
            && (name.chars().count() > 256 || name.chars().any(char::is_control))
        {
            errors.push(FieldError::new("name", "must be at most 256 characters, without control characters"));
        }
        if errors.is_empty() { Ok(()) } else { Err(Error::Validation(errors)) }
    }

    /// The display name, when one was given.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref().map(str::trim).filter(|n| !n.is_empty())
    }
}

/// The claims keygate reads of a provider's ID token (it checks `iss`, `aud`, `exp` too).
#[derive(Debug, Deserialize)]
struct ProviderClaims {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// The signing keys of a JWKS document by `kid`, each with the one algorithm it is used with
/// (RSA, P-256 or Ed25519; a key's own `alg` wins, else the usual one for its type).
fn provider_keys(jwks: &str) -> Result<ProviderKeys, String> {
    let set: JwkSet = serde_json::from_str(jwks).map_err(|e| format!("the JWKS document is not a key set: {e}"))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let Some(kid) = jwk.common.key_id.clone() else { continue };
        let algorithm = match (jwk.common.key_algorithm.map(Algorithm::try_from), &jwk.algorithm) {
            (Some(Ok(a)), _) => a,
            (_, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
            (_, AlgorithmParameters::EllipticCurve(p)) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
            (_, AlgorithmParameters::OctetKeyPair(_)) => Algorithm::EdDSA,
            _ => continue,
        };
        if matches!(algorithm, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            continue;
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid} of the JWKS: {e}"))?;
        keys.insert(kid, (key, algorithm));
    }
    if keys.is_empty() {
        return Err("the JWKS document has no signing key with a kid".into());
    }
    Ok(keys)
}

type ProviderKeys = HashMap<String, (DecodingKey, Algorithm)>;

/// The members of a token's header read before its signature is checked.
#[derive(Deserialize)]
struct UnverifiedHeader {
    kid: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

fn unverified_header(token: &str) -> Option<UnverifiedHeader> {
    crate::signing::decode_part(token.split('.').next()?)
}

/// Mints and checks user tokens signed with a shared secret, or checks a provider's.
pub struct UserTokens {
    /// Only with a local secret: a provider's tokens are minted by the provider.
    encoding: Option<EncodingKey>,
    keys: Keys,
    validation: Validation,
}

enum Keys {
    Secret(DecodingKey),
    /// The provider's signing keys, replaced when its JWKS is read again.
    Provider(RwLock<ProviderKeys>),
}

impl std::fmt::Debug for UserTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserTokens(<secret>)")
    }
}

/// `exp` and `nbf` are checked with this much leeway for clocks that differ (seconds).
const LEEWAY: u64 = 30;

impl UserTokens {
    /// A new random secret, base64url, for a data directory.
    pub fn generate_secret() -> String {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn validation(algorithm: Algorithm, issuer: &str, audience: &[impl ToString]) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation
    }

    pub fn new(secret: &str) -> Self {
        let secret = secret.trim().as_bytes();
        Self {
            encoding: Some(EncodingKey::from_secret(secret)),
            keys: Keys::Secret(DecodingKey::from_secret(secret)),
            validation: Self::validation(Algorithm::HS256, LOCAL_ISSUER, &[LOCAL_AUDIENCE]),
        }
    }

    /// Checks the ID tokens of an OpenID Connect provider: `iss` must be `issuer`, `aud` one of
    /// `audience`, and the signature one of the signing keys of its JWKS document.
    pub fn from_provider(issuer: &str, audience: &[String], jwks: &str) -> Result<Self, String> {
        let keys = provider_keys(jwks)?;
        let validation = Self::validation(Algorithm::RS256, issuer, audience);
        Ok(Self { encoding: None, keys: Keys::Provider(RwLock::new(keys)), validation })
    }

    /// Replaces a provider's key set with the keys of `jwks` (read again from the provider):
    /// withdrawn keys are no longer trusted, new ones are. A document without a usable key
    /// changes nothing. Returns how many keys are trusted now.
    pub fn replace_provider_keys(&self, jwks: &str) -> Result<usize, String> {
        let Keys::Provider(current) = &self.keys else {
            return Err("user tokens are checked with a local secret, not a provider's keys".into());
        };
        let keys = provider_keys(jwks)?;
        let count = keys.len();
        *current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
        Ok(count)
    }

    /// Whether `token` names a signing key that the provider's key set does not hold (the set
    /// may be out of date: the caller reads it again, at most once a minute).
    pub fn names_an_unknown_provider_key(&self, token: &str) -> bool {
        let Keys::Provider(keys) = &self.keys else { return false };
        let Some(kid) = unverified_header(token).and_then(|h| h.kid) else { return false };
        !keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(&kid)
    }

    /// Whether this gateway mints its own user tokens (a local secret) rather than checking a
    /// provider's.
    pub fn mints(&self) -> bool {
        self.encoding.is_some()
    }

    pub fn mint(&self, sub: &str, email: &str, name: Option<&str>, ttl: chrono::Duration) -> Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: LOCAL_ISSUER.into(),
            aud: LOCAL_AUDIENCE.into(),
            sub: sub.into(),
            email: email.into(),
            name: name.map(Into::into),
            iat: now,
            exp: now + ttl.num_seconds(),
        };
        let encoding = self.encoding.as_ref().ok_or_else(|| {
            Error::BadRequest("user tokens come from the identity provider here; keygate mints none".into())
        })?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, encoding).map_err(Error::internal)
    }

    /// The claims API Gateway's JWT authorizer would pass on: `sub`, `email`, and `name`.
    pub fn verify(&self, token: &str) -> Result<HashMap<String, String>> {
        let refused = || Error::Unauthenticated("the user token is invalid or expired".into());
        if token.len() > crate::signing::MAX_TOKEN_LEN {
            return Err(refused());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| refused())?;
        if header.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
            return Err(refused());
        }
        if unverified_header(token).is_none_or(|h| h.crit.is_some()) {
            return Err(refused());
        }
        let (sub, email, name) = match &self.keys {
            Keys::Secret(key) => {
                let c = jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|_| refused())?.claims;
                (c.sub, Some(c.email), c.name)
            }
            Keys::Provider(keys) => {
                let keys = keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
                let (key, algorithm) = header.kid.as_deref().and_then(|kid| keys.get(kid)).ok_or_else(refused)?;
                if header.alg != *algorithm {
                    return Err(refused());
                }
                let mut validation = self.validation.clone();
                validation.algorithms = vec![*algorithm];
                let c = jsonwebtoken::decode::<ProviderClaims>(token, key, &validation).map_err(|_| refused())?.claims;
                (c.sub, c.email, c.name)
            }
        };
        // Like API Gateway's JWT authorizer, claims pass as they are; the handlers require the
        // e-mail address.
        let mut out = HashMap::from([("sub".to_owned(), sub)]);
        if let Some(email) = email {
            out.insert("email".into(), email);
        }
        if let Some(name) = name {
            out.insert("name".into(), name);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_and_others_do_not() {
        let tokens = UserTokens::new(&UserTokens::generate_secret());
        let t = tokens.mint("ann", "ann@example.com", Some("Ann"), chrono::Duration::hours(1)).unwrap();
        let claims = tokens.verify(&t).unwrap();
        assert_eq!(claims["sub"], "ann");
        assert_eq!(claims["name"], "Ann");
        let other = UserTokens::new(&UserTokens::generate_secret());
        assert_eq!(other.verify(&t).unwrap_err().status(), 401);
        let expired = tokens.mint("ann", "ann@example.com", None, chrono::Duration::hours(-1)).unwrap();
        assert_eq!(tokens.verify(&expired).unwrap_err().status(), 401);
    }

    #[test]
    fn an_api_key_is_not_a_user_token() {
        let ring = crate::signing::KeyRing::new("i", &crate::signing::KeyRing::generate_pem(), &[]).unwrap();
        let key = ring
            .sign(&crate::signing::KeyClaims {
                iss: LOCAL_ISSUER.into(),
                sub: "ann".into(),
                aud: LOCAL_AUDIENCE.into(),
                jti: "x".into(),
                iat: 0,
                exp: None,
                nbf: None,
                tpl: "t".into(),
                generation: 0,
                narrowed: None,
            })
            .unwrap();
        let tokens = UserTokens::new(&UserTokens::generate_secret());
        assert!(tokens.verify(key.expose()).is_err());
    }

    /// An OpenID Connect provider of the test: an Ed25519 key, its JWKS, and ID tokens.
    fn provider() -> (EncodingKey, String, String) {
        let pem = crate::signing::KeyRing::generate_pem();
        let ring = crate::signing::KeyRing::new("i", &pem, &[]).unwrap();
        let jwk = ring.current_public();
        let jwks = serde_json::json!({"keys": [jwk]}).to_string();
        (EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(), jwks, jwk.kid.clone())
    }

    fn id_token(key: &EncodingKey, kid: &str, alg: Algorithm, claims: serde_json::Value) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    #[test]
    fn a_providers_id_tokens_verify_by_its_jwks_with_issuer_and_audience_checked() {
        let (key, jwks, kid) = provider();
        let tokens = UserTokens::from_provider("https://id.example.com", &["console".into()], &jwks).unwrap();
        assert!(!tokens.mints());
        let exp = chrono::Utc::now().timestamp() + 600;
        let claims = |iss: &str, aud: serde_json::Value| serde_json::json!({"iss": iss, "aud": aud, "sub": "ann", "email": "ann@example.com", "name": "Ann", "exp": exp});
        let good = id_token(&key, &kid, Algorithm::EdDSA, claims("https://id.example.com", "console".into()));
        let verified = tokens.verify(&good).unwrap();
        assert_eq!((verified["sub"].as_str(), verified["email"].as_str()), ("ann", "ann@example.com"));
        let listed = id_token(
            &key,
            &kid,
            Algorithm::EdDSA,
            claims("https://id.example.com", serde_json::json!(["x", "console"])),
        );
        assert!(tokens.verify(&listed).is_ok(), "aud may be a list holding the client id");
        for bad in [
            id_token(&key, &kid, Algorithm::EdDSA, claims("https://evil.example.com", "console".into())),
            id_token(&key, &kid, Algorithm::EdDSA, claims("https://id.example.com", "another-client".into())),
            id_token(&key, "unknown-kid", Algorithm::EdDSA, claims("https://id.example.com", "console".into())),
            // The key's public half used as an HMAC secret: the algorithm is pinned per key.
            id_token(
                &EncodingKey::from_secret(jwks.as_bytes()),
                &kid,
                Algorithm::HS256,
                claims("https://id.example.com", "console".into()),
            ),
        ] {
            assert_eq!(tokens.verify(&bad).unwrap_err().status(), 401);
        }
        assert_eq!(tokens.mint("ann", "ann@example.com", None, chrono::Duration::hours(1)).unwrap_err().status(), 400);
        assert!(UserTokens::from_provider("https://id.example.com", &[], r#"{"keys": []}"#).is_err());
        assert!(UserTokens::from_provider("https://id.example.com", &[], "not json").is_err());
    }

    #[test]
    fn an_id_token_not_yet_valid_or_with_a_critical_extension_is_refused() {
        let (key, jwks, kid) = provider();
        let tokens = UserTokens::from_provider("https://id.example.com", &["console".into()], &jwks).unwrap();
        let now = chrono::Utc::now().timestamp();
        let claims = |nbf: i64| serde_json::json!({"iss": "https://id.example.com", "aud": "console", "sub": "ann", "exp": now + 7200, "nbf": nbf});
        assert!(tokens.verify(&id_token(&key, &kid, Algorithm::EdDSA, claims(now))).is_ok());
        assert!(tokens.verify(&id_token(&key, &kid, Algorithm::EdDSA, claims(now + 20))).is_ok(), "within the leeway");
        let early = id_token(&key, &kid, Algorithm::EdDSA, claims(now + 3600));
        assert_eq!(tokens.verify(&early).unwrap_err().status(), 401, "nbf an hour ahead");

        // The same token with `crit` in its header, signed properly.
        let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": kid, "crit": ["exp"], "exp": 1});
        let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!("{}.{}", b64(&header), b64(&claims(now)));
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::EdDSA).unwrap();
        assert_eq!(tokens.verify(&format!("{input}.{signature}")).unwrap_err().status(), 401, "crit is refused");

        let local = UserTokens::new(&UserTokens::generate_secret());
        let mut early = serde_json::json!({"iss": LOCAL_ISSUER, "aud": LOCAL_AUDIENCE, "sub": "ann", "email": "a@b.c", "exp": now + 7200});
        early["nbf"] = serde_json::json!(now + 3600);
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &early, local.encoding.as_ref().unwrap()).unwrap();
        assert_eq!(local.verify(&t).unwrap_err().status(), 401, "local tokens too");
    }

    #[test]
    fn a_providers_key_set_is_replaced_withdrawn_keys_refused_new_ones_used() {
        let (old_key, old_jwks, old_kid) = provider();
        let (new_key, new_jwks, new_kid) = provider();
        let tokens = UserTokens::from_provider("https://id.example.com", &["console".into()], &old_jwks).unwrap();
        let exp = chrono::Utc::now().timestamp() + 600;
        let claims = serde_json::json!({"iss": "https://id.example.com", "aud": "console", "sub": "ann", "exp": exp});
        let old = id_token(&old_key, &old_kid, Algorithm::EdDSA, claims.clone());
        let new = id_token(&new_key, &new_kid, Algorithm::EdDSA, claims);
        assert!(tokens.verify(&old).is_ok());
        assert!(tokens.names_an_unknown_provider_key(&new) && !tokens.names_an_unknown_provider_key(&old));
        assert!(tokens.verify(&new).is_err());
        assert_eq!(tokens.replace_provider_keys(&new_jwks), Ok(1));
        assert!(tokens.verify(&new).is_ok(), "the added key is used");
        assert!(tokens.verify(&old).is_err(), "the withdrawn key is refused");
        assert!(tokens.replace_provider_keys(r#"{"keys": []}"#).is_err());
        assert!(tokens.verify(&new).is_ok(), "an empty document changes nothing");
        assert!(UserTokens::new("s").replace_provider_keys(&new_jwks).is_err());
    }
}
