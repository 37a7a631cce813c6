//! The Dripify campaign channel against a local fake of the Open API endpoints it uses.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use salesdept_agents::linkedin::dripify::{
    DripifyClient, DripifyConfig, LeadActivityKind, MAX_LEADS_PER_PUSH, push_list_name,
};
use salesdept_agents::linkedin::{IdempotencyKey, LimitKind, LinkedInError, RetryPolicy};
use salesdept_events::domain::LinkedInUrl;
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const API_KEY: &str = "dripify-key-DO-NOT-LEAK-5555";

fn client(server: &MockServer, timeout: Duration) -> DripifyClient {
    let mut config = DripifyConfig::new(SecretString::from(API_KEY.to_owned()));
    config.base_url = url::Url::parse(&server.uri()).unwrap();
    config.timeout = timeout;
    config.requests_per_minute = std::num::NonZeroU32::new(6000).unwrap();
    config.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(2),
    };
    DripifyClient::new(config).unwrap()
}

fn url(slug: &str) -> LinkedInUrl {
    LinkedInUrl::parse(&format!("https://www.linkedin.com/in/{slug}")).unwrap()
}

fn assert_no_secret(error: &LinkedInError) {
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(API_KEY), "API key leaked: {shown}");
}

#[tokio::test]
async fn pushing_leads_creates_a_list_named_after_the_key() {
    let server = MockServer::start().await;
    let key = IdempotencyKey::new(Uuid::new_v4());
    Mock::given(method("POST"))
        .and(path("/v1/open-api/campaigns/12/leads"))
        .and(header("X-Api-Key", API_KEY))
        .and(body_partial_json(json!({
            "name": push_list_name(key),
            "leads": [
                {"linkedinUrl": "https://www.linkedin.com/in/maya-lindqvist-d1"},
                {"linkedinUrl": "https://www.linkedin.com/in/arjun-mehta-d2"}
            ]
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "leadList": {"id": 88, "name": push_list_name(key)},
            "acceptedCount": 1, "duplicateCount": 1
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/open-api/campaigns/12/lead-lists"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [{"id": 80, "name": "Imported by hand"}, {"id": 88, "name": push_list_name(key)}],
            "nextCursor": null
        })))
        .mount(&server)
        .await;
    let dripify = client(&server, Duration::from_secs(5));
    let pushed = dripify
        .push_leads(12, &[url("maya-lindqvist-d1"), url("arjun-mehta-d2")], key)
        .await
        .unwrap();
    assert_eq!(pushed.lead_list_id, Some(88));
    assert_eq!((pushed.accepted, pushed.duplicates), (1, 1));
    assert_eq!(dripify.find_pushed_list(12, key).await.unwrap(), Some(88));
    let other = IdempotencyKey::new(Uuid::new_v4());
    assert_eq!(dripify.find_pushed_list(12, other).await.unwrap(), None);
}

#[tokio::test]
async fn a_push_over_the_documented_size_is_refused_before_sending() {
    let server = MockServer::start().await;
    let leads: Vec<LinkedInUrl> = (0..=MAX_LEADS_PER_PUSH)
        .map(|i| url(&format!("p-{i}")))
        .collect();
    let error = client(&server, Duration::from_secs(5))
        .push_leads(12, &leads, IdempotencyKey::new(Uuid::new_v4()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, LinkedInError::InvalidRequest(_)),
        "{error:?}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn recent_lead_activity_becomes_acceptances_and_reply_signals() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/open-api/leads"))
        .and(query_param("campaignId", "12"))
        .and(query_param("cursor", "c2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [{"id": 3, "linkedinProfileUrl": "https://www.linkedin.com/in/old-lead",
                       "firstName": "Old", "lastName": "Lead",
                       "lastAction": {"sequenceEventType": "CONNECT_SENT", "createdAt": "2026-01-01T00:00:00Z"}}],
            "nextCursor": null
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/open-api/leads"))
        .and(query_param("campaignId", "12"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [
                {"id": 1, "linkedinProfileUrl": "https://linkedin.com/in/Maya-Lindqvist-D1/",
                 "publicId": "maya-lindqvist-d1", "firstName": "Maya", "lastName": "Lindqvist",
                 "lastAction": {"sequenceEventType": "MESSAGE_REPLIED", "createdAt": "2026-03-02T10:15:00Z"}},
                {"id": 2, "publicId": "arjun-mehta-d2", "firstName": "Arjun", "lastName": "Mehta",
                 "lastAction": {"sequenceEventType": "CONNECT_ACCEPTED", "createdAt": "2026-03-02T08:00:00Z"}}
            ],
            "nextCursor": "c2"
        })))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/open-api/leads/1/activity"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [
                {"sequenceEventType": "MESSAGE_REPLIED", "createdAt": "2026-03-02T10:15:00Z", "campaignId": 12},
                {"sequenceEventType": "CONNECT_ACCEPTED", "createdAt": "2026-03-01T12:00:00Z", "campaignId": 12},
                {"sequenceEventType": "CONNECT_SENT", "createdAt": "2026-02-27T12:00:00Z", "campaignId": 12}
            ],
            "nextCursor": null
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/open-api/leads/2/activity"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [{"sequenceEventType": "CONNECT_ACCEPTED", "createdAt": "2026-03-02T08:00:00Z", "campaignId": 12}],
            "nextCursor": null
        })))
        .expect(1)
        .mount(&server)
        .await;
    // Lead 3's last action is old: its activity is never read.
    Mock::given(method("GET"))
        .and(path("/v1/open-api/leads/3/activity"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
        .expect(0)
        .mount(&server)
        .await;

    let since = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let events = client(&server, Duration::from_secs(5))
        .campaign_events_since(12, since)
        .await
        .unwrap();
    let summary: Vec<(String, LeadActivityKind)> = events
        .iter()
        .map(|event| (event.profile_url.as_str().to_owned(), event.kind.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "https://www.linkedin.com/in/maya-lindqvist-d1".to_owned(),
                LeadActivityKind::InvitationAccepted
            ),
            (
                "https://www.linkedin.com/in/arjun-mehta-d2".to_owned(),
                LeadActivityKind::InvitationAccepted
            ),
            (
                "https://www.linkedin.com/in/maya-lindqvist-d1".to_owned(),
                LeadActivityKind::Replied
            ),
        ]
    );
}

