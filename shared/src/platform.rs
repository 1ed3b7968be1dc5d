//! A call of the platform API (`/api/projects/{project}/...`) read the one way the authorizer
//! decides it: the path as the platform will serve it, the method it will run, and the headers
//! that must never reach it. keygate-local and the Lambda authorizer both read calls here.
//!
//! The rule (SECURITY.md, "The canonical path"): a path is decided only when every server on the
//! way would read it alike, so there is nothing to rewrite and the path forwarded is the path
//! decided on. Spellings that servers read differently are refused, never forwarded:
//! percent-encoded unreserved characters (`%70` is `p`), encoded `/`, `\`, `;`, `%` (double
//! encoding) and control characters, octets that are not UTF-8 (overlong forms), `;`
//! parameters, backslashes, and empty or dot segments. What is left is matched against the
//! permission table case-insensitively, after Unicode compatibility folding, so no spelling of
//! `packages` that a case-insensitive platform would route as `packages` can fall through to a
//! weaker rule.

use std::borrow::Cow;
use std::fmt;

use http::{HeaderMap, HeaderName, Method};
use unicode_normalization::UnicodeNormalization;

use crate::ids::ProjectId;

/// Why a call cannot be decided as the platform would serve it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallProblem {
    /// Not `/api/projects/{project}/...` (an optional stage segment may stand before it).
    NotAPlatformPath,
    /// The project segment is not a project id, spelled the one way ids are spelled.
    BadProject,
    /// `%70` for `p`: an unreserved character sent percent-encoded.
    EncodedUnreserved(char),
    /// `%2F`, `%5C` or `%3B`: an encoded `/`, `\` or `;`.
    EncodedSeparator,
    /// `%25`: an encoded `%`, that is double encoding.
    EncodedPercent,
    /// `%00` – `%1F`, `%7F`.
    EncodedControl,
    /// A `%` not followed by two hexadecimal digits.
    BadPercent,
    /// Percent-encoded octets that are not UTF-8, such as the overlong `%C0%AE`.
    NotUtf8,
    /// A `.` or `..` segment, plain or encoded.
    DotSegment,
    /// An empty segment (`//`).
    EmptySegment,
    /// A `;` parameter, which some servers strip from a segment before routing.
    PathParameter,
    /// A `\`, which some servers read as `/`.
    Backslash,
    /// More than one `Authorization` header: which one the platform reads is not keygate's
    /// to guess.
    RepeatedAuthorization,
    /// A header or query parameter that asks the platform to run another method.
    MethodOverride(&'static str),
    /// A header that could reach the platform as one of keygate's context headers
    /// (on AWS, where such a header cannot be dropped on the way).
    ContextHeader,
    /// `Proxy-Authorization` (on AWS, where it cannot be dropped on the way).
    ProxyAuthorization,
}

impl CallProblem {
    /// A stable name, for logs, metrics and the authorizer's context.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotAPlatformPath => "not_a_platform_path",
            Self::BadProject => "bad_project",
            Self::EncodedUnreserved(_) => "encoded_unreserved",
            Self::EncodedSeparator => "encoded_separator",
            Self::EncodedPercent => "double_encoding",
            Self::EncodedControl => "encoded_control",
            Self::BadPercent => "bad_percent",
            Self::NotUtf8 => "not_utf8",
            Self::DotSegment => "dot_segment",
            Self::EmptySegment => "empty_segment",
            Self::PathParameter => "path_parameter",
            Self::Backslash => "backslash",
            Self::MethodOverride(_) => "method_override",
            Self::ContextHeader => "context_header",
            Self::ProxyAuthorization => "proxy_authorization",
            Self::RepeatedAuthorization => "repeated_authorization",
        }
    }
}

