//! The provider-fault table at the agent level: each provider the agents call — the LLM (the
//! Lead Finder's classification, through the OpenAI-compatible client), LinkedIn (Outreach's
//! send, through the Unipile client) and SMTP (the hand-over mail, through lettre) — answering
//! 429 with Retry-After, 500, a hang past the client's timeout, a garbage body and a truncated
//! one, on the real stores. Every row checks that the retries were bounded (requests counted at
//! the fake), that the outcome is an event or a clear error, that nothing is lost (once the fake
//! recovers, a rerun finishes the work) and that nothing is doubled (one classification, one
//! send, one mail per lead). The sheet's rows are in `crates/projections/tests/sheet_google.rs`
//! (`fault_*`), where its fake lives.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use salesdept_agents::clock::{Clock, SimulatedClock};
use salesdept_agents::lead_finder::{FinderSettings, LeadFinder};
use salesdept_agents::linkedin::unipile::{UnipileClient, UnipileConfig};
use salesdept_agents::linkedin::{LinkedInPort, RetryPolicy};
use salesdept_agents::llm::{LlmConfig, LlmRouter};
use salesdept_agents::mail::{SmtpConfig, SmtpMailer, SmtpTlsMode};
use salesdept_agents::outreach::{
    HandOver, HandOverConfig, HandOverHandler, SendRequest, SendResult, Sender, SendingAccount,
};
use salesdept_agents::sandbox::{SandboxLinkedIn, SandboxNetwork};
use salesdept_events::domain::lead::{
    DiscoverLead, LeadCommand, LeadSource, LeadState, MessageKind, Priority, Review,
};
use salesdept_events::domain::search::{SearchCommand, SearchCriteria, SearchState};
use salesdept_events::domain::url::{ReserveUrl, UrlReservation};
use salesdept_events::domain::{
    AccountId, AccountLimits, Classification, CommandHandler, CommandMetadata, Confidence,
    FollowUpPolicy, Intent, InvitationPolicy, LinkedInUrl, Pii, QualityScore, Sentiment,
    lead_stream, search_stream, url_stream,
};
use salesdept_events::store::PostgresEventStore;
use salesdept_events::subscription::{
    list_dead_letters, request_dead_letter_retry, stored_checkpoint,
};
use salesdept_events::{
    Actor, EventStore, RecordedEvent, Store, Subscription, SubscriptionOptions, domain,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use support::smtp_sink::{Behaviour, Sink};
use tempfile::TempDir;
use uuid::Uuid;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

// ---------------------------------------------------------------------------------------------
// The faults, and an HTTP fake that answers them until it recovers.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// 429 with `Retry-After: 1`.
    RateLimited,
    /// 500 with the provider's error body.
    ServerError,
    /// The healthy answer, but only after the client's timeout.
    Timeout,
    /// 200 (or the provider's success status) with an HTML page instead of JSON.
    Garbage,
    /// The healthy JSON answer cut in half.
    Truncated,
}

const HANG: Duration = Duration::from_secs(3);

/// Answers one endpoint: healthy while `fault` is None, else the fault.
struct FaultyEndpoint {
    fault: Arc<Mutex<Option<Fault>>>,
    status: u16,
    body: Value,
    error_body: fn(u16) -> Value,
}

impl Respond for FaultyEndpoint {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let healthy = ResponseTemplate::new(self.status).set_body_json(self.body.clone());
        match *self.fault.lock().unwrap() {
            None => healthy,
            Some(Fault::RateLimited) => ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json((self.error_body)(429)),
            Some(Fault::ServerError) => {
                ResponseTemplate::new(500).set_body_json((self.error_body)(500))
            }
            Some(Fault::Timeout) => healthy.set_delay(HANG),
            Some(Fault::Garbage) => ResponseTemplate::new(self.status).set_body_raw(
                "<html><body>502 Bad Gateway</body></html>",
                "application/json",
            ),
            Some(Fault::Truncated) => {
                let text = self.body.to_string();
                let cut = text[..text.len() / 2].to_owned();
                ResponseTemplate::new(self.status).set_body_raw(cut, "application/json")
            }
        }
    }
}

/// A fake HTTP provider whose one faulty endpoint can be switched between a fault and health.
struct FakeProvider {
    server: MockServer,
    fault: Arc<Mutex<Option<Fault>>>,
    endpoint: &'static str,
}

