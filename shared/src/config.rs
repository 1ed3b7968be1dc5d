//! Configuration from the environment, and the one place that builds the application (its
//! AWS clients, store, mailer and key ring) from it. Missing or bad settings stop start-up with
//! a message that names the setting.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::SystemClock;
use crate::mail::SesMailer;
use crate::service::{App, Settings};
use crate::signing::{KeyRing, PublicJwk};
use crate::store::Deferred;
use crate::store::dynamodb::DynamoStore;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
}

/// What a function does with API keys, which decides the key material it is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUse {
    /// Issues keys and re-creates their tokens: needs the private signing key.
    Sign,
    /// Only verifies keys (the authorizer): needs the signing key's public half alone, so it
    /// never holds the private key and makes no SSM call at start.
    Verify,
}

/// Where the Ed25519 signing key comes from.
#[derive(Clone)]
pub enum SigningKeySource {
    /// The PEM itself (local runs and tests).
    Pem(String),
    /// An SSM Parameter Store SecureString, read once at start.
    SsmParameter(String),
    /// Only the public half (`KeyUse::Verify`): the key ring verifies and signs nothing.
    Public(PublicJwk),
}

impl std::fmt::Debug for SigningKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pem(_) => f.write_str("Pem(<redacted>)"),
            Self::SsmParameter(name) => write!(f, "SsmParameter({name})"),
            Self::Public(jwk) => write!(f, "Public({})", jwk.kid),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub table: String,
    pub dynamodb_endpoint: Option<String>,
    pub ses_endpoint: Option<String>,
    pub mail_from: String,
    pub console_url: String,
    pub issuer: String,
    pub signing_key: SigningKeySource,
    /// The public half of the signing key, as deployed: the authorizer verifies with it, and a
    /// signing function refuses to start when its private key does not match it.
    pub signing_public_key: Option<PublicJwk>,
    pub retired_public_keys: Vec<PublicJwk>,
    pub usage_shards: u32,
    /// How often the authorizer writes the refusals it counted in memory (and on shutdown),
    /// and its figures.
    pub refusal_flush: Duration,
    /// The CloudWatch namespace of the functions' metrics (EMF).
    pub metrics_namespace: String,
    /// The keys leaked-key reports are signed with.
    pub scanning: crate::scanning::ScanningKeys,
    /// The currency of prices and costs ([`CURRENCY`]).
    pub currency: crate::money::Currency,
    pub tls_roots: TlsRoots,
    pub aws_timeouts: AwsTimeouts,
    /// The AWS region, as Lambda gives it to every function (`AWS_REGION`): a Lambda function's
    /// clients take it, and their credentials, from the environment alone. `None`: the SDK's
    /// default chains decide ([`Clients::new`]: keygate-local on a developer's machine, tests).
    pub region: Option<String>,
    pub webhooks: WebhookConfig,
}

/// How a deployment delivers webhooks ([`WEBHOOKS`] and the settings after it).
#[derive(Clone, Debug, Default)]
pub struct WebhookConfig {
    /// Where projects' endpoints may point; `None`: this deployment delivers no webhooks (no
    /// event is queued, and adding an endpoint is refused in words).
    pub policy: Option<crate::webhook::UrlPolicy>,
    /// The deployment's own endpoint (every project's events: the platform listens there).
    pub url: Option<String>,
    /// Where its signing secret is; set when `url` is.
    pub secret: Option<WebhookSecretSource>,
}

/// Where the deployment endpoint's secret (`whsec_…`) comes from.
#[derive(Clone)]
pub enum WebhookSecretSource {
    /// The secret itself (tests).
    Value(crate::secret::SecretValue),
    /// An SSM Parameter Store SecureString, read once when the delivery function starts.
    SsmParameter(String),
}

impl std::fmt::Debug for WebhookSecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(_) => f.write_str("Value(<redacted>)"),
            Self::SsmParameter(name) => write!(f, "SsmParameter({name})"),
        }
    }
}

impl WebhookConfig {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let (on, local) = match get(WEBHOOKS).as_deref() {
            None | Some("false") => (false, false),
            Some("true") => (true, false),
            Some("local") => (true, true),
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: WEBHOOKS,
                    why: format!("'{other}' is not true, false or local"),
                });
            }
        };
        let allowed = match get(WEBHOOK_ALLOWED_NETWORKS) {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| {
                    n.parse::<ipnet::IpNet>().map_err(|_| ConfigError::Invalid {
                        name: WEBHOOK_ALLOWED_NETWORKS,
                        why: format!("'{n}' is not a network (10.1.0.0/16, fd00::/8)"),
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let policy = on.then_some(crate::webhook::UrlPolicy { local, allowed });
        let url = get(WEBHOOK_URL);
        let (url, secret) = match (url, &policy) {
            (None, _) => (None, None),
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    name: WEBHOOK_URL,
                    why: format!("is set while {WEBHOOKS} is not true"),
                });
            }
            (Some(url), Some(policy)) => {
                let checked = policy
                    .check_url(&url)
                    .map_err(|e| ConfigError::Invalid { name: WEBHOOK_URL, why: e.to_string() })?;
                let secret = match (get(WEBHOOK_SECRET), get(WEBHOOK_SECRET_PARAMETER)) {
                    (Some(value), None) => {
                        let value = crate::secret::SecretValue::new(value.trim());
                        crate::webhook::check_secret(&value)
                            .map_err(|why| ConfigError::Invalid { name: WEBHOOK_SECRET, why: why.into() })?;
                        WebhookSecretSource::Value(value)
                    }
                    (None, Some(parameter)) => WebhookSecretSource::SsmParameter(parameter),
                    (Some(_), Some(_)) => {
                        return Err(ConfigError::Invalid {
                            name: WEBHOOK_SECRET,
                            why: format!("set it or {WEBHOOK_SECRET_PARAMETER}, not both"),
                        });
                    }
                    (None, None) => return Err(ConfigError::Missing(WEBHOOK_SECRET_PARAMETER)),
                };
                (Some(checked.to_string()), Some(secret))
            }
        };
        Ok(Self { policy, url, secret })
    }
}

