//! Configuration from the environment, and the one place that builds the application (its
//! AWS clients, store, mailer and key ring) from it. Missing or bad settings stop start-up with
//! a message that names the setting.

use std::sync::Arc;

use crate::clock::SystemClock;
use crate::mail::SesMailer;
use crate::service::{App, Settings};
use crate::signing::{KeyRing, PublicJwk};
use crate::store::dynamodb::DynamoStore;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
}

/// Where the Ed25519 signing key (PKCS#8 PEM) comes from.
#[derive(Clone)]
pub enum SigningKeySource {
    /// The PEM itself (local runs and tests).
    Pem(String),
    /// An SSM Parameter Store SecureString, read once at start.
    SsmParameter(String),
}

impl std::fmt::Debug for SigningKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pem(_) => f.write_str("Pem(<redacted>)"),
            Self::SsmParameter(name) => write!(f, "SsmParameter({name})"),
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
    pub retired_public_keys: Vec<PublicJwk>,
    pub usage_shards: u32,
}

pub const TABLE: &str = "KEYGATE_TABLE";
pub const DYNAMODB_ENDPOINT: &str = "KEYGATE_DYNAMODB_ENDPOINT";
pub const SES_ENDPOINT: &str = "KEYGATE_SES_ENDPOINT";
pub const MAIL_FROM: &str = "KEYGATE_MAIL_FROM";
pub const CONSOLE_URL: &str = "KEYGATE_CONSOLE_URL";
pub const ISSUER: &str = "KEYGATE_ISSUER";
pub const SIGNING_KEY: &str = "KEYGATE_SIGNING_KEY";
pub const SIGNING_KEY_PARAMETER: &str = "KEYGATE_SIGNING_KEY_PARAMETER";
pub const RETIRED_PUBLIC_KEYS: &str = "KEYGATE_RETIRED_PUBLIC_KEYS";
pub const USAGE_SHARDS: &str = "KEYGATE_USAGE_SHARDS";

fn url(name: &'static str, value: String) -> Result<String, ConfigError> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value)
    } else {
        Err(ConfigError::Invalid { name, why: format!("'{value}' is not an http(s) URL") })
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Reads the settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let signing_key = match (get(SIGNING_KEY), get(SIGNING_KEY_PARAMETER)) {
            (Some(pem), None) => SigningKeySource::Pem(pem),
            (None, Some(parameter)) => SigningKeySource::SsmParameter(parameter),
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: SIGNING_KEY,
                    why: format!("set it or {SIGNING_KEY_PARAMETER}, not both"),
                });
            }
            (None, None) => return Err(ConfigError::Missing(SIGNING_KEY_PARAMETER)),
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
            retired_public_keys,
            usage_shards,
        })
    }
}

/// The AWS clients of one process, built once from one shared SDK configuration.
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub ses: aws_sdk_sesv2::Client,
    pub sdk: aws_config::SdkConfig,
}

impl Clients {
    pub async fn new(config: &Config) -> Self {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(&sdk);
        if let Some(endpoint) = &config.dynamodb_endpoint {
            dynamodb = dynamodb.endpoint_url(endpoint);
        }
        let mut ses = aws_sdk_sesv2::config::Builder::from(&sdk);
        if let Some(endpoint) = &config.ses_endpoint {
            ses = ses.endpoint_url(endpoint);
        }
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
            ses: aws_sdk_sesv2::Client::from_conf(ses.build()),
            sdk,
        }
    }
}

async fn signing_pem(config: &Config, clients: &Clients) -> Result<String, ConfigError> {
    match &config.signing_key {
        SigningKeySource::Pem(pem) => Ok(pem.clone()),
        SigningKeySource::SsmParameter(name) => {
            let ssm = aws_sdk_ssm::Client::new(&clients.sdk);
            let out = ssm.get_parameter().name(name).with_decryption(true).send().await.map_err(|e| {
                ConfigError::Invalid {
                    name: SIGNING_KEY_PARAMETER,
                    why: format!("cannot read parameter '{name}': {}", aws_sdk_ssm::error::DisplayErrorContext(e)),
                }
            })?;
            out.parameter().and_then(|p| p.value()).map(str::to_owned).ok_or(ConfigError::Invalid {
                name: SIGNING_KEY_PARAMETER,
                why: format!("parameter '{name}' has no value"),
            })
        }
    }
}

/// The application on DynamoDB and SES, as every Lambda function runs it.
/// Logs how long each part of start-up took (`sdk_us`, `key_us`): cold starts are read from it.
pub async fn build_app(config: &Config) -> Result<App, ConfigError> {
    let started = std::time::Instant::now();
    let clients = Clients::new(config).await;
    let sdk = started.elapsed();
    let pem = signing_pem(config, &clients).await?;
    let keys = KeyRing::new(&config.issuer, &pem, &config.retired_public_keys)
        .map_err(|e| ConfigError::Invalid { name: SIGNING_KEY, why: e.to_string() })?;
    let key = started.elapsed() - sdk;
    tracing::info!(sdk_us = sdk.as_micros() as u64, key_us = key.as_micros() as u64, "application built");
    Ok(App::new(
        Arc::new(DynamoStore::new(clients.dynamodb, config.table.clone())),
        Arc::new(SesMailer::new(clients.ses, config.mail_from.clone())),
        Arc::new(keys),
        Arc::new(SystemClock),
        Settings { console_url: config.console_url.clone(), usage_shards: config.usage_shards },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
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
    ];

    #[test]
    fn a_complete_environment_is_read() {
        let c = Config::from_lookup(lookup(GOOD)).unwrap();
        assert_eq!(c.table, "keygate");
        assert_eq!(c.usage_shards, 1);
        assert!(matches!(c.signing_key, SigningKeySource::SsmParameter(_)));
    }

    #[test]
    fn each_missing_or_bad_setting_is_named() {
        for (drop, name) in
            [(TABLE, TABLE), (MAIL_FROM, MAIL_FROM), (ISSUER, ISSUER), (SIGNING_KEY_PARAMETER, SIGNING_KEY_PARAMETER)]
        {
            let pairs: Vec<_> = GOOD.iter().copied().filter(|(k, _)| *k != drop).collect();
            let err = Config::from_lookup(lookup(&pairs)).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        let mut bad = GOOD.to_vec();
        bad.push((USAGE_SHARDS, "0"));
        assert!(Config::from_lookup(lookup(&bad)).unwrap_err().to_string().contains(USAGE_SHARDS));
        let mut bad = GOOD.to_vec();
        bad.push((DYNAMODB_ENDPOINT, "localhost:8000"));
        assert!(Config::from_lookup(lookup(&bad)).unwrap_err().to_string().contains(DYNAMODB_ENDPOINT));
    }

    #[test]
    fn the_signing_key_never_shows_in_debug_output() {
        let mut pairs: Vec<_> = GOOD.iter().copied().filter(|(k, _)| *k != SIGNING_KEY_PARAMETER).collect();
        pairs.push((SIGNING_KEY, "-----BEGIN PRIVATE KEY-----secret"));
        let c = Config::from_lookup(lookup(&pairs)).unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }
}
