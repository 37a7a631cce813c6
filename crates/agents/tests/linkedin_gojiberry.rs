//! The Gojiberry adapter against a local fake of the documented Gojiberry endpoints.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use salesdept_agents::linkedin::gojiberry::{
    ContactState, GojiberryClient, GojiberryConfig, StepMessage,
};
use salesdept_agents::linkedin::{
    IdempotencyKey, InvitationNote, LinkedInError, LinkedInPort, MessageText, Recipient,
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

const API_KEY: &str = "gojiberry-key-DO-NOT-LEAK-9876";
const LIST: u64 = 7;

fn client_with(server: &MockServer, timeout: Duration, per_minute: u32) -> GojiberryClient {
    let mut config = GojiberryConfig::new(SecretString::from(API_KEY.to_owned()), LIST, 1);
    config.base_url = url::Url::parse(&server.uri()).unwrap();
    config.timeout = timeout;
    config.requests_per_minute = NonZeroU32::new(per_minute).unwrap();
    config.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(2),
    };
    GojiberryClient::new(config).unwrap()
}

fn client(server: &MockServer) -> GojiberryClient {
    client_with(server, Duration::from_secs(5), 6000)
}

fn maya(provider_id: Option<&str>) -> Recipient {
    Recipient {
        profile_url: LinkedInUrl::parse("https://www.linkedin.com/in/maya-lindqvist-d1").unwrap(),
        provider_id: provider_id.map(str::to_owned),
        full_name: "Maya Lindqvist".into(),
    }
}

fn contact(id: u64, state: Option<&str>) -> serde_json::Value {
    json!({
        "id": id, "firstName": "Maya", "lastName": "Lindqvist", "fullName": "Maya Lindqvist",
        "profileUrl": "https://linkedin.com/in/maya-lindqvist-d1", "state": state,
        "bounced": false, "unsubscribed": false, "redListed": false, "blocked": false,
        "emailEnriched": false, "phoneEnriched": false, "userId": 1, "user": {},
        "readyForCampaign": true, "hasStartedCampaign": false,
        "createdAt": "2026-03-01T10:00:00Z", "updatedAt": "2026-03-01T10:00:00Z"
    })
}

fn key() -> IdempotencyKey {
    IdempotencyKey::new(Uuid::new_v4())
}

fn assert_no_secret(error: &LinkedInError) {
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(API_KEY), "API key leaked: {shown}");
}

