//! The Dripify campaign channel. Dripify's "Open API" (higher plans only) cannot send
//! anything and takes no per-lead text: it adds leads to an existing campaign by profile URL
//! and reads campaigns, leads, lead activity and statistics. So this is not a
//! [`LinkedInPort`](super::LinkedInPort): the Outreach agent pushes allocated leads into a
//! Dripify campaign (whose message templates live in Dripify's UI), then reads the lead
//! activity back as acceptances and reply signals; reply *texts* arrive by the campaign's
//! reply webhook ([`super::webhooks::parse_dripify`]), which Dripify does not sign.
//!
//! Endpoints (base `https://api.dripify.com/v1/open-api`, header `X-Api-Key`, 60 requests a
//! minute and 5,000 a day per key; a 429 carries `Retry-After`):
//! - `GET /campaigns` and `GET /campaigns/{id}/statistics`
//! - `POST /campaigns/{id}/leads` `{name, leads: [{linkedinUrl}]}`, 1–1000 leads; always
//!   creates a new lead list in the campaign; answers `{leadList: {id}, acceptedCount,
//!   duplicateCount}`
//! - `GET /campaigns/{id}/lead-lists`
//! - `GET /leads?campaignId=&limit=&cursor=` (`items`, `nextCursor`; a lead carries
//!   `linkedinProfileUrl`, `lastAction {sequenceEventType, createdAt}`)
//! - `GET /leads/{id}/activity` (`items[] {sequenceEventType, createdAt, campaignId}`)
//!
//! Sources, and what could not be confirmed: the official pages (the Redoc "Dripify Public
//! API 1.0.0" at api.dripify.com and the help article "Open API") are not in the search
//! tool's corpus. The endpoints, auth header, limits and field names above come from three
//! independent public clients of that API that cite it, and they agree. The activity event
//! vocabulary is not enumerated anywhere reachable: only `CONNECT_SENT` is named as an
//! example, so other event types are classified by pattern ([`LeadActivityKind::classify`])
//! and anything unrecognised is kept as [`LeadActivityKind::Other`] without changing a
//! lead's status.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{ACCEPT, HeaderValue};
use reqwest::{Method, RequestBuilder};
use salesdept_events::domain::LinkedInUrl;
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::http::{
    CallKind, RawResponse, RetryPolicy, build_client, classify_common_status, decode_json, execute,
    secret_header, with_retries,
};
use super::{ConnectionAccepted, IdempotencyKey, LimitKind, LinkedInError, Provider};

