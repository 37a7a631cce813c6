//! The Gojiberry adapter: Gojiberry AI's external REST API (`https://ext.gojiberry.ai`,
//! `Authorization: Bearer <key>`, 100 requests a minute per key, kept by a client-side
//! rate limiter).
//!
//! Gojiberry is a campaign tool, not a raw LinkedIn API: invitations and first messages are
//! campaign steps that Gojiberry sends itself. So here a "connection request" enrolls the
//! person in the configured campaign list with the note as the personalised message of the
//! invitation step, and a "message" is sent into the person's existing inbox thread.
//!
//! Endpoints (Gojiberry's OpenAPI document "Gojiberry AI - External API" 1.0, served at
//! `https://ext.gojiberry.ai/documentation`; looked up with the search tool):
//! - `POST /v1/contact` — "Create a new contact" (`firstName`, `lastName`, `profileUrl`
//!   required); 400 "Contact already excluded or already exists".
//! - `GET /v1/contact?search=&limit=` and `GET /v1/contact/{id}` — contacts, with `state`
//!   (`finished`, `paused`, `1stnetwork`, `excluded`, `answered`) and `profileUrl`.
//! - `PATCH /v1/contact/{id}` — "Update a contact": `personalizedMessages[{content,
//!   stepNumber}]` and `state` (set `paused` to stop a contact, `null` to clear).
//! - `POST /v1/contact/list/{listId}/contacts` — "Add contacts to a list" `{contactIds}`.
//! - `GET /v1/unibox/contact/{contactId}` — the person's inbox chats (schema `Unibox`).
//! - `GET /v1/unibox/threads?dateFrom=&order=&limit=&page=` and
//!   `GET /v1/unibox/threads/{threadId}/messages` — inbox threads and their messages.
//! - `POST /v1/unibox/messages/send-message` — multipart `chatId`, `message`.
//!
//! What the documentation leaves open, and how it is handled: the envelopes of the two
//! paginated unibox endpoints and the fields of one message are not specified (the spec says
//! only "Paginated … retrieved successfully" and `messages: object[]`). They are parsed
//! leniently (`data`, `items`, `threads`, `messages` envelopes; Unipile-style message fields,
//! snake or camel case), and a message whose direction cannot be told is skipped with a
//! warning rather than guessed. The send answer (201) carries no documented id either.
//! Gojiberry has no people search, no profile look-up by URL and no acceptance signal: those
//! port methods answer [`LinkedInError::Unsupported`].

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use reqwest::{Method, RequestBuilder};
use salesdept_events::domain::LinkedInUrl;
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::http::{
    CallKind, RawResponse, RetryPolicy, SentLedger, build_client, classify_common_status,
    decode_json, execute, secret_header, send_once, with_retries,
};
use super::{
    ConnectionAccepted, IdempotencyKey, InvitationNote, LinkedInError, LinkedInPort, MessageText,
    Provider, ProviderProfile, Recipient, Reply, SearchCriteria, SentMessage,
};

const PROVIDER: Provider = Provider::Gojiberry;
/// Gojiberry's production base URL.
pub const DEFAULT_BASE_URL: &str = "https://ext.gojiberry.ai";
/// The documented rate limit: 100 requests a minute per API key.
pub const DOCUMENTED_REQUESTS_PER_MINUTE: u32 = 100;
const PAGE_SIZE: usize = 100;
const MAX_PAGES: u32 = 20;

/// How to reach one Gojiberry account and which campaign it enrolls people in.
#[derive(Clone, Debug)]
pub struct GojiberryConfig {
    pub base_url: url::Url,
    pub api_key: SecretString,
    /// The list attached to the outreach campaign: adding a contact to it starts the campaign
    /// for that contact.
    pub campaign_list_id: u64,
    /// The campaign step whose personalised message is the invitation note.
    pub invitation_step: u32,
    /// Act for this member of the organisation (`x-impersonate-user-id`; owner keys only).
    pub impersonate_user_id: Option<String>,
    /// Client-side budget; keep at or under the documented 100.
    pub requests_per_minute: NonZeroU32,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl GojiberryConfig {
    pub fn new(api_key: SecretString, campaign_list_id: u64, invitation_step: u32) -> Self {
        Self {
            base_url: url::Url::parse(DEFAULT_BASE_URL).expect("the default base URL parses"),
            api_key,
            campaign_list_id,
            invitation_step,
            impersonate_user_id: None,
            requests_per_minute: NonZeroU32::new(DOCUMENTED_REQUESTS_PER_MINUTE).expect("non-zero"),
            timeout: Duration::from_secs(20),
            retry: RetryPolicy::default(),
        }
    }
}

/// A campaign step's personalised message for one contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepMessage {
    pub step_number: u32,
    pub content: String,
}

