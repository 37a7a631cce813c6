//! Lead table rebuild benchmark against the local PostgreSQL: generates realistic lead journeys
//! (10 events a lead, appended in three multi-event appends per lead, in waves so the log
//! interleaves leads as a real one does), with the personal-data vault on as in production,
//! then times `rebuild_leads` and reports events/s, wall time and peak memory.
//!
//! Run: `cargo run --release -p salesdept-projections --bin bench-rebuild [-- --leads N]`
//! (default 100,000 leads = 1,000,000 events). `DATABASE_URL` names the server; a scratch
//! database is created and dropped.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use salesdept_events::domain::lead::{
    FollowUpScheduled, LeadAllocation, LeadClassified, LeadDiscovered, LeadEvent, LeadQualified,
    LeadSource, MessageDrafted, MessageKind, MessageSent, NoteAdded, Priority,
    QualityScoreCalculated, ResponseAnalysed, ResponseReceived,
};
use salesdept_events::domain::{
    AccountId, Classification, Confidence, DomainEvent, Intent, LinkedInUrl, Pii, QualityScore,
    Sentiment, lead_stream, upcasters,
};
use salesdept_events::pii_vault::{MasterKey, PiiVault};
use salesdept_events::store::postgres::{PostgresEventStore, PostgresOptions};
use salesdept_events::{Actor, EventStore, ExpectedVersion, Metadata, NewEvent, Store};
use salesdept_projections::leads::{RebuildOptions, rebuild_leads_with};
use sqlx::Executor;
use sqlx::postgres::{PgConnectOptions, PgPool};
use uuid::Uuid;

const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const WRITERS: usize = 8;

struct Args {
    leads: usize,
    batch_size: i64,
}

fn parse_args() -> Args {
    let mut args = Args {
        leads: 100_000,
        batch_size: RebuildOptions::default().batch_size,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        let mut value = || {
            iter.next()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("{arg} needs a number"))
        };
        match arg.as_str() {
            "--leads" => args.leads = value(),
            "--batch" => args.batch_size = value() as i64,
            "--bench" => {} // passed by `cargo bench`
            other => panic!("unknown argument {other}; use --leads N, --batch N"),
        }
    }
    args
}

/// A `/proc/self/status` figure in kB (VmHWM: peak resident set; VmRSS: now).
fn proc_status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix(field)?
                    .trim_start_matches(':')
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

fn metadata(actor: &Actor, at: DateTime<Utc>, correlation: Uuid) -> Metadata {
    Metadata::new(actor.clone(), at).with_correlation(correlation)
}

