//! The Unipile adapter against a local fake of Unipile's documented endpoints (wiremock),
//! with the real reqwest client pointed at the fake's base URL.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use salesdept_agents::linkedin::unipile::{UnipileClient, UnipileConfig};
use salesdept_agents::linkedin::{
    IdempotencyKey, InvitationNote, LimitKind, LinkedInError, LinkedInPort, MessageText, Recipient,
    RetryPolicy, SearchCriteria,
};
use salesdept_events::domain::LinkedInUrl;
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;
use wiremock::matchers::{
    body_partial_json, body_string_contains, header, method, path, query_param,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

const API_KEY: &str = "unipile-key-DO-NOT-LEAK-4242";
const ACCOUNT: &str = "acc_test_1";

fn client(server: &MockServer, timeout: Duration) -> UnipileClient {
    let mut config = UnipileConfig::new(
        SecretString::from(server.uri()),
        SecretString::from(API_KEY.to_owned()),
        ACCOUNT,
    );
    config.timeout = timeout;
    config.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(2),
    };
    UnipileClient::new(config).unwrap()
}

fn maya() -> Recipient {
    Recipient {
        profile_url: LinkedInUrl::parse("https://www.linkedin.com/in/maya-lindqvist-d1").unwrap(),
        provider_id: Some("ACoAAAmaya".into()),
        full_name: "Maya Lindqvist".into(),
    }
}

fn key() -> IdempotencyKey {
    IdempotencyKey::new(Uuid::new_v4())
}

/// No error may show the API key or the DSN (the fake's address stands in for it).
fn assert_no_secret(error: &LinkedInError, server: &MockServer) {
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(API_KEY), "API key leaked: {shown}");
    let address = server.address().to_string();
    assert!(!shown.contains(&address), "DSN leaked: {shown}");
}

fn unipile_error(code: &str, status: u16) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "title": "Refused", "detail": "The provider refused.", "type": format!("errors/{code}"), "status": status
    }))
}

#[tokio::test]
async fn search_resolves_names_to_ids_and_maps_results() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/linkedin/search/parameters"))
        .and(query_param("type", "INDUSTRY"))
        .and(query_param("keywords", "Software Development"))
        .and(header("X-API-KEY", API_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "LinkedinSearchParametersList",
            "items": [{"object": "LinkedinSearchParameter", "id": "4", "title": "Software Development"}],
            "paging": {"page_count": 1}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/linkedin/search/parameters"))
        .and(query_param("type", "LOCATION"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "LinkedinSearchParametersList",
            "items": [{"object": "LinkedinSearchParameter", "id": "90010409", "title": "Stockholm"}],
            "paging": {"page_count": 1}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/linkedin/search"))
        .and(query_param("account_id", ACCOUNT))
        .and(header("X-API-KEY", API_KEY))
        .and(body_partial_json(json!({
            "api": "classic", "category": "people",
            "industry": ["4"], "location": ["90010409"],
            "advanced_keywords": {"title": "CTO OR VP Engineering"}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "LinkedinSearch",
            "items": [
                {"object": "SearchResult", "type": "PEOPLE", "id": "ACoAAAmaya",
                 "public_identifier": "maya-lindqvist-d1",
                 "public_profile_url": "https://www.linkedin.com/in/maya-lindqvist-d1",
                 "name": "Maya Lindqvist", "headline": "CTO at Fjordbyte",
                 "location": "Stockholm, Sweden", "network_distance": "DISTANCE_2"},
                {"object": "SearchResult", "type": "PEOPLE", "id": "ACoAAAsofia",
                 "public_identifier": "sofia-romano-d3",
                 "first_name": "Sofia", "last_name": "Romano", "headline": "VP Engineering"}
            ],
            "config": {"params": {}},
            "paging": {"start": 0, "page_count": 2, "total_count": 2},
            "cursor": null
        })))
        .expect(1)
        .mount(&server)
        .await;

    let profiles = client(&server, Duration::from_secs(5))
        .search_profiles(&SearchCriteria {
            industries: vec!["Software Development".into()],
            locations: vec!["Stockholm".into()],
            position_keywords: vec!["CTO".into(), "VP Engineering".into()],
            limit: 10,
            ..SearchCriteria::default()
        })
        .await
        .unwrap();
    assert_eq!(profiles.len(), 2);
    assert_eq!(profiles[0].provider_id, "ACoAAAmaya");
    assert_eq!(profiles[0].position.as_deref(), Some("CTO at Fjordbyte"));
    assert_eq!(profiles[1].name, "Sofia Romano");
    assert_eq!(
        profiles[1].profile_url.as_str(),
        "https://www.linkedin.com/in/sofia-romano-d3"
    );
}

#[tokio::test]
async fn fetch_profile_reads_about_and_current_company() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/maya-lindqvist-d1"))
        .and(query_param("account_id", ACCOUNT))
        .and(header("X-API-KEY", API_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "UserProfile", "provider": "LINKEDIN", "provider_id": "ACoAAAmaya",
            "public_identifier": "maya-lindqvist-d1", "first_name": "Maya", "last_name": "Lindqvist",
            "headline": "CTO", "summary": "Spoke at QCon and KubeCon.", "location": "Stockholm, Sweden",
            "work_experience": [{"company": "Fjordbyte", "position": "CTO", "start": "1/1/2020", "end": null}]
        })))
        .mount(&server)
        .await;
    let profile = client(&server, Duration::from_secs(5))
        .fetch_profile(&maya().profile_url)
        .await
        .unwrap();
    assert_eq!(profile.company.as_deref(), Some("Fjordbyte"));
    assert_eq!(profile.about.as_deref(), Some("Spoke at QCon and KubeCon."));
}

