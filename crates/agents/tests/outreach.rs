//! Outreach against the real stores (SQLite and PostgreSQL) and the sandbox network: each
//! send reaches the person once, through crashes at every step, under the accounts' limits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use salesdept_agents::clock::{Clock, SimulatedClock};
use salesdept_agents::linkedin::{
    ConnectionAccepted, IdempotencyKey, InvitationNote, LinkedInError, LinkedInPort, MessageText,
    Provider, ProviderProfile, Recipient, Reply, SearchCriteria, SentMessage,
};
use salesdept_agents::mail::{FileOutbox, MailError, MailPort, OutgoingMail, SentMail};
use salesdept_agents::outreach::{
    Bound, HandOver, HandOverConfig, HandOverHandler, Inbox, SendRequest, SendResult, Sender,
    SendingAccount,
};
use salesdept_agents::sandbox::{SandboxLinkedIn, SandboxNetwork, SandboxPerson};
use salesdept_events::domain::account::AccountState;
use salesdept_events::domain::lead::{
    DiscoverLead, DraftState, LeadCommand, LeadSource, LeadState, MessageKind, Priority, Review,
};
use salesdept_events::domain::url::{ReserveUrl, UrlReservation};
use salesdept_events::domain::{
    AccountId, AccountLimits, Classification, CommandHandler, CommandMetadata, Confidence,
    DomainError, FollowUpPolicy, Intent, InvitationPolicy, LeadStatus, LinkedInUrl, Pii,
    QualityScore, RateLimit, Sentiment, account_stream, lead_stream, url_stream,
};
use salesdept_events::store::PostgresEventStore;
use salesdept_events::{Actor, EventStore, Store, Subscription, SubscriptionOptions, domain};
use tempfile::TempDir;
use uuid::Uuid;

fn tuesday_morning() -> DateTime<Utc> {
    "2026-12-01T10:00:00Z".parse().unwrap()
}

async fn sqlite_store() -> (TempDir, Store) {
    let directory = TempDir::new().unwrap();
    let url = format!(
        "sqlite://{}",
        directory.path().join("send.sqlite").display()
    );
    let store = Store::connect(&url, domain::upcasters()).await.unwrap();
    store.migrate().await.unwrap();
    (directory, store)
}

fn postgres(pool: sqlx::PgPool) -> Store {
    Store::Postgres(PostgresEventStore::from_pool(pool, domain::upcasters()))
}

/// A whole test world: the store, the sandbox network, the simulated clock.
struct World {
    store: Arc<Store>,
    network: Arc<SandboxNetwork>,
    clock: SimulatedClock,
}

impl World {
    fn new(store: Store) -> Self {
        Self {
            store: Arc::new(store),
            network: Arc::new(SandboxNetwork::generate(11, 500)),
            clock: SimulatedClock::starting_at(tuesday_morning()),
        }
    }

    fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(self.clock.clone())
    }

    fn port(&self, account: &str) -> Arc<dyn LinkedInPort> {
        Arc::new(SandboxLinkedIn::new(
            Arc::clone(&self.network),
            self.clock(),
            account,
        ))
    }

    fn account(
        &self,
        id: &str,
        limits: AccountLimits,
        linkedin: Arc<dyn LinkedInPort>,
    ) -> SendingAccount {
        SendingAccount {
            id: AccountId::parse(id).unwrap(),
            limits,
            linkedin,
        }
    }

    fn sender(&self, accounts: Vec<SendingAccount>) -> Sender<Store> {
        Sender::new(
            Arc::clone(&self.store),
            accounts,
            self.clock(),
            FollowUpPolicy::default(),
            InvitationPolicy::default(),
        )
    }

    fn primary(&self) -> Sender<Store> {
        self.sender(vec![self.account(
            "primary",
            AccountLimits::default(),
            self.port("primary"),
        )])
    }

    fn people(&self, connected: bool) -> Vec<SandboxPerson> {
        self.network
            .people()
            .iter()
            .filter(|person| person.is_connection == connected)
            .cloned()
            .collect()
    }

    fn handler(&self) -> CommandHandler<Store> {
        CommandHandler::new(Arc::clone(&self.store))
    }

    async fn run(&self, lead_id: Uuid, command: LeadCommand) {
        let metadata = CommandMetadata::new(Actor::agent("test"), self.clock.now());
        self.handler()
            .execute::<LeadState>(&lead_stream(lead_id), &command, &metadata)
            .await
            .unwrap();
    }

    /// A discovered, classified, scored and allocated lead for `person`.
    async fn allocated_lead(&self, person: &SandboxPerson) -> Uuid {
        let lead_id = Uuid::now_v7();
        // As the Lead Finder does: claim the profile's URL, then create the lead.
        let url = LinkedInUrl::parse(&person.linkedin_url).unwrap();
        self.handler()
            .execute::<UrlReservation>(
                &url_stream(&url),
                &ReserveUrl {
                    lead_id,
                    url: url.clone(),
                },
                &CommandMetadata::new(Actor::agent("test"), self.clock.now()),
            )
            .await
            .unwrap();
        self.run(
            lead_id,
            LeadCommand::Discover(DiscoverLead {
                lead_id,
                url: LinkedInUrl::parse(&person.linkedin_url).unwrap(),
                name: person.name.clone(),
                position: person.position.clone(),
                company: person.company.clone(),
                company_size: None,
                industry: None,
                is_connection: person.is_connection,
                source: LeadSource::Search,
                search_id: None,
                import_format: None,
                profile: Pii::default(),
            }),
        )
        .await;
        self.run(
            lead_id,
            LeadCommand::Classify {
                classification: Classification::Speaker,
                confidence: Confidence::parse(0.9).unwrap(),
                rationale: None,
            },
        )
        .await;
        self.run(
            lead_id,
            LeadCommand::Score {
                score: QualityScore::parse(8.0).unwrap(),
                factors: BTreeMap::new(),
                rationale: None,
            },
        )
        .await;
        self.run(
            lead_id,
            LeadCommand::Allocate {
                assigned_to: "outreach".into(),
                priority: Priority::High,
                reason: "test".into(),
            },
        )
        .await;
        lead_id
    }

    /// An allocated connection with an approved first message.
    async fn approved_draft(&self, person: &SandboxPerson) -> (Uuid, Uuid) {
        let lead_id = self.allocated_lead(person).await;
        let draft_id = Uuid::now_v7();
        self.run(
            lead_id,
            LeadCommand::DraftMessage {
                draft_id,
                kind: MessageKind::Initial,
                text: format!("Hi {}, would you speak at our event?", person.first_name),
                variant: Some("speaker_a".into()),
                review: Review::NotNeeded,
                policy: FollowUpPolicy::default(),
            },
        )
        .await;
        (lead_id, draft_id)
    }

    async fn lead(&self, lead_id: Uuid) -> LeadState {
        self.handler()
            .load::<LeadState>(&lead_stream(lead_id))
            .await
            .unwrap()
            .state
    }

    async fn account_state(&self, id: &str) -> AccountState {
        self.handler()
            .load::<AccountState>(&account_stream(&AccountId::parse(id).unwrap()))
            .await
            .unwrap()
            .state
    }

    async fn event_types(&self, lead_id: Uuid) -> Vec<String> {
        self.store
            .read_stream(&lead_stream(lead_id), 1, None)
            .await
            .unwrap()
            .into_iter()
            .map(|event| event.event_type)
            .collect()
    }

    fn sends_to(&self, person: &SandboxPerson) -> usize {
        self.network
            .sends()
            .iter()
            .filter(|send| send.profile_url == person.linkedin_url)
            .count()
    }
}

/// Where a faulty port dies.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Crash {
    /// Before the request leaves: nothing reached LinkedIn.
    BeforeTheCall,
    /// After LinkedIn took it, before the answer came back.
    AfterTheCall,
    /// LinkedIn took it and the answer was lost (a timeout after the request went out).
    OutcomeUnknown,
}

