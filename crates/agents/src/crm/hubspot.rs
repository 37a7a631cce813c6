//! The HubSpot CRM adapter, over the CRM v3 objects API with a private-app token.
//!
//! An upsert is: search contacts by LinkedIn URL (the stored form and its common variants)
//! or e-mail; update the one found, or create one (a 409 "already exists" on the e-mail is
//! turned into an update of the existing id); then search the contact's notes for this
//! lead's marker line, update that note or create one associated with the contact
//! (association type 202, note to contact). Every step searches before it writes, so a
//! retried upsert — of a step or of the whole — does not duplicate anything.
//!
//! HubSpot's search index trails its writes by a few seconds: two upserts of a lead with no
//! e-mail, closer together than that, could both miss the contact. The callers upsert once
//! per `lead_qualified` event, so this window is not reached in practice.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::retry::{RetryPolicy, with_retry};
use super::{Change, CrmError, CrmLead, CrmPort, CrmRecord, Party};
use crate::mail::escape_html;

/// HubSpot's documented association type id for "note to contact".
const NOTE_TO_CONTACT: u32 = 202;
/// Notes of one contact read at most while looking for this lead's note (100 a page).
const MAX_NOTE_PAGES: usize = 10;

/// Everything the HubSpot adapter needs; the server crate fills it from configuration.
#[derive(Clone)]
pub struct HubSpotConfig {
    /// `https://api.hubapi.com` in production; a local fake in tests.
    pub base_url: String,
    /// A private-app access token (scopes: contacts read/write, notes via contacts).
    pub token: SecretString,
    /// The contact property holding the LinkedIn profile URL (HubSpot's own is
    /// `hs_linkedin_url`).
    pub linkedin_url_property: String,
    /// A custom contact property to receive Speaker/Sponsor/Other, if the portal has one.
    pub classification_property: Option<String>,
    /// Bounds each HTTP call.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
}

impl HubSpotConfig {
    /// The production API with the default property names, a 15 s call timeout and the
    /// default retry policy.
    pub fn new(token: SecretString) -> Self {
        Self {
            base_url: "https://api.hubapi.com".to_owned(),
            token,
            linkedin_url_property: "hs_linkedin_url".to_owned(),
            classification_property: None,
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        }
    }
}

impl fmt::Debug for HubSpotConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSpotConfig")
            .field("base_url", &self.base_url)
            .field("token", &"[redacted]")
            .field("linkedin_url_property", &self.linkedin_url_property)
            .field("classification_property", &self.classification_property)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// Upserts qualified leads as HubSpot contacts with a conversation note.
#[derive(Clone)]
pub struct HubSpotCrm {
    http: reqwest::Client,
    base_url: String,
    token: SecretString,
    linkedin_url_property: String,
    classification_property: Option<String>,
    timeout: Duration,
    retry: RetryPolicy,
}

impl fmt::Debug for HubSpotCrm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSpotCrm")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct SearchPage {
    #[serde(default)]
    results: Vec<CrmObject>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct Paging {
    next: Option<NextPage>,
}

#[derive(Debug, Deserialize)]
struct NextPage {
    after: String,
}

#[derive(Debug, Deserialize)]
struct CrmObject {
    id: String,
    #[serde(default)]
    properties: BTreeMap<String, Option<String>>,
}

impl CrmObject {
    fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|value| value.as_deref())
    }
}

/// HubSpot's error body; every field is optional in practice.
#[derive(Debug, Default, Deserialize)]
struct HubSpotErrorBody {
    message: Option<String>,
    category: Option<String>,
    #[serde(default)]
    errors: Vec<HubSpotErrorDetail>,
}

#[derive(Debug, Deserialize)]
struct HubSpotErrorDetail {
    message: Option<String>,
}

