//! The daily coordination: the day's search request, then the allocation.
//!
//! [`plan_allocation`] is the pure rule: rank the new, classified and scored leads — quality at
//! or above the priority score first, then down to the minimum — fill the strategy's
//! Speaker/Sponsor mix, never more than the day's target nor than the first contacts the
//! accounts can still make today (an invitation for a person who is not a connection, a message
//! for one who is), and say why for every lead, chosen or not.
//!
//! [`coordinate`] runs it against the log. Every step is idempotent per day: the search has a
//! deterministic id (a second request is refused by the search stream's rules), every
//! `lead_allocation` is a step of the day's coordination id (a lead already allocated is
//! refused by its stream's rules), and the day's target counts the allocations this day's
//! coordination already made — so a second run, or a run after a crash midway, allocates only
//! what the day still lacks. Leads allocated earlier and not yet contacted hold their share of
//! the accounts' capacity.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{Datelike, NaiveDate, TimeDelta};
use salesdept_events::domain::department::{
    CoordinationCompleted, DepartmentCommand, UncertainDecision,
};
use salesdept_events::domain::lead::{LeadCommand, Priority};
use salesdept_events::domain::search::SearchCommand;
use salesdept_events::domain::{
    AccountState, Classification, DomainError, LeadState, LeadStatus, SendAction, account_stream,
    lead_stream, search_stream,
};
use salesdept_events::store::{EventCursor, EventOrder, EventQuery};
use salesdept_events::{Actor, Checkpoint, EventStore, RecordedEvent, StoreError};
use salesdept_projections::leads::{LeadFilter, LeadOrder, Page, list_leads};
use uuid::Uuid;

use super::{
    ManagerError, ReadModels, SALES_MANAGER, SalesManager, coordination_id, search_id, utc_day,
};
use crate::llm::LlmPort;

/// A lead that may be allocated: new, classified and scored.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub lead_id: Uuid,
    pub classification: Classification,
    pub score: f64,
    /// A connection gets a message as first contact; anyone else an invitation.
    pub is_connection: bool,
}

/// First contacts the accounts can still make today, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capacity {
    pub invitations: u32,
    pub messages: u32,
}

impl Capacity {
    pub fn total(&self) -> u32 {
        self.invitations.saturating_add(self.messages)
    }

    fn pool(&mut self, is_connection: bool) -> &mut u32 {
        if is_connection {
            &mut self.messages
        } else {
            &mut self.invitations
        }
    }
}

/// A lead chosen today, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct AllocatedLead {
    pub lead_id: Uuid,
    pub classification: Classification,
    pub score: f64,
    pub priority: Priority,
    /// Written into the `lead_allocation` event: no personal data.
    pub reason: String,
}

/// A lead left out today, and why (for the report's self-review).
#[derive(Clone, Debug, PartialEq)]
pub struct NotSelected {
    pub lead_id: Uuid,
    pub reason: String,
}

/// What [`plan_allocation`] decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub selected: Vec<AllocatedLead>,
    pub not_selected: Vec<NotSelected>,
    /// Places for speakers and sponsors in this plan.
    pub speaker_places: u32,
    pub sponsor_places: u32,
    /// `daily_allocation` (the target was reached), `capacity` (the accounts are full) or
    /// `candidates` (too few allocatable leads).
    pub bound_by: String,
}

/// The rule's inputs besides the candidates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanLimits {
    /// Leads still to allocate today.
    pub target: u32,
    pub capacity: Capacity,
    pub speaker_share: f64,
    /// At or above: allocated first.
    pub priority_score: f64,
    /// Below: never allocated.
    pub min_score: f64,
    /// Allocated earlier today by this day's coordination (so the mix holds over reruns).
    pub already_speakers: u32,
    pub already_sponsors: u32,
}

