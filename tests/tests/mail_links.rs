//! Links in mail lead to the console keygate-local actually serves (issue 24, point 3): one
//! started on a port of its own choosing (`--port 0`) writes that port into its mail, and the
//! link answers; one given `--console-url` writes that instead.

use keygate_tests::LocalGateway;
use serde_json::json;

fn links(mail: &str) -> Vec<String> {
    mail.split_whitespace()
        .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn mail_links_name_the_address_served_unless_told_otherwise() {
    let gw = LocalGateway::start(&[]);
    assert!(!gw.url.ends_with(":3000"), "the test gateway runs on a port of its own: {}", gw.url);
    let (ann, bob) = (gw.token("ann"), gw.token("bob"));
    let template = json!({"name": "Forecast API", "role": "reader", "price_per_request": 1});
    let (p, t) = gw.project_with_template(&ann, "Weather", ("reader", &["project_view"]), template).await;
    gw.issue_key(&ann, &bob, &p, &t).await;
    let to_bob = gw.mail_to("bob@example.com").await;
    let found: Vec<String> = to_bob.iter().flat_map(|m| links(m)).collect();
    assert!(!found.is_empty(), "the approval mail has links: {to_bob:?}");
    for link in &found {
        assert!(link.starts_with(&format!("{}/", gw.url)), "{link} is not on {}", gw.url);
    }
    // "Review the request" and "Your keys" lead somewhere: the console answers them.
    let answer = gw.http.get(&found[0]).send().await.unwrap();
    assert_eq!(answer.status(), 200, "{}", found[0]);

    let told = LocalGateway::start(&["--console-url", "https://keygate.example.com"]);
    let (ann, bob) = (told.token("ann"), told.token("bob"));
    let template = json!({"name": "Forecast API", "role": "reader", "price_per_request": 1});
    let (p, t) = told.project_with_template(&ann, "Weather", ("reader", &["project_view"]), template).await;
    told.issue_key(&ann, &bob, &p, &t).await;
    let to_bob = told.mail_to("bob@example.com").await;
    assert!(to_bob.iter().flat_map(|m| links(m)).all(|l| l.starts_with("https://keygate.example.com/")), "{to_bob:?}");
}