impl fmt::Display for CallProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAPlatformPath => f.write_str("the path is not /api/projects/{project}/..."),
            Self::BadProject => f.write_str("the path's project is not a project id (26 capital letters and digits)"),
            Self::EncodedUnreserved(c) => write!(f, "the path spells '{c}' percent-encoded; send the plain character"),
            Self::EncodedSeparator => {
                f.write_str("the path holds an encoded slash, backslash or semicolon (%2F, %5C, %3B)")
            }
            Self::EncodedPercent => f.write_str("the path holds %25, an encoded '%': double encoding is refused"),
            Self::EncodedControl => f.write_str("the path holds an encoded control character (such as %00)"),
            Self::BadPercent => f.write_str("a '%' in the path is not followed by two hexadecimal digits"),
            Self::NotUtf8 => {
                f.write_str("the path's percent-encoded octets are not UTF-8 (overlong forms are refused)")
            }
            Self::DotSegment => f.write_str("the path holds a '.' or '..' segment"),
            Self::EmptySegment => f.write_str("the path holds an empty segment ('//')"),
            Self::PathParameter => f.write_str("the path holds a ';' parameter, which some servers strip"),
            Self::Backslash => f.write_str("the path holds a backslash, which some servers read as '/'"),
            Self::MethodOverride(name) => {
                write!(f, "the call carries {name}, which could make the platform run another method; send that method")
            }
            Self::ContextHeader => f.write_str("the call carries a header named like keygate's x-keygate-* headers"),
            Self::ProxyAuthorization => f.write_str("the call carries Proxy-Authorization, which is not passed on"),
            Self::RepeatedAuthorization => {
                f.write_str("the call carries more than one Authorization header; send the key once")
            }
        }
    }
}

/// The path of a platform API call, read once: its project and its segments after
/// `/api/projects/{project}/`, percent-decoded (only octets that are not unreserved can have
/// been encoded, so decoding changes no decision). A trailing `/` is not a segment.
#[derive(Debug, PartialEq, Eq)]
pub struct ApiPath<'a> {
    pub project: ProjectId,
    pub segments: Vec<Cow<'a, str>>,
}

const API_PROJECTS: &str = "/api/projects/";

/// Reads `path` (as sent: percent-encoded, undecoded) as the platform will serve it, or says
/// why it is refused.
pub fn api_path(path: &str) -> Result<ApiPath<'_>, CallProblem> {
    let at = path.find(API_PROJECTS).ok_or(CallProblem::NotAPlatformPath)?;
    // An HTTP API stage (`/prod`) may stand before `/api`; nothing else may.
    let stage = &path[..at];
    if !(stage.is_empty() || is_stage(&stage[1..]) && stage.starts_with('/')) {
        return Err(CallProblem::NotAPlatformPath);
    }
    let after = &path[at + API_PROJECTS.len()..];
    let (project, rest) = after.split_once('/').unwrap_or((after, ""));
    let project = ProjectId::parse(project).ok_or(CallProblem::BadProject)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segments = if rest.is_empty() { Vec::new() } else { rest.split('/').map(segment).collect::<Result<_, _>>()? };
    Ok(ApiPath { project, segments })
}

fn is_stage(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One segment, decoded, or why it is refused.
fn segment(raw: &str) -> Result<Cow<'_, str>, CallProblem> {
    if raw.is_empty() {
        return Err(CallProblem::EmptySegment);
    }
    if raw.contains(';') {
        return Err(CallProblem::PathParameter);
    }
    if raw.contains('\\') {
        return Err(CallProblem::Backslash);
    }
    let decoded = if raw.contains('%') { Cow::Owned(decode(raw)?) } else { Cow::Borrowed(raw) };
    if decoded == "." || decoded == ".." {
        return Err(CallProblem::DotSegment);
    }
    Ok(decoded)
}

/// Percent-decodes a segment whose encoded octets are all ones that may be encoded.
fn decode(raw: &str) -> Result<String, CallProblem> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
        let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
            return Err(CallProblem::BadPercent);
        };
        let b = (hi * 16 + lo) as u8;
        match b {
            b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
                return Err(CallProblem::EncodedUnreserved(b as char));
            }
            b'/' | b'\\' | b';' => return Err(CallProblem::EncodedSeparator),
            b'%' => return Err(CallProblem::EncodedPercent),
            b if b < 0x20 || b == 0x7f => return Err(CallProblem::EncodedControl),
            b => out.push(b),
        }
        i += 3;
    }
    String::from_utf8(out).map_err(|_| CallProblem::NotUtf8)
}

/// Whether path segment `segment` is the table's literal `literal` (ASCII, lower case) in any
/// spelling a platform could route as it: ASCII case-insensitively, and beyond ASCII after
/// compatibility normalisation and case mapping (`ｐａｃｋａｇｅｓ`, the Kelvin sign, `ſ`).
pub fn segment_is(segment: &str, literal: &str) -> bool {
    if segment.is_ascii() {
        return segment.eq_ignore_ascii_case(literal);
    }
    let folded: String = segment.nfkc().flat_map(char::to_uppercase).flat_map(char::to_lowercase).collect();
    folded == literal
}

