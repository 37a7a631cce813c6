//! The API through its router, on SQLite and PostgreSQL: every request goes the real path
//! (token check, extractors, the domain's command handler, the store, the projections).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use salesdept_agents::clock::{Clock, SimulatedClock};
use salesdept_events::domain::department::{DailyReport, DepartmentCommand};
use salesdept_events::domain::lead::{DiscoverLead, LeadSource, MessageKind, Priority, Review};
use salesdept_events::domain::{
    Classification, CommandHandler, CommandMetadata, Confidence, DEPARTMENT_STREAM,
    DepartmentState, FollowUpPolicy, LeadCommand, LeadState, LinkedInUrl, Pii, QualityScore,
    lead_stream,
};
use salesdept_events::store::PostgresEventStore;
use salesdept_events::{
    Actor, EventStore, Handler, HandlerContext, HandlerError, Metadata, NewEvent, RecordedEvent,
    Store, Subscription, SubscriptionOptions, domain,
};
use salesdept_projections::LeadTableHandler;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;
use uuid::Uuid;

use super::{ApiState, ApiTokens, BODY_LIMIT, Role, TokenHash, router};

pub(super) const VIEWER_TOKEN: &str = "viewer-secret-token-4f1c9a";
pub(super) const OPERATOR_TOKEN: &str = "operator-secret-token-93ab7e";
pub(super) const ADMIN_TOKEN: &str = "admin-secret-token-c0ffee11";
pub(super) const TOKENS: [&str; 3] = [VIEWER_TOKEN, OPERATOR_TOKEN, ADMIN_TOKEN];

pub(super) fn monday() -> DateTime<Utc> {
    "2026-11-30T10:00:00Z".parse().unwrap()
}

pub(super) async fn sqlite_store() -> (TempDir, Store) {
    let directory = TempDir::new().unwrap();
    let url = format!("sqlite://{}", directory.path().join("api.sqlite").display());
    let store = Store::connect(&url, domain::upcasters()).await.unwrap();
    store.migrate().await.unwrap();
    (directory, store)
}

pub(super) fn postgres(pool: sqlx::PgPool) -> Store {
    Store::Postgres(PostgresEventStore::from_pool(pool, domain::upcasters()))
}

pub(super) fn tokens() -> ApiTokens {
    ApiTokens::default()
        .with("vera", Role::Viewer, TokenHash::of(VIEWER_TOKEN))
        .with("ana", Role::Operator, TokenHash::of(OPERATOR_TOKEN))
        .with("root", Role::Admin, TokenHash::of(ADMIN_TOKEN))
}

pub(super) fn app(store: &Store) -> axum::Router {
    let clock: Arc<dyn Clock> = Arc::new(SimulatedClock::starting_at(monday()));
    router(ApiState::new(store.clone(), clock, tokens()))
}

/// One request through the router: (status, JSON body).
async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body)),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let (status, value) = answer(response).await;
    let text = value.to_string();
    for token in TOKENS {
        assert!(!text.contains(token), "a token in a response: {text}");
    }
    (status, value)
}

