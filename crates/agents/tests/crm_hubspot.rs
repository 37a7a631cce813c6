//! The HubSpot adapter against a local fake of the CRM v3 endpoints it uses: contacts
//! search / create / update, notes search (by associated contact) / create (associated with
//! a contact) / update. The fake keeps state, so idempotency is checked on what it holds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use salesdept_agents::crm::{
    Change, ConversationTurn, CrmError, CrmLead, CrmPort, CrmRecord, HubSpotConfig, HubSpotCrm,
    Party, RetryPolicy,
};
use salesdept_events::domain::{Classification, LinkedInUrl};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "pat-na1-0f1e2d3c-test-token";

// ---------------------------------------------------------------------------------------
// The fake HubSpot
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Note {
    body: String,
    timestamp: String,
    contact_id: String,
}

#[derive(Default)]
struct State {
    next_id: u64,
    contacts: BTreeMap<String, BTreeMap<String, String>>,
    notes: BTreeMap<String, Note>,
    /// Simulates HubSpot's search index trailing its writes: contact searches find nothing.
    contact_search_blind: bool,
    /// Notes returned per search page (HubSpot allows up to 100).
    note_page_size: usize,
}

impl State {
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        (5000 + self.next_id).to_string()
    }
}

#[derive(Clone)]
struct FakeHubSpot {
    state: Arc<Mutex<State>>,
}

fn error(status: u16, message: &str, category: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "status": "error",
        "message": message,
        "correlationId": "7c0ffee0-0000-4000-8000-000000000000",
        "category": category,
    }))
}

fn matches_filter(properties: &BTreeMap<String, String>, filter: &Value) -> bool {
    let name = filter["propertyName"].as_str().unwrap();
    let actual = properties.get(name);
    match filter["operator"].as_str().unwrap() {
        "EQ" => actual.map(String::as_str) == filter["value"].as_str(),
        "IN" => actual.is_some_and(|actual| {
            filter["values"]
                .as_array()
                .unwrap()
                .iter()
                .any(|value| value.as_str() == Some(actual.to_lowercase().as_str()))
        }),
        other => panic!("the fake does not know operator {other}"),
    }
}