#[tokio::test]
async fn an_invitation_enrolls_the_contact_with_the_note_before_joining_the_campaign_list() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/contact"))
        .and(header(
            "Authorization",
            format!("Bearer {API_KEY}").as_str(),
        ))
        .and(body_partial_json(json!({
            "firstName": "Maya", "lastName": "Lindqvist",
            "profileUrl": "https://www.linkedin.com/in/maya-lindqvist-d1"
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(contact(42, None)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/v1/contact/42"))
        .and(body_partial_json(json!({
            "personalizedMessages": [{"content": "Loved your QCon talk.", "stepNumber": 1}]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(contact(42, None)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/contact/list/7/contacts"))
        .and(body_partial_json(json!({"contactIds": [42]})))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    let note = InvitationNote::parse("Loved your QCon talk.").unwrap();
    let gojiberry = client(&server);
    let key = key();
    for _ in 0..2 {
        let sent = gojiberry
            .send_connection_request(&maya(None), Some(&note), key)
            .await
            .unwrap();
        assert_eq!(sent.provider_message_id, "contact:42");
    }
    let order: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| format!("{} {}", request.method, request.url.path()))
        .collect();
    assert_eq!(
        order,
        [
            "POST /v1/contact",
            "PATCH /v1/contact/42",
            "POST /v1/contact/list/7/contacts"
        ],
        "messages are set before the contact joins the campaign"
    );
}

#[tokio::test]
async fn an_existing_contact_is_found_by_profile_url_and_enrolled() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/contact"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "message": "Contact already exists", "error": "Bad Request", "statusCode": 400
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/contact"))
        .and(query_param("search", "Maya Lindqvist"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "contacts": [
                {"id": 41, "firstName": "Maya", "lastName": "Lindqvist",
                 "profileUrl": "https://www.linkedin.com/in/another-maya"},
                contact(42, Some("paused"))
            ],
            "total": 2, "page": 1, "limit": 100, "totalPages": 1
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/contact/list/7/contacts"))
        .and(body_partial_json(json!({"contactIds": [42]})))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let sent = client(&server)
        .enroll_in_campaign(&maya(None), &[], key())
        .await
        .unwrap();
    assert_eq!(sent.provider_message_id, "contact:42");
}

#[tokio::test]
async fn an_excluded_contact_is_refused_and_never_added_to_the_campaign() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/contact/42"))
        .respond_with(ResponseTemplate::new(200).set_body_json(contact(42, Some("excluded"))))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/contact/list/7/contacts"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let steps = [StepMessage {
        step_number: 2,
        content: "Follow-up".into(),
    }];
    let error = client(&server)
        .enroll_in_campaign(&maya(Some("42")), &steps, key())
        .await
        .unwrap_err();
    assert_eq!(error.provider_code(), Some("excluded"), "{error:?}");
}

#[tokio::test]
async fn a_message_goes_into_the_contacts_latest_chat() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/contact/42"))
        .respond_with(ResponseTemplate::new(200).set_body_json(contact(42, None)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/unibox/contact/42"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": "chat-9", "seen": true, "lastMessage": "Sure!", "createdAt": "2026-03-01T10:00:00Z", "updatedAt": "2026-03-02T10:00:00Z"},
            {"id": "chat-1", "seen": true, "createdAt": "2025-01-01T10:00:00Z", "updatedAt": "2025-01-01T10:00:00Z"}
        ])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/unibox/messages/send-message"))
        .and(header(
            "Authorization",
            format!("Bearer {API_KEY}").as_str(),
        ))
        .and(body_string_contains("chat-9"))
        .and(body_string_contains("Here is the speaker pack."))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    let key = key();
    let text = MessageText::parse("Here is the speaker pack.").unwrap();
    let sent = client(&server)
        .send_message(&maya(Some("42")), &text, key)
        .await
        .unwrap();
    assert_eq!(sent.provider_message_id, format!("chat:chat-9:{key}"));
}

#[tokio::test]
async fn replies_are_the_prospects_messages_in_recent_threads() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/unibox/threads"))
        .and(query_param("dateFrom", "2026-03-02T09:00:00.000Z"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{
                "id": 310, "attendeeId": "att-maya", "contactId": 42,
                "lastMessage": "Sounds great", "lastMessageDate": "2026-03-02T10:15:00Z",
                "contact": {"id": 42, "profileUrl": "https://linkedin.com/in/maya-lindqvist-d1"}
            }],
            "total": 1, "page": 1
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/unibox/threads/310/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [
                {"id": 1, "text": "Hi Maya, we run DeepTech Days...", "createdAt": "2026-03-01T09:00:00Z", "isSender": true},
                {"id": 2, "text": "Sounds great, I'd love to speak!", "createdAt": "2026-03-02T10:15:00Z", "isSender": false}
            ]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let since = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    let replies = client(&server).replies_since(since).await.unwrap();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].text, "Sounds great, I'd love to speak!");
    assert_eq!(replies[0].thread_id, "310");
    assert_eq!(replies[0].provider_message_id, "310:2");
    assert_eq!(replies[0].profile_url, maya(None).profile_url);
}

#[tokio::test]
async fn a_paused_state_is_written_to_the_contact() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/v1/contact/42"))
        .and(body_partial_json(json!({"state": "paused"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(contact(42, Some("paused"))))
        .expect(1)
        .mount(&server)
        .await;
    let contact = client(&server)
        .set_contact_state(42, Some(ContactState::Paused))
        .await
        .unwrap();
    assert_eq!(contact.state, Some(ContactState::Paused));
}

#[tokio::test]
async fn search_profile_look_up_and_acceptances_are_unsupported() {
    let server = MockServer::start().await;
    let gojiberry = client(&server);
    let search = gojiberry
        .search_profiles(&SearchCriteria::default())
        .await
        .unwrap_err();
    let fetch = gojiberry
        .fetch_profile(&maya(None).profile_url)
        .await
        .unwrap_err();
    let accepted = gojiberry
        .connections_accepted_since(Utc::now())
        .await
        .unwrap_err();
    for error in [search, fetch, accepted] {
        assert!(
            matches!(error, LinkedInError::Unsupported { .. }),
            "{error:?}"
        );
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_client_side_rate_limiter_spaces_requests_out() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/contact/42"))
        .respond_with(ResponseTemplate::new(200).set_body_json(contact(42, None)))
        .expect(12)
        .mount(&server)
        .await;
    // 600 a minute = one every 100 ms after a burst of 10.
    let gojiberry = client_with(&server, Duration::from_secs(5), 600);
    let started = Instant::now();
    for _ in 0..12 {
        gojiberry.contact(42).await.unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "12 requests at 10 a second after a burst of 10 took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn faults_map_to_the_right_errors() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/contact/1"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "60")
                .set_body_json(
                    json!({"message": "ThrottlerException: Too Many Requests", "statusCode": 429}),
                ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/contact/2"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"message": "Internal server error", "statusCode": 500})),
        )
        .expect(3)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/contact/3"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>gateway</html>"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/contact/4"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(contact(4, None))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/contact/5"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"message": "Contact not found", "statusCode": 404})),
        )
        .mount(&server)
        .await;
    let gojiberry = client_with(&server, Duration::from_millis(200), 6000);

    let limited = gojiberry.contact(1).await.unwrap_err();
    assert!(
        matches!(limited, LinkedInError::RateLimited { retry_after: Some(wait), .. } if wait == Duration::from_secs(60)),
        "{limited:?}"
    );
    let failed = gojiberry.contact(2).await.unwrap_err();
    assert!(
        matches!(failed, LinkedInError::Transient { .. }),
        "{failed:?}"
    );
    let malformed = gojiberry.contact(3).await.unwrap_err();
    assert!(
        matches!(malformed, LinkedInError::InvalidResponse { .. }),
        "{malformed:?}"
    );
    let hung = gojiberry.contact(4).await.unwrap_err();
    assert!(matches!(hung, LinkedInError::Transient { .. }), "{hung:?}");
    let missing = gojiberry.contact(5).await.unwrap_err();
    assert!(
        matches!(missing, LinkedInError::NotFound { .. }),
        "{missing:?}"
    );
    for error in [limited, failed, malformed, hung, missing] {
        assert_no_secret(&error);
    }
}

#[tokio::test]
async fn a_hung_send_is_an_unknown_outcome_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/contact/42"))
        .respond_with(ResponseTemplate::new(200).set_body_json(contact(42, None)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/unibox/contact/42"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": "chat-9"}])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/unibox/messages/send-message"))
        .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(3)))
        .expect(1)
        .mount(&server)
        .await;
    let text = MessageText::parse("Hello").unwrap();
    let error = client_with(&server, Duration::from_millis(300), 6000)
        .send_message(&maya(Some("42")), &text, key())
        .await
        .unwrap_err();
    assert!(
        matches!(error, LinkedInError::OutcomeUnknown { .. }),
        "{error:?}"
    );
    assert_no_secret(&error);
}