/// A response's status and body: its JSON, or its text as a JSON string when it is not JSON.
pub(super) async fn answer(response: axum::response::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn get(app: &axum::Router, path: &str, token: &str) -> (StatusCode, Value) {
    call(app, "GET", path, Some(token), None).await
}

async fn post(app: &axum::Router, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    call(app, "POST", path, Some(token), Some(body.to_string())).await
}

fn handler(store: &Store) -> CommandHandler<Store> {
    CommandHandler::new(Arc::new(store.clone()))
}

async fn run(store: &Store, lead_id: Uuid, command: LeadCommand, metadata: &CommandMetadata) {
    handler(store)
        .execute::<LeadState>(&lead_stream(lead_id), &command, metadata)
        .await
        .unwrap();
}

/// A lead classified unsurely, scored, allocated, with a first message held for review; all
/// its events share `correlation`. Returns (lead, draft).
pub(super) async fn seed_lead(store: &Store, name: &str, correlation: Uuid) -> (Uuid, Uuid) {
    let lead_id = Uuid::now_v7();
    let draft_id = Uuid::now_v7();
    let agent = |name: &str| {
        CommandMetadata::new(Actor::agent(name), monday()).with_correlation(correlation)
    };
    let url = LinkedInUrl::parse(&format!(
        "https://www.linkedin.com/in/person-{}",
        lead_id.simple()
    ))
    .unwrap();
    let commands = [
        (
            LeadCommand::Discover(DiscoverLead {
                lead_id,
                url,
                name: name.into(),
                position: "CTO".into(),
                company: "Fjordbyte".into(),
                company_size: None,
                industry: None,
                is_connection: true,
                source: LeadSource::Search,
                search_id: None,
                import_format: None,
                profile: Pii::default(),
            }),
            "lead_finder",
        ),
        (
            LeadCommand::Classify {
                classification: Classification::Speaker,
                confidence: Confidence::parse(0.4).unwrap(),
                rationale: None,
            },
            "lead_finder",
        ),
        (
            LeadCommand::Score {
                score: QualityScore::parse(8.0).unwrap(),
                factors: BTreeMap::new(),
                rationale: None,
            },
            "lead_finder",
        ),
        (
            LeadCommand::Allocate {
                assigned_to: "outreach".into(),
                priority: Priority::High,
                reason: "high quality speaker".into(),
            },
            "sales_manager",
        ),
        (
            LeadCommand::DraftMessage {
                draft_id,
                kind: MessageKind::Initial,
                variant: Some("speaker_a".into()),
                text: "Hello, would you speak at our summit?".into(),
                review: Review::Required {
                    reason: "low confidence".into(),
                },
                policy: FollowUpPolicy::default(),
            },
            "outreach",
        ),
    ];
    for (command, actor) in commands {
        run(store, lead_id, command, &agent(actor)).await;
    }
    (lead_id, draft_id)
}

/// Runs the lead table's subscription until the row of `lead_id` is at its stream's version
/// (PostgreSQL's whole-log horizon is cluster-wide, so another test may hold it back a moment).
pub(super) async fn project(store: &Store, lead_id: Uuid) {
    let subscription = Subscription::new(
        salesdept_projections::leads::SUBSCRIPTION_NAME,
        store.clone(),
        Arc::new(LeadTableHandler::new()),
    );
    let version = store.stream_version(&lead_stream(lead_id)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        subscription.catch_up().await.unwrap();
        subscription.release_lease().await.unwrap();
        let row = salesdept_projections::get_lead(store, lead_id)
            .await
            .unwrap();
        if row.map(|row| row.version) == version {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lead table never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(super) async fn events_of(store: &Store, stream: &str) -> Vec<RecordedEvent> {
    store.read_stream(stream, 1, None).await.unwrap()
}

// ---------------------------------------------------------------------------------------------

async fn leads_history_and_the_review_queue(store: Store) {
    let app = app(&store);
    let correlation = Uuid::now_v7();
    let (lead_id, draft_id) = seed_lead(&store, "Grace Hopper", correlation).await;
    let (other_id, _) = seed_lead(&store, "Alan Turing", Uuid::now_v7()).await;
    project(&store, lead_id).await;
    project(&store, other_id).await;

    let (status, body) = get(&app, "/api/leads", VIEWER_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 2);
    let (_, body) = get(&app, "/api/leads?q=hopper&status=In%20Review", VIEWER_TOKEN).await;
    assert_eq!(body["total"], 1, "{body}");
    assert_eq!(body["leads"][0]["name"], "Grace Hopper");
    assert_eq!(body["leads"][0]["contact_status"], "In Review");
    let (_, body) = get(
        &app,
        "/api/leads?classification=speaker&min_score=7.5&max_score=9&limit=1&offset=1&order=name",
        VIEWER_TOKEN,
    )
    .await;
    assert_eq!(body["total"], 2, "{body}");
    assert_eq!(body["leads"].as_array().unwrap().len(), 1);
    assert_eq!(
        body["leads"][0]["name"], "Grace Hopper",
        "name order, second"
    );
    let (_, body) = get(&app, "/api/leads?classification=sponsor", VIEWER_TOKEN).await;
    assert_eq!(body["total"], 0);
    let (_, body) = get(&app, "/api/leads?min_score=9", VIEWER_TOKEN).await;
    assert_eq!(body["total"], 0);
    for bad in [
        "/api/leads?status=asleep",
        "/api/leads?classification=celebrity",
        "/api/leads?min_score=8&max_score=2",
        "/api/leads?min_score=11",
        "/api/leads?limit=0",
        "/api/leads?limit=many",
        "/api/leads?order=random",
        "/api/leads?colour=blue",
        "/api/leads/not-a-uuid",
    ] {
        let (status, body) = get(&app, bad, VIEWER_TOKEN).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {body}"
        );
    }

    let (status, body) = get(&app, &format!("/api/leads/{lead_id}"), VIEWER_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["lead"]["name"], "Grace Hopper");
    let types: Vec<&str> = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "lead_discovered",
            "lead_classified",
            "quality_score_calculated",
            "lead_allocation",
            "message_drafted",
            "review_requested"
        ]
    );
    assert!(body["history"][0]["summary"].as_str().is_some());
    let (status, _) = get(
        &app,
        &format!("/api/leads/{}", Uuid::now_v7()),
        VIEWER_TOKEN,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The event log: by correlation, exact stream, type and actor, paged.
    let (_, body) = get(
        &app,
        &format!("/api/events?correlation_id={correlation}"),
        VIEWER_TOKEN,
    )
    .await;
    assert_eq!(body["events"].as_array().unwrap().len(), 6, "{body}");
    assert!(
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["stream_id"] == lead_stream(lead_id))
    );
    let (_, body) = get(
        &app,
        &format!(
            "/api/events?stream={}&type=lead_allocation&actor=agent:sales_manager",
            lead_stream(other_id)
        ),
        VIEWER_TOKEN,
    )
    .await;
    assert_eq!(body["events"].as_array().unwrap().len(), 1, "{body}");
    let (_, first) = get(
        &app,
        "/api/events?stream_prefix=lead-&limit=5",
        VIEWER_TOKEN,
    )
    .await;
    assert_eq!(first["events"].as_array().unwrap().len(), 5);
    let after = first["next_after"].as_i64().unwrap();
    let (_, rest) = get(
        &app,
        &format!("/api/events?stream_prefix=lead-&limit=100&after={after}"),
        VIEWER_TOKEN,
    )
    .await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 7);
    assert!(rest["next_after"].is_null());
    let (_, body) = get(
        &app,
        "/api/events?from=2026-11-30&to=2026-11-30&type=lead_discovered",
        VIEWER_TOKEN,
    )
    .await;
    assert_eq!(body["events"].as_array().unwrap().len(), 2);
    let (_, body) = get(&app, "/api/events?from=2026-12-01", VIEWER_TOKEN).await;
    assert_eq!(body["events"].as_array().unwrap().len(), 0);
    for bad in [
        "/api/events?actor=robot:x",
        "/api/events?from=yesterday",
        "/api/events?from=2026-12-02&to=2026-12-01",
        "/api/events?correlation_id=abc",
        "/api/events?limit=5000",
        "/api/events?stream=a&stream_prefix=b",
    ] {
        let (status, _) = get(&app, bad, VIEWER_TOKEN).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }

    // The review queue holds both drafts and both unsure classifications.
    let (status, body) = get(&app, "/api/review", VIEWER_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let drafts = body["drafts"].as_array().unwrap();
    assert_eq!(drafts.len(), 2, "{body}");
    let held = drafts
        .iter()
        .find(|d| d["lead_id"] == json!(lead_id))
        .unwrap();
    assert_eq!(held["draft_id"], json!(draft_id));
    assert_eq!(held["text"], "Hello, would you speak at our summit?");
    assert_eq!(held["state"], "in_review");
    assert_eq!(body["classifications"].as_array().unwrap().len(), 2);

    // Approving with an edit: message_approved by the token's user, then off the queue.
    let path = format!("/api/review/{lead_id}/drafts/{draft_id}/approve");
    let (status, body) = post(&app, &path, VIEWER_TOKEN, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = post(
        &app,
        &path,
        OPERATOR_TOKEN,
        json!({"text": "Hello Grace, would you give a talk?"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["events"][0]["event_type"], "message_approved");
    let approved = events_of(&store, &lead_stream(lead_id))
        .await
        .pop()
        .unwrap();
    assert_eq!(approved.event_type, "message_approved");
    assert_eq!(approved.metadata.actor, Actor::human("ana"));
    assert_eq!(approved.metadata.occurred_at, monday());
    assert_eq!(approved.data["edited"], true);
    assert_eq!(
        approved.data["pii"]["message_text"],
        "Hello Grace, would you give a talk?"
    );
    let (status, body) = post(&app, &path, OPERATOR_TOKEN, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a decided draft: {body}");
    let missing = format!("/api/review/{lead_id}/drafts/{}/approve", Uuid::now_v7());
    let (status, _) = post(&app, &missing, OPERATOR_TOKEN, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Rejecting the other lead's draft, with an empty body.
    let other_draft = drafts
        .iter()
        .find(|d| d["lead_id"] == json!(other_id))
        .unwrap()["draft_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = call(
        &app,
        "POST",
        &format!("/api/review/{other_id}/drafts/{other_draft}/reject"),
        Some(OPERATOR_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["events"][0]["event_type"], "message_rejected");
    project(&store, lead_id).await;
    project(&store, other_id).await;
    let (_, body) = get(&app, "/api/review", VIEWER_TOKEN).await;
    assert_eq!(body["drafts"].as_array().unwrap().len(), 0, "{body}");

    // A human confirms a classification: it leaves the queue.
    let (status, body) = post(
        &app,
        &format!("/api/leads/{lead_id}/classification"),
        OPERATOR_TOKEN,
        json!({"classification": "Speaker", "reason": "gives talks"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, body) = get(&app, "/api/review", VIEWER_TOKEN).await;
    let unsure = body["classifications"].as_array().unwrap();
    assert_eq!(unsure.len(), 1, "{body}");
    assert_eq!(unsure[0]["lead_id"], json!(other_id));
}

#[tokio::test]
async fn sqlite_leads_history_and_the_review_queue() {
    let (_dir, store) = sqlite_store().await;
    leads_history_and_the_review_queue(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_leads_history_and_the_review_queue(pool: sqlx::PgPool) {
    leads_history_and_the_review_queue(postgres(pool)).await;
}

async fn human_commands_are_events_by_the_token_user(store: Store) {
    let app = app(&store);
    let (lead_id, _) = seed_lead(&store, "Ada Lovelace", Uuid::now_v7()).await;
    let lead = |path: &str| format!("/api/leads/{lead_id}/{path}");
    let cases = [
        (
            "notes",
            json!({"text": "met her at RustConf"}),
            vec!["note_added"],
        ),
        (
            "reassign",
            json!({"to": "bob", "reason": "knows her"}),
            vec!["lead_reassigned"],
        ),
        (
            "classification",
            json!({"classification": "Sponsor"}),
            vec!["lead_classified", "classification_feedback"],
        ),
        (
            "score",
            json!({"score": 9.5, "reason": "keynote material"}),
            vec!["quality_score_calculated", "classification_feedback"],
        ),
        (
            "do-not-contact",
            json!({"reason": "asked by phone"}),
            vec!["do_not_contact"],
        ),
    ];
    for (path, body, expected) in cases {
        let before = store
            .stream_version(&lead_stream(lead_id))
            .await
            .unwrap()
            .unwrap();
        let (status, answer) = post(&app, &lead(path), OPERATOR_TOKEN, body).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
        let appended: Vec<RecordedEvent> = store
            .read_stream(&lead_stream(lead_id), before + 1, None)
            .await
            .unwrap();
        let types: Vec<&str> = appended.iter().map(|e| e.event_type.as_str()).collect();
        assert!(types.starts_with(&expected[..1]), "{path}: {types:?}");
        for event in &expected {
            assert!(types.contains(event), "{path}: {types:?}");
        }
        for event in &appended {
            assert_eq!(event.metadata.actor, Actor::human("ana"), "{path}");
        }
    }
    let (_, body) = get(
        &app,
        "/api/events?actor=human:ana&type=note_added",
        VIEWER_TOKEN,
    )
    .await;
    assert_eq!(body["events"].as_array().unwrap().len(), 1, "{body}");
    // Repeating do-not-contact changes nothing; the rules refuse what the state forbids.
    let (status, body) = post(&app, &lead("do-not-contact"), OPERATOR_TOKEN, json!({})).await;
    assert!(
        status == StatusCode::OK || status == StatusCode::CONFLICT,
        "{status}: {body}"
    );
    let (status, body) = post(
        &app,
        &format!("/api/leads/{}/notes", Uuid::now_v7()),
        OPERATOR_TOKEN,
        json!({"text": "who?"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Close a second lead won.
    let (won, _) = seed_lead(&store, "Barbara Liskov", Uuid::now_v7()).await;
    let (status, body) = post(
        &app,
        &format!("/api/leads/{won}/close"),
        OPERATOR_TOKEN,
        json!({"outcome": "lost", "reason": "no budget"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let closed = events_of(&store, &lead_stream(won)).await.pop().unwrap();
    assert_eq!(closed.event_type, "lead_closed");
    assert_eq!(closed.data["outcome"], "lost");

    // Pause and resume an agent: department events by the user.
    let (status, body) = post(
        &app,
        "/api/agents/outreach/pause",
        OPERATOR_TOKEN,
        json!({"reason": "holiday"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = post(
        &app,
        "/api/agents/outreach/pause",
        OPERATOR_TOKEN,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "pausing twice records once");
    let (status, body) = post(
        &app,
        "/api/agents/outreach/resume",
        OPERATOR_TOKEN,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = post(&app, "/api/agents/janitor/pause", OPERATOR_TOKEN, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let department = events_of(&store, DEPARTMENT_STREAM).await;
    let types: Vec<&str> = department.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["agent_paused", "agent_resumed"]);
    assert_eq!(department[0].data["agent"], "outreach");
    assert_eq!(department[0].metadata.actor, Actor::human("ana"));

    // A search now: search_request on a new search stream.
    let (status, body) = post(
        &app,
        "/api/searches",
        OPERATOR_TOKEN,
        json!({"positions": ["CTO"], "industries": ["Semiconductors"], "limit": 20}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let stream = body["stream_id"].as_str().unwrap();
    assert_eq!(
        stream,
        format!("search-{}", body["search_id"].as_str().unwrap())
    );
    let request = events_of(&store, stream).await;
    assert_eq!(request.len(), 1);
    assert_eq!(request[0].event_type, "search_request");
    assert_eq!(request[0].data["criteria"]["limit"], 20);
    assert_eq!(request[0].metadata.actor, Actor::human("ana"));
    let (status, body) = post(&app, "/api/searches", OPERATOR_TOKEN, json!({"limit": 20})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "no terms: {body}");
}

#[tokio::test]
async fn sqlite_human_commands_are_events_by_the_token_user() {
    let (_dir, store) = sqlite_store().await;
    human_commands_are_events_by_the_token_user(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_human_commands_are_events_by_the_token_user(pool: sqlx::PgPool) {
    human_commands_are_events_by_the_token_user(postgres(pool)).await;
}

#[tokio::test]
async fn missing_or_wrong_tokens_are_401_and_low_roles_403() {
    let (_dir, store) = sqlite_store().await;
    let app = app(&store);
    let lead = Uuid::now_v7();
    for header in [
        None,
        Some("Bearer wrong-token-xxxxxxxxxxxx"),
        Some("Basic abc"),
        Some("Bearer "),
    ] {
        let mut request = Request::builder().uri("/api/leads");
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
    let (status, body) = call(
        &app,
        "POST",
        &format!("/api/leads/{lead}/notes"),
        None,
        Some("{".into()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "auth before the body: {body}"
    );

    let reads = [
        "/api/leads",
        "/api/events",
        "/api/reports/funnel",
        "/api/review",
    ];
    for path in reads {
        for token in TOKENS {
            let (status, body) = get(&app, path, token).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
        }
    }
    let writes = [
        format!("/api/leads/{lead}/notes"),
        format!("/api/leads/{lead}/do-not-contact"),
        "/api/agents/outreach/pause".to_owned(),
        "/api/searches".to_owned(),
        format!("/api/review/{lead}/drafts/{lead}/reject"),
    ];
    for path in &writes {
        let (status, body) = post(&app, path, VIEWER_TOKEN, json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("operator"),
            "{body}"
        );
    }
    for token in [VIEWER_TOKEN, OPERATOR_TOKEN] {
        let (status, _) = get(&app, "/api/dead-letters", token).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = post(&app, "/api/dead-letters/1/retry", token, json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, body) = get(&app, "/api/dead-letters", ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/api/leads")
                .header("authorization", format!("bearer {VIEWER_TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the scheme is case-insensitive"
    );
    // The admin may do what an operator may.
    let (status, body) = post(
        &app,
        "/api/agents/lead_finder/pause",
        ADMIN_TOKEN,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let paused = events_of(&store, DEPARTMENT_STREAM).await;
    assert_eq!(paused[0].metadata.actor, Actor::human("root"));
    // Forgetting is the admin's.
    let (forgotten, _) = seed_lead(&store, "Hedy Lamarr", Uuid::now_v7()).await;
    let path = format!("/api/leads/{forgotten}/forget");
    let (status, _) = post(&app, &path, OPERATOR_TOKEN, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = post(&app, &path, ADMIN_TOKEN, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let last = events_of(&store, &lead_stream(forgotten))
        .await
        .pop()
        .unwrap();
    assert_eq!(last.event_type, "lead_forgotten");
    assert_eq!(last.metadata.actor, Actor::human("root"));
    let (status, _) = post(
        &app,
        &format!("/api/leads/{}/forget", Uuid::now_v7()),
        ADMIN_TOKEN,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = get(&app, "/api/nothing-here", VIEWER_TOKEN).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn bad_bodies_are_400_or_422_and_large_ones_413() {
    let (_dir, store) = sqlite_store().await;
    let app = app(&store);
    let (lead_id, draft_id) = seed_lead(&store, "Edsger Dijkstra", Uuid::now_v7()).await;
    let notes = format!("/api/leads/{lead_id}/notes");
    let cases: Vec<(String, String, StatusCode, &str)> = vec![
        (
            notes.clone(),
            "{".into(),
            StatusCode::BAD_REQUEST,
            "not JSON",
        ),
        (
            notes.clone(),
            r#"{"text": "hi""#.into(),
            StatusCode::BAD_REQUEST,
            "truncated",
        ),
        (
            notes.clone(),
            r#"{"text": 5}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong type",
        ),
        (
            notes.clone(),
            "{}".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing field",
        ),
        (
            notes.clone(),
            r#"{"text": "hi", "colour": 1}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field",
        ),
        (
            notes.clone(),
            r#"{"text": "   "}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "blank note (a rule)",
        ),
        (
            format!("/api/leads/{lead_id}/score"),
            r#"{"score": 11}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "score out of range",
        ),
        (
            format!("/api/leads/{lead_id}/classification"),
            r#"{"classification": "Celebrity"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown class",
        ),
        (
            format!("/api/leads/{lead_id}/close"),
            r#"{"outcome": "maybe"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown outcome",
        ),
        (
            format!("/api/leads/{lead_id}/reassign"),
            r#"{"to": " "}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "nobody",
        ),
        (
            format!("/api/review/{lead_id}/drafts/{draft_id}/approve"),
            r#"{"text": ""}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "blank edit",
        ),
        (
            "/api/searches".into(),
            r#"{"positions": ["CTO"], "limit": 0}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no profiles",
        ),
        (
            "/api/searches".into(),
            r#"{"positions": "CTO"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a list",
        ),
        (
            format!("/api/leads/{lead_id}x/notes"),
            r#"{"text": "hi"}"#.into(),
            StatusCode::BAD_REQUEST,
            "bad lead id",
        ),
    ];
    let before = store.stream_version(&lead_stream(lead_id)).await.unwrap();
    for (path, body, expected, why) in cases {
        let (status, answer) = call(&app, "POST", &path, Some(OPERATOR_TOKEN), Some(body)).await;
        assert_eq!(status, expected, "{why}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{why}: {answer}");
        assert!(
            !message.contains("panicked") && !message.contains("src/"),
            "{why}: {message}"
        );
    }
    assert_eq!(
        store.stream_version(&lead_stream(lead_id)).await.unwrap(),
        before,
        "nothing was written"
    );
    let large = json!({ "text": "x".repeat(BODY_LIMIT + 1) }).to_string();
    let (status, body) = call(&app, "POST", &notes, Some(OPERATOR_TOKEN), Some(large)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["error"].as_str().unwrap().contains("KiB"), "{body}");
    // Just under the limit, and a valid note: JSON's own whitespace pads it.
    let fits = format!(r#"{{"text": "hi"{}}}"#, " ".repeat(BODY_LIMIT - 100));
    let (status, body) = call(&app, "POST", &notes, Some(OPERATOR_TOKEN), Some(fits)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn reports_daily_funnel_and_rates(store: Store) {
    let app = app(&store);
    let (lead_id, _) = seed_lead(&store, "Katherine Johnson", Uuid::now_v7()).await;
    let day = monday().date_naive();
    let report = DailyReport {
        leads_discovered: 1,
        leads_allocated: 1,
        ..DailyReport::default()
    };
    handler(&store)
        .execute::<DepartmentState>(
            DEPARTMENT_STREAM,
            &DepartmentCommand::GenerateDailyReport { date: day, report },
            &CommandMetadata::new(Actor::agent("sales_manager"), monday()),
        )
        .await
        .unwrap();
    let reports = salesdept_projections::reports::subscription(store.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let funnel = loop {
        reports.catch_up().await.unwrap();
        let (status, body) = get(&app, "/api/reports/funnel", VIEWER_TOKEN).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["funnel"]["totals"]["allocated"] == 1 || tokio::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(funnel["funnel"]["totals"]["discovered"], 1, "{funnel}");
    assert_eq!(funnel["funnel"]["totals"]["allocated"], 1, "{funnel}");
    assert_eq!(funnel["to"], "2026-11-30");
    assert_eq!(funnel["funnel"]["days"].as_array().unwrap().len(), 7);

    let (status, body) = get(
        &app,
        "/api/reports/daily?from=2026-11-30&to=2026-11-30",
        VIEWER_TOKEN,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let daily = body["reports"].as_array().unwrap();
    assert_eq!(daily.len(), 1, "{body}");
    assert_eq!(daily[0]["date"], "2026-11-30");
    assert_eq!(daily[0]["report"]["leads_discovered"], 1);
    let (_, body) = get(
        &app,
        "/api/reports/daily?from=2026-11-01&to=2026-11-29",
        VIEWER_TOKEN,
    )
    .await;
    assert_eq!(body["reports"].as_array().unwrap().len(), 0);

    let (status, body) = get(&app, "/api/reports/rates?dimension=account", VIEWER_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["dimension"], "account");
    assert!(body["rates"].is_array());
    assert_eq!(body["weekly"]["message_target"], 200);
    for bad in [
        "/api/reports/rates?dimension=colour",
        "/api/reports/funnel?from=2026-12-01&to=2026-11-01",
        "/api/reports/funnel?from=2020-01-01&to=2026-11-01",
        "/api/reports/daily?from=monday",
    ] {
        let (status, _) = get(&app, bad, VIEWER_TOKEN).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let _ = lead_id;
}

#[tokio::test]
async fn sqlite_reports_daily_funnel_and_rates() {
    let (_dir, store) = sqlite_store().await;
    reports_daily_funnel_and_rates(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_reports_daily_funnel_and_rates(pool: sqlx::PgPool) {
    reports_daily_funnel_and_rates(postgres(pool)).await;
}

/// Fails every event until told to succeed.
struct Flaky {
    failing: AtomicBool,
}

#[async_trait]
impl Handler for Flaky {
    async fn handle(&self, _: &RecordedEvent, _: &mut HandlerContext) -> Result<(), HandlerError> {
        if self.failing.load(Ordering::SeqCst) {
            Err("the downstream service is down".into())
        } else {
            Ok(())
        }
    }
}

async fn a_dead_letter_is_listed_and_retried(store: Store) {
    let app = app(&store);
    store
        .append(
            "probe-1",
            salesdept_events::ExpectedVersion::NoStream,
            vec![NewEvent::new(
                "probe_happened",
                json!({}),
                Metadata::new(Actor::system("test"), monday()),
            )],
        )
        .await
        .unwrap();
    let flaky = Arc::new(Flaky {
        failing: AtomicBool::new(true),
    });
    let subscription = Subscription::new("flaky", store.clone(), flaky.clone()).with_options(
        SubscriptionOptions {
            max_attempts: 1,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
            dead_letter_check_interval: Duration::ZERO,
            ..SubscriptionOptions::default()
        },
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let letter = loop {
        subscription.catch_up().await.unwrap();
        let (status, body) = get(&app, "/api/dead-letters?subscription=flaky", ADMIN_TOKEN).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if let Some(letter) = body["dead_letters"].as_array().unwrap().first() {
            break letter.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "never parked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(letter["stream_id"], "probe-1");
    assert_eq!(letter["error"], "the downstream service is down");
    let id = letter["id"].as_i64().unwrap();

    flaky.failing.store(false, Ordering::SeqCst);
    let (status, body) = post(
        &app,
        &format!("/api/dead-letters/{id}/retry"),
        ADMIN_TOKEN,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    subscription.catch_up().await.unwrap();
    let (_, body) = get(&app, "/api/dead-letters", ADMIN_TOKEN).await;
    assert_eq!(
        body["dead_letters"].as_array().unwrap().len(),
        0,
        "resolved: {body}"
    );
    let (status, _) = post(
        &app,
        &format!("/api/dead-letters/{id}/retry"),
        ADMIN_TOKEN,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(&app, "/api/dead-letters/abc/retry", ADMIN_TOKEN, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sqlite_a_dead_letter_is_listed_and_retried() {
    let (_dir, store) = sqlite_store().await;
    a_dead_letter_is_listed_and_retried(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_a_dead_letter_is_listed_and_retried(pool: sqlx::PgPool) {
    a_dead_letter_is_listed_and_retried(postgres(pool)).await;
}

/// Collects every log line of the test's thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of the test process from the first call on, at TRACE: a global subscriber,
/// so the lines of every thread (the server's tasks, other tests) are seen.
fn captured_logs() -> &'static Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        captured
    })
}

/// A real listener on 127.0.0.1:0, reqwest as the client, every log line at TRACE captured:
/// no configured token appears in any response or log line, right or wrong.
#[tokio::test]
async fn tokens_never_reach_responses_or_logs() {
    let captured = captured_logs();
    let (_dir, store) = sqlite_store().await;
    let (lead_id, _) = seed_lead(&store, "Frances Allen", Uuid::now_v7()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, app(&store)).into_future());
    let client = reqwest::Client::new();
    let base = format!("http://{address}");
    let mut bodies = Vec::new();
    let requests = [
        ("GET", "/api/leads".to_owned(), VIEWER_TOKEN, None),
        ("GET", format!("/api/leads/{lead_id}"), VIEWER_TOKEN, None),
        (
            "POST",
            format!("/api/leads/{lead_id}/notes"),
            VIEWER_TOKEN,
            Some(r#"{"text":"x"}"#),
        ),
        (
            "POST",
            format!("/api/leads/{lead_id}/notes"),
            OPERATOR_TOKEN,
            Some(r#"{"text":"fine"}"#),
        ),
        (
            "POST",
            format!("/api/leads/{lead_id}/notes"),
            OPERATOR_TOKEN,
            Some("{oops"),
        ),
        ("GET", "/api/dead-letters".to_owned(), OPERATOR_TOKEN, None),
        ("GET", "/api/dead-letters".to_owned(), ADMIN_TOKEN, None),
        // A wrong token that differs from a right one by its last character.
        (
            "GET",
            "/api/leads".to_owned(),
            "admin-secret-token-c0ffee12",
            None,
        ),
    ];
    for (method, path, token, body) in requests {
        let mut request = client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        bodies.push((status, response.text().await.unwrap()));
    }
    server.abort();
    let statuses: Vec<u16> = bodies.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [200, 200, 403, 201, 400, 403, 200, 401]);
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("api request"),
        "the requests were logged: {logs}"
    );
    assert!(logs.contains("unknown bearer token"), "{logs}");
    for secret in TOKENS.into_iter().chain(["admin-secret-token-c0ffee12"]) {
        assert!(!logs.contains(secret), "a token in the logs");
        for (_, body) in &bodies {
            assert!(!body.contains(secret), "a token in a response: {body}");
        }
        assert!(
            !logs.contains(&TokenHash::of(secret).to_hex()),
            "a token's hash in the logs"
        );
    }
}

async fn metrics_report_subscription_lag(store: Store) {
    let (first, _) = seed_lead(&store, "Ada Lovelace", Uuid::now_v7()).await;
    project(&store, first).await;
    let app = super::metrics::router(store.clone(), super::metrics::recorder());
    let scrape = |app: axum::Router| async move {
        let response = app
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    };
    let line = |text: &str| {
        text.lines()
            .find(|line| {
                line.starts_with("salesdept_subscription_lag_events{")
                    && line.contains(salesdept_projections::leads::SUBSCRIPTION_NAME)
            })
            .map(str::to_owned)
    };
    let caught_up = scrape(app.clone()).await;
    assert!(
        line(&caught_up).is_some_and(|line| line.ends_with(" 0")),
        "{caught_up}"
    );

    // A second lead's events are behind the lead table until it catches up.
    let head_before = store
        .read_all(salesdept_events::Checkpoint::START, 10_000)
        .await
        .unwrap()
        .len();
    seed_lead(&store, "Grace Hopper", Uuid::now_v7()).await;
    let head_after = store
        .read_all(salesdept_events::Checkpoint::START, 10_000)
        .await
        .unwrap()
        .len();
    let behind = scrape(app).await;
    let lag: f64 = line(&behind)
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no lag line in {behind}"));
    assert!(lag >= (head_after - head_before) as f64, "{behind}");
}

#[tokio::test]
async fn sqlite_metrics_report_subscription_lag() {
    let (_dir, store) = sqlite_store().await;
    metrics_report_subscription_lag(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_metrics_report_subscription_lag(pool: sqlx::PgPool) {
    metrics_report_subscription_lag(postgres(pool)).await;
}