impl HubSpotCrm {
    pub fn new(config: &HubSpotConfig) -> Result<Self, CrmError> {
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(CrmError::Config(format!(
                "HubSpot base URL {base_url:?} must start with http:// or https://"
            )));
        }
        let token = config.token.expose_secret();
        if token.is_empty() || token.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(CrmError::Config(
                "HubSpot token is empty or contains whitespace".to_owned(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("salesdept/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| CrmError::Config(format!("HTTP client: {error}")))?;
        Ok(Self {
            http,
            base_url,
            token: config.token.clone(),
            linkedin_url_property: config.linkedin_url_property.clone(),
            classification_property: config.classification_property.clone(),
            timeout: config.timeout,
            retry: config.retry,
        })
    }

    /// One upsert attempt, every step search-first so that a retry is safe.
    async fn upsert_once(&self, lead: &CrmLead) -> Result<CrmRecord, CrmError> {
        let properties = self.contact_properties(lead);
        let (contact_id, contact) = match self.find_contact(lead).await? {
            Some(existing) => {
                let change = self.update_contact(&existing, &properties).await?;
                (existing.id, change)
            }
            None => self.create_contact(&properties).await?,
        };
        let body = note_body(lead);
        let (note_id, note) = match self.find_note(&contact_id, lead).await? {
            Some(existing) if existing.property("hs_note_body") == Some(body.as_str()) => {
                (existing.id, Change::Unchanged)
            }
            Some(existing) => {
                self.call(
                    Method::PATCH,
                    &format!("/crm/v3/objects/notes/{}", existing.id),
                    &json!({ "properties": { "hs_note_body": body } }),
                )
                .await?;
                (existing.id, Change::Updated)
            }
            None => {
                let created = self
                    .call(
                        Method::POST,
                        "/crm/v3/objects/notes",
                        &json!({
                            "properties": {
                                "hs_timestamp": lead.qualified_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                                "hs_note_body": body,
                            },
                            "associations": [{
                                "to": { "id": contact_id },
                                "types": [{
                                    "associationCategory": "HUBSPOT_DEFINED",
                                    "associationTypeId": NOTE_TO_CONTACT,
                                }],
                            }],
                        }),
                    )
                    .await?;
                (object_id(&created)?, Change::Created)
            }
        };
        Ok(CrmRecord::Upserted {
            contact_id,
            contact,
            note_id,
            note,
        })
    }

    fn contact_properties(&self, lead: &CrmLead) -> BTreeMap<String, String> {
        let mut properties = BTreeMap::new();
        let mut put = |name: &str, value: Option<&str>| {
            if let Some(value) = value.map(str::trim).filter(|value| !value.is_empty()) {
                properties.insert(name.to_owned(), value.to_owned());
            }
        };
        let name = lead.name.trim();
        let (first, last) = name.split_once(char::is_whitespace).unwrap_or((name, ""));
        put("firstname", Some(first));
        put("lastname", Some(last));
        let email = lead.email.as_ref().map(ToString::to_string);
        put("email", email.as_deref());
        put("company", lead.company.as_deref());
        put("jobtitle", lead.position.as_deref());
        put(
            &self.linkedin_url_property,
            Some(lead.linkedin_url.as_str()),
        );
        if let Some(property) = &self.classification_property {
            put(property, Some(lead.classification.as_str()));
        }
        properties
    }

    async fn find_contact(&self, lead: &CrmLead) -> Result<Option<CrmObject>, CrmError> {
        let variants = linkedin_url_variants(lead.linkedin_url.as_str());
        let mut groups = vec![json!({ "filters": [{
            "propertyName": self.linkedin_url_property,
            "operator": "IN",
            "values": variants,
        }]})];
        if let Some(email) = &lead.email {
            groups.push(json!({ "filters": [{
                "propertyName": "email",
                "operator": "EQ",
                "value": email.to_string(),
            }]}));
        }
        let page: SearchPage = parse(
            self.call(
                Method::POST,
                "/crm/v3/objects/contacts/search",
                &json!({
                    "filterGroups": groups,
                    "properties": ["email", "firstname", "lastname", "company", "jobtitle", self.linkedin_url_property],
                    "limit": 10,
                }),
            )
            .await?,
        )?;
        // Prefer the contact that has this profile, then the one with this e-mail.
        let mut results = page.results;
        let by_url = results.iter().position(|contact| {
            contact
                .property(&self.linkedin_url_property)
                .is_some_and(|url| {
                    variants
                        .iter()
                        .any(|variant| variant == &url.to_lowercase())
                })
        });
        Ok(match by_url {
            Some(index) => Some(results.swap_remove(index)),
            None => results.into_iter().next(),
        })
    }

    async fn update_contact(
        &self,
        existing: &CrmObject,
        properties: &BTreeMap<String, String>,
    ) -> Result<Change, CrmError> {
        let changed: BTreeMap<&String, &String> = properties
            .iter()
            .filter(|(name, value)| existing.property(name) != Some(value.as_str()))
            .collect();
        if changed.is_empty() {
            return Ok(Change::Unchanged);
        }
        self.call(
            Method::PATCH,
            &format!("/crm/v3/objects/contacts/{}", existing.id),
            &json!({ "properties": changed }),
        )
        .await?;
        Ok(Change::Updated)
    }

    async fn create_contact(
        &self,
        properties: &BTreeMap<String, String>,
    ) -> Result<(String, Change), CrmError> {
        match self
            .call(
                Method::POST,
                "/crm/v3/objects/contacts",
                &json!({ "properties": properties }),
            )
            .await
        {
            Ok(created) => Ok((object_id(&created)?, Change::Created)),
            Err(error) => {
                // The e-mail belongs to a contact the search did not return (its index
                // trails writes): HubSpot names that contact in its 409, so update it.
                let existing = match &error {
                    CrmError::Rejected {
                        status: 409,
                        message,
                        ..
                    } => existing_id_in(message),
                    _ => None,
                };
                let Some(id) = existing else {
                    return Err(error);
                };
                self.call(
                    Method::PATCH,
                    &format!("/crm/v3/objects/contacts/{id}"),
                    &json!({ "properties": properties }),
                )
                .await?;
                Ok((id, Change::Updated))
            }
        }
    }

    async fn find_note(
        &self,
        contact_id: &str,
        lead: &CrmLead,
    ) -> Result<Option<CrmObject>, CrmError> {
        let marker = note_marker(lead);
        let mut after: Option<String> = None;
        for _ in 0..MAX_NOTE_PAGES {
            let mut request = json!({
                "filterGroups": [{ "filters": [{
                    "propertyName": "associations.contact",
                    "operator": "EQ",
                    "value": contact_id,
                }]}],
                "properties": ["hs_note_body"],
                "limit": 100,
            });
            if let Some(after) = &after {
                request["after"] = json!(after);
            }
            let page: SearchPage = parse(
                self.call(Method::POST, "/crm/v3/objects/notes/search", &request)
                    .await?,
            )?;
            let next = page
                .paging
                .and_then(|paging| paging.next)
                .map(|next| next.after);
            if let Some(note) = page.results.into_iter().find(|note| {
                note.property("hs_note_body")
                    .is_some_and(|body| body.contains(&marker))
            }) {
                return Ok(Some(note));
            }
            match next {
                Some(next) => after = Some(next),
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// One HTTP call: the JSON answer of a 2xx, or the error it maps to.
    #[tracing::instrument(
        name = "crm_call",
        skip(self, body),
        fields(provider = "hubspot", %method, http.response.status_code = tracing::field::Empty)
    )]
    async fn call(&self, method: Method, path: &str, body: &Value) -> Result<Value, CrmError> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(self.token.expose_secret())
            .json(body)
            .send()
            .await
            .map_err(|error| self.transport_error(error))?;
        let status = response.status();
        tracing::Span::current().record("http.response.status_code", status.as_u16());
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .map_err(|error| self.transport_error(error))?;
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text)
                .map_err(|error| CrmError::InvalidResponse(format!("{path}: {error}")));
        }
        Err(self.status_error(status, &headers, &text))
    }

    fn status_error(&self, status: StatusCode, headers: &HeaderMap, text: &str) -> CrmError {
        let body: HubSpotErrorBody = serde_json::from_str(text).unwrap_or_default();
        let mut message = body
            .message
            .clone()
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("no message").to_owned());
        let details: Vec<&str> = body
            .errors
            .iter()
            .filter_map(|detail| detail.message.as_deref())
            .filter(|detail| !message.contains(detail))
            .collect();
        if !details.is_empty() {
            message = format!("{message} ({})", details.join("; "));
        }
        let message = self.redact(&message);
        match status.as_u16() {
            429 => CrmError::RateLimited {
                retry_after: retry_after(headers),
                message,
            },
            code @ 500..=599 => CrmError::Unavailable {
                status: code,
                message,
            },
            code => CrmError::Rejected {
                status: code,
                category: body.category,
                message,
            },
        }
    }

