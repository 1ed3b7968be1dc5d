//! The guides say what the code does: docs/api.md lists every route of the route table, with
//! its function and who may call it, and no route that does not exist. (Links and anchors
//! between the guides are checked by scripts/check-links.)

use keygate::http::routes::{Auth, ROUTES};

#[test]
fn the_api_guide_lists_every_route_and_no_other() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository");
    let guide = std::fs::read_to_string(root.join("docs/api.md")).expect("docs/api.md");
    let rows: Vec<&str> = guide.lines().filter(|l| l.starts_with("| ") && l.contains("| `")).collect();
    for route in ROUTES {
        let row = format!("| {} | `{}` | `{}` |", route.method, route.path, route.function);
        let found = rows.iter().find(|r| r.starts_with(&row)).unwrap_or_else(|| panic!("docs/api.md lacks {row}"));
        if route.auth == Auth::User {
            assert!(found.ends_with("| a user token |"), "{found}");
        }
    }
    assert_eq!(rows.len(), ROUTES.len(), "docs/api.md lists a route that does not exist");
}