/// A port that fails once at one point of a send, then behaves; optionally blind to
/// reconciliation (like a provider without a durable idempotency ledger).
struct Faulty {
    inner: Arc<dyn LinkedInPort>,
    crash: Crash,
    armed: AtomicBool,
    can_reconcile: bool,
}

impl Faulty {
    fn new(inner: Arc<dyn LinkedInPort>, crash: Crash, can_reconcile: bool) -> Arc<Self> {
        Arc::new(Self {
            inner,
            crash,
            armed: AtomicBool::new(true),
            can_reconcile,
        })
    }

    async fn around(
        &self,
        send: impl std::future::Future<Output = Result<SentMessage, LinkedInError>>,
    ) -> Result<SentMessage, LinkedInError> {
        let armed = self.armed.swap(false, Ordering::SeqCst);
        if armed && self.crash == Crash::BeforeTheCall {
            panic!("the process dies before the provider call");
        }
        let sent = send.await;
        if armed && self.crash == Crash::AfterTheCall {
            panic!("the process dies after the provider call");
        }
        if armed && self.crash == Crash::OutcomeUnknown {
            return Err(LinkedInError::OutcomeUnknown {
                provider: Provider::Sandbox,
                reason: "timed out after the request was sent".into(),
            });
        }
        sent
    }
}

#[async_trait]
impl LinkedInPort for Faulty {
    fn provider(&self) -> Provider {
        self.inner.provider()
    }

    async fn search_profiles(
        &self,
        criteria: &SearchCriteria,
    ) -> Result<Vec<ProviderProfile>, LinkedInError> {
        self.inner.search_profiles(criteria).await
    }

    async fn fetch_profile(&self, url: &LinkedInUrl) -> Result<ProviderProfile, LinkedInError> {
        self.inner.fetch_profile(url).await
    }

    async fn send_connection_request(
        &self,
        to: &Recipient,
        note: Option<&InvitationNote>,
        key: IdempotencyKey,
    ) -> Result<SentMessage, LinkedInError> {
        self.around(self.inner.send_connection_request(to, note, key))
            .await
    }

    async fn send_message(
        &self,
        to: &Recipient,
        text: &MessageText,
        key: IdempotencyKey,
    ) -> Result<SentMessage, LinkedInError> {
        self.around(self.inner.send_message(to, text, key)).await
    }

    async fn replies_since(&self, since: DateTime<Utc>) -> Result<Vec<Reply>, LinkedInError> {
        self.inner.replies_since(since).await
    }

    async fn connections_accepted_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ConnectionAccepted>, LinkedInError> {
        self.inner.connections_accepted_since(since).await
    }

    async fn find_sent(&self, key: IdempotencyKey) -> Result<Option<SentMessage>, LinkedInError> {
        if self.can_reconcile {
            self.inner.find_sent(key).await
        } else {
            Err(LinkedInError::Unsupported {
                provider: self.provider(),
                capability: "looking up a send by its idempotency key",
            })
        }
    }
}

/// Runs one send in its own task, as a process would; a panic there is the process dying.
async fn send_in_a_process(
    sender: Sender<Store>,
    lead_id: Uuid,
    request: SendRequest,
) -> Option<SendResult> {
    tokio::spawn(async move { sender.send(lead_id, &request, None).await.unwrap() })
        .await
        .ok()
}

// ---------------------------------------------------------------------------------------------

