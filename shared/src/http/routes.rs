//! The route table: every HTTP route of keygate, the operation it runs and the Lambda function
//! that serves it on AWS. The local gateway, the functions and the SAM template check all use
//! this one table.

use std::collections::HashMap;

use http::Method;
use lambda_http::{Body, Request, Response};

use super::handlers as h;
pub use crate::config::Needs;
use crate::service::App;

/// One operation of the API; each is its own Lambda function on AWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    RegisterProject,
    GetProject,
    PutRole,
    ListRoles,
    PutNode,
    ListNodes,
    PutMember,
    ListMembers,
    MyProjects,
    CreateTemplate,
    ListTemplates,
    EditTemplate,
    DeleteTemplate,
    RequestKey,
    ListRequests,
    ApproveRequest,
    RejectRequest,
    ListIssuedKeys,
    ProjectUsage,
    KeyUsage,
    ExportUsage,
    RevokeKey,
    RerollKey,
    SetKeyLimits,
    LeakReport,
    MyKeys,
    MyKeyToken,
    DescribeKey,
    MintKeyToken,
    MintMyKeyToken,
    ListMyKeyTokens,
    RevokeMyKeyToken,
    ListKeyTokens,
    RevokeKeyToken,
    GetKey,
    AddWebhook,
    ListWebhooks,
    EditWebhook,
    DeleteWebhook,
    RotateWebhookSecret,
    TestWebhook,
    ListDeliveries,
    RetryDelivery,
    ImportKey,
    ListSecrets,
    PutSecret,
    DeleteSecret,
    ListAudit,
    Jwks,
}

/// Who must be identified to call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// A user token (API Gateway's JWT authorizer on AWS).
    User,
    /// Nobody at the gateway: public, or authenticated by the handler itself (`GET /v1/key`,
    /// with the API key).
    None,
}

#[derive(Debug)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub operation: Operation,
    /// The handler (in `handlers`, and served alone by `one::<handler>`).
    pub handler: &'static str,
    /// The Lambda function (binary) that serves the route.
    pub function: &'static str,
    pub auth: Auth,
    /// What that function is built with beside the store and the public key.
    pub needs: Needs,
}

/// An operation as its own Lambda function serves it (`routes::one::<Operation>`): its handler,
/// named at compile time so that the function links that handler alone, and what the function
/// needs built at start.
pub trait Served {
    const OPERATION: Operation;
    const NEEDS: Needs;
    fn handle(app: std::sync::Arc<App>, req: Request) -> impl Future<Output = Response<Body>> + Send;
}

macro_rules! routes {
    ($($method:ident $path:literal => $op:ident($handler:ident), $function:literal, $auth:ident, $needs:ident;)*) => {
        pub static ROUTES: &[Route] = &[
            $(Route {
                method: Method::$method,
                path: $path,
                operation: Operation::$op,
                handler: stringify!($handler),
                function: $function,
                auth: Auth::$auth,
                needs: Needs::$needs,
            },)*
        ];

        /// Runs `operation` on a request, turning any error into problem+json: every
        /// operation in one process (the local gateway, tests).
        pub async fn handle(app: &App, operation: Operation, req: Request) -> Response<Body> {
            let result = match operation {
                $(Operation::$op => h::$handler(app, req).await,)*
            };
            result.unwrap_or_else(|e| super::problem(&e))
        }

        /// Each operation alone, named at compile time: a Lambda function serves one of these,
        /// so that it links its own handler and not the others (`routes::one::<Operation>`).
        pub mod one {
            use std::sync::Arc;

            use lambda_http::{Body, Request, Response};

            use super::{Needs, Served};
            use crate::service::App;

            $(
                #[doc = concat!("`", stringify!($method), " ", $path, "`, as the function `", $function, "` serves it.")]
                pub struct $op;

                impl Served for $op {
                    const OPERATION: super::Operation = super::Operation::$op;
                    const NEEDS: Needs = Needs::$needs;

                    async fn handle(app: Arc<App>, req: Request) -> Response<Body> {
                        super::h::$handler(&app, req).await.unwrap_or_else(|e| super::super::problem(&e))
                    }
                }
            )*
        }
    };
}