#[tokio::test]
async fn an_invitation_carries_the_note_and_returns_the_invitation_id_once_per_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/users/invite"))
        .and(header("X-API-KEY", API_KEY))
        .and(body_partial_json(json!({
            "provider_id": "ACoAAAmaya", "account_id": ACCOUNT, "message": "Loved your QCon talk."
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "object": "UserInvitationSent", "invitation_id": "inv_7001"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let unipile = client(&server, Duration::from_secs(5));
    let note = InvitationNote::parse("Loved your QCon talk.").unwrap();
    let key = key();
    for _ in 0..2 {
        let sent = unipile
            .send_connection_request(&maya(), Some(&note), key)
            .await
            .unwrap();
        assert_eq!(sent.provider_message_id, "inv_7001");
    }
}

#[tokio::test]
async fn an_invitation_without_provider_id_looks_the_person_up_first() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/maya-lindqvist-d1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "UserProfile", "provider_id": "ACoAAAmaya", "first_name": "Maya"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/users/invite"))
        .and(body_partial_json(json!({"provider_id": "ACoAAAmaya"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "object": "UserInvitationSent", "invitation_id": "inv_2"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let recipient = Recipient {
        provider_id: None,
        ..maya()
    };
    let sent = client(&server, Duration::from_secs(5))
        .send_connection_request(&recipient, None, key())
        .await
        .unwrap();
    assert_eq!(sent.provider_message_id, "inv_2");
}

#[tokio::test]
async fn a_message_starts_a_chat_with_the_text() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chats"))
        .and(header("X-API-KEY", API_KEY))
        .and(body_string_contains("Thanks for connecting, Maya"))
        .and(body_string_contains("ACoAAAmaya"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "object": "ChatStarted", "chat_id": "chat_1", "message_id": "msg_1"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let text = MessageText::parse("Thanks for connecting, Maya!").unwrap();
    let sent = client(&server, Duration::from_secs(5))
        .send_message(&maya(), &text, key())
        .await
        .unwrap();
    assert_eq!(sent.provider_message_id, "msg_1");
}

#[tokio::test]
async fn replies_skip_our_own_messages_and_resolve_the_sender_profile() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/messages"))
        .and(query_param("account_id", ACCOUNT))
        .and(query_param("after", "2026-03-02T09:00:00.000Z"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "MessageList",
            "items": [
                {"object": "Message", "id": "m_2", "chat_id": "chat_1", "provider_id": "p2",
                 "sender_id": "ACoAAAmaya", "text": "Sounds great, I'd love to speak!",
                 "timestamp": "2026-03-02T10:15:00.000Z", "is_sender": 0, "is_event": 0,
                 "deleted": 0, "sender_attendee_id": "att_maya", "attachments": []},
                {"object": "Message", "id": "m_1", "chat_id": "chat_1", "provider_id": "p1",
                 "sender_id": "ACoAAAme", "text": "Thanks for connecting, Maya!",
                 "timestamp": "2026-03-02T09:30:00.000Z", "is_sender": 1, "is_event": 0,
                 "deleted": 0, "sender_attendee_id": "att_me", "attachments": []}
            ],
            "cursor": null
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/chat_attendees/att_maya"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "ChatAttendee", "id": "att_maya", "account_id": ACCOUNT,
            "provider_id": "ACoAAAmaya", "name": "Maya Lindqvist", "is_self": 0,
            "profile_url": "https://www.linkedin.com/in/Maya-Lindqvist-D1/"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let since = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    let replies = client(&server, Duration::from_secs(5))
        .replies_since(since)
        .await
        .unwrap();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].provider_message_id, "m_2");
    assert_eq!(replies[0].thread_id, "chat_1");
    assert_eq!(replies[0].profile_url, maya().profile_url);
    assert_eq!(
        replies[0].received_at,
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 15, 0).unwrap()
    );
}

#[tokio::test]
async fn new_relations_after_the_time_are_acceptances() {
    let server = MockServer::start().await;
    // Newest first; the second page holds only older relations, which ends the walk.
    Mock::given(method("GET"))
        .and(path("/api/v1/users/relations"))
        .and(query_param("cursor", "page-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "UserRelationsList",
            "items": [
                {"object": "UserRelation", "first_name": "Old", "last_name": "Friend",
                 "public_identifier": "old-friend", "created_at": 1600000000,
                 "member_id": "ACoAAAold"}
            ],
            "cursor": "page-3"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/relations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "UserRelationsList",
            "items": [
                {"object": "UserRelation", "first_name": "Maya", "last_name": "Lindqvist",
                 "public_identifier": "maya-lindqvist-d1", "created_at": 1772447400000_i64,
                 "member_id": "ACoAAAmaya"},
                {"object": "UserRelation", "first_name": "Sofia", "last_name": "Romano",
                 "public_identifier": "sofia-romano-d3", "created_at": 1772400000,
                 "member_id": "ACoAAAsofia"}
            ],
            "cursor": "page-2"
        })))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    let since = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let accepted = client(&server, Duration::from_secs(5))
        .connections_accepted_since(since)
        .await
        .unwrap();
    assert_eq!(accepted.len(), 2, "{accepted:?}");
    // Sorted by time: Sofia (seconds) before Maya (milliseconds).
    assert_eq!(
        accepted[0].profile_url.as_str(),
        "https://www.linkedin.com/in/sofia-romano-d3"
    );
    assert_eq!(accepted[1].profile_url, maya().profile_url);
}

#[tokio::test]
async fn limit_answers_are_limits_and_are_not_retried() {
    for (code, expected) in [
        ("cannot_resend_yet", LimitKind::CannotResendYet),
        ("cannot_resend_within_24hrs", LimitKind::CannotResendYet),
        (
            "already_invited_recently",
            LimitKind::AlreadyInvitedRecently,
        ),
        ("limit_exceeded", LimitKind::LimitExceeded),
        ("insufficient_credits", LimitKind::InsufficientCredits),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v1/users/invite"))
            .respond_with(unipile_error(code, 422))
            .expect(1)
            .mount(&server)
            .await;
        let error = client(&server, Duration::from_secs(5))
            .send_connection_request(&maya(), None, key())
            .await
            .unwrap_err();
        assert!(
            matches!(error, LinkedInError::Limit { kind, .. } if kind == expected),
            "{code}: {error:?}"
        );
        assert!(!error.is_retryable());
        assert_no_secret(&error, &server);
    }
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/maya-lindqvist-d1"))
        .respond_with(unipile_error("too_many_requests", 429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/maya-lindqvist-d1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "UserProfile", "provider_id": "ACoAAAmaya", "first_name": "Maya"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    let profile = client(&server, Duration::from_secs(5))
        .fetch_profile(&maya().profile_url)
        .await
        .unwrap();
    assert_eq!(profile.provider_id, "ACoAAAmaya");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After was honoured"
    );
}

#[tokio::test]
async fn a_long_retry_after_goes_back_to_the_caller() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/users/invite"))
        .respond_with(unipile_error("too_many_requests", 429).insert_header("Retry-After", "3600"))
        .expect(1)
        .mount(&server)
        .await;
    let error = client(&server, Duration::from_secs(5))
        .send_connection_request(&maya(), None, key())
        .await
        .unwrap_err();
    assert!(
        matches!(error, LinkedInError::RateLimited { retry_after: Some(wait), .. } if wait == Duration::from_secs(3600)),
        "{error:?}"
    );
    assert_no_secret(&error, &server);
}

#[tokio::test]
async fn a_500_is_transient_on_reads_and_unknown_on_sends() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/maya-lindqvist-d1"))
        .respond_with(unipile_error("unexpected_error", 500))
        .expect(3)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/users/invite"))
        .respond_with(unipile_error("provider_error", 500))
        .expect(1)
        .mount(&server)
        .await;
    let unipile = client(&server, Duration::from_secs(5));
    let read = unipile
        .fetch_profile(&maya().profile_url)
        .await
        .unwrap_err();
    assert!(matches!(read, LinkedInError::Transient { .. }), "{read:?}");
    let send = unipile
        .send_connection_request(&maya(), None, key())
        .await
        .unwrap_err();
    assert!(
        matches!(send, LinkedInError::OutcomeUnknown { .. }),
        "{send:?}"
    );
    assert_no_secret(&read, &server);
    assert_no_secret(&send, &server);
}

#[tokio::test]
async fn a_hang_past_the_timeout_is_transient_on_reads_and_unknown_on_sends() {
    let server = MockServer::start().await;
    let hang = Duration::from_secs(3);
    Mock::given(method("GET"))
        .and(path("/api/v1/users/maya-lindqvist-d1"))
        .respond_with(ResponseTemplate::new(200).set_delay(hang))
        .expect(3)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chats"))
        .respond_with(ResponseTemplate::new(201).set_delay(hang))
        .expect(1)
        .mount(&server)
        .await;
    let unipile = client(&server, Duration::from_millis(200));
    let read = unipile
        .fetch_profile(&maya().profile_url)
        .await
        .unwrap_err();
    assert!(matches!(read, LinkedInError::Transient { .. }), "{read:?}");
    let text = MessageText::parse("Hello").unwrap();
    let send = unipile
        .send_message(&maya(), &text, key())
        .await
        .unwrap_err();
    assert!(
        matches!(send, LinkedInError::OutcomeUnknown { .. }),
        "{send:?}"
    );
    assert!(!send.is_retryable());
    assert_no_secret(&read, &server);
    assert_no_secret(&send, &server);
}

#[tokio::test]
async fn malformed_json_is_an_invalid_response() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/maya-lindqvist-d1"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"object\": \"UserProf"))
        .expect(1)
        .mount(&server)
        .await;
    let error = client(&server, Duration::from_secs(5))
        .fetch_profile(&maya().profile_url)
        .await
        .unwrap_err();
    assert!(
        matches!(error, LinkedInError::InvalidResponse { .. }),
        "{error:?}"
    );
    assert_no_secret(&error, &server);
}