    fn transport_error(&self, error: reqwest::Error) -> CrmError {
        if error.is_timeout() {
            return CrmError::Timeout(self.timeout);
        }
        if error.is_decode() {
            return CrmError::InvalidResponse(self.redact(&error.without_url().to_string()));
        }
        // The URL is ours and carries no secret, but keep messages short and uniform.
        CrmError::Connection(self.redact(&error.without_url().to_string()))
    }

    /// Removes the token from any text that came from outside, in case a server echoes it.
    fn redact(&self, text: &str) -> String {
        text.replace(self.token.expose_secret(), "[redacted]")
    }
}

#[async_trait]
impl CrmPort for HubSpotCrm {
    #[tracing::instrument(skip_all, fields(lead_id = %lead.lead_id), err)]
    async fn upsert_qualified_lead(&self, lead: &CrmLead) -> Result<CrmRecord, CrmError> {
        with_retry(&self.retry, || self.upsert_once(lead)).await
    }
}

fn parse<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, CrmError> {
    serde_json::from_value(value).map_err(|error| CrmError::InvalidResponse(error.to_string()))
}

fn object_id(value: &Value) -> Result<String, CrmError> {
    match value.get("id") {
        Some(Value::String(id)) => Ok(id.clone()),
        Some(Value::Number(id)) => Ok(id.to_string()),
        _ => Err(CrmError::InvalidResponse(
            "created object has no id".to_owned(),
        )),
    }
}