/// Ranks and chooses (see the module documentation). Deterministic: ties are broken by lead id.
pub fn plan_allocation(candidates: &[Candidate], limits: PlanLimits) -> Plan {
    let mut capacity = limits.capacity;
    let budget = limits.target.min(capacity.total());
    let already = limits.already_speakers + limits.already_sponsors;
    let wanted_speakers = (f64::from(already + budget) * limits.speaker_share).round() as u32;
    let speaker_places = wanted_speakers
        .saturating_sub(limits.already_speakers)
        .min(budget);
    let sponsor_places = budget - speaker_places;
    let tier = |candidate: &Candidate| u8::from(candidate.score < limits.priority_score);

    let mut eligible: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.classification != Classification::Other && c.score >= limits.min_score)
        .collect();
    eligible.sort_by(|a, b| {
        tier(a)
            .cmp(&tier(b))
            .then(b.score.total_cmp(&a.score))
            .then(a.lead_id.cmp(&b.lead_id))
    });

    let mut selected: Vec<AllocatedLead> = Vec::new();
    let mut chosen: HashSet<Uuid> = HashSet::new();
    let mut out_of_pool: HashSet<Uuid> = HashSet::new();
    let mut taken = [0_u32; 2];
    let class_index = |c: Classification| usize::from(c == Classification::Sponsor);
    let places = [speaker_places, sponsor_places];

    // Quality tier by tier, each class within its places; then whatever budget is left (one
    // class had too few leads) goes to the best remaining leads of either class.
    for pass in 0..3_u8 {
        for candidate in &eligible {
            if selected.len() as u32 >= budget {
                break;
            }
            if chosen.contains(&candidate.lead_id) {
                continue;
            }
            let index = class_index(candidate.classification);
            let filling = pass == 2;
            if !filling && (tier(candidate) != pass || taken[index] >= places[index]) {
                continue;
            }
            let pool = capacity.pool(candidate.is_connection);
            if *pool == 0 {
                out_of_pool.insert(candidate.lead_id);
                continue;
            }
            *pool -= 1;
            taken[index] += 1;
            chosen.insert(candidate.lead_id);
            out_of_pool.remove(&candidate.lead_id);
            selected.push(AllocatedLead {
                lead_id: candidate.lead_id,
                classification: candidate.classification,
                score: candidate.score,
                priority: if tier(candidate) == 0 {
                    Priority::High
                } else {
                    Priority::Medium
                },
                reason: allocation_reason(candidate, &limits, filling, taken[index], places[index]),
            });
        }
    }

    let mut not_selected = Vec::new();
    for candidate in &eligible {
        if chosen.contains(&candidate.lead_id) {
            continue;
        }
        let reason = if out_of_pool.contains(&candidate.lead_id) {
            format!(
                "{}, quality {:.1}: no {} capacity left on the accounts today",
                candidate.classification,
                candidate.score,
                if candidate.is_connection {
                    "message"
                } else {
                    "invitation"
                }
            )
        } else {
            format!(
                "{}, quality {:.1}: ranked below the {} leads allocated today",
                candidate.classification,
                candidate.score,
                already + selected.len() as u32
            )
        };
        not_selected.push(NotSelected {
            lead_id: candidate.lead_id,
            reason,
        });
    }
    let mut below: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.classification != Classification::Other && c.score < limits.min_score)
        .collect();
    below.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.lead_id.cmp(&b.lead_id)));
    not_selected.extend(below.into_iter().map(|c| NotSelected {
        lead_id: c.lead_id,
        reason: format!(
            "{}, quality {:.1}: below the minimum score {:.1}",
            c.classification, c.score, limits.min_score
        ),
    }));
    let mut others: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.classification == Classification::Other)
        .collect();
    others.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.lead_id.cmp(&b.lead_id)));
    not_selected.extend(others.into_iter().map(|c| NotSelected {
        lead_id: c.lead_id,
        reason: format!(
            "classified Other (quality {:.1}): neither a speaker nor a sponsor",
            c.score
        ),
    }));

    let count = selected.len() as u32;
    let bound_by = if count >= limits.target {
        "daily_allocation"
    } else if count >= limits.capacity.total() || !out_of_pool.is_empty() {
        "capacity"
    } else {
        "candidates"
    };
    Plan {
        selected,
        not_selected,
        speaker_places,
        sponsor_places,
        bound_by: bound_by.into(),
    }
}

fn allocation_reason(
    candidate: &Candidate,
    limits: &PlanLimits,
    filling: bool,
    taken: u32,
    places: u32,
) -> String {
    let quality = if candidate.score >= limits.priority_score {
        format!(
            "quality {:.1} (at or above the priority score {:.1})",
            candidate.score, limits.priority_score
        )
    } else {
        format!(
            "quality {:.1} (below the priority score {:.1}, above the minimum {:.1}: too few \
             leads at the priority score)",
            candidate.score, limits.priority_score, limits.min_score
        )
    };
    let class = candidate.classification.as_str().to_lowercase();
    let mix = if filling {
        format!(
            "fills a place the other class could not fill (speaker share {:.0} %)",
            limits.speaker_share * 100.0
        )
    } else {
        format!(
            "{class} place {taken} of {places} (speaker share {:.0} %)",
            limits.speaker_share * 100.0
        )
    };
    let contact = if candidate.is_connection {
        "a message (already a connection)"
    } else {
        "an invitation"
    };
    format!(
        "{} {quality}; {mix}; first contact by {contact}",
        candidate.classification
    )
}

