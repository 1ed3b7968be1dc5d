//! The OpenAPI 3.1 document of the `/v1` routes, generated from the route table so that it
//! cannot drift from the routes that exist.

use serde_json::{Map, Value, json};

use super::routes::{Auth, Operation, ROUTES};
use crate::permission::Permission;

fn parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect()
}

fn operation_id(function: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in function.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Printable text of 1 to `max` characters that is not only spaces.
fn name(max: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": "^[^\\x00-\\x1f\\x7f]*[^\\x00-\\x20\\x7f][^\\x00-\\x1f\\x7f]*$"})
}

fn text() -> Value {
    json!({"type": "string", "maxLength": crate::project::MAX_TEXT})
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

fn field() -> Value {
    object(
        json!({
            "name": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,63}$", "not": {"const": "token"}},
            "description": text(),
            "kind": {"type": "string", "enum": ["text", "project", "node"]},
            "value": {"type": "string", "maxLength": crate::template::MAX_FIELD_VALUE},
        }),
        &["name"],
    )
}

fn quota() -> Value {
    json!({
        "type": ["object", "null"],
        "description": "At most `requests` allowed calls per key per UTC calendar day or month; null: none.",
        "additionalProperties": false,
        "required": ["requests", "per"],
        "properties": {
            "requests": {"type": "integer", "minimum": 1, "maximum": crate::template::MAX_QUOTA},
            "per": {"enum": ["day", "month"]},
        },
    })
}

fn rate_limit() -> Value {
    json!({
        "type": ["object", "null"],
        "description": "At most `per_second` calls per second per key, `burst` at once; null: none. `mode`: `local` (the default) decides in each authorizer instance's memory, with no store write, so a key gets up to `per_second` times the instances running; `strict` decides in the store, exactly across every instance, for one conditional write per call (on the quota's counter when the key has a quota).",
        "additionalProperties": false,
        "required": ["per_second", "burst"],
        "properties": {
            "per_second": {"type": "integer", "minimum": 1, "maximum": crate::template::MAX_RATE},
            "burst": {"type": "integer", "minimum": 1, "maximum": crate::template::MAX_BURST},
            "mode": {"enum": ["local", "strict"], "default": "local"},
        },
    })
}

fn template(required: &[&str]) -> Value {
    object(
        json!({
            "name": name(64),
            "description": text(),
            "role": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
            "price_per_request": {"type": "integer", "minimum": 0, "maximum": crate::template::MAX_PRICE},
            "validity_days": {"type": ["integer", "null"], "minimum": 1, "maximum": crate::template::MAX_VALIDITY_DAYS},
            "quota": quota(),
            "rate_limit": rate_limit(),
            "on_leak": {"enum": ["revoke", "reroll", "notify"], "description": "What a secret scanner's report of a key of this template does (SECURITY.md, \"Leaked keys\"); default reroll."},
            "narrowed_tokens": object(
                json!({
                    "allowed": {"type": "boolean", "description": "Whether holders may mint narrowed tokens from its keys; default true."},
                    "max_lifetime_seconds": {"type": "integer", "minimum": crate::narrowed::MIN_LIFETIME.num_seconds(), "maximum": crate::narrowed::MAX_MAX_LIFETIME.num_seconds(), "description": "Their longest lifetime; default 2592000 (30 days)."},
                }),
                &[],
            ),
            "fields": {"type": "array", "maxItems": crate::template::MAX_FIELDS, "items": field()},
        }),
        required,
    )
}

/// The body each operation takes, as its input type deserializes it.
fn request_body(op: Operation) -> Option<Value> {
    let permissions: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    let node_ids = json!({"type": "array", "maxItems": crate::secret::MAX_NODES, "items": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}});
    Some(match op {
        Operation::RegisterProject => object(json!({"name": name(128), "description": text()}), &["name"]),
        Operation::PutRole => object(
            json!({
                "description": text(),
                "permissions": {"type": "array", "items": {"type": "string", "enum": permissions}},
                "public": {"type": "boolean"},
                "paid": {"type": "boolean"},
                "cost_coefficient": {"type": "number", "minimum": 0, "maximum": 1_000_000},
            }),
            &["permissions"],
        ),
        Operation::PutNode => object(json!({"name": name(128)}), &["name"]),
        Operation::PutMember => object(
            json!({"role": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}, "email": {"type": "string", "format": "email", "maxLength": 254}}),
            &["role", "email"],
        ),
        Operation::CreateTemplate => template(&["name", "role"]),
        Operation::EditTemplate => {
            let mut patch = template(&[]);
            patch["properties"]["version"] = json!({"type": "integer", "minimum": 0});
            patch
        }
        Operation::RejectRequest => object(json!({"reason": text()}), &[]),
        Operation::AddWebhook | Operation::EditWebhook => {
            let types: Vec<&str> = crate::webhook::EventType::ALL.iter().map(|t| t.as_str()).collect();
            object(
                json!({
                    "url": {"type": "string", "maxLength": 2000, "description": "https (plain http only to the loopback on keygate-local); every address of its host must be public."},
                    "events": {"type": "array", "items": {"type": "string", "enum": types}, "description": "The event types sent; empty or absent: every type."},
                    "enabled": {"type": "boolean"},
                }),
                if op == Operation::AddWebhook { &["url"] } else { &[] },
            )
        }
        Operation::MintKeyToken | Operation::MintMyKeyToken => object(
            json!({
                "label": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,40}$", "description": "What the token is for; its calls are counted under it."},
                "ttl_seconds": {"type": "integer", "minimum": crate::narrowed::MIN_LIFETIME.num_seconds(), "description": "Its lifetime: at most the template's maximum, never past the key's own expiry; default 86400 (1 day), or the template's maximum when shorter."},
                "permissions": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": permissions}, "description": "Permissions of the key's role to keep (a permission the role lacks is refused, 422); all when absent."},
                "nodes": {"type": "array", "minItems": 1, "maxItems": crate::narrowed::MAX_NODES, "items": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}, "description": "Nodes of the project whose paths (nodes/{node}/...) it may call; all paths when absent."},
            }),
            &["label"],
        ),
        Operation::RerollKey => object(
            json!({"grace_seconds": {"type": "integer", "minimum": 0, "maximum": crate::key::MAX_REROLL_GRACE.num_seconds(), "description": "How long the old token keeps working; default 86400 (24 h)."}}),
            &[],
        ),
        Operation::SetKeyLimits => object(
            json!({
                "quota": quota(),
                "rate_limit": rate_limit(),
                "top_up": {"type": "integer", "minimum": 1, "maximum": crate::template::MAX_QUOTA, "description": "Extra calls for the key's current quota period."},
            }),
            &[],
        ),
        Operation::LeakReport => json!({
            "type": "array",
            "maxItems": crate::scanning::MAX_ITEMS,
            "items": {"type": "object", "required": ["token", "type"], "properties": {
                "token": {"type": "string"}, "type": {"type": "string"}, "url": {"type": "string"}, "source": {"type": "string"},
            }},
        }),
        Operation::ImportKey => object(
            json!({
                "key_id": {"type": "string", "pattern": "^[0-7][0-9A-HJKMNP-TV-Z]{25}$"},
                "prefix": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,63}$"},
                "nodes": node_ids,
                "overwrite": {"type": "boolean"},
            }),
            &["key_id", "prefix"],
        ),
        Operation::PutSecret => object(
            json!({"description": text(), "value": {"type": "string", "maxLength": crate::secret::MAX_SECRET_VALUE}, "nodes": node_ids}),
            &["value"],
        ),
        _ => return None,
    })
}

