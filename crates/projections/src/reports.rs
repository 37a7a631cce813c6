//! The Sales Manager's and the dashboard's numbers, as read models of the log: the funnel per
//! day, and reply rates per message template/variant, per classification and per sending
//! account, with the weekly summary against DESIGN.md's targets (200+ messages a week, an
//! 8–10 % reply rate).
//!
//! [`ReportsProjection`] is the subscription handler (run it as [`SUBSCRIPTION`], see
//! [`subscription`]). It keeps two tables (`migrations/*/20261201000201_reports.sql`):
//!
//! - `report_funnel_stages`: one row per lead and stage, the first day the lead reached it
//!   (discovered, classified, allocated, invited, first message sent, replied, positive reply,
//!   qualified, do-not-contact), and one per follow-up number for follow-ups sent.
//! - `report_attribution`: one row per lead holding what its first message went out with (the
//!   variant, the account, the classification at send time) and whether a reply, and a positive
//!   one (Interested, InfoRequest or Referral), came after it.
//!
//! Both hold facts that are set once, never counters, so an event applied twice changes nothing
//! (a redelivered batch, a rebuild over existing rows); counts and rates are computed on read.
//! Days are the UTC date of the event's `metadata.occurred_at` (the domain clock). Reply rates
//! are per send-day cohort: the replies so far to the first messages sent in the window, so the
//! last few days of a window still grow as late replies arrive.
//!
//! No personal data is read or kept: lead ids, classifications, variants, account ids and days
//! only. A forgotten lead keeps counting, and its shredded `pii` does not change a rebuild.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{NaiveDate, TimeDelta};
use salesdept_events::domain::DomainEvent;
use salesdept_events::domain::lead::{LeadEvent, MessageKind};
use salesdept_events::domain::streams::lead_id_of;
use salesdept_events::{
    Handler, HandlerContext, HandlerError, RecordedEvent, Store, StoreError, StoreTx, Subscription,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The subscription name the reports run under.
pub const SUBSCRIPTION: &str = "reports";

/// DESIGN.md: 200+ personalised messages a week.
pub const WEEKLY_MESSAGE_TARGET: u64 = 200;

/// DESIGN.md: an 8–10 % reply rate, in whole percent so comparisons are exact.
pub const REPLY_RATE_TARGET_PERCENT: (u64, u64) = (8, 10);

/// What a report could not do.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot read a stored report row: {0}")]
    Corrupt(String),
}

/// A funnel stage: the first time a lead reaches it counts (follow-ups count per message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Discovered,
    Classified,
    Allocated,
    Invited,
    /// The first message.
    Sent,
    /// One per follow-up message sent.
    FollowUp,
    Replied,
    /// A reply analysed as Interested, InfoRequest or Referral.
    Positive,
    Qualified,
    DoNotContact,
}

impl Stage {
    pub const ALL: [Stage; 10] = [
        Self::Discovered,
        Self::Classified,
        Self::Allocated,
        Self::Invited,
        Self::Sent,
        Self::FollowUp,
        Self::Replied,
        Self::Positive,
        Self::Qualified,
        Self::DoNotContact,
    ];

    /// The name stored in `report_funnel_stages.stage`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Discovered => "discovered",
            Self::Classified => "classified",
            Self::Allocated => "allocated",
            Self::Invited => "invited",
            Self::Sent => "sent",
            Self::FollowUp => "follow_up",
            Self::Replied => "replied",
            Self::Positive => "positive",
            Self::Qualified => "qualified",
            Self::DoNotContact => "do_not_contact",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|stage| stage.as_str() == text)
    }
}

/// How many leads reached each stage (follow-ups: how many were sent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FunnelCounts {
    pub discovered: u64,
    pub classified: u64,
    pub allocated: u64,
    pub invited: u64,
    /// First messages.
    pub sent: u64,
    pub follow_ups_sent: u64,
    pub replied: u64,
    pub positive: u64,
    pub qualified: u64,
    pub do_not_contact: u64,
}

impl FunnelCounts {
    pub fn get(&self, stage: Stage) -> u64 {
        match stage {
            Stage::Discovered => self.discovered,
            Stage::Classified => self.classified,
            Stage::Allocated => self.allocated,
            Stage::Invited => self.invited,
            Stage::Sent => self.sent,
            Stage::FollowUp => self.follow_ups_sent,
            Stage::Replied => self.replied,
            Stage::Positive => self.positive,
            Stage::Qualified => self.qualified,
            Stage::DoNotContact => self.do_not_contact,
        }
    }

