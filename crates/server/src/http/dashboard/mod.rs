//! The live dashboard at `/`: server-rendered pages over the same reads and commands as the
//! JSON API (the projections, the reports, the review queue, the review decisions), a login
//! that trades an API token for a session cookie ([`session`]), CSRF tokens on every form,
//! and the live feed of the log over Server-Sent Events ([`live`]).
//!
//! | path | page |
//! |---|---|
//! | `/` | the funnel, today's sends against the caps, agent health, the live feed |
//! | `/leads` | the lead table: text search, status and classification filters, paging |
//! | `/leads/{id}` | one lead's timeline |
//! | `/review` | the review queue with approve / reject |
//! | `/login`, `/logout` | the session |
//! | `/api/events/live` | the SSE feed (bearer token or session) |

pub mod live;
pub mod pages;
pub mod session;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::TimeDelta;
use maud::Markup;
use salesdept_agents::department::{AgentHeartbeat, Heartbeat};
use salesdept_events::domain::{
    AccountId, AccountLimits, AccountState, DEPARTMENT_STREAM, DepartmentState, LeadCommand,
    SendAction, account_stream,
};
use salesdept_projections::audit::lead_history;
use salesdept_projections::reports;
use salesdept_projections::{LeadRow, get_lead, list_leads};
use serde::Deserialize;
use uuid::Uuid;

use self::pages::{AccountUse, AgentHealth, Health, LeadFilterForm};
use self::session::{Session, Sessions};
use super::auth::authenticate;
use super::leads::{LeadQuery, filter_of};
use super::review::{execute_review_decision, review_queue};
use super::{ApiError, ApiPath, ApiState, Role, User};

/// The agents whose pause state the overview shows.
pub const AGENTS: [&str; 3] = ["lead_finder", "sales_manager", "outreach"];
/// Leads per page of the lead table.
pub const LEADS_PER_PAGE: i64 = 50;

/// Reads the department's per-agent heartbeats.
pub type AgentHeartbeats = Arc<dyn Fn() -> Vec<AgentHeartbeat> + Send + Sync>;

/// What the dashboard needs besides the API's state.
#[derive(Clone)]
pub struct DashboardState {
    pub api: ApiState,
    pub sessions: Arc<Sessions>,
    /// The sending accounts and their limits (today's sends against the caps).
    pub accounts: Arc<Vec<(AccountId, AccountLimits)>>,
    /// The scheduler's heartbeat (None: no scheduler runs in this process).
    pub heartbeat: Option<Heartbeat>,
    /// Each agent's last work (None: no department runs in this process).
    pub agent_heartbeats: Option<AgentHeartbeats>,
    /// Mark the session cookie `Secure` (behind HTTPS).
    pub secure_cookies: bool,
}

impl DashboardState {
    pub fn new(api: ApiState) -> Self {
        Self {
            api,
            sessions: Arc::new(Sessions::default()),
            accounts: Arc::new(Vec::new()),
            heartbeat: None,
            agent_heartbeats: None,
            secure_cookies: false,
        }
    }

    pub fn with_accounts(mut self, accounts: Vec<(AccountId, AccountLimits)>) -> Self {
        self.accounts = Arc::new(accounts);
        self
    }

    pub fn with_heartbeat(mut self, heartbeat: Heartbeat) -> Self {
        self.heartbeat = Some(heartbeat);
        self
    }

    pub fn with_agent_heartbeats(mut self, heartbeats: AgentHeartbeats) -> Self {
        self.agent_heartbeats = Some(heartbeats);
        self
    }
}

/// The dashboard's routes (merge with [`super::router`]).
pub fn router(state: DashboardState) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/leads", get(leads))
        .route("/leads/{id}", get(lead))
        .route("/review", get(review))
        .route("/review/{lead_id}/drafts/{draft_id}/approve", post(approve))
        .route("/review/{lead_id}/drafts/{draft_id}/reject", post(reject))
        .route(pages::SCRIPT_PATH, get(script))
        .route("/api/events/live", get(live::live))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// No framing (the approve buttons cannot be clickjacked), scripts and styles only from here.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             frame-ancestors 'none'; form-action 'self'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A failure shown as an HTML page with its status (internal details are logged by