/// An optional query parameter.
fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

/// The period of a usage route, from its query.
fn period() -> [Value; 2] {
    [
        query("from", json!({"type": "string"}), "Start (RFC 3339 time or date, UTC); default: 30 days before `to`."),
        query("to", json!({"type": "string"}), "End, exclusive (RFC 3339 time or date, UTC); default: now."),
    ]
}

/// The billing export answers a file, not JSON, and reads its period and format from the query.
fn export_usage(op: &mut Value) {
    if let Some(params) = op["parameters"].as_array_mut() {
        params.extend(period());
        params.extend([
            query(
                "granularity",
                json!({"enum": ["hour", "day"]}),
                "One row per key per hour (periods up to 31 days) or day.",
            ),
            query("format", json!({"enum": ["csv", "jsonl"]}), "CSV with a header row, or JSON Lines."),
            query(
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": crate::service::MAX_EXPORT_KEYS}),
                "Keys per answer.",
            ),
            query(
                "cursor",
                json!({"type": "string"}),
                "The next page of keys, from the `Link` header of the previous answer.",
            ),
        ]);
    }
    let file = json!({"type": "string"});
    op["description"] = json!(
        "Usage per key per hour or day (key, user, template, requests, cost, then `refused` and one `refused_<outcome>` column per outcome of `Refused`; JSON Lines: a `refused` object) for billing; rows only where a key was used or refused. Paged by keys: a `Link: <...>; rel=\"next\"` header names the next page."
    );
    op["responses"]["2XX"] = json!({
        "description": "The rows of one page of keys",
        "headers": {"Link": {"schema": {"type": "string"}}, "X-Export-Rows": {"schema": {"type": "integer"}}},
        "content": {"text/csv": {"schema": file}, "application/x-ndjson": {"schema": file}},
    });
}