/// How long an AWS call may take before it is given up: a connection that hangs ends in a
/// retry, then in a clear failure (a 503 problem, a denied call) inside the functions' own
/// time limits (5 s for the authorizer, 10 s for the others), instead of a Lambda timeout that
/// API Gateway answers with a bare 500.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AwsTimeouts {
    /// Setting up a connection (DNS, TCP, TLS).
    pub connect: Duration,
    /// One attempt: request sent → whole answer read. The SDK retries reads after it, on a
    /// new connection; a metering write is never retried after it (it may have been applied).
    pub attempt: Duration,
    /// One call, its retries included.
    pub operation: Duration,
}

impl AwsTimeouts {
    /// 2 s: DynamoDB answers in milliseconds and SES in a few hundred, so this leaves ample
    /// room, and an authorizer call (usually one store call, at most three on a cold instance)
    /// ends inside its 5 s unless the store is failing.
    pub const DEFAULT_ATTEMPT: Duration = Duration::from_secs(2);
    /// The attempt timeouts a setting may choose, in milliseconds.
    pub const ATTEMPT_RANGE_MS: std::ops::RangeInclusive<u64> = 100..=60_000;

    /// Attempts of `attempt` each, a connection set up within 1 s (or the attempt, if shorter),
    /// and the whole call, retries included, within twice the attempt.
    pub fn with_attempt(attempt: Duration) -> Self {
        Self { connect: attempt.min(Duration::from_secs(1)), attempt, operation: attempt * 2 }
    }
}

impl Default for AwsTimeouts {
    fn default() -> Self {
        Self::with_attempt(Self::DEFAULT_ATTEMPT)
    }
}

/// Which root certificates the AWS clients trust for HTTPS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsRoots {
    /// Amazon Trust Services' roots alone (`shared/certs/amazon-trust-services.pem`), which sign
    /// every AWS service endpoint. Narrower trust, and parsing five certificates instead of the
    /// system's ~140 takes ~3.5 ms off every cold start (BENCHMARKS.md).
    #[default]
    Amazon,
    /// The system's root certificates: for an HTTPS endpoint signed by another authority.
    System,
}

impl std::str::FromStr for TlsRoots {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "amazon" => Ok(Self::Amazon),
            "system" => Ok(Self::System),
            other => Err(format!("'{other}' is neither 'amazon' nor 'system'")),
        }
    }
}

/// Amazon Trust Services' root certificates (PEM, with a comment naming each one).
pub const AMAZON_TRUST_SERVICES: &str = include_str!("../certs/amazon-trust-services.pem");

pub const TABLE: &str = "KEYGATE_TABLE";
pub const DYNAMODB_ENDPOINT: &str = "KEYGATE_DYNAMODB_ENDPOINT";
pub const SES_ENDPOINT: &str = "KEYGATE_SES_ENDPOINT";
pub const MAIL_FROM: &str = "KEYGATE_MAIL_FROM";
pub const CONSOLE_URL: &str = "KEYGATE_CONSOLE_URL";
pub const ISSUER: &str = "KEYGATE_ISSUER";
pub const SIGNING_KEY: &str = "KEYGATE_SIGNING_KEY";
pub const SIGNING_KEY_PARAMETER: &str = "KEYGATE_SIGNING_KEY_PARAMETER";
pub const SIGNING_PUBLIC_KEY: &str = "KEYGATE_SIGNING_PUBLIC_KEY";
pub const RETIRED_PUBLIC_KEYS: &str = "KEYGATE_RETIRED_PUBLIC_KEYS";
pub const USAGE_SHARDS: &str = "KEYGATE_USAGE_SHARDS";
pub const REFUSAL_FLUSH_SECONDS: &str = "KEYGATE_REFUSAL_FLUSH_SECONDS";
pub const METRICS_NAMESPACE: &str = "KEYGATE_METRICS_NAMESPACE";
/// GitHub's secret-scanning public keys (its `meta/public_keys/secret_scanning` document);
/// unset: leaked-key reports are refused.
pub const SCANNING_KEYS: &str = "KEYGATE_SCANNING_KEYS";
/// The authorizer's default interval between refusal writes: a flood of refusals costs one
/// write per key per interval; an instance that dies loses at most one interval's.
pub const DEFAULT_REFUSAL_FLUSH: Duration = Duration::from_secs(5);
pub const TLS_ROOTS: &str = "KEYGATE_TLS_ROOTS";
/// The ISO 4217 code of the currency prices are in (default EUR), and the number of decimal
/// places of its minor unit, the unit of every price and cost (default 2).
pub const CURRENCY: &str = "KEYGATE_CURRENCY";
pub const CURRENCY_EXPONENT: &str = "KEYGATE_CURRENCY_EXPONENT";
pub const AWS_ATTEMPT_TIMEOUT_MS: &str = "KEYGATE_AWS_ATTEMPT_TIMEOUT_MS";
/// `true`: this deployment delivers webhooks (its changes queue their events, projects may
/// add endpoints); absent or `false`: it does not; `local`: it does, under keygate-local's
/// rules (plain `http` to the loopback allowed too: for functions run on a developer's machine
/// and in tests; the stack does not offer it).
pub const WEBHOOKS: &str = "KEYGATE_WEBHOOKS";
/// Networks (CIDRs, comma-separated) endpoints may point into although they are not public.
pub const WEBHOOK_ALLOWED_NETWORKS: &str = "KEYGATE_WEBHOOK_ALLOWED_NETWORKS";
/// The deployment's own endpoint, which hears every project's events (the delivery function's).
pub const WEBHOOK_URL: &str = "KEYGATE_WEBHOOK_URL";
/// Its secret (`whsec_…`), or the SSM SecureString parameter holding it.
pub const WEBHOOK_SECRET: &str = "KEYGATE_WEBHOOK_SECRET";
pub const WEBHOOK_SECRET_PARAMETER: &str = "KEYGATE_WEBHOOK_SECRET_PARAMETER";
/// Set by Lambda for every function; the credentials come from `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, which Lambda sets too.
pub const AWS_REGION: &str = "AWS_REGION";