/// [`ApiError::internal`], never shown).
pub struct PageError(ApiError);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status;
        (
            status,
            Html(pages::error(status.as_u16(), &self.0.message).into_string()),
        )
            .into_response()
    }
}

macro_rules! page_error_from {
    ($($error:ty),* $(,)?) => {
        $(impl From<$error> for PageError {
            fn from(error: $error) -> Self {
                Self(ApiError::from(error))
            }
        })*
    };
}

page_error_from!(
    ApiError,
    salesdept_events::StoreError,
    salesdept_projections::ProjectionError,
    salesdept_projections::reports::ReportError,
    salesdept_projections::audit::AuditError,
    salesdept_events::domain::CommandError,
);

type PageResult = Result<Response, PageError>;

fn page(markup: Markup) -> PageResult {
    Ok(Html(markup.into_string()).into_response())
}

/// A logged-in dashboard user; without a live session, pages redirect to `/login`.
pub struct PageSession {
    pub id: String,
    pub session: Session,
}

impl FromRequestParts<DashboardState> for PageSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &DashboardState,
    ) -> Result<Self, Self::Rejection> {
        state
            .sessions
            .of_request(&parts.headers)
            .map(|(id, session)| Self { id, session })
            .ok_or_else(|| Redirect::to("/login").into_response())
    }
}

/// The live feed's reader: a bearer token (any role) or, without an `Authorization` header,
/// a dashboard session. Neither: 401.
pub struct FeedViewer(pub User);

impl FromRequestParts<DashboardState> for FeedViewer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &DashboardState,
    ) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            return authenticate(parts, &state.api, Role::Viewer).map(Self);
        }
        state
            .sessions
            .of_request(&parts.headers)
            .map(|(_, session)| Self(session.user))
            .ok_or_else(|| ApiError::unauthorized("log in or give a bearer token"))
    }
}

/// A form's CSRF token must be the session's, and the user must hold `needed`; 403 otherwise.
fn check_form(session: &Session, csrf: Option<&str>, needed: Role) -> Result<(), PageError> {
    if !session.csrf_matches(csrf) {
        tracing::warn!(user = %session.user.name, "dashboard form without a valid CSRF token");
        return Err(PageError(ApiError::forbidden(
            "the form's CSRF token is missing or wrong: reload the page and try again",
        )));
    }
    if session.user.role < needed {
        return Err(PageError(ApiError::forbidden(format!(
            "this needs the {} role; {} has {}",
            needed.as_str(),
            session.user.name,
            session.user.role.as_str()
        ))));
    }
    Ok(())
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("dashboard.js"),
    )
        .into_response()
}

async fn login_form(
    State(state): State<DashboardState>,
    headers: axum::http::HeaderMap,
) -> Response {
    if state.sessions.of_request(&headers).is_some() {
        return Redirect::to("/").into_response();
    }
    Html(pages::login(None).into_string()).into_response()
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    pub token: String,
}

