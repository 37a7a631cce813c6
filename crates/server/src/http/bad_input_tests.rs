//! The bad-input corpus of the API's write routes: every route that appends, through the real
//! router on a real SQLite store, answered for each malformed body (not JSON, cut short, the
//! wrong content type, the wrong shape, a missing or unknown field, a value out of range, an
//! unknown name, text too long, a body over the limit) with a 4xx and a JSON error that names
//! the problem — and the log's head exactly where it was: no partial write.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use salesdept_events::{Checkpoint, EventStore, Store};
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

use super::BODY_LIMIT;
use super::tests::{ADMIN_TOKEN, OPERATOR_TOKEN, app, events_of, seed_lead, sqlite_store};
use salesdept_events::domain::lead_stream;

/// The log's head: how many events it holds and the id of the last.
async fn log_head(store: &Store) -> (usize, Option<Uuid>) {
    let events = store.read_all(Checkpoint::START, 1_000_000).await.unwrap();
    (events.len(), events.last().map(|event| event.event_id))
}

/// One POST with a raw body and content type: (status, JSON answer).
async fn post_raw(
    app: &axum::Router,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: String,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method("POST")
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    super::tests::answer(response).await
}

const JSON: Option<&str> = Some("application/json");

/// One malformed request: where, how, what, the answer's status and a fragment its error
/// message must hold (compared in lower case), and why the row is there.
struct Row {
    path: String,
    token: &'static str,
    content_type: Option<&'static str>,
    body: String,
    status: StatusCode,
    names: &'static str,
    why: String,
}

fn row(path: &str, body: impl Into<String>, status: u16, names: &'static str, why: &str) -> Row {
    Row {
        path: path.to_owned(),
        token: OPERATOR_TOKEN,
        content_type: JSON,
        body: body.into(),
        status: StatusCode::from_u16(status).unwrap(),
        names,
        why: format!("{path}: {why}"),
    }
}

/// The rows every route with a body gets: broken JSON, the wrong content type, the wrong shape,
/// an unknown field, a body over the limit.
fn every_route(path: &str, token: &'static str, valid: &str) -> Vec<Row> {
    let mut rows = vec![
        row(path, "{", 400, "not json", "not JSON"),
        row(
            path,
            &valid[..valid.len() - 1],
            400,
            "not json",
            "cut short",
        ),
        row(path, "\u{feff}{}", 400, "not json", "a byte-order mark"),
        row(
            path,
            "[]",
            422,
            "must be a json object, not a list",
            "a list",
        ),
        row(
            path,
            "\"text\"",
            422,
            "must be a json object, not a string",
            "a string",
        ),
        row(
            path,
            "42",
            422,
            "must be a json object, not a number",
            "a number",
        ),
        row(path, "null", 422, "must be a json object, not null", "null"),
        row(
            path,
            r#"{"colour": "blue"}"#,
            422,
            "unknown field `colour`",
            "an unknown field",
        ),
        row(
            path,
            json!({ "padding": "x".repeat(BODY_LIMIT) }).to_string(),
            413,
            "larger than 64 kib",
            "over the body limit",
        ),
        Row {
            content_type: Some("text/plain"),
            ..row(
                path,
                valid,
                415,
                "application/json",
                "a valid body as text/plain",
            )
        },
        Row {
            content_type: Some("application/x-www-form-urlencoded"),
            ..row(
                path,
                valid,
                415,
                "application/json",
                "a valid body as a form",
            )
        },
    ];
    for row in &mut rows {
        row.token = token;
    }
    rows
}

