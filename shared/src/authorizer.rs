//! The Lambda authorizer of the platform API (SPEC section 6): verifies the API key, checks
//! the key's record and its role's permission for the call, meters the call, and answers allow
//! with a context, or deny. It fails closed and never panics on any input.

use aws_lambda_events::apigw::{ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request};
use http::Method;
use serde::Serialize;

use crate::ids::{DataLayerId, KeyId, ProjectId, TemplateId, UserId};
use crate::key::IssuedKey;
use crate::permission::{Permission, api_path_segments, required_permission};
use crate::project::Role;
use crate::service::App;
use crate::signing::Refusal;
use crate::store::{Write, layout};
use crate::template::KeyTemplate;
use crate::usage;

/// What API Gateway passes on to the platform with an allowed call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallContext {
    pub key_id: KeyId,
    pub user_id: UserId,
    pub project_id: ProjectId,
    pub template_id: TemplateId,
    pub data_layer_id: DataLayerId,
}

impl CallContext {
    /// The context as `x-keygate-*` request headers.
    pub fn headers(&self) -> [(&'static str, &str); 5] {
        [
            ("x-keygate-key-id", self.key_id.as_str()),
            ("x-keygate-user-id", self.user_id.as_str()),
            ("x-keygate-project-id", self.project_id.as_str()),
            ("x-keygate-template-id", self.template_id.as_str()),
            ("x-keygate-data-layer-id", self.data_layer_id.as_str()),
        ]
    }
}

/// Why a call was denied. Only logs see this; the caller sees 401 or 403.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    NoKey,
    BadKey(Refusal),
    BadPath,
    UnknownKey,
    KeyNotUsable,
    MissingPermission(Permission),
    StoreFailed,
}

impl Denial {
    /// 401 when there is no readable key at all, 403 when the key is not good for this call.
    pub fn status(&self) -> u16 {
        match self {
            Self::NoKey | Self::BadKey(Refusal::Malformed) => 401,
            _ => 403,
        }
    }
}

pub type Verdict = Result<CallContext, Denial>;