impl Respond for FakeHubSpot {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let authorised = request
            .headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            == Some(&format!("Bearer {TOKEN}"));
        if !authorised {
            return error(
                401,
                "Authentication credentials not found.",
                "INVALID_AUTHENTICATION",
            );
        }
        let body: Value = request.body_json().unwrap_or(Value::Null);
        let mut state = self.state.lock().unwrap();
        let segments: Vec<&str> = request.url.path().trim_matches('/').split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("POST", ["crm", "v3", "objects", "contacts", "search"]) => {
                let groups = body["filterGroups"].as_array().unwrap();
                assert!(groups.len() <= 5, "HubSpot allows five filter groups");
                let results: Vec<Value> = if state.contact_search_blind {
                    vec![]
                } else {
                    state
                        .contacts
                        .iter()
                        .filter(|(_, properties)| {
                            groups.iter().any(|group| {
                                group["filters"]
                                    .as_array()
                                    .unwrap()
                                    .iter()
                                    .all(|filter| matches_filter(properties, filter))
                            })
                        })
                        .map(|(id, properties)| json!({ "id": id, "properties": properties }))
                        .collect()
                };
                ResponseTemplate::new(200)
                    .set_body_json(json!({ "total": results.len(), "results": results }))
            }
            ("POST", ["crm", "v3", "objects", "contacts"]) => {
                let properties: BTreeMap<String, String> =
                    serde_json::from_value(body["properties"].clone()).unwrap();
                if let Some(email) = properties.get("email") {
                    let existing = state
                        .contacts
                        .iter()
                        .find(|(_, contact)| contact.get("email") == Some(email));
                    if let Some((id, _)) = existing {
                        return error(
                            409,
                            &format!("Contact already exists. Existing ID: {id}"),
                            "CONFLICT",
                        );
                    }
                }
                let id = state.new_id();
                state.contacts.insert(id.clone(), properties.clone());
                ResponseTemplate::new(201)
                    .set_body_json(json!({ "id": id, "properties": properties }))
            }
            ("PATCH", ["crm", "v3", "objects", "contacts", id]) => {
                let properties: BTreeMap<String, String> =
                    serde_json::from_value(body["properties"].clone()).unwrap();
                match state.contacts.get_mut(*id) {
                    Some(contact) => {
                        contact.extend(properties);
                        ResponseTemplate::new(200)
                            .set_body_json(json!({ "id": id, "properties": contact.clone() }))
                    }
                    None => error(404, "resource not found", "OBJECT_NOT_FOUND"),
                }
            }
            ("POST", ["crm", "v3", "objects", "notes", "search"]) => {
                let filter = &body["filterGroups"][0]["filters"][0];
                assert_eq!(filter["propertyName"], "associations.contact");
                assert_eq!(filter["operator"], "EQ");
                let contact_id = filter["value"].as_str().unwrap();
                let matching: Vec<(String, Note)> = state
                    .notes
                    .iter()
                    .filter(|(_, note)| note.contact_id == contact_id)
                    .map(|(id, note)| (id.clone(), note.clone()))
                    .collect();
                let start: usize = body["after"]
                    .as_str()
                    .map(|after| after.parse().unwrap())
                    .unwrap_or(0);
                let page_size = state.note_page_size.max(1);
                let page: Vec<Value> = matching
                    .iter()
                    .skip(start)
                    .take(page_size)
                    .map(|(id, note)| {
                        json!({ "id": id, "properties": { "hs_note_body": note.body } })
                    })
                    .collect();
                let mut answer = json!({ "total": matching.len(), "results": page });
                if start + page_size < matching.len() {
                    answer["paging"] =
                        json!({ "next": { "after": (start + page_size).to_string() } });
                }
                ResponseTemplate::new(200).set_body_json(answer)
            }
            ("POST", ["crm", "v3", "objects", "notes"]) => {
                let association = &body["associations"][0];
                assert_eq!(
                    association["types"][0]["associationCategory"],
                    "HUBSPOT_DEFINED"
                );
                assert_eq!(association["types"][0]["associationTypeId"], 202);
                let contact_id = association["to"]["id"].as_str().unwrap().to_owned();
                if !state.contacts.contains_key(&contact_id) {
                    return error(400, "association target does not exist", "VALIDATION_ERROR");
                }
                let Some(timestamp) = body["properties"]["hs_timestamp"].as_str() else {
                    return error(400, "hs_timestamp is required", "VALIDATION_ERROR");
                };
                let note = Note {
                    body: body["properties"]["hs_note_body"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    timestamp: timestamp.to_owned(),
                    contact_id,
                };
                let id = state.new_id();
                state.notes.insert(id.clone(), note);
                ResponseTemplate::new(201).set_body_json(json!({ "id": id, "properties": {} }))
            }
            ("PATCH", ["crm", "v3", "objects", "notes", id]) => match state.notes.get_mut(*id) {
                Some(note) => {
                    note.body = body["properties"]["hs_note_body"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                    ResponseTemplate::new(200).set_body_json(json!({ "id": id, "properties": {} }))
                }
                None => error(404, "resource not found", "OBJECT_NOT_FOUND"),
            },
            (verb, path) => panic!("the fake does not serve {verb} {path:?}"),
        }
    }
}

struct Harness {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

impl Harness {
    async fn start() -> Harness {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State {
            note_page_size: 100,
            ..State::default()
        }));
        Mock::given(any())
            .respond_with(FakeHubSpot {
                state: state.clone(),
            })
            .with_priority(100)
            .mount(&server)
            .await;
        Harness { server, state }
    }

    fn config(&self) -> HubSpotConfig {
        let mut config = HubSpotConfig::new(SecretString::from(TOKEN));
        config.base_url = self.server.uri();
        config.classification_property = Some("salesdept_classification".to_owned());
        config.timeout = Duration::from_secs(5);
        config.retry = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(2),
        };
        config
    }

    fn crm(&self) -> HubSpotCrm {
        HubSpotCrm::new(&self.config()).unwrap()
    }

    fn contacts(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.state.lock().unwrap().contacts.clone()
    }

    fn notes(&self) -> Vec<Note> {
        self.state.lock().unwrap().notes.values().cloned().collect()
    }

    fn seed_contact(&self, properties: &[(&str, &str)]) -> String {
        let mut state = self.state.lock().unwrap();
        let id = state.new_id();
        state.contacts.insert(
            id.clone(),
            properties
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        );
        id
    }

    async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap()
    }
}

