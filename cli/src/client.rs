//! The one HTTP client of the command line: a call to keygate's `/v1` API with a bearer token,
//! its answer as JSON, and every failure mapped to one [`Failure`] with its exit code.

use std::process::ExitCode;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Why a command failed; each kind has its own exit code, so that a script can tell a refusal
/// from a missing object from a deployment that does not answer.
#[derive(Debug)]
pub enum Failure {
    /// 401 or 403: the key or the user may not do this (exit 3).
    Refused(Problem),
    /// 404 (exit 4).
    NotFound(Problem),
    /// 429, 5xx, or no answer at all: try again later (exit 5).
    Unavailable(Problem),
    /// Any other refusal of the input: 400, 409, 412, 422 (exit 1).
    Invalid(Problem),
    /// Something on this machine: no key given, no sign-in, a file that cannot be read (exit 1).
    Local(String),
    /// The output already says what is wrong (`whoami` of a key that would be refused): only
    /// the exit code is left to give.
    Reported(u8),
}

/// Exit codes, as README's command-line section lists them.
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_REFUSED: u8 = 3;
pub const EXIT_NOT_FOUND: u8 = 4;
pub const EXIT_UNAVAILABLE: u8 = 5;

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::Refused(_) => EXIT_REFUSED,
            Self::NotFound(_) => EXIT_NOT_FOUND,
            Self::Unavailable(_) => EXIT_UNAVAILABLE,
            Self::Invalid(_) | Self::Local(_) => EXIT_FAILED,
            Self::Reported(code) => *code,
        })
    }

    /// The problem document keygate answered (or one made here for a local failure), as
    /// `--json` prints it.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Refused(p) | Self::NotFound(p) | Self::Unavailable(p) | Self::Invalid(p) => p.body.clone(),
            Self::Local(message) => {
                serde_json::json!({"title": "keygate could not run the command", "detail": message})
            }
            Self::Reported(_) => Value::Null,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(p) | Self::NotFound(p) | Self::Unavailable(p) | Self::Invalid(p) => p.fmt(f),
            Self::Local(message) => f.write_str(message),
            Self::Reported(code) => write!(f, "exit {code}"),
        }
    }
}

/// An `application/problem+json` answer (or what stands for one when the server said nothing
/// readable).
#[derive(Debug)]
pub struct Problem {
    pub status: Option<u16>,
    pub body: Value,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |k: &str| self.body.get(k).and_then(Value::as_str);
        let title = text("title").unwrap_or("keygate refused the call");
        match self.status {
            Some(status) => write!(f, "{title} ({status})")?,
            None => f.write_str(title)?,
        }
        if let Some(detail) = text("detail") {
            write!(f, ": {detail}")?;
        }
        for error in self.body.get("errors").and_then(Value::as_array).into_iter().flatten() {
            let field = error.get("field").and_then(Value::as_str).unwrap_or("?");
            let message = error.get("message").and_then(Value::as_str).unwrap_or("");
            write!(f, "\n  {field}: {message}")?;
        }
        Ok(())
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

pub struct Client {
    http: reqwest::Client,
    base: String,
}

/// An answer: its JSON body and, for paged downloads, the `Link` to the next page.
pub struct Answer {
    pub body: Value,
    pub text: String,
    pub next: Option<String>,
}

impl Client {
    pub fn new(base: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("keygate-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Local(format!("cannot make an HTTP client: {e}")))?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned() })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `method path` with `bearer` and an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, bearer: Option<&str>, body: Option<&Value>) -> Result<Answer> {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = self.http.request(method.clone(), &url);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = req.send().await.map_err(|e| unreachable(&self.base, &e))?;
        let status = res.status();
        let next = res
            .headers()
            .get(reqwest::header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link)
            .map(|p| if p.starts_with('/') { format!("{}{p}", self.base) } else { p });
        let text = res.text().await.map_err(|e| unreachable(&self.base, &e))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(Answer { body, text, next });
        }
        let body = if body.is_object() {
            body
        } else {
            // Not keygate's problem document (a proxy's page, say): its status speaks.
            serde_json::json!({"title": status.canonical_reason().unwrap_or("the call failed"), "status": status.as_u16()})
        };
        let problem = Problem { status: Some(status.as_u16()), body };
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Failure::Refused(problem),
            StatusCode::NOT_FOUND => Failure::NotFound(problem),
            StatusCode::TOO_MANY_REQUESTS => Failure::Unavailable(problem),
            s if s.is_server_error() => Failure::Unavailable(problem),
            _ => Failure::Invalid(problem),
        })
    }

    /// A form POST to an identity provider (the device flow): its JSON answer, success or not.
    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<(StatusCode, Value)> {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let res = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(url, &e))?;
        let status = res.status();
        let body = res.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }
}

fn unreachable(base: &str, e: &reqwest::Error) -> Failure {
    // reqwest's message names the URL and the cause, never a header.
    let detail =
        if e.is_timeout() { format!("{base} did not answer within 30 s") } else { format!("cannot reach {base}: {e}") };
    Failure::Unavailable(Problem {
        status: None,
        body: serde_json::json!({"title": "keygate is unavailable", "detail": detail}),
    })
}

/// The target of `rel="next"` in a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find(|part| part.contains("rel=\"next\"")).and_then(|part| {
        let start = part.find('<')? + 1;
        let end = part.find('>')?;
        Some(part[start..end].trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_read_from_the_link_header() {
        let header = r#"</v1/projects/p/usage/export?cursor=abc>; rel="next""#;
        assert_eq!(next_link(header).as_deref(), Some("/v1/projects/p/usage/export?cursor=abc"));
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    }

    #[test]
    fn a_problem_reads_as_title_status_detail_and_fields() {
        let p = Problem {
            status: Some(422),
            body: serde_json::json!({"title": "Unprocessable", "detail": "the token cannot widen its key",
                "errors": [{"field": "permissions", "message": "the role lacks package_create"}]}),
        };
        assert_eq!(
            p.to_string(),
            "Unprocessable (422): the token cannot widen its key\n  permissions: the role lacks package_create"
        );
        assert_eq!(Failure::Invalid(p).exit_code(), ExitCode::from(EXIT_FAILED));
    }
}
