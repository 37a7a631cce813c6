//! The mail port: positive-reply notifications and the daily report, sent to humans.
//!
//! Two adapters implement [`MailPort`]: [`SmtpMailer`] relays through an SMTP server
//! (plain, STARTTLS or implicit TLS, optional authentication, a connection pool) and
//! [`FileOutbox`], the embedded default, writes one `.eml` file per mail into a directory.
//!
//! Every mail carries a caller-supplied [`MessageId`] derived from the event that caused
//! it, so a retry after a crash produces the same Message-ID: the outbox writes it once,
//! and a relayed duplicate can be recognised (and deduplicated) by any receiving system.
//! A mail is never retried blindly here: [`MailError::is_retryable`] says whether trying
//! again can help and [`MailError::may_have_been_delivered`] whether the failed attempt may
//! nevertheless have reached the server, which the caller must reconcile first.

mod message;
mod outbox;
mod render;
mod smtp;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

pub use lettre::message::Mailbox;
pub use outbox::FileOutbox;
pub(crate) use render::escape_html;
pub use render::{
    ConversationTurn, LeadSummary, MailHeaders, Party, daily_report_mail, positive_reply_mail,
};
pub use smtp::{SmtpConfig, SmtpMailer, SmtpTlsMode};

/// Sends mail to humans. Implementations must be safe to call again with the same
/// [`OutgoingMail::message_id`] after a failure or a crash.
#[async_trait]
pub trait MailPort: Send + Sync {
    /// Sends one mail, bounded by the adapter's timeout.
    async fn send(&self, mail: &OutgoingMail) -> Result<SentMail, MailError>;
}

/// A mail ready to send: a plain-text part and, optionally, an HTML alternative of the
/// same content (sent as `multipart/alternative`).
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingMail {
    /// Chosen by the caller and derived from the causing event's id
    /// ([`MessageId::for_event`]), never random.
    pub message_id: MessageId,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// What became of a mail that was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMail {
    pub message_id: MessageId,
    pub delivery: Delivery,
}

/// Where a sent mail went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// An SMTP server accepted the mail; `response` is its final reply text.
    Relayed { code: u16, response: String },
    /// The mail was written to the outbox as this file.
    WrittenToOutbox { path: PathBuf },
    /// A mail with the same Message-ID was already in the outbox: nothing was written.
    AlreadyInOutbox { path: PathBuf },
}

/// A mail's Message-ID without its angle brackets, e.g.
/// `0190c3e2-8f1a-7cc1-9a53-2b7d3c1e9f00@salesdept.example`.
///
/// Both halves are restricted to RFC 5322 `dot-atom-text`, which makes the value safe as a
/// header and, percent-encoded, as a file name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(String);

impl MessageId {
    /// The Message-ID of the mail caused by `event_id`: the same event always gives the
    /// same id, which is what makes a retried send recognisable.
    pub fn for_event(event_id: Uuid, domain: &str) -> Result<Self, MailError> {
        Self::parse(&format!("{}@{}", event_id.as_hyphenated(), domain))
    }

    /// Parses `local@domain`, with or without the surrounding angle brackets.
    pub fn parse(text: &str) -> Result<Self, MailError> {
        let trimmed = text.trim();
        let bare = trimmed
            .strip_prefix('<')
            .and_then(|rest| rest.strip_suffix('>'))
            .unwrap_or(trimmed);
        let invalid = |why: &str| MailError::InvalidMail(format!("Message-ID {text:?}: {why}"));
        if bare.len() > 250 {
            return Err(invalid("longer than 250 characters"));
        }
        let (left, right) = bare
            .rsplit_once('@')
            .ok_or_else(|| invalid("expected local@domain"))?;
        if !is_dot_atom_text(left) || !is_dot_atom_text(right) {
            return Err(invalid(
                "each side must be dot-separated atoms of letters, digits and !#$%&'*+/=?^_`{|}~-",
            ));
        }
        Ok(Self(bare.to_owned()))
    }

    /// The id without angle brackets.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The header value, with angle brackets: `<local@domain>`.
    pub fn header_value(&self) -> String {
        format!("<{}>", self.0)
    }

    /// A file name that is unique per Message-ID: every byte outside `[A-Za-z0-9._@-]`
    /// is percent-encoded, so distinct ids never share a name.
    pub fn file_stem(&self) -> String {
        let mut stem = String::with_capacity(self.0.len());
        for byte in self.0.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'@' | b'-') {
                stem.push(char::from(byte));
            } else {
                stem.push_str(&format!("%{byte:02X}"));
            }
        }
        stem
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", self.header_value())
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header_value())
    }
}

fn is_dot_atom_text(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|atom| {
            !atom.is_empty()
                && atom.bytes().all(|byte| {
                    byte.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&byte)
                })
        })
}

