//! `keygate-local`: keygate on one machine with one command. Every route, the same handlers as
//! the Lambda functions, the authorizer in front of the platform API, SQLite for storage and
//! mail written to disk.

mod data_dir;
mod gateway;
mod metrics;
mod oidc;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use keygate::App;
use keygate::clock::SystemClock;
use keygate::config::AwsTimeouts;
use keygate::console::SignIn;
use keygate::mail::FileMailer;
use keygate::service::Settings;
use keygate::signing::KeyRing;
use keygate::store::sqlite::SqliteStore;
use keygate::user_token::UserTokens;

use crate::data_dir::DataDir;
use crate::gateway::{Gateway, Upstream};

#[derive(Parser, Debug)]
#[command(
    name = "keygate-local",
    version = keygate::migrate::VERSION_LINE,
    about = "Runs keygate locally: every route on 127.0.0.1, SQLite, mail to disk"
)]
struct Cli {
    /// Port to listen on (127.0.0.1 only); 0 picks a free one.
    #[arg(long, global = true, default_value_t = 3000, env = "KEYGATE_PORT")]
    port: u16,
    /// Directory holding the database, the signing key, the user-token secret and mail.
    #[arg(long, global = true, default_value = ".keygate", env = "KEYGATE_DATA_DIR")]
    data_dir: PathBuf,
    /// Platform API to forward allowed `/api/projects/...` calls to; without it, allowed calls
    /// are answered with the authorizer's context (echo mode).
    #[arg(long, global = true, env = "KEYGATE_UPSTREAM")]
    upstream: Option<String>,
    /// `iss` of the API keys issued.
    #[arg(long, global = true, default_value = "http://127.0.0.1:3000", env = "KEYGATE_ISSUER")]
    issuer: String,
    /// Console URL used in links in mail [default: the address served, http://127.0.0.1:PORT].
    #[arg(long, global = true, env = "KEYGATE_CONSOLE_URL")]
    console_url: Option<String>,
    /// Sender of mail.
    #[arg(long, global = true, default_value = "keygate@localhost.localdomain", env = "KEYGATE_MAIL_FROM")]
    mail_from: String,
    /// The Ed25519 signing key (PKCS#8 PEM) from this file instead of the data directory's:
    /// gateways that share one table must sign with one key. `KEYGATE_SIGNING_KEY` may hold
    /// the PEM itself.
    #[arg(long, global = true, env = "KEYGATE_SIGNING_KEY_FILE")]
    signing_key_file: Option<PathBuf>,
    /// The secret of local user tokens from this file instead of the data directory's: gateways
    /// that share one table accept each other's tokens with one secret.
    /// `KEYGATE_USER_TOKEN_SECRET` may hold the secret itself.
    #[arg(long, global = true, env = "KEYGATE_USER_TOKEN_SECRET_FILE")]
    user_token_secret_file: Option<PathBuf>,
    /// Store data in this DynamoDB table instead of SQLite (created when missing). Several
    /// gateways may share one table (each with its own --port and --data-dir, and one
    /// --signing-key-file and --user-token-secret-file).
    #[arg(long, global = true, env = "KEYGATE_TABLE")]
    table: Option<String>,
    /// DynamoDB endpoint (an emulator such as moto); AWS's own when absent.
    #[arg(long, global = true, env = "KEYGATE_DYNAMODB_ENDPOINT", requires = "table")]
    dynamodb_endpoint: Option<String>,
    /// Send mail through SES v2 instead of writing files.
    #[arg(long, global = true, env = "KEYGATE_SES")]
    ses: bool,
    /// SES endpoint (an emulator such as moto); AWS's own when absent.
    #[arg(long, global = true, env = "KEYGATE_SES_ENDPOINT", requires = "ses")]
    ses_endpoint: Option<String>,
    /// Spread each key's usage over this many partitions (DynamoDB write scaling).
    #[arg(long, global = true, default_value_t = 1, env = "KEYGATE_USAGE_SHARDS", value_parser = clap::value_parser!(u32).range(1..=64))]
    usage_shards: u32,
    /// Root certificates the AWS clients trust over HTTPS: `amazon` (Amazon Trust Services,
    /// which sign every AWS endpoint) or `system` (for an endpoint signed by another authority).
    #[arg(long, global = true, default_value = "amazon", env = "KEYGATE_TLS_ROOTS")]
    tls_roots: keygate::config::TlsRoots,
    /// Milliseconds one attempt of an AWS call may take before it is given up (a call with its
    /// retries gets twice as long).
    #[arg(long, global = true, default_value_t = AwsTimeouts::DEFAULT_ATTEMPT.as_millis() as u64, env = "KEYGATE_AWS_ATTEMPT_TIMEOUT_MS", value_parser = clap::value_parser!(u64).range(AwsTimeouts::ATTEMPT_RANGE_MS))]
    aws_attempt_timeout_ms: u64,
    /// Sign people in with this OpenID Connect provider instead of the local form: the console
    /// runs the authorization code flow with PKCE, and user tokens are the provider's ID tokens,
    /// checked with its JWKS (read again as its Cache-Control says, hourly by default, and on
    /// an unknown key id at most once a minute).
    #[arg(long, global = true, env = "KEYGATE_OIDC_ISSUER", requires = "oidc_client_id")]
    oidc_issuer: Option<String>,
    /// The console's client id at the provider (the ID tokens' audience).
    #[arg(long, global = true, env = "KEYGATE_OIDC_CLIENT_ID", requires = "oidc_issuer")]
    oidc_client_id: Option<String>,
    /// Another name this gateway answers to (the `Host` of a request), besides 127.0.0.1,
    /// localhost and [::1] on its port; repeat it for several. Any other `Host` is refused, so
    /// a web page cannot reach the open local sign-in through DNS rebinding.
    #[arg(long = "allowed-host", global = true, env = "KEYGATE_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
    /// Accept leaked-key reports (`POST /v1/leaks/github`) signed by the keys of this file:
    /// GitHub's secret scanning public keys document, or one of your own for trials.
    #[arg(long, global = true, env = "KEYGATE_SCANNING_KEYS_FILE")]
    scanning_keys: Option<std::path::PathBuf>,
    /// ISO 4217 code of the currency prices are in: the console and the billing export show
    /// amounts in it (the API keeps integers of its minor unit).
    #[arg(long, global = true, default_value = "EUR", env = "KEYGATE_CURRENCY")]
    currency: String,
    /// Decimal places of the currency's minor unit, the unit of prices (2: cents; 0 for JPY).
    #[arg(long, global = true, default_value_t = 2, env = "KEYGATE_CURRENCY_EXPONENT", value_parser = clap::value_parser!(u8).range(0..=keygate::money::MAX_EXPONENT as i64))]
    currency_exponent: u8,
    /// Send every event of every project (a request made or decided, a key revoked, rerolled or
    /// limited, a template changed, secrets imported) to this URL as a signed webhook (Standard
    /// Webhooks): how the platform itself listens. `https`, or plain `http` to the loopback.
    #[arg(long, global = true, env = "KEYGATE_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// Sign webhooks with the secret (`whsec_…`) in this file instead of the data directory's
    /// `webhook-secret` (made on first start). `KEYGATE_WEBHOOK_SECRET` may hold the secret.
    #[arg(long, global = true, env = "KEYGATE_WEBHOOK_SECRET_FILE", requires = "webhook_url")]
    webhook_secret_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Prints a user token this gateway accepts.
    Token {
        /// User id (the token's `sub`).
        #[arg(long)]
        sub: String,
        /// E-mail address of the user.
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Hours until the token expires.
        #[arg(long, default_value_t = 24)]
        hours: i64,
    },
    /// Prints a new Ed25519 signing key (PKCS#8 PEM) for a deployment; its public JWK (the
    /// `SigningPublicKey` of the deployment) goes to standard error.
    Keygen,
    /// Brings the store (the data directory's database, or --table) to this release's storage
    /// layout, showing its progress; resumes an interrupted migration, and does nothing on a
    /// store that is current. Gateways may go on serving meanwhile.
    Migrate {
        /// Items read per page.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1000))]
        page: u32,
    },
    /// Reads a signing key (PKCS#8 PEM) on standard input and prints its public JWK: the
    /// deployment's `SigningPublicKey`, or an entry of `RetiredPublicKeys` after a rotation.
    PublicKey,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,keygate=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("keygate-local: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn public_jwk(ring: &KeyRing) -> Result<String, String> {
    serde_json::to_string(ring.current_public()).map_err(|e| e.to_string())
}

async fn run(cli: Cli) -> Result<(), String> {
    if let Some(Command::Keygen) = &cli.command {
        let pem = KeyRing::generate_pem();
        let ring = KeyRing::new(&cli.issuer, &pem, &[]).map_err(|e| e.to_string())?;
        print!("{pem}");
        eprintln!("public key (SigningPublicKey): {}", public_jwk(&ring)?);
        return Ok(());
    }
    if let Some(Command::PublicKey) = &cli.command {
        let mut pem = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut pem)
            .map_err(|e| format!("cannot read the signing key on standard input: {e}"))?;
        let ring = KeyRing::new(&cli.issuer, &pem, &[]).map_err(|e| e.to_string())?;
        println!("{}", public_jwk(&ring)?);
        return Ok(());
    }
    let dir = DataDir::open(&cli.data_dir)?;
    if let Some(Command::Migrate { page }) = &cli.command {
        // An existing table only: a misspelt name must not create an empty one.
        if let Some(table) = &cli.table {
            let clients = keygate::config::Clients::new(&aws_config(&cli, "http://127.0.0.1")).await;
            let store = keygate::store::dynamodb::DynamoStore::new(clients.dynamodb, table.clone());
            return migrate(&store, *page as usize).await.map_err(|e| format!("table {table}: {e}"));
        }
        return migrate(store(&cli, &dir, None).await?.as_ref(), *page as usize).await;
    }
    let (users, sign_in, provider_keys) = match (&cli.oidc_issuer, &cli.oidc_client_id) {
        (Some(issuer), Some(client_id)) => {
            let (users, sign_in, keys) = provider(issuer, client_id).await?;
            (users, sign_in, Some(keys))
        }
        _ => {
            let secret = shared_secret(
                cli.user_token_secret_file.as_deref(),
                "KEYGATE_USER_TOKEN_SECRET",
                "--user-token-secret-file",
                || dir.user_token_secret(),
            )?;
            (UserTokens::new(&secret), SignIn::Local, None)
        }
    };
    if let Some(Command::Token { sub, email, name, hours }) = &cli.command {
        if !users.mints() {
            return Err("this gateway checks the identity provider's tokens (--oidc-issuer); sign in there".into());
        }
        let user = keygate::user_token::LocalUser { sub: sub.clone(), email: email.clone(), name: name.clone() };
        if let Err(keygate::Error::Validation(errors)) = user.validate() {
            let lines: Vec<String> = errors.iter().map(|e| format!("--{}: {}", e.field, e.message)).collect();
            return Err(lines.join("; "));
        }
        let token = users.mint(sub, email, user.name(), chrono::Duration::hours(*hours)).map_err(|e| e.to_string())?;
        println!("{token}");
        return Ok(());
    }
    let upstream = match &cli.upstream {
        None => None,
        Some(base) => {
            let url = reqwest::Url::parse(base).map_err(|e| format!("--upstream '{base}' is not a URL: {e}"))?;
            if url.scheme() != "http" {
                return Err(format!("--upstream must be an http:// URL, not {}", url.scheme()));
            }
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| format!("cannot build the upstream client: {e}"))?;
            Some(Upstream { client, base: base.clone() })
        }
    };
    let currency =
        keygate::money::Currency::new(&cli.currency, cli.currency_exponent).map_err(|e| format!("--currency: {e}"))?;
    let signing_key =
        shared_secret(cli.signing_key_file.as_deref(), "KEYGATE_SIGNING_KEY", "--signing-key-file", || {
            dir.signing_key()
        })?;
    let keys = KeyRing::new(&cli.issuer, &signing_key, &[]).map_err(|e| {
        let from = match &cli.signing_key_file {
            Some(file) => file.display().to_string(),
            None if std::env::var_os("KEYGATE_SIGNING_KEY").is_some() => "KEYGATE_SIGNING_KEY".into(),
            None => dir.root.join("signing-key.pem").display().to_string(),
        };
        format!("{from}: {e}")
    })?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, cli.port)))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e} (choose another with --port)", cli.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Links in mail lead to the console actually served (another --port, or 0), unless set.
    let console_url = cli.console_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let clients = match cli.table.is_some() || cli.ses {
        true => Some(keygate::config::Clients::new(&aws_config(&cli, &console_url)).await),
        false => None,
    };
    let store = store(&cli, &dir, clients.as_ref()).await?;
    keygate::migrate::check_at_start(store.as_ref()).await?;
    let webhook = webhook_endpoint(&cli, &dir)?;
    let mut app = App::new(
        store,
        mailer(&cli, &dir, clients.as_ref())?,
        Arc::new(keys),
        Arc::new(SystemClock),
        Settings {
            console_url,
            usage_shards: cli.usage_shards,
            scanning: scanning_keys(&cli)?,
            currency: currency.clone(),
            // Projects may add endpoints of their own: every change queues its event.
            webhook_events: true,
            webhook_policy: Some(local_webhook_policy()),
        },
    );
    let metrics = Arc::new(metrics::Metrics::default());
    let authorizer = keygate::authorizer::Authorizer::beside(&mut app).reporting_to(metrics.clone());
    let gateway = Arc::new(Gateway {
        app,
        authorizer,
        users,
        console: keygate::console::ConsoleConfig { sign_in, currency },
        upstream,
        openapi: serde_json::to_string_pretty(&keygate::http::openapi::document()).unwrap_or_default(),
        hosts: gateway::AllowedHosts::new(addr.port(), &cli.allowed_hosts),
        provider_keys: provider_keys.as_ref().map(|(keys, _)| keys.clone()),
        metrics,
    });
    if let Some((keys, first_refresh)) = provider_keys {
        keys.keep_current(gateway.clone(), first_refresh);
    }
    retry_mail_in_background(gateway.clone());
    deliver_webhooks_in_background(gateway.clone(), webhook);
    print_welcome(&cli, &dir, addr);
    let router = axum::Router::new().fallback(gateway::serve).with_state(gateway.clone());
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| format!("server failed: {e}"))?;
    // Refusals are counted after they are answered: the last ones are written before leaving.
    let flushed = gateway.authorizer.flush_refusals().await;
    tracing::info!(refusals_written = flushed.refusals, "stopped");
    Ok(())
}