fn url(name: &'static str, value: String) -> Result<String, ConfigError> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value)
    } else {
        Err(ConfigError::Invalid { name, why: format!("'{value}' is not an http(s) URL") })
    }
}

pub const OIDC_ISSUER: &str = "KEYGATE_OIDC_ISSUER";
pub const OIDC_CLIENT_ID: &str = "KEYGATE_OIDC_CLIENT_ID";
pub const OIDC_SCOPE: &str = "KEYGATE_OIDC_SCOPE";

/// How the console Lambda's page signs people in: the platform's OpenID Connect provider and
/// the console's client id there. The console needs nothing else (no table, no key, no mail).
pub fn console_sign_in(get: impl Fn(&str) -> Option<String>) -> Result<crate::console::SignIn, ConfigError> {
    let issuer = url(OIDC_ISSUER, get(OIDC_ISSUER).ok_or(ConfigError::Missing(OIDC_ISSUER))?)?;
    let client_id = get(OIDC_CLIENT_ID).ok_or(ConfigError::Missing(OIDC_CLIENT_ID))?;
    let scope = get(OIDC_SCOPE).unwrap_or_else(|| "openid email profile".into());
    if !scope.split_whitespace().any(|s| s == "openid") {
        return Err(ConfigError::Invalid { name: OIDC_SCOPE, why: "must include openid".into() });
    }
    Ok(crate::console::SignIn::Oidc { issuer: issuer.trim_end_matches('/').to_owned(), client_id, scope })
}

/// The deployment's currency ([`CURRENCY`], [`CURRENCY_EXPONENT`]); EUR in cents when unset.
pub fn currency(get: impl Fn(&str) -> Option<String>) -> Result<crate::money::Currency, ConfigError> {
    let exponent = get(CURRENCY_EXPONENT);
    match get(CURRENCY) {
        None if exponent.is_none() => Ok(crate::money::Currency::default()),
        None => Err(ConfigError::Missing(CURRENCY)),
        Some(code) => {
            let exponent = match exponent {
                None => 2,
                Some(e) => crate::money::parse_exponent(e.trim())
                    .map_err(|why| ConfigError::Invalid { name: CURRENCY_EXPONENT, why })?,
            };
            crate::money::Currency::new(code.trim(), exponent)
                .map_err(|why| ConfigError::Invalid { name: CURRENCY, why })
        }
    }
}

/// What the console Lambda's page is told ([`crate::console::ConsoleConfig`]), from the
/// process environment.
pub fn console_config_from_env() -> Result<crate::console::ConsoleConfig, ConfigError> {
    let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    Ok(crate::console::ConsoleConfig { sign_in: console_sign_in(get)?, currency: currency(get)? })
}

