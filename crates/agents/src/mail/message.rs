//! Turns an [`OutgoingMail`] into a MIME message, the same way for every adapter.

use lettre::Message;
use lettre::message::{MultiPart, SinglePart};

use super::{MailError, OutgoingMail};

/// Builds the MIME message: `multipart/alternative` (text, then HTML) when there is an
/// HTML part, a single `text/plain` part otherwise; the Message-ID is the caller's.
pub(crate) fn build_message(mail: &OutgoingMail) -> Result<Message, MailError> {
    if mail.to.is_empty() {
        return Err(MailError::InvalidMail(format!(
            "mail {} has no recipient",
            mail.message_id
        )));
    }
    let mut builder = Message::builder()
        .message_id(Some(mail.message_id.header_value()))
        .from(mail.from.clone())
        .subject(mail.subject.as_str());
    for recipient in &mail.to {
        builder = builder.to(recipient.clone());
    }
    let built = match &mail.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            html.clone(),
        )),
        None => builder.singlepart(SinglePart::plain(mail.text.clone())),
    };
    built.map_err(|error| MailError::InvalidMail(format!("mail {}: {error}", mail.message_id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::MessageId;

    fn mail(html: Option<&str>) -> OutgoingMail {
        OutgoingMail {
            message_id: MessageId::parse("<abc-1@salesdept.test>").unwrap(),
            from: "Sales Dept <sales@salesdept.test>".parse().unwrap(),
            to: vec!["team@example.com".parse().unwrap()],
            subject: "Hello".to_owned(),
            text: "plain body".to_owned(),
            html: html.map(str::to_owned),
        }
    }

    #[test]
    fn given_an_html_part_when_built_then_the_message_is_multipart_alternative() {
        let formatted =
            String::from_utf8(build_message(&mail(Some("<p>hi</p>"))).unwrap().formatted())
                .unwrap();
        assert!(formatted.contains("Message-ID: <abc-1@salesdept.test>"));
        assert!(formatted.contains("multipart/alternative"));
        assert!(formatted.contains("text/plain"));
        assert!(formatted.contains("text/html"));
    }

    #[test]
    fn given_no_html_when_built_then_the_message_is_plain_text_only() {
        let formatted = String::from_utf8(build_message(&mail(None)).unwrap().formatted()).unwrap();
        assert!(!formatted.contains("multipart"));
        assert!(formatted.contains("text/plain"));
        assert!(formatted.contains("plain body"));
    }

    #[test]
    fn given_no_recipient_when_built_then_the_mail_is_invalid() {
        let mut without_recipient = mail(None);
        without_recipient.to.clear();
        assert!(matches!(
            build_message(&without_recipient),
            Err(MailError::InvalidMail(_))
        ));
    }
}
