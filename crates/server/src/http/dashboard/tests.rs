//! The dashboard through its router on a real store (SQLite and PostgreSQL): login and the
//! cookie's flags, CSRF and roles on the forms, escaping, the same approval event as the API,
//! and the live feed.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures::StreamExt;
use salesdept_agents::clock::{Clock, SimulatedClock};
use salesdept_events::domain::{AccountId, AccountLimits};
use salesdept_events::{Actor, Store};
use tower::ServiceExt;
use uuid::Uuid;

use super::{DashboardState, router};
use crate::http::ApiState;
use crate::http::tests::{
    OPERATOR_TOKEN, TOKENS, VIEWER_TOKEN, events_of, monday, postgres, project, seed_lead,
    sqlite_store, tokens,
};

fn app(store: &Store) -> axum::Router {
    let clock: Arc<dyn Clock> = Arc::new(SimulatedClock::starting_at(monday()));
    let api = ApiState::new(store.clone(), clock, tokens());
    let accounts = vec![(
        AccountId::parse("primary").unwrap(),
        AccountLimits::default(),
    )];
    crate::http::router(api.clone()).merge(router(DashboardState::new(api).with_accounts(accounts)))
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

async fn send(app: &axum::Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    for token in TOKENS {
        assert!(!text.contains(token), "a token in a page: {text}");
    }
    Answer {
        status,
        headers,
        text,
    }
}

async fn page(app: &axum::Router, path: &str, cookie: Option<&str>) -> Answer {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    send(app, request.body(Body::empty()).unwrap()).await
}

async fn form(app: &axum::Router, path: &str, cookie: Option<&str>, body: &str) -> Answer {
    let mut request =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    send(app, request.body(Body::from(body.to_owned())).unwrap()).await
}

/// Logs in with `token`: the `Cookie` header value of the session.
async fn login(app: &axum::Router, token: &str) -> String {
    let answer = form(app, "/login", None, &format!("token={token}")).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    let set_cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_refuses_bad_tokens() {
    let (_dir, store) = sqlite_store().await;
    let app = app(&store);

    let answer = page(&app, "/", None).await;
    assert_eq!(
        answer.status,
        StatusCode::SEE_OTHER,
        "no session: to the login"
    );
    assert_eq!(answer.headers[header::LOCATION], "/login");
    let answer = page(&app, "/login", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.text.contains("name=\"token\""), "{}", answer.text);

    for bad in ["token=not-a-known-token-123456", "token=", ""] {
        let answer = form(&app, "/login", None, bad).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{bad:?}");
        assert!(answer.headers.get(header::SET_COOKIE).is_none(), "{bad:?}");
        assert!(answer.text.contains("Unknown token"), "{}", answer.text);
    }
    let answer = form(&app, "/login", None, &format!("token={VIEWER_TOKEN}")).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.headers[header::LOCATION], "/");
    let set_cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.starts_with("salesdept_session="), "{set_cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set_cookie.contains(flag), "{flag} missing: {set_cookie}");
    }
    assert!(
        !set_cookie.contains(VIEWER_TOKEN),
        "the cookie is not the token"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let overview = page(&app, "/", Some(&cookie)).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.text);
    for part in [
        "funnel-chart",
        "Sends today",
        "primary",
        "0 / 45",
        "Agent health",
        "live-feed",
    ] {
        assert!(overview.text.contains(part), "{part} missing");
    }
    let policy = overview.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let forged = page(&app, "/", Some("salesdept_session=forged")).await;
    assert_eq!(forged.status, StatusCode::SEE_OTHER, "an unknown session");

    // Logging out needs the form's CSRF token, then ends the session.
    let answer = form(&app, "/logout", Some(&cookie), "").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let csrf = csrf_of(&overview.text);
    let answer = form(&app, "/logout", Some(&cookie), &format!("csrf={csrf}")).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert!(
        answer.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        page(&app, "/", Some(&cookie)).await.status,
        StatusCode::SEE_OTHER
    );
}

