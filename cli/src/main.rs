//! `keygate`: the command line of keygate, for the people who hold keys and the owners who
//! issue them. A thin client of the `/v1` API: every command is one call (or one call per page),
//! `--json` prints keygate's answer as it came, and the exit code says what went wrong:
//! 0 done, 1 failed (bad input, a conflict, nothing to sign in with), 2 a usage error,
//! 3 refused (401/403, or `whoami` of a key that would be refused), 4 not found, 5 unavailable.
//!
//! Tokens never reach the output unless a command exists to produce one (`token mint`) or
//! `--show-token` asks for it.

mod client;
mod credentials;
mod login;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use client::{Client, Failure, Result};
use credentials::Credentials;

#[derive(Parser)]
#[command(
    name = "keygate",
    version,
    about = "keygate's command line: ask your key, narrow it, manage keys and requests"
)]
struct Cli {
    /// The keygate deployment: keygate-local's address or the stack's API URL. Defaults to the
    /// one signed in to last, then http://127.0.0.1:3000.
    #[arg(long, global = true, env = "KEYGATE_URL")]
    url: Option<String>,
    /// Print keygate's answer as JSON (errors too, as problem documents).
    #[arg(long, global = true)]
    json: bool,
    /// A user token to use instead of the one `keygate login` kept.
    #[arg(long, global = true, env = "KEYGATE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign in to the deployment (keygate-local's sign-in, or the identity provider's device flow).
    Login {
        /// keygate-local only: the user id to sign in as.
        #[arg(long)]
        user: Option<String>,
        /// keygate-local only: the user's e-mail address.
        #[arg(long)]
        email: Option<String>,
        /// keygate-local only: the user's display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Forget the sign-in to the deployment.
    Logout,
    /// What the API key is and may do: state, quota left, expiry, permissions (not billed).
    Whoami(KeyArg),
    /// Narrowed, short-lived tokens of a key.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Your keys, their usage, rerolls.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Key requests of a project you manage.
    #[command(subcommand)]
    Requests(RequestsCommand),
    /// A project's usage, per key and period, for billing (CSV, or JSON Lines with --json).
    Export {
        #[arg(long)]
        project: String,
        #[command(flatten)]
        period: Period,
        /// hour or day.
        #[arg(long)]
        granularity: Option<String>,
    },
}

#[derive(Args)]
struct KeyArg {
    /// A file holding the API key (its first line). Without it, KEYGATE_API_KEY.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

#[derive(Args)]
struct Period {
    /// Start: RFC 3339 time or a date (2026-12-01). Defaults to 30 days ago.
    #[arg(long)]
    from: Option<String>,
    /// End: RFC 3339 time or a date. Defaults to now.
    #[arg(long)]
    to: Option<String>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a narrowed token: with the API key (KEYGATE_API_KEY or --key-file), or with your
    /// sign-in and --key <key id>. Prints the token alone (with --json, the whole answer).
    Mint {
        /// Its lifetime: 1h, 12h, 7d... (at most the template's maximum, 30 days by default).
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<std::time::Duration>,
        /// A permission it keeps (repeat for several); without any, the role's.
        #[arg(long = "only")]
        permissions: Vec<String>,
        /// A node whose paths it may call (repeat for several); without any, every node.
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// What it is for: ci, nightly-run...
        #[arg(long)]
        label: String,
        /// The key's id, to mint with your sign-in instead of the key.
        #[arg(long = "key")]
        key_id: Option<String>,
        #[command(flatten)]
        key: KeyArg,
    },
    /// The live narrowed tokens of one of your keys.
    List {
        #[arg(long = "key")]
        key_id: String,
    },
    /// Revoke one narrowed token of one of your keys.
    Revoke {
        #[arg(long = "key")]
        key_id: String,
        /// The token's id (from `keygate token list`).
        token_id: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// The keys you hold.
    List,
    /// A key's calls, refusals and cost over a period.
    Usage {
        #[arg(long)]
        project: String,
        #[arg(long = "key")]
        key_id: String,
        #[command(flatten)]
        period: Period,
        /// hour or day.
        #[arg(long)]
        granularity: Option<String>,
    },
    /// Give a key a new token; the old one keeps working for the grace period.
    Reroll {
        #[arg(long)]
        project: String,
        #[arg(long = "key")]
        key_id: String,
        /// How long the old token keeps working: 0s to 7d (24h if absent).
        #[arg(long, value_parser = humantime::parse_duration)]
        grace: Option<std::time::Duration>,
        /// Print the new token (the holder's; never printed otherwise).
        #[arg(long)]
        show_token: bool,
    },
}

#[derive(Subcommand)]
enum RequestsCommand {
    /// A project's key requests.
    List {
        #[arg(long)]
        project: String,
    },
    /// Approve a request: the key is issued and its holder mailed.
    Approve {
        #[arg(long)]
        project: String,
        request: String,
    },
    /// Reject a request, with a reason the requester reads.
    Reject {
        #[arg(long)]
        project: String,
        request: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

const DEFAULT_URL: &str = "http://127.0.0.1:3000";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_output = cli.json;
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure @ Failure::Reported(_)) => failure.exit_code(),
        Err(failure) => {
            if json_output {
                println!("{}", failure.to_json());
            } else {
                eprintln!("keygate: {failure}");
            }
            failure.exit_code()
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let mut credentials = Credentials::load()?;
    let url = cli.url.clone().or_else(|| credentials.url.clone()).unwrap_or_else(|| DEFAULT_URL.to_owned());
    let client = Client::new(&url)?;
    let user_token = || -> Result<String> {
        cli.token.clone().or_else(|| credentials.tokens.get(client.base()).cloned()).ok_or_else(|| {
            Failure::Local(format!("not signed in to {}: run keygate login (or set KEYGATE_TOKEN)", client.base()))
        })
    };
    let out = Output { json: cli.json };
    match &cli.command {
        Command::Login { user, email, name } => {
            let local = match (user, email) {
                (Some(sub), Some(email)) => {
                    Some(login::LocalUser { sub: sub.clone(), email: email.clone(), name: name.clone() })
                }
                (None, None) => None,
                _ => return Err(Failure::Local("give --user and --email together".into())),
            };
            let token = login::sign_in(&client, local).await?;
            credentials.tokens.insert(client.base().to_owned(), token);
            credentials.url = Some(client.base().to_owned());
            let path = credentials.save()?;
            out.done(&json!({"signed_in": client.base(), "credentials": path}), || {
                format!(
                    "Signed in to {}; the token is kept in {} (readable by you only).",
                    client.base(),
                    path.display()
                )
            });
        }
        Command::Logout => {
            let had = credentials.tokens.remove(client.base()).is_some();
            credentials.save()?;
            out.done(&json!({"signed_out": client.base(), "was_signed_in": had}), || {
                format!("Signed out of {}.", client.base())
            });
        }
        Command::Whoami(key) => {
            let answer = client.call(Method::GET, "/v1/key", Some(&api_key(key)?), None).await?.body;
            out.done(&answer, || describe_key(&answer));
            if answer.get("works") == Some(&Value::Bool(false)) {
                // The key would be refused, as printed: a script's `keygate whoami || exit`
                // stops here.
                return Err(Failure::Reported(client::EXIT_REFUSED));
            }
        }
        Command::Token(TokenCommand::Mint { ttl, permissions, nodes, label, key_id, key }) => {
            let mut body = json!({"label": label});
            if let Some(ttl) = ttl {
                body["ttl_seconds"] = json!(ttl.as_secs());
            }
            if !permissions.is_empty() {
                body["permissions"] = json!(permissions);
            }
            if !nodes.is_empty() {
                body["nodes"] = json!(nodes);
            }
            let (path, bearer) = match key_id {
                Some(k) => (format!("/v1/me/keys/{}/tokens", seg(k)), user_token()?),
                None => ("/v1/key/tokens".to_owned(), api_key(key)?),
            };
            let answer = client.call(Method::POST, &path, Some(&bearer), Some(&body)).await?.body;
            if out.json {
                println!("{answer}");
            } else {
                // The token alone on standard output (TOKEN=$(keygate token mint ...)); what it
                // is, on standard error.
                eprintln!(
                    "Narrowed token {} ({}) expires {}.",
                    text(&answer, "id"),
                    text(&answer, "label"),
                    text(&answer, "expires_at")
                );
                println!("{}", text(&answer, "token"));
            }
        }
        Command::Token(TokenCommand::List { key_id }) => {
            let answer = client
                .call(Method::GET, &format!("/v1/me/keys/{}/tokens", seg(key_id)), Some(&user_token()?), None)
                .await?
                .body;
            out.done(&answer, || {
                table(
                    &answer["items"],
                    &[("id", "id"), ("label", "label"), ("expires", "expires_at"), ("permissions", "permissions")],
                )
            });
        }
        Command::Token(TokenCommand::Revoke { key_id, token_id }) => {
            let path = format!("/v1/me/keys/{}/tokens/{}", seg(key_id), seg(token_id));
            let answer = client.call(Method::DELETE, &path, Some(&user_token()?), None).await?.body;
            out.done(&answer, || {
                format!("Revoked narrowed token {} ({}).", text(&answer, "id"), text(&answer, "label"))
            });
        }
        Command::Keys(KeysCommand::List) => {
            let answer = client.call(Method::GET, "/v1/me/keys", Some(&user_token()?), None).await?.body;
            out.done(&answer, || {
                table(
                    &answer["items"],
                    &[
                        ("id", "id"),
                        ("project", "project_id"),
                        ("template", "template_name"),
                        ("status", "status"),
                        ("expires", "expires_at"),
                    ],
                )
            });
        }
        Command::Keys(KeysCommand::Usage { project, key_id, period, granularity }) => {
            let query = period.query(granularity.as_deref(), None);
            let path = format!("/v1/projects/{}/keys/{}/usage?{query}", seg(project), seg(key_id));
            let answer = client.call(Method::GET, &path, Some(&user_token()?), None).await?.body;
            out.done(&answer, || describe_usage(&answer));
        }
        Command::Keys(KeysCommand::Reroll { project, key_id, grace, show_token }) => {
            let body = grace.map(|g| json!({"grace_seconds": g.as_secs()})).unwrap_or_else(|| json!({}));
            let path = format!("/v1/projects/{}/keys/{}/reroll", seg(project), seg(key_id));
            let mut answer = client.call(Method::POST, &path, Some(&user_token()?), Some(&body)).await?.body;
            let token = answer.as_object_mut().and_then(|o| o.remove("token"));
            if *show_token && let Some(token) = &token {
                answer["token"] = token.clone();
            }
            out.done(&answer, || {
                let mut s = format!(
                    "Rerolled {}: generation {}, the old token works until {}; {} secret(s) updated.",
                    key_id,
                    answer["key"]["generation"],
                    answer["key"]["previous_until"].as_str().unwrap_or("now"),
                    answer["secrets"].as_array().map_or(0, Vec::len)
                );
                if let Some(t) = answer.get("token").and_then(Value::as_str) {
                    s.push_str(&format!("\n{t}"));
                }
                s
            });
        }
        Command::Requests(RequestsCommand::List { project }) => {
            let answer = client
                .call(Method::GET, &format!("/v1/projects/{}/requests", seg(project)), Some(&user_token()?), None)
                .await?
                .body;
            out.done(&answer, || {
                table(
                    &answer["items"],
                    &[
                        ("id", "id"),
                        ("user", "user_email"),
                        ("template", "template_name"),
                        ("status", "status"),
                        ("created", "created_at"),
                    ],
                )
            });
        }
        Command::Requests(RequestsCommand::Approve { project, request }) => {
            let path = format!("/v1/projects/{}/requests/{}/approve", seg(project), seg(request));
            let answer = client.call(Method::POST, &path, Some(&user_token()?), None).await?.body;
            out.done(&answer, || {
                format!(
                    "Approved: key {} issued to {}.",
                    text(&answer["key"], "id"),
                    text(&answer["key"], "user_email")
                )
            });
        }
        Command::Requests(RequestsCommand::Reject { project, request, reason }) => {
            let path = format!("/v1/projects/{}/requests/{}/reject", seg(project), seg(request));
            let body = reason.as_ref().map(|r| json!({"reason": r})).unwrap_or_else(|| json!({}));
            let answer = client.call(Method::POST, &path, Some(&user_token()?), Some(&body)).await?.body;
            out.done(&answer, || format!("Rejected request {request}."));
        }
        Command::Export { project, period, granularity } => {
            let format = if out.json { "jsonl" } else { "csv" };
            let query = period.query(granularity.as_deref(), Some(format));
            let mut next = Some(format!("/v1/projects/{}/usage/export?{query}", seg(project)));
            let token = user_token()?;
            let mut first = true;
            while let Some(page) = next.take() {
                let answer = client.call(Method::GET, &page, Some(&token), None).await?;
                let mut lines = answer.text.lines();
                if format == "csv" && !first {
                    lines.next(); // each page repeats the header
                }
                for line in lines {
                    println!("{line}");
                }
                first = false;
                next = answer.next;
            }
        }
    }
    Ok(())
}

/// How a command prints: keygate's answer as JSON, or a line for a person.
struct Output {
    json: bool,
}

impl Output {
    fn done(&self, answer: &Value, human: impl FnOnce() -> String) {
        if self.json {
            println!("{answer}");
        } else {
            println!("{}", human());
        }
    }
}

/// The API key: the first line of `--key-file`, or `KEYGATE_API_KEY`.
fn api_key(arg: &KeyArg) -> Result<String> {
    let key = match &arg.key_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Failure::Local(format!("cannot read the key file {}: {e}", path.display())))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        None => std::env::var("KEYGATE_API_KEY").unwrap_or_default().trim().to_owned(),
    };
    if key.is_empty() {
        return Err(Failure::Local("no API key: set KEYGATE_API_KEY or give --key-file".into()));
    }
    Ok(key)
}

/// A path segment, percent-encoded (ids are plain, but a typo must not become another path).
fn seg(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

impl Period {
    fn query(&self, granularity: Option<&str>, format: Option<&str>) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("from", self.from.as_deref()),
            ("to", self.to.as_deref()),
            ("granularity", granularity),
            ("format", format),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        q.finish()
    }
}

/// `whoami` for a person.
fn describe_key(k: &Value) -> String {
    let mut lines = vec![
        format!("key        {} ({}, project {})", text(k, "key_id"), text(k, "template_name"), text(k, "project_id")),
        format!("state      {}: {}", text(k, "state"), text(k, "detail")),
    ];
    if let Some(at) = k.get("works_again_at").and_then(Value::as_str) {
        lines.push(format!("works at   {at}"));
    }
    if let Some(p) = k.get("permissions").and_then(Value::as_array) {
        let names: Vec<&str> = p.iter().filter_map(Value::as_str).collect();
        lines.push(format!("may        {}", names.join(", ")));
    }
    if let Some(q) = k.get("quota").filter(|q| q.is_object()) {
        let limit = q["requests"].as_i64().unwrap_or(0) + q["top_up"].as_i64().unwrap_or(0);
        let used = q["used"].as_i64().unwrap_or(0);
        lines.push(format!(
            "quota      {used} of {limit} per {} used, {} left; resets {}",
            text(q, "per"),
            (limit - used).max(0),
            text(q, "resets_at")
        ));
    } else {
        lines.push("quota      none".into());
    }
    lines.push(format!("expires    {}", k.get("expires_at").and_then(Value::as_str).unwrap_or("never")));
    if let Some(until) = k.get("previous_until").and_then(Value::as_str) {
        lines.push(format!("rerolled   the previous token works until {until}"));
    }
    if let Some(t) = k.get("token").filter(|t| t.is_object()) {
        lines.push(format!(
            "narrowed   token {} ({}), expires {}",
            text(t, "token_id"),
            text(t, "label"),
            text(t, "expires_at")
        ));
    }
    lines.join("\n")
}

/// `keys usage` for a person: totals, then one line per label.
fn describe_usage(u: &Value) -> String {
    let total = &u["total"];
    let mut s = format!(
        "{} requests, {} refused, cost {} {}",
        total["requests"],
        total["refused"],
        total["cost"].as_str().map(str::to_owned).unwrap_or_else(|| total["cost"].to_string()),
        text(u, "currency")
    );
    for label in u["by_label"].as_array().into_iter().flatten() {
        let name = label["label"].as_str().filter(|l| !l.is_empty()).unwrap_or("(the key itself)");
        s.push_str(&format!("\n  {name}: {} requests", label["requests"]));
    }
    s
}

/// A plain table of `columns` (heading, field) over `items`.
fn table(items: &Value, columns: &[(&str, &str)]) -> String {
    let cell = |item: &Value, field: &str| match &item[field] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    let rows: Vec<Vec<String>> =
        items.as_array().into_iter().flatten().map(|i| columns.iter().map(|(_, f)| cell(i, f)).collect()).collect();
    if rows.is_empty() {
        return "(none)".into();
    }
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(n, (h, _))| rows.iter().map(|r| r[n].len()).chain([h.len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<&str>| {
        cells.iter().zip(&widths).map(|(c, w)| format!("{c:w$}")).collect::<Vec<_>>().join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(columns.iter().map(|(h, _)| *h).collect())];
    out.extend(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_aligns_its_columns_and_says_none_when_empty() {
        let items = json!([{"id": "k1", "status": "active"}, {"id": "key-22", "status": null}]);
        assert_eq!(table(&items, &[("id", "id"), ("status", "status")]), "id      status\nk1      active\nkey-22  -");
        assert_eq!(table(&json!([]), &[("id", "id")]), "(none)");
    }

    #[test]
    fn a_path_segment_cannot_become_another_path() {
        assert_eq!(seg("../v1/projects"), "..%2Fv1%2Fprojects");
        assert_eq!(seg("a b"), "a%20b");
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