routes! {
    POST "/v1/projects" => RegisterProject(register_project), "register-project", User, NOTHING;
    GET "/v1/projects/{project}" => GetProject(get_project), "get-project", User, NOTHING;
    PUT "/v1/projects/{project}/roles/{role}" => PutRole(put_role), "put-role", User, NOTHING;
    GET "/v1/projects/{project}/roles" => ListRoles(list_roles), "list-roles", User, NOTHING;
    PUT "/v1/projects/{project}/nodes/{node}" => PutNode(put_node), "put-node", User, NOTHING;
    GET "/v1/projects/{project}/nodes" => ListNodes(list_nodes), "list-nodes", User, NOTHING;
    PUT "/v1/projects/{project}/members/{user}" => PutMember(put_member), "put-member", User, NOTHING;
    GET "/v1/projects/{project}/members" => ListMembers(list_members), "list-members", User, NOTHING;
    GET "/v1/me/projects" => MyProjects(my_projects), "my-projects", User, NOTHING;
    POST "/v1/projects/{project}/templates" => CreateTemplate(create_template), "create-template", User, NOTHING;
    GET "/v1/projects/{project}/templates" => ListTemplates(list_templates), "list-templates", User, NOTHING;
    PATCH "/v1/projects/{project}/templates/{template}" => EditTemplate(edit_template), "edit-template", User, NOTHING;
    DELETE "/v1/projects/{project}/templates/{template}" => DeleteTemplate(delete_template), "delete-template", User, MAIL;
    POST "/v1/projects/{project}/templates/{template}/requests" => RequestKey(request_key), "request-key", User, MAIL;
    GET "/v1/projects/{project}/requests" => ListRequests(list_requests), "list-requests", User, NOTHING;
    POST "/v1/projects/{project}/requests/{request}/approve" => ApproveRequest(approve_request), "approve-request", User, MAIL;
    POST "/v1/projects/{project}/requests/{request}/reject" => RejectRequest(reject_request), "reject-request", User, MAIL;
    GET "/v1/projects/{project}/keys" => ListIssuedKeys(list_issued_keys), "usage-stats", User, NOTHING;
    GET "/v1/projects/{project}/usage" => ProjectUsage(project_usage), "project-usage", User, NOTHING;
    GET "/v1/projects/{project}/keys/{key}" => GetKey(get_key), "get-key", User, NOTHING;
    GET "/v1/projects/{project}/keys/{key}/usage" => KeyUsage(key_usage), "key-usage", User, NOTHING;
    GET "/v1/projects/{project}/usage/export" => ExportUsage(export_usage), "export-usage", User, NOTHING;
    DELETE "/v1/projects/{project}/keys/{key}" => RevokeKey(revoke_key), "revoke-key", User, MAIL;
    POST "/v1/projects/{project}/keys/{key}/reroll" => RerollKey(reroll_key), "reroll-key", User, MAIL_AND_SIGNING_KEY;
    PATCH "/v1/projects/{project}/keys/{key}" => SetKeyLimits(set_key_limits), "key-limits", User, NOTHING;
    POST "/v1/leaks/github" => LeakReport(leak_report), "leak-report", None, MAIL_AND_SIGNING_KEY;
    GET "/v1/me/keys" => MyKeys(my_keys), "my-keys", User, NOTHING;
    GET "/v1/me/keys/{key}/token" => MyKeyToken(my_key_token), "my-key-token", User, SIGNING_KEY;
    GET "/v1/key" => DescribeKey(describe_key), "describe-key", None, NOTHING;
    POST "/v1/key/tokens" => MintKeyToken(mint_key_token), "mint-key-token", None, SIGNING_KEY;
    POST "/v1/me/keys/{key}/tokens" => MintMyKeyToken(mint_my_key_token), "mint-my-key-token", User, SIGNING_KEY;
    GET "/v1/me/keys/{key}/tokens" => ListMyKeyTokens(list_my_key_tokens), "list-my-key-tokens", User, NOTHING;
    DELETE "/v1/me/keys/{key}/tokens/{token}" => RevokeMyKeyToken(revoke_my_key_token), "revoke-my-key-token", User, NOTHING;
    GET "/v1/projects/{project}/keys/{key}/tokens" => ListKeyTokens(list_key_tokens), "list-key-tokens", User, NOTHING;
    DELETE "/v1/projects/{project}/keys/{key}/tokens/{token}" => RevokeKeyToken(revoke_key_token), "revoke-key-token", User, NOTHING;
    POST "/v1/projects/{project}/secrets/import" => ImportKey(import_key), "import-key", User, SIGNING_KEY;
    GET "/v1/projects/{project}/secrets" => ListSecrets(list_secrets), "list-secrets", User, NOTHING;
    PUT "/v1/projects/{project}/secrets/{name}" => PutSecret(put_secret), "put-secret", User, NOTHING;
    DELETE "/v1/projects/{project}/secrets/{name}" => DeleteSecret(delete_secret), "delete-secret", User, NOTHING;
    GET "/v1/projects/{project}/audit" => ListAudit(list_audit), "list-audit", User, NOTHING;
    POST "/v1/projects/{project}/webhooks" => AddWebhook(add_webhook), "add-webhook", User, NOTHING;
    GET "/v1/projects/{project}/webhooks" => ListWebhooks(list_webhooks), "list-webhooks", User, NOTHING;
    PATCH "/v1/projects/{project}/webhooks/{webhook}" => EditWebhook(edit_webhook), "edit-webhook", User, NOTHING;
    DELETE "/v1/projects/{project}/webhooks/{webhook}" => DeleteWebhook(delete_webhook), "delete-webhook", User, NOTHING;
    POST "/v1/projects/{project}/webhooks/{webhook}/rotate" => RotateWebhookSecret(rotate_webhook_secret), "rotate-webhook-secret", User, NOTHING;
    POST "/v1/projects/{project}/webhooks/{webhook}/test" => TestWebhook(test_webhook), "test-webhook", User, NOTHING;
    GET "/v1/projects/{project}/webhooks/{webhook}/deliveries" => ListDeliveries(list_deliveries), "list-webhook-deliveries", User, NOTHING;
    POST "/v1/projects/{project}/webhooks/{webhook}/deliveries/{delivery}/retry" => RetryDelivery(retry_delivery), "retry-webhook-delivery", User, NOTHING;
    GET "/.well-known/jwks.json" => Jwks(jwks_route), "jwks", None, NOTHING;
}

