//! keygate: API-key management for a workflow platform.
//!
//! This crate holds everything the Lambda functions and the local gateway share: the domain
//! (projects, templates, requests, keys, secrets, usage) and its rules, the storage interface
//! and its implementations, mail, API-key signing, the authorizer, and the HTTP handlers.

pub mod audit;
pub mod authorizer;
pub mod clock;
pub mod config;
pub mod console;
pub mod error;
pub mod figures;
pub mod http;
pub mod identity;
pub mod ids;
pub mod key;
pub mod limits;
pub mod mail;
pub mod migrate;
pub mod money;
pub mod narrowed;
pub mod permission;
pub mod platform;
pub mod project;
pub mod request;
pub mod scanning;
pub mod secret;
pub mod service;
pub mod signing;
pub mod store;
pub mod template;
pub mod testing;
pub mod usage;
pub mod user_token;
pub mod webhook;
#[cfg(feature = "delivery")]
pub mod webhook_delivery;

pub use error::{Error, Result};
pub use service::App;
