//! Projects and what they are made of: roles, nodes and members.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError, Result};
use crate::ids::{NodeId, ProjectId, RoleName, UserId};
use crate::permission::{Permission, Permissions};

/// The role that registering a project creates, with every permission, for its creator.
pub const OWNER_ROLE: &str = "owner";

/// Longest free text (descriptions, reasons) keygate stores.
pub const MAX_TEXT: usize = 1024;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub description: String,
    pub owner_id: UserId,
    pub owner_email: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

impl NewProject {
    pub fn validate(&self) -> Result<()> {
        let mut errors = Vec::new();
        check_name(&mut errors, "name", &self.name, 128);
        check_text(&mut errors, "description", &self.description);
        finish(errors)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Role {
    pub name: RoleName,
    pub description: String,
    pub permissions: Permissions,
    pub public: bool,
    pub paid: bool,
    pub cost_coefficient: f64,
    pub updated_at: DateTime<Utc>,
}

impl Role {
    pub fn owner(now: DateTime<Utc>) -> Self {
        Self {
            name: RoleName::parse(OWNER_ROLE).expect("a valid role name"),
            description: "Owner of the project".into(),
            permissions: Permissions::all(),
            public: false,
            paid: false,
            cost_coefficient: 1.0,
            updated_at: now,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    #[serde(default)]
    pub description: String,
    pub permissions: Permissions,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub paid: bool,
    #[serde(default = "one")]
    pub cost_coefficient: f64,
}

fn one() -> f64 {
    1.0
}

impl RoleInput {
    pub fn into_role(self, name: RoleName, now: DateTime<Utc>) -> Result<Role> {
        let mut errors = Vec::new();
        check_text(&mut errors, "description", &self.description);
        if !self.cost_coefficient.is_finite() || self.cost_coefficient < 0.0 || self.cost_coefficient > 1e6 {
            errors.push(FieldError::new("cost_coefficient", "must be a number from 0 to 1000000"));
        }
        if name.as_str() == OWNER_ROLE {
            errors.push(FieldError::new("role", "the owner role is built in and cannot be redefined"));
        }
        if self.public && self.permissions.contains(Permission::ProjectManage) {
            errors.push(FieldError::new("permissions", "a public role cannot include project_manage"));
        }
        finish(errors)?;
        Ok(Role {
            name,
            description: self.description,
            permissions: self.permissions,
            public: self.public,
            paid: self.paid,
            cost_coefficient: self.cost_coefficient,
            updated_at: now,
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    pub name: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeInput {
    pub name: String,
}

impl NodeInput {
    pub fn validate(&self) -> Result<()> {
        let mut errors = Vec::new();
        check_name(&mut errors, "name", &self.name, 128);
        finish(errors)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub role: RoleName,
    pub updated_at: DateTime<Utc>,
    /// The project, so that a membership read through the user's index names it. Members
    /// written before this field existed have none and are not listed under `/v1/me/projects`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
}

/// A project as `GET /v1/projects/{project}` answers it: with the caller's permissions on it.
#[derive(Debug, Serialize)]
pub struct ProjectView {
    #[serde(flatten)]
    pub project: Project,
    pub permissions: Permissions,
    /// Requests waiting for a decision: for those who may decide them (`project_manage`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_requests: Option<usize>,
}

/// One of the caller's projects in `GET /v1/me/projects`: the project and the caller's role.
#[derive(Debug, Serialize)]
pub struct MyProject {
    #[serde(flatten)]
    pub project: Project,
    pub role: RoleName,
    /// Requests waiting for a decision, where the role may decide them (`project_manage`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_requests: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberInput {
    pub role: RoleName,
    pub email: String,
}

impl MemberInput {
    pub fn validate(&self) -> Result<()> {
        let mut errors = Vec::new();
        if !is_email(&self.email) {
            errors.push(FieldError::new("email", "must be an e-mail address"));
        }
        finish(errors)
    }
}

/// What a caller may do on one project: the union of their member role and every public role.
#[derive(Clone, Debug)]
pub struct Access {
    pub project: Project,
    /// Every role of the project (the access was computed from them).
    pub roles: Vec<Role>,
    pub permissions: Permissions,
    pub is_member: bool,
}

impl Access {
    pub fn can(&self, p: Permission) -> bool {
        self.permissions.contains(p)
    }

    /// Seeing the project: a member role or a public role with `project_view`.
    pub fn can_view(&self) -> bool {
        self.can(Permission::ProjectView) || self.can(Permission::ProjectManage)
    }

    /// 404 to those who may not know the project exists, 403 to those who may.
    pub fn require(&self, p: Permission) -> Result<()> {
        if self.can(p) {
            Ok(())
        } else if self.can_view() {
            Err(Error::forbidden(format!("this needs the {p} permission on the project")))
        } else {
            Err(Error::not_found("project"))
        }
    }

    pub fn require_view(&self) -> Result<()> {
        if self.can_view() { Ok(()) } else { Err(Error::not_found("project")) }
    }
}

/// A plausible e-mail address: one '@', something on both sides, no spaces or controls.
pub fn is_email(s: &str) -> bool {
    s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == ',')
        && s.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty() && !domain.is_empty() && !domain.contains('@') && domain.contains('.')
        })
}

/// The rules of every name people read (projects, nodes, templates), so that two names that
/// look alike are not taken for two things:
/// - no control or format characters (Unicode Cc and Cf: zero-width spaces, the right-to-left
///   override, byte-order marks);
/// - no word that mixes scripts, such as a Cyrillic `А` among Latin letters (UTS #39
///   single-script, per word: `Прогноз API` is two words of one script each).
///
/// Names are stored NFC-normalised and trimmed ([`normalize_name`]) and compared for uniqueness
/// by [`name_key`].
pub(crate) fn check_name(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    use unicode_security::MixedScript;
    let value = normalize_name(value);
    let invisible = |c: &char| c.is_control() || c.general_category() == GeneralCategory::Format;
    let mixed = value.split(|c: char| !c.is_alphanumeric()).find(|word| !word.is_single_script());
    if value.is_empty() {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if value.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be at most {max} characters")));
    } else if let Some(c) = value.chars().find(invisible) {
        errors.push(FieldError::new(
            field,
            format!("must not contain control or invisible format characters (U+{:04X})", u32::from(c)),
        ));
    } else if let Some(word) = mixed {
        errors.push(FieldError::new(
            field,
            format!(
                "the word '{word}' mixes letters of different scripts (such as Latin and Cyrillic), which look alike"
            ),
        ));
    }
}

/// A name as stored: trimmed, in Unicode normal form C (one spelling per accented letter).
pub fn normalize_name(value: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    value.trim().nfc().collect()
}

/// What two names are compared by for uniqueness: compatibility-normalised (NFKC: a no-break
/// space is a space, `ｆ` is `f`), case-folded, and with every run of white space as one space.
/// For an ASCII name with single spaces this is its lower case.
pub fn name_key(value: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = value.nfkc().flat_map(char::to_uppercase).flat_map(char::to_lowercase).collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn check_text(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    if value.chars().count() > MAX_TEXT {
        errors.push(FieldError::new(field, format!("must be at most {MAX_TEXT} characters")));
    }
}

pub(crate) fn finish(errors: Vec<FieldError>) -> Result<()> {
    if errors.is_empty() { Ok(()) } else { Err(Error::Validation(errors)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_role_cannot_be_redefined() {
        let input: RoleInput = serde_json::from_str(r#"{"permissions":["project_view"]}"#).unwrap();
        let err = input.into_role(RoleName::parse("owner").unwrap(), Utc::now()).unwrap_err();
        assert!(matches!(err, Error::Validation(e) if e[0].field == "role"));
    }

    #[test]
    fn a_public_role_cannot_manage() {
        let input: RoleInput = serde_json::from_str(r#"{"permissions":["project_manage"],"public":true}"#).unwrap();
        assert!(input.into_role(RoleName::parse("all").unwrap(), Utc::now()).is_err());
    }

    #[test]
    fn access_answers_404_to_strangers_and_403_to_viewers() {
        let project = Project {
            id: ProjectId::generate(),
            name: "p".into(),
            description: String::new(),
            owner_id: UserId::parse("o").unwrap(),
            owner_email: "o@example.com".into(),
            created_at: Utc::now(),
        };
        let stranger =
            Access { project: project.clone(), roles: Vec::new(), permissions: Permissions::NONE, is_member: false };
        assert!(matches!(stranger.require(Permission::ProjectManage), Err(Error::NotFound(_))));
        let viewer = Access {
            project,
            roles: Vec::new(),
            permissions: [Permission::ProjectView].into_iter().collect(),
            is_member: true,
        };
        assert!(matches!(viewer.require(Permission::ProjectManage), Err(Error::Forbidden(_))));
        assert!(viewer.require_view().is_ok());
    }

    #[test]
    fn emails() {
        assert!(is_email("ann@example.com"));
        for bad in ["", "ann", "@x.io", "ann@", "a b@x.io", "a@b@c.io", "ann@localhost", "a@x.io\r\nBcc: z@x.io"] {
            assert!(!is_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn names_must_be_present_short_and_printable() {
        let mut e = Vec::new();
        check_name(&mut e, "name", "  ", 10);
        check_name(&mut e, "name", &"x".repeat(11), 10);
        check_name(&mut e, "name", "a\u{7}b", 10);
        check_name(&mut e, "name", "Wetter API", 10);
        check_name(&mut e, "name", " Прогноз API ", 20);
        check_name(&mut e, "name", "天気予報 API", 20);
        assert_eq!(e.len(), 3);
    }

    #[test]
    fn names_that_look_alike_are_refused_or_compared_alike() {
        for (bad, why) in [
            ("Forecast \u{410}PI", "mixes"),    // Cyrillic А
            ("Forecast\u{200B} API", "U+200B"), // zero-width space
            ("\u{202E}IPA tsaceroF", "U+202E"), // right-to-left override
            ("Forecast\u{FEFF}API", "U+FEFF"),  // byte-order mark
            ("Forecast \u{391}PI", "mixes"),    // Greek Α
        ] {
            let mut e = Vec::new();
            check_name(&mut e, "name", bad, 64);
            assert!(e.first().is_some_and(|e| e.message.contains(why)), "{bad:?}: {e:?}");
        }
        let key = name_key("Forecast API");
        for same in ["forecast api", "Forecast\u{A0}API", "Forecast  API", " FORECAST API", "Ｆｏｒｅｃａｓｔ API"]
        {
            assert_eq!(name_key(&normalize_name(same)), key, "{same:?}");
        }
        assert_eq!(name_key("Straße"), name_key("STRASSE"));
        assert_eq!(normalize_name(" Cafe\u{301} "), "Caf\u{e9}", "stored in NFC, trimmed");
        assert_ne!(name_key("Forecast API"), name_key("Forecast APIs"));
    }
}
