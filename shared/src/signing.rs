//! API keys as JWTs: Ed25519 (EdDSA) signing with a `kid`, verification pinned to EdDSA and to
//! the keys of the key ring, and the JWKS that publishes the public keys.

use std::collections::HashMap;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use crate::ids::ProjectId;
use crate::secret::SecretValue;

/// The `typ` header of every API key, so that no other JWT can pass for one (RFC 8725 3.11).
pub const API_KEY_TYP: &str = "apikey+jwt";

/// Longest token the authorizer will look at; real keys are about 400 bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("the signing key is not an Ed25519 private key in PKCS#8 PEM form")]
    BadSigningKey,
    #[error("a public key is not a valid Ed25519 JWK: {0}")]
    BadPublicKey(String),
    #[error("this key ring only verifies: the function was given the public key, not the signing key")]
    VerifyOnly,
    #[error("signing failed")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// The claims of an API key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub jti: String,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Never issued by keygate; read so that a cached token's `nbf` is checked again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub tpl: String,
    /// The key's token generation ([`crate::key::IssuedKey::generation`]): absent until the
    /// key is first rerolled, so that a key's first token is what it always was.
    #[serde(rename = "gen", default, skip_serializing_if = "is_zero")]
    pub generation: u32,
    /// A narrowed token's key and narrowing ([`crate::narrowed`]); its `jti` is then its own
    /// id, not the key's.
    #[serde(rename = "nar", default, skip_serializing_if = "Option::is_none")]
    pub narrowed: Option<crate::narrowed::Narrowing>,
}

impl KeyClaims {
    /// The id of the key these claims speak for: the key's own, or a narrowed token's key.
    pub fn key_id(&self) -> &str {
        self.narrowed.as_ref().map_or(&self.jti, |n| &n.key)
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What an API key's `aud` starts with; the project's id follows.
const AUDIENCE_PREFIX: &str = "project:";

/// The `aud` of the API keys of `project`.
pub fn audience(project: &ProjectId) -> String {
    format!("{AUDIENCE_PREFIX}{project}")
}

/// The project an API key's `aud` names, if it names one.
pub fn audience_project(aud: &str) -> Option<ProjectId> {
    aud.strip_prefix(AUDIENCE_PREFIX).and_then(ProjectId::parse)
}

/// A public key in JWKS form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
}

impl PublicJwk {
    fn ed25519(public: &[u8]) -> Self {
        let x = URL_SAFE_NO_PAD.encode(public);
        Self {
            kid: thumbprint(&x),
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x,
            use_: "sig".into(),
            alg: "EdDSA".into(),
        }
    }
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key: a `kid` that names the key itself.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()))
}

/// Why a token was refused. What follows the signature check (expired, not yet valid, another
/// project's) is told to the caller; before it, only that the key is not one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    ForbiddenHeader,
    UnknownKey,
    BadSignatureOrClaims,
    /// Well signed, but past its `exp`.
    Expired,
    /// Well signed, but before its `nbf`.
    NotYetValid,
    /// Well signed, but for another project (`aud`).
    OtherProject,
}

/// The current signing key and every public key that still verifies. A verify-only ring (the
/// authorizer's) holds the current key's public half instead of the key itself.
pub struct KeyRing {
    issuer: String,
    encoding: Option<EncodingKey>,
    verifiers: HashMap<String, DecodingKey>,
    jwks: Vec<PublicJwk>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("issuer", &self.issuer).field("kid", &self.kid()).finish_non_exhaustive()
    }
}

impl KeyRing {
    /// A new Ed25519 private key, PEM, in the form of RFC 8410 (PKCS#8 v1, the private key
    /// alone), which `openssl genpkey -algorithm ed25519` writes and OpenSSL 3.0 and Python's
    /// `cryptography` read; they refuse the v2 form (RFC 5958, public key included). Both forms
    /// are read by [`KeyRing::new`].
    pub fn generate_pem() -> String {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8v1(&rng).expect("the system random source works");
        pem::encode(&pem::Pem::new("PRIVATE KEY", doc.as_ref().to_vec()))
    }

    /// `signing_pem` signs new keys; `retired` are public keys of earlier signing keys whose
    /// keys must keep working until they expire or are revoked.
    pub fn new(issuer: &str, signing_pem: &str, retired: &[PublicJwk]) -> Result<Self, KeyRingError> {
        let der = pem::parse(signing_pem).map_err(|_| KeyRingError::BadSigningKey)?;
        if der.tag() != "PRIVATE KEY" {
            return Err(KeyRingError::BadSigningKey);
        }
        let pair = Ed25519KeyPair::from_pkcs8(der.contents()).map_err(|_| KeyRingError::BadSigningKey)?;
        let current = PublicJwk::ed25519(pair.public_key().as_ref());
        let mut ring = Self::verify_only(issuer, &current, retired)?;
        ring.encoding = Some(EncodingKey::from_ed_der(der.contents()));
        Ok(ring)
    }