/// The bearer token of an `Authorization` header value.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl App {
    /// Decides an API Gateway v2 authorizer event.
    pub async fn authorize_event(
        &self,
        event: &ApiGatewayV2CustomAuthorizerV2Request,
    ) -> ApiGatewayV2CustomAuthorizerSimpleResponse {
        let authorization = event.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let method = &event.request_context.http.method;
        let path = event.raw_path.as_deref().or(event.request_context.http.path.as_deref()).unwrap_or_default();
        simple_response(self.authorize(method, path, authorization).await)
    }

    /// Decides one call of the platform API: `path` is the whole request path
    /// (`/api/projects/{project}/...`).
    pub async fn authorize(&self, method: &Method, path: &str, authorization: Option<&str>) -> Verdict {
        let verdict = self.decide(method, path, authorization).await;
        match &verdict {
            Ok(ctx) => tracing::debug!(key_id = %ctx.key_id, %method, "call allowed"),
            Err(Denial::StoreFailed) => {}
            Err(denial) => tracing::info!(?denial, %method, "call denied"),
        }
        verdict
    }

    async fn decide(&self, method: &Method, path: &str, authorization: Option<&str>) -> Verdict {
        let token = authorization.and_then(bearer).ok_or(Denial::NoKey)?;
        let (project, rest) = split_api_path(path).ok_or(Denial::BadPath)?;
        let segments = api_path_segments(rest).ok_or(Denial::BadPath)?;
        let claims = self.keys.verify(token, &project).map_err(Denial::BadKey)?;
        let key_id = KeyId::parse(&claims.jti).ok_or(Denial::UnknownKey)?;
        let key: IssuedKey = self.read(&layout::key(&project, &key_id)).await?.ok_or(Denial::UnknownKey)?;
        if !key.is_usable(self.now()) || key.template_id.as_str() != claims.tpl || key.user_id.as_str() != claims.sub {
            return Err(Denial::KeyNotUsable);
        }
        let template: KeyTemplate =
            self.read(&layout::template(&project, &key.template_id)).await?.ok_or(Denial::KeyNotUsable)?;
        let role: Role = self.read(&layout::role(&project, &template.role)).await?.ok_or(Denial::KeyNotUsable)?;
        let needed = required_permission(method, &segments);
        if !role.permissions.contains(needed) {
            return Err(Denial::MissingPermission(needed));
        }
        self.meter(&key.id, template.price_per_request).await?;
        Ok(CallContext {
            key_id: key.id,
            user_id: key.user_id,
            project_id: project,
            template_id: key.template_id,
            data_layer_id: key.data_layer_id,
        })
    }

    async fn read<T: serde::de::DeserializeOwned>(&self, key: &crate::store::ItemKey) -> Result<Option<T>, Denial> {
        match self.load::<T>(key).await {
            Ok(v) => Ok(v.map(|(v, _)| v)),
            Err(e) => {
                tracing::error!(error = %e, source = ?std::error::Error::source(&e), "authorizer store read failed; denying");
                Err(Denial::StoreFailed)
            }
        }
    }

    /// Counts one allowed call: +1 request and +price in the key's current hour bucket, in one
    /// atomic write. The shard spreads a busy key over several partitions.
    async fn meter(&self, key: &KeyId, price: i64) -> Result<(), Denial> {
        let now = self.now();
        let shards = self.settings.usage_shards.max(1);
        let shard = if shards == 1 { 0 } else { now.timestamp_subsec_nanos() % shards };
        let body = serde_json::json!({ "last_used_at": now }).to_string();
        let write = Write::Increment {
            key: layout::usage_bucket(key, shard, usage::hour_of(now)),
            add: vec![(usage::REQUESTS, 1), (usage::COST, price)],
            body,
        };
        self.store.transact(vec![write]).await.map_err(|e| {
            tracing::error!(error = %e, key_id = %key, "metering failed; denying");
            Denial::StoreFailed
        })
    }
}

/// `/api/projects/{project}/{rest}` → (project, rest); a stage prefix before `/api` is allowed.
fn split_api_path(path: &str) -> Option<(ProjectId, &str)> {
    let at = path.find("/api/projects/")?;
    let after = &path[at + "/api/projects/".len()..];
    let (project, rest) = after.split_once('/').unwrap_or((after, ""));
    Some((ProjectId::parse(project)?, rest))
}

pub fn simple_response(verdict: Verdict) -> ApiGatewayV2CustomAuthorizerSimpleResponse {
    let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    match verdict {
        Ok(ctx) => {
            response.is_authorized = true;
            response.context = serde_json::to_value(ctx).unwrap_or_default();
        }
        Err(_) => {
            response.is_authorized = false;
            response.context = serde_json::json!({});
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
    }

    #[test]
    fn api_paths_split_into_project_and_rest() {
        let p = ProjectId::generate();
        let path = format!("/api/projects/{p}/data_layers/last");
        let (project, rest) = split_api_path(&path).unwrap();
        assert_eq!((project, rest), (p.clone(), "data_layers/last"));
        assert_eq!(split_api_path(&format!("/prod/api/projects/{p}")).unwrap().1, "");
        assert!(split_api_path("/api/projects/not-an-id/x").is_none());
        assert!(split_api_path("/v1/projects").is_none());
    }

    #[test]
    fn missing_or_unreadable_keys_are_401_the_rest_403() {
        assert_eq!(Denial::NoKey.status(), 401);
        assert_eq!(Denial::BadKey(Refusal::Malformed).status(), 401);
        assert_eq!(Denial::BadKey(Refusal::UnknownKey).status(), 403);
        assert_eq!(Denial::MissingPermission(Permission::PackageCreate).status(), 403);
        assert_eq!(Denial::StoreFailed.status(), 403);
    }
}
