//! The Unipile adapter: LinkedIn through Unipile's REST API v1 (`https://{DSN}/api/v1/…`,
//! header `X-API-KEY`).
//!
//! Endpoints, and where they are documented (developer.unipile.com, API reference v1.0;
//! looked up with the search tool, cross-checked against the official `unipile-node-sdk`):
//! - `POST /api/v1/linkedin/search?account_id=` — "Perform Linkedin search" (LinkedIn
//!   Specific); body `{"api":"classic","category":"people", keywords, industry[], location[],
//!   advanced_keywords{title}}`; industry and location take parameter ids, not names.
//! - `GET /api/v1/linkedin/search/parameters?type=INDUSTRY|LOCATION&keywords=` — "Retrieve
//!   LinkedIn search parameters", resolves names to those ids.
//! - `GET /api/v1/users/{identifier}?account_id=&linkedin_sections=experience` — "Retrieve a
//!   profile" (Users); `summary`, `headline`, `work_experience[].{company,position,end}`.
//! - `POST /api/v1/users/invite` — "Send invitation" (Users); JSON `{provider_id, account_id,
//!   message}` (message ≤ 300 chars), answer `{"object":"UserInvitationSent","invitation_id"}`.
//! - `POST /api/v1/chats` — "Start a new chat" (Messaging); multipart `account_id`,
//!   `attendees_ids`, `text`; answer `{"object":"ChatStarted","chat_id","message_id"}`.
//! - `GET /api/v1/messages?account_id=&after=` — "List all messages" (Messaging);
//!   items carry `is_sender`, `sender_attendee_id`, `chat_id`, `timestamp`.
//! - `GET /api/v1/chat_attendees/{id}` — "Retrieve an attendee" (Messaging); `profile_url`.
//! - `GET /api/v1/users/relations?account_id=` — "List all relations" (Users); items carry
//!   `created_at`, `public_identifier`, `public_profile_url`.
//! - `DELETE /api/v1/users/invite/sent/{invitation_id}?account_id=` — "Cancel an invitation"
//!   (Users; the ids `GET /api/v1/users/invite/sent` lists, i.e. the `invitation_id` the send
//!   returned). A 404 means nothing is pending under that id any more (already withdrawn).
//!
//! Errors come as `{"title","detail","type":"errors/<code>","status"}`. The invitation limits
//! (`cannot_resend_yet`, `cannot_resend_within_24hrs`, `already_invited_recently`,
//! `limit_exceeded`, `insufficient_credits`, all HTTP 422) become [`LinkedInError::Limit`];
//! 429 becomes [`LinkedInError::RateLimited`]; 5xx and timeouts become transient faults on
//! reads and unknown outcomes on sends.
//!
//! Classic people search has no company-size filter: `SearchCriteria::company_sizes` is not
//! applied here (the Lead Finder scores company size from the fetched profile instead).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use reqwest::header::{ACCEPT, HeaderValue};
use reqwest::{Method, RequestBuilder};
use salesdept_events::domain::LinkedInUrl;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::http::{
    CallKind, RawResponse, RetryPolicy, SentLedger, build_client, classify_common_status,
    decode_json, execute, secret_header, send_once, with_retries,
};
use super::{
    ConnectionAccepted, IdempotencyKey, InvitationNote, LimitKind, LinkedInError, LinkedInPort,
    MessageText, Provider, ProviderProfile, Recipient, Reply, SearchCriteria, SentMessage,
    profile_slug,
};

const PROVIDER: Provider = Provider::Unipile;
/// LinkedIn Classic search pages must not exceed 50 results (Unipile's `limit` doc).
const CLASSIC_PAGE_LIMIT: u32 = 50;
/// A bound on pages read per poll, so a broken cursor cannot loop forever.
const MAX_PAGES: usize = 20;

/// How to reach one Unipile-connected LinkedIn account.
#[derive(Clone, Debug)]
pub struct UnipileConfig {
    /// The account's DSN, e.g. `https://api1.unipile.com:13111` (a scheme-less `host:port`
    /// is taken as https). Secret: it names the tenant.
    pub dsn: SecretString,
    pub api_key: SecretString,
    /// Unipile's id of the connected LinkedIn account (the sending account).
    pub account_id: String,
    /// Timeout of one HTTP call, connect included.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl UnipileConfig {
    pub fn new(dsn: SecretString, api_key: SecretString, account_id: impl Into<String>) -> Self {
        Self {
            dsn,
            api_key,
            account_id: account_id.into(),
            timeout: Duration::from_secs(20),
            retry: RetryPolicy::default(),
        }
    }
}