/// A contact's state in Gojiberry's campaigns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactState {
    Finished,
    Paused,
    #[serde(rename = "1stnetwork")]
    FirstNetwork,
    Excluded,
    Answered,
}

/// A Gojiberry contact, as far as the agents need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GojiberryContact {
    pub id: u64,
    pub full_name: String,
    pub profile_url: Option<LinkedInUrl>,
    pub state: Option<ContactState>,
}

/// The Gojiberry adapter of [`LinkedInPort`].
pub struct GojiberryClient {
    http: reqwest::Client,
    base: url::Url,
    auth_header: HeaderValue,
    impersonate: Option<HeaderValue>,
    campaign_list_id: u64,
    invitation_step: u32,
    limiter: DefaultDirectRateLimiter,
    retry: RetryPolicy,
    ledger: SentLedger,
}

impl fmt::Debug for GojiberryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GojiberryClient")
            .field("base", &self.base.as_str())
            .field("campaign_list_id", &self.campaign_list_id)
            .finish_non_exhaustive()
    }
}

impl GojiberryClient {
    pub fn new(config: GojiberryConfig) -> Result<Self, LinkedInError> {
        let impersonate = config
            .impersonate_user_id
            .as_deref()
            .map(HeaderValue::from_str)
            .transpose()
            .map_err(|_| {
                LinkedInError::InvalidRequest(
                    "the impersonated user id is not a header value".into(),
                )
            })?;
        // A small burst, then the steady rate: spreads a poll's requests over the minute.
        let burst = NonZeroU32::new(config.requests_per_minute.get().min(10)).expect("non-zero");
        Ok(Self {
            http: build_client(config.timeout)?,
            base: config.base_url,
            auth_header: secret_header(&config.api_key, "Bearer ")?,
            impersonate,
            campaign_list_id: config.campaign_list_id,
            invitation_step: config.invitation_step,
            limiter: RateLimiter::direct(
                Quota::per_minute(config.requests_per_minute).allow_burst(burst),
            ),
            retry: config.retry,
            ledger: SentLedger::new(10_000),
        })
    }

