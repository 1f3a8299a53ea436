//! Outgoing mail: templates, and delivery over SMTP (or to the log when no relay
//! is configured).

use donkies_domain::ExposeSecret;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use donkies_store::outbox::Mail;

use crate::config::Settings;

/// A rendered message, ready for the outbox.
pub struct Rendered {
    pub template: &'static str,
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn render(
    template: &'static str,
    subject: &str,
    greeting_name: &str,
    lines: &[&str],
    link: &str,
    action: &str,
) -> Rendered {
    let text = format!("Hi {greeting_name},\n\n{}\n\n{action}: {link}\n\nThe Donkies team\n", lines.join("\n"));
    let paragraphs: String = lines.iter().map(|l| format!("<p>{}</p>", escape(l))).collect();
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\">\
         <p>Hi {name},</p>{paragraphs}<p><a href=\"{href}\">{action}</a></p>\
         <p style=\"color:#777\">If the button does not work, paste this address into your browser:<br>{href}</p>\
         <p>The Donkies team</p></body></html>",
        name = escape(greeting_name),
        href = escape(link),
        action = escape(action),
    );
    Rendered { template, subject: subject.to_owned(), text, html }
}

pub fn signup_confirmation(first_name: &str, link: &str) -> Rendered {
    render(
        "signup_confirmation",
        "Confirm your Donkies registration",
        first_name,
        &["Thanks for signing up for Donkies. Please confirm your email address to finish your registration."],
        link,
        "Confirm your email",
    )
}

pub fn password_reset(first_name: &str, link: &str, minutes: i64) -> Rendered {
    render(
        "password_reset",
        "Reset your Donkies password",
        first_name,
        &[
            "Someone asked to reset the password of your Donkies account.",
            &format!("The link works once and expires in {minutes} minutes. If it was not you, ignore this email."),
        ],
        link,
        "Choose a new password",
    )
}

pub fn email_change(first_name: &str, link: &str, minutes: i64) -> Rendered {
    render(
        "email_change",
        "Confirm your new Donkies email address",
        first_name,
        &[
            "Please confirm that this is the new email address of your Donkies account.",
            &format!("The link expires in {minutes} minutes."),
        ],
        link,
        "Confirm the new address",
    )
}

/// A notice about the user's payments (customer, bank or transfer news).
pub fn payment_notice(template: &'static str, subject: &str, first_name: &str, line: &str, link: &str) -> Rendered {
    render(template, subject, first_name, &[line], link, "See your accounts")
}

/// Where mail goes.
#[derive(Clone)]
pub enum Mailer {
    /// No relay configured: the message is written to the log and stays in the outbox.
    Log,
    Smtp {
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
    },
}

impl Mailer {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Mailer> {
        let Some(url) = &settings.smtp_url else {
            return Ok(Mailer::Log);
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
            .map_err(|e| anyhow::anyhow!("DONKIES_SMTP_URL: {e}"))?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        Ok(Mailer::Smtp { transport: Box::new(transport), from: settings.mail_from.clone() })
    }

    /// Deliver one outbox message; an error means "try again later".
    pub async fn deliver(&self, mail: &Mail) -> anyhow::Result<()> {
        match self {
            Mailer::Log => {
                tracing::info!(
                    to = %mail.to_address,
                    subject = %mail.subject,
                    "mail (no SMTP relay configured; kept in the outbox):\n{}",
                    mail.text_body
                );
                Ok(())
            }
            Mailer::Smtp { transport, from } => {
                let to: Mailbox = mail.to_address.parse()?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(&mail.subject)
                    .message_id(Some(format!("<{}@donkies>", mail.id)))
                    .multipart(MultiPart::alternative_plain_html(mail.text_body.clone(), mail.html_body.clone()))?;
                transport.send(message).await?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_carry_the_link_in_both_parts_and_escape_html() {
        let m = signup_confirmation("<Ada>", "http://f/confirm?id=1&token=2");
        assert!(m.text.contains("http://f/confirm?id=1&token=2"));
        assert!(m.html.contains("http://f/confirm?id=1&amp;token=2"));
        assert!(m.html.contains("&lt;Ada&gt;"));
        assert!(!m.html.contains("<Ada>"));
        assert!(password_reset("Ada", "L", 60).text.contains("60 minutes"));
        assert_eq!(email_change("Ada", "L", 5).template, "email_change");
    }
}