/// The Unipile adapter of [`LinkedInPort`].
pub struct UnipileClient {
    http: reqwest::Client,
    base: url::Url,
    key_header: HeaderValue,
    account_id: String,
    retry: RetryPolicy,
    ledger: SentLedger,
}

impl fmt::Debug for UnipileClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnipileClient")
            .field("account_id", &self.account_id)
            .field("dsn", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl UnipileClient {
    pub fn new(config: UnipileConfig) -> Result<Self, LinkedInError> {
        let dsn = config.dsn.expose_secret().trim();
        let with_scheme = if dsn.contains("://") {
            dsn.to_owned()
        } else {
            format!("https://{dsn}")
        };
        let base = url::Url::parse(&with_scheme)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| {
                LinkedInError::InvalidRequest("the Unipile DSN is not an http(s) URL".into())
            })?;
        Ok(Self {
            http: build_client(config.timeout)?,
            base,
            key_header: secret_header(&config.api_key, "")?,
            account_id: config.account_id,
            retry: config.retry,
            ledger: SentLedger::new(10_000),
        })
    }

    fn endpoint(&self, segments: &[&str]) -> Result<url::Url, LinkedInError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| {
                LinkedInError::InvalidRequest("the Unipile DSN cannot take a path".into())
            })?
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        Ok(url)
    }

    fn request(&self, method: Method, segments: &[&str]) -> Result<RequestBuilder, LinkedInError> {
        Ok(self
            .http
            .request(method, self.endpoint(segments)?)
            .header("X-API-KEY", self.key_header.clone())
            .header(ACCEPT, "application/json"))
    }

    /// One call with the adapter's retry policy; `build` makes a fresh request per attempt.
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
        with_retries(&self.retry, operation, || {
            let request = build();
            async move {
                let response = execute(PROVIDER, kind, request?).await?;
                if !response.status.is_success() {
                    return Err(classify(kind, &response));
                }
                decode_json(PROVIDER, operation, &response.body)
            }
        })
        .await
    }

    /// The id LinkedIn search wants for an industry or place name, if it knows one.
    async fn resolve_parameter(
        &self,
        parameter_type: &str,
        name: &str,
    ) -> Result<Option<String>, LinkedInError> {
        let list: ParameterList = self
            .call(CallKind::Idempotent, "search parameters", || {
                Ok(self
                    .request(Method::GET, &["linkedin", "search", "parameters"])?
                    .query(&[
                        ("account_id", self.account_id.as_str()),
                        ("type", parameter_type),
                        ("keywords", name),
                        ("limit", "1"),
                    ]))
            })
            .await?;
        Ok(list.items.into_iter().next().map(|parameter| parameter.id))
    }

    async fn resolve_all(
        &self,
        parameter_type: &str,
        names: &[String],
    ) -> Result<Vec<String>, LinkedInError> {
        let mut ids = Vec::new();
        for name in names.iter().filter(|name| !name.trim().is_empty()) {
            match self.resolve_parameter(parameter_type, name.trim()).await? {
                Some(id) => ids.push(id),
                None => tracing::info!(
                    parameter_type,
                    "LinkedIn knows no search parameter for a criterion; ignored"
                ),
            }
        }
        Ok(ids)
    }

    async fn profile_by_identifier(&self, identifier: &str) -> Result<UserProfile, LinkedInError> {
        self.call(CallKind::Idempotent, "user profile", || {
            Ok(self.request(Method::GET, &["users", identifier])?.query(&[
                ("account_id", self.account_id.as_str()),
                ("linkedin_sections", "experience"),
            ]))
        })
        .await
    }

    /// The recipient's LinkedIn provider id (`ACo…`), looked up when the caller lacks it.
    async fn provider_id_of(&self, to: &Recipient) -> Result<String, LinkedInError> {
        if let Some(id) = to.provider_id.as_deref().filter(|id| !id.trim().is_empty()) {
            return Ok(id.to_owned());
        }
        self.profile_by_identifier(profile_slug(&to.profile_url))
            .await?
            .provider_id
            .ok_or_else(|| LinkedInError::InvalidResponse {
                provider: PROVIDER,
                reason: "the profile has no provider_id".into(),
            })
    }

    async fn attendee_profile_url(
        &self,
        attendee_id: &str,
    ) -> Result<Option<LinkedInUrl>, LinkedInError> {
        let attendee: Attendee = self
            .call(CallKind::Idempotent, "chat attendee", || {
                self.request(Method::GET, &["chat_attendees", attendee_id])
            })
            .await?;
        Ok(attendee
            .profile_url
            .as_deref()
            .and_then(|url| LinkedInUrl::parse(url).ok()))
    }
}