impl Config {
    pub fn from_env(key_use: KeyUse) -> Result<Self, ConfigError> {
        Self::from_lookup(key_use, |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Reads the settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(key_use: KeyUse, get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let signing_public_key = match get(SIGNING_PUBLIC_KEY) {
            None => None,
            Some(json) => Some(serde_json::from_str::<PublicJwk>(&json).map_err(|e| ConfigError::Invalid {
                name: SIGNING_PUBLIC_KEY,
                why: format!("not an Ed25519 public JWK: {e}"),
            })?),
        };
        let signing_key = match (key_use, get(SIGNING_KEY), get(SIGNING_KEY_PARAMETER)) {
            (KeyUse::Verify, _, _) => {
                SigningKeySource::Public(signing_public_key.clone().ok_or(ConfigError::Missing(SIGNING_PUBLIC_KEY))?)
            }
            (KeyUse::Sign, Some(pem), None) => SigningKeySource::Pem(pem),
            (KeyUse::Sign, None, Some(parameter)) => SigningKeySource::SsmParameter(parameter),
            (KeyUse::Sign, Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: SIGNING_KEY,
                    why: format!("set it or {SIGNING_KEY_PARAMETER}, not both"),
                });
            }
            (KeyUse::Sign, None, None) => return Err(ConfigError::Missing(SIGNING_KEY_PARAMETER)),
        };
        let retired_public_keys = match get(RETIRED_PUBLIC_KEYS) {
            None => Vec::new(),
            Some(json) => serde_json::from_str(&json).map_err(|e| ConfigError::Invalid {
                name: RETIRED_PUBLIC_KEYS,
                why: format!("not a JSON array of JWKs: {e}"),
            })?,
        };
        let usage_shards = match get(USAGE_SHARDS) {
            None => 1,
            Some(v) => v.parse().ok().filter(|n| (1..=64).contains(n)).ok_or(ConfigError::Invalid {
                name: USAGE_SHARDS,
                why: format!("'{v}' is not a number from 1 to 64"),
            })?,
        };
        let refusal_flush = match get(REFUSAL_FLUSH_SECONDS) {
            None => DEFAULT_REFUSAL_FLUSH,
            Some(v) => v.parse().ok().filter(|n| (0..=300).contains(n)).map(Duration::from_secs).ok_or(
                ConfigError::Invalid {
                    name: REFUSAL_FLUSH_SECONDS,
                    why: format!("'{v}' is not a number of seconds from 0 to 300"),
                },
            )?,
        };
        let tls_roots = match get(TLS_ROOTS) {
            None => TlsRoots::default(),
            Some(v) => v.parse().map_err(|why| ConfigError::Invalid { name: TLS_ROOTS, why })?,
        };
        let aws_timeouts = match get(AWS_ATTEMPT_TIMEOUT_MS) {
            None => AwsTimeouts::default(),
            Some(v) => v
                .parse()
                .ok()
                .filter(|ms| AwsTimeouts::ATTEMPT_RANGE_MS.contains(ms))
                .map(|ms| AwsTimeouts::with_attempt(Duration::from_millis(ms)))
                .ok_or(ConfigError::Invalid {
                    name: AWS_ATTEMPT_TIMEOUT_MS,
                    why: format!("'{v}' is not a number of milliseconds from 100 to 60000"),
                })?,
        };
        let scanning = match get(SCANNING_KEYS) {
            None => Default::default(),
            Some(doc) => crate::scanning::ScanningKeys::from_document(&doc)
                .map_err(|e| ConfigError::Invalid { name: SCANNING_KEYS, why: e.to_string() })?,
        };
        let mail_from = required(MAIL_FROM)?;
        if !crate::project::is_email(&mail_from) {
            return Err(ConfigError::Invalid {
                name: MAIL_FROM,
                why: format!("'{mail_from}' is not an e-mail address"),
            });
        }
        Ok(Self {
            table: required(TABLE)?,
            dynamodb_endpoint: get(DYNAMODB_ENDPOINT).map(|v| url(DYNAMODB_ENDPOINT, v)).transpose()?,
            ses_endpoint: get(SES_ENDPOINT).map(|v| url(SES_ENDPOINT, v)).transpose()?,
            mail_from,
            console_url: url(CONSOLE_URL, required(CONSOLE_URL)?)?,
            issuer: required(ISSUER)?,
            signing_key,
            signing_public_key,
            retired_public_keys,
            usage_shards,
            refusal_flush,
            metrics_namespace: get(METRICS_NAMESPACE).unwrap_or_else(|| crate::figures::NAMESPACE.to_owned()),
            scanning,
            currency: currency(&get)?,
            tls_roots,
            aws_timeouts,
            region: Some(required(AWS_REGION)?),
            webhooks: WebhookConfig::from_lookup(&get)?,
        })
    }
}

/// The AWS clients of a process on a developer's machine (keygate-local, tests), on the SDK's
/// default chains for region and credentials (environment, profile files, SSO, instance
/// metadata). A Lambda function builds its parts with [`LambdaParts`] instead.
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub ses: aws_sdk_sesv2::Client,
}

impl Clients {
    pub async fn new(config: &Config) -> Self {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(https_client(config.tls_roots))
            .timeout_config(timeouts(config.aws_timeouts))
            .load()
            .await;
        Self { dynamodb: dynamodb_client(config, &sdk), ses: ses_client(config, &sdk) }
    }
}

fn timeouts(t: AwsTimeouts) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(t.connect)
        .operation_attempt_timeout(t.attempt)
        .operation_timeout(t.operation)
        .build()
}

/// The parts a Lambda function is built from, each made only when the function asks for it:
/// the authorizer asks for the store and the public key alone, an operation for the store, and
/// for the mailer and the private key only if it sends mail or signs keys ([`Needs`]).
///
/// Region and credentials come from the environment, as Lambda sets it for every function
/// (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), not from
/// `aws_config::defaults()`: its chains (profile files, SSO, web identity through STS,
/// container and instance metadata) are never used in Lambda, yet cost every cold start their
/// set-up and every package their code (docs/benchmarks-history.md, "Package sizes").
pub struct LambdaParts {
    config: Config,
    sdk: aws_config::SdkConfig,
}

