//! The reports read models against both stores: the real PostgreSQL on this machine (a fresh
//! database per test, `#[sqlx::test]`, `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`)
//! and a SQLite file in a temporary directory.
//!
//! Eight scripted lead journeys over a week (2026-11-23 to 2026-11-30) are appended to the log
//! in time order, as the agents would; the `reports` subscription runs in small batches, so a
//! lead's events are split across batches. Every expected number below is worked out by hand
//! from the journeys in [`journeys`].

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use salesdept_events::domain::lead::{
    CloseOutcome, CloseReason, DoNotContactMarked, DoNotContactSource, InvitationAccepted,
    InvitationKind, InvitationSent, LeadAllocation, LeadClassified, LeadClosed, LeadDiscovered,
    LeadForgotten, LeadQualified, LeadSource, MessageApproved, MessageDrafted, MessageKind,
    MessageSent, Priority, ResponseAnalysed, ResponseReceived,
};
use salesdept_events::domain::{
    AccountId, Classification, Confidence, DomainEvent, Intent, LeadEvent, LinkedInUrl, Pii,
    Sentiment, lead_stream, upcasters,
};
use salesdept_events::store::PostgresEventStore;
use salesdept_events::subscription::{CatchUp, list_dead_letters};
use salesdept_events::{
    Actor, EventStore, ExpectedVersion, Metadata, NewEvent, Store, Subscription,
    SubscriptionOptions,
};
use salesdept_projections::reports::{
    self, Dimension, FunnelCounts, ReplyRateDay, ReplyRateRow, ReportsProjection, Stage,
    TargetStatus,
};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

// --- the journeys ----------------------------------------------------------------------------

/// The `n`th day from 2026-11-01 (1-based): 23 is 2026-11-23, 35 is 2026-12-05.
fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 1).unwrap() + TimeDelta::days(i64::from(n) - 1)
}

/// One lead's events, each at its own minute from 09:00 of its day (UTC), in stream order.
struct Lead {
    id: Uuid,
    name: &'static str,
    events: Vec<(DateTime<Utc>, LeadEvent)>,
}

impl Lead {
    fn new(n: u128, name: &'static str) -> Self {
        Self {
            id: Uuid::from_u128(0x1ead_0000 + n),
            name,
            events: Vec::new(),
        }
    }

    fn url(&self) -> LinkedInUrl {
        let slug = self.name.to_lowercase().replace(' ', "-");
        LinkedInUrl::parse(&format!("https://www.linkedin.com/in/{slug}")).unwrap()
    }

    fn at(mut self, time: DateTime<Utc>, event: impl Into<LeadEvent>) -> Self {
        self.events.push((time, event.into()));
        self
    }

    fn on(self, on: u32, event: impl Into<LeadEvent>) -> Self {
        let minute = i64::try_from(self.events.len()).unwrap();
        let time = day(on).and_hms_opt(9, 0, 0).unwrap().and_utc() + TimeDelta::minutes(minute);
        self.at(time, event)
    }

    fn discovered(self, on: u32, is_connection: bool) -> Self {
        let url = self.url();
        let event = LeadDiscovered {
            lead_id: self.id,
            position: "CTO".into(),
            company: "Fjordbyte".into(),
            company_size: None,
            industry: None,
            is_connection,
            source: LeadSource::Search,
            search_id: None,
            import_format: None,
            url_hash: url.hash(),
            pii: Pii {
                name: Some(self.name.into()),
                linkedin_url: Some(url),
                ..Pii::default()
            },
        };
        self.on(on, event)
    }

    fn classified(self, on: u32, classification: Classification) -> Self {
        let name = self.name;
        self.on(
            on,
            LeadClassified {
                classification,
                confidence: Confidence::parse(0.9).unwrap(),
                manual: false,
                pii: Pii::rationale(format!("{name} gives talks")),
            },
        )
    }

    fn allocated(self, on: u32) -> Self {
        self.on(
            on,
            LeadAllocation {
                assigned_to: "outreach".into(),
                priority: Priority::High,
                reason: "high quality".into(),
            },
        )
    }

