//! The one error type of keygate and its one mapping to RFC 9457 problem+json.

use http::StatusCode;
use serde::Serialize;

use crate::store::StoreError;

/// A problem with one named input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Every way an operation can fail. Messages are safe to show to clients: they never carry
/// tokens, secret values or internal details (those stay in the `source` and go to logs).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{detail}")]
    Conflict { detail: String, names: Vec<String> },
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    BadRequest(String),
    /// The request was sent to a name this server does not answer for (`Host`).
    #[error("{0}")]
    MisdirectedRequest(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{}", summary(.0))]
    Validation(Vec<FieldError>),
    #[error("the store is unavailable")]
    Unavailable(#[source] StoreError),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn summary(errors: &[FieldError]) -> String {
    match errors {
        [one] => format!("{}: {}", one.field, one.message),
        _ => format!("{} fields are invalid", errors.len()),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }
    pub fn forbidden(why: impl Into<String>) -> Self {
        Self::Forbidden(why.into())
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict { detail: detail.into(), names: Vec::new() }
    }
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(e.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::MisdirectedRequest(_) => StatusCode::MISDIRECTED_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem document a client sees. This is the only place errors become HTTP.
    pub fn to_problem(&self) -> Problem {
        let (slug, title) = match self {
            Self::Unauthenticated(_) => ("unauthenticated", "Authentication required"),
            Self::Forbidden(_) => ("forbidden", "Not allowed"),
            Self::NotFound(_) => ("not-found", "Not found"),
            Self::MethodNotAllowed(_) => ("method-not-allowed", "Method not allowed"),
            Self::Conflict { .. } => ("conflict", "Conflict"),
            Self::PreconditionFailed(_) => ("precondition-failed", "Precondition failed"),
            Self::BadRequest(_) => ("bad-request", "Bad request"),
            Self::MisdirectedRequest(_) => ("misdirected-request", "Misdirected request"),
            Self::PayloadTooLarge { .. } => ("payload-too-large", "Payload too large"),
            Self::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            Self::Validation(_) => ("validation", "Invalid input"),
            Self::Unavailable(_) => ("unavailable", "Service unavailable"),
            Self::Internal(_) => ("internal", "Internal error"),
        };
        Problem {
            kind: format!("urn:keygate:problem:{slug}"),
            title,
            status: self.status().as_u16(),
            detail: self.to_string(),
            errors: match self {
                Self::Validation(errors) => errors.clone(),
                _ => Vec::new(),
            },
            conflicting_names: match self {
                Self::Conflict { names, .. } => names.clone(),
                _ => Vec::new(),
            },
        }
    }

    /// Seconds a client should wait before retrying, for errors that are temporary.
    pub fn retry_after(&self) -> Option<u32> {
        matches!(self, Self::Unavailable(_)).then_some(1)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ConditionFailed { .. } | StoreError::Contention => {
                Self::conflict("the resource was changed concurrently; fetch it and try again")
            }
            StoreError::BadCursor => Self::invalid("cursor", "is not a cursor this list returned"),
            e @ StoreError::Unavailable(_) => Self::Unavailable(e),
            e => Self::Internal(Box::new(e)),
        }
    }
}

/// RFC 9457 problem details, with `errors` for validation failures and
/// `conflicting_names` for conflicts over names.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicting_names: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problem_names_the_field() {
        let p = Error::invalid("name", "must not be empty").to_problem();
        assert_eq!(p.status, 422);
        assert_eq!(p.kind, "urn:keygate:problem:validation");
        assert_eq!(p.detail, "name: must not be empty");
        assert_eq!(p.errors[0].field, "name");
    }

    #[test]
    fn internal_details_stay_out_of_the_problem() {
        let e = Error::internal(std::io::Error::other("disk /secret/path failed"));
        let p = e.to_problem();
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("secret"));
    }

    #[test]
    fn unavailable_store_is_503_with_retry_after() {
        let e: Error = StoreError::Unavailable("down".into()).into();
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after(), Some(1));
    }
}