/// What a coordination run did.
#[derive(Clone, Debug, PartialEq)]
pub struct Coordination {
    pub date: NaiveDate,
    pub coordination_id: Uuid,
    pub search_id: Uuid,
    /// The search was requested by this run (false: an earlier run of the day did).
    pub search_requested: bool,
    /// The day's allocation target (the strategy's, within the configured 30–50).
    pub target: u32,
    /// Leads this day's coordination had allocated before this run.
    pub already_allocated: u32,
    /// First contacts the accounts could still make when this run planned, net of the leads
    /// allocated earlier and not yet contacted.
    pub capacity: Capacity,
    /// Allocated by this run.
    pub allocated: Vec<AllocatedLead>,
    pub not_selected: Vec<NotSelected>,
    pub bound_by: String,
}

impl Coordination {
    /// Allocated by this day's coordination, all runs.
    pub fn allocated_today(&self) -> u32 {
        self.already_allocated + self.allocated.len() as u32
    }
}

pub(super) async fn coordinate<S, L>(
    manager: &SalesManager<S, L>,
    day: NaiveDate,
) -> Result<Coordination, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    let settings = &manager.settings;
    let cause = coordination_id(day);
    let search = search_id(day);
    let department = manager.department().await?;
    let strategy = department.strategy.clone();
    let speaker_share = strategy
        .as_ref()
        .map_or(settings.speaker_share, |s| s.speaker_share);
    let min_score = strategy.as_ref().map_or(settings.quality_threshold, |s| {
        s.min_quality_score.value().max(settings.quality_threshold)
    });
    let target = strategy
        .as_ref()
        .map_or(settings.daily_allocation_max, |s| s.daily_allocation)
        .clamp(settings.daily_allocation_min, settings.daily_allocation_max);

    let search_requested =
        request_search(manager, day, cause, search, speaker_share, target).await?;

    // What the accounts can still do today, net of the leads waiting for their first contact.
    let mut capacity = accounts_capacity(manager, day).await?;
    let waiting = leads_with_status(manager, LeadStatus::Allocated).await?;
    let mut waiting_states = Vec::new();
    for lead_id in &waiting {
        let state = manager
            .handler
            .load::<LeadState>(&lead_stream(*lead_id))
            .await?
            .state;
        if state.status == LeadStatus::Allocated {
            *capacity.pool(state.is_connection) =
                capacity.pool(state.is_connection).saturating_sub(1);
        }
        waiting_states.push((*lead_id, state));
    }

    // This day's earlier allocations (a rerun, or a crash midway).
    let earlier = allocations_of(manager, day, cause).await?;
    let (mut already_speakers, mut already_sponsors) = (0, 0);
    for lead_id in &earlier {
        let state = match waiting_states.iter().find(|(id, _)| id == lead_id) {
            Some((_, state)) => state.clone(),
            None => {
                manager
                    .handler
                    .load::<LeadState>(&lead_stream(*lead_id))
                    .await?
                    .state
            }
        };
        match state.classification.map(|(class, _)| class) {
            Some(Classification::Sponsor) => already_sponsors += 1,
            _ => already_speakers += 1,
        }
    }
    let already = earlier.len() as u32;

    let candidates = candidates(manager, min_score, &earlier).await?;
    let limits = super::allocation::PlanLimits {
        target: target.saturating_sub(already),
        capacity,
        speaker_share,
        priority_score: settings.priority_quality_score,
        min_score,
        already_speakers,
        already_sponsors,
    };
    let plan = plan_allocation(&candidates, limits);

    let mut allocated = Vec::new();
    let mut not_selected = Vec::new();
    for lead in plan.selected {
        let metadata = manager
            .metadata()
            .with_correlation(cause)
            .with_step(cause, format!("allocate:{}", lead.lead_id));
        let command = LeadCommand::Allocate {
            assigned_to: settings.assignee.clone(),
            priority: lead.priority,
            reason: lead.reason.clone(),
        };
        match manager
            .handler
            .execute::<LeadState>(&lead_stream(lead.lead_id), &command, &metadata)
            .await
        {
            Ok(_) => allocated.push(lead),
            // The lead table lagged: the lead moved on (allocated, in review, stopped).
            Err(error) if error.rejection().is_some() => not_selected.push(NotSelected {
                lead_id: lead.lead_id,
                reason: format!("no longer allocatable: {error}"),
            }),
            Err(error) => return Err(error.into()),
        }
    }
    not_selected.extend(plan.not_selected);

    let speakers = already_speakers
        + count_of(&allocated, Classification::Speaker)
        + count_of(&allocated, Classification::Other);
    let sponsors = already_sponsors + count_of(&allocated, Classification::Sponsor);
    let record = CoordinationCompleted {
        date: day,
        search_id: Some(search),
        allocated: already + allocated.len() as u32,
        speakers,
        sponsors,
        target,
        capacity: capacity.total(),
        bound_by: plan.bound_by.clone(),
        not_selected: not_selected
            .iter()
            .take(settings.max_not_selected)
            .map(|left| UncertainDecision {
                lead_id: left.lead_id,
                kind: "not_selected".into(),
                reason: left.reason.clone(),
            })
            .collect(),
    };
    // A run that changed nothing does not record again.
    let recorded = department.coordinations.contains_key(&day);
    if !(recorded && allocated.is_empty() && !search_requested) {
        let metadata = manager.metadata().with_correlation(cause).with_step(
            cause,
            format!("coordination_completed:{}", record.allocated),
        );
        manager
            .department_command(&DepartmentCommand::RecordCoordination(record), &metadata)
            .await?;
    }
    tracing::info!(
        %day,
        allocated = allocated.len(),
        already,
        target,
        capacity = capacity.total(),
        bound_by = %plan.bound_by,
        "coordination done"
    );
    Ok(Coordination {
        date: day,
        coordination_id: cause,
        search_id: search,
        search_requested,
        target,
        already_allocated: already,
        capacity,
        allocated,
        not_selected,
        bound_by: plan.bound_by,
    })
}