#[tokio::test]
async fn unauthorized_and_other_refusals_are_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/maya-lindqvist-d1"))
        .respond_with(unipile_error("disconnected_account", 401))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/users/invite"))
        .respond_with(unipile_error("already_connected", 422))
        .expect(1)
        .mount(&server)
        .await;
    let unipile = client(&server, Duration::from_secs(5));
    let read = unipile
        .fetch_profile(&maya().profile_url)
        .await
        .unwrap_err();
    assert!(
        matches!(read, LinkedInError::Unauthorized { status: 401, .. }),
        "{read:?}"
    );
    assert_eq!(read.provider_code(), Some("disconnected_account"));
    let send = unipile
        .send_connection_request(&maya(), None, key())
        .await
        .unwrap_err();
    assert!(
        matches!(send, LinkedInError::Permanent { status: 422, .. }),
        "{send:?}"
    );
    assert_eq!(send.provider_code(), Some("already_connected"));
}

#[test]
fn the_client_debug_output_hides_key_and_dsn() {
    let config = UnipileConfig::new(
        SecretString::from("https://api9.unipile.com:13999".to_owned()),
        SecretString::from(API_KEY.to_owned()),
        ACCOUNT,
    );
    let shown = format!(
        "{config:?} {:?}",
        UnipileClient::new(config.clone()).unwrap()
    );
    assert!(!shown.contains(API_KEY), "{shown}");
    assert!(!shown.contains("api9.unipile.com"), "{shown}");
}

#[tokio::test]
async fn search_follows_the_cursor_and_stops_at_the_limit() {
    let server = MockServer::start().await;
    let person = |n: u32| {
        json!({"object": "SearchResult", "type": "PEOPLE", "id": format!("ACoAAA{n}"),
               "public_identifier": format!("person-{n}"), "name": format!("Person {n}")})
    };
    Mock::given(method("POST"))
        .and(path("/api/v1/linkedin/search"))
        .and(query_param("cursor", "c2"))
        .and(query_param("limit", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "LinkedinSearch", "items": [person(3)], "cursor": "c3"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/linkedin/search"))
        .and(query_param("limit", "3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "LinkedinSearch", "items": [person(1), person(2)], "cursor": "c2"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let profiles = client(&server, Duration::from_secs(5))
        .search_profiles(&SearchCriteria {
            keywords: Some("speaker".into()),
            limit: 3,
            ..SearchCriteria::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = profiles.iter().map(|p| p.provider_id.as_str()).collect();
    assert_eq!(ids, ["ACoAAA1", "ACoAAA2", "ACoAAA3"]);
}