impl LambdaParts {
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let region = config.region.clone().ok_or(ConfigError::Missing(AWS_REGION))?;
        let credentials = aws_config::environment::EnvironmentVariableCredentialsProvider::new();
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(credentials))
            .http_client(https_client(config.tls_roots))
            .timeout_config(timeouts(config.aws_timeouts))
            .build();
        Ok(Self { config: config.clone(), sdk })
    }

    /// The DynamoDB store.
    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(dynamodb_client(&self.config, &self.sdk), self.config.table.clone())
    }

    /// The SES mailer.
    pub fn mailer(&self) -> SesMailer {
        SesMailer::new(ses_client(&self.config, &self.sdk), self.config.mail_from.clone())
    }

    /// The key ring that signs: the private key, from the environment or from SSM.
    pub async fn signing_keys(&self) -> Result<KeyRing, ConfigError> {
        let pem = match &self.config.signing_key {
            SigningKeySource::Public(_) => return Err(ConfigError::Missing(SIGNING_KEY_PARAMETER)),
            SigningKeySource::Pem(pem) => pem.clone(),
            SigningKeySource::SsmParameter(name) => ssm_parameter(&self.sdk, name).await?,
        };
        key_ring(&self.config, Some(&pem))
    }

    /// The deployment's webhook endpoint and its secret (read from SSM if the setting names a
    /// parameter); `None` if the deployment has none.
    pub async fn webhook_deployment(&self) -> Result<Option<crate::service::WebhookDeployment>, ConfigError> {
        let hooks = &self.config.webhooks;
        let (Some(url), Some(source)) = (&hooks.url, &hooks.secret) else { return Ok(None) };
        let secret = match source {
            WebhookSecretSource::Value(value) => value.clone(),
            WebhookSecretSource::SsmParameter(name) => {
                let value = crate::secret::SecretValue::new(
                    read_parameter(&self.sdk, WEBHOOK_SECRET_PARAMETER, name).await?.trim(),
                );
                crate::webhook::check_secret(&value).map_err(|why| ConfigError::Invalid {
                    name: WEBHOOK_SECRET_PARAMETER,
                    why: format!("parameter '{name}': {why}"),
                })?;
                value
            }
        };
        Ok(Some(crate::service::WebhookDeployment { url: url.clone(), secrets: vec![secret] }))
    }

    /// The key ring that only verifies: the public key, from the environment.
    pub fn verifying_keys(&self) -> Result<KeyRing, ConfigError> {
        let current = self.config.signing_public_key.as_ref().ok_or(ConfigError::Missing(SIGNING_PUBLIC_KEY))?;
        verify_only(&self.config, current)
    }
}

/// What an operation's function needs beside the store and the public key; the route table
/// says it for each operation, and the function builds nothing else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// It sends mail (SES) once its change is committed.
    pub mail: bool,
    /// It signs keys' tokens, so it holds the private key (read from SSM at start).
    pub signing_key: bool,
}

impl Needs {
    pub const NOTHING: Self = Self { mail: false, signing_key: false };
    pub const MAIL: Self = Self { mail: true, signing_key: false };
    pub const SIGNING_KEY: Self = Self { mail: false, signing_key: true };
    pub const MAIL_AND_SIGNING_KEY: Self = Self { mail: true, signing_key: true };

    /// The key material the function's configuration must name.
    pub fn key_use(self) -> KeyUse {
        if self.signing_key { KeyUse::Sign } else { KeyUse::Verify }
    }
}

fn dynamodb_client(config: &Config, sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(sdk);
    if let Some(endpoint) = &config.dynamodb_endpoint {
        dynamodb = dynamodb.endpoint_url(endpoint);
    }
    aws_sdk_dynamodb::Client::from_conf(dynamodb.build())
}

fn ses_client(config: &Config, sdk: &aws_config::SdkConfig) -> aws_sdk_sesv2::Client {
    let mut ses = aws_sdk_sesv2::config::Builder::from(sdk);
    if let Some(endpoint) = &config.ses_endpoint {
        ses = ses.endpoint_url(endpoint);
    }
    aws_sdk_sesv2::Client::from_conf(ses.build())
}

/// The SDK's own HTTPS client (rustls on aws-lc-rs), trusting `roots`.
fn https_client(roots: TlsRoots) -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let trust = match roots {
        TlsRoots::Amazon => TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES),
        TlsRoots::System => TrustStore::default(),
    };
    // `build` cannot fail: it only wraps the trust store (which is parsed when the first
    // connection is made; a test below makes one with the Amazon bundle).
    let tls = TlsContext::builder().with_trust_store(trust).build().expect("a TLS context from a trust store");
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls)
        .build_https()
}

/// A SecureString parameter's value (the signing key's PEM), read once at start.
async fn ssm_parameter(sdk: &aws_config::SdkConfig, name: &str) -> Result<String, ConfigError> {
    read_parameter(sdk, SIGNING_KEY_PARAMETER, name).await
}

/// A SecureString parameter's value; a failure names `setting`, the setting that named it.
async fn read_parameter(sdk: &aws_config::SdkConfig, setting: &'static str, name: &str) -> Result<String, ConfigError> {
    let ssm = aws_sdk_ssm::Client::new(sdk);
    let out = ssm.get_parameter().name(name).with_decryption(true).send().await.map_err(|e| ConfigError::Invalid {
        name: setting,
        why: format!("cannot read parameter '{name}': {}", aws_sdk_ssm::error::DisplayErrorContext(e)),
    })?;
    let value = out.parameter().and_then(|p| p.value()).map(str::to_owned);
    value.ok_or(ConfigError::Invalid { name: setting, why: format!("parameter '{name}' has no value") })
}

/// A ring that verifies with `current` and the retired keys, and signs nothing.
fn verify_only(config: &Config, current: &PublicJwk) -> Result<KeyRing, ConfigError> {
    KeyRing::verify_only(&config.issuer, current, &config.retired_public_keys)
        .map_err(|e| ConfigError::Invalid { name: SIGNING_PUBLIC_KEY, why: e.to_string() })
}