/// `keygate-local migrate`: every migration the store still needs, a line per page.
async fn migrate(store: &dyn keygate::store::Store, page: usize) -> Result<(), String> {
    use keygate::migrate::{LAYOUT, Options};
    let mut report = |p: &keygate::migrate::Progress| {
        println!("{} (to layout {}): page {}, {} items read, {} written", p.name, p.to, p.pages, p.scanned, p.written);
    };
    let summary = keygate::migrate::migrate(store, Options { page }, &mut report).await.map_err(|e| e.to_string())?;
    if summary.done.is_empty() {
        println!("the store is at storage layout {LAYOUT}, this release's: nothing to migrate");
    } else {
        println!("the store is now at storage layout {LAYOUT} (it was at {})", summary.from);
    }
    Ok(())
}

/// A secret every gateway on one table shares: from `file`, else the environment variable
/// `var`, else the data directory (created there on first start).
fn shared_secret(
    file: Option<&std::path::Path>,
    var: &str,
    flag: &str,
    from_data_dir: impl FnOnce() -> Result<String, String>,
) -> Result<String, String> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{flag} {}: {e}", file.display()))?;
        return match text.trim() {
            "" => Err(format!("{flag} {}: the file is empty", file.display())),
            _ => Ok(text),
        };
    }
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        Ok(_) => Err(format!("{var} is set but empty")),
        Err(_) => from_data_dir(),
    }
}

