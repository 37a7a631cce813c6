//! The dashboard's HTML, rendered with maud: every interpolated value is escaped by the
//! template engine (`PreEscaped` is used only for the constant stylesheet). No external asset:
//! the CSS is inline, the one script is served by the dashboard itself.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use salesdept_events::domain::LeadStatus;
use salesdept_projections::LeadRow;
use salesdept_projections::audit::AuditEntry;
use salesdept_projections::reports::{Funnel, Stage};
use serde_json::Value;

use super::session::Session;
use crate::http::Role;

/// Where the live feed's script is served.
pub const SCRIPT_PATH: &str = "/assets/dashboard.js";

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;align-items:center}
header a{color:#cfe3ff;text-decoration:none} header form{margin-left:auto}
main{padding:1rem;max-width:72rem;margin:auto}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:.8rem 1rem;margin-bottom:1rem}
table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eceff3;vertical-align:top}
.error{color:#a40000} .muted{color:#68707d} .ok{color:#176f2c} .bad{color:#a40000}
pre{white-space:pre-wrap;margin:0} #live-feed{list-style:none;padding:0;max-height:24rem;overflow:auto;font-family:monospace}
button{cursor:pointer}
";

/// A page of the dashboard for a logged-in user.
pub fn layout(title: &str, session: &Session, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · salesdept" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "salesdept" }
                    a href="/" { "Overview" }
                    a href="/leads" { "Leads" }
                    a href="/review" { "Review queue" }
                    span.muted { (session.user.name) " (" (session.user.role.as_str()) ")" }
                    form method="post" action="/logout" {
                        (csrf_field(session))
                        button type="submit" { "Log out" }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
                script src=(SCRIPT_PATH) {}
            }
        }
    }
}

fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf_token); }
}

/// The login form (with an error when a token was refused).
pub fn login(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Log in · salesdept" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main {
                    h1 { "salesdept" }
                    section {
                        p { "Log in with an API token (the demo token is in " code { "data/demo-api-token" } ")." }
                        @if let Some(error) = error { p.error { (error) } }
                        form method="post" action="/login" {
                            label { "Token " input type="password" name="token" id="token" autocomplete="off" required; }
                            " "
                            button type="submit" id="login" { "Log in" }
                        }
                    }
                }
            }
        }
    }
}

/// A page saying what went wrong.
pub fn error(status: u16, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Error · salesdept" } style { (PreEscaped(STYLE)) } }
            body { main {
                h1 { "Error " (status) }
                p.error { (message) }
                p { a href="/" { "Back to the overview" } }
            } }
        }
    }
}

/// Today's use of one sending account against its caps.
pub struct AccountUse {
    pub account: String,
    pub messages: u32,
    pub messages_cap: u32,
    pub invitations: u32,
    pub invitations_cap: u32,
}

/// One agent's health.
pub struct AgentHealth {
    pub agent: String,
    pub paused: bool,
    /// When it last finished work (a job or a catch-up of its subscriptions).
    pub last_work: Option<DateTime<Utc>>,
}

/// The scheduler's state and the subscriptions' lag.
pub struct Health {
    pub agents: Vec<AgentHealth>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// (job, finished at, failed)
    pub last_job: Option<(String, DateTime<Utc>, bool)>,
    /// (job, runs, failures)
    pub jobs: Vec<(String, u64, u64)>,
    pub lags: Vec<(String, i64)>,
}

