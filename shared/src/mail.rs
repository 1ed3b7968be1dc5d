//! Mail: the four notices of SPEC section 8, the `Mailer` interface, and the mailer that writes
//! `.eml` files (the local gateway's). Delivery guarantees live in `service::outbox`.

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::console::links;
use crate::key::IssuedKey;
use crate::project::Project;
use crate::request::KeyRequest;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
#[error("mail could not be sent: {0}")]
pub struct MailError(pub String);

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;

    /// Whether this mailer sends at all; mail handed to one that does not stays in the outbox.
    fn sends(&self) -> bool {
        true
    }
}

/// The mailer of a function that sends no mail: whatever it is handed stays in the outbox,
/// where the mail-retry function finds and sends it.
pub struct OutboxOnly;

#[async_trait]
impl Mailer for OutboxOnly {
    async fn send(&self, _: &Mail) -> Result<(), MailError> {
        Err(MailError("this function sends no mail; the mail-retry function will".into()))
    }

    fn sends(&self) -> bool {
        false
    }
}

/// Writes each mail as an RFC 5322 `.eml` file (text and HTML alternatives) in a directory.
pub struct FileMailer {
    dir: PathBuf,
    from: String,
}

impl FileMailer {
    pub fn new(dir: PathBuf, from: String) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir, from })
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let id = ulid::Ulid::new();
        let path = self.dir.join(format!("{id}.eml"));
        let tmp = self.dir.join(format!(".{id}.tmp"));
        let eml = to_eml(&self.from, mail, &id.to_string());
        // Written aside, then renamed: a reader never sees half a message.
        tokio::fs::write(&tmp, eml).await.map_err(|e| MailError(e.to_string()))?;
        tokio::fs::rename(&tmp, &path).await.map_err(|e| MailError(e.to_string()))?;
        tracing::info!(to = %mail.to, subject = %mail.subject, file = %path.display(), "mail written");
        Ok(())
    }
}

fn header_value(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).collect();
    if clean.is_ascii() {
        clean
    } else {
        use base64::Engine;
        format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(clean))
    }
}

/// The message as an `.eml` file: multipart/alternative with a text and an HTML part.
pub fn to_eml(from: &str, mail: &Mail, id: &str) -> String {
    let boundary = format!("keygate-{id}");
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{id}@keygate>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n\
         --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{html}\r\n\
         --{boundary}--\r\n",
        from = header_value(from),
        to = header_value(&mail.to),
        subject = header_value(&mail.subject),
        date = Utc::now().to_rfc2822(),
        text = mail.text,
        html = mail.html,
    )
}

pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn html(paragraphs: &[String]) -> String {
    let body: String = paragraphs.iter().map(|p| format!("<p>{}</p>", escape_html(p))).collect();
    format!("<!doctype html><html><body>{body}</body></html>")
}

fn mail(to: &str, subject: String, paragraphs: Vec<String>) -> Mail {
    Mail { to: to.to_owned(), subject, text: paragraphs.join("\n\n"), html: html(&paragraphs) }
}

/// To the project owner: someone asks for a key.
pub fn key_requested(console: &str, project: &Project, request: &KeyRequest) -> Mail {
    let who = match &request.user_name {
        Some(name) => format!("{name} <{}>", request.user_email),
        None => request.user_email.clone(),
    };
    mail(
        &project.owner_email,
        format!("API key request: {} for \"{}\"", who, request.template_name),
        vec![
            format!(
                "{who} (user {}) asks for an API key of the template \"{}\" of your project \"{}\".",
                request.user_id, request.template_name, project.name
            ),
            format!("Review the request in the project's Requests: {}", links::requests(console, &project.id)),
            format!("Or approve it through the API: POST /v1/projects/{}/requests/{}/approve", project.id, request.id),
        ],
    )
}

