//! The SES v2 mailer against the SES-compatible endpoint, read back from the endpoint.

use keygate::mail::{Mail, Mailer, SesMailer};
use keygate_tests::{aws, require_aws};

#[tokio::test]
async fn mail_sent_through_ses_arrives_with_subject_and_body() {
    let Some(endpoint) = require_aws!() else { return };
    aws::verify_sender(&endpoint).await;
    let mailer = SesMailer::new(aws::clients(&endpoint).await.ses, aws::MAIL_FROM.into());
    let to = format!("{}@example.com", keygate::ids::EventId::generate().as_str().to_lowercase());
    let mail = Mail {
        to: to.clone(),
        subject: "Your API key is ready".into(),
        text: "plain".into(),
        html: "<p>Key 42 is ready</p>".into(),
    };
    mailer.send(&mail).await.unwrap();
    let got: Vec<String> =
        aws::sent_mail(&endpoint).await.into_iter().filter(|m| m.starts_with(&format!("To: {to}\r\n"))).collect();
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("Subject: Your API key is ready"));
    assert!(got[0].contains("Key 42 is ready"));
    assert!(got[0].contains(&format!("From: {}", aws::MAIL_FROM)));
}

#[tokio::test]
async fn an_unverified_sender_is_an_error_not_a_silent_loss() {
    let Some(endpoint) = require_aws!() else { return };
    let mailer = SesMailer::new(aws::clients(&endpoint).await.ses, "nobody@unverified.example.org".into());
    let mail = Mail { to: "x@example.com".into(), subject: "s".into(), text: "t".into(), html: "h".into() };
    assert!(mailer.send(&mail).await.is_err());
}