/// The usage answers' shapes: requests and cost, and the calls refused by outcome.
fn usage_schemas() -> Value {
    let integer = json!({"type": "integer"});
    let mut refused: Map<String, Value> =
        crate::usage::Refusals::OUTCOMES.iter().map(|o| ((*o).to_owned(), integer.clone())).collect();
    refused.insert("total".into(), integer.clone());
    let required: Vec<&str> = refused.keys().map(String::as_str).collect();
    let page = |item: &str| {
        json!({
            "type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
                           "next_cursor": {"type": ["string", "null"]}},
        })
    };
    json!({
        "Refused": {
            "type": "object", "required": required, "properties": refused,
            "description": "Calls refused, by outcome (never metered, never billed): revoked, rerolled (a token replaced by a reroll, after its grace period), expired (the key's end, or the token's `exp`), not_yet_valid (`nbf`), permission (the key's role lacks what the call needs), quota, rate_limit, key_not_usable (the key no longer matches its record or template); and their total.",
        },
        "UsagePoint": {
            "type": "object", "required": ["start", "requests", "cost", "refused"],
            "properties": {"start": {"type": "string"}, "requests": integer, "cost": integer, "refused": {"$ref": "#/components/schemas/Refused"}},
        },
        "UsageSeries": {
            "type": "object", "required": ["key_id", "granularity", "from", "to", "points", "totals"],
            "properties": {
                "key_id": {"type": "string"}, "granularity": {"enum": ["hour", "day"]},
                "from": {"type": "string"}, "to": {"type": "string"},
                "points": {"type": "array", "items": {"$ref": "#/components/schemas/UsagePoint"}},
                "totals": {"type": "object", "required": ["requests", "cost", "refused"],
                           "properties": {"requests": integer, "cost": integer, "refused": {"$ref": "#/components/schemas/Refused"}}},
                "quota": {"type": "object"},
            },
        },
        "IssuedKeyRow": {
            "type": "object", "required": ["key_id", "requests", "cost", "refused"],
            "properties": {"key_id": {"type": "string"}, "requests": integer, "cost": integer, "refused": {"$ref": "#/components/schemas/Refused"}},
        },
        "MyKey": {
            "type": "object", "required": ["id", "refused"],
            "properties": {"id": {"type": "string"}, "refused": {"$ref": "#/components/schemas/Refused"}},
            "description": "`refused`: the calls refused in the last 7 days.",
        },
        "ProjectUsage": {
            "type": "object", "required": ["from", "to", "keys", "requests", "cost", "refused", "currency"],
            "properties": {
                "from": {"type": "string"}, "to": {"type": "string"}, "keys": integer, "requests": integer, "cost": integer,
                "refused": {"$ref": "#/components/schemas/Refused"},
                "currency": {"type": "object", "required": ["code", "exponent"],
                             "properties": {"code": {"type": "string"}, "exponent": integer}},
            },
        },
        "IssuedKeyPage": page("IssuedKeyRow"),
        "MyKeyPage": page("MyKey"),
    })
}