/// To the requester: the key is ready.
pub fn request_approved(console: &str, project: &Project, request: &KeyRequest, key: &IssuedKey) -> Mail {
    mail(
        &request.user_email,
        format!("Your API key for \"{}\" is ready", request.template_name),
        vec![
            format!("Your request for an API key of \"{}\" in the project \"{}\" was approved. The key id is {}.", request.template_name, project.name, key.id),
            "To use it, import it into the secrets of the project your programs run in: open that project's Secrets section and add the API key, or call POST /v1/projects/{your project}/secrets/import with {\"key_id\": \"...\", \"prefix\": \"project_server\"}.".to_owned(),
            format!("A personal data layer ({}) was created for you. Manage your keys at {}", key.data_layer_id, links::my_keys(console)),
        ],
    )
}

/// To the requester: the request was turned down.
pub fn request_rejected(console: &str, project: &Project, request: &KeyRequest) -> Mail {
    let reason = request.reason.as_deref().filter(|r| !r.is_empty()).unwrap_or("no reason was given");
    mail(
        &request.user_email,
        format!("Your API key request for \"{}\" was rejected", request.template_name),
        vec![
            format!(
                "Your request for an API key of \"{}\" in the project \"{}\" was rejected.",
                request.template_name, project.name
            ),
            format!("Reason: {reason}"),
            format!("You may request a key again: {}", links::project(console, &project.id)),
        ],
    )
}

/// To the holder: the key no longer works.
pub fn key_revoked(console: &str, project: &Project, key: &IssuedKey) -> Mail {
    let when = key.revoked_at.map(|t| t.to_rfc3339()).unwrap_or_default();
    mail(
        &key.user_email,
        format!("Your API key for \"{}\" was revoked", key.template_name),
        vec![
            format!(
                "Your API key {} of \"{}\" in the project \"{}\" was revoked at {when}.",
                key.id, key.template_name, project.name
            ),
            format!("Calls made with it are refused from now on. Your keys: {}", links::my_keys(console)),
        ],
    )
}

/// To the holder, `days` before the key expires.
pub fn key_expires_soon(console: &str, project: &Project, key: &IssuedKey, days: i64) -> Mail {
    let when = key.expires_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default();
    let in_days = if days == 1 { "1 day".to_owned() } else { format!("{days} days") };
    mail(
        &key.user_email,
        format!("Your API key for \"{}\" expires in {in_days}", key.template_name),
        vec![
            format!(
                "Your API key {} of \"{}\" in the project \"{}\" expires at {when} (UTC).",
                key.id, key.template_name, project.name
            ),
            format!(
                "Calls made with it are refused from then on. To keep your programs working, request a new key before then: {}",
                links::project(console, &project.id)
            ),
            format!("Your keys: {}", links::my_keys(console)),
        ],
    )
}