impl FakeProvider {
    async fn start(
        endpoint: &'static str,
        status: u16,
        body: Value,
        error_body: fn(u16) -> Value,
    ) -> Self {
        let server = MockServer::start().await;
        let fault = Arc::new(Mutex::new(None));
        Mock::given(method("POST"))
            .and(path(endpoint))
            .respond_with(FaultyEndpoint {
                fault: Arc::clone(&fault),
                status,
                body,
                error_body,
            })
            .mount(&server)
            .await;
        Self {
            server,
            fault,
            endpoint,
        }
    }

    fn set(&self, fault: Option<Fault>) {
        *self.fault.lock().unwrap() = fault;
    }

    /// Requests that reached the faulty endpoint.
    async fn calls(&self) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|request| {
                request.method.as_str() == "POST" && request.url.path() == self.endpoint
            })
            .count()
    }
}

// ---------------------------------------------------------------------------------------------
// Stores and the log.

fn tuesday_morning() -> DateTime<Utc> {
    "2026-12-01T10:00:00Z".parse().unwrap()
}

async fn sqlite_store() -> (TempDir, Store) {
    let directory = TempDir::new().unwrap();
    let url = format!(
        "sqlite://{}",
        directory.path().join("faults.sqlite").display()
    );
    let store = Store::connect(&url, domain::upcasters()).await.unwrap();
    store.migrate().await.unwrap();
    (directory, store)
}

fn postgres(pool: sqlx::PgPool) -> Store {
    Store::Postgres(PostgresEventStore::from_pool(pool, domain::upcasters()))
}

async fn lead_events(store: &Store, lead_id: Uuid) -> Vec<RecordedEvent> {
    store
        .read_stream(&lead_stream(lead_id), 1, None)
        .await
        .unwrap()
}

async fn count_of(store: &Store, lead_id: Uuid, event_type: &str) -> usize {
    lead_events(store, lead_id)
        .await
        .iter()
        .filter(|event| event.event_type == event_type)
        .count()
}

fn metadata(actor: Actor, at: DateTime<Utc>) -> CommandMetadata {
    CommandMetadata::new(actor, at).with_correlation(Uuid::now_v7())
}

async fn run(store: &Store, lead_id: Uuid, actor: Actor, command: LeadCommand) {
    CommandHandler::new(Arc::new(store.clone()))
        .execute::<LeadState>(
            &lead_stream(lead_id),
            &command,
            &metadata(actor, tuesday_morning()),
        )
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// The LLM: the Lead Finder classifying through an OpenAI-compatible fake.

const LLM_ENDPOINT: &str = "/v1/chat/completions";
/// Attempts per call: the first and `max_retries` (2) more.
const LLM_ATTEMPTS: usize = 3;

fn llm_error(status: u16) -> Value {
    json!({"error": {"message": "injected", "type": "server_error", "param": null,
                     "code": if status == 429 { "rate_limit_exceeded" } else { "server_error" }}})
}

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_764_000_000u32,
        "model": "fake-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    })
}

fn valid_assessment() -> String {
    json!({"classification": "Speaker", "confidence": 0.9, "quality_score": 8.5,
           "rationale": "A CTO who speaks at conferences."})
    .to_string()
}

fn llm_config(base_url: &str) -> LlmConfig {
    serde_json::from_value(json!({
        "providers": {"openai": {"kind": "openai", "base_url": base_url,
                                 "api_key": "sk-test-secret-faults", "default_model": "fake-model",
                                 "max_tokens": 300, "temperature": 0.2}},
        "agents": {"lead_finder": {"chain": [{"provider": "openai"}]}},
        "prices": {"fake-model": {"prompt": 1.0, "completion": 2.0}},
        "resilience": {"timeout_seconds": 0.4, "max_retries": 2, "min_backoff_seconds": 0.01,
                       "max_backoff_seconds": 0.05, "max_retry_after_seconds": 5,
                       "breaker_failure_threshold": 100, "breaker_cool_down_seconds": 60}
    }))
    .unwrap()
}

struct FinderWorld {
    store: Arc<Store>,
    clock: SimulatedClock,
    linkedin: Arc<dyn LinkedInPort>,
}

impl FinderWorld {
    fn new(store: Store) -> Self {
        let clock = SimulatedClock::starting_at(tuesday_morning());
        let linkedin: Arc<dyn LinkedInPort> = Arc::new(SandboxLinkedIn::new(
            Arc::new(SandboxNetwork::generate(5, 3_000)),
            Arc::new(clock.clone()),
            "primary",
        ));
        Self {
            store: Arc::new(store),
            clock,
            linkedin,
        }
    }