    fn invited(self, on: u32) -> Self {
        let sent_at = day(on).and_hms_opt(10, 0, 0).unwrap().and_utc();
        self.on(
            on,
            InvitationSent {
                account_id: account("primary"),
                kind: InvitationKind::Invitation,
                provider_message_id: format!("inv-{}", Uuid::now_v7()),
                slot_id: Uuid::now_v7(),
                sent_at,
                pii: Pii::message("Would love to connect"),
            },
        )
    }

    fn accepted(self, on: u32) -> Self {
        let accepted_at = day(on).and_hms_opt(8, 0, 0).unwrap().and_utc();
        self.on(
            on,
            InvitationAccepted {
                account_id: account("primary"),
                accepted_at,
            },
        )
    }

    /// Drafted, approved and sent.
    fn message(
        self,
        on: u32,
        kind: MessageKind,
        follow_up_number: Option<u32>,
        variant: Option<&str>,
        from: &str,
    ) -> Self {
        let draft_id = Uuid::now_v7();
        let text = format!("Hi {}, would you speak at our Postgres day?", self.name);
        let variant = variant.map(str::to_owned);
        let sent_at = day(on).and_hms_opt(11, 0, 0).unwrap().and_utc();
        self.on(
            on,
            MessageDrafted {
                draft_id,
                kind,
                follow_up_number,
                variant: variant.clone(),
                pii: Pii::message(text.clone()),
            },
        )
        .on(
            on,
            MessageApproved {
                draft_id,
                edited: false,
                pii: Pii::default(),
            },
        )
        .on(
            on,
            MessageSent {
                account_id: account(from),
                kind,
                provider_message_id: format!("msg-{draft_id}"),
                draft_id,
                slot_id: Uuid::now_v7(),
                follow_up_number,
                variant,
                sent_at,
                pii: Pii::message(text),
            },
        )
    }

    fn first_message(self, on: u32, variant: Option<&str>, from: &str) -> Self {
        self.message(on, MessageKind::Initial, None, variant, from)
    }

    fn follow_up(self, on: u32, number: u32, variant: Option<&str>) -> Self {
        self.message(on, MessageKind::FollowUp, Some(number), variant, "primary")
    }

    /// A reply, its analysis, and what the Outreach agent records after it.
    fn reply_at(mut self, time: DateTime<Utc>, number: u32, intent: Intent) -> Self {
        let sentiment = if intent.is_positive() {
            Sentiment::Positive
        } else {
            Sentiment::Neutral
        };
        let name = self.name;
        self = self
            .at(
                time,
                ResponseReceived {
                    response_number: number,
                    provider_message_id: None,
                    received_at: time,
                    pii: Pii::reply(format!("Thanks, {name} here")),
                },
            )
            .at(
                time,
                ResponseAnalysed {
                    response_number: number,
                    sentiment,
                    intent,
                    confidence: Confidence::parse(0.8).unwrap(),
                    pii: Pii::default(),
                },
            );
        if intent.is_positive() {
            self = self.at(
                time,
                LeadQualified {
                    response_number: number,
                    intent,
                    assigned_to: "ana@events.example".into(),
                },
            );
        }
        match intent {
            Intent::DoNotContact => self.at(
                time,
                DoNotContactMarked {
                    source: DoNotContactSource::Reply,
                    response_number: Some(number),
                    pii: Pii::default(),
                },
            ),
            Intent::NotInterested => self.at(
                time,
                LeadClosed {
                    outcome: CloseOutcome::Lost,
                    reason: CloseReason::NotInterested,
                    pii: Pii::default(),
                },
            ),
            _ => self,
        }
    }

    fn reply(self, on: u32, number: u32, intent: Intent) -> Self {
        let minute = i64::try_from(self.events.len()).unwrap();
        let time = day(on).and_hms_opt(14, 0, 0).unwrap().and_utc() + TimeDelta::minutes(minute);
        self.reply_at(time, number, intent)
    }

    fn forgotten(self, on: u32) -> Self {
        self.on(on, LeadForgotten {})
    }
}

fn account(name: &str) -> AccountId {
    AccountId::parse(name).unwrap()
}

/// The lead forgotten on the 27th.
const FORGOTTEN: u128 = 6;

