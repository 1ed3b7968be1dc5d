//! Reports of keys found in public, from GitHub's secret scanning partner programme: the
//! report's signature, its items, and the answer GitHub reads (SECURITY.md, "Leaked keys").
//!
//! GitHub signs the raw body with ECDSA P-256 / SHA-256 (DER signature, base64, in
//! `Github-Public-Key-Signature`) with the key `Github-Public-Key-Identifier` names, one of the
//! keys it publishes at `https://api.github.com/meta/public_keys/secret_scanning`. keygate reads
//! that document from its configuration (`KEYGATE_SCANNING_KEYS`, a stack parameter) at start,
//! never on a call: a report signed with a key it does not hold is refused (401) and GitHub
//! sends it again, once the parameter has been refreshed (`scripts/refresh-scanning-keys`).

use std::collections::HashMap;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::secret::SecretValue;

/// The header naming the key that signed a report.
pub const KEY_IDENTIFIER_HEADER: &str = "github-public-key-identifier";
/// The header holding the report's signature.
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";
/// The scanner recorded on a key and in its audit event.
pub const GITHUB: &str = "github";

/// The most items keygate reads from one report (GitHub sends a few at a time).
pub const MAX_ITEMS: usize = 100;

/// The public keys reports may be signed with, by identifier.
#[derive(Clone, Debug, Default)]
pub struct ScanningKeys {
    keys: HashMap<String, Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the secret scanning keys are not GitHub's public-keys document: {0}")]
pub struct ScanningKeysError(String);

#[derive(Deserialize)]
struct Document {
    public_keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_identifier: String,
    key: String,
}

impl ScanningKeys {
    /// GitHub's document (`{"public_keys": [{"key_identifier", "key": "-----BEGIN PUBLIC
    /// KEY-----...", "is_current"}]}`); every key must be a P-256 public key.
    pub fn from_document(json: &str) -> std::result::Result<Self, ScanningKeysError> {
        let doc: Document = serde_json::from_str(json).map_err(|e| ScanningKeysError(e.to_string()))?;
        let mut keys = HashMap::new();
        for published in doc.public_keys {
            let der = pem::parse(published.key.trim()).ok().filter(|p| p.tag() == "PUBLIC KEY").ok_or_else(|| {
                ScanningKeysError(format!("key {} is not a PEM public key", published.key_identifier))
            })?;
            // Parsed now, so that a bad key fails at start, not on GitHub's first report.
            aws_lc_rs::signature::ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der.contents())
                .map_err(|_| ScanningKeysError(format!("key {} is not a P-256 key", published.key_identifier)))?;
            keys.insert(published.key_identifier, der.contents().to_vec());
        }
        Ok(Self { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `body` was signed by the key `identifier` names, with `signature` (base64 DER).
    /// Refused in words that say what is missing, never what a good signature would be.
    pub fn verify(&self, body: &[u8], identifier: Option<&str>, signature: Option<&str>) -> Result<()> {
        if self.keys.is_empty() {
            return Err(Error::forbidden(
                "this keygate accepts no secret scanning reports (no scanning keys configured)",
            ));
        }
        let refused = |why: &str| Error::Unauthenticated(format!("the report is not signed by GitHub: {why}"));
        let identifier = identifier.ok_or_else(|| refused("no Github-Public-Key-Identifier header"))?;
        let signature = signature.ok_or_else(|| refused("no Github-Public-Key-Signature header"))?;
        let key =
            self.keys.get(identifier.trim()).ok_or_else(|| refused("the key identifier is not one of GitHub's"))?;
        let signature = STANDARD.decode(signature.trim()).map_err(|_| refused("the signature is not base64"))?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key)
            .verify(body, &signature)
            .map_err(|_| refused("the signature does not match the body"))
    }
}

/// One match in a report.
#[derive(Debug, Deserialize)]
pub struct Found {
    pub token: SecretValue,
    #[serde(rename = "type")]
    pub token_type: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub source: String,
}

/// What keygate says of one match: whether it is a key it issued that still works.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Label {
    pub token_hash: String,
    pub token_type: String,
    pub label: &'static str,
}

pub const TRUE_POSITIVE: &str = "true_positive";
pub const FALSE_POSITIVE: &str = "false_positive";

impl Label {
    pub fn of(found: &Found, true_positive: bool) -> Self {
        Self {
            token_hash: token_hash(found.token.expose()),
            token_type: found.token_type.clone(),
            label: if true_positive { TRUE_POSITIVE } else { FALSE_POSITIVE },
        }
    }
}

/// The SHA-256 of a token, hex: how the answer names a token without repeating it.
pub fn token_hash(token: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The items of a report's body: a JSON array of at most [`MAX_ITEMS`] matches.
pub fn parse_report(body: &[u8]) -> Result<Vec<Found>> {
    let items: Vec<Found> = serde_json::from_slice(body).map_err(|e| {
        Error::BadRequest(format!(
            "the report must be a JSON array of {{token, type, url, source}}: {}",
            // serde's message names the position, never the token.
            e.classify_words()
        ))
    })?;
    if items.len() > MAX_ITEMS {
        return Err(Error::BadRequest(format!("a report holds at most {MAX_ITEMS} matches")));
    }
    Ok(items)
}

trait Classify {
    fn classify_words(&self) -> String;
}

impl Classify for serde_json::Error {
    fn classify_words(&self) -> String {
        let what = match self.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not JSON",
            serde_json::error::Category::Data => "an item lacks a member or has one of another type",
            serde_json::error::Category::Io => "unreadable",
        };
        format!("{what} (line {}, column {})", self.line(), self.column())
    }
}

/// The regular expression a scanner finds keygate's keys with (published in SECURITY.md): the
/// fixed base64url of the header every key starts with (`{"typ":"apikey+jwt","alg":"EdDSA",
/// "kid":"`), then the rest of the header, the claims and the 64-byte Ed25519 signature.
pub const KEY_PATTERN: &str = r"eyJ0eXAiOiJhcGlrZXkrand0IiwiYWxnIjoiRWREU0EiLCJraWQiOi[A-Za-z0-9_-]{40,120}\.[A-Za-z0-9_-]{40,2800}\.[A-Za-z0-9_-]{86}";

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    /// A key pair of the test's own, and its document.
    fn scanner() -> (EcdsaKeyPair, String) {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let der = pair.public_key().as_der().unwrap();
        let pem = pem::encode(&pem::Pem::new("PUBLIC KEY", der.as_ref().to_vec()));
        let doc = serde_json::json!({"public_keys": [{"key_identifier": "k1", "key": pem, "is_current": true}]});
        (pair, doc.to_string())
    }