const PROVIDER: Provider = Provider::Dripify;
pub const DEFAULT_BASE_URL: &str = "https://api.dripify.com";
/// The documented per-key budget.
pub const DOCUMENTED_REQUESTS_PER_MINUTE: u32 = 60;
/// At most this many leads per push (documented 1–1000).
pub const MAX_LEADS_PER_PUSH: usize = 1000;
const MAX_PAGES: usize = 50;
/// A `Retry-After` this long means the 5,000-a-day budget is spent, not a burst.
const DAILY_BUDGET_WAIT: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug)]
pub struct DripifyConfig {
    pub base_url: url::Url,
    pub api_key: SecretString,
    pub requests_per_minute: NonZeroU32,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl DripifyConfig {
    pub fn new(api_key: SecretString) -> Self {
        Self {
            base_url: url::Url::parse(DEFAULT_BASE_URL).expect("the default base URL parses"),
            api_key,
            requests_per_minute: NonZeroU32::new(DOCUMENTED_REQUESTS_PER_MINUTE).expect("non-zero"),
            timeout: Duration::from_secs(20),
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DripifyCampaign {
    pub id: u64,
    pub name: String,
    pub status: Option<String>,
}

/// A campaign's figures as Dripify computes them (rates in percent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignStatistics {
    #[serde(default)]
    pub total_leads: u64,
    #[serde(default)]
    pub contacted_leads: u64,
    pub acceptance_rate: Option<f64>,
    pub acceptance_rate_leads: Option<u64>,
    pub reply_rate: Option<f64>,
    pub reply_rate_leads: Option<u64>,
    #[serde(default)]
    pub lead_status_breakdown: Value,
}

/// What a push did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedLeads {
    /// The lead list the push created in the campaign (its name is [`push_list_name`]).
    pub lead_list_id: Option<u64>,
    pub accepted: u64,
    pub duplicates: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DripifyLead {
    pub id: u64,
    pub profile_url: Option<LinkedInUrl>,
    pub full_name: String,
    pub last_action_at: Option<DateTime<Utc>>,
}

/// What a lead-activity event means for our lead's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeadActivityKind {
    InvitationSent,
    InvitationAccepted,
    MessageSent,
    /// The lead replied; the text comes with the reply webhook, not with the activity.
    Replied,
    Failed,
    Other(String),
}

impl LeadActivityKind {
    /// Classifies Dripify's `sequenceEventType`. Only `CONNECT_SENT` is documented; the rest
    /// is recognised by pattern, acceptance and reply before "sent" so that e.g.
    /// `CONNECT_ACCEPTED` is never read as an invitation sent.
    pub fn classify(event_type: &str) -> Self {
        let upper = event_type.to_ascii_uppercase();
        let has = |needle: &str| upper.contains(needle);
        if has("REPL") || has("ANSWER") || has("RESPON") {
            Self::Replied
        } else if has("ACCEPT") || upper == "CONNECTED" {
            Self::InvitationAccepted
        } else if has("FAIL") || has("ERROR") || has("CORRUPT") {
            Self::Failed
        } else if (has("CONNECT") || has("INVIT")) && has("SENT") {
            Self::InvitationSent
        } else if (has("MESSAGE") || has("INMAIL") || has("FOLLOW_UP")) && has("SENT") {
            Self::MessageSent
        } else {
            Self::Other(event_type.to_owned())
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadActivity {
    pub kind: LeadActivityKind,
    pub raw_type: String,
    pub at: DateTime<Utc>,
    pub campaign_id: Option<u64>,
}

/// One lead's activity event, with the lead's profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadEvent {
    pub lead_id: u64,
    pub profile_url: LinkedInUrl,
    pub kind: LeadActivityKind,
    pub at: DateTime<Utc>,
}

/// The name of the lead list a push creates: it carries the idempotency key, so that after a
/// crash [`DripifyClient::find_pushed_list`] can tell whether the push happened.
pub fn push_list_name(key: IdempotencyKey) -> String {
    format!("salesdept-{key}")
}

pub struct DripifyClient {
    http: reqwest::Client,
    base: url::Url,
    key_header: HeaderValue,
    limiter: DefaultDirectRateLimiter,
    retry: RetryPolicy,
}

impl fmt::Debug for DripifyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DripifyClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl DripifyClient {
    pub fn new(config: DripifyConfig) -> Result<Self, LinkedInError> {
        let burst = NonZeroU32::new(config.requests_per_minute.get().min(5)).expect("non-zero");
        Ok(Self {
            http: build_client(config.timeout)?,
            base: config.base_url,
            key_header: secret_header(&config.api_key, "")?,
            limiter: RateLimiter::direct(
                Quota::per_minute(config.requests_per_minute).allow_burst(burst),
            ),
            retry: config.retry,
        })
    }

    fn request(&self, method: Method, segments: &[&str]) -> Result<RequestBuilder, LinkedInError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| {
                LinkedInError::InvalidRequest("the Dripify base URL cannot take a path".into())
            })?
            .pop_if_empty()
            .extend(["v1", "open-api"])
            .extend(segments);
        Ok(self
            .http
            .request(method, url)
            .header("X-Api-Key", self.key_header.clone())
            .header(ACCEPT, "application/json"))
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
        with_retries(&self.retry, operation, || {
            let request = build();
            async move {
                let request = request?;
                self.limiter.until_ready().await;
                let response = execute(PROVIDER, kind, request).await?;
                if !response.status.is_success() {
                    return Err(classify(kind, &response));
                }
                decode_json(PROVIDER, operation, &response.body)
            }
        })
        .await
    }

    /// Every page of a cursor-paginated list (`items`, `nextCursor`).
    async fn all_pages<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        segments: &[&str],
        filters: &[(&str, String)],
    ) -> Result<Vec<T>, LinkedInError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page: Page<T> = self
                .call(CallKind::Idempotent, operation, || {
                    let mut query: Vec<(&str, &str)> = filters
                        .iter()
                        .map(|(name, value)| (*name, value.as_str()))
                        .collect();
                    query.push(("limit", "100"));
                    if let Some(cursor) = cursor.as_deref() {
                        query.push(("cursor", cursor));
                    }
                    Ok(self.request(Method::GET, segments)?.query(&query))
                })
                .await?;
            let was_empty = page.items.is_empty();
            items.extend(page.items);
            let next = page.next_cursor.filter(|next| !next.is_empty());
            if was_empty || next.is_none() || next == cursor {
                break;
            }
            cursor = next;
        }
        Ok(items)
    }

    #[tracing::instrument(skip_all, fields(provider = "dripify"), err)]
    pub async fn list_campaigns(&self) -> Result<Vec<DripifyCampaign>, LinkedInError> {
        let campaigns: Vec<CampaignBody> = self
            .all_pages("list campaigns", &["campaigns"], &[])
            .await?;
        Ok(campaigns
            .into_iter()
            .map(|campaign| DripifyCampaign {
                id: campaign.id,
                name: campaign.name.unwrap_or_default(),
                status: campaign.status,
            })
            .collect())
    }

    #[tracing::instrument(skip_all, fields(provider = "dripify", campaign = campaign_id), err)]
    pub async fn campaign_statistics(
        &self,
        campaign_id: u64,
    ) -> Result<CampaignStatistics, LinkedInError> {
        let id = campaign_id.to_string();
        self.call(CallKind::Idempotent, "campaign statistics", || {
            self.request(Method::GET, &["campaigns", &id, "statistics"])
        })
        .await
    }

    /// Adds the leads to the campaign in one new lead list named after `key`. All or nothing:
    /// more than [`MAX_LEADS_PER_PUSH`] is refused before anything is sent. The push is a
    /// side effect: after an unknown outcome, call [`Self::find_pushed_list`] before pushing
    /// again.
    #[tracing::instrument(skip_all, fields(provider = "dripify", campaign = campaign_id, leads = leads.len(), key = %key), err)]
    pub async fn push_leads(
        &self,
        campaign_id: u64,
        leads: &[LinkedInUrl],
        key: IdempotencyKey,
    ) -> Result<PushedLeads, LinkedInError> {
        if leads.is_empty() || leads.len() > MAX_LEADS_PER_PUSH {
            return Err(LinkedInError::InvalidRequest(format!(
                "a push carries 1 to {MAX_LEADS_PER_PUSH} leads, not {}",
                leads.len()
            )));
        }
        let id = campaign_id.to_string();
        let body = json!({
            "name": push_list_name(key),
            "leads": leads.iter().map(|url| json!({"linkedinUrl": url.as_str()})).collect::<Vec<_>>(),
        });
        let pushed: PushBody = self
            .call(CallKind::SideEffect, "push leads", || {
                Ok(self
                    .request(Method::POST, &["campaigns", &id, "leads"])?
                    .json(&body))
            })
            .await?;
        Ok(PushedLeads {
            lead_list_id: pushed.lead_list.and_then(|list| list.id),
            accepted: pushed.accepted_count.unwrap_or_default(),
            duplicates: pushed.duplicate_count.unwrap_or_default(),
        })
    }

    /// The lead list an earlier push with `key` created, if it exists: the reconciliation
    /// step before a push is repeated.
    #[tracing::instrument(skip_all, fields(provider = "dripify", campaign = campaign_id), err)]
    pub async fn find_pushed_list(
        &self,
        campaign_id: u64,
        key: IdempotencyKey,
    ) -> Result<Option<u64>, LinkedInError> {
        let id = campaign_id.to_string();
        let lists: Vec<LeadListBody> = self
            .all_pages(
                "campaign lead lists",
                &["campaigns", &id, "lead-lists"],
                &[],
            )
            .await?;
        let name = push_list_name(key);
        Ok(lists
            .into_iter()
            .find(|list| list.name.as_deref() == Some(name.as_str()))
            .map(|list| list.id))
    }

    #[tracing::instrument(skip_all, fields(provider = "dripify", campaign = campaign_id), err)]
    pub async fn campaign_leads(
        &self,
        campaign_id: u64,
    ) -> Result<Vec<DripifyLead>, LinkedInError> {
        let leads: Vec<LeadBody> = self
            .all_pages(
                "campaign leads",
                &["leads"],
                &[("campaignId", campaign_id.to_string())],
            )
            .await?;
        Ok(leads.into_iter().map(LeadBody::into_lead).collect())
    }

    #[tracing::instrument(skip_all, fields(provider = "dripify", lead = lead_id), err)]
    pub async fn lead_activity(&self, lead_id: u64) -> Result<Vec<LeadActivity>, LinkedInError> {
        let id = lead_id.to_string();
        let events: Vec<ActivityBody> = self
            .all_pages("lead activity", &["leads", &id, "activity"], &[])
            .await?;
        Ok(events
            .into_iter()
            .filter_map(|event| {
                let raw_type = event.sequence_event_type?;
                Some(LeadActivity {
                    kind: LeadActivityKind::classify(&raw_type),
                    at: parse_time(event.created_at.as_deref()?)?,
                    raw_type,
                    campaign_id: event.campaign_id,
                })
            })
            .collect())
    }

    /// Activity in the campaign after `since`, oldest first. Only leads whose last action is
    /// recent are read in detail, which keeps a poll within the 60-a-minute budget.
    #[tracing::instrument(skip_all, fields(provider = "dripify", campaign = campaign_id, %since), err)]
    pub async fn campaign_events_since(
        &self,
        campaign_id: u64,
        since: DateTime<Utc>,
    ) -> Result<Vec<LeadEvent>, LinkedInError> {
        let mut events = Vec::new();
        for lead in self.campaign_leads(campaign_id).await? {
            let Some(profile_url) = lead.profile_url.clone() else {
                continue;
            };
            if lead.last_action_at.is_some_and(|at| at <= since) {
                continue;
            }
            for activity in self.lead_activity(lead.id).await? {
                if activity.at > since && activity.campaign_id.is_none_or(|id| id == campaign_id) {
                    events.push(LeadEvent {
                        lead_id: lead.id,
                        profile_url: profile_url.clone(),
                        kind: activity.kind,
                        at: activity.at,
                    });
                }
            }
        }
        events.sort_by_key(|event| event.at);
        Ok(events)
    }

    /// Invitations accepted in the campaign after `since`.
    pub async fn acceptances_since(
        &self,
        campaign_id: u64,
        since: DateTime<Utc>,
    ) -> Result<Vec<ConnectionAccepted>, LinkedInError> {
        Ok(self
            .campaign_events_since(campaign_id, since)
            .await?
            .into_iter()
            .filter(|event| event.kind == LeadActivityKind::InvitationAccepted)
            .map(|event| ConnectionAccepted {
                profile_url: event.profile_url,
                at: event.at,
            })
            .collect())
    }
}