/// Reads an OpenID Connect provider's discovery document and JWKS, so that the gateway checks
/// its ID tokens and the console signs people in there; the keys are then kept current
/// (`oidc.rs`), the first time after the returned wait.
async fn provider(
    issuer: &str,
    client_id: &str,
) -> Result<(UserTokens, SignIn, (Arc<oidc::ProviderKeys>, Duration)), String> {
    let issuer = issuer.trim_end_matches('/');
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let get = |url: String| {
        let client = client.clone();
        async move {
            let response = client.get(&url).send().await.map_err(|e| format!("cannot read {url}: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("{url} answered {}", response.status()));
            }
            response.text().await.map_err(|e| format!("cannot read {url}: {e}"))
        }
    };
    let discovery =
        get(format!("{issuer}/.well-known/openid-configuration")).await.map_err(|e| format!("--oidc-issuer: {e}"))?;
    let discovery: serde_json::Value = serde_json::from_str(&discovery)
        .map_err(|e| format!("--oidc-issuer: the discovery document is not JSON: {e}"))?;
    if discovery["issuer"].as_str().map(|i| i.trim_end_matches('/')) != Some(issuer) {
        return Err(format!("--oidc-issuer: the provider calls itself {}, not {issuer}", discovery["issuer"]));
    }
    let jwks_uri = discovery["jwks_uri"].as_str().ok_or("--oidc-issuer: the discovery document has no jwks_uri")?;
    let keys = Arc::new(oidc::ProviderKeys::new(client.clone(), jwks_uri.to_owned()));
    let (jwks, first_refresh) = keys.read().await.map_err(|e| format!("--oidc-issuer: {e}"))?;
    let users =
        UserTokens::from_provider(issuer, &[client_id.to_owned()], &jwks).map_err(|e| format!("--oidc-issuer: {e}"))?;
    tracing::info!(issuer, client_id, "user tokens are the identity provider's ID tokens");
    let sign_in = SignIn::Oidc {
        issuer: issuer.to_owned(),
        client_id: client_id.to_owned(),
        scope: "openid email profile".into(),
    };
    Ok((users, sign_in, (keys, first_refresh)))
}

/// The keys leaked-key reports must be signed with (`--scanning-keys`), none by default.
fn scanning_keys(cli: &Cli) -> Result<keygate::scanning::ScanningKeys, String> {
    let Some(path) = &cli.scanning_keys else { return Ok(Default::default()) };
    let doc = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    keygate::scanning::ScanningKeys::from_document(&doc).map_err(|e| format!("{}: {e}", path.display()))
}

/// The config the AWS clients are built from (the same code path as the Lambda functions).
fn aws_config(cli: &Cli, console_url: &str) -> keygate::config::Config {
    keygate::config::Config {
        table: cli.table.clone().unwrap_or_default(),
        dynamodb_endpoint: cli.dynamodb_endpoint.clone(),
        ses_endpoint: cli.ses_endpoint.clone(),
        mail_from: cli.mail_from.clone(),
        console_url: console_url.to_owned(),
        issuer: cli.issuer.clone(),
        signing_key: keygate::config::SigningKeySource::Pem(String::new()),
        signing_public_key: None,
        retired_public_keys: Vec::new(),
        usage_shards: cli.usage_shards,
        refusal_flush: keygate::config::DEFAULT_REFUSAL_FLUSH,
        metrics_namespace: keygate::figures::NAMESPACE.into(),
        scanning: Default::default(),
        currency: Default::default(),
        tls_roots: cli.tls_roots,
        aws_timeouts: AwsTimeouts::with_attempt(Duration::from_millis(cli.aws_attempt_timeout_ms)),
        region: None,
        // keygate-local's webhooks are set up by its own options, not through this config.
        webhooks: Default::default(),
    }
}

async fn store(
    cli: &Cli,
    dir: &DataDir,
    clients: Option<&keygate::config::Clients>,
) -> Result<Arc<dyn keygate::store::Store>, String> {
    match (&cli.table, clients) {
        (Some(table), Some(clients)) => {
            let store = keygate::store::dynamodb::DynamoStore::new(clients.dynamodb.clone(), table.clone());
            store.ensure_table().await.map_err(|e| {
                let why = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default();
                format!("cannot reach DynamoDB table {table}: {e} ({why})")
            })?;
            tracing::info!(table, endpoint = ?cli.dynamodb_endpoint, "storing in DynamoDB");
            Ok(Arc::new(store))
        }
        _ => Ok(Arc::new(SqliteStore::open(&dir.database()).map_err(|e| {
            let why = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default();
            let hint = if why.contains("locked") {
                " (is another keygate-local running on this data directory? Stop it, or pass another --data-dir)"
            } else {
                ""
            };
            format!("cannot open the database {}: {why}{hint}", dir.database().display())
        })?)),
    }
}

fn mailer(
    cli: &Cli,
    dir: &DataDir,
    clients: Option<&keygate::config::Clients>,
) -> Result<Arc<dyn keygate::mail::Mailer>, String> {
    if let (true, Some(clients)) = (cli.ses, clients) {
        tracing::info!(endpoint = ?cli.ses_endpoint, from = %cli.mail_from, "sending mail through SES");
        return Ok(Arc::new(keygate::mail::SesMailer::new(clients.ses.clone(), cli.mail_from.clone())));
    }
    Ok(Arc::new(
        FileMailer::new(dir.mail(), cli.mail_from.clone())
            .map_err(|e| format!("cannot create the mail directory {}: {e}", dir.mail().display()))?,
    ))
}

/// Sends mail that could not be sent when its operation ran.
fn retry_mail_in_background(gateway: Arc<Gateway>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        loop {
            tick.tick().await;
            match gateway.app.retry_reporting(gateway.metrics.as_ref()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sent = n, "pending mail sent"),
                Err(e) => tracing::warn!(error = %e, "pending mail retry failed"),
            }
        }
    });
}