    fn slot(&mut self, stage: Stage) -> &mut u64 {
        match stage {
            Stage::Discovered => &mut self.discovered,
            Stage::Classified => &mut self.classified,
            Stage::Allocated => &mut self.allocated,
            Stage::Invited => &mut self.invited,
            Stage::Sent => &mut self.sent,
            Stage::FollowUp => &mut self.follow_ups_sent,
            Stage::Replied => &mut self.replied,
            Stage::Positive => &mut self.positive,
            Stage::Qualified => &mut self.qualified,
            Stage::DoNotContact => &mut self.do_not_contact,
        }
    }

    /// Every message sent: first messages and follow-ups.
    pub fn messages_sent(&self) -> u64 {
        self.sent + self.follow_ups_sent
    }
}

/// One day of the funnel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FunnelDay {
    pub day: NaiveDate,
    pub counts: FunnelCounts,
}

/// The funnel over a range of days: every day of the range (zeros included), and the totals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Funnel {
    pub days: Vec<FunnelDay>,
    pub totals: FunnelCounts,
}

/// What reply rates are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// The message template/variant of the first message (`(none)` when it had none).
    Variant,
    /// The lead's classification when its first message was sent.
    Classification,
    /// The LinkedIn account the first message went out from.
    Account,
}

impl Dimension {
    /// `variant`, `classification` or `account`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Variant => "variant",
            Self::Classification => "classification",
            Self::Account => "account",
        }
    }
}

/// The key reported for leads whose first message had no value of the dimension (a message
/// drafted before variants existed, a lead never classified).
pub const NO_KEY: &str = "(none)";

/// Reply rate of one key: first messages sent, how many got a reply after them, how many a
/// positive one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplyRateRow {
    pub key: String,
    pub sent: u64,
    pub replied: u64,
    pub positive: u64,
    /// replied / sent (0 when nothing was sent).
    pub reply_rate: f64,
    /// positive / sent (0 when nothing was sent).
    pub positive_rate: f64,
}

impl ReplyRateRow {
    fn new(key: String, sent: u64, replied: u64, positive: u64) -> Self {
        Self {
            key,
            sent,
            replied,
            positive,
            reply_rate: rate(replied, sent),
            positive_rate: rate(positive, sent),
        }
    }
}

/// One send day's cohort of one key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplyRateDay {
    pub day: NaiveDate,
    pub row: ReplyRateRow,
}

/// Where a measured rate stands against its target range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    Below,
    Within,
    Above,
}

/// The last 7 days against DESIGN.md's targets.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeeklySummary {
    /// The first day of the window (`week_ending` − 6 days).
    pub from: NaiveDate,
    /// `week_ending`, included.
    pub to: NaiveDate,
    /// First messages and follow-ups sent in the window.
    pub messages_sent: u64,
    pub first_messages_sent: u64,
    pub follow_ups_sent: u64,
    pub message_target: u64,
    pub messages_on_target: bool,
    /// Replies so far to the first messages sent in the window.
    pub replied: u64,
    pub positive: u64,
    pub reply_rate: f64,
    pub positive_rate: f64,
    /// The target range in whole percent.
    pub reply_rate_target_percent: (u64, u64),
    /// None when no first message was sent in the window.
    pub reply_rate_status: Option<TargetStatus>,
}

/// The reports subscription over `store`.
pub fn subscription(store: Store) -> Subscription {
    Subscription::new(SUBSCRIPTION, store, Arc::new(ReportsProjection))
}

/// Keeps the report tables from the log; writes in the subscription's transaction, once per
/// batch, so its rows and its checkpoint commit together.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReportsProjection;

#[async_trait]
impl Handler for ReportsProjection {
    async fn handle(
        &self,
        event: &RecordedEvent,
        context: &mut HandlerContext,
    ) -> Result<(), HandlerError> {
        self.handle_batch(std::slice::from_ref(event), context)
            .await
            .map_err(|(_, error)| error)
    }