fn lead() -> CrmLead {
    CrmLead {
        lead_id: Uuid::from_u128(0x42),
        name: "Ada Lovelace".to_owned(),
        email: Some("ada@analytical.example".parse().unwrap()),
        linkedin_url: LinkedInUrl::parse("https://www.linkedin.com/in/ada-lovelace/").unwrap(),
        company: Some("Analytical Engines".to_owned()),
        position: Some("CTO".to_owned()),
        classification: Classification::Speaker,
        conversation: vec![
            ConversationTurn {
                who: Party::Us {
                    account: "primary".to_owned(),
                },
                text: "Would you speak at DeepTech Summit?".to_owned(),
                at: Utc.with_ymd_and_hms(2026, 11, 20, 10, 3, 0).unwrap(),
            },
            ConversationTurn {
                who: Party::Lead,
                text: "Yes, <gladly>!".to_owned(),
                at: Utc.with_ymd_and_hms(2026, 11, 21, 8, 30, 0).unwrap(),
            },
        ],
        qualified_at: Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap(),
    }
}

fn assert_token_absent(text: &str) {
    assert!(!text.contains(TOKEN), "the token leaked into: {text}");
    assert!(
        !text.contains("0f1e2d3c"),
        "part of the token leaked into: {text}"
    );
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn given_a_new_lead_when_upserted_twice_then_one_contact_and_one_note_exist() {
    let hubspot = Harness::start().await;
    let crm = hubspot.crm();

    let first = crm.upsert_qualified_lead(&lead()).await.unwrap();
    let CrmRecord::Upserted {
        contact_id,
        contact: Change::Created,
        note_id,
        note: Change::Created,
    } = first
    else {
        panic!("first upsert should create: {first:?}");
    };

    let second = crm.upsert_qualified_lead(&lead()).await.unwrap();
    assert_eq!(
        second,
        CrmRecord::Upserted {
            contact_id: contact_id.clone(),
            contact: Change::Unchanged,
            note_id: note_id.clone(),
            note: Change::Unchanged,
        }
    );

    let contacts = hubspot.contacts();
    assert_eq!(contacts.len(), 1, "no duplicate contact");
    let contact = &contacts[&contact_id];
    for (name, value) in [
        ("firstname", "Ada"),
        ("lastname", "Lovelace"),
        ("email", "ada@analytical.example"),
        ("company", "Analytical Engines"),
        ("jobtitle", "CTO"),
        (
            "hs_linkedin_url",
            "https://www.linkedin.com/in/ada-lovelace",
        ),
        ("salesdept_classification", "Speaker"),
    ] {
        assert_eq!(contact.get(name).map(String::as_str), Some(value), "{name}");
    }
    let notes = hubspot.notes();
    assert_eq!(notes.len(), 1, "no duplicate note");
    assert_eq!(notes[0].contact_id, contact_id);
    assert_eq!(notes[0].timestamp, "2026-11-21T09:00:00.000Z");
    for expected in [
        "Would you speak at DeepTech Summit?",
        "Yes, &lt;gladly&gt;!",
        "Us (primary)",
        "2026-11-21 08:30 UTC",
        "Qualified Speaker lead",
    ] {
        assert!(
            notes[0].body.contains(expected),
            "{expected:?} in {}",
            notes[0].body
        );
    }
}

#[tokio::test]
async fn given_a_changed_lead_when_upserted_again_then_the_contact_and_its_note_are_updated_in_place()
 {
    let hubspot = Harness::start().await;
    let crm = hubspot.crm();
    crm.upsert_qualified_lead(&lead()).await.unwrap();

    let mut changed = lead();
    changed.position = Some("Chief Scientist".to_owned());
    changed.conversation.push(ConversationTurn {
        who: Party::Us {
            account: "primary".to_owned(),
        },
        text: "Wonderful, a colleague will write today.".to_owned(),
        at: Utc.with_ymd_and_hms(2026, 11, 21, 9, 5, 0).unwrap(),
    });
    let record = crm.upsert_qualified_lead(&changed).await.unwrap();

    assert!(
        matches!(
            record,
            CrmRecord::Upserted {
                contact: Change::Updated,
                note: Change::Updated,
                ..
            }
        ),
        "{record:?}"
    );
    let contacts = hubspot.contacts();
    assert_eq!(contacts.len(), 1);
    assert_eq!(
        contacts.values().next().unwrap()["jobtitle"],
        "Chief Scientist"
    );
    let notes = hubspot.notes();
    assert_eq!(notes.len(), 1);
    assert!(notes[0].body.contains("a colleague will write today"));
}

#[tokio::test]
async fn given_a_contact_a_human_entered_with_another_url_form_when_upserted_then_it_is_updated() {
    let hubspot = Harness::start().await;
    let existing = hubspot.seed_contact(&[
        ("firstname", "Ada"),
        ("hs_linkedin_url", "linkedin.com/in/ada-lovelace/"),
    ]);
    let mut without_email = lead();
    without_email.email = None;

    let record = hubspot
        .crm()
        .upsert_qualified_lead(&without_email)
        .await
        .unwrap();

    assert!(
        matches!(&record, CrmRecord::Upserted { contact_id, contact: Change::Updated, .. } if *contact_id == existing),
        "{record:?}"
    );
    assert_eq!(hubspot.contacts().len(), 1);
}

#[tokio::test]
async fn given_a_contact_known_only_by_email_when_upserted_then_it_is_found_by_email() {
    let hubspot = Harness::start().await;
    let existing = hubspot.seed_contact(&[("email", "ada@analytical.example")]);

    let record = hubspot.crm().upsert_qualified_lead(&lead()).await.unwrap();

    assert!(
        matches!(&record, CrmRecord::Upserted { contact_id, contact: Change::Updated, .. } if *contact_id == existing),
        "{record:?}"
    );
    assert_eq!(hubspot.contacts().len(), 1);
    assert_eq!(
        hubspot.contacts()[&existing]["hs_linkedin_url"],
        "https://www.linkedin.com/in/ada-lovelace"
    );
}

#[tokio::test]
async fn given_a_search_index_that_lags_when_the_create_conflicts_then_the_existing_contact_is_updated()
 {
    let hubspot = Harness::start().await;
    let existing = hubspot.seed_contact(&[("email", "ada@analytical.example")]);
    hubspot.state.lock().unwrap().contact_search_blind = true;

    let record = hubspot.crm().upsert_qualified_lead(&lead()).await.unwrap();

    assert!(
        matches!(&record, CrmRecord::Upserted { contact_id, contact: Change::Updated, note: Change::Created, .. } if *contact_id == existing),
        "{record:?}"
    );
    assert_eq!(hubspot.contacts().len(), 1);
    assert_eq!(hubspot.contacts()[&existing]["jobtitle"], "CTO");
}

#[tokio::test]
async fn given_many_notes_on_the_contact_when_upserted_again_then_the_lead_note_is_found_across_pages()
 {
    let hubspot = Harness::start().await;
    let crm = hubspot.crm();
    let CrmRecord::Upserted { contact_id, .. } = crm.upsert_qualified_lead(&lead()).await.unwrap()
    else {
        panic!("expected an upsert");
    };
    {
        let mut state = hubspot.state.lock().unwrap();
        state.note_page_size = 2;
        for index in 0..5 {
            let id = state.new_id();
            state.notes.insert(
                id,
                Note {
                    body: format!("a human's note {index}"),
                    timestamp: "2026-11-22T00:00:00.000Z".to_owned(),
                    contact_id: contact_id.clone(),
                },
            );
        }
    }

    let record = crm.upsert_qualified_lead(&lead()).await.unwrap();

    assert!(
        matches!(
            record,
            CrmRecord::Upserted {
                note: Change::Unchanged,
                ..
            }
        ),
        "{record:?}"
    );
    assert_eq!(hubspot.notes().len(), 6);
}

#[tokio::test]
async fn given_a_429_with_retry_after_when_upserted_then_it_waits_and_succeeds() {
    let hubspot = Harness::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/search"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({
                    "status": "error",
                    "message": "You have reached your secondly limit.",
                    "category": "RATE_LIMITS",
                })),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&hubspot.server)
        .await;

    let started = Instant::now();
    let record = hubspot.crm().upsert_qualified_lead(&lead()).await.unwrap();

    assert!(
        matches!(
            record,
            CrmRecord::Upserted {
                contact: Change::Created,
                ..
            }
        ),
        "{record:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    let searches = hubspot
        .requests()
        .await
        .iter()
        .filter(|request| request.url.path() == "/crm/v3/objects/contacts/search")
        .count();
    assert_eq!(searches, 2);
    assert_eq!(hubspot.contacts().len(), 1);
}