async fn a_message_is_sent_once_and_recorded(store: Store) {
    let world = World::new(store);
    let person = world.people(true)[0].clone();
    let (lead_id, draft_id) = world.approved_draft(&person).await;
    let sender = world.primary();

    let result = sender
        .send(lead_id, &SendRequest::Message { draft_id }, None)
        .await
        .unwrap();
    let SendResult::Sent {
        account_id,
        provider_message_id,
        reconciled,
        slot_id,
    } = result
    else {
        panic!("not sent: {result:?}")
    };
    assert_eq!(account_id.as_str(), "primary");
    assert!(!reconciled);
    assert_eq!(world.sends_to(&person), 1);
    let lead = world.lead(lead_id).await;
    assert_eq!(lead.status, LeadStatus::Sent);
    assert_eq!(
        lead.draft(draft_id).unwrap().state,
        DraftState::Sent {
            provider_message_id
        }
    );
    let account = world.account_state("primary").await;
    assert_eq!(account.slot(slot_id).unwrap().lead_id, lead_id);

    // Asking again sends nothing.
    world.clock.advance_by(Duration::minutes(30));
    let again = sender
        .send(lead_id, &SendRequest::Message { draft_id }, None)
        .await
        .unwrap();
    assert!(matches!(again, SendResult::Refused(_)), "{again:?}");
    assert_eq!(world.sends_to(&person), 1);
}

