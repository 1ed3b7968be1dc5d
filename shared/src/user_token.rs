//! User tokens where keygate checks them itself (the local gateway; on AWS, API Gateway's JWT
//! authorizer does): HS256 with a local secret, pinned algorithm, issuer and audience, and a
//! `typ` that an API key can never have.

use std::collections::HashMap;

use base64::Engine;
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

/// Mints and checks user tokens signed with a shared secret.
pub struct UserTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for UserTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserTokens(<secret>)")
    }
}

impl UserTokens {
    /// A new random secret, base64url, for a data directory.
    pub fn generate_secret() -> String {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn new(secret: &str) -> Self {
        let secret = secret.trim().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.set_issuer(&[LOCAL_ISSUER]);
        validation.set_audience(&[LOCAL_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation }
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
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(Error::internal)
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
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|_| refused())?.claims;
        let mut out = HashMap::from([("sub".to_owned(), claims.sub), ("email".to_owned(), claims.email)]);
        if let Some(name) = claims.name {
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
            })
            .unwrap();
        let tokens = UserTokens::new(&UserTokens::generate_secret());
        assert!(tokens.verify(key.expose()).is_err());
    }
}
