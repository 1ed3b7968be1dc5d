//! The caller of a `/v1` route, as the user token's claims name them.

use serde::Deserialize;

use crate::ids::UserId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub id: UserId,
    pub email: String,
    pub name: Option<String>,
}

/// The claims keygate reads from a user token.
#[derive(Debug, Deserialize)]
pub struct UserClaims {
    pub sub: String,
    pub email: Option<String>,
    pub name: Option<String>,
}