    fn request(&self, method: Method, segments: &[&str]) -> Result<RequestBuilder, LinkedInError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| {
                LinkedInError::InvalidRequest("the Gojiberry base URL cannot take a path".into())
            })?
            .pop_if_empty()
            .push("v1")
            .extend(segments);
        let mut request = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.auth_header.clone())
            .header(ACCEPT, "application/json");
        if let Some(user) = &self.impersonate {
            request = request.header("x-impersonate-user-id", user.clone());
        }
        Ok(request)
    }

    /// One rate-limited HTTP exchange with the retry policy; returns the raw 2xx answer.
    async fn exchange<B>(
        &self,
        kind: CallKind,
        operation: &'static str,
        build: B,
    ) -> Result<RawResponse, LinkedInError>
    where
        B: Fn() -> Result<RequestBuilder, LinkedInError>,
    {
        with_retries(&self.retry, operation, || {
            let request = build();
            async move {
                let request = request?;
                self.limiter.until_ready().await;
                let response = execute(PROVIDER, kind, request).await?;
                if !response.status.is_success() {
                    return Err(classify(kind, &response));
                }
                Ok(response)
            }
        })
        .await
    }

    async fn call<T, B>(
        &self,
        kind: CallKind,
        operation: &'static str,
        build: B,
    ) -> Result<T, LinkedInError>
    where
        T: DeserializeOwned,
        B: Fn() -> Result<RequestBuilder, LinkedInError>,
    {
        let response = self.exchange(kind, operation, build).await?;
        decode_json(PROVIDER, operation, &response.body)
    }

    /// One contact by id.
    #[tracing::instrument(skip_all, fields(provider = "gojiberry"), err)]
    pub async fn contact(&self, id: u64) -> Result<GojiberryContact, LinkedInError> {
        let id_text = id.to_string();
        let contact: ContactBody = self
            .call(CallKind::Idempotent, "get contact", || {
                self.request(Method::GET, &["contact", &id_text])
            })
            .await?;
        Ok(contact.into_contact())
    }

    /// The contact for this person, if Gojiberry has one: by id when the recipient carries a
    /// Gojiberry contact id, else by searching the name and matching the profile URL.
    #[tracing::instrument(skip_all, fields(provider = "gojiberry"), err)]
    pub async fn find_contact(
        &self,
        to: &Recipient,
    ) -> Result<Option<GojiberryContact>, LinkedInError> {
        if let Some(id) = to
            .provider_id
            .as_deref()
            .and_then(|id| id.trim().parse::<u64>().ok())
        {
            return match self.contact(id).await {
                Ok(contact) => Ok(Some(contact)),
                Err(LinkedInError::NotFound { .. }) => Ok(None),
                Err(error) => Err(error),
            };
        }
        let page: ContactPage = self
            .call(CallKind::Idempotent, "search contacts", || {
                Ok(self
                    .request(Method::GET, &["contact"])?
                    .query(&[("search", to.full_name.as_str()), ("limit", "100")]))
            })
            .await?;
        Ok(page
            .contacts
            .into_iter()
            .map(ContactBody::into_contact)
            .find(|contact| contact.profile_url.as_ref() == Some(&to.profile_url)))
    }

    /// Sets (or, with `None`, clears) a contact's campaign state: `Paused` stops the campaign
    /// for that person, e.g. after a do-not-contact reply.
    #[tracing::instrument(skip_all, fields(provider = "gojiberry", contact = id), err)]
    pub async fn set_contact_state(
        &self,
        id: u64,
        state: Option<ContactState>,
    ) -> Result<GojiberryContact, LinkedInError> {
        let id_text = id.to_string();
        let body = json!({ "state": state });
        let contact: ContactBody = self
            .call(CallKind::Idempotent, "update contact state", || {
                Ok(self
                    .request(Method::PATCH, &["contact", &id_text])?
                    .json(&body))
            })
            .await?;
        Ok(contact.into_contact())
    }

    /// Puts the person into the campaign list with their personalised step messages. The
    /// messages are written before the contact joins the list, so the campaign can never pick
    /// the contact up with the template text. Returns `contact:<id>` as the provider id.
    #[tracing::instrument(skip_all, fields(provider = "gojiberry", key = %key), err)]
    pub async fn enroll_in_campaign(
        &self,
        to: &Recipient,
        steps: &[StepMessage],
        key: IdempotencyKey,
    ) -> Result<SentMessage, LinkedInError> {
        send_once(&self.ledger, key, || async {
            let contact = self.create_or_find_contact(to).await?;
            if contact.state == Some(ContactState::Excluded) {
                return Err(LinkedInError::Permanent {
                    provider: PROVIDER,
                    status: 400,
                    code: Some("excluded".into()),
                    detail: "the contact is excluded from all campaigns".into(),
                });
            }
            let id_text = contact.id.to_string();
            if !steps.is_empty() {
                let messages: Vec<Value> = steps
                    .iter()
                    .map(|step| json!({"content": step.content, "stepNumber": step.step_number}))
                    .collect();
                let body = json!({ "personalizedMessages": messages });
                self.exchange(CallKind::Idempotent, "set step messages", || {
                    Ok(self
                        .request(Method::PATCH, &["contact", &id_text])?
                        .json(&body))
                })
                .await?;
            }
            let list = self.campaign_list_id.to_string();
            let body = json!({ "contactIds": [contact.id] });
            // Adding a contact already in the list changes nothing, so this is safe to retry.
            self.exchange(CallKind::Idempotent, "add to campaign list", || {
                Ok(self
                    .request(Method::POST, &["contact", "list", &list, "contacts"])?
                    .json(&body))
            })
            .await?;
            Ok(SentMessage {
                provider_message_id: format!("contact:{}", contact.id),
            })
        })
        .await
    }

    async fn create_or_find_contact(
        &self,
        to: &Recipient,
    ) -> Result<GojiberryContact, LinkedInError> {
        let known_id = to
            .provider_id
            .as_deref()
            .is_some_and(|id| id.trim().parse::<u64>().is_ok());
        if known_id && let Some(contact) = self.find_contact(to).await? {
            return Ok(contact);
        }
        let (first, last) = split_name(&to.full_name);
        let body =
            json!({"firstName": first, "lastName": last, "profileUrl": to.profile_url.as_str()});
        let created: Result<ContactBody, _> = self
            .call(CallKind::Idempotent, "create contact", || {
                Ok(self.request(Method::POST, &["contact"])?.json(&body))
            })
            .await;
        match created {
            Ok(contact) => Ok(contact.into_contact()),
            // "Contact already excluded or already exists": a retry after a crash, or a person
            // met before. Either way the existing contact is the one to use.
            Err(LinkedInError::Permanent { status: 400, .. }) => self
                .find_contact(to)
                .await?
                .ok_or_else(|| LinkedInError::Permanent {
                    provider: PROVIDER,
                    status: 400,
                    code: Some("already_exists".into()),
                    detail: "Gojiberry has this contact but the search cannot find it".into(),
                }),
            Err(error) => Err(error),
        }
    }

    async fn thread_messages(&self, thread_id: &str) -> Result<Vec<Value>, LinkedInError> {
        let mut messages = Vec::new();
        for page in 1..=MAX_PAGES {
            let page_text = page.to_string();
            let body: Value = self
                .call(CallKind::Idempotent, "thread messages", || {
                    Ok(self
                        .request(Method::GET, &["unibox", "threads", thread_id, "messages"])?
                        .query(&[
                            ("order", "ASC"),
                            ("limit", "200"),
                            ("page", page_text.as_str()),
                        ]))
                })
                .await?;
            let items = envelope_items(body, &["data", "items", "messages", "results"])?;
            let count = items.len();
            messages.extend(items);
            if count < 200 {
                break;
            }
        }
        Ok(messages)
    }
}