    fn finder(&self, llm: LlmRouter) -> LeadFinder<Store, LlmRouter> {
        LeadFinder::new(
            Arc::clone(&self.store),
            Arc::clone(&self.linkedin),
            Arc::new(llm),
            Arc::new(self.clock.clone()),
            FinderSettings::default(),
        )
    }

    fn router(&self, fake: &FakeProvider) -> LlmRouter {
        let base_url = format!("{}/v1", fake.server.uri());
        LlmRouter::new(&llm_config(&base_url), (*self.store).clone(), || {
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
        })
        .unwrap()
    }

    /// Appends a search request for `limit` profiles and returns it as recorded.
    async fn request(&self, limit: u32, positions: &[&str]) -> RecordedEvent {
        let search_id = Uuid::now_v7();
        let command = SearchCommand::Request {
            search_id,
            criteria: SearchCriteria {
                positions: positions.iter().map(|text| (*text).to_owned()).collect(),
                limit,
                ..SearchCriteria::default()
            },
            reason: "fault table".into(),
        };
        CommandHandler::new(Arc::clone(&self.store))
            .execute::<SearchState>(
                &search_stream(search_id),
                &command,
                &metadata(Actor::agent("sales_manager"), self.clock.now()),
            )
            .await
            .unwrap();
        self.store
            .read_stream(&search_stream(search_id), 1, Some(1))
            .await
            .unwrap()
            .remove(0)
    }
}

/// Checks the classification and score events of one lead: exactly one each, the score in
/// range, and whether the rules answered (the LLM usage in the metadata says so).
async fn assert_classified_once(store: &Store, lead_id: Uuid, by_rules: bool, case: &str) {
    let events = lead_events(store, lead_id).await;
    let classified: Vec<&RecordedEvent> = events
        .iter()
        .filter(|event| event.event_type == "lead_classified")
        .collect();
    let scored: Vec<&RecordedEvent> = events
        .iter()
        .filter(|event| event.event_type == "quality_score_calculated")
        .collect();
    assert_eq!(classified.len(), 1, "{case}: one classification");
    assert_eq!(scored.len(), 1, "{case}: one score");
    let score = scored[0].data["score"]
        .as_f64()
        .unwrap_or_else(|| panic!("{case}: a numeric score in {}", scored[0].data));
    assert!((1.0..=10.0).contains(&score), "{case}: score {score}");
    let usage = &classified[0].metadata.llm;
    let fallback = usage.as_ref().is_none_or(|usage| usage.fallback);
    assert_eq!(fallback, by_rules, "{case}: rules answered? {usage:?}");
}

/// One LLM row: two profiles classified while the fake answers `fault` on every attempt.
async fn llm_row(store: Store, fault: Fault) {
    let case = format!("LLM {fault:?}");
    let world = FinderWorld::new(store);
    let fake = FakeProvider::start(
        LLM_ENDPOINT,
        200,
        completion(&valid_assessment()),
        llm_error,
    )
    .await;
    fake.set(Some(fault));
    let finder = world.finder(world.router(&fake));
    let request = world.request(2, &["CTO", "Founder"]).await;
    let outcome = finder.run_search(&request).await.unwrap();
    assert_eq!(
        outcome.leads.len(),
        2,
        "{case}: failed {:?}",
        outcome.failed
    );

    // Bounded: every profile was tried, no profile more than its attempts (a repair request
    // after an unreadable answer included).
    let calls = fake.calls().await;
    let per_profile_bound = match fault {
        Fault::Garbage | Fault::Truncated => LLM_ATTEMPTS + 1,
        _ => LLM_ATTEMPTS,
    };
    assert!(
        (2..=2 * per_profile_bound).contains(&calls),
        "{case}: {calls} calls"
    );
    if matches!(
        fault,
        Fault::RateLimited | Fault::ServerError | Fault::Timeout
    ) {
        assert_eq!(calls, 2 * LLM_ATTEMPTS, "{case}: every attempt, no more");
    }
    // The outcome is recorded: the rules answered, and the events say so.
    for lead in &outcome.leads {
        assert!(lead.by_rules, "{case}");
        assert_classified_once(&world.store, lead.lead_id, true, &case).await;
    }

    // Recovered: the same search again repeats nothing, and a new one is the model's.
    fake.set(None);
    let again = finder.run_search(&request).await.unwrap();
    assert!(again.already_completed, "{case}");
    assert_eq!(fake.calls().await, calls, "{case}: nothing asked twice");
    for lead in &outcome.leads {
        assert_classified_once(&world.store, lead.lead_id, true, &case).await;
    }
    let next = world.request(1, &["VP Engineering"]).await;
    let later = finder.run_search(&next).await.unwrap();
    assert_eq!(later.leads.len(), 1, "{case}: {:?}", later.failed);
    assert!(
        !later.leads[0].by_rules,
        "{case}: the recovered model answers"
    );
    assert_classified_once(&world.store, later.leads[0].lead_id, false, &case).await;
}