#[async_trait]
impl LinkedInPort for UnipileClient {
    fn provider(&self) -> Provider {
        PROVIDER
    }

    #[tracing::instrument(skip_all, fields(provider = "unipile", limit = criteria.limit), err)]
    async fn search_profiles(
        &self,
        criteria: &SearchCriteria,
    ) -> Result<Vec<ProviderProfile>, LinkedInError> {
        if criteria.limit == 0 {
            return Ok(Vec::new());
        }
        if !criteria.company_sizes.is_empty() {
            tracing::debug!("Classic people search has no company-size filter; not applied");
        }
        let industries = self.resolve_all("INDUSTRY", &criteria.industries).await?;
        let locations = self.resolve_all("LOCATION", &criteria.locations).await?;
        // Unipile answers 400 to empty arrays and empty strings: only filled filters are sent.
        let mut body = json!({"api": "classic", "category": "people"});
        if let Some(keywords) = criteria
            .keywords
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
        {
            body["keywords"] = json!(keywords);
        }
        if !industries.is_empty() {
            body["industry"] = json!(industries);
        }
        if !locations.is_empty() {
            body["location"] = json!(locations);
        }
        let titles: Vec<&str> = criteria
            .position_keywords
            .iter()
            .map(|keyword| keyword.trim())
            .filter(|keyword| !keyword.is_empty())
            .collect();
        if !titles.is_empty() {
            body["advanced_keywords"] = json!({ "title": titles.join(" OR ") });
        }

        let wanted = usize::try_from(criteria.limit).unwrap_or(usize::MAX);
        let mut profiles = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let remaining = u32::try_from(wanted - profiles.len()).unwrap_or(u32::MAX);
            let page_limit = remaining.min(CLASSIC_PAGE_LIMIT).to_string();
            let page: SearchPage = self
                .call(CallKind::Idempotent, "linkedin search", || {
                    let mut query = vec![
                        ("account_id", self.account_id.as_str()),
                        ("limit", page_limit.as_str()),
                    ];
                    if let Some(cursor) = cursor.as_deref() {
                        query.push(("cursor", cursor));
                    }
                    Ok(self
                        .request(Method::POST, &["linkedin", "search"])?
                        .query(&query)
                        .json(&body))
                })
                .await?;
            let page_was_empty = page.items.is_empty();
            profiles.extend(
                page.items
                    .into_iter()
                    .filter_map(SearchResult::into_profile),
            );
            cursor = next_cursor(cursor.as_deref(), page.cursor.as_ref());
            if profiles.len() >= wanted || cursor.is_none() || page_was_empty {
                break;
            }
        }
        profiles.truncate(wanted);
        Ok(profiles)
    }

    #[tracing::instrument(skip_all, fields(provider = "unipile"), err)]
    async fn fetch_profile(
        &self,
        profile_url: &LinkedInUrl,
    ) -> Result<ProviderProfile, LinkedInError> {
        let profile = self
            .profile_by_identifier(profile_slug(profile_url))
            .await?;
        Ok(profile.into_profile(profile_url))
    }

    #[tracing::instrument(skip_all, fields(provider = "unipile", key = %key), err)]
    async fn send_connection_request(
        &self,
        to: &Recipient,
        note: Option<&InvitationNote>,
        key: IdempotencyKey,
    ) -> Result<SentMessage, LinkedInError> {
        send_once(&self.ledger, key, || async {
            let provider_id = self.provider_id_of(to).await?;
            let mut body = json!({"provider_id": provider_id, "account_id": self.account_id});
            if let Some(note) = note {
                body["message"] = json!(note.as_str());
            }
            let sent: InvitationSent = self
                .call(CallKind::SideEffect, "send invitation", || {
                    Ok(self
                        .request(Method::POST, &["users", "invite"])?
                        .json(&body))
                })
                .await?;
            if let Some(usage) = sent.usage.filter(|usage| *usage >= 90.0) {
                tracing::warn!(
                    usage,
                    "LinkedIn invitation quota nearly spent on this account"
                );
            }
            let invitation_id =
                sent.invitation_id
                    .ok_or_else(|| LinkedInError::InvalidResponse {
                        provider: PROVIDER,
                        reason: "the invitation was accepted without an invitation_id".into(),
                    })?;
            Ok(SentMessage {
                provider_message_id: invitation_id,
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(provider = "unipile"), err)]
    async fn withdraw_invitation(&self, invitation_id: &str) -> Result<(), LinkedInError> {
        if invitation_id.trim().is_empty() {
            return Err(LinkedInError::InvalidRequest(
                "the invitation id must not be empty".into(),
            ));
        }
        let cancelled: Result<Value, LinkedInError> = self
            .call(CallKind::Idempotent, "cancel invitation", || {
                Ok(self
                    .request(Method::DELETE, &["users", "invite", "sent", invitation_id])?
                    .query(&[("account_id", self.account_id.as_str())]))
            })
            .await;
        match cancelled {
            Ok(_) | Err(LinkedInError::NotFound { .. }) => Ok(()),
            // A 2xx without a readable body still cancelled it.
            Err(LinkedInError::InvalidResponse { .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }

    #[tracing::instrument(skip_all, fields(provider = "unipile", key = %key), err)]
    async fn send_message(
        &self,
        to: &Recipient,
        text: &MessageText,
        key: IdempotencyKey,
    ) -> Result<SentMessage, LinkedInError> {
        send_once(&self.ledger, key, || async {
            let provider_id = self.provider_id_of(to).await?;
            // "Start a new chat" sends into the existing 1:1 conversation when there is one.
            let started: ChatStarted = self
                .call(CallKind::SideEffect, "start chat", || {
                    let form = reqwest::multipart::Form::new()
                        .text("account_id", self.account_id.clone())
                        .text("attendees_ids", provider_id.clone())
                        .text("text", text.as_str().to_owned());
                    Ok(self.request(Method::POST, &["chats"])?.multipart(form))
                })
                .await?;
            let provider_message_id = match (started.message_id, started.chat_id) {
                (Some(message_id), _) => message_id,
                // Some answers carry only the chat: its id still lets a reconciliation find
                // the message, so it is recorded rather than failing a send that happened.
                (None, Some(chat_id)) => format!("chat:{chat_id}"),
                (None, None) => {
                    return Err(LinkedInError::InvalidResponse {
                        provider: PROVIDER,
                        reason: "the message was accepted without a message_id or chat_id".into(),
                    });
                }
            };
            Ok(SentMessage {
                provider_message_id,
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(provider = "unipile", %since), err)]
    async fn replies_since(&self, since: DateTime<Utc>) -> Result<Vec<Reply>, LinkedInError> {
        let after = since.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut cursor: Option<String> = None;
        let mut incoming = Vec::new();
        for _ in 0..MAX_PAGES {
            let page: MessageList = self
                .call(CallKind::Idempotent, "list messages", || {
                    let mut query = vec![
                        ("account_id", self.account_id.as_str()),
                        ("after", after.as_str()),
                        ("limit", "100"),
                    ];
                    if let Some(cursor) = cursor.as_deref() {
                        query.push(("cursor", cursor));
                    }
                    Ok(self.request(Method::GET, &["messages"])?.query(&query))
                })
                .await?;
            let page_was_empty = page.items.is_empty();
            incoming.extend(page.items.into_iter().filter(Message::is_from_prospect));
            cursor = next_cursor(cursor.as_deref(), page.cursor.as_ref());
            if cursor.is_none() || page_was_empty {
                break;
            }
        }

        let mut profile_urls: HashMap<String, Option<LinkedInUrl>> = HashMap::new();
        let mut replies = Vec::new();
        for message in incoming {
            let Some(attendee) = message.sender_attendee_id.clone() else {
                continue;
            };
            let profile_url = match profile_urls.get(&attendee) {
                Some(known) => known.clone(),
                None => {
                    let url = self.attendee_profile_url(&attendee).await?;
                    profile_urls.insert(attendee, url.clone());
                    url
                }
            };
            let Some(profile_url) = profile_url else {
                tracing::warn!(message_id = %message.id, "reply from a sender without a LinkedIn profile URL; skipped");
                continue;
            };
            let received_at = DateTime::parse_from_rfc3339(&message.timestamp)
                .map(|at| at.with_timezone(&Utc))
                .map_err(|_| LinkedInError::InvalidResponse {
                    provider: PROVIDER,
                    reason: "a message timestamp is not RFC 3339".into(),
                })?;
            if received_at <= since {
                continue;
            }
            replies.push(Reply {
                provider_message_id: message.id,
                profile_url,
                text: message.text.unwrap_or_default(),
                received_at,
                thread_id: message.chat_id,
            });
        }
        replies.sort_by_key(|reply| reply.received_at);
        Ok(replies)
    }

    #[tracing::instrument(skip_all, fields(provider = "unipile", %since), err)]
    async fn connections_accepted_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ConnectionAccepted>, LinkedInError> {
        let mut cursor: Option<String> = None;
        let mut accepted = Vec::new();
        for _ in 0..MAX_PAGES {
            let page: RelationList = self
                .call(CallKind::Idempotent, "list relations", || {
                    let mut query =
                        vec![("account_id", self.account_id.as_str()), ("limit", "100")];
                    if let Some(cursor) = cursor.as_deref() {
                        query.push(("cursor", cursor));
                    }
                    Ok(self
                        .request(Method::GET, &["users", "relations"])?
                        .query(&query))
                })
                .await?;
            let mut any_recent = false;
            for relation in &page.items {
                let Some(at) = relation.created_at.as_ref().and_then(epoch_to_time) else {
                    continue;
                };
                if at <= since {
                    continue;
                }
                any_recent = true;
                if let Some(profile_url) = profile_url_from(
                    relation.public_profile_url.as_deref(),
                    None,
                    relation.public_identifier.as_deref(),
                ) {
                    accepted.push(ConnectionAccepted { profile_url, at });
                }
            }
            cursor = next_cursor(cursor.as_deref(), page.cursor.as_ref());
            // Relations come newest first: a page with nothing recent ends the walk.
            if cursor.is_none() || page.items.is_empty() || !any_recent {
                break;
            }
        }
        accepted.sort_by_key(|connection| connection.at);
        Ok(accepted)
    }
}

/// Maps a non-2xx Unipile answer to an error. Limit codes win over the status, so a limit is
/// never retried whatever status carries it.
fn classify(kind: CallKind, response: &RawResponse) -> LinkedInError {
    let body: Option<ErrorBody> = serde_json::from_slice(&response.body).ok();
    let code = body
        .as_ref()
        .and_then(|body| body.kind.as_deref())
        .map(|kind| kind.trim_start_matches("errors/").to_owned());
    let limit = match code.as_deref() {
        Some("cannot_resend_yet" | "cannot_resend_within_24hrs") => {
            Some(LimitKind::CannotResendYet)
        }
        Some("already_invited_recently") => Some(LimitKind::AlreadyInvitedRecently),
        Some("limit_exceeded") => Some(LimitKind::LimitExceeded),
        Some("insufficient_credits") => Some(LimitKind::InsufficientCredits),
        _ => None,
    };
    if let Some(kind) = limit {
        return LinkedInError::Limit {
            provider: PROVIDER,
            kind,
        };
    }
    if let Some(error) = classify_common_status(
        PROVIDER,
        kind,
        response.status,
        &response.headers,
        code.clone(),
    ) {
        return error;
    }
    let status = response.status.as_u16();
    if status == 404 {
        return LinkedInError::NotFound {
            provider: PROVIDER,
            what: code.unwrap_or_else(|| "resource".into()),
        };
    }
    let detail = body
        .and_then(|body| body.title)
        .unwrap_or_else(|| "no detail".into())
        .chars()
        .take(200)
        .collect();
    LinkedInError::Permanent {
        provider: PROVIDER,
        status,
        code,
        detail,
    }
}

/// The cursor of the next page, or `None` when there is none, or when the provider repeats
/// the cursor it was given (a broken cursor must not read the same page twenty times).
fn next_cursor(previous: Option<&str>, cursor: Option<&Value>) -> Option<String> {
    cursor
        .and_then(Value::as_str)
        .filter(|cursor| !cursor.is_empty() && Some(*cursor) != previous)
        .map(str::to_owned)
}

/// Unipile's `created_at` on relations is epoch seconds in some answers and milliseconds in
/// others; anything past year 5138 in seconds is read as milliseconds.
fn epoch_to_time(value: &Value) -> Option<DateTime<Utc>> {
    let number = value
        .as_i64()
        .or_else(|| value.as_f64().map(|float| float as i64))
        .or_else(|| value.as_str().and_then(|text| text.parse().ok()))?;
    if number > 100_000_000_000 {
        Utc.timestamp_millis_opt(number).single()
    } else {
        Utc.timestamp_opt(number, 0).single()
    }
}

fn profile_url_from(
    public_profile_url: Option<&str>,
    profile_url: Option<&str>,
    public_identifier: Option<&str>,
) -> Option<LinkedInUrl> {
    [public_profile_url, profile_url]
        .into_iter()
        .flatten()
        .find_map(|url| LinkedInUrl::parse(url).ok())
        .or_else(|| {
            public_identifier
                .filter(|id| !id.trim().is_empty())
                .and_then(|id| {
                    LinkedInUrl::parse(&format!("https://www.linkedin.com/in/{id}")).ok()
                })
        })
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

fn full_name(first: Option<&str>, last: Option<&str>) -> String {
    [first, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    title: Option<String>,
}

#[derive(Deserialize)]
struct ParameterList {
    #[serde(default)]
    items: Vec<Parameter>,
}

#[derive(Deserialize)]
struct Parameter {
    id: String,
}

#[derive(Deserialize)]
struct SearchPage {
    items: Vec<SearchResult>,
    #[serde(default)]
    cursor: Option<Value>,
}

#[derive(Deserialize)]
struct SearchResult {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    public_identifier: Option<String>,
    public_profile_url: Option<String>,
    profile_url: Option<String>,
    name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    headline: Option<String>,
    location: Option<String>,
    industry: Option<String>,
}

impl SearchResult {
    fn into_profile(self) -> Option<ProviderProfile> {
        if self.kind.as_deref().is_some_and(|kind| kind != "PEOPLE") {
            return None;
        }
        let profile_url = profile_url_from(
            self.public_profile_url.as_deref(),
            self.profile_url.as_deref(),
            self.public_identifier.as_deref(),
        )?;
        let name = non_empty(self.name)
            .unwrap_or_else(|| full_name(self.first_name.as_deref(), self.last_name.as_deref()));
        Some(ProviderProfile {
            provider_id: self.id?,
            name,
            position: non_empty(self.headline),
            company: None,
            company_size: None,
            industry: non_empty(self.industry),
            location: non_empty(self.location),
            about: None,
            recent_activity: None,
            profile_url,
            is_connection: false,
        })
    }
}

#[derive(Deserialize)]
struct UserProfile {
    provider_id: Option<String>,
    public_identifier: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    headline: Option<String>,
    summary: Option<String>,
    location: Option<String>,
    #[serde(default)]
    work_experience: Vec<WorkExperience>,
}

#[derive(Deserialize)]
struct WorkExperience {
    company: Option<String>,
    position: Option<String>,
    #[serde(default)]
    end: Option<Value>,
}

impl UserProfile {
    fn into_profile(self, asked_for: &LinkedInUrl) -> ProviderProfile {
        // The current position is the first experience without an end date.
        let current = self
            .work_experience
            .iter()
            .find(|experience| experience.end.as_ref().is_none_or(Value::is_null));
        let profile_url = profile_url_from(None, None, self.public_identifier.as_deref())
            .unwrap_or_else(|| asked_for.clone());
        ProviderProfile {
            provider_id: self.provider_id.unwrap_or_default(),
            name: full_name(self.first_name.as_deref(), self.last_name.as_deref()),
            position: non_empty(self.headline)
                .or_else(|| current.and_then(|current| non_empty(current.position.clone()))),
            company: current.and_then(|current| non_empty(current.company.clone())),
            company_size: None,
            industry: None,
            location: non_empty(self.location),
            about: non_empty(self.summary),
            recent_activity: None,
            profile_url,
            is_connection: false,
        }
    }
}

#[derive(Deserialize)]
struct InvitationSent {
    invitation_id: Option<String>,
    #[serde(default)]
    usage: Option<f64>,
}

#[derive(Deserialize)]
struct ChatStarted {
    chat_id: Option<String>,
    message_id: Option<String>,
}

#[derive(Deserialize)]
struct MessageList {
    items: Vec<Message>,
    #[serde(default)]
    cursor: Option<Value>,
}

#[derive(Deserialize)]
struct Message {
    id: String,
    chat_id: String,
    text: Option<String>,
    timestamp: String,
    is_sender: Flag,
    #[serde(default)]
    is_event: Flag,
    #[serde(default)]
    deleted: Flag,
    sender_attendee_id: Option<String>,
}

impl Message {
    fn is_from_prospect(&self) -> bool {
        !self.is_sender.0
            && !self.is_event.0
            && !self.deleted.0
            && self
                .text
                .as_deref()
                .is_some_and(|text| !text.trim().is_empty())
    }
}

/// Unipile writes booleans as `0`/`1` on messages and as `true`/`false` elsewhere.
#[derive(Default)]
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Flag(match Value::deserialize(deserializer)? {
            Value::Bool(flag) => flag,
            Value::Number(number) => number.as_i64() == Some(1),
            Value::Null => false,
            _ => return Err(serde::de::Error::custom("expected 0, 1 or a boolean")),
        }))
    }
}

#[derive(Deserialize)]
struct Attendee {
    profile_url: Option<String>,
}

#[derive(Deserialize)]
struct RelationList {
    items: Vec<Relation>,
    #[serde(default)]
    cursor: Option<Value>,
}

#[derive(Deserialize)]
struct Relation {
    public_identifier: Option<String>,
    public_profile_url: Option<String>,
    created_at: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_or_empty_cursor_ends_the_walk() {
        assert_eq!(next_cursor(None, Some(&json!("p2"))), Some("p2".into()));
        assert_eq!(next_cursor(Some("p2"), Some(&json!("p2"))), None);
        assert_eq!(next_cursor(Some("p2"), Some(&json!(""))), None);
        assert_eq!(next_cursor(Some("p2"), Some(&Value::Null)), None);
        assert_eq!(next_cursor(None, None), None);
    }

    #[test]
    fn relation_times_in_seconds_and_milliseconds_agree() {
        let seconds = epoch_to_time(&json!(1_712_160_000)).unwrap();
        let millis = epoch_to_time(&json!(1_712_160_000_000_i64)).unwrap();
        assert_eq!(seconds, millis);
    }

    #[test]
    fn the_current_position_is_the_one_without_an_end() {
        let profile: UserProfile = serde_json::from_value(json!({
            "provider_id": "ACoAAA1",
            "public_identifier": "maya-lindqvist-d1",
            "first_name": "Maya", "last_name": "Lindqvist",
            "summary": "Building distributed data infrastructure.",
            "location": "Stockholm, Sweden",
            "work_experience": [
                {"company": "Fjordbyte", "position": "CTO", "end": null},
                {"company": "Old Co", "position": "Engineer", "end": "1/1/2019"}
            ]
        }))
        .unwrap();
        let asked = LinkedInUrl::parse("linkedin.com/in/maya-lindqvist-d1").unwrap();
        let profile = profile.into_profile(&asked);
        assert_eq!(profile.name, "Maya Lindqvist");
        assert_eq!(profile.position.as_deref(), Some("CTO"));
        assert_eq!(profile.company.as_deref(), Some("Fjordbyte"));
        assert_eq!(
            profile.about.as_deref(),
            Some("Building distributed data infrastructure.")
        );
        assert_eq!(profile.profile_url, asked);
    }
}