/// Eight leads over the week of 2026-11-23 (first message day, variant, account):
///
/// | lead | class at send | sent | variant | account | reply after the message |
/// |---|---|---|---|---|---|
/// | A | Speaker | 24 | speaker-a | primary | 25 Interested (positive) |
/// | B | Speaker | 25 | speaker-b | primary | none (follow-up 1 on 30, 2 on 2026-12-05) |
/// | C | Sponsor | 24 | sponsor-a | reserve | 26 NotInterested |
/// | D | Sponsor | 25 | sponsor-a | primary | 30 InfoRequest (positive; follow-up 1 on 30) |
/// | E | Other | — | | | never allocated |
/// | F | Speaker | 25 | speaker-a | reserve | 26 DoNotContact; forgotten on 27 |
/// | G | Speaker (Sponsor on 23, Speaker on 24, Other on 27) | 26 | none | primary | 27 23:59:59 Referral (positive) |
/// | H | Speaker | 26 | speaker-b | primary | none; replied on 25 to the invitation, before the message |
fn journeys() -> Vec<Lead> {
    vec![
        Lead::new(1, "Ada Quist")
            .discovered(23, true)
            .classified(23, Classification::Speaker)
            .allocated(23)
            .first_message(24, Some("speaker-a"), "primary")
            .reply(25, 1, Intent::Interested),
        Lead::new(2, "Bo Varga")
            .discovered(23, false)
            .classified(23, Classification::Speaker)
            .allocated(24)
            .invited(24)
            .accepted(25)
            .first_message(25, Some("speaker-b"), "primary")
            .follow_up(30, 1, Some("speaker-b"))
            .follow_up(35, 2, Some("speaker-b")),
        Lead::new(3, "Cy Moreau")
            .discovered(23, true)
            .classified(23, Classification::Sponsor)
            .allocated(24)
            .first_message(24, Some("sponsor-a"), "reserve")
            .reply(26, 1, Intent::NotInterested),
        Lead::new(4, "Dee Okafor")
            .discovered(24, true)
            .classified(24, Classification::Sponsor)
            .allocated(24)
            .first_message(25, Some("sponsor-a"), "primary")
            .follow_up(30, 1, Some("sponsor-a"))
            .reply(30, 1, Intent::InfoRequest),
        Lead::new(5, "Eli Tanaka")
            .discovered(24, true)
            .classified(24, Classification::Other),
        Lead::new(FORGOTTEN, "Fay Lindqvist")
            .discovered(25, true)
            .classified(25, Classification::Speaker)
            .allocated(25)
            .first_message(25, Some("speaker-a"), "reserve")
            .reply(26, 1, Intent::DoNotContact)
            .forgotten(27),
        Lead::new(7, "Gus Ferreira")
            .discovered(23, true)
            .classified(23, Classification::Sponsor)
            .classified(24, Classification::Speaker)
            .allocated(24)
            .first_message(26, None, "primary")
            .classified(27, Classification::Other)
            .reply_at("2026-11-27T23:59:59Z".parse().unwrap(), 1, Intent::Referral),
        Lead::new(8, "Hal Berg")
            .discovered(23, false)
            .classified(23, Classification::Speaker)
            .allocated(24)
            .invited(24)
            .reply(25, 1, Intent::OutOfOffice)
            .accepted(26)
            .first_message(26, Some("speaker-b"), "primary"),
    ]
}

/// Appends `leads`' events in time order (one append per event, as the agents write them),
/// plus events of other streams the reports must skip. Returns how many events were appended.
async fn append_in_time_order(store: &Store, leads: &[Lead]) -> u64 {
    let mut all: Vec<(DateTime<Utc>, Uuid, &LeadEvent)> = leads
        .iter()
        .flat_map(|lead| {
            lead.events
                .iter()
                .map(move |(time, event)| (*time, lead.id, event))
        })
        .collect();
    // Stable: a lead's events keep their stream order at equal times.
    all.sort_by_key(|(time, _, _)| *time);
    let mut appended = 0;
    for (time, lead_id, event) in all {
        let metadata = Metadata::new(Actor::agent("outreach"), time);
        store
            .append(
                &lead_stream(lead_id),
                ExpectedVersion::Any,
                vec![event.to_new_event(metadata)],
            )
            .await
            .unwrap();
        appended += 1;
    }
    for stream in ["department", "account-primary"] {
        let other = NewEvent::new(
            "performance_alert",
            json!({ "metric": "reply_rate" }),
            Metadata::new(
                Actor::agent("sales_manager"),
                day(28).and_hms_opt(17, 0, 0).unwrap().and_utc(),
            ),
        );
        store
            .append(stream, ExpectedVersion::Any, vec![other])
            .await
            .unwrap();
        appended += 1;
    }
    appended
}

