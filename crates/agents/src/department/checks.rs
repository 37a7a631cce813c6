//! The invariants a run of the department must keep, checked from the event log itself (and
//! the outbox and projections it produced): no lead messaged twice, every account within its
//! caps, gap and working hours, every positive reply handed over exactly once, nobody contacted
//! after a do-not-contact, and every projection equal to a fresh replay of the log.
//!
//! The checks report violations instead of panicking, so `salesdept simulate` can print them
//! and the end-to-end tests can show all of them at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use salesdept_events::domain::account::SendAction;
use salesdept_events::domain::lead::LeadEvent;
use salesdept_events::domain::{AccountId, AccountLimits, Intent};
use salesdept_events::{Store, Subscription};
use salesdept_projections::leads::{LEADS_TABLE, dump_table, rebuild_leads};
use salesdept_projections::reports::{self, Dimension, ReportsProjection};
use salesdept_projections::sheet::SheetSync;
use serde::Serialize;

use super::summary::{LogView, RecordedSlot, read_log};
use crate::mail::MessageId;

/// What the checks need besides the log.
#[derive(Clone, Debug)]
pub struct CheckSettings {
    /// Every sending account's limits.
    pub accounts: Vec<(AccountId, AccountLimits)>,
    /// The mail outbox the hand-over mails went to (None: mails are not looked for).
    pub outbox_dir: Option<PathBuf>,
    /// The right-hand side of the hand-over mails' Message-IDs.
    pub message_id_domain: String,
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub check: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.check, self.detail)
    }
}

/// The checks' outcome: what was looked at, and what was wrong.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CheckReport {
    /// Per check, how many things it looked at (so a check that saw nothing is visible).
    pub examined: BTreeMap<&'static str, u64>,
    pub violations: Vec<Violation>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    fn violation(&mut self, check: &'static str, detail: String) {
        self.violations.push(Violation { check, detail });
    }

    fn examined(&mut self, check: &'static str, count: u64) {
        *self.examined.entry(check).or_default() += count;
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed() {
            write!(f, "all checks passed ({:?})", self.examined)
        } else {
            writeln!(f, "{} violation(s):", self.violations.len())?;
            for violation in &self.violations {
                writeln!(f, "  {violation}")?;
            }
            Ok(())
        }
    }
}