/// One lead's journey in three appends: discovery, first outreach, and then a reply handled or
/// a follow-up sent.
fn journey(n: usize, start: DateTime<Utc>) -> (Uuid, [Vec<NewEvent>; 3]) {
    // Ids derive from the lead's number, so each wave rebuilds the same lead's journey.
    let lead_id = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("lead-{n}").as_bytes());
    let correlation = Uuid::new_v5(&lead_id, b"correlation");
    let finder = Actor::agent("lead_finder");
    let manager = Actor::agent("sales_manager");
    let outreach = Actor::agent("outreach");
    let day = start + TimeDelta::minutes((n % 10_000) as i64);
    let url = LinkedInUrl::parse(&format!("https://www.linkedin.com/in/person-{n}")).unwrap();
    let speaker = n % 5 < 3;
    let events = |list: Vec<(LeadEvent, &Actor, i64)>| -> Vec<NewEvent> {
        list.into_iter()
            .map(|(event, actor, minutes)| {
                event.to_new_event(metadata(
                    actor,
                    day + TimeDelta::minutes(minutes),
                    correlation,
                ))
            })
            .collect()
    };
    let discovery = events(vec![
        (
            LeadEvent::LeadDiscovered(LeadDiscovered {
                lead_id,
                position: if speaker { "CTO" } else { "VP Marketing" }.into(),
                company: format!("Company {}", n % 5000),
                company_size: Some("51-200".into()),
                industry: Some("Software".into()),
                is_connection: true,
                source: LeadSource::Search,
                search_id: None,
                import_format: None,
                url_hash: url.hash(),
                pii: Pii {
                    name: Some(format!("Person {n}")),
                    linkedin_url: Some(url),
                    headline: Some("Building distributed databases; speaker at QCon".into()),
                    ..Pii::default()
                },
            }),
            &finder,
            0,
        ),
        (
            LeadEvent::LeadClassified(LeadClassified {
                classification: if speaker {
                    Classification::Speaker
                } else {
                    Classification::Sponsor
                },
                confidence: Confidence::parse(0.9).unwrap(),
                manual: false,
                pii: Pii::rationale("public talks and open source work"),
            }),
            &finder,
            1,
        ),
        (
            LeadEvent::QualityScoreCalculated(QualityScoreCalculated {
                score: QualityScore::parse(1.0 + (n % 90) as f64 / 10.0).unwrap(),
                factors: Default::default(),
                manual: false,
                pii: Pii::default(),
            }),
            &finder,
            1,
        ),
    ]);
    let draft_id = Uuid::new_v4();
    let account = AccountId::parse("primary").unwrap();
    let sent_at = day + TimeDelta::days(1);
    let outreach_events = events(vec![
        (
            LeadEvent::LeadAllocation(LeadAllocation {
                assigned_to: "outreach".into(),
                priority: Priority::High,
                reason: "high quality speaker".into(),
            }),
            &manager,
            60 * 24 - 60,
        ),
        (
            LeadEvent::MessageDrafted(MessageDrafted {
                draft_id,
                kind: MessageKind::Initial,
                follow_up_number: None,
                variant: None,
                pii: Pii::message(format!("Hi Person {n}, your talk on consensus was great.")),
            }),
            &outreach,
            60 * 24 - 30,
        ),
        (
            LeadEvent::MessageSent(MessageSent {
                account_id: account.clone(),
                kind: MessageKind::Initial,
                provider_message_id: format!("m-{n}"),
                draft_id,
                slot_id: Uuid::new_v4(),
                follow_up_number: None,
                variant: None,
                sent_at,
                pii: Pii::message(format!("Hi Person {n}, your talk on consensus was great.")),
            }),
            &outreach,
            60 * 24,
        ),
        (
            LeadEvent::FollowUpScheduled(FollowUpScheduled {
                follow_up_number: 1,
                due_at: sent_at + TimeDelta::days(5),
                not_before: None,
            }),
            &outreach,
            60 * 24,
        ),
    ]);
    let last = if n.is_multiple_of(10) {
        events(vec![
            (
                LeadEvent::ResponseReceived(ResponseReceived {
                    response_number: 1,
                    provider_message_id: None,
                    received_at: sent_at + TimeDelta::hours(3),
                    pii: Pii::reply("Sounds great, tell me more"),
                }),
                &outreach,
                60 * 27,
            ),
            (
                LeadEvent::ResponseAnalysed(ResponseAnalysed {
                    response_number: 1,
                    sentiment: Sentiment::Positive,
                    intent: Intent::Interested,
                    confidence: Confidence::parse(0.8).unwrap(),
                    pii: Pii::default(),
                }),
                &manager,
                60 * 27 + 5,
            ),
            (
                LeadEvent::LeadQualified(LeadQualified {
                    response_number: 1,
                    intent: Intent::Interested,
                    assigned_to: "alice".into(),
                }),
                &manager,
                60 * 27 + 5,
            ),
        ])
    } else {
        let follow_up = Uuid::new_v4();
        events(vec![
            (
                LeadEvent::MessageDrafted(MessageDrafted {
                    draft_id: follow_up,
                    kind: MessageKind::FollowUp,
                    follow_up_number: Some(1),
                    variant: None,
                    pii: Pii::message("Just following up"),
                }),
                &outreach,
                60 * 24 * 6,
            ),
            (
                LeadEvent::MessageSent(MessageSent {
                    account_id: account,
                    kind: MessageKind::FollowUp,
                    provider_message_id: format!("f-{n}"),
                    draft_id: follow_up,
                    slot_id: Uuid::new_v4(),
                    follow_up_number: Some(1),
                    variant: None,
                    sent_at: sent_at + TimeDelta::days(5),
                    pii: Pii::message("Just following up"),
                }),
                &outreach,
                60 * 24 * 6,
            ),
            (
                LeadEvent::NoteAdded(NoteAdded {
                    pii: Pii::note("met at the meetup"),
                }),
                &Actor::human("alice"),
                60 * 24 * 6 + 10,
            ),
        ])
    };
    (lead_id, [discovery, outreach_events, last])
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("salesdept_bench_rebuild_{}", std::process::id());
    let admin = PgPool::connect(&server)
        .await
        .expect("connect to DATABASE_URL");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&admin)
        .await
        .unwrap();
    let fsync: String = sqlx::query_scalar("SHOW fsync")
        .fetch_one(&admin)
        .await
        .unwrap();
    println!(
        "PostgreSQL {version}, fsync={fsync}, {} cores; {} leads",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.leads
    );
    let connect = PgConnectOptions::from_str(&server).unwrap().database(&name);
    let pg = PostgresEventStore::connect_with(
        connect,
        PostgresOptions {
            max_connections: 12,
            ..PostgresOptions::default()
        },
        upcasters(),
    )
    .await
    .unwrap();
    pg.migrate().await.unwrap();
    let store = Store::Postgres(pg);
    store.enable_pii_vault(Arc::new(PiiVault::new(
        MasterKey::from_base64(MASTER_KEY).unwrap(),
    )));

    // Generate: three waves (discovery of every lead, then outreach, then replies/follow-ups),
    // each spread over concurrent writers.
    let generated = Instant::now();
    let start: DateTime<Utc> = "2026-11-02T09:00:00Z".parse().unwrap();
    let appended = Arc::new(AtomicU64::new(0));
    let lead_ids: Arc<Vec<Uuid>> = {
        let mut ids = Vec::with_capacity(args.leads);
        for wave in 0..3 {
            let mut tasks = Vec::new();
            for writer in 0..WRITERS {
                let store = store.clone();
                let appended = appended.clone();
                let total = args.leads;
                tasks.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    for n in (writer..total).step_by(WRITERS) {
                        let (lead_id, mut appends) = journey(n, start);
                        let events = std::mem::take(&mut appends[wave]);
                        let expected = match wave {
                            0 => ExpectedVersion::NoStream,
                            1 => ExpectedVersion::Exact(3),
                            _ => ExpectedVersion::Exact(7),
                        };
                        let count = events.len() as u64;
                        store
                            .append(&lead_stream(lead_id), expected, events)
                            .await
                            .expect("append");
                        appended.fetch_add(count, Ordering::Relaxed);
                        mine.push(lead_id);
                    }
                    mine
                }));
            }
            for task in tasks {
                let mine = task.await.unwrap();
                if wave == 0 {
                    ids.extend(mine);
                }
            }
            eprintln!(
                "wave {} appended; {} events in {:.1} s",
                wave + 1,
                appended.load(Ordering::Relaxed),
                generated.elapsed().as_secs_f64()
            );
        }
        Arc::new(ids)
    };
    let events = appended.load(Ordering::Relaxed);
    let generate_seconds = generated.elapsed().as_secs_f64();
    println!(
        "generated {events} events over {} leads in {generate_seconds:.1} s ({:.0} events/s appended)",
        lead_ids.len(),
        events as f64 / generate_seconds
    );

    // Let autovacuum's analyse of the fresh table not skew the run: analyse now.
    if let Store::Postgres(pg) = &store {
        sqlx::query("VACUUM ANALYZE events")
            .execute(pg.pool())
            .await
            .unwrap();
    }

    // For attribution: one plain pass over the whole log through the store (decode, upcast and
    // open the personal data), the rebuild's reading half.
    let read_started = Instant::now();
    let mut after = salesdept_events::Checkpoint::START;
    let mut read = 0u64;
    loop {
        let batch = store.read_all(after, args.batch_size).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = last.checkpoint();
        read += batch.len() as u64;
    }
    let read_seconds = read_started.elapsed().as_secs_f64();
    println!(
        "read_all alone: {read} events in {read_seconds:.2} s = {:.0} events/s",
        read as f64 / read_seconds
    );

    // Reset the peak-RSS counter (Linux: writing 5 to clear_refs), so VmHWM covers the rebuild.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let hwm_before = proc_status_kb("VmHWM");
    let rss_before = proc_status_kb("VmRSS");
    let peak_sampled = Arc::new(AtomicU64::new(rss_before));
    let sampler = {
        let peak = peak_sampled.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(proc_status_kb("VmRSS"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let options = RebuildOptions {
        batch_size: args.batch_size,
        ..RebuildOptions::default()
    };
    let mut rss_at_quarters = Vec::new();
    let report = rebuild_leads_with(&store, options, |read| {
        let quarter = events / 4;
        if quarter > 0 && read / quarter > rss_at_quarters.len() as u64 {
            rss_at_quarters.push(proc_status_kb("VmRSS"));
        }
    })
    .await
    .expect("rebuild");
    sampler.abort();
    let hwm_after = proc_status_kb("VmHWM");
    let seconds = report.elapsed.as_secs_f64();
    println!(
        "rebuild_leads: {} events -> {} rows in {seconds:.2} s wall = {:.0} events/s (batch {})",
        report.events,
        report.leads,
        report.events as f64 / seconds,
        args.batch_size
    );
    println!(
        "memory: VmRSS before {} MB; VmHWM before {} MB{}, after {} MB; sampled peak RSS {} MB; RSS at each quarter of the log {:?} MB",
        rss_before / 1024,
        hwm_before / 1024,
        if reset { " (reset)" } else { " (not reset)" },
        hwm_after / 1024,
        peak_sampled.load(Ordering::Relaxed) / 1024,
        rss_at_quarters
            .iter()
            .map(|kb| kb / 1024)
            .collect::<Vec<_>>()
    );
    println!(
        "target: <= 15 s for 1,000,000 events: {}",
        if report.events >= 1_000_000 {
            if seconds <= 15.0 { "met" } else { "NOT met" }
        } else {
            "not measured (fewer events; scale with --leads)"
        }
    );
    assert_eq!(report.leads as usize, lead_ids.len(), "one row per lead");

    store.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .await
        .unwrap();
}