#[tokio::test]
async fn every_write_route_refuses_bad_bodies_with_a_clear_error_and_writes_nothing() {
    let (_directory, store) = sqlite_store().await;
    let app = app(&store);
    let (lead_id, draft_id) = seed_lead(&store, "Edsger Dijkstra", Uuid::now_v7()).await;
    let lead = |route: &str| format!("/api/leads/{lead_id}/{route}");
    let review = |decision: &str| format!("/api/review/{lead_id}/drafts/{draft_id}/{decision}");
    let long = |characters: usize| "x".repeat(characters);

    // Every write route of the router, with a body it accepts (to cut short and to resend with
    // the wrong content type) and its token.
    let routes: Vec<(String, &str, &'static str)> = vec![
        (
            lead("notes"),
            r#"{"text": "met at RustConf"}"#,
            OPERATOR_TOKEN,
        ),
        (
            lead("do-not-contact"),
            r#"{"reason": "asked"}"#,
            OPERATOR_TOKEN,
        ),
        (lead("reassign"), r#"{"to": "bob"}"#, OPERATOR_TOKEN),
        (lead("close"), r#"{"outcome": "won"}"#, OPERATOR_TOKEN),
        (
            lead("classification"),
            r#"{"classification": "Sponsor"}"#,
            OPERATOR_TOKEN,
        ),
        (lead("score"), r#"{"score": 9}"#, OPERATOR_TOKEN),
        (lead("forget"), "{}", ADMIN_TOKEN),
        (review("approve"), r#"{"text": "Hello"}"#, OPERATOR_TOKEN),
        (review("reject"), r#"{"reason": "tone"}"#, OPERATOR_TOKEN),
        (
            "/api/agents/outreach/pause".into(),
            r#"{"reason": "holiday"}"#,
            OPERATOR_TOKEN,
        ),
        ("/api/agents/outreach/resume".into(), "{}", OPERATOR_TOKEN),
        (
            "/api/searches".into(),
            r#"{"positions": ["CTO"]}"#,
            OPERATOR_TOKEN,
        ),
        ("/api/dead-letters/1/retry".into(), "{}", ADMIN_TOKEN),
    ];
    let mut rows: Vec<Row> = routes
        .iter()
        .flat_map(|(path, valid, token)| every_route(path, token, valid))
        .collect();

    // What each route's own fields allow.
    let notes = lead("notes");
    rows.extend([
        row(&notes, "{}", 422, "missing field `text`", "no text"),
        row(
            &notes,
            r#"{"text": 5}"#,
            422,
            "invalid type: integer",
            "a number",
        ),
        row(
            &notes,
            r#"{"text": null}"#,
            422,
            "invalid type: null",
            "null",
        ),
        row(
            &notes,
            r#"{"text": "   "}"#,
            422,
            "the note must not be empty",
            "blank",
        ),
        row(
            &notes,
            json!({ "text": long(5_001) }).to_string(),
            422,
            "at most 5000",
            "a note over 5000 characters",
        ),
    ]);
    let do_not_contact = lead("do-not-contact");
    rows.extend([
        row(
            &do_not_contact,
            r#"{"reason": 5}"#,
            422,
            "invalid type",
            "a number",
        ),
        row(
            &do_not_contact,
            json!({ "reason": long(1_001) }).to_string(),
            422,
            "reason has 1001 characters",
            "a reason over 1000 characters",
        ),
    ]);
    let reassign = lead("reassign");
    rows.extend([
        row(&reassign, "{}", 422, "missing field `to`", "nobody"),
        row(&reassign, r#"{"to": " "}"#, 422, "to must name", "blank"),
        row(
            &reassign,
            r#"{"to": ["bob"]}"#,
            422,
            "invalid type: sequence",
            "a list",
        ),
        row(
            &reassign,
            json!({ "to": long(201) }).to_string(),
            422,
            "to has 201 characters",
            "a name over 200 characters",
        ),
        row(
            &reassign,
            json!({ "to": "bob", "reason": long(1_001) }).to_string(),
            422,
            "reason has 1001 characters",
            "a reason over 1000 characters",
        ),
    ]);
    let close = lead("close");
    rows.extend([
        row(&close, "{}", 422, "missing field `outcome`", "no outcome"),
        row(
            &close,
            r#"{"outcome": "maybe"}"#,
            422,
            "unknown variant `maybe`",
            "an unknown outcome",
        ),
        row(
            &close,
            r#"{"outcome": 1}"#,
            422,
            "column 13 has the wrong type",
            "a number",
        ),
    ]);
    let classification = lead("classification");
    rows.extend([
        row(
            &classification,
            "{}",
            422,
            "missing field `classification`",
            "no class",
        ),
        row(
            &classification,
            r#"{"classification": "Celebrity"}"#,
            422,
            "unknown variant `celebrity`",
            "an unknown class",
        ),
        row(
            &classification,
            r#"{"classification": "Speaker", "reason": false}"#,
            422,
            "invalid type: boolean",
            "a reason that is not text",
        ),
    ]);
    let score = lead("score");
    rows.extend([
        row(&score, "{}", 422, "missing field `score`", "no score"),
        row(
            &score,
            r#"{"score": 11}"#,
            422,
            "between 1.0 and 10.0",
            "11",
        ),
        row(
            &score,
            r#"{"score": -1}"#,
            422,
            "between 1.0 and 10.0",
            "-1",
        ),
        row(&score, r#"{"score": 0}"#, 422, "between 1.0 and 10.0", "0"),
        row(
            &score,
            r#"{"score": 10.01}"#,
            422,
            "between 1.0 and 10.0",
            "10.01",
        ),
        row(
            &score,
            r#"{"score": "nine"}"#,
            422,
            "invalid type: string",
            "text",
        ),
        row(
            &score,
            r#"{"score": 1e400}"#,
            400,
            "number out of range",
            "infinite",
        ),
    ]);
    let approve = review("approve");
    rows.extend([
        row(
            &approve,
            r#"{"text": ""}"#,
            422,
            "must not be empty",
            "a blank edit",
        ),
        row(&approve, r#"{"text": 5}"#, 422, "invalid type", "a number"),
        row(
            &approve,
            json!({ "text": long(8_001) }).to_string(),
            422,
            "at most 8000",
            "an edit longer than LinkedIn takes",
        ),
        row(
            &format!("/api/review/{lead_id}/drafts/{}/approve", Uuid::now_v7()),
            "{}",
            404,
            "draft",
            "an unknown draft",
        ),
        row(
            &format!("/api/review/{lead_id}/drafts/not-a-uuid/approve"),
            "{}",
            400,
            "uuid",
            "a draft id that is not a UUID",
        ),
    ]);
    let reject = review("reject");
    rows.extend([
        row(
            &reject,
            r#"{"reason": ["tone"]}"#,
            422,
            "invalid type",
            "a list",
        ),
        row(
            &reject,
            json!({ "reason": long(1_001) }).to_string(),
            422,
            "reason has 1001 characters",
            "a reason over 1000 characters",
        ),
    ]);
    let pause = "/api/agents/outreach/pause";
    rows.extend([
        row(pause, r#"{"reason": 5}"#, 422, "invalid type", "a number"),
        row(
            pause,
            json!({ "reason": long(1_001) }).to_string(),
            422,
            "reason has 1001 characters",
            "a reason over 1000 characters",
        ),
        row(
            "/api/agents/closer/pause",
            "{}",
            404,
            "there is no agent \"closer\"",
            "an unknown agent",
        ),
        row(
            "/api/agents/closer/resume",
            "{}",
            404,
            "there is no agent \"closer\"",
            "an unknown agent",
        ),
    ]);
    rows.push(row(
        "/api/agents/outreach/resume",
        r#"{"reason": "back"}"#,
        422,
        "unknown field `reason`",
        "resume takes no fields",
    ));
    let searches = "/api/searches";
    rows.extend([
        row(
            searches,
            r#"{"positions": ["CTO"], "limit": 0}"#,
            422,
            "1 to 1000",
            "0",
        ),
        row(
            searches,
            r#"{"positions": ["CTO"], "limit": 1001}"#,
            422,
            "1 to 1000",
            "over the maximum",
        ),
        row(
            searches,
            r#"{"positions": ["CTO"], "limit": -1}"#,
            422,
            "invalid value: integer `-1`",
            "negative",
        ),
        row(
            searches,
            r#"{"positions": ["CTO"], "limit": "ten"}"#,
            422,
            "invalid type: string",
            "text",
        ),
        row(
            searches,
            r#"{"positions": "CTO"}"#,
            422,
            "invalid type",
            "not a list",
        ),
        row(
            searches,
            r#"{"positions": [1]}"#,
            422,
            "invalid type: integer",
            "a number in the list",
        ),
        row(
            searches,
            json!({ "keywords": [long(201)] }).to_string(),
            422,
            "keywords: an entry has 201 characters",
            "a keyword over 200 characters",
        ),
        row(
            searches,
            json!({ "positions": vec!["CTO"; 51] }).to_string(),
            422,
            "positions has 51 entries",
            "more than 50 positions",
        ),
    ]);
    for (path, token) in [
        (lead("forget"), ADMIN_TOKEN),
        ("/api/dead-letters/1/retry".into(), ADMIN_TOKEN),
    ] {
        let mut refused = row(
            &path,
            r#"{"lead": 1}"#,
            422,
            "unknown field `lead`",
            "no fields",
        );
        refused.token = token;
        rows.push(refused);
    }
    rows.push(Row {
        token: ADMIN_TOKEN,
        ..row(
            "/api/dead-letters/abc/retry",
            "{}",
            400,
            "cannot parse `abc`",
            "an id that is not a number",
        )
    });

    let before = log_head(&store).await;
    assert!(before.0 > 0, "the seeded lead is in the log");
    let mut failures = Vec::new();
    for row in &rows {
        let (status, answer) = post_raw(
            &app,
            &row.path,
            row.token,
            row.content_type,
            row.body.clone(),
        )
        .await;
        let message = answer["error"].as_str().unwrap_or_default().to_lowercase();
        if status != row.status || !message.contains(row.names) {
            failures.push(format!(
                "{}: expected {} naming {:?}, got {status} {answer}",
                row.why, row.status, row.names
            ));
        }
        assert!(
            !message.contains("panicked") && !message.contains("src/"),
            "{}: {message}",
            row.why
        );
        assert_eq!(
            log_head(&store).await,
            before,
            "{}: nothing written",
            row.why
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    // The forget rows deleted no data key: the person's name still reads.
    let discovered = &events_of(&store, &lead_stream(lead_id)).await[0];
    assert!(
        discovered.data.to_string().contains("Edsger Dijkstra"),
        "{}",
        discovered.data
    );

    // The routes work: each valid body is taken (a table of refusals alone proves nothing).
    let mut appended = 0;
    for (path, valid, token) in [
        (
            lead("notes"),
            r#"{"text": "met at RustConf"}"#,
            OPERATOR_TOKEN,
        ),
        (lead("score"), r#"{"score": 9}"#, OPERATOR_TOKEN),
        (review("reject"), r#"{"reason": "tone"}"#, OPERATOR_TOKEN),
        (
            "/api/agents/outreach/pause".into(),
            r#"{"reason": "holiday"}"#,
            OPERATOR_TOKEN,
        ),
        ("/api/agents/outreach/resume".into(), "", OPERATOR_TOKEN),
    ] {
        let (status, answer) = post_raw(&app, &path, token, JSON, valid.to_owned()).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
        appended += answer["events"].as_array().unwrap().len();
    }
    // Without a content type (curl without -H) a JSON body is still read.
    let (status, answer) = post_raw(
        &app,
        &lead("notes"),
        OPERATOR_TOKEN,
        None,
        r#"{"text": "second note"}"#.into(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    appended += 1;
    let (status, answer) = post_raw(
        &app,
        &lead("notes"),
        OPERATOR_TOKEN,
        Some("application/json; charset=utf-8"),
        json!({ "text": long(5_000) }).to_string(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a note of 5000 characters: {answer}"
    );
    appended += 1;
    assert_eq!(
        log_head(&store).await.0,
        before.0 + appended,
        "the valid commands' events, and only those"
    );
}