fn count_of(leads: &[AllocatedLead], class: Classification) -> u32 {
    leads
        .iter()
        .filter(|lead| lead.classification == class)
        .count() as u32
}

/// Requests the day's search once; returns whether this call requested it.
async fn request_search<S, L>(
    manager: &SalesManager<S, L>,
    day: NaiveDate,
    cause: Uuid,
    search: Uuid,
    speaker_share: f64,
    target: u32,
) -> Result<bool, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    let criteria = manager.settings.search.clone();
    let command = SearchCommand::Request {
        search_id: search,
        criteria,
        reason: format!(
            "daily search for {day}: {target} leads to allocate, {:.0} % speakers",
            speaker_share * 100.0
        ),
    };
    let metadata = manager
        .metadata()
        .with_correlation(cause)
        .with_step(cause, "search_request");
    match manager
        .handler
        .execute::<salesdept_events::domain::SearchState>(
            &search_stream(search),
            &command,
            &metadata,
        )
        .await
    {
        Ok(executed) => Ok(!executed.events.is_empty()),
        Err(error)
            if matches!(
                error.rejection(),
                Some(DomainError::SearchAlreadyRequested { .. })
            ) =>
        {
            Ok(false)
        }
        Err(error) => Err(error.into()),
    }
}

/// The first contacts the configured accounts can still make on `day` (none on a day outside
/// an account's working days).
async fn accounts_capacity<S, L>(
    manager: &SalesManager<S, L>,
    day: NaiveDate,
) -> Result<Capacity, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    let now = manager.now();
    let mut capacity = Capacity::default();
    for (account_id, limits) in &manager.accounts {
        let hours = &limits.working_hours;
        // Count at the moment of the call if it is on `day` there, else at the day's start.
        let at = if hours.local_date(now) == day {
            now
        } else {
            super::local_instant(hours.time_zone, day, hours.start)
        };
        if !hours.days.contains(&hours.local_date(at).weekday()) {
            continue;
        }
        let state = manager
            .handler
            .load::<AccountState>(&account_stream(account_id))
            .await?
            .state;
        capacity.messages += state.remaining_today(SendAction::Message, limits, at);
        capacity.invitations += state.remaining_today(SendAction::Invitation, limits, at);
    }
    Ok(capacity)
}

/// Every lead of the table in `status` (paged).
async fn leads_with_status<S, L>(
    manager: &SalesManager<S, L>,
    status: LeadStatus,
) -> Result<Vec<Uuid>, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    Ok(rows_with_status(manager, status)
        .await?
        .into_iter()
        .map(|row| row.lead_id)
        .collect())
}

