//! Building blocks for tests: an application on a real SQLite store, a mailer that records what
//! it sends (and can be told to fail), and a clock tests set.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::ManualClock;
use crate::identity::Caller;
use crate::ids::UserId;
use crate::mail::{Mail, MailError, Mailer};
use crate::service::{App, Settings};
use crate::signing::KeyRing;
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

/// Records every mail; fails while `failing` is set.
#[derive(Default)]
pub struct RecordingMailer {
    pub sent: Mutex<Vec<Mail>>,
    pub failing: std::sync::atomic::AtomicBool,
}

impl RecordingMailer {
    pub fn sent(&self) -> Vec<Mail> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(MailError("the mail service is down (test)".into()));
        }
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).push(mail.clone());
        Ok(())
    }
}

pub struct TestApp {
    pub app: App,
    pub mailer: Arc<RecordingMailer>,
    pub clock: Arc<ManualClock>,
}

pub const ISSUER: &str = "https://keygate.test";

impl TestApp {
    /// An application on `store` with a fresh signing key.
    pub fn on(store: Arc<dyn Store>) -> Self {
        let mailer = Arc::new(RecordingMailer::default());
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let keys = KeyRing::new(ISSUER, &KeyRing::generate_pem(), &[]).expect("a generated key loads");
        let app = App {
            store,
            mailer: mailer.clone(),
            keys: Arc::new(keys),
            clock: clock.clone(),
            settings: Settings::default(),
        };
        Self { app, mailer, clock }
    }

    /// An application on a private in-memory SQLite database.
    pub fn new() -> Self {
        Self::on(Arc::new(SqliteStore::in_memory().expect("SQLite opens in memory")))
    }

    pub fn set_time(&self, at: DateTime<Utc>) {
        self.clock.set(at);
    }
}

impl Default for TestApp {
    fn default() -> Self {
        Self::new()
    }
}

pub fn user(id: &str) -> Caller {
    Caller { id: UserId::parse(id).expect("a valid user id"), email: format!("{id}@example.com"), name: None }
}