/// Why a mail was not sent. Never carries a password.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The mail itself cannot be sent (no recipient, a malformed Message-ID or header).
    #[error("invalid mail: {0}")]
    InvalidMail(String),
    /// The adapter's configuration is unusable (a bad certificate, auth over plain text).
    #[error("invalid mail configuration: {0}")]
    Config(String),
    /// The SMTP server answered 4xx: it did not take the mail, and may later.
    #[error("SMTP server refused the mail for now ({code}): {message}")]
    Transient { code: u16, message: String },
    /// The SMTP server answered 5xx: it will not take this mail.
    #[error("SMTP server refused the mail ({code}): {message}")]
    Permanent { code: u16, message: String },
    /// The whole send did not finish in time; the server may or may not have the mail.
    #[error("sending the mail timed out after {0:?}")]
    Timeout(Duration),
    /// The connection failed or broke off.
    #[error("SMTP connection failed: {0}")]
    Connection(String),
    /// The TLS handshake failed (an untrusted certificate, a wrong host name).
    #[error("TLS with the SMTP server failed: {0}")]
    Tls(String),
    /// The outbox directory could not be written.
    #[error("outbox {path}: {source}")]
    Outbox {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl MailError {
    /// Whether the same mail may succeed if sent again later: a 4xx answer, a timeout, a
    /// broken connection. Before retrying after a timeout or a broken connection, check
    /// [`Self::may_have_been_delivered`].
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transient { .. } | Self::Timeout(_) | Self::Connection(_) => true,
            Self::Outbox { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut
            ),
            Self::InvalidMail(_) | Self::Config(_) | Self::Permanent { .. } | Self::Tls(_) => false,
        }
    }

    /// Whether the server may have accepted the mail although the send failed: the
    /// connection broke or timed out after the message could have been transmitted. Such a
    /// mail is reconciled by its Message-ID before any re-send.
    pub fn may_have_been_delivered(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::Connection(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_id_always_gives_the_same_message_id() {
        let event_id = Uuid::from_u128(0x0190_c3e2_8f1a_7cc1_9a53_2b7d_3c1e_9f00);
        let first = MessageId::for_event(event_id, "salesdept.example").unwrap();
        let again = MessageId::for_event(event_id, "salesdept.example").unwrap();
        assert_eq!(first, again);
        assert_eq!(
            first.header_value(),
            "<0190c3e2-8f1a-7cc1-9a53-2b7d3c1e9f00@salesdept.example>"
        );
    }

    #[test]
    fn message_ids_parse_with_or_without_brackets_and_reject_malformed_ones() {
        assert_eq!(
            MessageId::parse("<a.b@c.d>").unwrap(),
            MessageId::parse("a.b@c.d").unwrap()
        );
        let bad = [
            ("", "empty"),
            ("no-at-sign", "no domain"),
            ("@c.d", "empty local part"),
            ("a@", "empty domain"),
            ("a..b@c.d", "empty atom"),
            ("a b@c.d", "space"),
            ("a@c.d\r\nBcc: x@y.z", "header injection"),
            ("<a@b>>", "stray bracket"),
            ("a\"b@c.d", "quote"),
        ];
        for (text, why) in bad {
            assert!(MessageId::parse(text).is_err(), "{why}: {text:?}");
        }
        assert!(MessageId::parse(&format!("{}@c.d", "x".repeat(260))).is_err());
    }

    #[test]
    fn file_stems_are_distinct_for_distinct_ids_and_never_contain_a_path_separator() {
        let ids = ["a/b@c.d", "a%2Fb@c.d", "a_b@c.d", "a+b@c.d", "a=b@c.d"];
        let stems: std::collections::BTreeSet<String> = ids
            .iter()
            .map(|id| MessageId::parse(id).unwrap().file_stem())
            .collect();
        assert_eq!(stems.len(), ids.len());
        assert!(stems.iter().all(|stem| !stem.contains('/')));
    }

    #[test]
    fn only_transient_failures_are_retryable_and_only_ambiguous_ones_may_have_been_delivered() {
        let cases = [
            (
                MailError::Transient {
                    code: 451,
                    message: String::new(),
                },
                true,
                false,
            ),
            (
                MailError::Permanent {
                    code: 550,
                    message: String::new(),
                },
                false,
                false,
            ),
            (MailError::Timeout(Duration::from_secs(1)), true, true),
            (MailError::Connection("reset".into()), true, true),
            (MailError::Tls("bad certificate".into()), false, false),
            (MailError::InvalidMail("no recipient".into()), false, false),
            (MailError::Config("no runtime".into()), false, false),
        ];
        for (error, retryable, ambiguous) in cases {
            assert_eq!(error.is_retryable(), retryable, "{error}");
            assert_eq!(error.may_have_been_delivered(), ambiguous, "{error}");
        }
    }
}
