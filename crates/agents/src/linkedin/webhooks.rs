//! Inbound provider webhooks: verification, and parsing into [`Reply`] and
//! [`ConnectionAccepted`]. Pure functions; the HTTP route that calls them lives in the server.
//!
//! Webhooks carry no event id, may be repeated (Unipile retries five times; Dripify re-sends
//! the whole conversation each time) and may be late (a Unipile `new_relation` can come
//! hours after the acceptance). Every [`Delivery`] therefore has a `dedup_key` derived from
//! the provider's ids where it gives them, else from the content; storing the key with the
//! event (e.g. as the step id of the event it causes) makes a repeat a no-op. Polling stays
//! the backstop for deliveries that never come.
//!
//! Verification: Unipile and Dripify do not sign their webhooks, so their routes carry a
//! shared secret (Unipile lets a webhook send custom headers; Dripify's UI only takes a URL, so
//! its secret goes in the URL path), compared in constant time by [`verify_shared_secret`].
//! Senders that sign (our generic JSON shape) use HMAC-SHA256 of the raw body
//! ([`verify_hmac_sha256`]).
//!
//! Payload shapes: Unipile `message_received` and `new_relation` as documented at
//! developer.unipile.com ("New messages" and "New relation" webhooks). Dripify's reply
//! webhook body is not documented; a public client that handles real deliveries reads the
//! whole thread from a `conversation` array of `{text, type, userName, timestamp}`, where
//! `type` says "… message sent" or "… message replied". That is what is parsed here; the
//! lead's profile URL is looked for under the usual key names.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use salesdept_events::domain::LinkedInUrl;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ConnectionAccepted, Provider, Reply, profile_slug};

/// Bodies larger than this are refused before parsing.
pub const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("the webhook is not authenticated")]
    Unauthenticated,
    #[error("the webhook body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("the webhook body cannot be read: {0}")]
    Malformed(String),
}

/// What a delivery reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InboundEvent {
    Reply(Reply),
    ConnectionAccepted(ConnectionAccepted),
}

/// One fact from one webhook delivery, with the key that recognises it when it comes again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub provider: Provider,
    pub dedup_key: String,
    pub event: InboundEvent,
}

/// Compares a presented shared secret with the expected one in constant time (both are
/// hashed first, so not even their lengths leak through timing).
pub fn verify_shared_secret(
    expected: &SecretString,
    presented: Option<&str>,
) -> Result<(), WebhookError> {
    let presented = presented.ok_or(WebhookError::Unauthenticated)?;
    let expected_digest = Sha256::digest(expected.expose_secret().as_bytes());
    let presented_digest = Sha256::digest(presented.as_bytes());
    if bool::from(expected_digest[..].ct_eq(&presented_digest[..])) {
        Ok(())
    } else {
        Err(WebhookError::Unauthenticated)
    }
}

/// Verifies an HMAC-SHA256 signature of the raw body, given as hex, optionally prefixed
/// `sha256=`. The comparison is constant-time (`Mac::verify_slice`).
pub fn verify_hmac_sha256(
    secret: &SecretString,
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), WebhookError> {
    let signature = signature.ok_or(WebhookError::Unauthenticated)?.trim();
    let hex_digits = signature.strip_prefix("sha256=").unwrap_or(signature);
    let expected = hex::decode(hex_digits).map_err(|_| WebhookError::Unauthenticated)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .map_err(|_| WebhookError::Unauthenticated)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::Unauthenticated)
}

/// The `sha256=<hex>` signature of a body: what a signing sender puts in its header.
pub fn sign_hmac_sha256(secret: &SecretString, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn read_json(body: &[u8]) -> Result<Value, WebhookError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(WebhookError::TooLarge);
    }
    // The position only: serde's message may quote the body, which is the sender's data.
    serde_json::from_slice(body).map_err(|error| {
        let problem = match error.classify() {
            serde_json::error::Category::Eof => "it ends early",
            _ => "a syntax error",
        };
        WebhookError::Malformed(format!(
            "not JSON: {problem} at line {} column {}",
            error.line(),
            error.column()
        ))
    })
}