/// Why the checks could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Store(#[from] salesdept_events::StoreError),
    #[error(transparent)]
    Projection(#[from] salesdept_projections::leads::ProjectionError),
    #[error(transparent)]
    Report(#[from] salesdept_projections::reports::ReportError),
    #[error(transparent)]
    Sheet(#[from] salesdept_projections::sheet::SheetError),
    #[error(transparent)]
    Subscription(#[from] salesdept_events::SubscriptionError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Every check: the log's invariants, then the projections against fresh replays. The
/// projections must be caught up first (the department's `catch_up_all`).
pub async fn check_all(
    store: &Store,
    settings: &CheckSettings,
    sheet: Option<(&SheetSync, &Path)>,
) -> Result<CheckReport, CheckError> {
    let events = read_log(store).await?;
    let view = LogView::new(&events)?;
    let mut report = check_log(&view, settings)?;
    check_projections(store, sheet, &mut report).await?;
    Ok(report)
}

/// The invariants of the log (and the outbox), without touching the projections.
pub fn check_log(view: &LogView, settings: &CheckSettings) -> Result<CheckReport, CheckError> {
    let mut report = CheckReport::default();
    no_lead_messaged_twice(view, &mut report);
    accounts_kept_their_limits(view, settings, &mut report);
    positive_replies_handed_over_once(view, settings, &mut report)?;
    nobody_contacted_after_do_not_contact(view, &mut report);
    Ok(report)
}

fn no_lead_messaged_twice(view: &LogView, report: &mut CheckReport) {
    const CHECK: &str = "no_lead_messaged_twice";
    let mut slots_used: HashMap<uuid::Uuid, u32> = HashMap::new();
    for send in &view.sends {
        *slots_used.entry(send.slot_id).or_default() += 1;
    }
    for (slot_id, uses) in slots_used {
        if uses > 1 {
            report.violation(CHECK, format!("slot {slot_id} recorded {uses} sends"));
        }
    }
    for (lead_id, events) in &view.leads {
        let mut drafts: HashMap<uuid::Uuid, u32> = HashMap::new();
        let mut steps: HashMap<(bool, Option<u32>), u32> = HashMap::new();
        let mut invitations = 0u32;
        let mut withdrawals = 0u32;
        for (_, event) in events {
            match event {
                LeadEvent::MessageSent(sent) => {
                    report.examined(CHECK, 1);
                    *drafts.entry(sent.draft_id).or_default() += 1;
                    let follow_up =
                        sent.kind == salesdept_events::domain::lead::MessageKind::FollowUp;
                    *steps
                        .entry((follow_up, sent.follow_up_number.filter(|_| follow_up)))
                        .or_default() += 1;
                }
                LeadEvent::InvitationSent(_) => {
                    report.examined(CHECK, 1);
                    invitations += 1;
                    if invitations > withdrawals + 1 {
                        report.violation(
                            CHECK,
                            format!("lead {lead_id} was invited again while invited"),
                        );
                    }
                }
                LeadEvent::InvitationWithdrawn(_) => withdrawals += 1,
                _ => {}
            }
        }
        for (draft_id, count) in drafts {
            if count > 1 {
                report.violation(
                    CHECK,
                    format!("lead {lead_id} got draft {draft_id} {count} times"),
                );
            }
        }
        for ((follow_up, number), count) in steps {
            if count > 1 {
                let what = if follow_up {
                    format!("follow-up {}", number.unwrap_or(0))
                } else {
                    "the first message".to_owned()
                };
                report.violation(CHECK, format!("lead {lead_id} got {what} {count} times"));
            }
        }
    }
}

fn accounts_kept_their_limits(view: &LogView, settings: &CheckSettings, report: &mut CheckReport) {
    let limits: HashMap<String, &AccountLimits> = settings
        .accounts
        .iter()
        .map(|(id, limits)| (id.to_string(), limits))
        .collect();
    let mut by_account: BTreeMap<&str, Vec<&RecordedSlot>> = BTreeMap::new();
    for slot in &view.slots {
        by_account.entry(&slot.account_id).or_default().push(slot);
    }
    let slot_ids: HashSet<uuid::Uuid> = view
        .slots
        .iter()
        .filter(|slot| !slot.released)
        .map(|slot| slot.slot_id)
        .collect();
    for send in &view.sends {
        report.examined("sends_hold_a_slot", 1);
        if !slot_ids.contains(&send.slot_id) {
            report.violation(
                "sends_hold_a_slot",
                format!(
                    "a send to lead {} on {} has no unreleased slot {}",
                    send.lead_id, send.account_id, send.slot_id
                ),
            );
        }
    }
    for (account, mut slots) in by_account {
        let Some(limits) = limits.get(account) else {
            report.violation(
                "caps",
                format!("account {account} sent but is not a configured account"),
            );
            continue;
        };
        slots.sort_by_key(|slot| slot.at);
        let hours = &limits.working_hours;
        // Working hours and the gap: every slot, released or not (a released slot still was
        // an action attempted at the provider, and still counts for the gap).
        for slot in &slots {
            report.examined("working_hours", 1);
            if !hours.contains(slot.at) {
                report.violation(
                    "working_hours",
                    format!("{account} acted at {} outside its working hours", slot.at),
                );
            }
        }
        for pair in slots.windows(2) {
            report.examined("minimum_gap", 1);
            let gap = pair[1].at - pair[0].at;
            if gap < limits.min_gap {
                report.violation(
                    "minimum_gap",
                    format!(
                        "{account} acted at {} and again at {} ({} s < {} s)",
                        pair[0].at,
                        pair[1].at,
                        gap.num_seconds(),
                        limits.min_gap.num_seconds()
                    ),
                );
            }
        }
        // Caps count the slots that were not released (what may have reached LinkedIn).
        let counted: Vec<&&RecordedSlot> = slots.iter().filter(|slot| !slot.released).collect();
        let mut per_day: BTreeMap<(NaiveDate, bool), u32> = BTreeMap::new();
        for slot in &counted {
            let invitation = slot.action == SendAction::Invitation;
            *per_day
                .entry((hours.local_date(slot.at), invitation))
                .or_default() += 1;
        }
        for ((day, invitation), count) in per_day {
            report.examined("daily_caps", 1);
            let (cap, what) = if invitation {
                (limits.invitations_per_day, "invitations")
            } else {
                (limits.messages_per_day, "messages")
            };
            if count > cap {
                report.violation(
                    "daily_caps",
                    format!("{account} sent {count} {what} on {day} (cap {cap})"),
                );
            }
        }
        let invitations: Vec<_> = counted
            .iter()
            .filter(|slot| slot.action == SendAction::Invitation)
            .map(|slot| slot.at)
            .collect();
        for (index, at) in invitations.iter().enumerate() {
            report.examined("weekly_invitation_cap", 1);
            let window_start = *at - limits.invitation_window;
            let in_window = invitations[..=index]
                .iter()
                .filter(|earlier| **earlier > window_start)
                .count();
            if in_window > limits.invitations_per_window as usize {
                report.violation(
                    "weekly_invitation_cap",
                    format!(
                        "{account} had {in_window} invitations in the {} days up to {at} (cap {})",
                        limits.invitation_window.num_days(),
                        limits.invitations_per_window
                    ),
                );
            }
        }
    }
}

fn positive(intent: Intent) -> bool {
    matches!(
        intent,
        Intent::Interested | Intent::InfoRequest | Intent::Referral
    )
}

fn positive_replies_handed_over_once(
    view: &LogView,
    settings: &CheckSettings,
    report: &mut CheckReport,
) -> Result<(), CheckError> {
    const CHECK: &str = "positive_replies_handed_over_once";
    let mut expected_files = HashSet::new();
    for (lead_id, events) in &view.leads {
        let mut stopped = false;
        let mut positive_reply = false;
        let mut qualified = Vec::new();
        let mut notified = 0u32;
        for (recorded, event) in events {
            match event {
                LeadEvent::ResponseAnalysed(analysed) if positive(analysed.intent) && !stopped => {
                    positive_reply = true;
                }
                LeadEvent::DoNotContact(_) | LeadEvent::LeadForgotten(_) => stopped = true,
                LeadEvent::LeadQualified(_) => qualified.push(recorded.event_id),
                LeadEvent::HumanNotified(_) => notified += 1,
                _ => {}
            }
        }
        if positive_reply || !qualified.is_empty() {
            report.examined(CHECK, 1);
        }
        if positive_reply && qualified.len() != 1 {
            report.violation(
                CHECK,
                format!(
                    "lead {lead_id} replied positively and was qualified {} times",
                    qualified.len()
                ),
            );
        }
        if !qualified.is_empty() && notified != 1 {
            report.violation(
                CHECK,
                format!("lead {lead_id} was qualified and a human was notified {notified} times"),
            );
        }
        if notified > 0 {
            for event_id in &qualified {
                let message_id = MessageId::for_event(*event_id, &settings.message_id_domain)
                    .map_err(|error| CheckError::Io {
                        path: PathBuf::from("<message id>"),
                        source: std::io::Error::other(error.to_string()),
                    })?;
                expected_files.insert(format!("{}.eml", message_id.file_stem()));
            }
        }
    }
    let Some(outbox) = &settings.outbox_dir else {
        return Ok(());
    };
    let mut present = HashSet::new();
    let entries = std::fs::read_dir(outbox).map_err(|source| CheckError::Io {
        path: outbox.clone(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| CheckError::Io {
            path: outbox.clone(),
            source,
        })?;
        present.insert(entry.file_name().to_string_lossy().into_owned());
    }
    for file in &expected_files {
        report.examined("hand_over_mails", 1);
        if !present.contains(file) {
            report.violation(
                "hand_over_mails",
                format!("no hand-over mail {file} in the outbox"),
            );
        }
    }
    Ok(())
}

fn nobody_contacted_after_do_not_contact(view: &LogView, report: &mut CheckReport) {
    const CHECK: &str = "nobody_contacted_after_do_not_contact";
    for (lead_id, events) in &view.leads {
        let mut marked = false;
        for (recorded, event) in events {
            match event {
                LeadEvent::DoNotContact(_) => {
                    report.examined(CHECK, 1);
                    marked = true;
                }
                LeadEvent::MessageSent(_) | LeadEvent::InvitationSent(_) if marked => {
                    report.violation(
                        CHECK,
                        format!(
                            "lead {lead_id} was contacted after do-not-contact ({} at version {})",
                            recorded.event_type, recorded.stream_version
                        ),
                    );
                }
                _ => {}
            }
        }
    }
}

/// Every projection against a fresh replay of the log: the lead table against
/// [`rebuild_leads`], the report tables against a replay into emptied tables, the Sheet's file
/// against a full rewrite.
pub async fn check_projections(
    store: &Store,
    sheet: Option<(&SheetSync, &Path)>,
    report: &mut CheckReport,
) -> Result<(), CheckError> {
    // The lead table.
    let live = dump_table(store, LEADS_TABLE).await?;
    rebuild_leads(store).await?;
    let rebuilt = dump_table(store, LEADS_TABLE).await?;
    report.examined("lead_table_equals_replay", live.len() as u64);
    if live != rebuilt {
        let differing = live
            .iter()
            .zip(rebuilt.iter())
            .filter(|(a, b)| a != b)
            .count();
        report.violation(
            "lead_table_equals_replay",
            format!(
                "the live table ({} rows) differs from its rebuild ({} rows) in {differing} rows",
                live.len(),
                rebuilt.len()
            ),
        );
    }

    // The reports: every day of the log, every dimension.
    let events = read_log(store).await?;
    if let (Some(first), Some(last)) = (events.first(), events.last()) {
        let from = first.metadata.occurred_at.date_naive();
        let to = events
            .iter()
            .map(|event| event.metadata.occurred_at)
            .max()
            .unwrap_or(last.metadata.occurred_at)
            .date_naive();
        let snapshot = |store: Store| async move {
            let funnel = reports::funnel(&store, from, to).await?;
            let mut rates = Vec::new();
            for dimension in [
                Dimension::Variant,
                Dimension::Classification,
                Dimension::Account,
            ] {
                rates.push(reports::reply_rates(&store, dimension, from, to).await?);
            }
            Ok::<_, CheckError>((funnel, rates))
        };
        let live = snapshot(store.clone()).await?;
        reports::clear(store).await?;
        let replay = Subscription::new(
            format!("reports-check-{}", uuid::Uuid::new_v4()),
            store.clone(),
            std::sync::Arc::new(ReportsProjection),
        );
        replay.catch_up().await?;
        replay.release_lease().await?;
        let replayed = snapshot(store.clone()).await?;
        report.examined("reports_equal_replay", live.0.days.len() as u64);
        if live != replayed {
            report.violation(
                "reports_equal_replay",
                format!(
                    "the report tables differ from a replay: funnel {:?} vs {:?}",
                    live.0.totals, replayed.0.totals
                ),
            );
        }
    }

    // The Sheet's file.
    if let Some((sheet, path)) = sheet {
        sheet.sync().await?;
        let path = path.to_path_buf();
        let read = |path: PathBuf| async move {
            tokio::fs::read_to_string(&path)
                .await
                .map_err(|source| CheckError::Io { path, source })
        };
        let live = read(path.clone()).await?;
        sheet.replay().await?;
        let replayed = read(path).await?;
        // Rows are compared as a set: the row a lead is on is the sheet's own bookkeeping.
        let lines = |text: &str| {
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            lines.sort();
            lines
        };
        report.examined("sheet_equals_replay", live.lines().count() as u64);
        if lines(&live) != lines(&replayed) {
            report.violation(
                "sheet_equals_replay",
                format!(
                    "the synced sheet ({} lines) differs from its rewrite ({} lines)",
                    live.lines().count(),
                    replayed.lines().count()
                ),
            );
        }
    }
    Ok(())
}
