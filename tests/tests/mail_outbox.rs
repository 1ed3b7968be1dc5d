//! Mail never undoes a state change and is never lost: when the mail service fails, the
//! approval stands, the answer says the mail is pending, and it is delivered once the service
//! is back.

use chrono::Duration;
use keygate::service::Notification;
use keygate::testing::TestApp;
use keygate_tests::story::pending_request;

#[tokio::test]
async fn an_approval_stands_when_mail_fails_and_the_mail_follows_later() {
    let t = TestApp::new();
    let story = pending_request(&t.app).await;
    t.mailer.set_failing(true);
    let approval = t.app.approve(&story.owner, &story.project, &story.request).await.unwrap();
    assert_eq!(approval.notification, Notification::Pending);
    let keys = t.app.my_keys(&story.holder, &Default::default()).await.unwrap();
    assert_eq!(keys.items.len(), 1, "the key was issued although mail failed");
    assert!(t.mailer.sent().iter().all(|m| m.to != story.holder.email));

    // Still down: retries leave the mail in place.
    t.set_time(t.app.now() + Duration::minutes(1));
    assert_eq!(t.app.retry_pending().await.unwrap(), 0);

    t.mailer.set_failing(false);
    assert_eq!(t.app.retry_pending().await.unwrap(), 1);
    let to_holder: Vec<_> = t.mailer.sent().into_iter().filter(|m| m.to == story.holder.email).collect();
    assert_eq!(to_holder.len(), 1);
    assert!(to_holder[0].subject.contains("ready"));
    assert_eq!(t.app.retry_pending().await.unwrap(), 0, "sent once, not again");
}

#[tokio::test]
async fn fresh_pending_mail_is_left_to_its_request_for_a_grace_period() {
    let t = TestApp::new();
    let story = pending_request(&t.app).await;
    t.mailer.set_failing(true);
    t.app.approve(&story.owner, &story.project, &story.request).await.unwrap();
    t.mailer.set_failing(false);
    assert_eq!(t.app.retry_pending().await.unwrap(), 0, "not retried within the grace period");
}
