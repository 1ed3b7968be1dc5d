//! The SAM template matches the code: every route of the route table has exactly one function,
//! named after its operation, with exactly one HTTP API event for that route; the only other
//! functions are the authorizer, the mail retry and the console; every function has a binary and every
//! binary a function; the platform API sits behind the Lambda authorizer with caching off.

use std::collections::{BTreeMap, BTreeSet};

use keygate::http::routes::{Auth, PLATFORM_API, ROUTES};
use serde_norway::Value;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_owned()
}

fn template() -> Value {
    let text = std::fs::read_to_string(root().join("infra/template.yaml")).expect("infra/template.yaml");
    serde_norway::from_str(&text).expect("the template is YAML")
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

struct Function {
    binary: String,
    events: Vec<(String, String, bool)>,
}

fn functions(t: &Value) -> BTreeMap<String, Function> {
    let resources = t["Resources"].as_mapping().expect("Resources");
    resources
        .iter()
        .filter(|(_, r)| text(&r["Type"]) == "AWS::Serverless::Function")
        .map(|(name, r)| {
            let events = r["Properties"]["Events"]
                .as_mapping()
                .map(|m| {
                    m.values()
                        .filter(|e| text(&e["Type"]) == "HttpApi")
                        .map(|e| {
                            let p = &e["Properties"];
                            let public = text(&p["Auth"]["Authorizer"]) == "NONE";
                            (text(&p["Method"]).to_owned(), text(&p["Path"]).to_owned(), public)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let binary = text(&r["Metadata"]["BuildProperties"]["Binary"]).to_owned();
            (text(name).to_owned(), Function { binary, events })
        })
        .collect()
}

#[test]
fn every_route_has_one_function_with_one_event_and_nothing_else_exists() {
    let t = template();
    let functions = functions(&t);
    let mut by_binary: BTreeMap<&str, &Function> = BTreeMap::new();
    for (name, f) in &functions {
        // The REST stage's authorizer is the authorizer's twin (checked below).
        if name != "RestAuthorizerFunction" {
            assert!(by_binary.insert(&f.binary, f).is_none(), "two functions build {}", f.binary);
        }
    }
    for route in ROUTES {
        let f =
            by_binary.get(route.function).unwrap_or_else(|| panic!("no function for {} {}", route.method, route.path));
        let want = (route.method.to_string(), route.path.to_owned(), route.auth == Auth::None);
        assert_eq!(f.events, vec![want], "the events of {}", route.function);
    }
    let extra: BTreeSet<&str> =
        by_binary.keys().copied().filter(|b| !ROUTES.iter().any(|r| r.function == *b)).collect();
    assert_eq!(extra, BTreeSet::from(["authorizer", "console", "mail-retry", "webhook-delivery"]));
    for extra in ["authorizer", "mail-retry"] {
        assert!(by_binary[extra].events.is_empty(), "{extra} serves no route");
    }
    // The console answers every GET no route above takes (API Gateway picks the most specific
    // route), without a user token: its page signs people in.
    let console: BTreeSet<_> = by_binary["console"].events.iter().cloned().collect();
    let want = [("GET".to_owned(), "/".to_owned(), true), ("GET".to_owned(), "/{proxy+}".to_owned(), true)];
    assert_eq!(console, BTreeSet::from(want));
}

#[test]
fn every_function_has_a_binary_and_every_binary_a_function() {
    let t = template();
    let in_template: BTreeSet<String> = functions(&t).into_values().map(|f| f.binary).collect();
    let mut binaries: BTreeSet<String> = std::fs::read_dir(root().join("functions/src/bin"))
        .expect("functions/src/bin")
        .filter_map(Result::ok)
        .filter_map(|e| e.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    // The authorizer is a package of its own, for build settings of its own.
    assert!(root().join("functions/authorizer/src/main.rs").exists());
    binaries.insert("authorizer".into());
    assert_eq!(in_template, binaries);
    // Each is built from its package's directory, where its build settings are.
    let code_uri = |name: &str| {
        let own = &t["Resources"][name]["Properties"]["CodeUri"];
        text(if own.is_null() { &t["Globals"]["Function"]["CodeUri"] } else { own }).to_owned()
    };
    for (name, function) in functions(&t) {
        let want = if function.binary == "authorizer" { "../functions/authorizer" } else { "../functions" };
        assert_eq!(code_uri(&name), want, "{name}");
        assert!(root().join(want.trim_start_matches("../")).join(".cargo/config.toml").exists(), "{want}");
    }
}

/// Each operation's binary serves that operation's handler, named at compile time.
#[test]
fn every_operation_binary_serves_its_own_handler() {
    for route in keygate::http::routes::ROUTES {
        let path = root().join(format!("functions/src/bin/{}.rs", route.function));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let call = format!("serve::<keygate::http::routes::one::{:?}>()", route.operation);
        assert!(text.contains(&call), "{} must call {call}", path.display());
    }
}

#[test]
fn the_platform_api_is_behind_the_uncached_lambda_authorizer() {
    let t = template();
    let resources = t["Resources"].as_mapping().unwrap();
    let route =
        resources.values().find(|r| text(&r["Type"]) == "AWS::ApiGatewayV2::Route").expect("the platform route");
    let want = format!("ANY {}", PLATFORM_API);
    assert_eq!(text(&route["Properties"]["RouteKey"]), want);
    assert_eq!(text(&route["Properties"]["AuthorizationType"]), "CUSTOM");
    let authorizer = &t["Resources"]["ApiKeyAuthorizer"]["Properties"];
    assert_eq!(authorizer["AuthorizerResultTtlInSeconds"].as_u64(), Some(0), "caching must be off");
    assert_eq!(authorizer["EnableSimpleResponses"].as_bool(), Some(true));
    assert_eq!(text(&authorizer["AuthorizerPayloadFormatVersion"]), "2.0");
    // It verifies with the public key alone: no access to the private signing key.
    let policies = serde_norway::to_string(&t["Resources"]["AuthorizerFunction"]["Properties"]["Policies"]).unwrap();
    assert!(!policies.contains("ssm:"), "{policies}");
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert!(!env["KEYGATE_SIGNING_PUBLIC_KEY"].is_null(), "the public key reaches every function");
    let headers = t["Resources"]["PlatformIntegration"]["Properties"]["RequestParameters"].as_mapping().unwrap();
    for name in ["key-id", "user-id", "project-id", "template-id", "data-layer-id"] {
        assert!(headers.keys().any(|k| text(k) == format!("overwrite:header.x-keygate-{name}")), "{name}");
    }
}

#[test]
fn read_only_functions_get_read_only_table_access_and_only_what_their_operation_needs() {
    let t = template();
    let resources = t["Resources"].as_mapping().unwrap();
    for (name, r) in resources.iter().filter(|(_, r)| text(&r["Type"]) == "AWS::Serverless::Function") {
        let function = text(&r["Metadata"]["BuildProperties"]["Binary"]);
        let policies = serde_norway::to_string(&r["Properties"]["Policies"]).unwrap();
        let route = ROUTES.iter().find(|route| route.function == function);
        if route.is_some_and(|route| route.method == http::Method::GET) {
            assert!(!policies.contains("DynamoDBCrudPolicy"), "{} only reads", text(name));
        }
        // What the route table says the operation needs, and the mail-retry function sends.
        let needs = match (route, function) {
            (Some(route), _) => route.needs,
            (None, "mail-retry") => keygate::config::Needs::MAIL,
            (None, "webhook-delivery") => {
                // It mails a project's owner when it disables a failing endpoint, and reads the
                // deployment endpoint's secret from SSM: never the signing key.
                assert!(policies.contains("ses:SendEmail"), "{policies}");
                assert!(policies.contains("parameter${WebhookSecretParameter}"), "{policies}");
                assert!(!policies.contains("SigningKeyParameter"), "{policies}");
                continue;
            }
            (None, _) => keygate::config::Needs::NOTHING,
        };
        assert_eq!(policies.contains("ses:SendEmail"), needs.mail, "{} and SES", text(name));
        assert_eq!(policies.contains("ssm:GetParameter"), needs.signing_key, "{} and the signing key", text(name));
    }
    let senders: Vec<&str> = ROUTES.iter().filter(|r| r.needs.mail).map(|r| r.function).collect();
    assert_eq!(
        senders,
        [
            "delete-template",
            "request-key",
            "approve-request",
            "reject-request",
            "revoke-key",
            "reroll-key",
            "leak-report"
        ]
    );
    let signers: Vec<&str> = ROUTES.iter().filter(|r| r.needs.signing_key).map(|r| r.function).collect();
    assert_eq!(
        signers,
        ["reroll-key", "leak-report", "my-key-token", "mint-key-token", "mint-my-key-token", "import-key"]
    );
}

/// The stack names the release and the storage layout of the code it deploys.
#[test]
fn the_stack_outputs_name_this_release_and_its_storage_layout() {
    let t = template();
    assert_eq!(text(&t["Outputs"]["Version"]["Value"]), keygate::migrate::VERSION);
    assert_eq!(text(&t["Outputs"]["StorageLayout"]["Value"]), keygate::migrate::LAYOUT.to_string());
}

/// Every refusal the authorizer can answer, one of each kind.
fn every_denial() -> Vec<keygate::authorizer::Denial> {
    use keygate::authorizer::{Denial, Limit, Limited, NarrowedOut};
    use keygate::permission::Permission;
    use keygate::platform::CallProblem;
    use keygate::signing::Refusal;
    let mut all = vec![
        Denial::NoKey,
        Denial::BadKey(Refusal::Malformed),
        Denial::BadKey(Refusal::Expired),
        Denial::BadKey(Refusal::NotYetValid),
        Denial::BadKey(Refusal::OtherProject),
        Denial::UnknownKey,
        Denial::Revoked,
        Denial::Expired,
        Denial::Rerolled,
        Denial::KeyNotUsable,
        Denial::MissingPermission(Permission::PackageCreate),
        Denial::TokenRevoked,
        Denial::Narrowed(NarrowedOut::Permission(Permission::PackageView)),
        Denial::Narrowed(NarrowedOut::Node),
        Denial::Limited(Limited { limit: Limit::Rate(keygate::template::RateLimit::new(5, 1)), retry_after: 2 }),
        Denial::StoreFailed,
    ];
    all.extend(
        [
            CallProblem::NotAPlatformPath,
            CallProblem::BadProject,
            CallProblem::EncodedUnreserved('p'),
            CallProblem::EncodedSeparator,
            CallProblem::EncodedPercent,
            CallProblem::EncodedControl,
            CallProblem::BadPercent,
            CallProblem::NotUtf8,
            CallProblem::DotSegment,
            CallProblem::EmptySegment,
            CallProblem::PathParameter,
            CallProblem::Backslash,
            CallProblem::MethodOverride("X-HTTP-Method-Override"),
            CallProblem::ContextHeader,
            CallProblem::ProxyAuthorization,
            CallProblem::RepeatedAuthorization,
        ]
        .map(Denial::BadCall),
    );
    all
}

/// What a gateway response template becomes for `context`: each `$context.authorizer.<name>`
/// replaced by its value, or by nothing when the context lacks it (as API Gateway does).
fn render(template: &str, context: &serde_json::Value) -> (String, BTreeSet<String>) {
    let marker = "$context.authorizer.";
    let (mut out, mut rest, mut named) = (String::new(), template, BTreeSet::new());
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at]);
        rest = &rest[at + marker.len()..];
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let name = &rest[..end];
        named.insert(name.to_owned());
        match &context[name] {
            serde_json::Value::String(s) => out.push_str(s),
            serde_json::Value::Null => {}
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    (out, named)
}

/// The optional REST stage (PlatformRestStage, off by default): the same authorizer code and
/// table access, caching off, and an ACCESS_DENIED response that, rendered with the context of
/// every refusal the authorizer answers, is a valid problem+json naming its outcome and words,
/// reading only context keys the authorizer writes.
#[test]
fn the_rest_stage_tells_a_refused_caller_why_from_the_authorizers_context() {
    let t = template();
    assert_eq!(text(&t["Parameters"]["PlatformRestStage"]["Default"]), "false", "off by default");
    let r = &t["Resources"];
    let twin = &r["RestAuthorizerFunction"];
    assert_eq!(text(&twin["Condition"]), "WithRestStage");
    assert_eq!(text(&twin["Properties"]["Environment"]["Variables"]["KEYGATE_AUTHORIZER_EVENTS"]), "rest");
    assert_eq!(text(&twin["Metadata"]["BuildProperties"]["Binary"]), "authorizer");
    assert_eq!(
        twin["Properties"]["Policies"], r["AuthorizerFunction"]["Properties"]["Policies"],
        "the same table access"
    );
    assert_eq!(r["PlatformRestAuthorizer"]["Properties"]["AuthorizerResultTtlInSeconds"].as_u64(), Some(0));
    let denied = &r["PlatformRestAccessDenied"]["Properties"];
    assert_eq!(text(&denied["ResponseType"]), "ACCESS_DENIED");
    assert_eq!(
        text(&denied["ResponseParameters"]["gatewayresponse.header.Content-Type"]),
        "'application/problem+json'"
    );
    let template = text(&denied["ResponseTemplates"]["application/json"]);
    let mut written = BTreeSet::new();
    for denial in every_denial() {
        let context = keygate::authorizer::rest_response(Err(denial.clone()), "arn")["context"].clone();
        written.extend(context.as_object().unwrap().keys().cloned());
        let (body, named) = render(template, &context);
        let problem: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{denial:?} renders invalid JSON ({e}): {body}"));
        assert_eq!(problem["outcome"], denial.outcome(), "{body}");
        assert_eq!(problem["detail"], denial.advice().as_str(), "{body}");
        assert_eq!(problem["type"], denial.problem_type().as_str(), "{body}");
        for name in &named {
            assert!(!context[name.as_str()].is_object(), "{name} must be a plain value");
        }
    }
    let (_, named) = render(template, &serde_json::Value::Null);
    let unknown: Vec<_> = named.difference(&written).collect();
    assert!(unknown.is_empty(), "the template reads context keys the authorizer never writes: {unknown:?}");
    // The headers the platform is given come from the allowed call's context.
    let params = r["PlatformRestMethod"]["Properties"]["Integration"]["RequestParameters"].as_mapping().unwrap();
    for name in ["key-id", "user-id", "project-id", "template-id", "data-layer-id", "quota-remaining"] {
        assert!(params.keys().any(|k| text(k) == format!("integration.request.header.x-keygate-{name}")), "{name}");
    }
}

/// The webhook-delivery function is woken by the table's stream, filtered to the events the
/// outbox queues (the same partition the code writes), and by a schedule for the retries.
#[test]
fn the_webhook_delivery_function_hears_the_outbox_through_the_stream_and_a_schedule() {
    let t = template();
    let spec = &t["Resources"]["Table"]["Properties"]["StreamSpecification"];
    assert_eq!(text(&spec["StreamViewType"]), "KEYS_ONLY");
    let f = &t["Resources"]["WebhookDeliveryFunction"]["Properties"];
    let stream = &f["Events"]["Queued"]["Properties"];
    assert_eq!(text(&f["Events"]["Queued"]["Type"]), "DynamoDB");
    let pattern: serde_json::Value =
        serde_json::from_str(text(&stream["FilterCriteria"]["Filters"][0]["Pattern"])).expect("a JSON pattern");
    assert_eq!(pattern["dynamodb"]["Keys"]["pk"]["S"][0], keygate::store::layout::WEBHOOK_EVENTS_PK);
    assert_eq!(pattern["eventName"], serde_json::json!(["INSERT"]));
    assert_eq!(text(&f["Events"]["EveryMinute"]["Properties"]["ScheduleExpression"]), "rate(1 minute)");
    // Long enough for an attempt (10 s) after waiting for a retry due within the invocation.
    assert!(f["Timeout"].as_u64().is_some_and(|t| t >= 30), "{:?}", f["Timeout"]);
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert!(!env["KEYGATE_WEBHOOKS"].is_null(), "every function queues events when the stack delivers them");
}