pub fn overview(
    funnel: &Funnel,
    days: (String, String),
    accounts: &[AccountUse],
    health: &Health,
) -> Markup {
    html! {
        section {
            h2 { "Funnel " span.muted { (days.0) " – " (days.1) } }
            (funnel_chart(funnel))
        }
        section {
            h2 { "Sends today" }
            @if accounts.is_empty() { p.muted { "No sending account is configured." } }
            @else {
                table {
                    tr { th { "Account" } th { "Messages" } th { "Invitations" } }
                    @for account in accounts {
                        tr {
                            td { (account.account) }
                            td { (account.messages) " / " (account.messages_cap) }
                            td { (account.invitations) " / " (account.invitations_cap) }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Agent health" }
            table {
                tr { th { "Agent" } th { "State" } th { "Last work" } }
                @for agent in &health.agents {
                    tr {
                        td { (agent.agent) }
                        td { @if agent.paused { span.bad { "paused" } } @else { span.ok { "running" } } }
                        td { @match agent.last_work { Some(at) => (at.to_rfc3339()), None => span.muted { "—" } } }
                    }
                }
            }
            p {
                "Scheduler heartbeat: "
                @match health.heartbeat_at { Some(at) => (at.to_rfc3339()), None => span.muted { "none yet" } }
                @if let Some((job, at, failed)) = &health.last_job {
                    "; last job " (job) " at " (at.to_rfc3339())
                    @if *failed { " " span.bad { "(failed)" } } @else { " " span.ok { "(ok)" } }
                }
            }
            @if !health.jobs.is_empty() {
                table {
                    tr { th { "Job" } th { "Runs" } th { "Failures" } }
                    @for (job, runs, failures) in &health.jobs {
                        tr { td { (job) } td { (runs) } td { @if *failures > 0 { span.bad { (failures) } } @else { "0" } } }
                    }
                }
            }
            @if !health.lags.is_empty() {
                p { "Subscription lag (events behind the head): "
                    @for (index, (name, lag)) in health.lags.iter().enumerate() {
                        @if index > 0 { ", " }
                        (name) " " (lag)
                    }
                }
            }
        }
        section {
            h2 { "Live feed " span.muted id="live-status" { "connecting…" } }
            ul id="live-feed" {}
        }
    }
}

/// The funnel's totals as horizontal bars, drawn on the server.
pub fn funnel_chart(funnel: &Funnel) -> Markup {
    const ROW: u64 = 24;
    const LABEL: u64 = 130;
    const BAR: u64 = 420;
    let counts: Vec<(Stage, u64)> = Stage::ALL
        .iter()
        .map(|stage| (*stage, funnel.totals.get(*stage)))
        .collect();
    let max = counts
        .iter()
        .map(|(_, count)| *count)
        .max()
        .unwrap_or(0)
        .max(1);
    let height = ROW * counts.len() as u64;
    html! {
        svg id="funnel-chart" xmlns="http://www.w3.org/2000/svg" width=(LABEL + BAR + 60) height=(height)
            viewBox={ "0 0 " (LABEL + BAR + 60) " " (height) } role="img" aria-label="The funnel" {
            @for (index, (stage, count)) in counts.iter().enumerate() {
                @let y = index as u64 * ROW;
                @let width = count * BAR / max;
                text x="0" y=(y + 16) font-size="13" { (stage.as_str()) }
                rect x=(LABEL) y=(y + 4) width=(width) height="16" fill="#3d7be0" {}
                text x=(LABEL + width + 6) y=(y + 16) font-size="13" data-stage=(stage.as_str()) { (count) }
            }
        }
    }
}

/// The lead table's filter values, as the form shows them.
pub struct LeadFilterForm<'a> {
    pub q: &'a str,
    pub status: &'a str,
    pub classification: &'a str,
}

pub fn leads(
    form: &LeadFilterForm<'_>,
    rows: &[LeadRow],
    total: i64,
    offset: i64,
    limit: i64,
    page_link: impl Fn(i64) -> String,
) -> Markup {
    html! {
        section {
            form method="get" action="/leads" {
                input type="search" name="q" value=(form.q) placeholder="name, company, position";
                " "
                select name="status" {
                    option value="" { "any status" }
                    @for status in LeadStatus::ALL.map(LeadStatus::label) { option value=(status) selected[form.status == status] { (status) } }
                }
                " "
                select name="classification" {
                    option value="" { "any classification" }
                    @for class in ["Speaker", "Sponsor", "Other", "none"] {
                        option value=(class) selected[form.classification.eq_ignore_ascii_case(class)] { (class) }
                    }
                }
                " "
                button type="submit" { "Search" }
            }
        }
        section {
            p.muted { (total) " leads" @if total > 0 { ", " (offset + 1) "–" (offset + rows.len() as i64) } }
            table id="leads" {
                tr { th { "Name" } th { "Position" } th { "Company" } th { "Classification" } th { "Score" } th { "Status" } th { "Assigned" } }
                @for row in rows {
                    tr {
                        td { a href={ "/leads/" (row.lead_id) } { (row.name) } }
                        td { (row.position) }
                        td { (row.company) }
                        td { (row.classification) }
                        td { @if let Some(score) = row.quality_score { (format!("{score:.1}")) } }
                        td { (row.contact_status.label()) }
                        td { (row.assigned_to) }
                    }
                }
            }
            p {
                @if offset > 0 { a href=(page_link((offset - limit).max(0))) { "← previous" } " " }
                @if offset + limit < total { a href=(page_link(offset + limit)) { "next →" } }
            }
        }
    }
}

pub fn lead(row: &LeadRow, history: &[AuditEntry]) -> Markup {
    html! {
        section {
            p { (row.position) " at " (row.company) " · " (row.contact_status.label())
                @if !row.classification.is_empty() { " · " (row.classification) }
                @if let Some(score) = row.quality_score { " · score " (format!("{score:.1}")) } }
            @if !row.linkedin_url.is_empty() { p { a href=(row.linkedin_url) rel="noreferrer" { (row.linkedin_url) } } }
        }
        section {
            h2 { "Timeline" }
            table id="timeline" {
                tr { th { "When" } th { "Event" } th { "Actor" } th { "What" } }
                @for entry in history {
                    tr {
                        td { (entry.event.metadata.occurred_at.to_rfc3339()) }
                        td { (entry.event.event_type) }
                        td { (entry.event.metadata.actor.to_string()) }
                        td { (entry.summary) }
                    }
                }
            }
        }
    }
}

/// The review queue, from the value `GET /api/review` answers.
pub fn review(queue: &Value, session: &Session) -> Markup {
    let empty = Vec::new();
    let drafts = queue["drafts"].as_array().unwrap_or(&empty);
    let classifications = queue["classifications"].as_array().unwrap_or(&empty);
    let may_decide = session.user.role >= Role::Operator;
    let text = |value: &Value| {
        value
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| value.to_string())
    };
    html! {
        section {
            h2 { "Drafts waiting (" (drafts.len()) ")" }
            @if drafts.is_empty() { p.muted { "No draft is waiting." } }
            @for draft in drafts {
                @let lead_id = text(&draft["lead_id"]);
                @let draft_id = text(&draft["draft_id"]);
                div.draft data-draft=(draft_id) {
                    p {
                        a href={ "/leads/" (lead_id) } { (text(&draft["name"])) } " · " (text(&draft["company"]))
                        " · " (text(&draft["kind"])) " · " span.muted { (text(&draft["state"])) }
                    }
                    @if may_decide {
                        // Approving sends the text as it stands in the box: edited, the
                        // approval records the person's text instead of the draft's.
                        form method="post" action={ "/review/" (lead_id) "/drafts/" (draft_id) "/approve" } {
                            (csrf_field(session))
                            input type="hidden" name="original" value=(text(&draft["text"]));
                            textarea name="text" rows="6" cols="80" { (text(&draft["text"])) }
                            br;
                            button type="submit" class="approve" { "Approve" }
                        }
                        " "
                        form method="post" action={ "/review/" (lead_id) "/drafts/" (draft_id) "/reject" } style="display:inline" {
                            (csrf_field(session))
                            input type="text" name="reason" placeholder="reason (optional)";
                            button type="submit" class="reject" { "Reject" }
                        }
                    } @else {
                        pre { (text(&draft["text"])) }
                        p.muted { "Approving needs the operator role." }
                    }
                }
                hr;
            }
        }
        section {
            h2 { "Unsure classifications (" (classifications.len()) ")" }
            table {
                tr { th { "Lead" } th { "Classification" } th { "Confidence" } }
                @for item in classifications {
                    tr {
                        td { a href={ "/leads/" (text(&item["lead_id"])) } { (text(&item["lead_id"])) } }
                        td { (text(&item["classification"])) }
                        td { (text(&item["confidence"])) }
                    }
                }
            }
        }
        section {
            h2 { "Live feed " span.muted id="live-status" { "connecting…" } }
            ul id="live-feed" {}
        }
    }
}