/// The deployment's webhook endpoint of `--webhook-url`, checked as keygate-local's rules
/// allow (`https`, or `http` to the loopback), with its secret.
fn webhook_endpoint(cli: &Cli, dir: &DataDir) -> Result<Option<keygate::service::WebhookDeployment>, String> {
    let Some(url) = &cli.webhook_url else { return Ok(None) };
    local_webhook_policy().check_url(url).map_err(|e| format!("--webhook-url {url}: {}", problem_words(&e)))?;
    let secret =
        shared_secret(cli.webhook_secret_file.as_deref(), "KEYGATE_WEBHOOK_SECRET", "--webhook-secret-file", || {
            dir.webhook_secret()
        })?;
    let secret = keygate::secret::SecretValue::new(secret.trim());
    keygate::webhook::check_secret(&secret).map_err(|why| format!("{why} (delete it to have a new one made)"))?;
    Ok(Some(keygate::service::WebhookDeployment { url: url.clone(), secrets: vec![secret] }))
}

fn local_webhook_policy() -> keygate::webhook::UrlPolicy {
    keygate::webhook::UrlPolicy { local: true, ..Default::default() }
}

/// A validation problem's words without its field name.
fn problem_words(e: &keygate::Error) -> String {
    match e {
        keygate::Error::Validation(errors) => errors.iter().map(|f| f.message.clone()).collect::<Vec<_>>().join("; "),
        other => other.to_string(),
    }
}

