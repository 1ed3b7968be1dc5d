//! The quota's promise, checked against a small model of its rule (issue 30): any sequence of
//! template quota edits (set, change, null, day and month), a key's own quota (set, change,
//! null), top-ups, rerolls and calls, with time passing, decides every call exactly as the rule
//! says: a call is allowed when the calls allowed so far in the period of the quota in force are
//! fewer than that quota plus the period's top-up, and refused otherwise. So no period ever
//! allows more than the quota in force when each call was decided, and no call that quota allows
//! is refused. Random sequences, shrunk to the smallest that fails, on any store.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use http::Method;
use keygate::App;
use keygate::authorizer::{Authorizer, Denial};
use keygate::clock::{Clock, ManualClock};
use keygate::ids::KeyId;
use keygate::key::LimitsPatch;
use keygate::service::RerollInput;
use keygate::store::Store;
use keygate::template::{Quota, QuotaPeriod, TemplatePatch};
use keygate::testing::TestApp;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;

use crate::story::{Story, pending_request};

/// One step of a sequence.
#[derive(Clone, Debug)]
pub enum Step {
    /// Calls, one after the other.
    Calls(u8),
    /// The template's quota set, changed or removed.
    TemplateQuota(Option<Quota>),
    /// The key's own quota set, changed or removed (back to the template's).
    KeyQuota(Option<Quota>),
    TopUp(i64),
    /// A new token (no grace): the next calls use it.
    Reroll,
    /// Time passes (minutes), across hours and days.
    Wait(i64),
}

fn quota() -> impl Strategy<Value = Option<Quota>> {
    prop::option::weighted(
        0.8,
        (1i64..12, prop::bool::ANY).prop_map(|(requests, daily)| Quota {
            requests,
            per: if daily { QuotaPeriod::Day } else { QuotaPeriod::Month },
        }),
    )
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1u8..8).prop_map(Step::Calls),
        2 => quota().prop_map(Step::TemplateQuota),
        2 => quota().prop_map(Step::KeyQuota),
        1 => (1i64..5).prop_map(Step::TopUp),
        1 => Just(Step::Reroll),
        2 => prop_oneof![1i64..90, 600i64..1800].prop_map(Step::Wait),
    ]
}

/// Sequences of up to `len` steps.
pub fn steps(len: usize) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 1..len)
}

/// The rule, written plainly: what was allowed when, and the limits as the edits left them.
#[derive(Default)]
struct Model {
    allowed: Vec<DateTime<Utc>>,
    template: Option<Quota>,
    own: Option<Quota>,
    /// (period label, extra calls)
    top_up: Option<(String, i64)>,
}

impl Model {
    fn quota(&self) -> Option<Quota> {
        self.own.or(self.template)
    }

    /// Whether a call at `now` is allowed (and if so, it is counted).
    fn call(&mut self, now: DateTime<Utc>) -> bool {
        let allowed = match self.quota() {
            None => true,
            Some(q) => {
                let window = q.per.window(now);
                let used = self.allowed.iter().filter(|t| **t >= window.start && **t < window.end).count() as i64;
                let extra = self.top_up.as_ref().filter(|(p, _)| *p == window.label).map_or(0, |(_, n)| *n);
                used < q.requests + extra
            }
        };
        if allowed {
            self.allowed.push(now);
        }
        allowed
    }

    fn own_quota(&mut self, quota: Option<Quota>) {
        if quota != self.own {
            self.top_up = None;
        }
        self.own = quota;
    }

    /// A top-up for the present period of the quota in force; refused without one.
    fn top_up(&mut self, extra: i64, now: DateTime<Utc>) -> bool {
        let Some(q) = self.quota() else { return false };
        let label = q.per.window(now).label;
        let before = self.top_up.as_ref().filter(|(p, _)| *p == label).map_or(0, |(_, n)| *n);
        self.top_up = Some((label, before + extra));
        true
    }
}