/// The key ring `config` describes: verify-only from the public key, or from the private key
/// `pem`, which must then match the deployed public key if one is set.
pub fn key_ring(config: &Config, pem: Option<&str>) -> Result<KeyRing, ConfigError> {
    let (pem, current) = match (&config.signing_key, pem) {
        (SigningKeySource::Public(current), _) => return verify_only(config, current),
        (_, Some(pem)) => (pem, &config.signing_public_key),
        (_, None) => return Err(ConfigError::Missing(SIGNING_KEY)),
    };
    let keys = KeyRing::new(&config.issuer, pem, &config.retired_public_keys)
        .map_err(|e| ConfigError::Invalid { name: SIGNING_KEY, why: e.to_string() })?;
    match current {
        Some(deployed) if deployed.x != keys.current_public().x => Err(ConfigError::Invalid {
            name: SIGNING_PUBLIC_KEY,
            why: format!(
                "is not the public half of the signing key (kid {}), so the authorizer would refuse every \
                 key issued: set it to what `keygate-local public-key` prints for the signing key",
                keys.kid()
            ),
        }),
        _ => Ok(keys),
    }
}

/// An operation's application on DynamoDB, as its Lambda function runs it, with what `needs`
/// names and nothing more: a function that sends no mail gets no SES client (should it queue
/// mail after all, the mail stays in the outbox and the mail-retry function sends it), and one
/// that signs nothing gets the public key, not the private one, and makes no SSM call.
/// Logs how long each part of start-up took (`sdk_us`, `key_us`): cold starts are read from it.
pub async fn build_app(config: &Config, needs: Needs) -> Result<App, ConfigError> {
    let started = std::time::Instant::now();
    let parts = LambdaParts::new(config)?;
    let store = Arc::new(parts.store());
    let mailer: Arc<dyn crate::mail::Mailer> =
        if needs.mail { Arc::new(parts.mailer()) } else { Arc::new(crate::mail::OutboxOnly) };
    let sdk = started.elapsed();
    let keys = if needs.signing_key { parts.signing_keys().await? } else { parts.verifying_keys()? };
    let key = started.elapsed() - sdk;
    tracing::info!(sdk_us = sdk.as_micros() as u64, key_us = key.as_micros() as u64, "application built");
    Ok(App::new(
        store,
        mailer,
        Arc::new(keys),
        Arc::new(SystemClock),
        Settings {
            console_url: config.console_url.clone(),
            usage_shards: config.usage_shards,
            scanning: config.scanning.clone(),
            currency: config.currency.clone(),
            // Events are queued when the deployment delivers them (the webhook-delivery function).
            webhook_events: config.webhooks.policy.is_some(),
            webhook_policy: config.webhooks.policy.clone(),
        },
    ))
}