/// Delivers the queued webhook events a few times a second, to the deployment's endpoint and
/// the projects' own: an event reaches an endpoint within a second of its change when the
/// endpoint answers.
fn deliver_webhooks_in_background(gateway: Arc<Gateway>, deployment: Option<keygate::service::WebhookDeployment>) {
    tokio::spawn(async move {
        let sender = keygate::webhook_delivery::Sender::new(local_webhook_policy());
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match gateway.app.deliver_webhooks(&sender, deployment.as_ref()).await {
                Ok(round) => {
                    round.report(gateway.metrics.as_ref());
                    if !round.is_idle() {
                        tracing::debug!(?round, "webhooks");
                    }
                }
                Err(e) => {
                    keygate::figures::Figures::store_error(gateway.metrics.as_ref());
                    tracing::warn!(error = %e, "webhook delivery round failed");
                }
            }
        }
    });
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn print_welcome(cli: &Cli, dir: &DataDir, addr: SocketAddr) {
    let url = format!("http://{addr}");
    let data = dir.root.display();
    let storage = match &cli.table {
        Some(table) => format!("DynamoDB table {table}"),
        None => "database keygate.db".into(),
    };
    let mail = if cli.ses { "mail through SES".to_owned() } else { format!("mail in {data}/mail") };
    let sign_in = match &cli.oidc_issuer {
        Some(issuer) => format!("sign in with {issuer}"),
        None => "sign in with any user id and e-mail: this is a local gateway".into(),
    };
    let webhooks = match &cli.webhook_url {
        Some(u) => format!(
            "\n  webhooks        every event to {u}, signed with {}",
            match (&cli.webhook_secret_file, std::env::var_os("KEYGATE_WEBHOOK_SECRET")) {
                (Some(f), _) => f.display().to_string(),
                (None, Some(_)) => "KEYGATE_WEBHOOK_SECRET".into(),
                (None, None) => format!("{data}/webhook-secret"),
            }
        ),
        None => String::new(),
    };
    let mode = match &cli.upstream {
        Some(u) => format!("forwarded to {u}"),
        None => "echo mode: allowed calls answer 200 with the authorizer context".into(),
    };
    println!(
        "keygate-local listening on {url}
  release         keygate {}, storage layout {}
  data directory  {data} ({storage}, {mail})
  platform API    {url}/api/projects/{{project}}/... ({mode})
  OpenAPI         {url}/openapi.json
  metrics         {url}/metrics (decisions by outcome, latencies, store errors, mail, webhooks; Prometheus text){webhooks}

Open the console: {url}/  ({sign_in})

Or drive the API with curl:
  TOKEN=$(cargo run -q --release -p keygate-local -- --data-dir {data} token --sub ann --email ann@example.com)
  curl -s -X POST {url}/v1/projects -H \"Authorization: Bearer $TOKEN\" \\
       -H 'Content-Type: application/json' -d '{{\"name\": \"Weather\"}}'
Or the command line (cargo install --locked --path cli):
  keygate --url {url} login --user ann --email ann@example.com
The README walks through the whole story (templates, requests, approval, import, calls, usage).
Stop with Ctrl-C.",
        keygate::migrate::VERSION_LINE,
        keygate::migrate::LAYOUT
    );
}