/// `Retry-After` in seconds (HubSpot does not send the HTTP-date form).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|secs| secs.is_finite() && *secs >= 0.0)
        .map(Duration::from_secs_f64)
}

/// HubSpot's 409 on a duplicate e-mail reads "Contact already exists. Existing ID: 123".
fn existing_id_in(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("Existing ID:")?;
    let id: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (!id.is_empty()).then_some(id)
}

/// The forms a LinkedIn profile URL is commonly stored in, all lower-case (HubSpot's `IN`
/// operator compares lower-case strings).
fn linkedin_url_variants(normalised: &str) -> Vec<String> {
    let path = normalised
        .strip_prefix("https://www.linkedin.com")
        .unwrap_or(normalised);
    let mut variants = Vec::new();
    for host in [
        "https://www.linkedin.com",
        "https://linkedin.com",
        "http://www.linkedin.com",
        "www.linkedin.com",
        "linkedin.com",
    ] {
        variants.push(format!("{host}{path}").to_lowercase());
        variants.push(format!("{host}{path}/").to_lowercase());
    }
    variants
}

fn note_marker(lead: &CrmLead) -> String {
    format!("salesdept lead {}", lead.lead_id)
}

/// The note's HTML: the lead, the conversation, and a marker line that finds it again.
fn note_body(lead: &CrmLead) -> String {
    let mut body = format!(
        "<p><strong>Qualified {} lead from salesdept</strong></p>",
        lead.classification
    );
    let mut facts = vec![format!("Name: {}", escape_html(&lead.name))];
    if let Some(position) = &lead.position {
        facts.push(format!("Position: {}", escape_html(position)));
    }
    if let Some(company) = &lead.company {
        facts.push(format!("Company: {}", escape_html(company)));
    }
    facts.push(format!(
        "LinkedIn: {}",
        escape_html(lead.linkedin_url.as_str())
    ));
    body.push_str(&format!("<p>{}</p>", facts.join("<br>")));
    for turn in &lead.conversation {
        let who = match &turn.who {
            Party::Us { account } => format!("Us ({})", escape_html(account)),
            Party::Lead => escape_html(&lead.name),
        };
        body.push_str(&format!(
            "<p><em>{} — {}</em><br>{}</p>",
            turn.at.format("%Y-%m-%d %H:%M UTC"),
            who,
            escape_html(&turn.text).replace('\n', "<br>")
        ));
    }
    body.push_str(&format!("<p><small>{}</small></p>", note_marker(lead)));
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_existing_id_is_read_from_a_409_message() {
        assert_eq!(
            existing_id_in("Contact already exists. Existing ID: 5101"),
            Some("5101".to_owned())
        );
        assert_eq!(existing_id_in("Contact already exists."), None);
    }

    #[test]
    fn url_variants_cover_the_common_stored_forms() {
        let variants = linkedin_url_variants("https://www.linkedin.com/in/ada");
        for form in [
            "https://www.linkedin.com/in/ada",
            "https://www.linkedin.com/in/ada/",
            "linkedin.com/in/ada",
            "http://www.linkedin.com/in/ada/",
        ] {
            assert!(variants.contains(&form.to_owned()), "{form}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_ignores_garbage() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn config_debug_never_prints_the_token() {
        let config = HubSpotConfig::new(SecretString::from("pat-na1-secret"));
        let crm = HubSpotCrm::new(&config).unwrap();
        let printed = format!("{config:?} {crm:?}");
        assert!(!printed.contains("pat-na1-secret"));
    }

    #[test]
    fn a_blank_or_multiline_token_is_a_configuration_error() {
        for token in ["", "pat\nInjected: header", "two words"] {
            let config = HubSpotConfig::new(SecretString::from(token));
            assert!(
                matches!(HubSpotCrm::new(&config), Err(CrmError::Config(_))),
                "{token:?}"
            );
        }
    }
}