fn classify(kind: CallKind, response: &RawResponse) -> LinkedInError {
    let status = response.status.as_u16();
    if let Some(error) =
        classify_common_status(PROVIDER, kind, response.status, &response.headers, None)
    {
        return match error {
            LinkedInError::RateLimited {
                retry_after: Some(wait),
                ..
            } if wait >= DAILY_BUDGET_WAIT => LinkedInError::Limit {
                provider: PROVIDER,
                kind: LimitKind::DailyRequestBudget,
            },
            // Dripify answers 403 when the plan has no Open API.
            LinkedInError::Unauthorized { status: 403, .. } => LinkedInError::Unauthorized {
                provider: PROVIDER,
                status: 403,
                code: Some("open_api_not_in_plan".into()),
            },
            other => other,
        };
    }
    let detail: String = serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|body| {
            body.get("message")
                .or_else(|| body.get("error"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    if status == 404 {
        return LinkedInError::NotFound {
            provider: PROVIDER,
            what: "campaign or lead (or the Open API is off for this account)".into(),
        };
    }
    LinkedInError::Permanent {
        provider: PROVIDER,
        status,
        code: None,
        detail,
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    items: Vec<T>,
    #[serde(default)]
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct CampaignBody {
    id: u64,
    name: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
struct LeadListBody {
    id: u64,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PushBody {
    lead_list: Option<PushedList>,
    accepted_count: Option<u64>,
    duplicate_count: Option<u64>,
}

#[derive(Deserialize)]
struct PushedList {
    id: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeadBody {
    id: u64,
    linkedin_profile_url: Option<String>,
    public_id: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    last_action: Option<ActivityBody>,
}

impl LeadBody {
    fn into_lead(self) -> DripifyLead {
        let profile_url = self
            .linkedin_profile_url
            .as_deref()
            .and_then(|url| LinkedInUrl::parse(url).ok())
            .or_else(|| {
                self.public_id
                    .as_deref()
                    .filter(|id| !id.is_empty())
                    .and_then(|id| {
                        LinkedInUrl::parse(&format!("https://www.linkedin.com/in/{id}")).ok()
                    })
            });
        DripifyLead {
            id: self.id,
            profile_url,
            full_name: [self.first_name.as_deref(), self.last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
            last_action_at: self
                .last_action
                .and_then(|action| action.created_at)
                .as_deref()
                .and_then(parse_time),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActivityBody {
    sequence_event_type: Option<String>,
    created_at: Option<String>,
    campaign_id: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_types_are_classified_conservatively() {
        for (raw, expected) in [
            ("CONNECT_SENT", LeadActivityKind::InvitationSent),
            ("CONNECT_ACCEPTED", LeadActivityKind::InvitationAccepted),
            ("INVITATION_ACCEPTED", LeadActivityKind::InvitationAccepted),
            ("MESSAGE_SENT", LeadActivityKind::MessageSent),
            ("MESSAGE_REPLIED", LeadActivityKind::Replied),
            ("REPLY_RECEIVED", LeadActivityKind::Replied),
            ("CONNECT_FAILED", LeadActivityKind::Failed),
            (
                "PROFILE_VIEWED",
                LeadActivityKind::Other("PROFILE_VIEWED".into()),
            ),
        ] {
            assert_eq!(LeadActivityKind::classify(raw), expected, "{raw}");
        }
    }
}