    async fn handle_batch(
        &self,
        events: &[RecordedEvent],
        context: &mut HandlerContext,
    ) -> Result<(), (usize, HandlerError)> {
        // Decode the whole batch first: on an event that cannot be read, the ones before it are
        // still written, as the handler contract asks, and the runner retries that one alone.
        let mut facts = Vec::new();
        let mut undecodable = None;
        for (index, event) in events.iter().enumerate() {
            match facts_of(event) {
                Ok(found) => facts.extend(found),
                Err(error) => {
                    undecodable = Some((index, error));
                    break;
                }
            }
        }
        if !facts.is_empty() {
            let tx = context
                .transaction()
                .await
                .map_err(|error| (0, error.into()))?;
            write(tx, &facts).await.map_err(|error| (0, error.into()))?;
        }
        match undecodable {
            Some((index, error)) => Err((index, error.into())),
            None => Ok(()),
        }
    }
}

/// Deletes every report row, for a rebuild: then run a subscription with a fresh name (or
/// the same name with its checkpoint reset) over the log.
#[tracing::instrument(skip_all, fields(backend = store.backend()), err)]
pub async fn clear(store: &Store) -> Result<(), ReportError> {
    let mut tx = store.begin().await?;
    for sql in [
        "DELETE FROM report_funnel_stages",
        "DELETE FROM report_attribution",
    ] {
        match &mut tx {
            StoreTx::Postgres(tx) => sqlx::query(sql).execute(&mut **tx).await.map(drop)?,
            StoreTx::Sqlite(tx) => sqlx::query(sql).execute(&mut **tx).await.map(drop)?,
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The funnel from `from` to `to` (both included), by the day each lead reached each stage.
#[tracing::instrument(skip_all, fields(backend = store.backend(), %from, %to), err)]
pub async fn funnel(store: &Store, from: NaiveDate, to: NaiveDate) -> Result<Funnel, ReportError> {
    let rows: Vec<(String, String, i64)> = match store {
        Store::Postgres(store) => {
            sqlx::query_as(
                "SELECT to_char(day, 'YYYY-MM-DD'), stage, count(*) FROM report_funnel_stages \
                 WHERE day BETWEEN $1 AND $2 GROUP BY day, stage",
            )
            .bind(from)
            .bind(to)
            .fetch_all(store.pool())
            .await?
        }
        Store::Sqlite(store) => {
            sqlx::query_as(
                "SELECT day, stage, count(*) FROM report_funnel_stages \
                 WHERE day BETWEEN ?1 AND ?2 GROUP BY day, stage",
            )
            .bind(day_text(from))
            .bind(day_text(to))
            .fetch_all(store.read_pool())
            .await?
        }
    };
    let mut per_day: BTreeMap<NaiveDate, FunnelCounts> = BTreeMap::new();
    let mut totals = FunnelCounts::default();
    for (day, stage, count) in rows {
        let day = parse_day(&day)?;
        let stage = Stage::parse(&stage)
            .ok_or_else(|| ReportError::Corrupt(format!("unknown funnel stage {stage:?}")))?;
        let count = count_of(count)?;
        *per_day.entry(day).or_default().slot(stage) += count;
        *totals.slot(stage) += count;
    }
    let days = days_between(from, to)
        .map(|day| FunnelDay {
            day,
            counts: per_day.get(&day).copied().unwrap_or_default(),
        })
        .collect();
    Ok(Funnel { days, totals })
}

/// Reply rates of the first messages sent from `from` to `to` (both included), per key of
/// `dimension`, ordered by key.
#[tracing::instrument(skip_all, fields(backend = store.backend(), ?dimension, %from, %to), err)]
pub async fn reply_rates(
    store: &Store,
    dimension: Dimension,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<ReplyRateRow>, ReportError> {
    let mut per_key: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for day in reply_rates_daily(store, dimension, from, to).await? {
        let counts = per_key.entry(day.row.key).or_default();
        counts.0 += day.row.sent;
        counts.1 += day.row.replied;
        counts.2 += day.row.positive;
    }
    Ok(per_key
        .into_iter()
        .map(|(key, (sent, replied, positive))| ReplyRateRow::new(key, sent, replied, positive))
        .collect())
}

/// Reply rates per send day and key of `dimension`, from `from` to `to` (both included),
/// ordered by day then key; days without a first message sent are left out.
#[tracing::instrument(skip_all, fields(backend = store.backend(), ?dimension, %from, %to), err)]
pub async fn reply_rates_daily(
    store: &Store,
    dimension: Dimension,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<ReplyRateDay>, ReportError> {
    // The key column is chosen by a bound name in one CASE, so the SQL text is fixed.
    let dimension_name = dimension.name();
    let rows: Vec<(String, Option<String>, i64, i64, i64)> =
        match store {
            Store::Postgres(store) => {
                sqlx::query_as(
                    "SELECT to_char(sent_day, 'YYYY-MM-DD'), key, count(*), count(replied_day), \
                 count(positive_day) FROM ( \
                   SELECT sent_day, replied_day, positive_day, CASE $3 \
                     WHEN 'variant' THEN variant WHEN 'account' THEN account_id \
                     ELSE sent_classification END AS key \
                   FROM report_attribution WHERE sent_day BETWEEN $1 AND $2) AS sent \
                 GROUP BY sent_day, key",
                )
                .bind(from)
                .bind(to)
                .bind(dimension_name)
                .fetch_all(store.pool())
                .await?
            }
            Store::Sqlite(store) => sqlx::query_as(
                "SELECT sent_day, key, count(*), count(replied_day), count(positive_day) FROM ( \
                   SELECT sent_day, replied_day, positive_day, CASE ?3 \
                     WHEN 'variant' THEN variant WHEN 'account' THEN account_id \
                     ELSE sent_classification END AS key \
                   FROM report_attribution WHERE sent_day BETWEEN ?1 AND ?2) AS sent \
                 GROUP BY sent_day, key",
            )
            .bind(day_text(from))
            .bind(day_text(to))
            .bind(dimension_name)
            .fetch_all(store.read_pool())
            .await?,
        };
    let mut days = rows
        .into_iter()
        .map(|(day, key, sent, replied, positive)| {
            Ok(ReplyRateDay {
                day: parse_day(&day)?,
                row: ReplyRateRow::new(
                    key.unwrap_or_else(|| NO_KEY.to_owned()),
                    count_of(sent)?,
                    count_of(replied)?,
                    count_of(positive)?,
                ),
            })
        })
        .collect::<Result<Vec<_>, ReportError>>()?;
    days.sort_by(|a, b| (a.day, &a.row.key).cmp(&(b.day, &b.row.key)));
    Ok(days)
}

/// The 7 days ending with `week_ending` (included): messages sent and the reply rate of the
/// first messages sent, against the targets.
#[tracing::instrument(skip_all, fields(backend = store.backend(), %week_ending), err)]
pub async fn weekly_summary(
    store: &Store,
    week_ending: NaiveDate,
) -> Result<WeeklySummary, ReportError> {
    let from = week_ending - TimeDelta::days(6);
    let totals = funnel(store, from, week_ending).await?.totals;
    // Every first message has exactly one account, so the per-account rows add up to all.
    let (sent, replied, positive) = reply_rates(store, Dimension::Account, from, week_ending)
        .await?
        .into_iter()
        .fold((0, 0, 0), |(sent, replied, positive), row| {
            (
                sent + row.sent,
                replied + row.replied,
                positive + row.positive,
            )
        });
    let (low, high) = REPLY_RATE_TARGET_PERCENT;
    let reply_rate_status = (sent > 0).then(|| {
        if replied * 100 < low * sent {
            TargetStatus::Below
        } else if replied * 100 > high * sent {
            TargetStatus::Above
        } else {
            TargetStatus::Within
        }
    });
    Ok(WeeklySummary {
        from,
        to: week_ending,
        messages_sent: totals.messages_sent(),
        first_messages_sent: totals.sent,
        follow_ups_sent: totals.follow_ups_sent,
        message_target: WEEKLY_MESSAGE_TARGET,
        messages_on_target: totals.messages_sent() >= WEEKLY_MESSAGE_TARGET,
        replied,
        positive,
        reply_rate: rate(replied, sent),
        positive_rate: rate(positive, sent),
        reply_rate_target_percent: REPLY_RATE_TARGET_PERCENT,
        reply_rate_status,
    })
}

// --- the fold ------------------------------------------------------------------------------

/// What one event means to the reports.
#[derive(Clone, Debug, PartialEq)]
struct Fact {
    lead_id: Uuid,
    /// The event's version in the lead's stream: the order of the lead's facts.
    version: i64,
    day: NaiveDate,
    kind: FactKind,
}

#[derive(Clone, Debug, PartialEq)]
enum FactKind {
    /// The lead reached a stage (`seq`: the follow-up number, else 0).
    Reached {
        stage: Stage,
        seq: i32,
    },
    Classified {
        classification: &'static str,
    },
    FirstMessageSent {
        variant: Option<String>,
        account_id: String,
    },
    ReplyReceived {
        response_number: i64,
    },
    ReplyAnalysed {
        response_number: i64,
        positive: bool,
    },
}

/// The event types the reports read; the others are skipped without being decoded.
const READ_EVENT_TYPES: [&str; 9] = [
    "lead_discovered",
    "lead_classified",
    "lead_allocation",
    "invitation_sent",
    "message_sent",
    "response_received",
    "response_analysed",
    "lead_qualified",
    "do_not_contact",
];

fn facts_of(event: &RecordedEvent) -> Result<Vec<Fact>, StoreError> {
    let Some(lead_id) = lead_id_of(&event.stream_id) else {
        return Ok(Vec::new());
    };
    if !READ_EVENT_TYPES.contains(&event.event_type.as_str()) {
        return Ok(Vec::new());
    }
    let day = event.metadata.occurred_at.date_naive();
    let version = event.stream_version;
    let fact = |kind| Fact {
        lead_id,
        version,
        day,
        kind,
    };
    let reached = |stage| fact(FactKind::Reached { stage, seq: 0_i32 });
    // A discovery needs only its stream and time: its body (and its personal data) is not read.
    if event.event_type == "lead_discovered" {
        return Ok(vec![reached(Stage::Discovered)]);
    }
    Ok(match LeadEvent::from_recorded(event)? {
        LeadEvent::LeadClassified(classified) => vec![
            reached(Stage::Classified),
            fact(FactKind::Classified {
                classification: classified.classification.as_str(),
            }),
        ],
        LeadEvent::LeadAllocation(_) => vec![reached(Stage::Allocated)],
        LeadEvent::InvitationSent(_) => vec![reached(Stage::Invited)],
        LeadEvent::MessageSent(sent) => match sent.kind {
            MessageKind::Initial => vec![
                reached(Stage::Sent),
                fact(FactKind::FirstMessageSent {
                    variant: sent.variant,
                    account_id: sent.account_id.as_str().to_owned(),
                }),
            ],
            MessageKind::FollowUp => vec![fact(FactKind::Reached {
                stage: Stage::FollowUp,
                // Numbered from 1; an event without one (never written so) counts as the first.
                seq: sent
                    .follow_up_number
                    .and_then(|number| i32::try_from(number).ok())
                    .unwrap_or(1),
            })],
        },
        LeadEvent::ResponseReceived(received) => vec![
            reached(Stage::Replied),
            fact(FactKind::ReplyReceived {
                response_number: received.response_number.into(),
            }),
        ],
        LeadEvent::ResponseAnalysed(analysed) => {
            let positive = analysed.intent.is_positive();
            let mut facts = Vec::with_capacity(2);
            if positive {
                facts.push(reached(Stage::Positive));
            }
            facts.push(fact(FactKind::ReplyAnalysed {
                response_number: analysed.response_number.into(),
                positive,
            }));
            facts
        }
        LeadEvent::LeadQualified(_) => vec![reached(Stage::Qualified)],
        LeadEvent::DoNotContact(_) => vec![reached(Stage::DoNotContact)],
        _ => Vec::new(),
    })
}

/// One lead's reply attribution, as stored in `report_attribution`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
struct Attribution {
    classification: Option<String>,
    sent_day: Option<NaiveDate>,
    sent_version: Option<i64>,
    variant: Option<String>,
    account_id: Option<String>,
    sent_classification: Option<String>,
    replied_response: Option<i64>,
    replied_day: Option<NaiveDate>,
    positive_day: Option<NaiveDate>,
}

impl Attribution {
    /// Applies one fact. Everything but the latest classification is set once, so applying a
    /// fact again (a redelivery) leaves the row as it was.
    fn apply(&mut self, version: i64, day: NaiveDate, kind: &FactKind) {
        match kind {
            FactKind::Reached { .. } => {}
            FactKind::Classified { classification } => {
                self.classification = Some((*classification).to_owned());
            }
            FactKind::FirstMessageSent {
                variant,
                account_id,
            } => {
                if self.sent_day.is_none() {
                    self.sent_day = Some(day);
                    self.sent_version = Some(version);
                    self.variant = variant.clone();
                    self.account_id = Some(account_id.clone());
                    self.sent_classification = self.classification.clone();
                }
            }
            FactKind::ReplyReceived { response_number } => {
                // Only a reply after the first message counts for its rates (a reply to an
                // invitation's note, before any message, does not). "After" is by stream
                // order, so a redelivered earlier reply stays out once the send is stored.
                let after_the_message = self.sent_version.is_some_and(|sent| version > sent);
                if after_the_message && self.replied_response.is_none() {
                    self.replied_response = Some(*response_number);
                    self.replied_day = Some(day);
                }
            }
            FactKind::ReplyAnalysed {
                response_number,
                positive,
            } => {
                let after_the_message = self
                    .replied_response
                    .is_some_and(|first| *response_number >= first);
                if *positive && after_the_message && self.positive_day.is_none() {
                    self.positive_day = Some(day);
                }
            }
        }
    }
}

/// Writes a batch's facts: one statement for the stages, one read and one upsert for the
/// attribution rows of the leads the batch touched.
#[tracing::instrument(level = "debug", skip_all, fields(facts = facts.len()), err)]
async fn write(tx: &mut StoreTx, facts: &[Fact]) -> Result<(), ReportError> {
    // The first day a lead reached a stage in this batch; rows already stored keep theirs.
    let mut stages: Vec<serde_json::Value> = Vec::new();
    let mut seen: HashSet<(Uuid, Stage, i32)> = HashSet::new();
    let mut touched: Vec<Uuid> = Vec::new();
    let mut touched_once: HashSet<Uuid> = HashSet::new();
    for fact in facts {
        match &fact.kind {
            FactKind::Reached { stage, seq } => {
                if seen.insert((fact.lead_id, *stage, *seq)) {
                    stages.push(serde_json::json!({
                        "lead_id": fact.lead_id,
                        "stage": stage.as_str(),
                        "seq": seq,
                        "day": day_text(fact.day),
                    }));
                }
            }
            _ => {
                if touched_once.insert(fact.lead_id) {
                    touched.push(fact.lead_id);
                }
            }
        }
    }
    if !stages.is_empty() {
        insert_stages(tx, &serde_json::Value::Array(stages).to_string()).await?;
    }
    if touched.is_empty() {
        return Ok(());
    }
    let before = load_attributions(tx, &touched).await?;
    let mut after = before.clone();
    for fact in facts {
        if !matches!(fact.kind, FactKind::Reached { .. }) {
            after
                .entry(fact.lead_id)
                .or_default()
                .apply(fact.version, fact.day, &fact.kind);
        }
    }
    let changed: Vec<serde_json::Value> = after
        .iter()
        .filter(|(lead_id, row)| before.get(lead_id) != Some(row))
        .map(|(lead_id, row)| {
            serde_json::json!({
                "lead_id": lead_id,
                "classification": row.classification,
                "sent_day": row.sent_day.map(day_text),
                "sent_version": row.sent_version,
                "variant": row.variant,
                "account_id": row.account_id,
                "sent_classification": row.sent_classification,
                "replied_response": row.replied_response,
                "replied_day": row.replied_day.map(day_text),
                "positive_day": row.positive_day.map(day_text),
            })
        })
        .collect();
    if !changed.is_empty() {
        upsert_attributions(tx, &serde_json::Value::Array(changed).to_string()).await?;
    }
    Ok(())
}

async fn insert_stages(tx: &mut StoreTx, rows: &str) -> Result<(), ReportError> {
    match tx {
        StoreTx::Postgres(tx) => {
            sqlx::query(
                "INSERT INTO report_funnel_stages (lead_id, stage, seq, day) \
                 SELECT lead_id, stage, seq, day FROM jsonb_to_recordset($1::jsonb) \
                 AS r(lead_id uuid, stage text, seq int, day date) \
                 ON CONFLICT (lead_id, stage, seq) DO NOTHING",
            )
            .bind(rows)
            .execute(&mut **tx)
            .await?;
        }
        StoreTx::Sqlite(tx) => {
            // `WHERE true` keeps SQLite from reading ON CONFLICT as a join constraint.
            sqlx::query(
                "INSERT INTO report_funnel_stages (lead_id, stage, seq, day) \
                 SELECT json_extract(value, '$.lead_id'), json_extract(value, '$.stage'), \
                 json_extract(value, '$.seq'), json_extract(value, '$.day') \
                 FROM json_each(?1) WHERE true \
                 ON CONFLICT (lead_id, stage, seq) DO NOTHING",
            )
            .bind(rows)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

type AttributionRow = (
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

async fn load_attributions(
    tx: &mut StoreTx,
    lead_ids: &[Uuid],
) -> Result<HashMap<Uuid, Attribution>, ReportError> {
    let rows: Vec<AttributionRow> = match tx {
        StoreTx::Postgres(tx) => {
            sqlx::query_as(
                "SELECT lead_id::text, classification, to_char(sent_day, 'YYYY-MM-DD'), \
                 sent_version, variant, account_id, sent_classification, replied_response::bigint, \
                 to_char(replied_day, 'YYYY-MM-DD'), to_char(positive_day, 'YYYY-MM-DD') \
                 FROM report_attribution WHERE lead_id = ANY($1)",
            )
            .bind(lead_ids)
            .fetch_all(&mut **tx)
            .await?
        }
        StoreTx::Sqlite(tx) => {
            let ids = serde_json::to_string(lead_ids)
                .map_err(|error| ReportError::Corrupt(error.to_string()))?;
            sqlx::query_as(
                "SELECT lead_id, classification, sent_day, sent_version, variant, account_id, \
                 sent_classification, replied_response, replied_day, positive_day \
                 FROM report_attribution WHERE lead_id IN (SELECT value FROM json_each(?1))",
            )
            .bind(ids)
            .fetch_all(&mut **tx)
            .await?
        }
    };
    let optional_day = |text: Option<String>| text.as_deref().map(parse_day).transpose();
    rows.into_iter()
        .map(|row| {
            let lead_id = Uuid::parse_str(&row.0)
                .map_err(|error| ReportError::Corrupt(format!("lead id {:?}: {error}", row.0)))?;
            Ok((
                lead_id,
                Attribution {
                    classification: row.1,
                    sent_day: optional_day(row.2)?,
                    sent_version: row.3,
                    variant: row.4,
                    account_id: row.5,
                    sent_classification: row.6,
                    replied_response: row.7,
                    replied_day: optional_day(row.8)?,
                    positive_day: optional_day(row.9)?,
                },
            ))
        })
        .collect()
}

async fn upsert_attributions(tx: &mut StoreTx, rows: &str) -> Result<(), ReportError> {
    match tx {
        StoreTx::Postgres(tx) => {
            sqlx::query(
                "INSERT INTO report_attribution (lead_id, classification, sent_day, \
                 sent_version, variant, account_id, sent_classification, replied_response, \
                 replied_day, positive_day) \
                 SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(lead_id uuid, \
                 classification text, sent_day date, sent_version bigint, variant text, \
                 account_id text, \
                 sent_classification text, replied_response int, replied_day date, \
                 positive_day date) \
                 ON CONFLICT (lead_id) DO UPDATE SET classification = EXCLUDED.classification, \
                 sent_day = EXCLUDED.sent_day, sent_version = EXCLUDED.sent_version, \
                 variant = EXCLUDED.variant, \
                 account_id = EXCLUDED.account_id, \
                 sent_classification = EXCLUDED.sent_classification, \
                 replied_response = EXCLUDED.replied_response, \
                 replied_day = EXCLUDED.replied_day, positive_day = EXCLUDED.positive_day",
            )
            .bind(rows)
            .execute(&mut **tx)
            .await?;
        }
        StoreTx::Sqlite(tx) => {
            sqlx::query(
                "INSERT INTO report_attribution (lead_id, classification, sent_day, \
                 sent_version, variant, account_id, sent_classification, replied_response, \
                 replied_day, positive_day) \
                 SELECT json_extract(value, '$.lead_id'), json_extract(value, '$.classification'), \
                 json_extract(value, '$.sent_day'), json_extract(value, '$.sent_version'), \
                 json_extract(value, '$.variant'), \
                 json_extract(value, '$.account_id'), json_extract(value, '$.sent_classification'), \
                 json_extract(value, '$.replied_response'), json_extract(value, '$.replied_day'), \
                 json_extract(value, '$.positive_day') FROM json_each(?1) WHERE true \
                 ON CONFLICT (lead_id) DO UPDATE SET classification = excluded.classification, \
                 sent_day = excluded.sent_day, sent_version = excluded.sent_version, \
                 variant = excluded.variant, \
                 account_id = excluded.account_id, \
                 sent_classification = excluded.sent_classification, \
                 replied_response = excluded.replied_response, \
                 replied_day = excluded.replied_day, positive_day = excluded.positive_day",
            )
            .bind(rows)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

// --- helpers -------------------------------------------------------------------------------

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn parse_day(text: &str) -> Result<NaiveDate, ReportError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|error| ReportError::Corrupt(format!("day {text:?}: {error}")))
}

fn count_of(count: i64) -> Result<u64, ReportError> {
    u64::try_from(count).map_err(|_| ReportError::Corrupt(format!("negative count {count}")))
}

fn days_between(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |day| *day <= to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn first_message(variant: &str) -> FactKind {
        FactKind::FirstMessageSent {
            variant: Some(variant.into()),
            account_id: "primary".into(),
        }
    }

    fn classified(classification: &'static str) -> FactKind {
        FactKind::Classified { classification }
    }

    fn received(response_number: i64) -> FactKind {
        FactKind::ReplyReceived { response_number }
    }

    fn analysed(response_number: i64, positive: bool) -> FactKind {
        FactKind::ReplyAnalysed {
            response_number,
            positive,
        }
    }

    /// Applies (stream version, day, fact) in order.
    fn apply_all(row: &mut Attribution, facts: &[(i64, &str, FactKind)]) {
        for (version, on, kind) in facts {
            row.apply(*version, day(on), kind);
        }
    }

    #[test]
    fn stage_names_round_trip() {
        for stage in Stage::ALL {
            assert_eq!(Stage::parse(stage.as_str()), Some(stage));
        }
        assert_eq!(Stage::parse("closed"), None);
    }

    #[test]
    fn the_send_freezes_the_attribution_and_a_redelivery_changes_nothing() {
        let facts = [
            (1, "2026-11-23", classified("Sponsor")),
            (2, "2026-11-24", first_message("sponsor-a")),
            (3, "2026-11-25", classified("Speaker")),
            (4, "2026-11-25", first_message("sponsor-b")),
            (5, "2026-11-26", received(1)),
            (6, "2026-11-27", analysed(1, true)),
        ];
        let mut row = Attribution::default();
        apply_all(&mut row, &facts);
        let expected = Attribution {
            classification: Some("Speaker".into()),
            sent_day: Some(day("2026-11-24")),
            sent_version: Some(2),
            variant: Some("sponsor-a".into()),
            account_id: Some("primary".into()),
            sent_classification: Some("Sponsor".into()),
            replied_response: Some(1),
            replied_day: Some(day("2026-11-26")),
            positive_day: Some(day("2026-11-27")),
        };
        assert_eq!(row, expected);
        apply_all(&mut row, &facts);
        assert_eq!(row, expected, "applying the facts again changes nothing");
    }

    #[test]
    fn a_reply_before_the_first_message_does_not_count_for_its_rates() {
        let facts = [
            (1, "2026-11-23", received(1)),
            (2, "2026-11-23", analysed(1, true)),
            (3, "2026-11-24", first_message("speaker-a")),
        ];
        let mut row = Attribution::default();
        apply_all(&mut row, &facts);
        assert_eq!((row.replied_day, row.positive_day), (None, None));
        // Redelivered once the send is stored: still before it.
        apply_all(&mut row, &facts);
        assert_eq!((row.replied_day, row.positive_day), (None, None));
        apply_all(
            &mut row,
            &[
                (4, "2026-11-25", received(2)),
                // A late analysis of the earlier reply is not a positive reply to the message.
                (5, "2026-11-25", analysed(1, true)),
            ],
        );
        assert_eq!(row.replied_day, Some(day("2026-11-25")));
        assert_eq!(row.positive_day, None);
        apply_all(&mut row, &[(6, "2026-11-26", analysed(2, true))]);
        assert_eq!(row.positive_day, Some(day("2026-11-26")));
    }

    #[test]
    fn rates_of_nothing_are_zero() {
        assert_eq!(rate(0, 0), 0.0);
        assert_eq!(rate(1, 4), 0.25);
        assert_eq!(
            days_between(day("2026-11-30"), day("2026-12-02")).collect::<Vec<_>>(),
            vec![day("2026-11-30"), day("2026-12-01"), day("2026-12-02")]
        );
        assert_eq!(
            days_between(day("2026-12-02"), day("2026-12-01")).count(),
            0
        );
    }
}