/// When a rerolled key's old token stops working, in words.
fn old_token_until(key: &IssuedKey) -> String {
    match key.previous_until {
        Some(until) => format!(
            "The old token keeps working until {} (UTC); calls made with it after that are refused.",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        None => "The old token stopped working at once.".to_owned(),
    }
}

/// To the holder, and to the owner when someone else: the key has a new token.
pub fn key_rerolled(console: &str, project: &Project, key: &IssuedKey, by: &str, to: &str, secrets: usize) -> Mail {
    let updated = match secrets {
        0 => "It was not imported into any project's secrets.".to_owned(),
        1 => "The one secret it was imported into now holds the new token.".to_owned(),
        n => format!("The {n} secrets it was imported into now hold the new token."),
    };
    mail(
        to,
        format!("The API key {} for \"{}\" has a new token", key.id, key.template_name),
        vec![
            format!(
                "{by} rerolled the API key {} of \"{}\" in the project \"{}\" (held by {}): it has a new token, with the same template, quota and usage.",
                key.id, key.template_name, project.name, key.user_email
            ),
            old_token_until(key),
            updated,
            format!(
                "Programs that hold the token elsewhere need the new one: copy it from {}",
                links::my_keys(console)
            ),
        ],
    )
}

/// To the holder and the owner: the key's token was found in public.
pub fn key_leaked(console: &str, project: &Project, key: &IssuedKey, to: &str, url: &str, action: &str) -> Mail {
    let found = if url.is_empty() { "in public".to_owned() } else { format!("at {url}") };
    mail(
        to,
        format!("The API key {} for \"{}\" was found in public", key.id, key.template_name),
        vec![
            format!(
                "GitHub's secret scanning found the token of the API key {} of \"{}\" in the project \"{}\" (held by {}) {found}.",
                key.id, key.template_name, project.name, key.user_email
            ),
            action.to_owned(),
            format!("Remove the token from where it was published. Your keys: {}", links::my_keys(console)),
        ],
    )
}

/// To the holder: the key has used `percent` % of its quota for the period `label`.
/// To the project owner: keygate disabled an endpoint every delivery to which failed for 3 days.
pub fn webhook_disabled(console: &str, project: &Project, url: &str, since: DateTime<Utc>, last: &str) -> Mail {
    let since = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    mail(
        &project.owner_email,
        format!("A webhook endpoint of \"{}\" was disabled", project.name),
        vec![
            format!(
                "Every delivery to the webhook endpoint at {url} of your project \"{}\" has failed since {since} (UTC), so keygate disabled it: it receives no events until you enable it again.",
                project.name
            ),
            format!("The last attempt: {last}."),
            format!(
                "Once the endpoint answers again, enable it and retry the deliveries it missed: {}",
                links::webhooks(console, &project.id)
            ),
        ],
    )
}

pub fn quota_used(console: &str, key: &IssuedKey, percent: u8, quota: &crate::template::Quota, label: &str) -> Mail {
    let per = match quota.per {
        crate::template::QuotaPeriod::Day => "day (UTC)",
        crate::template::QuotaPeriod::Month => "month (UTC)",
    };
    let what = if percent >= 100 {
        "Further calls are refused with 429 until the next period starts.".to_owned()
    } else {
        "Calls go on working until the quota is used up; then they are refused with 429 until the next period starts."
            .to_owned()
    };
    mail(
        &key.user_email,
        format!("Your API key for \"{}\" has used {percent} % of its quota", key.template_name),
        vec![
            format!(
                "Your API key {} of \"{}\" has used {percent} % of its quota of {} calls per {per} in the period {}.",
                key.id,
                key.template_name,
                quota.requests,
                &label[1..]
            ),
            what,
            format!("Your keys and their usage: {}", links::my_keys(console)),
        ],
    )
}

/// Sends mail through SES v2 `SendEmail`, text and HTML, from a verified sender.
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    from: String,
}

impl SesMailer {
    pub fn new(client: aws_sdk_sesv2::Client, from: String) -> Self {
        Self { client, from }
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
        let content =
            |data: &str| Content::builder().data(data).charset("UTF-8").build().map_err(|e| MailError(e.to_string()));
        let message = Message::builder()
            .subject(content(&mail.subject)?)
            .body(Body::builder().text(content(&mail.text)?).html(content(&mail.html)?).build())
            .build();
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|e| MailError(aws_sdk_sesv2::error::DisplayErrorContext(e).to_string()))?;
        tracing::info!(to = %mail.to, subject = %mail.subject, "mail sent through SES");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_parts_escape_what_users_typed() {
        let m = mail("a@example.com", "s".into(), vec!["<script>alert('x')</script>".into()]);
        assert!(!m.html.contains("<script>"));
        assert!(m.text.contains("<script>"));
    }

    #[test]
    fn headers_cannot_be_injected_and_unicode_is_encoded() {
        let m = Mail {
            to: "a@example.com".into(),
            subject: "Ключ\r\nBcc: x@evil.io".into(),
            text: "t".into(),
            html: "h".into(),
        };
        let eml = to_eml("keygate@example.com", &m, "1");
        assert!(!eml.contains("\r\nBcc:"));
        assert!(eml.contains("Subject: =?UTF-8?B?"));
    }
}