async fn review_decisions_need_csrf_and_the_operator_role(store: Store) {
    let app = app(&store);
    let name = "<script>alert('x')</script> Hopper";
    let (lead_id, draft_id) = seed_lead(&store, name, Uuid::now_v7()).await;
    project(&store, lead_id).await;
    let approve = format!("/review/{lead_id}/drafts/{draft_id}/approve");

    let viewer = login(&app, VIEWER_TOKEN).await;
    let queue = page(&app, "/review", Some(&viewer)).await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.text);
    assert!(
        queue
            .text
            .contains("&lt;script&gt;alert('x')&lt;/script&gt; Hopper")
    );
    assert!(!queue.text.contains("<script>alert"), "the name is escaped");
    assert!(
        !queue.text.contains(&approve),
        "no approve button for a viewer"
    );
    let viewer_csrf = csrf_of(&queue.text);
    let answer = form(
        &app,
        &approve,
        Some(&viewer),
        &format!("csrf={viewer_csrf}"),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "a viewer cannot approve"
    );
    assert!(answer.text.contains("operator role"), "{}", answer.text);

    let operator = login(&app, OPERATOR_TOKEN).await;
    let queue = page(&app, "/review", Some(&operator)).await;
    assert!(queue.text.contains(&approve), "{}", queue.text);
    let csrf = csrf_of(&queue.text);
    assert_ne!(csrf, viewer_csrf, "one CSRF token per session");
    for body in [
        String::new(),
        "csrf=forged".into(),
        format!("csrf={viewer_csrf}"),
    ] {
        let answer = form(&app, &approve, Some(&operator), &body).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{body:?}");
    }
    let answer = form(&app, &approve, None, &format!("csrf={csrf}")).await;
    assert_eq!(
        answer.status,
        StatusCode::SEE_OTHER,
        "no session: to the login"
    );
    assert_eq!(answer.headers[header::LOCATION], "/login");
    let before = events_of(&store, &salesdept_events::domain::lead_stream(lead_id)).await;
    assert!(
        before
            .iter()
            .all(|event| event.event_type != "message_approved")
    );

    // The operator edits the text in the box before approving.
    let answer = form(
        &app,
        &approve,
        Some(&operator),
        &format!("csrf={csrf}&original=Hello+Grace&text=Hello+Grace%2C+see+you+in+Berlin"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    assert_eq!(answer.headers[header::LOCATION], "/review");
    let after = events_of(&store, &salesdept_events::domain::lead_stream(lead_id)).await;
    let approved = after.last().unwrap();
    assert_eq!(approved.event_type, "message_approved");
    assert_eq!(approved.metadata.actor, Actor::human("ana"));
    assert_eq!(approved.data["draft_id"], draft_id.to_string());
    assert_eq!(approved.data["edited"], true, "{:?}", approved.data);
    assert_eq!(after.len(), before.len() + 1);

    // The lead table and the timeline show the name escaped too.
    project(&store, lead_id).await;
    let leads = page(
        &app,
        "/leads?q=hopper&status=&classification=speaker",
        Some(&viewer),
    )
    .await;
    assert_eq!(leads.status, StatusCode::OK, "{}", leads.text);
    assert!(leads.text.contains("1 leads"), "{}", leads.text);
    assert!(leads.text.contains("&lt;script&gt;"));
    assert!(!leads.text.contains("<script>alert"));
    let none = page(&app, "/leads?q=nobody-by-this-name", Some(&viewer)).await;
    assert!(none.text.contains("0 leads"), "{}", none.text);
    let bad = page(&app, "/leads?status=asleep", Some(&viewer)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let timeline = page(&app, &format!("/leads/{lead_id}"), Some(&viewer)).await;
    assert_eq!(timeline.status, StatusCode::OK, "{}", timeline.text);
    for part in [
        "lead_discovered",
        "message_drafted",
        "message_approved",
        "human:ana",
    ] {
        assert!(timeline.text.contains(part), "{part} missing");
    }
    assert!(!timeline.text.contains("<script>alert"));
    let missing = page(&app, &format!("/leads/{}", Uuid::now_v7()), Some(&viewer)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn sqlite_review_decisions_need_csrf_and_the_operator_role() {
    let (_dir, store) = sqlite_store().await;
    review_decisions_need_csrf_and_the_operator_role(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_review_decisions_need_csrf_and_the_operator_role(pool: sqlx::PgPool) {
    review_decisions_need_csrf_and_the_operator_role(postgres(pool)).await;
}

/// The feed starts at the head: events appended before it opened are not sent, the next
/// ones are, with no payload.
async fn the_live_feed_streams_new_events(store: Store) {
    let app = app(&store);
    let (lead_id, draft_id) = seed_lead(&store, "Ada Lovelace", Uuid::now_v7()).await;

    let refused = page(&app, "/api/events/live", None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let request = Request::get("/api/events/live")
        .header(header::AUTHORIZATION, "Bearer wrong-token-0123456789")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, request).await.status, StatusCode::UNAUTHORIZED);

    let request = Request::get("/api/events/live")
        .header(header::AUTHORIZATION, format!("Bearer {VIEWER_TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body().into_data_stream();

    let operator = login(&app, OPERATOR_TOKEN).await;
    let queue = page(&app, "/review", Some(&operator)).await;
    let csrf = csrf_of(&queue.text);
    let answer = form(
        &app,
        &format!("/review/{lead_id}/drafts/{draft_id}/approve"),
        Some(&operator),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);

    let mut received = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !received.contains("message_approved") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("the approval reached the feed in time")
            .expect("the feed is open")
            .unwrap();
        received.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(
        !received.contains("message_drafted"),
        "only new events: {received}"
    );
    let line = received
        .lines()
        .find(|line| line.contains("message_approved"))
        .unwrap();
    let data: serde_json::Value =
        serde_json::from_str(line.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(data["stream"], format!("lead-{lead_id}"));
    assert_eq!(data["actor"], "human:ana");
    assert!(data["position"].as_i64().unwrap() > 0);
    assert!(data.get("data").is_none(), "no payload: {data}");
    assert!(!received.contains("Ada Lovelace"), "no personal data");
}

#[tokio::test]
async fn sqlite_the_live_feed_streams_new_events() {
    let (_dir, store) = sqlite_store().await;
    the_live_feed_streams_new_events(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_the_live_feed_streams_new_events(pool: sqlx::PgPool) {
    the_live_feed_streams_new_events(postgres(pool)).await;
}
