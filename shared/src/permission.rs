//! The platform's permissions, sets of them, and the table that says which permission each
//! call of the platform API needs (SPEC section 6). The table is data, in this one place.

use std::fmt;

use http::Method;
use serde::{Deserialize, Serialize};

use crate::platform::{canonical_method, segment_is};

/// One permission of the platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    ProjectView,
    ProjectEdit,
    ProjectManage,
    GraphUi,
    GraphView,
    GraphEdit,
    CodeView,
    CodeEdit,
    InterfaceManage,
    PackageView,
    PackageCreate,
    PackageDelete,
}

impl Permission {
    pub const ALL: [Permission; 12] = [
        Self::ProjectView,
        Self::ProjectEdit,
        Self::ProjectManage,
        Self::GraphUi,
        Self::GraphView,
        Self::GraphEdit,
        Self::CodeView,
        Self::CodeEdit,
        Self::InterfaceManage,
        Self::PackageView,
        Self::PackageCreate,
        Self::PackageDelete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProjectView => "project_view",
            Self::ProjectEdit => "project_edit",
            Self::ProjectManage => "project_manage",
            Self::GraphUi => "graph_ui",
            Self::GraphView => "graph_view",
            Self::GraphEdit => "graph_edit",
            Self::CodeView => "code_view",
            Self::CodeEdit => "code_edit",
            Self::InterfaceManage => "interface_manage",
            Self::PackageView => "package_view",
            Self::PackageCreate => "package_create",
            Self::PackageDelete => "package_delete",
        }
    }

    /// The permission named `name` (as [`Permission::as_str`] spells it).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of permissions; serialized as a sorted list of names.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Permissions(u16);

impl Permissions {
    pub const NONE: Self = Self(0);

    pub fn all() -> Self {
        Permission::ALL.into_iter().collect()
    }

    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The permissions of `self` that `other` lacks.
    pub fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.contains(*p))
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |bits, p| bits | p.bit()))
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Permission::as_str)).finish()
    }
}

impl Serialize for Permissions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Permission>::deserialize(d)?.into_iter().collect())
    }
}

/// One segment pattern of a platform API path (after `/api/projects/{project}/`).
#[derive(Debug, Clone, Copy)]
enum Seg {
    /// exactly this segment
    Lit(&'static str),
    /// any one segment
    One,
    /// any number of further segments, including none
    Rest,
}

struct Rule {
    methods: &'static [Method],
    path: &'static [Seg],
    permission: Permission,
}

const READ: &[Method] = &[Method::GET, Method::HEAD];
const ANY: &[Method] = &[];

/// SPEC section 6, first match wins.
static RULES: &[Rule] = {
    use Seg::*;
    &[
        Rule { methods: READ, path: &[Lit("data_layers"), Rest], permission: Permission::ProjectView },
        Rule { methods: READ, path: &[Lit("nodes"), One, Lit("packages"), Rest], permission: Permission::PackageView },
        Rule {
            methods: &[Method::POST],
            path: &[Lit("nodes"), One, Lit("packages"), Lit("search")],
            permission: Permission::PackageView,
        },
        Rule {
            methods: &[Method::POST],
            path: &[Lit("nodes"), One, Lit("packages")],
            permission: Permission::PackageCreate,
        },
        Rule {
            methods: &[Method::DELETE],
            path: &[Lit("nodes"), One, Lit("packages"), One, Rest],
            permission: Permission::PackageDelete,
        },
        Rule { methods: READ, path: &[Rest], permission: Permission::ProjectView },
        Rule { methods: ANY, path: &[Rest], permission: Permission::ProjectEdit },
    ]
};

fn matches<S: AsRef<str>>(pattern: &[Seg], segments: &[S]) -> bool {
    match (pattern.split_first(), segments.split_first()) {
        (None, None) => true,
        (Some((Seg::Rest, _)), _) => true,
        (Some((Seg::Lit(l), p)), Some((s, rest))) => segment_is(s.as_ref(), l) && matches(p, rest),
        (Some((Seg::One, p)), Some((_, rest))) => matches(p, rest),
        _ => false,
    }
}

/// The permission a platform API call needs. `segments` is the path after
/// `/api/projects/{project}/` as [`crate::platform::api_path`] read it; literals match it in
/// every spelling a platform could route alike, and the method is decided in capitals.
pub fn required_permission<S: AsRef<str>>(method: &Method, segments: &[S]) -> Permission {
    let method = canonical_method(method);
    RULES
        .iter()
        .find(|r| (r.methods.is_empty() || r.methods.contains(&*method)) && matches(r.path, segments))
        .map(|r| r.permission)
        .unwrap_or(Permission::ProjectEdit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(method: Method, rest: &str) -> Permission {
        let path = format!("/api/projects/01JDQ2ZK3M4N5P6Q7R8S9T0V1W/{rest}");
        required_permission(&method, &crate::platform::api_path(&path).expect("a clean path").segments)
    }

    #[test]
    fn the_spec_table() {
        use Permission::*;
        let cases = [
            (Method::GET, "data_layers/last", ProjectView),
            (Method::HEAD, "data_layers", ProjectView),
            (Method::GET, "nodes/n1/packages", PackageView),
            (Method::GET, "nodes/n1/packages/p1/files", PackageView),
            (Method::POST, "nodes/n1/packages/search", PackageView),
            (Method::POST, "nodes/n1/packages", PackageCreate),
            (Method::DELETE, "nodes/n1/packages/p1", PackageDelete),
            (Method::DELETE, "nodes/n1/packages/p1/files/f", PackageDelete),
            (Method::GET, "anything/else", ProjectView),
            (Method::HEAD, "", ProjectView),
            (Method::PUT, "nodes/n1/packages/p1", ProjectEdit),
            (Method::DELETE, "nodes/n1/packages", ProjectEdit),
            (Method::POST, "data_layers", ProjectEdit),
            (Method::PATCH, "settings", ProjectEdit),
        ];
        for (method, path, want) in cases {
            assert_eq!(need(method.clone(), path), want, "{method} {path}");
        }
    }

    #[test]
    fn no_spelling_of_a_segment_or_method_falls_through_to_a_weaker_rule() {
        use Permission::*;
        let m = |s: &str| Method::from_bytes(s.as_bytes()).unwrap();
        assert_eq!(need(Method::GET, "nodes/n1/PACKAGES"), PackageView);
        assert_eq!(need(Method::GET, "Nodes/n1/Packages/p1"), PackageView);
        assert_eq!(need(Method::GET, "nodes/n1/%EF%BD%90ackages"), PackageView, "a full-width p");
        assert_eq!(need(m("post"), "nodes/n1/packages"), PackageCreate);
        assert_eq!(need(m("delete"), "NODES/n1/PACKAGES/p1"), PackageDelete);
        assert_eq!(need(m("get"), "nodes/n1/packages"), PackageView);
        assert_eq!(need(m("post"), "nodes/n1/Packages/SEARCH"), PackageView);
    }

    #[test]
    fn permission_sets_serialize_as_names() {
        let set: Permissions = [Permission::PackageView, Permission::ProjectView].into_iter().collect();
        assert_eq!(serde_json::to_string(&set).unwrap(), r#"["project_view","package_view"]"#);
        let back: Permissions = serde_json::from_str(r#"["package_view","project_view"]"#).unwrap();
        assert_eq!(back, set);
        assert!(serde_json::from_str::<Permissions>(r#"["root"]"#).is_err());
        assert_eq!(Permissions::all().iter().count(), 12);
    }
}