/// The method the call is decided as: the one sent, in capitals (a platform that reads
/// methods case-insensitively runs `post` as `POST`).
pub fn canonical_method(method: &Method) -> Cow<'_, Method> {
    let sent = method.as_str();
    if sent.bytes().all(|b| !b.is_ascii_lowercase()) {
        return Cow::Borrowed(method);
    }
    Method::from_bytes(sent.to_ascii_uppercase().as_bytes()).map_or(Cow::Borrowed(method), Cow::Owned)
}

/// A header name as WSGI, CGI and many frameworks see it: case-folded, `_` read as `-`.
fn folded_name(name: &HeaderName) -> Cow<'_, str> {
    let n = name.as_str(); // already lower case
    if n.contains('_') { Cow::Owned(n.replace('_', "-")) } else { Cow::Borrowed(n) }
}

/// Headers by which frameworks let a client run another method than the one sent.
const METHOD_OVERRIDES: [&str; 3] = ["x-http-method-override", "x-http-method", "x-method-override"];
/// The query parameter by which frameworks (Laravel, Symfony) do the same.
const METHOD_PARAMETER: &str = "_method";

/// Whether a client header could pass for one of keygate's context headers upstream: any
/// name that, folded, starts with `x-keygate-`. None of them is ever passed on.
pub fn is_context_header(name: &HeaderName) -> bool {
    folded_name(name).starts_with("x-keygate-")
}

/// The headers and query of a call that no platform may be shown: a method override is
/// refused wherever the call is decided.
pub fn method_override(headers: &HeaderMap, query: Option<&str>) -> Result<(), CallProblem> {
    // Every name in question starts with `x`: the others are passed over at the first byte.
    for name in headers.keys().filter(|n| n.as_str().starts_with('x')) {
        let folded = folded_name(name);
        if let Some(o) = METHOD_OVERRIDES.iter().find(|o| **o == folded) {
            return Err(CallProblem::MethodOverride(header_label(o)));
        }
    }
    let asks = |q: &str| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k.eq_ignore_ascii_case(METHOD_PARAMETER));
    if query.is_some_and(|q| q.contains('_') && asks(q)) {
        return Err(CallProblem::MethodOverride("the query parameter _method"));
    }
    Ok(())
}

fn header_label(folded: &str) -> &'static str {
    match folded {
        "x-http-method-override" => "the header X-HTTP-Method-Override",
        "x-http-method" => "the header X-HTTP-Method",
        _ => "the header X-Method-Override",
    }
}

/// keygate's context headers that the HTTP API's integration overwrites (infra/template.yaml):
/// a client's own value of these never arrives.
pub const OVERWRITTEN_ON_AWS: [&str; 6] = [
    "x-keygate-key-id",
    "x-keygate-user-id",
    "x-keygate-project-id",
    "x-keygate-template-id",
    "x-keygate-data-layer-id",
    "x-keygate-quota-remaining",
];