// ---------------------------------------------------------------------------------------------
// Bad LLM answers (the bad-input corpus): well-formed HTTP, unusable content.

/// Answers the chat completions with these contents in order, repeating the last.
struct Contents(Mutex<Vec<String>>);

impl Respond for Contents {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let mut contents = self.0.lock().unwrap();
        let content = if contents.len() > 1 {
            contents.remove(0)
        } else {
            contents[0].clone()
        };
        ResponseTemplate::new(200).set_body_json(completion(&content))
    }
}

/// One row per kind of bad answer: the model answers it to the question and to the repair
/// request, so the rules answer and the events hold a valid, in-range verdict.
async fn bad_llm_answers_fall_back_to_the_rules(store: Store) {
    let world = FinderWorld::new(store);
    let answer = |classification: Value, confidence: Value, score: Value| {
        json!({"classification": classification, "confidence": confidence,
               "quality_score": score, "rationale": "A CTO."})
        .to_string()
    };
    let rows: Vec<(String, &str)> = vec![
        ("Sure! This person is a great speaker.".into(), "not JSON"),
        (
            "{\"classification\": \"Speaker\", \"confid".into(),
            "truncated JSON",
        ),
        (
            "{\"classification\": \"Speaker\", \"confidence\": 0.9}".into(),
            "missing fields",
        ),
        (answer(json!("Speaker"), json!(0.9), json!(0)), "score 0"),
        (answer(json!("Speaker"), json!(0.9), json!(11)), "score 11"),
        (
            answer(json!("Speaker"), json!(0.9), json!("nine")),
            "score \"nine\"",
        ),
        (
            answer(json!("Speaker"), json!(0.9), json!(-3.5)),
            "negative score",
        ),
        (
            answer(json!("Celebrity"), json!(0.9), json!(8)),
            "unknown label",
        ),
        (
            answer(json!("speaker"), json!(0.9), json!(8)),
            "label in the wrong case",
        ),
        (
            answer(json!("Speaker"), json!(1.7), json!(8)),
            "confidence over 1",
        ),
        (
            json!({"classification": "Speaker", "confidence": 0.9, "quality_score": 8,
                   "rationale": ""})
            .to_string(),
            "empty rationale",
        ),
    ];
    // The store is shared by the rows; the sandbox pages its matches by the day, so each row
    // runs a day later and puts a new profile (not a duplicate of an earlier row's) to the model.
    for (content, why) in rows {
        world.clock.advance_by(chrono::Duration::days(1));
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(LLM_ENDPOINT))
            .respond_with(Contents(Mutex::new(vec![content.clone()])))
            .mount(&server)
            .await;
        let fake = FakeProvider {
            server,
            fault: Arc::new(Mutex::new(None)),
            endpoint: LLM_ENDPOINT,
        };
        let finder = world.finder(world.router(&fake));
        let request = world.request(1, &["CTO"]).await;
        let outcome = finder.run_search(&request).await.unwrap();
        assert_eq!(outcome.leads.len(), 1, "{why}: {:?}", outcome.failed);
        assert_eq!(outcome.duplicates, 0, "{why}");
        let calls = fake.calls().await;
        assert!(
            (1..=2).contains(&calls),
            "{why}: the question and one repair, {calls} calls"
        );
        for lead in &outcome.leads {
            assert!(lead.by_rules, "{why}: the rules answered");
            assert_classified_once(&world.store, lead.lead_id, true, why).await;
        }
    }

    // A bad first answer that the repair request corrects is the model's.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(LLM_ENDPOINT))
        .respond_with(Contents(Mutex::new(vec![
            answer(json!("Speaker"), json!(0.9), json!(11)),
            valid_assessment(),
        ])))
        .mount(&server)
        .await;
    let fake = FakeProvider {
        server,
        fault: Arc::new(Mutex::new(None)),
        endpoint: LLM_ENDPOINT,
    };
    let finder = world.finder(world.router(&fake));
    let outcome = finder
        .run_search(&world.request(1, &["Founder"]).await)
        .await
        .unwrap();
    assert_eq!(outcome.leads.len(), 1, "{:?}", outcome.failed);
    assert!(!outcome.leads[0].by_rules);
    assert_eq!(outcome.leads[0].quality_score.value(), 8.5);
    assert_eq!(fake.calls().await, 2, "the question and its repair");
    assert_classified_once(&world.store, outcome.leads[0].lead_id, false, "repaired").await;
}

