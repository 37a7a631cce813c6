//! Human commands: each is one command through the domain's handler, recorded as events whose
//! actor is the token's user. Refusals by the rules are answered with their reason (404 for an
//! unknown lead or draft, 422 for an invalid command, 409 when the lead's state forbids it).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use salesdept_events::NewEvent;
use salesdept_events::domain::department::DepartmentCommand;
use salesdept_events::domain::lead::CloseOutcome;
use salesdept_events::domain::search::{SearchCommand, SearchCriteria};
use salesdept_events::domain::{
    Classification, DEPARTMENT_STREAM, DepartmentState, LeadCommand, LeadState, QualityScore,
    SearchState, lead_stream, search_stream,
};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::auth::{Operator, User};
use super::{ApiError, ApiJson, ApiPath, ApiState, NoFields};

/// The agents that can be paused.
pub const AGENTS: [&str; 3] = ["lead_finder", "outreach", "sales_manager"];

/// The answer to a command: 201 with the events appended, or 200 with none when the command
/// was already carried out (a retry).
pub fn executed(stream_id: &str, appended: &[NewEvent]) -> (StatusCode, Json<Value>) {
    let status = if appended.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let events: Vec<Value> = appended
        .iter()
        .map(|event| json!({ "event_id": event.event_id, "event_type": event.event_type }))
        .collect();
    (
        status,
        Json(json!({ "stream_id": stream_id, "events": events })),
    )
}

async fn lead_command(
    state: &ApiState,
    user: &User,
    lead_id: Uuid,
    command: LeadCommand,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let stream = lead_stream(lead_id);
    let result = state
        .handler
        .execute::<LeadState>(&stream, &command, &state.metadata(user))
        .await?;
    Ok(executed(&stream, &result.appended))
}

/// Text a person typed: trimmed, None when blank.
fn text(value: Option<String>) -> Option<String> {
    value
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

/// The longest reason a command takes, in characters: a sentence or two, not a document.
pub const MAX_REASON_CHARS: usize = 1_000;

/// The longest name (of a team member, a search term), in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// The most entries a search criterion's list takes.
pub const MAX_CRITERIA_ENTRIES: usize = 50;

/// Refuses text of `name` longer than `max` characters.
fn at_most(text: &str, name: &str, max: usize) -> Result<(), ApiError> {
    let length = text.chars().count();
    if length > max {
        Err(ApiError::unprocessable(format!(
            "{name} has {length} characters; at most {max}"
        )))
    } else {
        Ok(())
    }
}

/// A reason a person typed: trimmed, None when blank, refused when too long.
pub fn reason(value: Option<String>) -> Result<Option<String>, ApiError> {
    let reason = text(value);
    if let Some(reason) = &reason {
        at_most(reason, "reason", MAX_REASON_CHARS)?;
    }
    Ok(reason)
}

/// A search criterion's list: at most [`MAX_CRITERIA_ENTRIES`] entries of at most
/// [`MAX_NAME_CHARS`] characters each.
fn criteria_list(entries: Vec<String>, name: &str) -> Result<Vec<String>, ApiError> {
    if entries.len() > MAX_CRITERIA_ENTRIES {
        return Err(ApiError::unprocessable(format!(
            "{name} has {} entries; at most {MAX_CRITERIA_ENTRIES}",
            entries.len()
        )));
    }
    for entry in &entries {
        at_most(entry, &format!("{name}: an entry"), MAX_NAME_CHARS)?;
    }
    Ok(entries)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: Option<String>,
}

/// `POST /api/leads/{id}/do-not-contact`.
pub async fn do_not_contact(
    Operator(user): Operator,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let command = LeadCommand::MarkDoNotContact {
        reason: reason(body.reason)?,
    };
    lead_command(&state, &user, id, command).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    pub text: String,
}

/// `POST /api/leads/{id}/notes`.
pub async fn add_note(
    Operator(user): Operator,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NoteBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    lead_command(&state, &user, id, LeadCommand::AddNote { text: body.text }).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReassignBody {
    pub to: String,
    pub reason: Option<String>,
}

/// `POST /api/leads/{id}/reassign`.
pub async fn reassign(
    Operator(user): Operator,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ReassignBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let to = body.to.trim().to_owned();
    if to.is_empty() {
        return Err(ApiError::unprocessable("to must name who takes the lead"));
    }
    at_most(&to, "to", MAX_NAME_CHARS)?;
    let command = LeadCommand::Reassign {
        to,
        reason: reason(body.reason)?,
    };
    lead_command(&state, &user, id, command).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    /// `won` or `lost`.
    pub outcome: CloseOutcome,
    pub reason: Option<String>,
}

/// `POST /api/leads/{id}/close`.
pub async fn close(
    Operator(user): Operator,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<CloseBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let command = LeadCommand::Close {
        outcome: body.outcome,
        reason: reason(body.reason)?,
    };
    lead_command(&state, &user, id, command).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassificationBody {
    /// `Speaker`, `Sponsor` or `Other`.
    pub classification: Classification,
    pub reason: Option<String>,
}

/// `POST /api/leads/{id}/classification`: a human override (also `classification_feedback`).
pub async fn classification(
    Operator(user): Operator,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ClassificationBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let command = LeadCommand::OverrideClassification {
        classification: body.classification,
        reason: reason(body.reason)?,
    };
    lead_command(&state, &user, id, command).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreBody {
    /// 1–10.
    pub score: QualityScore,
    pub reason: Option<String>,
}

/// `POST /api/leads/{id}/score`: a human override (also `classification_feedback`).
pub async fn score(
    Operator(user): Operator,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ScoreBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let command = LeadCommand::OverrideScore {
        score: body.score,
        reason: reason(body.reason)?,
    };
    lead_command(&state, &user, id, command).await
}

fn known_agent(agent: &str) -> Result<(), ApiError> {
    if AGENTS.contains(&agent) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "there is no agent {agent:?} (agents: {})",
            AGENTS.join(", ")
        )))
    }
}