async fn rows_with_status<S, L>(
    manager: &SalesManager<S, L>,
    status: LeadStatus,
) -> Result<Vec<salesdept_projections::LeadRow>, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    const PAGE: i64 = 1000;
    let filter = LeadFilter {
        status: Some(status),
        ..LeadFilter::default()
    };
    let mut rows = Vec::new();
    loop {
        let page = list_leads(
            manager.read_models(),
            &filter,
            Page {
                limit: PAGE,
                offset: rows.len() as i64,
            },
            LeadOrder::LeadId,
        )
        .await?;
        let full = page.rows.len() as i64 == PAGE;
        rows.extend(page.rows);
        if !full {
            return Ok(rows);
        }
    }
}

/// The leads `day`'s coordination allocated so far, from the log (not the lagging table).
async fn allocations_of<S, L>(
    manager: &SalesManager<S, L>,
    day: NaiveDate,
    cause: Uuid,
) -> Result<BTreeSet<Uuid>, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    // The day's events, with a day's margin on each side for time zones.
    let (start, end) = utc_day(day);
    let events = query_all(
        manager,
        EventQuery {
            occurred_from: Some(start - TimeDelta::days(1)),
            occurred_to: Some(end + TimeDelta::days(1)),
            actor: Some(Actor::agent(SALES_MANAGER)),
            event_type: Some("lead_allocation".into()),
            stream_prefix: Some("lead-".into()),
            ..EventQuery::default()
        },
    )
    .await?;
    Ok(events
        .iter()
        .filter(|event| event.metadata.correlation_id == Some(cause))
        .filter_map(|event| salesdept_events::domain::streams::lead_id_of(&event.stream_id))
        .collect())
}