    /// The same ring without the private key: what a function that signs nothing holds.
    pub fn without_private_key(&self) -> Self {
        Self { issuer: self.issuer.clone(), encoding: None, verifiers: self.verifiers.clone(), jwks: self.jwks.clone() }
    }

    /// A ring that verifies keys signed by `current` (the public half of the signing key) or by
    /// a `retired` key, and signs nothing: what the authorizer needs, without the private key.
    pub fn verify_only(issuer: &str, current: &PublicJwk, retired: &[PublicJwk]) -> Result<Self, KeyRingError> {
        let mut ring = Self { issuer: issuer.to_owned(), encoding: None, verifiers: HashMap::new(), jwks: Vec::new() };
        // The current key first: `current_public` is `jwks[0]`.
        ring.add_public(current)?;
        for jwk in retired {
            ring.add_public(jwk)?;
        }
        Ok(ring)
    }

    /// Adds an Ed25519 public JWK; its `kid` is recomputed from the key (RFC 7638), never taken
    /// from the input.
    fn add_public(&mut self, jwk: &PublicJwk) -> Result<(), KeyRingError> {
        let raw = URL_SAFE_NO_PAD.decode(&jwk.x).map_err(|_| KeyRingError::BadPublicKey(jwk.kid.clone()))?;
        if jwk.kty != "OKP" || jwk.crv != "Ed25519" || raw.len() != 32 {
            return Err(KeyRingError::BadPublicKey(jwk.kid.clone()));
        }
        let jwk = PublicJwk::ed25519(&raw);
        if self.verifiers.insert(jwk.kid.clone(), DecodingKey::from_ed_der(&raw)).is_none() {
            self.jwks.push(jwk);
        }
        Ok(())
    }

    /// The public half of the current signing key.
    pub fn current_public(&self) -> &PublicJwk {
        &self.jwks[0]
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `kid` of the current signing key.
    pub fn kid(&self) -> &str {
        &self.current_public().kid
    }

    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.jwks })
    }

    /// Signs `claims`. Ed25519 is deterministic: the same claims always give the same token,
    /// which is how a key's token is re-created from its record instead of being stored.
    pub fn sign(&self, claims: &KeyClaims) -> Result<SecretValue, KeyRingError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid().to_owned());
        header.typ = Some(API_KEY_TYP.into());
        let encoding = self.encoding.as_ref().ok_or(KeyRingError::VerifyOnly)?;
        jsonwebtoken::encode(&header, claims, encoding).map(SecretValue::new).map_err(KeyRingError::Sign)
    }

    /// Verifies an API key for `project` at `now`: size, header (typ, alg, kid, no
    /// key-carrying members), signature with the named key, then the claims
    /// ([`KeyClaims::admit`]). Each part is decoded once; the time is keygate's clock, the
    /// same one that checks a token this instance has seen before.
    pub fn verify(&self, token: &str, project: &ProjectId, now: DateTime<Utc>) -> Result<KeyClaims, Refusal> {
        let claims = self.verify_signature(token)?;
        claims.admit(&self.issuer, project, now)?;
        Ok(claims)
    }

    /// The claims of a token this ring signed, whatever its time and project: size, header,
    /// signature. [`KeyClaims::admit`] decides whether they hold for a call; a token refused
    /// there (expired, for another project) still names a key keygate issued.
    pub fn verify_signature(&self, token: &str) -> Result<KeyClaims, Refusal> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Refusal::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::Malformed);
        };
        let header: ApiKeyHeader = decode_part(header).ok_or(Refusal::Malformed)?;
        if header.alg != "EdDSA" || header.typ.as_deref() != Some(API_KEY_TYP) || header.carries_a_key() {
            return Err(Refusal::ForbiddenHeader);
        }
        let key = header.kid.as_deref().and_then(|kid| self.verifiers.get(kid)).ok_or(Refusal::UnknownKey)?;
        let message = &token[..token.len() - signature.len() - 1];
        if !jsonwebtoken::crypto::verify(signature, message.as_bytes(), key, Algorithm::EdDSA).unwrap_or(false) {
            return Err(Refusal::BadSignatureOrClaims);
        }
        decode_part(payload).ok_or(Refusal::BadSignatureOrClaims)
    }
}

