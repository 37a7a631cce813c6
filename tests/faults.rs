//! The fault-injection suite on PostgreSQL, part one: the process killed at every step of the
//! send path. Every case checks, from the log and from what the provider itself received, that
//! nothing was lost and nothing doubled.

use chrono::TimeDelta;
use salesdept_e2e::send_crash::{SendCrash, SendKind, SendStep};
use salesdept_e2e::{World, start};
use salesdept_events::Store;
use salesdept_events::domain;
use salesdept_events::store::PostgresEventStore;

const SEED: u64 = 20_260_105;
const PEOPLE: u32 = 2_000;
const ACCOUNTS: u32 = 2;
const LEADS_PER_DAY: u32 = 20;
/// Long enough for first messages to follow accepted invitations.
const DAYS: i64 = 2;

fn postgres(pool: sqlx::PgPool) -> Store {
    Store::Postgres(PostgresEventStore::from_pool(pool, domain::upcasters()))
}

/// Every check of the log and the projections, what the provider received against the log, and
/// no intent left without its outcome.
async fn assert_nothing_lost_or_doubled(world: &World, case: &str) {
    let checks = world.check().await;
    assert!(checks.passed(), "{case}: {checks}");
    let summary = world.summary().await;
    assert!(summary.invitations_sent > 0, "{case}: invitations went out");
    let problems = world.provider_problems(&summary);
    assert!(problems.is_empty(), "{case}: {problems:#?}");
    let lost = world.intents_without_outcome().await;
    assert!(lost.is_empty(), "{case}: {lost:#?}");
}

/// How often the log records the send the provider gave `provider_message_id`.
async fn recorded(world: &World, provider_message_id: &str) -> usize {
    salesdept_agents::department::summary::read_log(&world.store)
        .await
        .unwrap()
        .iter()
        .filter(|event| {
            matches!(
                event.event_type.as_str(),
                "message_sent" | "invitation_sent"
            ) && event.data["provider_message_id"].as_str() == Some(provider_message_id)
        })
        .count()
}

/// Runs one row of the send-path table: the crashes of successive departments on one store,
/// the last department running to the end without one.
async fn kill_and_restart(pool: sqlx::PgPool, case: &str, crashes: Vec<SendCrash>) {
    let until = start() + TimeDelta::days(DAYS);
    let world = World::new(postgres(pool), SEED, PEOPLE, ACCOUNTS, LEADS_PER_DAY);
    for crash in &crashes {
        world.run_until_crash(crash, until).await;
        assert!(world.clock_now() < until, "{case}: crashed in time");
    }
    let department = world.department(None).await;
    world.run(&department, until).await;
    assert_nothing_lost_or_doubled(&world, case).await;
    let first = &crashes[0];
    if first.step != SendStep::IntentRecorded {
        let cut_off = first.cut_off().expect("the provider took the send");
        assert_eq!(
            recorded(&world, &cut_off).await,
            1,
            "{case}: the send {cut_off} is recorded exactly once"
        );
    }
}

/// The send-path table: each row kills the department at one step of the send path, restarts
/// it on the same log and the same provider, and checks that the send concerned is recorded
/// exactly once, every intent has its outcome and every log invariant holds.
macro_rules! send_path_cases {
    ($($name:ident: $($crash:expr),+;)+) => {$(
        #[sqlx::test(migrations = "migrations/postgres")]
        async fn $name(pool: sqlx::PgPool) {
            kill_and_restart(pool, stringify!($name), vec![$($crash),+]).await;
        }
    )+};
}

send_path_cases! {
    kill_after_the_invitation_intent_before_the_provider:
        SendCrash::new(SendStep::IntentRecorded, SendKind::Invitation, 7);
    kill_after_the_provider_took_the_invitation_before_its_event:
        SendCrash::new(SendStep::ProviderAccepted, SendKind::Invitation, 7);
    kill_after_the_invitation_event_before_the_next_call:
        SendCrash::new(SendStep::OutcomeRecorded, SendKind::Invitation, 7);
    kill_after_the_message_intent_before_the_provider:
        SendCrash::new(SendStep::IntentRecorded, SendKind::Message, 2);
    kill_after_the_provider_took_the_message_before_its_event:
        SendCrash::new(SendStep::ProviderAccepted, SendKind::Message, 2);
    kill_after_the_message_event_before_the_next_call:
        SendCrash::new(SendStep::OutcomeRecorded, SendKind::Message, 2);
    kill_again_while_the_restart_reconciles_the_cut_off_message:
        SendCrash::new(SendStep::ProviderAccepted, SendKind::Message, 2),
        SendCrash::new(SendStep::Reconciling, SendKind::Message, 0);
}