/// The authorizer on DynamoDB, as its Lambda function runs it, with only what it uses: the
/// DynamoDB store and the public key. No SES client, no mailer (its quota notices go through
/// the outbox) and no SSM client (it never holds the private key).
///
/// The store's clients are built when a call first reaches the store ([`Deferred`]): the
/// function asks for its first event at once, and a refused forged key never builds them
/// before its answer (its count's write, after the answer, does).
pub fn build_authorizer(config: &Config) -> Result<crate::authorizer::Authorizer, ConfigError> {
    let started = std::time::Instant::now();
    let parts = LambdaParts::new(config)?;
    let keys = parts.verifying_keys()?;
    let store = Deferred::on_first_use(move || parts.store());
    tracing::info!(start_us = started.elapsed().as_micros() as u64, "authorizer built");
    Ok(crate::authorizer::Authorizer::new(
        Arc::new(store),
        Arc::new(keys),
        Arc::new(SystemClock),
        config.usage_shards,
        config.console_url.clone(),
        Default::default(),
    )
    .counting_refusals(crate::authorizer::Counting::Flushed(config.refusal_flush))
    .with_webhook_events(config.webhooks.policy.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_names_a_missing_or_bad_sign_in_setting() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| (*v).to_owned())
        };
        let err = console_sign_in(env(&[(OIDC_CLIENT_ID, "keygate")])).unwrap_err();
        assert!(err.to_string().contains(OIDC_ISSUER), "{err}");
        let err = console_sign_in(env(&[(OIDC_ISSUER, "id.example.com"), (OIDC_CLIENT_ID, "k")])).unwrap_err();
        assert!(err.to_string().contains("not an http(s) URL"), "{err}");
        let err = console_sign_in(env(&[
            (OIDC_ISSUER, "https://id.example.com"),
            (OIDC_CLIENT_ID, "k"),
            (OIDC_SCOPE, "email"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains(OIDC_SCOPE), "{err}");
        let ok =
            console_sign_in(env(&[(OIDC_ISSUER, "https://id.example.com/realms/p/"), (OIDC_CLIENT_ID, "keygate")]))
                .unwrap();
        match ok {
            crate::console::SignIn::Oidc { issuer, client_id, scope } => {
                assert_eq!(
                    (issuer.as_str(), client_id.as_str(), scope.as_str()),
                    ("https://id.example.com/realms/p", "keygate", "openid email profile")
                );
            }
            other => panic!("{other:?}"),
        }
    }
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    const GOOD: &[(&str, &str)] = &[
        (TABLE, "keygate"),
        (MAIL_FROM, "keys@example.com"),
        (CONSOLE_URL, "https://console.example.com"),
        (ISSUER, "https://keys.example.com"),
        (SIGNING_KEY_PARAMETER, "/keygate/signing-key"),
        (AWS_REGION, "eu-west-1"),
    ];

    #[test]
    fn a_complete_environment_is_read() {
        let c = Config::from_lookup(KeyUse::Sign, lookup(GOOD)).unwrap();
        assert_eq!(c.table, "keygate");
        assert_eq!(c.usage_shards, 1);
        assert_eq!(c.tls_roots, TlsRoots::Amazon);
        assert!(matches!(c.signing_key, SigningKeySource::SsmParameter(_)));
        let mut system = GOOD.to_vec();
        system.push((TLS_ROOTS, "system"));
        assert_eq!(Config::from_lookup(KeyUse::Sign, lookup(&system)).unwrap().tls_roots, TlsRoots::System);
        let d = c.aws_timeouts;
        assert_eq!(
            (d.connect, d.attempt, d.operation),
            (Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(4))
        );
        let mut slow = GOOD.to_vec();
        slow.push((AWS_ATTEMPT_TIMEOUT_MS, "300"));
        let t = Config::from_lookup(KeyUse::Sign, lookup(&slow)).unwrap().aws_timeouts;
        assert_eq!(
            (t.connect, t.attempt, t.operation),
            (Duration::from_millis(300), Duration::from_millis(300), Duration::from_millis(600))
        );
    }

    #[test]
    fn each_missing_or_bad_setting_is_named() {
        for (drop, name) in [
            (TABLE, TABLE),
            (MAIL_FROM, MAIL_FROM),
            (ISSUER, ISSUER),
            (SIGNING_KEY_PARAMETER, SIGNING_KEY_PARAMETER),
            (AWS_REGION, AWS_REGION),
        ] {
            let pairs: Vec<_> = GOOD.iter().copied().filter(|(k, _)| *k != drop).collect();
            let err = Config::from_lookup(KeyUse::Sign, lookup(&pairs)).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        let mut bad = GOOD.to_vec();
        bad.push((USAGE_SHARDS, "0"));
        assert!(Config::from_lookup(KeyUse::Sign, lookup(&bad)).unwrap_err().to_string().contains(USAGE_SHARDS));
        let mut bad = GOOD.to_vec();
        bad.push((DYNAMODB_ENDPOINT, "localhost:8000"));
        assert!(Config::from_lookup(KeyUse::Sign, lookup(&bad)).unwrap_err().to_string().contains(DYNAMODB_ENDPOINT));
        let mut bad = GOOD.to_vec();
        bad.push((TLS_ROOTS, "mozilla"));
        assert!(Config::from_lookup(KeyUse::Sign, lookup(&bad)).unwrap_err().to_string().contains(TLS_ROOTS));
        for value in ["0", "99", "60001", "2s"] {
            let mut bad = GOOD.to_vec();
            bad.push((AWS_ATTEMPT_TIMEOUT_MS, value));
            let err = Config::from_lookup(KeyUse::Sign, lookup(&bad)).unwrap_err().to_string();
            assert!(err.contains(AWS_ATTEMPT_TIMEOUT_MS) && err.contains(value), "{err}");
        }
    }

    fn public_key_of(pem: &str) -> String {
        serde_json::to_string(KeyRing::new("i", pem, &[]).unwrap().current_public()).unwrap()
    }

    #[test]
    fn the_authorizer_needs_the_public_key_alone() {
        let pem = KeyRing::generate_pem();
        let public = public_key_of(&pem);
        // The template gives every function the parameter name; the authorizer ignores it.
        let mut pairs = GOOD.to_vec();
        pairs.push((SIGNING_PUBLIC_KEY, &public));
        let c = Config::from_lookup(KeyUse::Verify, lookup(&pairs)).unwrap();
        assert!(matches!(c.signing_key, SigningKeySource::Public(_)));
        let ring = key_ring(&c, None).unwrap();
        let signer = KeyRing::new(&c.issuer, &pem, &[]).unwrap();
        assert_eq!(ring.kid(), signer.kid());
        assert!(matches!(
            ring.sign(&crate::signing::KeyClaims {
                iss: c.issuer.clone(),
                sub: "ann".into(),
                aud: "project:p".into(),
                jti: "k".into(),
                iat: 0,
                exp: None,
                nbf: None,
                tpl: "t".into(),
                generation: 0,
                narrowed: None,
            }),
            Err(crate::signing::KeyRingError::VerifyOnly)
        ));

        let err = Config::from_lookup(KeyUse::Verify, lookup(GOOD)).unwrap_err();
        assert_eq!(err.to_string(), "KEYGATE_SIGNING_PUBLIC_KEY is not set");
        let mut bad = GOOD.to_vec();
        bad.push((SIGNING_PUBLIC_KEY, "-----BEGIN PRIVATE KEY-----"));
        let err = Config::from_lookup(KeyUse::Verify, lookup(&bad)).unwrap_err().to_string();
        assert!(err.starts_with("KEYGATE_SIGNING_PUBLIC_KEY is invalid: not an Ed25519 public JWK"), "{err}");
        assert!(!err.contains("PRIVATE"), "{err}");
    }

    #[test]
    fn a_signing_key_must_match_the_deployed_public_key() {
        let pem = KeyRing::generate_pem();
        let mut pairs: Vec<_> = GOOD.iter().copied().filter(|(k, _)| *k != SIGNING_KEY_PARAMETER).collect();
        pairs.push((SIGNING_KEY, &pem));
        let c = Config::from_lookup(KeyUse::Sign, lookup(&pairs)).unwrap();
        assert!(key_ring(&c, Some(&pem)).is_ok(), "no public key deployed: nothing to compare");

        let public = public_key_of(&pem);
        let mut matching = pairs.clone();
        matching.push((SIGNING_PUBLIC_KEY, &public));
        let c = Config::from_lookup(KeyUse::Sign, lookup(&matching)).unwrap();
        assert_eq!(key_ring(&c, Some(&pem)).unwrap().current_public(), c.signing_public_key.as_ref().unwrap());

        let other = public_key_of(&KeyRing::generate_pem());
        let mut wrong = pairs.clone();
        wrong.push((SIGNING_PUBLIC_KEY, &other));
        let c = Config::from_lookup(KeyUse::Sign, lookup(&wrong)).unwrap();
        let err = key_ring(&c, Some(&pem)).unwrap_err().to_string();
        assert!(err.starts_with("KEYGATE_SIGNING_PUBLIC_KEY is invalid: is not the public half"), "{err}");
        assert!(!err.contains("PRIVATE KEY"), "{err}");
    }

    #[test]
    fn the_amazon_bundle_holds_the_five_roots() {
        let certs = pem::parse_many(AMAZON_TRUST_SERVICES).unwrap();
        assert_eq!(certs.len(), 5);
        assert!(certs.iter().all(|c| c.tag() == "CERTIFICATE"));
        for name in
            ["Amazon Root CA 1", "Amazon Root CA 2", "Amazon Root CA 3", "Amazon Root CA 4", "Starfield Services"]
        {
            // Each certificate's subject carries its name in the DER.
            assert!(certs.iter().any(|c| c.contents().windows(name.len()).any(|w| w == name.as_bytes())), "{name}");
        }
    }

    /// The trust store is only parsed when the SDK makes its first connection (and a bad
    /// certificate panics there): make one over HTTPS to a server that hangs up.
    #[tokio::test]
    async fn the_sdk_connects_with_the_amazon_trust_store() {
        use aws_sdk_dynamodb::config::{Credentials, Region, retry::RetryConfig};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            drop(socket);
        });
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .endpoint_url(format!("https://127.0.0.1:{port}"))
            .http_client(https_client(TlsRoots::Amazon))
            .build();
        let err = aws_sdk_dynamodb::Client::from_conf(config).list_tables().send().await.unwrap_err();
        assert!(matches!(err, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)), "{err:?}");
        server.await.unwrap();
    }

    #[test]
    fn the_signing_key_never_shows_in_debug_output() {
        let mut pairs: Vec<_> = GOOD.iter().copied().filter(|(k, _)| *k != SIGNING_KEY_PARAMETER).collect();
        pairs.push((SIGNING_KEY, "-----BEGIN PRIVATE KEY-----s3cr3t-pem-body"));
        let c = Config::from_lookup(KeyUse::Sign, lookup(&pairs)).unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t-pem-body"));
    }
}