#[tokio::test]
async fn given_a_server_that_keeps_failing_when_upserted_then_the_retries_are_bounded() {
    let hubspot = Harness::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/search"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream unavailable"))
        .with_priority(1)
        .mount(&hubspot.server)
        .await;

    let error = hubspot
        .crm()
        .upsert_qualified_lead(&lead())
        .await
        .unwrap_err();

    assert!(
        matches!(error, CrmError::Unavailable { status: 503, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(
        hubspot.requests().await.len(),
        3,
        "max_attempts calls, no more"
    );
    assert_token_absent(&format!("{error} {error:?}"));
}

#[tokio::test]
async fn given_a_validation_error_when_upserted_then_it_is_permanent_with_hubspots_message() {
    let hubspot = Harness::start().await;
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "status": "error",
            "message": "Property values were not valid",
            "correlationId": "3f2a",
            "category": "VALIDATION_ERROR",
            "errors": [{
                "message": "Email address ada@analytical.example is invalid",
                "context": { "propertyName": ["email"] },
            }],
        })))
        .with_priority(1)
        .mount(&hubspot.server)
        .await;

    let error = hubspot
        .crm()
        .upsert_qualified_lead(&lead())
        .await
        .unwrap_err();

    match &error {
        CrmError::Rejected {
            status: 400,
            category,
            message,
        } => {
            assert_eq!(category.as_deref(), Some("VALIDATION_ERROR"));
            assert!(
                message.contains("Property values were not valid"),
                "{message}"
            );
            assert!(message.contains("is invalid"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!error.is_retryable());
    let creates = hubspot
        .requests()
        .await
        .iter()
        .filter(|request| request.url.path() == "/crm/v3/objects/contacts")
        .count();
    assert_eq!(creates, 1, "a permanent error is not retried");
    assert_token_absent(&format!("{error} {error:?}"));
}

#[tokio::test]
async fn every_call_carries_the_token_as_bearer_and_no_error_text_carries_it() {
    let hubspot = Harness::start().await;
    hubspot.crm().upsert_qualified_lead(&lead()).await.unwrap();
    let requests = hubspot.requests().await;
    assert!(
        requests.len() >= 4,
        "search, create, note search, note create"
    );
    for request in &requests {
        assert_eq!(
            request.headers.get("authorization").unwrap(),
            &format!("Bearer {TOKEN}"),
            "{} {}",
            request.method,
            request.url
        );
        assert!(!request.url.as_str().contains(TOKEN));
    }

    // A wrong token: 401, permanent, and the wrong token does not show either.
    let mut config = hubspot.config();
    config.token = SecretString::from("pat-wrong-0f1e2d3c");
    let error = HubSpotCrm::new(&config)
        .unwrap()
        .upsert_qualified_lead(&lead())
        .await
        .unwrap_err();
    assert!(
        matches!(error, CrmError::Rejected { status: 401, .. }),
        "{error:?}"
    );
    assert!(!format!("{error} {error:?}").contains("pat-wrong"));

    // A server that echoes the token in its error: redacted.
    let echo = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "status": "error",
            "message": format!("bad header Bearer {TOKEN}"),
        })))
        .mount(&echo)
        .await;
    let mut config = hubspot.config();
    config.base_url = echo.uri();
    let error = HubSpotCrm::new(&config)
        .unwrap()
        .upsert_qualified_lead(&lead())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("[redacted]"), "{error}");
    assert_token_absent(&format!("{error} {error:?}"));
}

#[tokio::test]
async fn given_a_server_that_hangs_when_upserted_then_the_call_times_out() {
    let hubspot = Harness::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .with_priority(1)
        .mount(&hubspot.server)
        .await;
    let mut config = hubspot.config();
    config.timeout = Duration::from_millis(300);
    config.retry.max_attempts = 2;

    let started = Instant::now();
    let error = HubSpotCrm::new(&config)
        .unwrap()
        .upsert_qualified_lead(&lead())
        .await
        .unwrap_err();

    assert!(matches!(error, CrmError::Timeout(_)), "{error:?}");
    assert!(error.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_token_absent(&format!("{error} {error:?}"));
}
