//! Narrowed tokens: short-lived tokens a key's holder mints from the key, for a CI job or a
//! colleague's notebook, with a lifetime, optionally fewer permissions than the key's role and
//! optionally only some nodes' paths, and a label their calls are counted under.
//!
//! A narrowed token is a keygate API key of the same format (same `typ`, same signing key), so
//! the platform's client uses it unmodified. Its `jti` is its own id, not its key's: an
//! authorizer that does not know narrowed tokens (an older release, during a deployment) finds
//! no key of that id and refuses it, instead of taking it for the whole key. The key it was
//! minted from, its label and its narrowing are the claim `nar` ([`Narrowing`]).
//!
//! It dies with its key: the authorizer reads the key's record for every call anyway, and the
//! record lists the key's live narrowed tokens ([`LiveToken`], at most [`MAX_LIVE`]), so a
//! revoked key, a reroll past its grace, or a narrowed token revoked on its own are refused
//! with no further read. Each token also has a small record of its own ([`NarrowedToken`]) for
//! the lists; the token itself is shown once, when minted, and stored nowhere.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError, Result};
use crate::ids::{KeyId, NodeId, ProjectId, TokenId, TokenLabel, UserId};
use crate::permission::{Permission, Permissions};
use crate::platform::segment_is;

/// The most narrowed tokens a key may have alive at once.
pub const MAX_LIVE: usize = 100;
/// The longest lifetime a template allows when its owner sets none.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::days(30);
/// The lifetime of a token minted without one (or the template's maximum, when shorter).
pub const DEFAULT_LIFETIME: Duration = Duration::days(1);
/// The shortest lifetime: a token that dies before it can be pasted is of no use.
pub const MIN_LIFETIME: Duration = Duration::seconds(60);
/// The longest maximum an owner may set.
pub const MAX_MAX_LIFETIME: Duration = Duration::days(365);
/// The most nodes a token may be limited to.
pub const MAX_NODES: usize = 20;

/// A template's rule for the narrowed tokens of its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NarrowedPolicy {
    /// Whether holders may mint narrowed tokens from the template's keys.
    #[serde(default = "yes")]
    pub allowed: bool,
    /// The longest lifetime of one, in seconds.
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime_seconds: i64,
}

fn yes() -> bool {
    true
}

fn default_max_lifetime() -> i64 {
    DEFAULT_MAX_LIFETIME.num_seconds()
}

impl Default for NarrowedPolicy {
    fn default() -> Self {
        Self { allowed: true, max_lifetime_seconds: default_max_lifetime() }
    }
}

impl NarrowedPolicy {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    pub fn check(&self, errors: &mut Vec<FieldError>) {
        let (lo, hi) = (MIN_LIFETIME.num_seconds(), MAX_MAX_LIFETIME.num_seconds());
        if !(lo..=hi).contains(&self.max_lifetime_seconds) {
            errors.push(FieldError::new(
                "narrowed_tokens.max_lifetime_seconds",
                format!("must be from {lo} to {hi} (365 days)"),
            ));
        }
    }

    pub fn max_lifetime(&self) -> Duration {
        Duration::seconds(self.max_lifetime_seconds)
    }
}

/// The claim `nar` of a narrowed token: the key it was minted from and what narrows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Narrowing {
    /// The key's id.
    pub key: String,
    /// The label its calls are counted under.
    pub lbl: String,
    /// The permissions it keeps (within its key's role's); all of the role's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perm: Option<Permissions>,
    /// The nodes whose paths (`nodes/{node}/...`) it may call; any path when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<String>>,
}

impl Narrowing {
    /// What of `role` this token keeps.
    pub fn permissions(&self, role: Permissions) -> Permissions {
        self.perm.map_or(role, |p| p.intersection(role))
    }

    /// Whether a call to `segments` (after `/api/projects/{project}/`, as
    /// [`crate::platform::api_path`] read them) is on one of the token's nodes. The node is
    /// compared byte for byte: a spelling the platform might route to the same node is refused,
    /// never let through.
    pub fn reaches<S: AsRef<str>>(&self, segments: &[S]) -> bool {
        let Some(nodes) = &self.nodes else { return true };
        match segments {
            [first, node, ..] if segment_is(first.as_ref(), "nodes") => nodes.iter().any(|n| n == node.as_ref()),
            _ => false,
        }
    }
}

/// A live narrowed token as its key's record lists it: what the authorizer checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveToken {
    pub id: TokenId,
    pub expires_at: DateTime<Utc>,
    /// The key's generation it was minted at: it dies with that generation's token.
    #[serde(default)]
    pub generation: u32,
}

/// How a narrowed token was minted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MintedWith {
    /// With the key itself (`POST /v1/key/tokens`).
    Key,
    /// By its holder, signed in (`POST /v1/me/keys/{key}/tokens`, My keys).
    User,
}

/// A narrowed token's record (never the token).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NarrowedToken {
    pub id: TokenId,
    pub key_id: KeyId,
    pub project_id: ProjectId,
    pub user_id: UserId,
    pub label: TokenLabel,
    /// The permissions it keeps; all of its key's role's when absent.
    pub permissions: Option<Permissions>,
    pub nodes: Option<Vec<NodeId>>,
    /// The key's generation it was minted at: it dies with that generation's token.
    pub generation: u32,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub minted_with: MintedWith,
}

impl NarrowedToken {
    pub fn live(&self) -> LiveToken {
        LiveToken { id: self.id.clone(), expires_at: self.expires_at, generation: self.generation }
    }