/// The path of the platform API that the authorizer guards.
pub const PLATFORM_API: &str = "/api/projects/{project}/{proxy+}";

#[derive(Debug)]
pub enum Match {
    Found(&'static Route, HashMap<String, String>),
    /// The path exists, with other methods.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

/// Finds the route of a request path (segments already percent-decoded by the caller). When
/// patterns overlap (`secrets/import` and `secrets/{name}`), the one with more literal segments
/// wins, for routing and for the methods a 405 lists.
pub fn find(method: &Method, segments: &[String]) -> Match {
    let matching: Vec<(&'static Route, HashMap<String, String>)> =
        ROUTES.iter().filter_map(|r| match_path(r.path, segments).map(|p| (r, p))).collect();
    let Some(best) = matching.iter().map(|(r, _)| literal_segments(r.path)).max() else {
        return Match::NotFound;
    };
    let mut allowed = Vec::new();
    for (route, params) in matching.into_iter().filter(|(r, _)| literal_segments(r.path) == best) {
        if route.method == *method {
            return Match::Found(route, params);
        }
        allowed.push(route.method.clone());
    }
    Match::MethodNotAllowed(allowed)
}

fn literal_segments(pattern: &str) -> usize {
    pattern.split('/').filter(|s| !s.starts_with('{')).count()
}

fn match_path(pattern: &str, segments: &[String]) -> Option<HashMap<String, String>> {
    let pattern: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    if pattern.len() != segments.len() {
        return None;
    }
    let mut params = HashMap::new();
    for (p, s) in pattern.iter().zip(segments) {
        match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !s.is_empty() => {
                params.insert(name.to_owned(), s.clone());
            }
            Some(_) => return None,
            None if p == s => {}
            None => return None,
        }
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(path: &str) -> Vec<String> {
        path.trim_start_matches('/').split('/').map(str::to_owned).collect()
    }

    #[test]
    fn every_operation_has_exactly_one_route_and_function() {
        let mut functions: Vec<_> = ROUTES.iter().map(|r| r.function).collect();
        functions.sort();
        functions.dedup();
        assert_eq!(functions.len(), ROUTES.len());
        let mut ops: Vec<_> = ROUTES.iter().map(|r| format!("{:?}", r.operation)).collect();
        ops.sort();
        ops.dedup();
        assert_eq!(ops.len(), ROUTES.len());
    }

    #[test]
    fn paths_match_with_their_parameters() {
        match find(&Method::POST, &segs("/v1/projects/P1/requests/R1/approve")) {
            Match::Found(route, params) => {
                assert_eq!(route.operation, Operation::ApproveRequest);
                assert_eq!(params["project"], "P1");
                assert_eq!(params["request"], "R1");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(find(&Method::PUT, &segs("/v1/projects/P1/templates")), Match::MethodNotAllowed(_)));
        assert!(matches!(find(&Method::GET, &segs("/v1/nothing")), Match::NotFound));
        assert!(matches!(find(&Method::GET, &segs("/v1/projects//roles")), Match::NotFound));
    }

    #[test]
    fn literal_segments_win_over_parameters() {
        match find(&Method::GET, &segs("/v1/projects/P1/secrets/import")) {
            Match::MethodNotAllowed(allowed) => assert_eq!(allowed, [Method::POST]),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(find(&Method::PUT, &segs("/v1/projects/P1/secrets/db")), Match::Found(r, _) if r.operation == Operation::PutSecret)
        );
    }
}