#[tokio::test]
async fn sqlite_a_message_is_sent_once_and_recorded() {
    let (_directory, store) = sqlite_store().await;
    a_message_is_sent_once_and_recorded(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_a_message_is_sent_once_and_recorded(pool: sqlx::PgPool) {
    a_message_is_sent_once_and_recorded(postgres(pool)).await;
}

/// The process dies at `crash`; a new process with a working port takes over.
async fn a_crash_then_a_restart(store: Store, crash: Crash) {
    let world = World::new(store);
    let person = world.people(true)[1].clone();
    let (lead_id, draft_id) = world.approved_draft(&person).await;
    let faulty = Faulty::new(world.port("primary"), crash, true);
    let dying = world.sender(vec![world.account(
        "primary",
        AccountLimits::default(),
        faulty,
    )]);
    assert_eq!(
        send_in_a_process(dying, lead_id, SendRequest::Message { draft_id }).await,
        None,
        "the first process died"
    );
    let expected_sends = usize::from(crash == Crash::AfterTheCall);
    assert_eq!(world.sends_to(&person), expected_sends);
    assert!(
        !world
            .event_types(lead_id)
            .await
            .contains(&"message_sent".to_owned()),
        "nothing was recorded before the crash"
    );

    // The restarted process: same store, same network, a healthy port.
    world.clock.advance_by(Duration::minutes(1));
    let result = world
        .primary()
        .send(lead_id, &SendRequest::Message { draft_id }, None)
        .await
        .unwrap();
    match result {
        SendResult::Sent { reconciled, .. } => {
            assert_eq!(reconciled, crash == Crash::AfterTheCall, "{crash:?}")
        }
        other => panic!("{crash:?}: not sent after the restart: {other:?}"),
    }
    assert_eq!(world.sends_to(&person), 1, "{crash:?}: exactly one send");
    let sent = world
        .event_types(lead_id)
        .await
        .iter()
        .filter(|event_type| *event_type == "message_sent")
        .count();
    assert_eq!(sent, 1, "{crash:?}: exactly one message_sent");
    let account = world.account_state("primary").await;
    assert_eq!(account.slots.len(), 1, "one slot, reused by the restart");
}

#[tokio::test]
async fn sqlite_a_crash_before_the_call_sends_once_after_the_restart() {
    let (_directory, store) = sqlite_store().await;
    a_crash_then_a_restart(store, Crash::BeforeTheCall).await;
}

#[tokio::test]
async fn sqlite_a_crash_after_the_call_is_reconciled_not_resent() {
    let (_directory, store) = sqlite_store().await;
    a_crash_then_a_restart(store, Crash::AfterTheCall).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_a_crash_before_the_call_sends_once_after_the_restart(pool: sqlx::PgPool) {
    a_crash_then_a_restart(postgres(pool), Crash::BeforeTheCall).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_a_crash_after_the_call_is_reconciled_not_resent(pool: sqlx::PgPool) {
    a_crash_then_a_restart(postgres(pool), Crash::AfterTheCall).await;
}

async fn an_unreconcilable_crash_is_left_to_a_human(store: Store) {
    let world = World::new(store);
    let person = world.people(true)[2].clone();
    let (lead_id, draft_id) = world.approved_draft(&person).await;
    let port = world.port("primary");
    let dying = world.sender(vec![world.account(
        "primary",
        AccountLimits::default(),
        Faulty::new(Arc::clone(&port), Crash::AfterTheCall, false),
    )]);
    assert_eq!(
        send_in_a_process(dying, lead_id, SendRequest::Message { draft_id }).await,
        None
    );
    // The restarted process's provider cannot look sends up by key.
    let blind = Faulty::new(port, Crash::BeforeTheCall, false);
    blind.armed.store(false, Ordering::SeqCst);
    let restarted = world.sender(vec![world.account(
        "primary",
        AccountLimits::default(),
        blind,
    )]);
    let result = restarted
        .send(lead_id, &SendRequest::Message { draft_id }, None)
        .await
        .unwrap();
    assert!(matches!(result, SendResult::Unknown { .. }), "{result:?}");
    assert_eq!(
        world.sends_to(&person),
        1,
        "never sent blindly a second time"
    );
    let lead = world.lead(lead_id).await;
    assert_eq!(lead.draft(draft_id).unwrap().state, DraftState::SendUnknown);
    let again = restarted
        .send(lead_id, &SendRequest::Message { draft_id }, None)
        .await
        .unwrap();
    assert!(matches!(again, SendResult::Refused(_)), "{again:?}");
    assert_eq!(world.sends_to(&person), 1);
}

#[tokio::test]
async fn sqlite_an_unreconcilable_crash_is_left_to_a_human() {
    let (_directory, store) = sqlite_store().await;
    an_unreconcilable_crash_is_left_to_a_human(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_an_unreconcilable_crash_is_left_to_a_human(pool: sqlx::PgPool) {
    an_unreconcilable_crash_is_left_to_a_human(postgres(pool)).await;
}

#[tokio::test]
async fn an_unknown_outcome_is_recorded_and_never_retried_by_the_agent() {
    let (_directory, store) = sqlite_store().await;
    let world = World::new(store);
    let person = world.people(true)[3].clone();
    let (lead_id, draft_id) = world.approved_draft(&person).await;
    let faulty = Faulty::new(world.port("primary"), Crash::OutcomeUnknown, true);
    let sender = world.sender(vec![world.account(
        "primary",
        AccountLimits::default(),
        faulty,
    )]);
    let result = sender
        .send(lead_id, &SendRequest::Message { draft_id }, None)
        .await
        .unwrap();
    assert!(matches!(result, SendResult::Unknown { .. }), "{result:?}");
    assert!(
        world
            .event_types(lead_id)
            .await
            .contains(&"message_send_failed".to_owned())
    );
    world.clock.advance_by(Duration::minutes(30));
    let again = sender
        .send(lead_id, &SendRequest::Message { draft_id }, None)
        .await
        .unwrap();
    assert!(matches!(again, SendResult::Refused(_)), "{again:?}");
    assert_eq!(world.sends_to(&person), 1);
}

async fn the_reserve_account_takes_over_when_the_primary_is_full(store: Store) {
    let world = World::new(store);
    let tight = AccountLimits {
        messages_per_day: 2,
        ..AccountLimits::default()
    };
    let sender = world.sender(vec![
        world.account("primary", tight.clone(), world.port("primary")),
        world.account("reserve-1", tight, world.port("reserve-1")),
    ]);
    let people = world.people(true);
    let mut used = Vec::new();
    for person in people.iter().take(5) {
        let (lead_id, draft_id) = world.approved_draft(person).await;
        let result = sender
            .send(lead_id, &SendRequest::Message { draft_id }, None)
            .await
            .unwrap();
        world.clock.advance_by(Duration::minutes(16));
        match result {
            SendResult::Sent { account_id, .. } => used.push(account_id.as_str().to_owned()),
            SendResult::NotNow { retry_at, bound_by } => {
                assert!(retry_at > world.clock.now() - Duration::minutes(16));
                assert!(
                    bound_by
                        .iter()
                        .all(|(_, bound)| *bound == Bound::Limit(RateLimit::MessagesPerDay)),
                    "{bound_by:?}"
                );
                used.push("none".to_owned());
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        used,
        ["primary", "primary", "reserve-1", "reserve-1", "none"]
    );
    assert_eq!(world.network.sends().len(), 4);
}

#[tokio::test]
async fn sqlite_the_reserve_account_takes_over_when_the_primary_is_full() {
    let (_directory, store) = sqlite_store().await;
    the_reserve_account_takes_over_when_the_primary_is_full(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_the_reserve_account_takes_over_when_the_primary_is_full(pool: sqlx::PgPool) {
    the_reserve_account_takes_over_when_the_primary_is_full(postgres(pool)).await;
}

#[tokio::test]
async fn nothing_goes_out_outside_working_hours_or_within_the_gap() {
    let (_directory, store) = sqlite_store().await;
    let world = World::new(store);
    let sender = world.primary();
    let people = world.people(true);
    let (first, first_draft) = world.approved_draft(&people[0]).await;
    let (second, second_draft) = world.approved_draft(&people[1]).await;
    let sent = sender
        .send(
            first,
            &SendRequest::Message {
                draft_id: first_draft,
            },
            None,
        )
        .await
        .unwrap();
    assert!(matches!(sent, SendResult::Sent { .. }), "{sent:?}");
    let too_soon = sender
        .send(
            second,
            &SendRequest::Message {
                draft_id: second_draft,
            },
            None,
        )
        .await
        .unwrap();
    let SendResult::NotNow { retry_at, bound_by } = too_soon else {
        panic!("{too_soon:?}")
    };
    assert_eq!(bound_by[0].1, Bound::Limit(RateLimit::MinimumGap));
    let gap = retry_at - tuesday_morning();
    assert!(
        gap >= Duration::minutes(5) && gap <= Duration::minutes(15),
        "{gap}"
    );

    // Evening: closed until nine tomorrow.
    world
        .clock
        .advance_to("2026-12-01T18:30:00Z".parse().unwrap());
    let evening = sender
        .send(
            second,
            &SendRequest::Message {
                draft_id: second_draft,
            },
            None,
        )
        .await
        .unwrap();
    let SendResult::NotNow { retry_at, bound_by } = evening else {
        panic!("{evening:?}")
    };
    assert_eq!(bound_by[0].1, Bound::OutsideWorkingHours);
    assert_eq!(
        retry_at,
        "2026-12-02T09:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(world.sends_to(&people[1]), 0);
}

#[tokio::test]
async fn a_stranger_gets_an_invitation_and_a_do_not_contact_lead_gets_nothing() {
    let (_directory, store) = sqlite_store().await;
    let world = World::new(store);
    let sender = world.primary();
    let strangers = world.people(false);
    let lead_id = world.allocated_lead(&strangers[0]).await;

    // A stranger cannot get a message draft sent: invite first.
    let invitation = SendRequest::Invitation {
        note: Some("Hello! I run deep-tech events and would love to connect.".into()),
    };
    let result = sender.send(lead_id, &invitation, None).await.unwrap();
    assert!(matches!(result, SendResult::Sent { .. }), "{result:?}");
    assert_eq!(world.lead(lead_id).await.status, LeadStatus::Invited);
    world.clock.advance_by(Duration::minutes(20));
    let twice = sender.send(lead_id, &invitation, None).await.unwrap();
    assert!(matches!(twice, SendResult::Refused(_)), "{twice:?}");
    assert_eq!(world.sends_to(&strangers[0]), 1);

    // A lead marked do-not-contact is refused before any slot is taken.
    let connections = world.people(true);
    let (stopped, draft_id) = world.approved_draft(&connections[0]).await;
    world
        .run(stopped, LeadCommand::MarkDoNotContact { reason: None })
        .await;
    let refused = sender
        .send(stopped, &SendRequest::Message { draft_id }, None)
        .await
        .unwrap();
    assert_eq!(
        refused,
        SendResult::Refused(DomainError::LeadIsDoNotContact)
    );
    assert_eq!(world.sends_to(&connections[0]), 0);
    assert_eq!(world.account_state("primary").await.slots.len(), 1);
}

async fn replies_and_acceptances_are_recorded_once(store: Store) {
    let world = World::new(store);
    let sender = world.primary();
    let connections = world.people(true);
    let mut leads = Vec::new();
    for person in connections.iter().take(20) {
        let (lead_id, draft_id) = world.approved_draft(person).await;
        let result = sender
            .send(lead_id, &SendRequest::Message { draft_id }, None)
            .await
            .unwrap();
        assert!(matches!(result, SendResult::Sent { .. }), "{result:?}");
        leads.push(lead_id);
        world.clock.advance_by(Duration::minutes(16));
    }
    let stranger = world.people(false)[0].clone();
    let invited = world.allocated_lead(&stranger).await;
    let invitation = SendRequest::Invitation { note: None };
    assert!(matches!(
        sender.send(invited, &invitation, None).await.unwrap(),
        SendResult::Sent { .. }
    ));

    let start = tuesday_morning();
    world.clock.advance_by(Duration::days(10));
    let inbox = Inbox::new(
        Arc::clone(&world.store),
        vec![(AccountId::parse("primary").unwrap(), world.port("primary"))],
        world.clock(),
    );
    let first = inbox.poll(start).await.unwrap();
    let replies_in_network = world
        .network
        .replies_between(start, world.clock.now())
        .len();
    assert!(replies_in_network > 0, "someone answers within ten days");
    assert_eq!(
        first.replies.len(),
        replies_in_network,
        "ignored: {:?}",
        first.ignored
    );
    assert!(first.failures.is_empty(), "{:?}", first.failures);
    for (lead_id, number) in &first.replies {
        assert!(leads.contains(lead_id));
        assert_eq!(*number, 1);
        let lead = world.lead(*lead_id).await;
        assert_eq!(lead.status, LeadStatus::Responded);
        assert!(!lead.responses[0].text.is_empty());
    }
    let accepted = world
        .network
        .acceptances_between(start, world.clock.now())
        .len();
    assert_eq!(first.acceptances.len(), accepted);
    if accepted == 1 {
        assert_eq!(world.lead(invited).await.status, LeadStatus::Connected);
    }

    // The next poll over an overlapping window records nothing twice.
    let second = inbox.poll(start).await.unwrap();
    assert!(second.replies.is_empty() && second.acceptances.is_empty());
    assert_eq!(
        second.already_recorded as usize,
        replies_in_network + accepted
    );
}

#[tokio::test]
async fn sqlite_replies_and_acceptances_are_recorded_once() {
    let (_directory, store) = sqlite_store().await;
    replies_and_acceptances_are_recorded_once(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_replies_and_acceptances_are_recorded_once(pool: sqlx::PgPool) {
    replies_and_acceptances_are_recorded_once(postgres(pool)).await;
}

/// A mail port that delivers, then dies once before the caller hears back.
struct DiesAfterDelivery {
    inner: FileOutbox,
    armed: AtomicBool,
}

#[async_trait]
impl MailPort for DiesAfterDelivery {
    async fn send(&self, mail: &OutgoingMail) -> Result<SentMail, MailError> {
        let sent = self.inner.send(mail).await;
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("the process dies right after the mail was written");
        }
        sent
    }
}

fn eml_files(directory: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(directory)
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            (path.extension().is_some_and(|ext| ext == "eml"))
                .then(|| std::fs::read_to_string(path).unwrap())
        })
        .collect()
}

async fn a_positive_reply_is_handed_over_by_exactly_one_mail(store: Store) {
    let world = World::new(store.clone());
    let person = world.people(true)[4].clone();
    let (lead_id, draft_id) = world.approved_draft(&person).await;
    let sent = world
        .primary()
        .send(lead_id, &SendRequest::Message { draft_id }, None)
        .await
        .unwrap();
    assert!(matches!(sent, SendResult::Sent { .. }), "{sent:?}");
    world
        .run(
            lead_id,
            LeadCommand::RecordResponse {
                provider_message_id: Some("reply-1".into()),
                text: "Sounds great, tell me more about the dates!".into(),
            },
        )
        .await;
    world
        .run(
            lead_id,
            LeadCommand::AnalyseResponse {
                response_number: 1,
                sentiment: Sentiment::Positive,
                intent: Intent::Interested,
                confidence: Confidence::parse(0.9).unwrap(),
                rationale: None,
                hand_over_to: "sales-team".into(),
                return_date: None,
                policy: Default::default(),
            },
        )
        .await;

    let outbox_dir = TempDir::new().unwrap();
    let outbox = FileOutbox::open(outbox_dir.path(), std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let config = HandOverConfig {
        from: "salesdept <salesdept@localhost>".parse().unwrap(),
        team: vec!["Sales team <sales-team@localhost>".parse().unwrap()],
        message_id_domain: "salesdept.localhost".into(),
    };
    // The first process dies between the mail and its record.
    let dying = HandOver::new(
        Arc::new(store.clone()),
        Arc::new(DiesAfterDelivery {
            inner: outbox.clone(),
            armed: AtomicBool::new(true),
        }),
        config.clone(),
    );
    // On PostgreSQL a whole-log reader sees the event once no older transaction is open on
    // the shared server, so keep catching up (boundedly) until the handler gets it and dies.
    let crashed = tokio::spawn(async move {
        let subscription = Subscription::new(
            "handover",
            store_clone_for(&dying),
            Arc::new(HandOverHandler::new(dying)),
        )
        .with_options(short_lease());
        for _ in 0..600 {
            subscription.catch_up().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(crashed.is_err(), "the first process died");
    assert_eq!(eml_files(outbox_dir.path()).len(), 1);
    assert!(!world.lead(lead_id).await.human_notified);

    // The dead process's lease expires; the restarted process takes over, and then a second
    // subscriber replays from the start.
    tokio::time::sleep(short_lease().lease_ttl * 2).await;
    let qualified = world
        .store
        .read_stream(&lead_stream(lead_id), 1, None)
        .await
        .unwrap()
        .into_iter()
        .find(|event| event.event_type == "lead_qualified")
        .unwrap();
    for name in ["handover", "handover-replayed"] {
        let hand_over = HandOver::new(
            Arc::new(store.clone()),
            Arc::new(outbox.clone()),
            config.clone(),
        );
        let subscription = Subscription::new(
            name,
            store.clone(),
            Arc::new(HandOverHandler::new(hand_over)),
        )
        .with_options(short_lease());
        // Until this subscriber has read past the qualification (see above), boundedly.
        for _ in 0..600 {
            let pass = subscription.catch_up().await.unwrap();
            if pass.checkpoint >= qualified.checkpoint() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let mails = eml_files(outbox_dir.path());
    assert_eq!(mails.len(), 1, "exactly one mail");
    assert!(mails[0].contains(&person.name), "the mail names the lead");
    assert!(
        mails[0].contains("tell me more about the dates"),
        "with the conversation"
    );
    let notified = world
        .event_types(lead_id)
        .await
        .iter()
        .filter(|event_type| *event_type == "human_notified")
        .count();
    assert_eq!(notified, 1, "exactly one human_notified");
    assert!(world.lead(lead_id).await.human_notified);
}

fn short_lease() -> SubscriptionOptions {
    SubscriptionOptions {
        lease_ttl: std::time::Duration::from_millis(300),
        ..SubscriptionOptions::default()
    }
}

fn store_clone_for(hand_over: &HandOver<Store>) -> Store {
    hand_over.store().clone()
}

#[tokio::test]
async fn sqlite_a_positive_reply_is_handed_over_by_exactly_one_mail() {
    let (_directory, store) = sqlite_store().await;
    a_positive_reply_is_handed_over_by_exactly_one_mail(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_a_positive_reply_is_handed_over_by_exactly_one_mail(pool: sqlx::PgPool) {
    a_positive_reply_is_handed_over_by_exactly_one_mail(postgres(pool)).await;
}