/// A key from content, for payloads without ids: SHA-256 over the parts, separated so that
/// ("ab", "c") and ("a", "bc") differ.
fn content_key(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0x1f]);
    }
    hex::encode(&hasher.finalize()[..16])
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// Parses a Unipile webhook (`message_received` or `new_relation`). Our own messages, and
/// events of other kinds, give no delivery. `received_at` stands in for the time of a
/// relation, whose payload carries none (it is the delivery time, possibly hours late).
pub fn parse_unipile(
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Vec<Delivery>, WebhookError> {
    let payload = read_json(body)?;
    let event = payload
        .get("event")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match event {
        "message_received" => {
            let message: UnipileMessage = serde_json::from_value(payload).map_err(|_| {
                WebhookError::Malformed("a message_received without its fields".into())
            })?;
            let own_id = message
                .account_info
                .as_ref()
                .and_then(|info| info.user_id.as_deref());
            if own_id.is_some() && own_id == message.sender.attendee_provider_id.as_deref() {
                return Ok(Vec::new());
            }
            let text = message.message.unwrap_or_default();
            if text.trim().is_empty() {
                return Ok(Vec::new());
            }
            let profile_url = message
                .sender
                .attendee_profile_url
                .as_deref()
                .and_then(|url| LinkedInUrl::parse(url).ok())
                .ok_or_else(|| {
                    WebhookError::Malformed("the sender has no LinkedIn profile URL".into())
                })?;
            let at = message
                .timestamp
                .as_deref()
                .and_then(parse_time)
                .unwrap_or(received_at);
            Ok(vec![Delivery {
                provider: Provider::Unipile,
                dedup_key: format!("unipile:message:{}", message.message_id),
                event: InboundEvent::Reply(Reply {
                    provider_message_id: message.message_id,
                    profile_url,
                    text,
                    received_at: at,
                    thread_id: message.chat_id,
                }),
            }])
        }
        "new_relation" => {
            let relation: UnipileRelation = serde_json::from_value(payload)
                .map_err(|_| WebhookError::Malformed("a new_relation without its fields".into()))?;
            let profile_url = relation
                .user_profile_url
                .as_deref()
                .and_then(|url| LinkedInUrl::parse(url).ok())
                .or_else(|| {
                    relation.user_public_identifier.as_deref().and_then(|id| {
                        LinkedInUrl::parse(&format!("https://www.linkedin.com/in/{id}")).ok()
                    })
                })
                .ok_or_else(|| {
                    WebhookError::Malformed("a new relation without a profile".into())
                })?;
            let person = relation
                .user_provider_id
                .clone()
                .unwrap_or_else(|| profile_slug(&profile_url).to_owned());
            Ok(vec![Delivery {
                provider: Provider::Unipile,
                dedup_key: format!(
                    "unipile:relation:{}:{person}",
                    relation.account_id.as_deref().unwrap_or_default()
                ),
                event: InboundEvent::ConnectionAccepted(ConnectionAccepted {
                    profile_url,
                    at: received_at,
                }),
            }])
        }
        _ => Ok(Vec::new()),
    }
}

/// Parses a Dripify campaign webhook ("After LinkedIn reply is received"): every message of
/// the lead in the conversation becomes a reply, keyed by lead, time and text, so the
/// messages already seen in earlier deliveries of the same thread are recognised.
pub fn parse_dripify(
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Vec<Delivery>, WebhookError> {
    let payload = read_json(body)?;
    let profile_url = find_profile_url(&payload, 0)
        .ok_or_else(|| WebhookError::Malformed("no LinkedIn profile URL in the delivery".into()))?;
    let conversation = payload
        .get("conversation")
        .and_then(Value::as_array)
        .ok_or_else(|| WebhookError::Malformed("no conversation in the delivery".into()))?;
    let slug = profile_slug(&profile_url).to_owned();
    let mut deliveries = Vec::new();
    for entry in conversation {
        let text = entry
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = entry
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase();
        // Only the lead's own messages are replies; an entry whose direction is not stated is
        // left out rather than guessed.
        let from_lead = ["repl", "receiv", "incoming", "inbound"]
            .iter()
            .any(|word| kind.contains(word));
        if !from_lead || text.trim().is_empty() {
            continue;
        }
        let raw_time = entry
            .get("timestamp")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let key = format!("dripify:reply:{slug}:{}", content_key(&[raw_time, text]));
        deliveries.push(Delivery {
            provider: Provider::Dripify,
            dedup_key: key.clone(),
            event: InboundEvent::Reply(Reply {
                provider_message_id: key,
                profile_url: profile_url.clone(),
                text: text.to_owned(),
                received_at: parse_time(raw_time).unwrap_or(received_at),
                thread_id: format!("dripify:{slug}"),
            }),
        });
    }
    Ok(deliveries)
}

const PROFILE_URL_KEYS: &[&str] = &[
    "linkedinProfileUrl",
    "linkedinUrl",
    "linkedInUrl",
    "linkedin_url",
    "profileUrl",
    "profile_url",
    "linkedin",
];

fn find_profile_url(value: &Value, depth: usize) -> Option<LinkedInUrl> {
    let object = value.as_object()?;
    let direct = PROFILE_URL_KEYS
        .iter()
        .filter_map(|key| object.get(*key).and_then(Value::as_str))
        .find_map(|url| LinkedInUrl::parse(url).ok());
    if direct.is_some() || depth >= 3 {
        return direct;
    }
    object
        .iter()
        .filter(|(key, _)| key.as_str() != "conversation")
        .find_map(|(_, nested)| find_profile_url(nested, depth + 1))
}

/// Our generic JSON shape, for Clay, Zapier or hand-built senders (a single object or an
/// array of them):
///
/// ```json
/// {"type": "reply", "profile_url": "https://www.linkedin.com/in/…", "text": "…",
///  "at": "2026-03-02T10:15:00Z", "message_id": "optional", "thread_id": "optional"}
/// {"type": "connection_accepted", "profile_url": "…", "at": "…"}
/// ```
pub fn parse_generic(
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Vec<Delivery>, WebhookError> {
    let payload = read_json(body)?;
    let items: Vec<GenericEvent> = match payload {
        Value::Array(_) => serde_json::from_value(payload),
        other => serde_json::from_value(other).map(|event| vec![event]),
    }
    .map_err(|error| WebhookError::Malformed(format!("not the generic event shape ({error})")))?;
    items
        .into_iter()
        .map(|item| {
            let profile_url = LinkedInUrl::parse(&item.profile_url).map_err(|_| {
                WebhookError::Malformed("profile_url is not a LinkedIn profile".into())
            })?;
            let at = match item.at.as_deref() {
                Some(text) => parse_time(text)
                    .ok_or_else(|| WebhookError::Malformed("at is not an RFC 3339 time".into()))?,
                None => received_at,
            };
            match item.kind {
                GenericKind::Reply => {
                    let text = item
                        .text
                        .filter(|text| !text.trim().is_empty())
                        .ok_or_else(|| WebhookError::Malformed("a reply without text".into()))?;
                    let id = item.message_id.clone().unwrap_or_else(|| {
                        content_key(&[
                            profile_url.as_str(),
                            &text,
                            item.at.as_deref().unwrap_or_default(),
                        ])
                    });
                    Ok(Delivery {
                        provider: Provider::Generic,
                        dedup_key: format!("generic:reply:{id}"),
                        event: InboundEvent::Reply(Reply {
                            provider_message_id: id,
                            thread_id: item.thread_id.unwrap_or_else(|| {
                                format!("generic:{}", profile_slug(&profile_url))
                            }),
                            profile_url,
                            text,
                            received_at: at,
                        }),
                    })
                }
                GenericKind::ConnectionAccepted => Ok(Delivery {
                    provider: Provider::Generic,
                    // One acceptance per person: a repeat, however late, is the same fact.
                    dedup_key: format!("generic:accepted:{}", profile_url.hash()),
                    event: InboundEvent::ConnectionAccepted(ConnectionAccepted { profile_url, at }),
                }),
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct UnipileMessage {
    chat_id: String,
    message_id: String,
    message: Option<String>,
    timestamp: Option<String>,
    sender: UnipileSender,
    account_info: Option<UnipileAccountInfo>,
}

#[derive(Deserialize)]
struct UnipileSender {
    attendee_provider_id: Option<String>,
    attendee_profile_url: Option<String>,
}

#[derive(Deserialize)]
struct UnipileAccountInfo {
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct UnipileRelation {
    account_id: Option<String>,
    user_provider_id: Option<String>,
    user_public_identifier: Option<String>,
    user_profile_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum GenericKind {
    Reply,
    ConnectionAccepted,
}

#[derive(Deserialize)]
struct GenericEvent {
    #[serde(rename = "type")]
    kind: GenericKind,
    profile_url: String,
    text: Option<String>,
    at: Option<String>,
    message_id: Option<String>,
    thread_id: Option<String>,
}