#[tokio::test]
async fn sqlite_bad_llm_answers_fall_back_to_the_rules() {
    let (_directory, store) = sqlite_store().await;
    bad_llm_answers_fall_back_to_the_rules(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_bad_llm_answers_fall_back_to_the_rules(pool: sqlx::PgPool) {
    bad_llm_answers_fall_back_to_the_rules(postgres(pool)).await;
}

// ---------------------------------------------------------------------------------------------
// LinkedIn: Outreach sending an approved message through the Unipile client.

const CHATS: &str = "/api/v1/chats";
const UNIPILE_KEY: &str = "unipile-key-DO-NOT-LEAK-faults";
/// Attempts per call the Unipile client makes when a retry is safe.
const LINKEDIN_ATTEMPTS: u32 = 3;

fn unipile_error(status: u16) -> Value {
    let code = if status == 429 {
        "too_many_requests"
    } else {
        "unexpected_error"
    };
    json!({"title": "Injected", "detail": "injected", "type": format!("errors/{code}"),
           "status": status})
}

async fn unipile_fake() -> FakeProvider {
    let fake = FakeProvider::start(
        CHATS,
        201,
        json!({"object": "ChatStarted", "chat_id": "chat_1", "message_id": "msg_1"}),
        unipile_error,
    )
    .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/api/v1/users/[^/]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "UserProfile", "provider_id": "ACoAAAmaya", "first_name": "Maya"
        })))
        .mount(&fake.server)
        .await;
    fake
}

fn unipile_client(fake: &FakeProvider) -> Arc<dyn LinkedInPort> {
    let mut config = UnipileConfig::new(
        SecretString::from(fake.server.uri()),
        SecretString::from(UNIPILE_KEY.to_owned()),
        "acc_faults",
    );
    config.timeout = Duration::from_millis(300);
    config.retry = RetryPolicy {
        max_attempts: LINKEDIN_ATTEMPTS,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(2),
    };
    Arc::new(UnipileClient::new(config).unwrap())
}

/// A discovered, classified, scored and allocated lead with a profile at `url`.
async fn allocated_lead(store: &Store, url: &str, name: &str, is_connection: bool) -> Uuid {
    let lead_id = Uuid::now_v7();
    let url = LinkedInUrl::parse(url).unwrap();
    CommandHandler::new(Arc::new(store.clone()))
        .execute::<UrlReservation>(
            &url_stream(&url),
            &ReserveUrl {
                lead_id,
                url: url.clone(),
            },
            &metadata(Actor::agent("test"), tuesday_morning()),
        )
        .await
        .unwrap();
    let agent = || Actor::agent("test");
    let commands = [
        LeadCommand::Discover(DiscoverLead {
            lead_id,
            url,
            name: name.into(),
            position: "CTO".into(),
            company: "Fjordbyte".into(),
            company_size: None,
            industry: None,
            is_connection,
            source: LeadSource::Search,
            search_id: None,
            import_format: None,
            profile: Pii::default(),
        }),
        LeadCommand::Classify {
            classification: Classification::Speaker,
            confidence: Confidence::parse(0.9).unwrap(),
            rationale: None,
        },
        LeadCommand::Score {
            score: QualityScore::parse(8.0).unwrap(),
            factors: BTreeMap::new(),
            rationale: None,
        },
        LeadCommand::Allocate {
            assigned_to: "outreach".into(),
            priority: Priority::High,
            reason: "test".into(),
        },
    ];
    for command in commands {
        run(store, lead_id, agent(), command).await;
    }
    lead_id
}

/// An allocated connection with an approved first message.
async fn approved_draft(store: &Store, url: &str, name: &str) -> (Uuid, Uuid) {
    let lead_id = allocated_lead(store, url, name, true).await;
    let draft_id = Uuid::now_v7();
    let text = format!("Hi {name}, would you speak at our event?");
    let command = LeadCommand::DraftMessage {
        draft_id,
        kind: MessageKind::Initial,
        text,
        variant: Some("speaker_a".into()),
        review: Review::NotNeeded,
        policy: FollowUpPolicy::default(),
    };
    run(store, lead_id, Actor::agent("outreach"), command).await;
    (lead_id, draft_id)
}

