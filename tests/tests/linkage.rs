//! Each Lambda function links only what it runs: an operation's binary holds its own handler
//! and no other operation's, and the authorizer holds no handler, no SES client and no SSM
//! client. Read from the symbol tables of the binaries the test command builds (the linker
//! drops every function nothing calls, so a symbol that is there is code that is shipped).

use std::collections::BTreeSet;

use keygate::http::routes::ROUTES;
use keygate_tests::runtime::function_binary;
use object::{Object, ObjectSymbol};

/// The names in a binary's symbol table (mangled, legacy or v0: both spell each path segment
/// as its length and its text, `8handlers8put_node`).
fn symbols(function: &str) -> Vec<String> {
    let path = function_binary(function);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = object::File::parse(&*data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let names: Vec<String> = file.symbols().filter_map(|s| s.name().ok().map(str::to_owned)).collect();
    assert!(names.len() > 1000, "{} has no symbol table (stripped?)", path.display());
    names
}

fn segment(name: &str) -> String {
    format!("{}{name}", name.len())
}

/// The handlers (`keygate::http::handlers::*`) a binary links.
fn handlers_in(symbols: &[String]) -> BTreeSet<&'static str> {
    ROUTES
        .iter()
        .map(|r| r.handler)
        .filter(|h| {
            let needle = format!("8handlers{}", segment(h));
            symbols.iter().any(|s| s.contains(&needle))
        })
        .collect()
}

#[test]
fn each_operation_binary_links_its_own_handler_and_no_other() {
    for route in ROUTES {
        let linked = handlers_in(&symbols(route.function));
        assert_eq!(
            linked,
            BTreeSet::from([route.handler]),
            "the binary {} must link the handler {} alone",
            route.function,
            route.handler
        );
    }
}

#[test]
fn the_authorizer_links_no_handler_no_mailer_and_no_ssm() {
    let symbols = symbols("authorizer");
    assert!(handlers_in(&symbols).is_empty(), "{:?}", handlers_in(&symbols));
    for crate_name in ["aws_sdk_sesv2", "aws_sdk_ssm", "aws_sdk_sts"] {
        let found: Vec<&String> = symbols.iter().filter(|s| s.contains(&segment(crate_name))).take(3).collect();
        assert!(found.is_empty(), "the authorizer links {crate_name}: {found:?}");
    }
    // It does link what it runs: the DynamoDB client and its own decision.
    assert!(symbols.iter().any(|s| s.contains(&segment("aws_sdk_dynamodb"))));
    assert!(symbols.iter().any(|s| s.contains("10authorizer") && s.contains("15authorize_event")));
}