#[tokio::test]
async fn statistics_are_read() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/open-api/campaigns/12/statistics"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalLeads": 120, "contactedLeads": 80, "acceptanceRate": 41.5,
            "acceptanceRateLeads": 33, "replyRate": 9.2, "replyRateLeads": 7,
            "leadStatusBreakdown": {"PROCESSING_ENDED": 40}
        })))
        .mount(&server)
        .await;
    let statistics = client(&server, Duration::from_secs(5))
        .campaign_statistics(12)
        .await
        .unwrap();
    assert_eq!(statistics.total_leads, 120);
    assert_eq!(statistics.reply_rate, Some(9.2));
}

#[tokio::test]
async fn faults_map_to_the_right_errors() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/open-api/campaigns/1/statistics"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/open-api/campaigns/1/statistics"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"totalLeads": 1, "contactedLeads": 0})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/open-api/campaigns/2/statistics"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "43200"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/open-api/campaigns/3/statistics"))
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/open-api/campaigns/4/statistics"))
        .respond_with(ResponseTemplate::new(200).set_body_string("[1, 2"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/open-api/campaigns/5/statistics"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"message": "Forbidden"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/open-api/campaigns/6/statistics"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/open-api/campaigns/6/leads"))
        .respond_with(ResponseTemplate::new(502))
        .expect(1)
        .mount(&server)
        .await;
    let dripify = client(&server, Duration::from_millis(300));

    assert_eq!(
        dripify.campaign_statistics(1).await.unwrap().total_leads,
        1,
        "429 then success"
    );
    let budget = dripify.campaign_statistics(2).await.unwrap_err();
    assert!(
        matches!(
            budget,
            LinkedInError::Limit {
                kind: LimitKind::DailyRequestBudget,
                ..
            }
        ),
        "{budget:?}"
    );
    let unavailable = dripify.campaign_statistics(3).await.unwrap_err();
    assert!(
        matches!(unavailable, LinkedInError::Transient { .. }),
        "{unavailable:?}"
    );
    let malformed = dripify.campaign_statistics(4).await.unwrap_err();
    assert!(
        matches!(malformed, LinkedInError::InvalidResponse { .. }),
        "{malformed:?}"
    );
    let plan = dripify.campaign_statistics(5).await.unwrap_err();
    assert_eq!(
        plan.provider_code(),
        Some("open_api_not_in_plan"),
        "{plan:?}"
    );
    let hung = dripify.campaign_statistics(6).await.unwrap_err();
    assert!(matches!(hung, LinkedInError::Transient { .. }), "{hung:?}");
    let push = dripify
        .push_leads(
            6,
            &[url("maya-lindqvist-d1")],
            IdempotencyKey::new(Uuid::new_v4()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(push, LinkedInError::OutcomeUnknown { .. }),
        "{push:?}"
    );
    for error in [budget, unavailable, malformed, plan, hung, push] {
        assert_no_secret(&error);
    }
}