/// Every page of `query`.
pub(super) async fn query_all<S, L>(
    manager: &SalesManager<S, L>,
    mut query: EventQuery,
) -> Result<Vec<RecordedEvent>, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    query.order = EventOrder::Global;
    let mut all = Vec::new();
    loop {
        let page = manager.read_models().query_events(&query).await?;
        let Some(last) = page.last() else {
            return Ok(all);
        };
        query.after = EventCursor::after(last, EventOrder::Global);
        let full = page.len() as i64 >= query.limit;
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

/// What the coordination needs of a lead's stream, and nothing personal: whether it may be
/// allocated (new and not stopped) and whether the lead is already a connection.
#[derive(Clone, Copy, Debug, PartialEq)]
struct LeadFacts {
    allocatable: bool,
    is_connection: bool,
}

/// The facts of the lead streams the coordination read, kept until the log shows the stream
/// moved: each run reads only the log appended since the last one (in the log's safe order, so
/// on PostgreSQL no late-committing transaction is skipped) and forgets the leads it touched,
/// instead of rereading every candidate's stream each run.
#[derive(Debug, Default)]
pub(super) struct LeadFactsMemo {
    after: Checkpoint,
    facts: HashMap<Uuid, LeadFacts>,
}

impl LeadFactsMemo {
    /// Forgets the facts of every lead with events after the remembered checkpoint.
    async fn forget_moved<S: EventStore + ?Sized>(&mut self, store: &S) -> Result<(), StoreError> {
        const PAGE: i64 = 1000;
        loop {
            let page = store.read_all(self.after, PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            self.after = last.checkpoint();
            for event in &page {
                if let Some(lead_id) =
                    salesdept_events::domain::streams::lead_id_of(&event.stream_id)
                {
                    self.facts.remove(&lead_id);
                }
            }
            if (page.len() as i64) < PAGE {
                return Ok(());
            }
        }
    }
}

/// The new, classified and scored leads of the table, with what the plan needs from their
/// streams (connection or not) for those that may be allocated.
async fn candidates<S, L>(
    manager: &SalesManager<S, L>,
    min_score: f64,
    earlier: &BTreeSet<Uuid>,
) -> Result<Vec<Candidate>, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    let mut memo = manager.lead_facts.lock().await;
    memo.forget_moved(manager.handler.store()).await?;
    let mut candidates = Vec::new();
    for row in rows_with_status(manager, LeadStatus::New).await? {
        if earlier.contains(&row.lead_id) || row.forgotten {
            continue;
        }
        let Some(score) = row.quality_score else {
            continue;
        };
        let classification = match row.classification.as_str() {
            "Speaker" => Classification::Speaker,
            "Sponsor" => Classification::Sponsor,
            "Other" => Classification::Other,
            _ => continue,
        };
        let mut is_connection = false;
        if classification != Classification::Other && score >= min_score {
            // The stream is the truth: the table may lag, and it does not hold the connection.
            let facts = match memo.facts.get(&row.lead_id) {
                Some(facts) => *facts,
                None => {
                    let state = manager
                        .handler
                        .load::<LeadState>(&lead_stream(row.lead_id))
                        .await?
                        .state;
                    let facts = LeadFacts {
                        allocatable: state.status == LeadStatus::New && !state.is_stopped(),
                        is_connection: state.is_connection,
                    };
                    memo.facts.insert(row.lead_id, facts);
                    facts
                }
            };
            if !facts.allocatable {
                continue;
            }
            is_connection = facts.is_connection;
        }
        candidates.push(Candidate {
            lead_id: row.lead_id,
            classification,
            score,
            is_connection,
        });
    }
    Ok(candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(n: u128, classification: Classification, score: f64, connected: bool) -> Candidate {
        Candidate {
            lead_id: Uuid::from_u128(n),
            classification,
            score,
            is_connection: connected,
        }
    }

    fn limits(target: u32, invitations: u32, messages: u32) -> PlanLimits {
        PlanLimits {
            target,
            capacity: Capacity {
                invitations,
                messages,
            },
            speaker_share: 0.6,
            priority_score: 7.0,
            min_score: 6.0,
            already_speakers: 0,
            already_sponsors: 0,
        }
    }

    #[test]
    fn quality_first_then_the_mix_then_the_rest() {
        let candidates = vec![
            lead(1, Classification::Speaker, 9.0, false),
            lead(2, Classification::Speaker, 6.5, false),
            lead(3, Classification::Speaker, 8.0, false),
            lead(4, Classification::Sponsor, 7.5, false),
            lead(5, Classification::Sponsor, 6.2, false),
            lead(6, Classification::Other, 9.5, false),
            lead(7, Classification::Sponsor, 5.0, false),
        ];
        let plan = plan_allocation(&candidates, limits(5, 10, 10));
        let ids: Vec<u128> = plan.selected.iter().map(|l| l.lead_id.as_u128()).collect();
        // 3 speaker and 2 sponsor places: tier 1 first (1, 3 / 4), then tier 2 (2 / 5).
        assert_eq!(ids, vec![1, 3, 4, 2, 5]);
        assert_eq!((plan.speaker_places, plan.sponsor_places), (3, 2));
        assert_eq!(plan.selected[0].priority, Priority::High);
        assert_eq!(plan.selected[3].priority, Priority::Medium);
        assert_eq!(plan.bound_by, "daily_allocation");
        let left: Vec<u128> = plan
            .not_selected
            .iter()
            .map(|l| l.lead_id.as_u128())
            .collect();
        assert_eq!(left, vec![7, 6]);
        assert!(plan.not_selected[0].reason.contains("below the minimum"));
        assert!(plan.not_selected[1].reason.contains("classified Other"));
    }

    #[test]
    fn the_accounts_capacity_bounds_the_plan_per_kind_of_first_contact() {
        let candidates = vec![
            lead(1, Classification::Speaker, 9.0, false),
            lead(2, Classification::Speaker, 8.0, false),
            lead(3, Classification::Speaker, 7.9, true),
            lead(4, Classification::Sponsor, 8.0, false),
        ];
        let plan = plan_allocation(&candidates, limits(30, 1, 1));
        let ids: Vec<u128> = plan.selected.iter().map(|l| l.lead_id.as_u128()).collect();
        assert_eq!(ids, vec![1, 3]);
        assert_eq!(plan.bound_by, "capacity");
        assert!(
            plan.not_selected
                .iter()
                .all(|left| left.reason.contains("no invitation capacity"))
        );
    }

    #[test]
    fn a_rerun_keeps_the_mix_over_the_day() {
        let candidates: Vec<Candidate> = (0..10)
            .map(|n| lead(n, Classification::Speaker, 8.0, true))
            .chain((10..20).map(|n| lead(n, Classification::Sponsor, 8.0, true)))
            .collect();
        let mut rerun = limits(5, 0, 50);
        rerun.already_speakers = 5;
        rerun.already_sponsors = 0;
        let plan = plan_allocation(&candidates, rerun);
        // 10 in all: 6 speakers, 4 sponsors; 5 speakers are already allocated.
        assert_eq!((plan.speaker_places, plan.sponsor_places), (1, 4));
    }
}