#[cfg(test)]
mod webhook_tests {
    use super::*;

    fn webhooks(pairs: &[(&str, &str)]) -> Result<WebhookConfig, ConfigError> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        WebhookConfig::from_lookup(&move |k: &str| map.get(k).cloned())
    }

    #[test]
    fn webhooks_are_off_unless_asked_for_and_each_bad_setting_is_named() {
        assert!(webhooks(&[]).unwrap().policy.is_none());
        let on = webhooks(&[(WEBHOOKS, "true"), (WEBHOOK_ALLOWED_NETWORKS, "10.1.0.0/16, fd00::/8")]).unwrap();
        let policy = on.policy.unwrap();
        assert!(!policy.local);
        assert_eq!(policy.allowed.len(), 2);
        assert!(webhooks(&[(WEBHOOKS, "local")]).unwrap().policy.unwrap().local);

        let secret = crate::webhook::new_secret();
        let with_url = webhooks(&[
            (WEBHOOKS, "true"),
            (WEBHOOK_URL, "https://platform.example.com/hooks"),
            (WEBHOOK_SECRET, secret.expose()),
        ])
        .unwrap();
        assert_eq!(with_url.url.as_deref(), Some("https://platform.example.com/hooks"));
        assert!(!format!("{with_url:?}").contains(secret.expose()), "the secret is never printed");

        for (pairs, names, says) in [
            (vec![(WEBHOOKS, "yes")], WEBHOOKS, "not true, false or local"),
            (
                vec![(WEBHOOKS, "true"), (WEBHOOK_ALLOWED_NETWORKS, "10.1.0.0")],
                WEBHOOK_ALLOWED_NETWORKS,
                "not a network",
            ),
            (vec![(WEBHOOK_URL, "https://p.example.com/")], WEBHOOK_URL, "while KEYGATE_WEBHOOKS is not true"),
            (vec![(WEBHOOKS, "true"), (WEBHOOK_URL, "http://p.example.com/")], WEBHOOK_URL, "https"),
            (vec![(WEBHOOKS, "true"), (WEBHOOK_URL, "https://p.example.com/")], WEBHOOK_SECRET_PARAMETER, "not set"),
            (
                vec![(WEBHOOKS, "true"), (WEBHOOK_URL, "https://p.example.com/"), (WEBHOOK_SECRET, "hunter2")],
                WEBHOOK_SECRET,
                "whsec_",
            ),
        ] {
            let e = webhooks(&pairs).unwrap_err().to_string();
            assert!(e.contains(names) && e.contains(says), "{pairs:?}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