fn sender(store: &Store, clock: &SimulatedClock, linkedin: Arc<dyn LinkedInPort>) -> Sender<Store> {
    Sender::new(
        Arc::new(store.clone()),
        vec![SendingAccount {
            id: AccountId::parse("primary").unwrap(),
            limits: AccountLimits::default(),
            linkedin,
        }],
        Arc::new(clock.clone()),
        FollowUpPolicy::default(),
        InvitationPolicy::default(),
    )
}

/// The outcomes recorded by `message_send_failed` events of a lead.
async fn failure_outcomes(store: &Store, lead_id: Uuid) -> Vec<String> {
    lead_events(store, lead_id)
        .await
        .iter()
        .filter(|event| event.event_type == "message_send_failed")
        .map(|event| {
            event.data["outcome"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// One LinkedIn row: an approved message sent while Unipile answers `fault`.
async fn linkedin_row(store: Store, fault: Fault) {
    let case = format!("LinkedIn {fault:?}");
    let clock = SimulatedClock::starting_at(tuesday_morning());
    let fake = unipile_fake().await;
    let sender = sender(&store, &clock, unipile_client(&fake));
    let (lead_id, draft_id) = approved_draft(
        &store,
        "https://www.linkedin.com/in/maya-lindqvist-d1",
        "Maya",
    )
    .await;
    let request = SendRequest::Message { draft_id };
    fake.set(Some(fault));
    let result = sender.send(lead_id, &request, None).await.unwrap();
    let calls = fake.calls().await;
    let error = match &result {
        SendResult::Failed { error } | SendResult::Unknown { error, .. } => error.clone(),
        other => panic!("{case}: {other:?}"),
    };
    assert!(!error.contains(UNIPILE_KEY), "{case}: {error}");
    assert!(!error.is_empty(), "{case}");
    assert_eq!(count_of(&store, lead_id, "message_sent").await, 0, "{case}");

    if fault == Fault::RateLimited {
        // Nothing reached LinkedIn: retried after Retry-After, boundedly, then recorded as a
        // failure that a later attempt may send.
        assert!(
            matches!(result, SendResult::Failed { .. }),
            "{case}: {result:?}"
        );
        assert_eq!(calls, LINKEDIN_ATTEMPTS as usize, "{case}: bounded retries");
        assert_eq!(
            failure_outcomes(&store, lead_id).await,
            ["failed"],
            "{case}"
        );
        fake.set(None);
        clock.advance_by(chrono::Duration::minutes(30));
        let again = sender.send(lead_id, &request, None).await.unwrap();
        assert!(
            matches!(again, SendResult::Sent { .. }),
            "{case}: {again:?}"
        );
        assert_eq!(fake.calls().await, calls + 1, "{case}");
    } else {
        // The provider may have it: never sent blindly again, recorded for a human.
        assert!(
            matches!(result, SendResult::Unknown { .. }),
            "{case}: {result:?}"
        );
        assert_eq!(
            calls, 1,
            "{case}: a send that may have arrived is not retried"
        );
        assert_eq!(
            failure_outcomes(&store, lead_id).await,
            ["unknown"],
            "{case}"
        );
        fake.set(None);
        for _ in 0..3 {
            clock.advance_by(chrono::Duration::minutes(30));
            let again = sender.send(lead_id, &request, None).await.unwrap();
            assert!(matches!(again, SendResult::Refused(_)), "{case}: {again:?}");
        }
        assert_eq!(
            fake.calls().await,
            1,
            "{case}: the agent never resends on its own"
        );
        // A human who checked LinkedIn approves it again: it goes out once.
        let approve = LeadCommand::ApproveMessage {
            draft_id,
            edited_text: None,
        };
        run(&store, lead_id, Actor::human("reviewer"), approve).await;
        let sent = sender.send(lead_id, &request, None).await.unwrap();
        assert!(matches!(sent, SendResult::Sent { .. }), "{case}: {sent:?}");
        assert_eq!(fake.calls().await, 2, "{case}");
    }
    assert_eq!(
        count_of(&store, lead_id, "message_sent").await,
        1,
        "{case}: sent once"
    );
    clock.advance_by(chrono::Duration::minutes(30));
    let after = sender.send(lead_id, &request, None).await.unwrap();
    assert!(matches!(after, SendResult::Refused(_)), "{case}: {after:?}");
    assert_eq!(count_of(&store, lead_id, "message_sent").await, 1, "{case}");
}

// ---------------------------------------------------------------------------------------------
// SMTP: the hand-over mail of a positive reply, through a sink that misbehaves.

const MAIL_ATTEMPTS: u32 = 3;

/// A lead whose positive reply was analysed (so `lead_qualified` is in its stream), and that
/// event.
async fn qualified_lead(store: &Store) -> (Uuid, RecordedEvent) {
    let network = Arc::new(SandboxNetwork::generate(11, 500));
    let clock = SimulatedClock::starting_at(tuesday_morning());
    let person = network
        .people()
        .iter()
        .find(|person| person.is_connection)
        .cloned()
        .unwrap();
    let (lead_id, draft_id) = approved_draft(store, &person.linkedin_url, &person.first_name).await;
    let port: Arc<dyn LinkedInPort> = Arc::new(SandboxLinkedIn::new(
        network,
        Arc::new(clock.clone()),
        "primary",
    ));
    let sent = sender(store, &clock, port)
        .send(lead_id, &SendRequest::Message { draft_id }, None)
        .await
        .unwrap();
    assert!(matches!(sent, SendResult::Sent { .. }), "{sent:?}");
    let agent = || Actor::agent("sales_manager");
    let reply = LeadCommand::RecordResponse {
        provider_message_id: Some("reply-1".into()),
        text: "Sounds great, tell me more about the dates!".into(),
    };
    run(store, lead_id, agent(), reply).await;
    let analysed = LeadCommand::AnalyseResponse {
        response_number: 1,
        sentiment: Sentiment::Positive,
        intent: Intent::Interested,
        confidence: Confidence::parse(0.9).unwrap(),
        rationale: None,
        hand_over_to: "sales-team".into(),
        return_date: None,
        policy: Default::default(),
    };
    run(store, lead_id, agent(), analysed).await;
    let qualified = lead_events(store, lead_id)
        .await
        .into_iter()
        .find(|event| event.event_type == "lead_qualified")
        .expect("a positive reply qualifies the lead");
    (lead_id, qualified)
}

fn smtp_fault(fault: Fault, data_seen: &Arc<AtomicUsize>) -> Behaviour {
    let seen = Some(Arc::clone(data_seen));
    match fault {
        // SMTP's "slow down": 421 closes the session, 451 asks to try later.
        Fault::RateLimited => Behaviour {
            data_end_reply: Some("421 4.7.0 Too many messages, try again later"),
            data_seen: seen,
            ..Behaviour::default()
        },
        Fault::ServerError => Behaviour {
            data_end_reply: Some("451 4.3.0 Local error in processing"),
            data_seen: seen,
            ..Behaviour::default()
        },
        Fault::Timeout => Behaviour {
            hang_after_data: true,
            data_seen: seen,
            ..Behaviour::default()
        },
        Fault::Garbage => Behaviour {
            greeting: Some("HTTP/1.1 400 Bad Request"),
            data_seen: seen,
            ..Behaviour::default()
        },
        Fault::Truncated => Behaviour {
            cut_after_data: true,
            data_seen: seen,
            ..Behaviour::default()
        },
    }
}

fn mail_options() -> SubscriptionOptions {
    SubscriptionOptions {
        max_attempts: MAIL_ATTEMPTS,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        lease_ttl: Duration::from_millis(300),
        dead_letter_check_interval: Duration::ZERO,
        ..SubscriptionOptions::default()
    }
}

/// Catches the subscription up until it has read past `event` (on PostgreSQL a whole-log
/// reader sees it once no older transaction is open on the shared server), boundedly.
async fn catch_up_past(subscription: &Subscription, store: &Store, event: &RecordedEvent) {
    for _ in 0..400 {
        subscription.catch_up().await.unwrap();
        let checkpoint = stored_checkpoint(store, subscription.name()).await.unwrap();
        if checkpoint >= event.checkpoint() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the subscription never read past {}", event.event_type);
}

/// One SMTP row: the hand-over mail while the sink answers `fault`.
async fn smtp_row(store: Store, fault: Fault) {
    let case = format!("SMTP {fault:?}");
    let (lead_id, qualified) = qualified_lead(&store).await;
    let data_seen = Arc::new(AtomicUsize::new(0));
    let sink = Sink::start(smtp_fault(fault, &data_seen)).await;
    let mut config = SmtpConfig::new("127.0.0.1", SmtpTlsMode::None);
    config.port = Some(sink.address.port());
    config.hello_name = Some("salesdept.test".to_owned());
    config.connect_timeout = Duration::from_millis(500);
    config.send_timeout = Duration::from_millis(500);
    let mailer = SmtpMailer::new(&config).unwrap();
    let hand_over = HandOver::new(
        Arc::new(store.clone()),
        Arc::new(mailer),
        HandOverConfig {
            from: "salesdept <salesdept@salesdept.test>".parse().unwrap(),
            team: vec!["Sales team <sales-team@salesdept.test>".parse().unwrap()],
            message_id_domain: "salesdept.test".into(),
        },
    );
    let name = format!("hand_over_{}", Uuid::now_v7().simple());
    let subscription = Subscription::new(
        name.clone(),
        store.clone(),
        Arc::new(HandOverHandler::new(hand_over)),
    )
    .with_options(mail_options());
    catch_up_past(&subscription, &store, &qualified).await;

    // Bounded: the subscription's attempts, then the event parked for an operator, with the
    // reason; no human_notified and no mail received.
    let attempts = match fault {
        Fault::Garbage => sink.connections.load(Ordering::SeqCst),
        _ => data_seen.load(Ordering::SeqCst),
    };
    assert!(
        (1..=MAIL_ATTEMPTS as usize).contains(&attempts),
        "{case}: {attempts} attempts"
    );
    let parked = list_dead_letters(&store, Some(&name)).await.unwrap();
    assert_eq!(parked.len(), 1, "{case}: parked {parked:?}");
    assert_eq!(parked[0].event_id, qualified.event_id, "{case}");
    assert!(!parked[0].error.is_empty(), "{case}");
    assert!(sink.messages().await.is_empty(), "{case}");
    assert_eq!(
        count_of(&store, lead_id, "human_notified").await,
        0,
        "{case}"
    );

    // Recovered: the operator retries the parked event; one mail, one human_notified.
    sink.set_behaviour(Behaviour::default());
    assert!(
        request_dead_letter_retry(&store, parked[0].id)
            .await
            .unwrap()
    );
    for _ in 0..100 {
        subscription.catch_up().await.unwrap();
        if count_of(&store, lead_id, "human_notified").await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        count_of(&store, lead_id, "human_notified").await,
        1,
        "{case}"
    );
    let mails = sink.messages().await;
    assert_eq!(mails.len(), 1, "{case}: one mail");
    subscription.catch_up().await.unwrap();
    assert_eq!(sink.messages().await.len(), 1, "{case}: still one mail");
    assert_eq!(
        count_of(&store, lead_id, "human_notified").await,
        1,
        "{case}"
    );
}

// ---------------------------------------------------------------------------------------------
// The table: every provider × every fault, on SQLite; the send path and the mail on
// PostgreSQL too.

macro_rules! fault_rows {
    ($module:ident, $($name:ident: $row:ident($fault:expr);)+) => {
        mod $module {
            use super::*;
            $(
                fault_rows!(@test $module, $name, $row, $fault);
            )+
        }
    };
    (@test sqlite, $name:ident, $row:ident, $fault:expr) => {
        #[tokio::test]
        async fn $name() {
            let (_directory, store) = sqlite_store().await;
            $row(store, $fault).await;
        }
    };
    (@test postgres, $name:ident, $row:ident, $fault:expr) => {
        #[sqlx::test(migrations = "../../migrations/postgres")]
        async fn $name(pool: sqlx::PgPool) {
            $row(postgres(pool), $fault).await;
        }
    };
}

fault_rows! {
    sqlite,
    llm_429_with_retry_after: llm_row(Fault::RateLimited);
    llm_500: llm_row(Fault::ServerError);
    llm_timeout: llm_row(Fault::Timeout);
    llm_garbage_body: llm_row(Fault::Garbage);
    llm_truncated_json: llm_row(Fault::Truncated);
    linkedin_429_with_retry_after: linkedin_row(Fault::RateLimited);
    linkedin_500: linkedin_row(Fault::ServerError);
    linkedin_timeout: linkedin_row(Fault::Timeout);
    linkedin_garbage_body: linkedin_row(Fault::Garbage);
    linkedin_truncated_json: linkedin_row(Fault::Truncated);
    smtp_421_slow_down: smtp_row(Fault::RateLimited);
    smtp_451_server_error: smtp_row(Fault::ServerError);
    smtp_timeout: smtp_row(Fault::Timeout);
    smtp_garbage_greeting: smtp_row(Fault::Garbage);
    smtp_truncated_reply: smtp_row(Fault::Truncated);
}

// PostgreSQL where it is cheap: one row per provider and the send path's two outcomes.
fault_rows! {
    postgres,
    llm_500: llm_row(Fault::ServerError);
    linkedin_429_with_retry_after: linkedin_row(Fault::RateLimited);
    linkedin_truncated_json: linkedin_row(Fault::Truncated);
    smtp_451_server_error: smtp_row(Fault::ServerError);
}
