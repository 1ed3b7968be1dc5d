//! Secrets of a client project, and the plan of an import: which secrets a key becomes.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError, Result};
use crate::ids::{KeyId, NodeId, SecretName, SecretPrefix};
use crate::project::{check_text, finish};
use crate::template::InfoField;

pub const MAX_SECRET_VALUE: usize = 16 * 1024;
pub const MAX_NODES: usize = 256;

/// A secret value: its `Debug` never shows it, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretOrigin {
    pub key_id: KeyId,
}

/// A secret that holds a key's token, recorded beside the key ([`crate::store::layout::import`]):
/// a reroll updates every one of them in its transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRef {
    pub project_id: crate::ids::ProjectId,
    pub name: SecretName,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Secret {
    pub name: SecretName,
    pub description: String,
    pub value: SecretValue,
    pub nodes: Vec<NodeId>,
    pub origin: Option<SecretOrigin>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// A secret as the API shows it: the value only when asked for.
#[derive(Debug, Serialize)]
pub struct SecretView {
    pub name: SecretName,
    pub description: String,
    pub nodes: Vec<NodeId>,
    pub origin: Option<SecretOrigin>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<SecretValue>,
}

impl Secret {
    pub fn view(self, reveal: bool) -> SecretView {
        SecretView {
            name: self.name,
            description: self.description,
            nodes: self.nodes,
            origin: self.origin,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
            value: reveal.then_some(self.value),
        }
    }
}

/// The body of `PUT .../secrets/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretInput {
    #[serde(default)]
    pub description: String,
    pub value: SecretValue,
    #[serde(default)]
    pub nodes: Vec<NodeId>,
}

impl SecretInput {
    pub fn validate(&self) -> Result<()> {
        let mut errors = Vec::new();
        check_text(&mut errors, "description", &self.description);
        if self.value.expose().len() > MAX_SECRET_VALUE {
            errors.push(FieldError::new("value", format!("must be at most {MAX_SECRET_VALUE} bytes")));
        }
        if self.nodes.len() > MAX_NODES {
            errors.push(FieldError::new("nodes", format!("at most {MAX_NODES} nodes")));
        }
        finish(errors)
    }
}

/// The body of `POST .../secrets/import`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportInput {
    pub key_id: KeyId,
    pub prefix: SecretPrefix,
    #[serde(default)]
    pub nodes: Vec<NodeId>,
    #[serde(default)]
    pub overwrite: bool,
}

/// One secret an import will write.
#[derive(Debug)]
pub struct PlannedSecret {
    pub name: SecretName,
    pub description: String,
    pub value: SecretValue,
}

/// `<prefix>_token` holding the key, then `<prefix>_<field>` for each information field.
pub fn plan_import(prefix: &SecretPrefix, token: SecretValue, fields: &[InfoField]) -> Result<Vec<PlannedSecret>> {
    let too_long =
        || Error::invalid("prefix", "is too long for the names of this key's fields (at most 128 characters in all)");
    let mut plan = vec![PlannedSecret {
        name: prefix.join(crate::template::RESERVED_FIELD).ok_or_else(too_long)?,
        description: "API key".into(),
        value: token,
    }];
    for f in fields {
        plan.push(PlannedSecret {
            name: prefix.join(f.name.as_str()).ok_or_else(too_long)?,
            description: f.description.clone(),
            value: SecretValue::new(f.value.clone()),
        });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::FieldName;
    use crate::template::FieldKind;

    fn field(name: &str, value: &str) -> InfoField {
        InfoField {
            name: FieldName::parse(name).unwrap(),
            description: name.into(),
            kind: FieldKind::Text,
            value: value.into(),
        }
    }

    #[test]
    fn an_import_makes_the_token_and_one_secret_per_field() {
        let prefix = SecretPrefix::parse("project_server").unwrap();
        let plan =
            plan_import(&prefix, SecretValue::new("tok"), &[field("project", "P"), field("input", "in")]).unwrap();
        let names: Vec<_> = plan.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["project_server_token", "project_server_project", "project_server_input"]);
        assert_eq!(plan[0].value.expose(), "tok");
        assert_eq!(plan[2].value.expose(), "in");
    }

    #[test]
    fn the_longest_prefix_fits_the_longest_field_name() {
        let prefix = SecretPrefix::parse(&"p".repeat(63)).unwrap();
        let plan = plan_import(&prefix, SecretValue::new("t"), &[field(&"f".repeat(64), "")]).unwrap();
        assert_eq!(plan[1].name.as_str().len(), 128);
    }

    #[test]
    fn secret_values_never_show_in_debug_output() {
        let s = SecretValue::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
