//! Identifiers and names: newtypes that validate on construction, so a value of one of these
//! types is always well formed.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Generated identifiers: ULIDs, sortable by creation time and unguessable (80 random bits).
macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const WHAT: &'static str = $what;

            pub fn generate() -> Self {
                Self(ulid::Ulid::new().to_string())
            }

            /// `None` unless `s` is a ULID in canonical form.
            pub fn parse(s: &str) -> Option<Self> {
                let u = ulid::Ulid::from_string(s).ok()?;
                (u.to_string() == s).then(|| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s).ok_or_else(|| format!("is not a valid {} id", $what))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

ulid_id!(ProjectId, "project");
ulid_id!(TemplateId, "template");
ulid_id!(RequestId, "request");
ulid_id!(KeyId, "key");
ulid_id!(DataLayerId, "data layer");
ulid_id!(EventId, "audit event");
ulid_id!(
    /// A narrowed token minted from a key ([`crate::narrowed`]).
    TokenId,
    "narrowed token"
);
ulid_id!(
    /// A project's webhook endpoint ([`crate::webhook`]).
    WebhookId,
    "webhook endpoint"
);
ulid_id!(
    /// One event's delivery to one webhook endpoint ([`crate::webhook::Delivery`]).
    DeliveryId,
    "webhook delivery"
);

/// Names given by clients: each type has its own pattern, checked on construction.
macro_rules! checked_name {
    ($(#[$doc:meta])* $name:ident, $check:expr, $rule:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const RULE: &'static str = $rule;

            pub fn parse(s: &str) -> Result<Self, String> {
                let check: fn(&str) -> bool = $check;
                if check(s) { Ok(Self(s.to_owned())) } else { Err(Self::RULE.to_owned()) }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn word(s: &str, max: usize, extra: &[char]) -> bool {
    !s.is_empty() && s.len() <= max && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c))
}

checked_name!(
    /// A user as the identity provider names it (the token's `sub`).
    UserId,
    |s| !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_graphic() && c != '#' && c != '/'),
    "must be 1 to 128 printable ASCII characters other than '#' and '/'"
);
checked_name!(
    /// A node of a project's graph, as the platform names it.
    NodeId,
    |s| word(s, 64, &['-', '.']) && s != "." && s != "..",
    "must be 1 to 64 letters, digits, '_', '-' or '.'"
);
checked_name!(
    /// A role of a project.
    RoleName,
    |s| word(s, 64, &['-']),
    "must be 1 to 64 letters, digits, '_' or '-'"
);
checked_name!(
    /// An information field's name; it becomes the suffix of a secret's name.
    FieldName,
    |s| s.len() <= 64 && s.starts_with(|c: char| c.is_ascii_alphabetic()) && word(s, 64, &[]),
    "must match ^[A-Za-z][A-Za-z0-9_]{0,63}$"
);
checked_name!(
    /// A secret of a project.
    SecretName,
    |s| word(s, 128, &[]),
    "must match ^[A-Za-z0-9_]{1,128}$"
);

checked_name!(
    /// What a narrowed token is for, as its holder names it ("ci", "nightly-run"): its calls are
    /// counted under it.
    TokenLabel,
    |s| word(s, 40, &['-', '.']),
    "must be 1 to 40 letters, digits, '_', '-' or '.'"
);

/// The prefix of the secrets an import creates (`<prefix>_token`, `<prefix>_<field>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretPrefix(String);

impl SecretPrefix {
    pub const RULE: &'static str = "must match ^[A-Za-z0-9_]{1,63}$";

    pub fn parse(s: &str) -> Result<Self, String> {
        if word(s, 63, &[]) { Ok(Self(s.to_owned())) } else { Err(Self::RULE.to_owned()) }
    }

    /// The secret name `<prefix>_<suffix>`; `None` when it would be too long.
    pub fn join(&self, suffix: &str) -> Option<SecretName> {
        SecretName::parse(&format!("{}_{suffix}", self.0)).ok()
    }
}

impl TryFrom<String> for SecretPrefix {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<SecretPrefix> for String {
    fn from(p: SecretPrefix) -> String {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back_and_sort_by_time() {
        let a = KeyId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = KeyId::generate();
        assert_eq!(KeyId::parse(a.as_str()), Some(a.clone()));
        assert!(a < b);
    }

    #[test]
    fn ids_reject_anything_but_canonical_ulids() {
        assert!(ProjectId::parse("").is_none());
        assert!(ProjectId::parse("../etc/passwd").is_none());
        assert!(ProjectId::parse(&"0".repeat(27)).is_none());
        let lower = ProjectId::generate().as_str().to_lowercase();
        assert!(ProjectId::parse(&lower).is_none(), "one spelling per id");
    }

    #[test]
    fn field_names_follow_the_secret_suffix_rule() {
        for ok in ["project", "input", "Output_2", "a"] {
            assert!(FieldName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1abc", "_x", "has space", "dash-ed", &"a".repeat(65)] {
            assert!(FieldName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_names_and_prefixes() {
        assert!(SecretName::parse("project_server_token").is_ok());
        assert!(SecretName::parse("bad-name").is_err());
        assert!(SecretName::parse(&"a".repeat(129)).is_err());
        let prefix = SecretPrefix::parse("project_server").unwrap();
        assert_eq!(prefix.join("token").unwrap().as_str(), "project_server_token");
        assert!(SecretPrefix::parse("").is_err());
        assert!(SecretPrefix::parse("a.b").is_err());
        let long = SecretPrefix::parse(&"p".repeat(63)).unwrap();
        assert!(long.join(&"f".repeat(64)).is_some());
        assert!(long.join(&"f".repeat(65)).is_none());
    }

    #[test]
    fn user_and_node_ids_refuse_separator_characters() {
        assert!(UserId::parse("auth0|12345").is_ok());
        assert!(UserId::parse("a#b").is_err());
        assert!(UserId::parse("a b").is_err());
        assert!(NodeId::parse("node-1.v2").is_ok());
        assert!(NodeId::parse("..").is_err());
        assert!(NodeId::parse("a/b").is_err());
    }
}