/// The answer of the usage routes, by its schema's name.
fn usage_answer(op: Operation) -> Option<(&'static str, &'static str)> {
    match op {
        Operation::KeyUsage => Some((
            "UsageSeries",
            "A key's requests, cost and refused calls (by outcome) per hour or day of the period; for its project's managers and its holder.",
        )),
        Operation::GetKey => Some((
            "IssuedKeyRow",
            "One key with its requests, cost and refused calls (by outcome) in the period, and its quota now: the key page; for its project's managers and its holder.",
        )),
        Operation::ListIssuedKeys => Some((
            "IssuedKeyPage",
            "Issued keys with their requests, cost and refused calls (by outcome) in the period.",
        )),
        Operation::ProjectUsage => Some((
            "ProjectUsage",
            "The period's requests, cost (minor units of `currency`) and refused calls over every key of the project, revoked ones included: the totals of all pages of issued keys.",
        )),
        Operation::MyKeys => Some(("MyKeyPage", "The caller's keys, with the calls refused in the last 7 days.")),
        _ => None,
    }
}

pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in ROUTES {
        let entry = paths.entry(route.path.to_owned()).or_insert_with(|| json!({}));
        let problem = json!({"description": "Problem", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
        let mut op = json!({
            "operationId": operation_id(route.function),
            "summary": route.function.replace('-', " "),
            "parameters": parameters(route.path),
            "responses": {
                "2XX": {"description": "Success", "content": {"application/json": {"schema": {"type": "object"}}}},
                "4XX": problem,
                "5XX": problem,
            },
        });
        if let Some(schema) = request_body(route.operation) {
            let required = !matches!(route.operation, Operation::RejectRequest | Operation::RerollKey);
            op["requestBody"] = json!({"required": required, "content": {"application/json": {"schema": schema}}});
        }
        if route.operation == Operation::ExportUsage {
            export_usage(&mut op);
        }
        if let Some((schema, description)) = usage_answer(route.operation) {
            if route.operation != Operation::MyKeys
                && let Some(params) = op["parameters"].as_array_mut()
            {
                params.extend(period());
            }
            op["description"] = json!(description);
            op["responses"]["2XX"]["content"]["application/json"]["schema"] =
                json!({"$ref": format!("#/components/schemas/{schema}")});
        }
        if route.auth == Auth::User {
            op["security"] = json!([{"userToken": []}]);
        }
        if matches!(route.operation, Operation::MintKeyToken | Operation::MintMyKeyToken) {
            op["description"] = json!(
                "Mints a narrowed token from the key: a keygate API key of the same format, with a lifetime, optionally fewer permissions and only some nodes' paths, and a label its calls are counted under (in the key's usage, quota and cost). The token is answered this once and stored nowhere. At most 100 live per key (409 past it). With the API key itself (`POST /v1/key/tokens`) only the key's current token may mint; a narrowed token may not."
            );
            op["responses"]["2XX"]["content"]["application/json"]["schema"] =
                json!({"$ref": "#/components/schemas/MintedToken"});
        }
        if matches!(route.operation, Operation::MintKeyToken) {
            op["security"] = json!([{"apiKey": []}]);
        }
        if route.operation == Operation::DescribeKey {
            op["security"] = json!([{"apiKey": []}]);
            op["description"] = json!(
                "What the API key in `Authorization: Bearer <key>` is and may do: its state (a key the platform refuses is answered too, with why and when it works again), permissions, quota, rate limit, expiry and generation. Not billed, not counted against the quota. A token keygate did not sign is refused (401) and learns nothing."
            );
            op["responses"]["2XX"]["content"]["application/json"]["schema"] =
                json!({"$ref": "#/components/schemas/KeySelf"});
        }
        entry[route.method.as_str().to_ascii_lowercase()] = op;
    }
    let mut schemas = usage_schemas_with_problem();
    let webhooks = webhooks(&mut schemas);
    json!({
        "openapi": "3.1.0",
        "info": {"title": "keygate", "version": env!("CARGO_PKG_VERSION"), "description": "API-key management: templates, requests, keys, usage, secrets."},
        "paths": paths,
        "webhooks": webhooks,
        "components": {
            "securitySchemes": {
                "userToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "An API key issued by keygate (the token the platform's calls carry)"},
            },
            "schemas": schemas,
        },
    })
}

/// The events keygate sends to webhook endpoints (OpenAPI 3.1's `webhooks`): one POST per
/// event type, its payload's JSON Schema (versioned, `$id` `urn:keygate:webhook:<type>:v1`)
/// in the components as `webhook.<type>`, and the Standard Webhooks headers it is signed with.
fn webhooks(schemas: &mut Value) -> Value {
    let header =
        |description: &str| json!({"required": true, "schema": {"type": "string"}, "description": description});
    let headers = [
        (
            "webhook-id",
            header("The message's id: the same on every retry of one event to one endpoint (drop duplicates by it)"),
        ),
        ("webhook-timestamp", header("Unix seconds when this attempt was signed (refuse stale ones)")),
        (
            "webhook-signature",
            header("`v1,<base64 HMAC-SHA256>` per secret in force, space-separated (two during a rotation's 24 hours)"),
        ),
    ];
    let parameters: Vec<Value> =
        headers.into_iter().map(|(name, h)| json!({"name": name, "in": "header", "required": true, "schema": h["schema"], "description": h["description"]})).collect();
    let mut all = Map::new();
    for kind in crate::webhook::EventType::ALL.into_iter().chain([crate::webhook::EventType::WebhookTest]) {
        let name = format!("webhook.{}", kind.as_str());
        schemas[&name] = kind.schema();
        all.insert(kind.as_str().to_owned(), json!({"post": {
            "summary": kind.as_str(),
            "description": "Signed the Standard Webhooks way (standardwebhooks.com): verify `webhook-signature` with your endpoint's `whsec_` secret before trusting the body. Answer 2xx within 10 s; anything else is retried with the same `webhook-id` (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, then every 10 h for 3 days).",
            "parameters": parameters,
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}},
            "responses": {"2XX": {"description": "Received; any body is ignored (at most 64 KB is read)"}},
        }}));
    }
    Value::Object(all)
}