#[async_trait]
impl LinkedInPort for GojiberryClient {
    fn provider(&self) -> Provider {
        PROVIDER
    }

    async fn search_profiles(
        &self,
        _criteria: &SearchCriteria,
    ) -> Result<Vec<ProviderProfile>, LinkedInError> {
        Err(LinkedInError::Unsupported {
            provider: PROVIDER,
            capability: "people search (Gojiberry sources leads with its own agents)",
        })
    }

    async fn fetch_profile(
        &self,
        _profile_url: &LinkedInUrl,
    ) -> Result<ProviderProfile, LinkedInError> {
        Err(LinkedInError::Unsupported {
            provider: PROVIDER,
            capability: "profile look-up by LinkedIn URL",
        })
    }

    async fn send_connection_request(
        &self,
        to: &Recipient,
        note: Option<&InvitationNote>,
        key: IdempotencyKey,
    ) -> Result<SentMessage, LinkedInError> {
        let steps: Vec<StepMessage> = note
            .map(|note| StepMessage {
                step_number: self.invitation_step,
                content: note.as_str().to_owned(),
            })
            .into_iter()
            .collect();
        self.enroll_in_campaign(to, &steps, key).await
    }

    #[tracing::instrument(skip_all, fields(provider = "gojiberry", key = %key), err)]
    async fn send_message(
        &self,
        to: &Recipient,
        text: &MessageText,
        key: IdempotencyKey,
    ) -> Result<SentMessage, LinkedInError> {
        send_once(&self.ledger, key, || async {
            let contact = self.find_contact(to).await?.ok_or_else(|| LinkedInError::NotFound {
                provider: PROVIDER,
                what: "no Gojiberry contact for this person".into(),
            })?;
            let contact_id = contact.id.to_string();
            let chats: Vec<Value> = self
                .call(CallKind::Idempotent, "contact chats", || {
                    self.request(Method::GET, &["unibox", "contact", &contact_id])
                })
                .await?;
            // Documented order: most recent message first.
            let chat_id = chats
                .first()
                .and_then(|chat| chat.get("id"))
                .and_then(id_text)
                .ok_or_else(|| LinkedInError::NotFound {
                    provider: PROVIDER,
                    what: "no conversation with this person yet (the campaign sends the first message)".into(),
                })?;
            let response = self
                .exchange(CallKind::SideEffect, "send message", || {
                    let form = reqwest::multipart::Form::new()
                        .text("chatId", chat_id.clone())
                        .text("message", text.as_str().to_owned());
                    Ok(self
                        .request(Method::POST, &["unibox", "messages", "send-message"])?
                        .multipart(form))
                })
                .await?;
            // The 201 answer has no documented body; use an id if one comes back, else a
            // stable id of our own that names the chat and the send.
            let provider_message_id = serde_json::from_slice::<Value>(&response.body)
                .ok()
                .and_then(|body| body.get("id").and_then(id_text))
                .unwrap_or_else(|| format!("chat:{chat_id}:{key}"));
            Ok(SentMessage { provider_message_id })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(provider = "gojiberry", %since), err)]
    async fn replies_since(&self, since: DateTime<Utc>) -> Result<Vec<Reply>, LinkedInError> {
        let date_from = since.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut threads = Vec::new();
        for page in 1..=MAX_PAGES {
            let page_text = page.to_string();
            let limit = PAGE_SIZE.to_string();
            let body: Value = self
                .call(CallKind::Idempotent, "inbox threads", || {
                    Ok(self.request(Method::GET, &["unibox", "threads"])?.query(&[
                        ("dateFrom", date_from.as_str()),
                        ("order", "ASC"),
                        ("limit", limit.as_str()),
                        ("page", page_text.as_str()),
                    ]))
                })
                .await?;
            let items = envelope_items(body, &["data", "items", "threads", "results"])?;
            let count = items.len();
            threads.extend(items);
            if count < PAGE_SIZE {
                break;
            }
        }

        let mut replies = Vec::new();
        for thread in threads {
            let Some(thread_id) = thread.get("id").and_then(id_text) else {
                continue;
            };
            let profile_url = match thread_profile_url(&thread) {
                Some(url) => Some(url),
                None => match thread.get("contactId").and_then(Value::as_u64) {
                    Some(contact_id) => self.contact(contact_id).await?.profile_url,
                    None => None,
                },
            };
            let Some(profile_url) = profile_url else {
                tracing::warn!(thread = %thread_id, "inbox thread without a LinkedIn profile; skipped");
                continue;
            };
            let partner = thread.get("attendeeId").and_then(id_text);
            for message in self.thread_messages(&thread_id).await? {
                let Some(parsed) = ThreadMessage::read(&message, partner.as_deref()) else {
                    tracing::warn!(thread = %thread_id, "inbox message in an unknown shape; skipped");
                    continue;
                };
                if !parsed.from_prospect || parsed.at <= since || parsed.text.trim().is_empty() {
                    continue;
                }
                replies.push(Reply {
                    provider_message_id: format!("{thread_id}:{}", parsed.id),
                    profile_url: profile_url.clone(),
                    text: parsed.text,
                    received_at: parsed.at,
                    thread_id: thread_id.clone(),
                });
            }
        }
        replies.sort_by_key(|reply| reply.received_at);
        Ok(replies)
    }

    async fn connections_accepted_since(
        &self,
        _since: DateTime<Utc>,
    ) -> Result<Vec<ConnectionAccepted>, LinkedInError> {
        Err(LinkedInError::Unsupported {
            provider: PROVIDER,
            capability: "acceptance events (invitations run inside Gojiberry campaigns)",
        })
    }
}

/// Maps a non-2xx Gojiberry answer (NestJS envelope `{message, statusCode, error}`).
fn classify(kind: CallKind, response: &RawResponse) -> LinkedInError {
    let body: Option<ErrorBody> = serde_json::from_slice(&response.body).ok();
    if let Some(error) =
        classify_common_status(PROVIDER, kind, response.status, &response.headers, None)
    {
        return error;
    }
    let detail: String = body
        .map(|body| match body.message {
            Some(Value::String(text)) => text,
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; "),
            _ => body.error.unwrap_or_default(),
        })
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    let status = response.status.as_u16();
    if status == 404 {
        return LinkedInError::NotFound {
            provider: PROVIDER,
            what: if detail.is_empty() {
                "resource".into()
            } else {
                detail
            },
        };
    }
    let lowered = detail.to_lowercase();
    let code = if lowered.contains("excluded") {
        Some("excluded".to_owned())
    } else if lowered.contains("already exists") {
        Some("already_exists".to_owned())
    } else {
        None
    };
    LinkedInError::Permanent {
        provider: PROVIDER,
        status,
        code,
        detail,
    }
}

/// The array inside a paginated answer: the answer itself, or the first array found under
/// one of `keys`.
fn envelope_items(body: Value, keys: &[&str]) -> Result<Vec<Value>, LinkedInError> {
    match body {
        Value::Array(items) => Ok(items),
        Value::Object(mut object) => keys
            .iter()
            .find_map(|key| match object.remove(*key) {
                Some(Value::Array(items)) => Some(items),
                _ => None,
            })
            .ok_or_else(|| LinkedInError::InvalidResponse {
                provider: PROVIDER,
                reason: "a paginated answer without a list".into(),
            }),
        _ => Err(LinkedInError::InvalidResponse {
            provider: PROVIDER,
            reason: "a paginated answer that is neither a list nor an object".into(),
        }),
    }
}

fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn thread_profile_url(thread: &Value) -> Option<LinkedInUrl> {
    thread
        .get("contact")
        .and_then(|contact| contact.get("profileUrl"))
        .and_then(Value::as_str)
        .and_then(|url| LinkedInUrl::parse(url).ok())
}

fn split_name(full_name: &str) -> (String, String) {
    let mut parts = full_name.split_whitespace();
    let first = parts.next().unwrap_or_default().to_owned();
    let last = parts.collect::<Vec<_>>().join(" ");
    (first, last)
}

/// One inbox message, read from the undocumented message object.
struct ThreadMessage {
    id: String,
    text: String,
    at: DateTime<Utc>,
    from_prospect: bool,
}

impl ThreadMessage {
    fn read(message: &Value, partner: Option<&str>) -> Option<Self> {
        let field = |names: &[&str]| {
            names
                .iter()
                .find_map(|name| message.get(*name))
                .filter(|v| !v.is_null())
        };
        let id = field(&["id", "messageId", "message_id"]).and_then(id_text)?;
        let text = field(&["text", "message", "content", "body"])
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let at = field(&["timestamp", "createdAt", "created_at", "date", "sentAt"])
            .and_then(Value::as_str)
            .and_then(|at| DateTime::parse_from_rfc3339(at).ok())?
            .with_timezone(&Utc);
        let sent_by_us =
            field(&["is_sender", "isSender", "fromMe", "isFromMe"]).and_then(|flag| match flag {
                Value::Bool(flag) => Some(*flag),
                Value::Number(number) => Some(number.as_i64() == Some(1)),
                _ => None,
            });
        let from_prospect = match sent_by_us {
            Some(ours) => !ours,
            None => {
                let sender = field(&[
                    "sender_attendee_id",
                    "senderAttendeeId",
                    "attendeeId",
                    "senderId",
                ])
                .and_then(id_text)?;
                Some(sender.as_str()) == partner
            }
        };
        Some(Self {
            id,
            text,
            at,
            from_prospect,
        })
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<Value>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct ContactPage {
    #[serde(default)]
    contacts: Vec<ContactBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContactBody {
    id: u64,
    first_name: Option<String>,
    last_name: Option<String>,
    full_name: Option<String>,
    profile_url: Option<String>,
    #[serde(default)]
    state: Option<Value>,
}

impl ContactBody {
    fn into_contact(self) -> GojiberryContact {
        let full_name = self
            .full_name
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| {
                [self.first_name.as_deref(), self.last_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ")
            });
        GojiberryContact {
            id: self.id,
            full_name,
            profile_url: self
                .profile_url
                .as_deref()
                .and_then(|url| LinkedInUrl::parse(url).ok()),
            state: self
                .state
                .and_then(|state| serde_json::from_value(state).ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_direction_comes_from_the_flag_or_the_partner_id() {
        let theirs = json!({"id": 7, "text": "Yes please", "createdAt": "2026-03-02T10:00:00Z", "senderAttendeeId": "att-1"});
        let parsed = ThreadMessage::read(&theirs, Some("att-1")).unwrap();
        assert!(parsed.from_prospect);
        assert_eq!(parsed.id, "7");
        let ours =
            json!({"id": "m2", "text": "Hi", "timestamp": "2026-03-02T09:00:00Z", "is_sender": 1});
        assert!(
            !ThreadMessage::read(&ours, Some("att-1"))
                .unwrap()
                .from_prospect
        );
        let unknown = json!({"id": "m3", "text": "?", "timestamp": "2026-03-02T09:00:00Z"});
        assert!(
            ThreadMessage::read(&unknown, Some("att-1")).is_none(),
            "direction is never guessed"
        );
    }

    #[test]
    fn envelopes_are_read_from_lists_and_known_keys() {
        assert_eq!(envelope_items(json!([1, 2]), &["data"]).unwrap().len(), 2);
        assert_eq!(
            envelope_items(json!({"data": [1], "total": 1}), &["data"])
                .unwrap()
                .len(),
            1
        );
        assert!(envelope_items(json!({"total": 1}), &["data"]).is_err());
    }

    #[test]
    fn contact_states_use_gojiberry_spelling() {
        assert_eq!(
            serde_json::from_value::<ContactState>(json!("1stnetwork")).unwrap(),
            ContactState::FirstNetwork
        );
        assert_eq!(
            serde_json::to_value(ContactState::Paused).unwrap(),
            json!("paused")
        );
        assert_eq!(
            split_name("Maya  van Lindqvist"),
            ("Maya".into(), "van Lindqvist".into())
        );
    }
}
