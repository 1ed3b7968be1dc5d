//! Key requests and the transitions of their status.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{KeyId, ProjectId, RequestId, TemplateId, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Approved,
    Rejected,
    Cancelled,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Rejected, Self::Cancelled].into_iter().find(|v| v.as_str() == s)
    }

    /// Only a pending request can be decided, and only once.
    pub fn transition(self, to: RequestStatus) -> Result<RequestStatus> {
        match (self, to) {
            (Self::Pending, Self::Approved | Self::Rejected | Self::Cancelled) => Ok(to),
            (from, to) => {
                Err(Error::conflict(format!("the request is {} and cannot become {}", from.as_str(), to.as_str())))
            }
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyRequest {
    pub id: RequestId,
    pub project_id: ProjectId,
    pub template_id: TemplateId,
    pub template_name: String,
    pub user_id: UserId,
    pub user_email: String,
    pub user_name: Option<String>,
    pub status: RequestStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub decided_by: Option<UserId>,
    pub reason: Option<String>,
    pub key_id: Option<KeyId>,
    pub version: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    #[serde(default)]
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::RequestStatus::*;

    #[test]
    fn a_pending_request_is_decided_once() {
        assert_eq!(Pending.transition(Approved).unwrap(), Approved);
        assert_eq!(Pending.transition(Rejected).unwrap(), Rejected);
        assert_eq!(Pending.transition(Cancelled).unwrap(), Cancelled);
        for from in [Approved, Rejected, Cancelled] {
            for to in [Pending, Approved, Rejected, Cancelled] {
                let err = from.transition(to).unwrap_err();
                assert_eq!(err.status(), 409, "{from:?} -> {to:?}");
            }
        }
        assert!(Pending.transition(Pending).is_err());
    }

    #[test]
    fn statuses_parse_from_query_strings() {
        assert_eq!(super::RequestStatus::parse("pending"), Some(Pending));
        assert_eq!(super::RequestStatus::parse("PENDING"), None);
    }
}
