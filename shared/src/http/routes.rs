//! The route table: every HTTP route of keygate, the operation it runs and the Lambda function
//! that serves it on AWS. The local gateway, the functions and the SAM template check all use
//! this one table.

use std::collections::HashMap;

use http::Method;
use lambda_http::{Body, Request, Response};

use super::handlers as h;
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
    KeyUsage,
    ExportUsage,
    RevokeKey,
    MyKeys,
    MyKeyToken,
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
    /// Nobody: public.
    None,
}

#[derive(Debug)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub operation: Operation,
    /// The Lambda function (binary) that serves the route.
    pub function: &'static str,
    pub auth: Auth,
}

macro_rules! routes {
    ($($method:ident $path:literal => $op:ident, $function:literal, $auth:ident;)*) => {
        pub static ROUTES: &[Route] = &[
            $(Route { method: Method::$method, path: $path, operation: Operation::$op, function: $function, auth: Auth::$auth },)*
        ];
    };
}

routes! {
    POST "/v1/projects" => RegisterProject, "register-project", User;
    GET "/v1/projects/{project}" => GetProject, "get-project", User;
    PUT "/v1/projects/{project}/roles/{role}" => PutRole, "put-role", User;
    GET "/v1/projects/{project}/roles" => ListRoles, "list-roles", User;
    PUT "/v1/projects/{project}/nodes/{node}" => PutNode, "put-node", User;
    GET "/v1/projects/{project}/nodes" => ListNodes, "list-nodes", User;
    PUT "/v1/projects/{project}/members/{user}" => PutMember, "put-member", User;
    GET "/v1/projects/{project}/members" => ListMembers, "list-members", User;
    GET "/v1/me/projects" => MyProjects, "my-projects", User;
    POST "/v1/projects/{project}/templates" => CreateTemplate, "create-template", User;
    GET "/v1/projects/{project}/templates" => ListTemplates, "list-templates", User;
    PATCH "/v1/projects/{project}/templates/{template}" => EditTemplate, "edit-template", User;
    DELETE "/v1/projects/{project}/templates/{template}" => DeleteTemplate, "delete-template", User;
    POST "/v1/projects/{project}/templates/{template}/requests" => RequestKey, "request-key", User;
    GET "/v1/projects/{project}/requests" => ListRequests, "list-requests", User;
    POST "/v1/projects/{project}/requests/{request}/approve" => ApproveRequest, "approve-request", User;
    POST "/v1/projects/{project}/requests/{request}/reject" => RejectRequest, "reject-request", User;
    GET "/v1/projects/{project}/keys" => ListIssuedKeys, "usage-stats", User;
    GET "/v1/projects/{project}/keys/{key}/usage" => KeyUsage, "key-usage", User;
    GET "/v1/projects/{project}/usage/export" => ExportUsage, "export-usage", User;
    DELETE "/v1/projects/{project}/keys/{key}" => RevokeKey, "revoke-key", User;
    GET "/v1/me/keys" => MyKeys, "my-keys", User;
    GET "/v1/me/keys/{key}/token" => MyKeyToken, "my-key-token", User;
    POST "/v1/projects/{project}/secrets/import" => ImportKey, "import-key", User;
    GET "/v1/projects/{project}/secrets" => ListSecrets, "list-secrets", User;
    PUT "/v1/projects/{project}/secrets/{name}" => PutSecret, "put-secret", User;
    DELETE "/v1/projects/{project}/secrets/{name}" => DeleteSecret, "delete-secret", User;
    GET "/v1/projects/{project}/audit" => ListAudit, "list-audit", User;
    GET "/.well-known/jwks.json" => Jwks, "jwks", None;
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

/// Runs `operation` on a request, turning any error into problem+json.
pub async fn handle(app: &App, operation: Operation, req: Request) -> Response<Body> {
    use Operation::*;
    let result = match operation {
        RegisterProject => h::register_project(app, req).await,
        GetProject => h::get_project(app, req).await,
        PutRole => h::put_role(app, req).await,
        ListRoles => h::list_roles(app, req).await,
        PutNode => h::put_node(app, req).await,
        ListNodes => h::list_nodes(app, req).await,
        PutMember => h::put_member(app, req).await,
        ListMembers => h::list_members(app, req).await,
        MyProjects => h::my_projects(app, req).await,
        CreateTemplate => h::create_template(app, req).await,
        ListTemplates => h::list_templates(app, req).await,
        EditTemplate => h::edit_template(app, req).await,
        DeleteTemplate => h::delete_template(app, req).await,
        RequestKey => h::request_key(app, req).await,
        ListRequests => h::list_requests(app, req).await,
        ApproveRequest => h::approve_request(app, req).await,
        RejectRequest => h::reject_request(app, req).await,
        ListIssuedKeys => h::list_issued_keys(app, req).await,
        KeyUsage => h::key_usage(app, req).await,
        ExportUsage => h::export_usage(app, req).await,
        RevokeKey => h::revoke_key(app, req).await,
        MyKeys => h::my_keys(app, req).await,
        MyKeyToken => h::my_key_token(app, req).await,
        ImportKey => h::import_key(app, req).await,
        ListSecrets => h::list_secrets(app, req).await,
        PutSecret => h::put_secret(app, req).await,
        DeleteSecret => h::delete_secret(app, req).await,
        ListAudit => h::list_audit(app, req).await,
        Jwks => Ok(h::jwks(app)),
    };
    result.unwrap_or_else(|e| super::problem(&e))
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