/// `POST /login`: a known token opens a session (303 to `/` with the cookie); an unknown
/// one is 401 with the form again.
async fn login(State(state): State<DashboardState>, Form(form): Form<LoginForm>) -> Response {
    let Some(user) = state.api.tokens.authenticate(form.token.trim()) else {
        tracing::warn!("dashboard login with an unknown token refused");
        return (
            StatusCode::UNAUTHORIZED,
            Html(pages::login(Some("Unknown token.")).into_string()),
        )
            .into_response();
    };
    tracing::info!(user = %user.name, role = user.role.as_str(), "dashboard login");
    let id = state.sessions.create(user);
    let cookie = session::session_cookie(&id, state.sessions.ttl(), state.secure_cookies);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct CsrfForm {
    pub csrf: Option<String>,
}

async fn logout(
    current: PageSession,
    State(state): State<DashboardState>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    check_form(&current.session, form.csrf.as_deref(), Role::Viewer)?;
    state.sessions.remove(&current.id);
    Ok((
        [(
            header::SET_COOKIE,
            session::expired_cookie(state.secure_cookies),
        )],
        Redirect::to("/login"),
    )
        .into_response())
}

/// `/`: the funnel of the last 7 days, today's sends per account, agent health, the feed.
async fn overview(current: PageSession, State(state): State<DashboardState>) -> PageResult {
    let api = &state.api;
    let now = api.clock.now();
    let to = now.date_naive();
    let from = to - TimeDelta::days(6);
    let funnel = reports::funnel(&api.store, from, to).await?;

    let mut accounts = Vec::with_capacity(state.accounts.len());
    for (account, limits) in state.accounts.iter() {
        let loaded = api
            .handler
            .load::<AccountState>(&account_stream(account))
            .await?;
        accounts.push(AccountUse {
            account: account.to_string(),
            messages: loaded.state.used_on_day(SendAction::Message, limits, now),
            messages_cap: limits.messages_per_day,
            invitations: loaded
                .state
                .used_on_day(SendAction::Invitation, limits, now),
            invitations_cap: limits.invitations_per_day,
        });
    }

    let department = api
        .handler
        .load::<DepartmentState>(DEPARTMENT_STREAM)
        .await?;
    let beat = state
        .heartbeat
        .as_ref()
        .map(Heartbeat::state)
        .unwrap_or_default();
    let beats = state
        .agent_heartbeats
        .as_ref()
        .map(|read| read())
        .unwrap_or_default();
    let health = Health {
        agents: AGENTS
            .iter()
            .map(|agent| AgentHealth {
                agent: (*agent).to_owned(),
                paused: department.state.paused_agents.contains(*agent),
                last_work: beats
                    .iter()
                    .find(|beat| beat.agent == *agent)
                    .map(|beat| beat.beat_at),
            })
            .collect(),
        heartbeat_at: beat.beat_at,
        last_job: beat
            .last_job
            .map(|(job, at, failed)| (job.as_str().to_owned(), at, failed)),
        jobs: beat
            .jobs
            .iter()
            .map(|(job, runs)| {
                let failures = beat.failures.get(job).copied().unwrap_or(0);
                (job.as_str().to_owned(), *runs, failures)
            })
            .collect(),
        lags: salesdept_events::subscription_lags(&api.store).await?,
    };
    page(pages::layout(
        "Overview",
        &current.session,
        pages::overview(
            &funnel,
            (from.to_string(), to.to_string()),
            &accounts,
            &health,
        ),
    ))
}

/// The lead table's form: empty fields mean "any".
#[derive(Debug, Default, Deserialize)]
pub struct LeadsForm {
    pub q: Option<String>,
    pub status: Option<String>,
    pub classification: Option<String>,
    pub offset: Option<i64>,
}

async fn leads(
    current: PageSession,
    State(state): State<DashboardState>,
    form: Result<axum::extract::Query<LeadsForm>, axum::extract::rejection::QueryRejection>,
) -> PageResult {
    let axum::extract::Query(form) =
        form.map_err(|rejection| PageError(ApiError::bad_request(rejection.body_text())))?;
    let present = |value: &Option<String>| value.clone().filter(|text| !text.trim().is_empty());
    let query = LeadQuery {
        status: present(&form.status),
        classification: present(&form.classification),
        q: present(&form.q),
        limit: Some(LEADS_PER_PAGE),
        offset: form.offset,
        ..LeadQuery::default()
    };
    let (filter, page_of, order) = filter_of(&query)?;
    let found = list_leads(&state.api.store, &filter, page_of, order).await?;
    let filter_form = LeadFilterForm {
        q: form.q.as_deref().unwrap_or(""),
        status: form.status.as_deref().unwrap_or(""),
        classification: form.classification.as_deref().unwrap_or(""),
    };
    let page_link = |offset: i64| {
        let mut link = url_query(&[
            ("q", filter_form.q),
            ("status", filter_form.status),
            ("classification", filter_form.classification),
        ]);
        link.push_str(&format!("&offset={offset}"));
        format!("/leads?{link}")
    };
    page(pages::layout(
        "Leads",
        &current.session,
        pages::leads(
            &filter_form,
            &found.rows,
            found.total,
            page_of.offset,
            page_of.limit,
            page_link,
        ),
    ))
}

/// `a=b&c=d` with the values percent-encoded.
fn url_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| {
            let encoded: String = value
                .bytes()
                .map(|byte| match byte {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (byte as char).to_string()
                    }
                    _ => format!("%{byte:02X}"),
                })
                .collect();
            format!("{key}={encoded}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `/leads/{id}`: the lead and its timeline.
async fn lead(
    current: PageSession,
    State(state): State<DashboardState>,
    ApiPath(id): ApiPath<Uuid>,
) -> PageResult {
    let history = lead_history(&state.api.store, id).await?;
    if history.is_empty() {
        return Err(PageError(ApiError::not_found(format!(
            "there is no lead {id}"
        ))));
    }
    // As the API: the table's row, or the stream's fold while the projection catches up.
    let row = match get_lead(&state.api.store, id).await? {
        Some(row) if row.version >= history.last().map_or(0, |e| e.event.stream_version) => row,
        _ => LeadRow::from_events(id, history.iter().map(|entry| &entry.event))?,
    };
    let title = if row.name.is_empty() {
        id.to_string()
    } else {
        row.name.clone()
    };
    page(pages::layout(
        &title,
        &current.session,
        pages::lead(&row, &history),
    ))
}

/// `/review`: what `GET /api/review` lists, with the buttons.
async fn review(current: PageSession, State(state): State<DashboardState>) -> PageResult {
    let since = state.api.clock.now() - TimeDelta::days(30);
    let queue = review_queue(&state.api, since).await?;
    page(pages::layout(
        "Review queue",
        &current.session,
        pages::review(&queue, &current.session),
    ))
}

#[derive(Debug, Default, Deserialize)]
pub struct DecisionForm {
    pub csrf: Option<String>,
    pub reason: Option<String>,
    /// The message as approved (the review box's text).
    pub text: Option<String>,
    /// The draft's text as the page showed it: a `text` equal to it is no edit.
    pub original: Option<String>,
}

impl DecisionForm {
    /// The person's own text, when they changed the draft (line endings as browsers send them
    /// do not count).
    fn edited_text(&self) -> Option<String> {
        let normalise = |text: &str| text.replace("\r\n", "\n").trim().to_owned();
        let text = normalise(self.text.as_deref()?);
        let unchanged = self
            .original
            .as_deref()
            .is_some_and(|original| normalise(original) == text);
        (!unchanged && !text.is_empty()).then_some(text)
    }
}

/// `POST /review/{lead}/drafts/{draft}/approve`: the API's `message_approved`, the session's
/// user as actor.
async fn approve(
    current: PageSession,
    State(state): State<DashboardState>,
    ApiPath((lead_id, draft_id)): ApiPath<(Uuid, Uuid)>,
    Form(form): Form<DecisionForm>,
) -> PageResult {
    let command = LeadCommand::ApproveMessage {
        draft_id,
        edited_text: form.edited_text(),
    };
    decide(&state, &current.session, &form, lead_id, &command).await
}

/// `POST /review/{lead}/drafts/{draft}/reject`: `message_rejected` with the optional reason.
async fn reject(
    current: PageSession,
    State(state): State<DashboardState>,
    ApiPath((lead_id, draft_id)): ApiPath<(Uuid, Uuid)>,
    Form(form): Form<DecisionForm>,
) -> PageResult {
    let command = LeadCommand::RejectMessage {
        draft_id,
        reason: form
            .reason
            .clone()
            .filter(|reason| !reason.trim().is_empty()),
    };
    decide(&state, &current.session, &form, lead_id, &command).await
}

async fn decide(
    state: &DashboardState,
    session: &Session,
    form: &DecisionForm,
    lead_id: Uuid,
    command: &LeadCommand,
) -> PageResult {
    check_form(session, form.csrf.as_deref(), Role::Operator)?;
    execute_review_decision(&state.api, &session.user, lead_id, command).await?;
    Ok(Redirect::to("/review").into_response())
}