/// `POST /api/agents/{agent}/pause`: `agent_paused` on the department stream.
pub async fn pause_agent(
    Operator(user): Operator,
    State(state): State<ApiState>,
    ApiPath(agent): ApiPath<String>,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    known_agent(&agent)?;
    let command = DepartmentCommand::PauseAgent {
        agent,
        reason: reason(body.reason)?.unwrap_or_default(),
    };
    let result = state
        .handler
        .execute::<DepartmentState>(DEPARTMENT_STREAM, &command, &state.metadata(&user))
        .await?;
    Ok(executed(DEPARTMENT_STREAM, &result.appended))
}

/// `POST /api/agents/{agent}/resume`: `agent_resumed` on the department stream.
pub async fn resume_agent(
    Operator(user): Operator,
    State(state): State<ApiState>,
    ApiPath(agent): ApiPath<String>,
    ApiJson(NoFields {}): ApiJson<NoFields>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    known_agent(&agent)?;
    let command = DepartmentCommand::ResumeAgent { agent };
    let result = state
        .handler
        .execute::<DepartmentState>(DEPARTMENT_STREAM, &command, &state.metadata(&user))
        .await?;
    Ok(executed(DEPARTMENT_STREAM, &result.appended))
}

fn default_search_limit() -> u32 {
    50
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub positions: Vec<String>,
    #[serde(default)]
    pub industries: Vec<String>,
    #[serde(default)]
    pub locations: Vec<String>,
    #[serde(default)]
    pub company_sizes: Vec<String>,
    #[serde(default = "default_search_limit")]
    pub limit: u32,
    pub reason: Option<String>,
}

/// `POST /api/searches`: `search_request` on a new `search-<uuid>` stream, for the Lead Finder
/// to run now.
pub async fn request_search(
    Operator(user): Operator,
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<SearchBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let search_id = Uuid::now_v7();
    let command = SearchCommand::Request {
        search_id,
        criteria: SearchCriteria {
            keywords: criteria_list(body.keywords, "keywords")?,
            positions: criteria_list(body.positions, "positions")?,
            industries: criteria_list(body.industries, "industries")?,
            locations: criteria_list(body.locations, "locations")?,
            company_sizes: criteria_list(body.company_sizes, "company_sizes")?,
            limit: body.limit,
        },
        reason: reason(body.reason)?.unwrap_or_else(|| format!("requested by {}", user.name)),
    };
    let stream = search_stream(search_id);
    let result = state
        .handler
        .execute::<SearchState>(&stream, &command, &state.metadata(&user))
        .await?;
    let (status, Json(mut answer)) = executed(&stream, &result.appended);
    answer["search_id"] = json!(search_id);
    Ok((status, Json(answer)))
}

/// `POST /api/leads/{id}/forget` (admin): crypto-shredding, as `salesdept forget`. The data key
/// is deleted first, so the person's data is unreadable even if recording `lead_forgotten`
/// fails; a repeat records it.
pub async fn forget(
    super::auth::Admin(user): super::auth::Admin,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(NoFields {}): ApiJson<NoFields>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    use salesdept_events::EventStore;
    let stream = lead_stream(id);
    if state.store.stream_version(&stream).await?.is_none() {
        return Err(ApiError::not_found(format!("there is no lead {id}")));
    }
    state.store.forget_subject(&stream).await?;
    lead_command(&state, &user, id, LeadCommand::Forget).await
}