fn usage_schemas_with_problem() -> Value {
    let mut schemas = usage_schemas();
    let time = json!({"type": ["string", "null"], "format": "date-time"});
    schemas["KeySelf"] = json!({
        "type": "object",
        "required": ["key_id", "project_id", "template_id", "state", "works", "detail", "permissions", "generation", "token_generation", "narrowed"],
        "properties": {
            "key_id": {"type": "string"}, "project_id": {"type": "string"}, "template_id": {"type": "string"},
            "template_name": {"type": "string"}, "user_id": {"type": "string"}, "data_layer_id": {"type": "string"},
            "state": {"type": "string", "enum": ["active", "in_grace", "quota_spent", "revoked", "expired", "rerolled"]},
            "works": {"type": "boolean"}, "detail": {"type": "string"}, "works_again_at": time,
            "permissions": {"type": "array", "items": {"type": "string"}},
            "quota": {"type": ["object", "null"]}, "rate_limit": {"type": ["object", "null"]},
            "issued_at": {"type": "string", "format": "date-time"}, "expires_at": time,
            "generation": {"type": "integer"}, "token_generation": {"type": "integer"}, "previous_until": time,
            "narrowed": {"type": "boolean"},
            "token": {"type": "object", "description": "A narrowed token's label, nodes, id and expiry (`permissions` are what it keeps).", "properties": {
                "token_id": {"type": "string"}, "label": {"type": "string"},
                "nodes": {"type": ["array", "null"], "items": {"type": "string"}}, "expires_at": time,
            }},
        },
    });
    let narrowed = json!({
        "id": {"type": "string"}, "key_id": {"type": "string"}, "project_id": {"type": "string"}, "user_id": {"type": "string"},
        "label": {"type": "string"},
        "permissions": {"type": ["array", "null"], "items": {"type": "string"}},
        "nodes": {"type": ["array", "null"], "items": {"type": "string"}},
        "generation": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"}, "expires_at": {"type": "string", "format": "date-time"},
        "minted_with": {"type": "string", "enum": ["key", "user"]},
    });
    let required = ["id", "key_id", "project_id", "label", "created_at", "expires_at", "minted_with"];
    schemas["NarrowedToken"] = json!({"type": "object", "required": required, "properties": narrowed});
    let mut minted = narrowed.clone();
    minted["token"] = json!({"type": "string", "description": "The narrowed token, shown this once."});
    let mut minted_required = required.to_vec();
    minted_required.push("token");
    schemas["MintedToken"] = json!({"type": "object", "required": minted_required, "properties": minted});
    schemas["Problem"] = json!({
                "type": "object",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
                    "conflicting_names": {"type": "array", "items": {"type": "string"}},
                },
    });
    schemas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_once() {
        let doc = document();
        let count: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(count, ROUTES.len());
        assert_eq!(
            doc["paths"]["/v1/projects/{project}/requests/{request}/approve"]["post"]["operationId"],
            "approveRequest"
        );
    }

    #[test]
    fn every_webhook_event_has_a_versioned_schema_of_its_data() {
        let doc = document();
        for kind in crate::webhook::EventType::ALL {
            let hook = &doc["webhooks"][kind.as_str()]["post"];
            let reference = hook["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str().unwrap();
            let schema = &doc["components"]["schemas"][reference.trim_start_matches("#/components/schemas/")];
            assert_eq!(schema["$id"], format!("urn:keygate:webhook:{}:v1", kind.as_str()));
            assert_eq!(schema["properties"]["type"]["const"], kind.as_str());
            let required = schema["properties"]["data"]["required"].as_array().unwrap();
            assert!(required.contains(&json!("project_id")), "{kind:?}");
            let names: Vec<_> = hook["parameters"].as_array().unwrap().iter().map(|p| p["name"].clone()).collect();
            assert_eq!(names, ["webhook-id", "webhook-timestamp", "webhook-signature"]);
        }
    }

    #[test]
    fn the_usage_answers_name_their_refused_calls_by_outcome() {
        let doc = document();
        let usage = &doc["paths"]["/v1/projects/{project}/keys/{key}/usage"]["get"]["responses"]["2XX"];
        assert_eq!(usage["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/UsageSeries");
        let refused = &doc["components"]["schemas"]["Refused"];
        for outcome in crate::usage::Refusals::OUTCOMES.iter().chain(&["total"]) {
            assert_eq!(refused["properties"][outcome]["type"], "integer", "{outcome}");
        }
        assert!(doc["components"]["schemas"]["Problem"]["required"].is_array(), "the problem schema is kept");
    }
}
