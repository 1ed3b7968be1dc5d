//! The OpenAPI 3.1 document of the `/v1` routes, generated from the route table so that it
//! cannot drift from the routes that exist.

use serde_json::{Map, Value, json};

use super::routes::{Auth, ROUTES};

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
        if matches!(route.method, http::Method::POST | http::Method::PUT | http::Method::PATCH) {
            op["requestBody"] =
                json!({"required": false, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        if route.auth == Auth::User {
            op["security"] = json!([{"userToken": []}]);
        }
        entry[route.method.as_str().to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "keygate", "version": env!("CARGO_PKG_VERSION"), "description": "API-key management: templates, requests, keys, usage, secrets."},
        "paths": paths,
        "components": {
            "securitySchemes": {"userToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {"Problem": {
                "type": "object",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
                    "conflicting_names": {"type": "array", "items": {"type": "string"}},
                },
            }},
        },
    })
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
}