fn small_batches() -> SubscriptionOptions {
    SubscriptionOptions {
        batch_size: 5,
        max_attempts: 2,
        initial_backoff: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(5),
        poll_interval: std::time::Duration::from_millis(20),
        lease_ttl: std::time::Duration::from_secs(30),
        dead_letter_check_interval: std::time::Duration::ZERO,
    }
}

fn reports_subscription(store: &Store, name: &str) -> Subscription {
    Subscription::new(name, store.clone(), Arc::new(ReportsProjection))
        .with_options(small_batches())
}

/// Catches up until `expected` events were handled. PostgreSQL's visibility horizon is
/// cluster-wide, so a short transaction of a test running in parallel in another database may
/// hold readers back for a moment.
async fn settle(subscription: &Subscription, expected: u64) -> CatchUp {
    settle_parking(subscription, expected, 0).await
}

/// Catches up until `handled` events were handled and `parked` parked.
async fn settle_parking(subscription: &Subscription, handled: u64, parked: u64) -> CatchUp {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut total = CatchUp::default();
    loop {
        let pass = subscription.catch_up().await.unwrap();
        total.handled += pass.handled;
        total.parked += pass.parked;
        total.checkpoint = pass.checkpoint;
        if total.handled + total.parked >= handled + parked
            || tokio::time::Instant::now() > deadline
        {
            assert_eq!(
                (total.handled, total.parked),
                (handled, parked),
                "events handled and parked"
            );
            return total;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The journeys appended and projected by the `reports` subscription.
async fn projected(store: &Store) -> (Subscription, u64) {
    let appended = append_in_time_order(store, &journeys()).await;
    let subscription = reports_subscription(store, reports::SUBSCRIPTION);
    settle(&subscription, appended).await;
    (subscription, appended)
}

// --- what the journeys must give ---------------------------------------------------------

/// Counts in [`Stage::ALL`] order: discovered, classified, allocated, invited, sent, follow-ups,
/// replied, positive, qualified, do-not-contact.
fn counts(values: [u64; 10]) -> FunnelCounts {
    FunnelCounts {
        discovered: values[0],
        classified: values[1],
        allocated: values[2],
        invited: values[3],
        sent: values[4],
        follow_ups_sent: values[5],
        replied: values[6],
        positive: values[7],
        qualified: values[8],
        do_not_contact: values[9],
    }
}

fn expected_funnel_days() -> Vec<(NaiveDate, FunnelCounts)> {
    vec![
        // A, B, C, G, H found and classified; A allocated.
        (day(23), counts([5, 5, 1, 0, 0, 0, 0, 0, 0, 0])),
        // D, E found and classified (G's second classification is not a second lead); B, C,
        // D, G, H allocated; B, H invited; A, C sent.
        (day(24), counts([2, 2, 5, 2, 2, 0, 0, 0, 0, 0])),
        // F found, classified, allocated; B, D, F sent; A and H replied, A positive.
        (day(25), counts([1, 1, 1, 0, 3, 0, 2, 1, 1, 0])),
        // G, H sent; C, F replied; F do-not-contact.
        (day(26), counts([0, 0, 0, 0, 2, 0, 2, 0, 0, 1])),
        // G's Referral at 23:59:59 UTC is still the 27th.
        (day(27), counts([0, 0, 0, 0, 0, 0, 1, 1, 1, 0])),
        (day(28), counts([0; 10])),
        (day(29), counts([0; 10])),
        // B and D followed up; D replied positively.
        (day(30), counts([0, 0, 0, 0, 0, 2, 1, 1, 1, 0])),
    ]
}

fn row(key: &str, sent: u64, replied: u64, positive: u64) -> ReplyRateRow {
    ReplyRateRow {
        key: key.into(),
        sent,
        replied,
        positive,
        reply_rate: replied as f64 / sent as f64,
        positive_rate: positive as f64 / sent as f64,
    }
}

/// The numbers a dashboard shows, for comparing a rebuild with the original.
async fn snapshot(store: &Store) -> String {
    let funnel = reports::funnel(store, day(20), day(30)).await.unwrap();
    let mut text = format!("{funnel:?}\n");
    for dimension in [
        Dimension::Variant,
        Dimension::Classification,
        Dimension::Account,
    ] {
        let daily = reports::reply_rates_daily(store, dimension, day(20), day(30))
            .await
            .unwrap();
        text.push_str(&format!("{dimension:?} {daily:?}\n"));
    }
    text
}

async fn assert_journey_numbers(store: &Store) {
    let funnel = reports::funnel(store, day(23), day(30)).await.unwrap();
    let days: Vec<(NaiveDate, FunnelCounts)> =
        funnel.days.iter().map(|d| (d.day, d.counts)).collect();
    assert_eq!(days, expected_funnel_days());
    assert_eq!(funnel.totals, counts([8, 8, 7, 2, 7, 2, 6, 3, 3, 1]));
    assert_eq!(
        reports::reply_rates(store, Dimension::Variant, day(23), day(30))
            .await
            .unwrap(),
        vec![
            // G's first message had no variant.
            row("(none)", 1, 1, 1),
            // A positive, F DoNotContact.
            row("speaker-a", 2, 2, 1),
            // B no reply; H's only reply came before the message.
            row("speaker-b", 2, 0, 0),
            // C NotInterested, D InfoRequest.
            row("sponsor-a", 2, 2, 1),
        ]
    );
    assert_eq!(
        reports::reply_rates(store, Dimension::Classification, day(23), day(30))
            .await
            .unwrap(),
        vec![
            // A, B, F, G (Speaker when sent, Other later), H.
            row("Speaker", 5, 3, 2),
            row("Sponsor", 2, 2, 1),
        ]
    );
    assert_eq!(
        reports::reply_rates(store, Dimension::Account, day(23), day(30))
            .await
            .unwrap(),
        vec![row("primary", 5, 3, 3), row("reserve", 2, 2, 0)]
    );
}

// --- the suite -------------------------------------------------------------------------------

mod suite {
    use super::*;

    pub async fn funnel_counts_each_lead_once_per_stage_per_day(store: &Store) {
        projected(store).await;
        assert_journey_numbers(store).await;
        // A window inside the week: the days asked for, nothing else.
        let middle = reports::funnel(store, day(25), day(26)).await.unwrap();
        assert_eq!(
            middle.days.iter().map(|d| d.day).collect::<Vec<_>>(),
            vec![day(25), day(26)]
        );
        assert_eq!(middle.totals, counts([1, 1, 1, 0, 5, 0, 4, 1, 1, 1]));
        let before = reports::funnel(store, day(1), day(22)).await.unwrap();
        assert_eq!(before.days.len(), 22);
        assert_eq!(before.totals, FunnelCounts::default());
        assert_eq!(before.totals.get(Stage::Discovered), 0);
        assert_eq!(middle.totals.get(Stage::Sent), 5);
        // Follow-ups count per message: B's second one, after the month turned.
        let later = reports::funnel(store, day(30), day(35)).await.unwrap();
        assert_eq!(later.days.len(), 6);
        assert_eq!(
            later.days[5].day,
            NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()
        );
        assert_eq!(later.days[5].counts, counts([0, 0, 0, 0, 0, 1, 0, 0, 0, 0]));
        assert_eq!(later.totals.get(Stage::FollowUp), 3);
    }

    pub async fn reply_rates_by_send_day_window(store: &Store) {
        projected(store).await;
        // First messages sent on the 25th and 26th: B, D, G, H from primary, F from reserve.
        assert_eq!(
            reports::reply_rates(store, Dimension::Account, day(25), day(26))
                .await
                .unwrap(),
            vec![row("primary", 4, 2, 2), row("reserve", 1, 1, 0)]
        );
        let daily = reports::reply_rates_daily(store, Dimension::Variant, day(23), day(30))
            .await
            .unwrap();
        let expected = |on: u32, key: &str, sent, replied, positive| ReplyRateDay {
            day: day(on),
            row: row(key, sent, replied, positive),
        };
        assert_eq!(
            daily,
            vec![
                expected(24, "speaker-a", 1, 1, 1),
                expected(24, "sponsor-a", 1, 1, 0),
                expected(25, "speaker-a", 1, 1, 0),
                expected(25, "speaker-b", 1, 0, 0),
                expected(25, "sponsor-a", 1, 1, 1),
                expected(26, "(none)", 1, 1, 1),
                expected(26, "speaker-b", 1, 0, 0),
            ]
        );
        assert!(
            reports::reply_rates(store, Dimension::Variant, day(27), day(30))
                .await
                .unwrap()
                .is_empty(),
            "no first message was sent after the 26th"
        );
        let summary = reports::weekly_summary(store, day(30)).await.unwrap();
        assert_eq!(
            (summary.from, summary.to),
            (day(24), day(30)),
            "seven days, both ends included"
        );
        assert_eq!(
            (
                summary.messages_sent,
                summary.first_messages_sent,
                summary.follow_ups_sent
            ),
            (9, 7, 2)
        );
        assert!(!summary.messages_on_target);
        assert_eq!((summary.replied, summary.positive), (5, 3));
        assert_eq!(summary.reply_rate, 5.0 / 7.0);
        assert_eq!(summary.reply_rate_status, Some(TargetStatus::Above));
        let earlier = reports::weekly_summary(store, day(23)).await.unwrap();
        assert_eq!(earlier.messages_sent, 0);
        assert_eq!(earlier.reply_rate_status, None);
    }

    pub async fn a_redelivered_batch_changes_nothing(store: &Store) {
        let (subscription, appended) = projected(store).await;
        let before = snapshot(store).await;
        // A runner that lost its checkpoint write (or crashed before it) gets the same events
        // again: put the checkpoint back to the start and run the same subscription anew.
        subscription.release_lease().await.unwrap();
        match store {
            Store::Postgres(s) => sqlx::query(
                "UPDATE subscriptions SET checkpoint_tx = 0, checkpoint_pos = 0 WHERE name = $1",
            )
            .bind(reports::SUBSCRIPTION)
            .execute(s.pool())
            .await
            .map(drop),
            Store::Sqlite(s) => sqlx::query(
                "UPDATE subscriptions SET checkpoint_tx = 0, checkpoint_pos = 0 WHERE name = ?1",
            )
            .bind(reports::SUBSCRIPTION)
            .execute(s.write_pool())
            .await
            .map(drop),
        }
        .unwrap();
        let restarted = reports_subscription(store, reports::SUBSCRIPTION);
        settle(&restarted, appended).await;
        assert_eq!(snapshot(store).await, before);
        assert_journey_numbers(store).await;
    }

    pub async fn a_rebuild_gives_the_same_numbers(store: &Store) {
        let (_, appended) = projected(store).await;
        let before = snapshot(store).await;
        // Over the existing rows, a second subscription changes nothing.
        settle(&reports_subscription(store, "reports-again"), appended).await;
        assert_eq!(snapshot(store).await, before);
        // From empty tables, a fresh subscription gives the same numbers.
        reports::clear(store).await.unwrap();
        assert_eq!(
            reports::funnel(store, day(23), day(30))
                .await
                .unwrap()
                .totals,
            FunnelCounts::default(),
            "cleared"
        );
        settle(&reports_subscription(store, "reports-rebuild"), appended).await;
        assert_eq!(snapshot(store).await, before);
        assert_journey_numbers(store).await;
    }

    pub async fn a_forgotten_lead_still_counts_and_no_personal_data_is_kept(store: &Store) {
        let vault = Arc::new(salesdept_events::pii_vault::PiiVault::new(
            salesdept_events::pii_vault::MasterKey::from_base64(
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            )
            .unwrap(),
        ));
        store.enable_pii_vault(vault);
        let (_, appended) = projected(store).await;
        let forgotten = Uuid::from_u128(0x1ead_0000 + FORGOTTEN);
        store.forget_subject(&lead_stream(forgotten)).await.unwrap();
        // The forgotten person's events read without their personal data now.
        let events = store
            .read_stream(&lead_stream(forgotten), 1, None)
            .await
            .unwrap();
        let discovered = LeadEvent::from_recorded(&events[0]).unwrap();
        let LeadEvent::LeadDiscovered(discovered) = discovered else {
            panic!("expected lead_discovered first, got {discovered:?}");
        };
        assert_eq!(discovered.pii.name, None, "shredded");
        assert_journey_numbers(store).await;
        // A rebuild after the shredding gives the same numbers: F still counts.
        reports::clear(store).await.unwrap();
        settle(&reports_subscription(store, "reports-rebuild"), appended).await;
        assert_journey_numbers(store).await;
        let speaker_a = reports::reply_rates(store, Dimension::Variant, day(25), day(25))
            .await
            .unwrap();
        assert_eq!(speaker_a[0], row("speaker-a", 1, 1, 0), "F's first message");

        // Nothing personal in any report row: every stored value, as text.
        let stored = stored_text(store).await;
        assert!(stored.contains("speaker-a"), "the dump reads the rows");
        for lead in journeys() {
            for personal in [
                lead.name.to_owned(),
                lead.name.to_lowercase().replace(' ', "-"),
                "Thanks".to_owned(),
                "Postgres day".to_owned(),
                "gives talks".to_owned(),
            ] {
                assert!(!stored.contains(&personal), "{personal:?} in {stored}");
            }
        }
    }

    pub async fn an_unreadable_event_is_parked_and_the_rest_still_count(store: &Store) {
        let (subscription, _) = projected(store).await;
        let late = Lead::new(99, "Ivo Marsh").discovered(30, true);
        let late_id = late.id;
        // Discovered, two events of other streams, then an unreadable message_sent in the
        // middle of one batch, then a readable event after it.
        let mut appended = append_in_time_order(store, &[late]).await;
        let broken = NewEvent::new(
            "message_sent",
            json!({ "kind": "initial" }),
            Metadata::new(
                Actor::agent("outreach"),
                day(30).and_hms_opt(16, 0, 0).unwrap().and_utc(),
            ),
        );
        let classified: LeadEvent = LeadClassified {
            classification: Classification::Sponsor,
            confidence: Confidence::parse(0.7).unwrap(),
            manual: false,
            pii: Pii::default(),
        }
        .into();
        let metadata = Metadata::new(
            Actor::agent("lead_finder"),
            day(30).and_hms_opt(17, 0, 0).unwrap().and_utc(),
        );
        for event in [broken, classified.to_new_event(metadata)] {
            store
                .append(&lead_stream(late_id), ExpectedVersion::Any, vec![event])
                .await
                .unwrap();
            appended += 1;
        }
        settle_parking(&subscription, appended - 1, 1).await;
        let parked = list_dead_letters(store, Some(reports::SUBSCRIPTION))
            .await
            .unwrap();
        assert_eq!(parked.len(), 1);
        assert_eq!(parked[0].event_type, "message_sent");
        let funnel = reports::funnel(store, day(23), day(30)).await.unwrap();
        assert_eq!(funnel.totals, counts([9, 9, 7, 2, 7, 2, 6, 3, 3, 1]));
        assert_eq!(
            funnel.days[7].counts.discovered, 1,
            "the late lead on the 30th"
        );
        assert_eq!(
            funnel.days[7].counts.classified, 1,
            "after the parked event"
        );
    }

    /// Every value of every report row as text.
    async fn stored_text(store: &Store) -> String {
        const STAGES: &str = "SELECT CAST(lead_id AS TEXT) || ' ' || stage || ' ' || CAST(seq AS TEXT) \
             || ' ' || CAST(day AS TEXT) FROM report_funnel_stages";
        const ATTRIBUTIONS: &str = "SELECT CAST(lead_id AS TEXT) || ' ' || \
             COALESCE(classification, '') || ' ' || COALESCE(CAST(sent_day AS TEXT), '') || ' ' || \
             COALESCE(variant, '') || ' ' || COALESCE(account_id, '') || ' ' || \
             COALESCE(sent_classification, '') || ' ' || \
             COALESCE(CAST(replied_response AS TEXT), '') || ' ' || \
             COALESCE(CAST(replied_day AS TEXT), '') || ' ' || \
             COALESCE(CAST(positive_day AS TEXT), '') FROM report_attribution";
        let mut lines: Vec<String> = Vec::new();
        for sql in [STAGES, ATTRIBUTIONS] {
            let rows: Vec<String> = match store {
                Store::Postgres(s) => sqlx::query_scalar(sql).fetch_all(s.pool()).await,
                Store::Sqlite(s) => sqlx::query_scalar(sql).fetch_all(s.read_pool()).await,
            }
            .unwrap();
            assert!(!rows.is_empty());
            lines.extend(rows);
        }
        lines.join("\n")
    }

    /// 210 first messages in a week: on the message target, and the reply rate moving from
    /// below the 8–10 % range to within it and above it as replies arrive.
    pub async fn the_weekly_summary_against_the_targets(store: &Store) {
        let mut leads = Vec::new();
        for n in 0..210_u32 {
            let sent_on = 23 + n % 7;
            leads.push(
                Lead::new(1000 + u128::from(n), "Sam Example")
                    .discovered(sent_on, true)
                    .classified(sent_on, Classification::Speaker)
                    .allocated(sent_on)
                    .first_message(sent_on, Some("speaker-a"), "primary"),
            );
        }
        let mut appended = append_in_time_order(store, &leads).await;
        let subscription = reports_subscription(store, reports::SUBSCRIPTION);
        let mut handled = settle(&subscription, appended).await.handled;
        let mut reply = async |from: u32, to: u32| {
            for n in from..to {
                let lead_id = Uuid::from_u128(0x1ead_0000 + 1000 + u128::from(n));
                let event: LeadEvent = ResponseReceived {
                    response_number: 1,
                    provider_message_id: None,
                    received_at: day(30).and_hms_opt(12, 0, 0).unwrap().and_utc(),
                    pii: Pii::reply("Sounds good"),
                }
                .into();
                let metadata = Metadata::new(
                    Actor::system("webhook"),
                    day(30).and_hms_opt(12, 0, 0).unwrap().and_utc(),
                );
                store
                    .append(
                        &lead_stream(lead_id),
                        ExpectedVersion::Any,
                        vec![event.to_new_event(metadata)],
                    )
                    .await
                    .unwrap();
                appended += 1;
            }
            handled += settle(&subscription, appended - handled).await.handled;
        };

        reply(0, 16).await;
        let summary = reports::weekly_summary(store, day(29)).await.unwrap();
        assert_eq!(summary.messages_sent, 210);
        assert!(summary.messages_on_target, "200+ a week");
        assert_eq!((summary.first_messages_sent, summary.replied), (210, 16));
        assert_eq!(
            summary.reply_rate_status,
            Some(TargetStatus::Below),
            "7.6 %"
        );

        reply(16, 17).await;
        let summary = reports::weekly_summary(store, day(29)).await.unwrap();
        assert_eq!(summary.replied, 17);
        assert_eq!(
            summary.reply_rate_status,
            Some(TargetStatus::Within),
            "8.1 %"
        );

        reply(17, 22).await;
        let summary = reports::weekly_summary(store, day(29)).await.unwrap();
        assert_eq!(summary.replied, 22);
        assert_eq!(
            summary.reply_rate_status,
            Some(TargetStatus::Above),
            "10.5 %"
        );

        // The week ending on the 30th lost the 30 sent on the 23rd, and their replies: leads 0,
        // 7, 14 and 21 of the 22 that replied were sent on the 23rd.
        let next = reports::weekly_summary(store, day(30)).await.unwrap();
        assert_eq!((next.first_messages_sent, next.replied), (180, 18));
        assert!(!next.messages_on_target);
    }
}

// --- both stores -------------------------------------------------------------------------

async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite://{}", dir.path().join("log.sqlite").display());
    let store = Store::connect(&url, upcasters()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

fn pg_store(pool: PgPool) -> Store {
    Store::Postgres(PostgresEventStore::from_pool(pool, upcasters()))
}

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            use super::*;
            $(
                #[sqlx::test(migrations = "../../migrations/postgres")]
                async fn $name(pool: PgPool) {
                    suite::$name(&pg_store(pool)).await;
                }
            )*
        }
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    suite::$name(&sqlite_store(&dir).await).await;
                }
            )*
        }
    };
}

both_stores!(
    funnel_counts_each_lead_once_per_stage_per_day,
    reply_rates_by_send_day_window,
    a_redelivered_batch_changes_nothing,
    a_rebuild_gives_the_same_numbers,
    a_forgotten_lead_still_counts_and_no_personal_data_is_kept,
    the_weekly_summary_against_the_targets,
    an_unreadable_event_is_parked_and_the_rest_still_count,
);