/// On AWS the HTTP API passes client headers on and keygate cannot drop them: a call that
/// carries a header keygate-local would drop is refused instead, except the context headers
/// the integration overwrites.
pub fn undroppable_headers(headers: &HeaderMap) -> Result<(), CallProblem> {
    for name in headers.keys() {
        if name.as_str().starts_with('x') && is_context_header(name) && !OVERWRITTEN_ON_AWS.contains(&name.as_str()) {
            return Err(CallProblem::ContextHeader);
        }
        if name == http::header::PROXY_AUTHORIZATION {
            return Err(CallProblem::ProxyAuthorization);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "01JDQ2ZK3M4N5P6Q7R8S9T0V1W";

    fn read(rest: &str) -> Result<Vec<String>, CallProblem> {
        api_path(&format!("/api/projects/{P}/{rest}")).map(|p| p.segments.into_iter().map(Cow::into_owned).collect())
    }

    #[test]
    fn canonical_paths_are_read_as_sent() {
        assert_eq!(read("nodes/n1/packages").unwrap(), ["nodes", "n1", "packages"]);
        assert_eq!(read("data_layers/last/").unwrap(), ["data_layers", "last"]);
        assert_eq!(read("files/a%20b%D0%B0").unwrap(), ["files", "a bа"], "reserved and non-ASCII octets decode");
        assert_eq!(read("").unwrap(), Vec::<String>::new());
        assert!(api_path(&format!("/prod/api/projects/{P}/x")).is_ok(), "a stage may stand before /api");
    }

    #[test]
    fn spellings_servers_read_differently_are_refused_with_the_reason() {
        use CallProblem::*;
        let cases = [
            ("nodes/n1/%70ackages", EncodedUnreserved('p')),
            ("%6eodes/n1/packages", EncodedUnreserved('n')),
            ("nodes/n1/%70%61%63%6b%61%67%65%73/p1", EncodedUnreserved('p')),
            ("nodes/n1/pack%41ges", EncodedUnreserved('A')),
            ("nodes/n1/%2570ackages", EncodedPercent),
            ("nodes/a%2Fb/packages", EncodedSeparator),
            ("nodes/a%5cb/packages", EncodedSeparator),
            ("nodes/n1/packages%3Bx", EncodedSeparator),
            ("nodes/n1/packages;x", PathParameter),
            ("nodes/%2e%2e/packages", EncodedUnreserved('.')),
            ("nodes/../data_layers", DotSegment),
            ("nodes/./x", DotSegment),
            ("nodes//packages", EmptySegment),
            ("a\\b", Backslash),
            ("x%00", EncodedControl),
            ("x%0a", EncodedControl),
            ("x%G0", BadPercent),
            ("x%2", BadPercent),
            ("nodes/%C0%AE%C0%AE/packages", NotUtf8),
            ("nodes/n1/%E0%80%AFpackages", NotUtf8),
        ];
        for (rest, want) in cases {
            assert_eq!(read(rest), Err(want), "{rest}");
        }
        assert_eq!(api_path("/v1/projects").unwrap_err(), NotAPlatformPath);
        assert_eq!(api_path(&format!("/a/b/api/projects/{P}/x")).unwrap_err(), NotAPlatformPath);
        assert_eq!(api_path(&format!("/api/projects/{}/x", P.to_lowercase())).unwrap_err(), BadProject);
        assert_eq!(api_path("/api/projects/%30JDQ2ZK3M4N5P6Q7R8S9T0V1W/x").unwrap_err(), BadProject);
    }

    #[test]
    fn literals_match_every_spelling_a_platform_could_route_alike() {
        for same in ["packages", "PACKAGES", "PaCkAgEs", "ｐａｃｋａｇｅｓ", "pac\u{212A}ages", "package\u{17F}"]
        {
            assert!(segment_is(same, "packages"), "{same}");
        }
        for other in ["package", "packages2", "pаckages" /* Cyrillic а */] {
            assert!(!segment_is(other, "packages"), "{other}");
        }
    }

    #[test]
    fn methods_are_decided_in_capitals() {
        assert_eq!(*canonical_method(&Method::from_bytes(b"post").unwrap()), Method::POST);
        assert_eq!(*canonical_method(&Method::from_bytes(b"Delete").unwrap()), Method::DELETE);
        assert_eq!(*canonical_method(&Method::GET), Method::GET);
    }

    #[test]
    fn method_overrides_are_refused_in_any_spelling() {
        for name in ["x-http-method-override", "X-HTTP-Method", "x_method_override", "X_Http_Method_Override"] {
            let mut h = HeaderMap::new();
            h.insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), "DELETE".parse().unwrap());
            assert!(matches!(method_override(&h, None), Err(CallProblem::MethodOverride(_))), "{name}");
        }
        assert!(method_override(&HeaderMap::new(), Some("a=1&_METHOD=DELETE")).is_err());
        assert!(method_override(&HeaderMap::new(), Some("a=1&method=x")).is_ok());
    }

    #[test]
    fn context_header_spellings_are_recognised() {
        for name in ["x-keygate-user-id", "x_keygate_user_id", "X_Keygate-User_Id", "x-keygate-anything"] {
            assert!(is_context_header(&HeaderName::from_bytes(name.as_bytes()).unwrap()), "{name}");
        }
        assert!(!is_context_header(&HeaderName::from_static("x-keygateway")));
        let mut h = HeaderMap::new();
        h.insert("x-keygate-user-id", "mallory".parse().unwrap());
        assert_eq!(undroppable_headers(&h), Ok(()), "overwritten by the integration on AWS");
        h.insert("x_keygate_user_id", "mallory".parse().unwrap());
        assert_eq!(undroppable_headers(&h), Err(CallProblem::ContextHeader));
        let mut h = HeaderMap::new();
        h.insert(http::header::PROXY_AUTHORIZATION, "Basic x".parse().unwrap());
        assert_eq!(undroppable_headers(&h), Err(CallProblem::ProxyAuthorization));
    }
}