/// Runs `steps` on a new story on `app` and checks every call against the model.
async fn run(app: &App, authorizer: &Authorizer, clock: &ManualClock, steps: &[Step]) -> Result<(), TestCaseError> {
    let start = Utc.with_ymd_and_hms(2026, 12, 1, 6, 0, 0).unwrap();
    clock.set(start);
    let story = pending_request(app).await;
    let key = app.approve(&story.owner, &story.project, &story.request).await.unwrap().key.id;
    let mut token = app.my_key_token(&story.holder, &key).await.unwrap().token.expose().to_owned();
    let path = format!("/api/projects/{}/data_layers/last", story.project);
    let mut model = Model::default();
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Calls(n) => {
                for call in 0..*n {
                    let now = clock.now();
                    let verdict = authorizer.authorize(&Method::GET, &path, Some(&format!("Bearer {token}"))).await;
                    let allowed = match verdict {
                        Ok(_) => true,
                        Err(Denial::Limited(_)) => false,
                        Err(other) => return Err(TestCaseError::fail(format!("step {i}: refused as {other:?}"))),
                    };
                    let expected = model.call(now);
                    prop_assert_eq!(allowed, expected, "step {}, call {} at {}", i, call, now);
                    clock.set(now + Duration::seconds(1));
                }
            }
            Step::TemplateQuota(quota) => {
                let patch: TemplatePatch = serde_json::from_value(json!({ "quota": quota })).unwrap();
                app.edit_template(&story.owner, &story.project, &story.template, patch, Default::default())
                    .await
                    .unwrap();
                model.template = *quota;
            }
            Step::KeyQuota(quota) => {
                let patch: LimitsPatch = serde_json::from_value(json!({ "quota": quota })).unwrap();
                app.set_key_limits(&story.owner, &story.project, &key, patch).await.unwrap();
                model.own_quota(*quota);
            }
            Step::TopUp(extra) => {
                let patch: LimitsPatch = serde_json::from_value(json!({ "top_up": extra })).unwrap();
                let done = app.set_key_limits(&story.owner, &story.project, &key, patch).await;
                // The clock is now where the top-up took effect.
                prop_assert_eq!(done.is_ok(), model.top_up(*extra, clock.now()), "step {}: top-up {:?}", i, done.err());
            }
            Step::Reroll => {
                let rerolled = app.reroll(&story.holder, &story.project, &key, RerollInput { grace_seconds: Some(0) });
                token = rerolled.await.unwrap().token.expect("the holder gets the new token").expose().to_owned();
            }
            Step::Wait(minutes) => clock.set(clock.now() + Duration::minutes(*minutes)),
        }
    }
    usage_agrees(app, &story, &key, model.allowed.len()).await
}

/// The usage the pages read equals the calls the model allowed.
async fn usage_agrees(app: &App, story: &Story, key: &KeyId, allowed: usize) -> Result<(), TestCaseError> {
    let from = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let period = keygate::usage::Period { from, to: app.now() + Duration::hours(1) };
    let granularity = keygate::usage::Granularity::Day;
    let series = app.key_usage(&story.owner, &story.project, key, period, granularity).await.unwrap();
    let counted = series.totals.requests;
    prop_assert_eq!(counted, allowed as i64, "every allowed call counted once");
    Ok(())
}

/// Runs `cases` random sequences of up to `len` steps, each on a new project of `store`.
pub fn check(store: impl std::future::Future<Output = Arc<dyn Store>>, cases: u32, len: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let t = runtime.block_on(async { TestApp::on(store.await) });
    let TestApp { app, authorizer, clock, .. } = t;
    let mut runner =
        TestRunner::new(Config { cases, max_shrink_iters: 200, failure_persistence: None, ..Config::default() });
    let result = runner.run(&steps(len), |steps| runtime.block_on(run(&app, &authorizer, &clock, &steps)));
    if let Err(e) = result {
        panic!("{e}");
    }
}