    #[test]
    fn a_report_verifies_with_the_key_it_names_only() {
        let (pair, doc) = scanner();
        let keys = ScanningKeys::from_document(&doc).unwrap();
        let body = br#"[{"token":"x","type":"keygate_api_key","url":"https://github.com/a/b","source":"content"}]"#;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = STANDARD.encode(pair.sign(&rng, body).unwrap());
        assert!(keys.verify(body, Some("k1"), Some(&signature)).is_ok());
        let refused = |r: Result<()>| r.unwrap_err().status().as_u16();
        assert_eq!(refused(keys.verify(b"[]", Some("k1"), Some(&signature))), 401, "another body");
        assert_eq!(refused(keys.verify(body, Some("k2"), Some(&signature))), 401, "another key");
        assert_eq!(refused(keys.verify(body, None, Some(&signature))), 401);
        assert_eq!(refused(keys.verify(body, Some("k1"), None)), 401);
        assert_eq!(refused(keys.verify(body, Some("k1"), Some("!!"))), 401);
        assert_eq!(refused(ScanningKeys::default().verify(body, Some("k1"), Some(&signature))), 403);
        assert!(ScanningKeys::from_document("{}").is_err());
        assert!(ScanningKeys::from_document(r#"{"public_keys":[{"key_identifier":"a","key":"nope"}]}"#).is_err());
    }

    #[test]
    fn reports_are_read_without_repeating_their_tokens() {
        let items = parse_report(br#"[{"token":"secret-value","type":"t","url":"u","source":"s"}]"#).unwrap();
        assert_eq!(items[0].url, "u");
        let label = Label::of(&items[0], true);
        assert_eq!(label.token_hash, token_hash("secret-value"));
        assert_eq!(label.token_hash.len(), 64);
        let e = parse_report(br#"[{"token":"secret-value"}]"#).unwrap_err().to_string();
        assert!(e.contains("lacks a member") && !e.contains("secret-value"), "{e}");
        assert!(parse_report(b"{").is_err());
    }
}