/// The members of an API key's header that keygate reads. The key-carrying ones are read only
/// to refuse them: the key is chosen by `kid` from the key ring, never taken from the token
/// (RFC 8725 3.10). Other members are ignored.
#[derive(Deserialize)]
struct ApiKeyHeader {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    jwk: Option<IgnoredAny>,
    jku: Option<IgnoredAny>,
    x5u: Option<IgnoredAny>,
    x5c: Option<IgnoredAny>,
    crit: Option<IgnoredAny>,
}

impl ApiKeyHeader {
    fn carries_a_key(&self) -> bool {
        self.jwk.is_some() || self.jku.is_some() || self.x5u.is_some() || self.x5c.is_some() || self.crit.is_some()
    }
}

/// A base64url (unpadded) JSON part of a compact JWS.
pub(crate) fn decode_part<T: DeserializeOwned>(part: &str) -> Option<T> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

impl KeyClaims {
    /// Whether these claims admit a call to `project` at `now`: `iss` is this keygate, `aud`
    /// is the project, `now` is before `exp` and not before `nbf` (RFC 7519 4.1.4, 4.1.5; no
    /// leeway: keygate's instances share one clock source). Checked when a token is verified
    /// and again on every call that reuses the verification.
    pub fn admit(&self, issuer: &str, project: &ProjectId, now: DateTime<Utc>) -> Result<(), Refusal> {
        let t = now.timestamp();
        if self.iss != issuer {
            Err(Refusal::BadSignatureOrClaims)
        } else if self.aud.strip_prefix(AUDIENCE_PREFIX) != Some(project.as_str()) {
            Err(Refusal::OtherProject)
        } else if self.exp.is_some_and(|exp| t >= exp) {
            Err(Refusal::Expired)
        } else if self.nbf.is_some_and(|nbf| t < nbf) {
            Err(Refusal::NotYetValid)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn claims(project: &ProjectId) -> KeyClaims {
        KeyClaims {
            iss: "https://keygate.test".into(),
            sub: "ann".into(),
            aud: audience(project),
            jti: crate::ids::KeyId::generate().to_string(),
            iat: 1_700_000_000,
            exp: None,
            nbf: None,
            tpl: crate::ids::TemplateId::generate().to_string(),
            generation: 0,
            narrowed: None,
        }
    }

    #[test]
    fn a_signed_key_verifies_for_its_project_only() {
        let ring = KeyRing::new("https://keygate.test", &KeyRing::generate_pem(), &[]).unwrap();
        let project = ProjectId::generate();
        let c = claims(&project);
        let token = ring.sign(&c).unwrap();
        assert_eq!(ring.verify(token.expose(), &project, now()).unwrap(), c);
        assert_eq!(ring.verify(token.expose(), &ProjectId::generate(), now()), Err(Refusal::OtherProject));
    }

    #[test]
    fn a_verify_only_ring_verifies_what_the_signing_ring_signs() {
        let signer = KeyRing::new("https://keygate.test", &KeyRing::generate_pem(), &[]).unwrap();
        let retired = KeyRing::new("https://keygate.test", &KeyRing::generate_pem(), &[]).unwrap();
        let verifier =
            KeyRing::verify_only("https://keygate.test", signer.current_public(), &[retired.current_public().clone()])
                .unwrap();
        assert_eq!(verifier.jwks(), serde_json::json!({ "keys": [signer.current_public(), retired.current_public()] }));
        let project = ProjectId::generate();
        let c = claims(&project);
        for ring in [&signer, &retired] {
            let token = ring.sign(&c).unwrap();
            assert_eq!(verifier.verify(token.expose(), &project, now()).unwrap(), c);
        }
        assert!(matches!(verifier.sign(&c), Err(KeyRingError::VerifyOnly)));
        let mut bad = signer.current_public().clone();
        bad.x.push('A');
        assert!(matches!(KeyRing::verify_only("i", &bad, &[]), Err(KeyRingError::BadPublicKey(_))));
    }

    #[test]
    fn tokens_are_recreated_identically() {
        let ring = KeyRing::new("i", &KeyRing::generate_pem(), &[]).unwrap();
        let c = claims(&ProjectId::generate());
        assert_eq!(ring.sign(&c).unwrap(), ring.sign(&c).unwrap());
    }

    #[test]
    fn retired_keys_verify_until_removed_from_the_ring() {
        let old = KeyRing::new("https://keygate.test", &KeyRing::generate_pem(), &[]).unwrap();
        let project = ProjectId::generate();
        let token = old.sign(&claims(&project)).unwrap();
        let old_public: Vec<PublicJwk> = serde_json::from_value(old.jwks()["keys"].clone()).unwrap();
        let rotated = KeyRing::new("https://keygate.test", &KeyRing::generate_pem(), &old_public).unwrap();
        assert!(rotated.verify(token.expose(), &project, now()).is_ok());
        assert_eq!(rotated.jwks()["keys"].as_array().unwrap().len(), 2);
        let forgotten = KeyRing::new("https://keygate.test", &KeyRing::generate_pem(), &[]).unwrap();
        assert_eq!(forgotten.verify(token.expose(), &project, now()), Err(Refusal::UnknownKey));
    }

    #[test]
    fn the_kid_is_the_rfc7638_thumbprint() {
        // RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key.
        assert_eq!(
            thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn a_bad_signing_key_is_refused_at_start() {
        assert!(matches!(KeyRing::new("i", "not a pem", &[]), Err(KeyRingError::BadSigningKey)));
    }

    #[test]
    fn exp_and_nbf_are_checked_on_keygate_clock_to_the_second() {
        let ring = KeyRing::new("https://keygate.test", &KeyRing::generate_pem(), &[]).unwrap();
        let project = ProjectId::generate();
        let t = now().timestamp();
        let expiring = KeyClaims { exp: Some(t), ..claims(&project) };
        let token = ring.sign(&expiring).unwrap();
        let at = |secs: i64| DateTime::from_timestamp(secs, 0).unwrap();
        assert_eq!(ring.verify(token.expose(), &project, at(t - 1)), Ok(expiring));
        // RFC 7519: the call must come before `exp`.
        assert_eq!(ring.verify(token.expose(), &project, at(t)), Err(Refusal::Expired));
        let early = KeyClaims { nbf: Some(t), ..claims(&project) };
        let token = ring.sign(&early).unwrap();
        assert_eq!(ring.verify(token.expose(), &project, at(t - 1)), Err(Refusal::NotYetValid));
        assert_eq!(ring.verify(token.expose(), &project, at(t)), Ok(early));
    }

    #[test]
    fn a_key_of_another_issuer_or_audience_is_refused_though_well_signed() {
        let ring = KeyRing::new("https://keygate.test", &KeyRing::generate_pem(), &[]).unwrap();
        let project = ProjectId::generate();
        let elsewhere = KeyClaims { iss: "https://elsewhere.test".into(), ..claims(&project) };
        let token = ring.sign(&elsewhere).unwrap();
        assert_eq!(ring.verify(token.expose(), &project, now()), Err(Refusal::BadSignatureOrClaims));
        let prefixless = KeyClaims { aud: project.to_string(), ..claims(&project) };
        let token = ring.sign(&prefixless).unwrap();
        assert_eq!(ring.verify(token.expose(), &project, now()), Err(Refusal::OtherProject));
    }

    #[test]
    fn headers_that_carry_a_key_or_name_another_algorithm_are_refused() {
        let ring = KeyRing::new("https://keygate.test", &KeyRing::generate_pem(), &[]).unwrap();
        let project = ProjectId::generate();
        let token = ring.sign(&claims(&project)).unwrap();
        let (header, rest) = token.expose().split_once('.').unwrap();
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        let with = |member: &str, value: serde_json::Value| {
            let mut h = header.clone();
            h[member] = value;
            format!("{}.{rest}", URL_SAFE_NO_PAD.encode(h.to_string()))
        };
        for member in ["jwk", "jku", "x5u", "x5c", "crit"] {
            let forged = with(member, serde_json::json!("x"));
            assert_eq!(ring.verify(&forged, &project, now()), Err(Refusal::ForbiddenHeader), "{member}");
        }
        assert_eq!(ring.verify(&with("alg", "HS256".into()), &project, now()), Err(Refusal::ForbiddenHeader));
        assert_eq!(ring.verify(&with("typ", "JWT".into()), &project, now()), Err(Refusal::ForbiddenHeader));
        // A member keygate does not read changes the signed bytes: refused by the signature.
        let extra = with("note", "hi".into());
        assert_eq!(ring.verify(&extra, &project, now()), Err(Refusal::BadSignatureOrClaims));
        for malformed in ["", "a.b", "a.b.c.d", "!!.e30.x"] {
            assert_eq!(ring.verify(malformed, &project, now()), Err(Refusal::Malformed), "{malformed:?}");
        }
    }

    #[test]
    fn new_keys_are_written_in_the_rfc_8410_form_and_both_forms_are_read() {
        let pem = KeyRing::generate_pem();
        let der = pem::parse(&pem).unwrap();
        // SEQUENCE { INTEGER 0 (v1), SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }
        let prefix = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        assert_eq!(der.contents().len(), 48);
        assert_eq!(der.contents()[..16], prefix);
        assert!(KeyRing::new("i", &pem, &[]).is_ok());
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let v2 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let v2 = pem::encode(&pem::Pem::new("PRIVATE KEY", v2.as_ref().to_vec()));
        assert!(KeyRing::new("i", &v2, &[]).is_ok(), "keys written before still load");
    }
}