    /// Its claim `nar`.
    pub fn narrowing(&self) -> Narrowing {
        Narrowing {
            key: self.key_id.to_string(),
            lbl: self.label.to_string(),
            perm: self.permissions,
            nodes: self.nodes.as_ref().map(|n| n.iter().map(ToString::to_string).collect()),
        }
    }
}

/// The body of a mint: `label` is required; the rest narrows.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintInput {
    pub label: String,
    /// Seconds from now; [`DEFAULT_LIFETIME`] (or the template's maximum, when shorter) when absent.
    pub ttl_seconds: Option<i64>,
    /// Permissions of the key's role to keep; all of them when absent.
    pub permissions: Option<Vec<String>>,
    /// Nodes whose paths the token may call; all paths when absent.
    pub nodes: Option<Vec<String>>,
}

/// What a mint is checked against: the key, its template's rule and role, the project's nodes.
pub struct MintFacts<'a> {
    pub key: &'a crate::key::IssuedKey,
    pub policy: NarrowedPolicy,
    pub role: Permissions,
    pub nodes: &'a HashSet<NodeId>,
    pub minted_with: MintedWith,
    pub now: DateTime<Utc>,
}

impl MintInput {
    /// The token's record, or every rule this input breaks. A token never widens its key: a
    /// permission the role lacks is refused, not dropped.
    pub fn check(self, facts: &MintFacts<'_>) -> Result<NarrowedToken> {
        if !facts.policy.allowed {
            return Err(Error::Forbidden(
                "this key's template does not allow narrowed tokens; its owner can allow them".into(),
            ));
        }
        let mut errors = Vec::new();
        let label = TokenLabel::parse(&self.label).map_err(|rule| errors.push(FieldError::new("label", rule))).ok();
        let max = facts.policy.max_lifetime();
        let ttl = self.ttl_seconds.map_or(DEFAULT_LIFETIME.min(max), Duration::seconds);
        if ttl < MIN_LIFETIME || ttl > max {
            errors.push(FieldError::new(
                "ttl_seconds",
                format!(
                    "must be from {} to {} seconds (the most this key's template allows)",
                    MIN_LIFETIME.num_seconds(),
                    max.num_seconds()
                ),
            ));
        }
        let permissions = self.permissions.map(|names| {
            let mut kept = Permissions::NONE;
            for name in names {
                match Permission::parse(&name) {
                    Some(p) if facts.role.contains(p) => kept = kept.union([p].into_iter().collect()),
                    Some(p) => errors.push(FieldError::new(
                        "permissions",
                        format!("the key's role lacks {p}: a narrowed token can only keep permissions its key has"),
                    )),
                    None => errors.push(FieldError::new("permissions", format!("{name:?} is not a permission"))),
                }
            }
            if kept.is_empty() {
                errors.push(FieldError::new("permissions", "name at least one permission, or leave it out for all"));
            }
            kept
        });
        let nodes = self.nodes.map(|names| {
            if names.is_empty() || names.len() > MAX_NODES {
                errors.push(FieldError::new("nodes", format!("name 1 to {MAX_NODES} nodes, or leave it out for all")));
            }
            let mut nodes: Vec<NodeId> = Vec::new();
            for name in names {
                match NodeId::parse(&name) {
                    Ok(n) if facts.nodes.contains(&n) => nodes.push(n),
                    Ok(n) => errors.push(FieldError::new("nodes", format!("the project has no node {n}"))),
                    Err(rule) => errors.push(FieldError::new("nodes", format!("{name:?} {rule}"))),
                }
            }
            nodes.sort();
            nodes.dedup();
            nodes
        });
        crate::project::finish(errors)?;
        let key = facts.key;
        let expires_at = key.expires_at.map_or(facts.now + ttl, |exp| exp.min(facts.now + ttl));
        Ok(NarrowedToken {
            id: TokenId::generate(),
            key_id: key.id.clone(),
            project_id: key.project_id.clone(),
            user_id: key.user_id.clone(),
            label: label.expect("no errors: the label parsed"),
            permissions,
            nodes,
            generation: key.generation,
            created_at: facts.now,
            expires_at,
            minted_with: facts.minted_with,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn narrowing(nodes: Option<&[&str]>) -> Narrowing {
        Narrowing {
            key: KeyId::generate().to_string(),
            lbl: "ci".into(),
            perm: None,
            nodes: nodes.map(|n| n.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn node_limits_match_the_node_segment_exactly() {
        let n = narrowing(Some(&["n1"]));
        assert!(n.reaches(&["nodes", "n1", "packages"]));
        assert!(n.reaches(&["NODES", "n1"]), "the literal in any spelling the platform routes alike");
        assert!(!n.reaches(&["nodes", "N1", "packages"]), "another spelling of the node is refused");
        assert!(!n.reaches(&["nodes", "n2", "packages"]));
        assert!(!n.reaches(&["nodes"]));
        assert!(!n.reaches(&["data_layers", "n1"]));
        assert!(!n.reaches::<&str>(&[]));
        assert!(narrowing(None).reaches(&["anything"]));
    }

    #[test]
    fn a_narrowing_keeps_only_what_the_role_has() {
        let role: Permissions = [Permission::PackageView, Permission::ProjectView].into_iter().collect();
        let mut n = narrowing(None);
        assert_eq!(n.permissions(role), role);
        n.perm = Some([Permission::PackageView, Permission::PackageDelete].into_iter().collect());
        assert_eq!(n.permissions(role), [Permission::PackageView].into_iter().collect());
    }

    #[test]
    fn the_claim_is_compact() {
        let n = narrowing(None);
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 2, "{json}");
    }
}
