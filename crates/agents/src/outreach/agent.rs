//! The Outreach agent as one facade: the subscription handler that reacts to lead events, a
//! `tick` that does the work that is due, and `check_replies` that reads every account's inbox.
//! The simulation driver and `serve` call exactly these.
//!
//! Nothing lives only in memory: the agent's view of the leads is a fold of the log (read from
//! the start after a restart, then incrementally), every step it takes is named by the lead's
//! own state (a draft's id, the n-th invitation, the n-th follow-up) with event ids derived from
//! it, and every send goes through the [`Sender`]'s at-most-once path. A new agent on the same
//! store therefore takes up exactly where the old one stopped and repeats nothing.
//!
//! - On `lead_allocation` the handler drafts the first message (LLM or templates by
//!   `message_generation_mode`), held for review when the classification's confidence is below
//!   the threshold; on `invitation_accepted` it drafts again only if every draft was rejected;
//!   on `response_received` it analyses the reply (LLM, rules as fallback), which qualifies,
//!   closes or stops the lead in the same append.
//! - `tick` invites people who are not connections once their first message is approved, sends
//!   the first message to connections, schedules follow-ups (`follow_up_scheduled`) at the
//!   configured days after the first message, drafts and sends them when due, and withdraws
//!   invitations left pending too long. A send the provider refused is tried again after a
//!   backoff, at most `max_send_attempts` times; then `agent_error` tells the manager.
//!
//! Driving it: run [`OutreachAgent::handler`] as the durable subscription
//! [`OUTREACH_SUBSCRIPTION`]; call [`OutreachAgent::tick`] whenever time moves (a discrete-event
//! driver jumps to [`OutreachTick::next_due`], or to the next outside event such as an
//! allocation or a reply) and [`OutreachAgent::check_replies`] every `inbox_interval`. Run the
//! subscription before the tick when both are due: a fresh allocation is drafted by the handler
//! (the tick drafts it too if the handler has not, under the same draft id).
//!
//! An OutOfOffice reply does not end the sequence: its analysis carries the return date the
//! reply gives, and the lead's rules reschedule the next follow-up not before it (or
//! `out_of_office_days` after the reply when it gives none) and hand the lead back to Sent;
//! the tick then sends that follow-up once it is due, under the same caps, gap and working
//! hours as any send. Any other reply still ends the sequence for good.
//!
//! Withdrawing an invitation tells the provider first
//! ([`LinkedInPort::withdraw_invitation`](crate::linkedin::LinkedInPort::withdraw_invitation),
//! on the account that sent it); a refusal is retried with the send backoff, and a provider
//! that cannot withdraw ([`LinkedInError::Unsupported`](crate::linkedin::LinkedInError)) still
//! gets the withdrawal recorded, with a note that the provider was not told.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, TimeDelta, Utc};
use salesdept_events::domain::department::{AlertSeverity, DepartmentCommand, DepartmentState};
use salesdept_events::domain::lead::{
    InvitationPolicy, LeadCommand, LeadEvent, LeadState, MessageKind as LeadMessageKind, Priority,
    Review, SendKind, SendOutcome, WithdrawalReason,
};
use salesdept_events::domain::streams::{DEPARTMENT_STREAM, lead_id_of};
use salesdept_events::domain::{
    Aggregate, CommandError, CommandHandler, CommandMetadata, DomainError, DomainEvent, lead_stream,
};
use salesdept_events::{
    Actor, Checkpoint, EventStore, Handler, HandlerContext, HandlerError, RecordedEvent,
    StoreError, step_event_id,
};
use tokio::sync::Mutex;
use uuid::Uuid;

use super::draft::{MessageGenerationMode, choose_variant, profile_of, write_message};
use super::inbox::{Inbox, InboxPass};
use super::replies::analyse;
use super::send::{OUTREACH, SendError, SendRequest, SendResult, Sender, SendingAccount};
use super::sequence::{
    SequencePolicy, Step, follow_up_draft_id, initial_draft_id, live_initial_draft, next_step,
    rejected_initial_drafts,
};
use crate::clock::Clock;
use crate::linkedin::LinkedInError;
use crate::llm::{LlmAlert, LlmError, LlmPort};
use crate::rules::templates::{MessageContext, MessageKind, TemplateVariant};

/// The durable subscription the Outreach handler runs under.
pub const OUTREACH_SUBSCRIPTION: &str = "outreach";

/// The Outreach agent's settings (the `outreach:` section of `config/agents.yaml`).
#[derive(Clone, Debug, PartialEq)]
pub struct OutreachSettings {
    /// `message_generation_mode`: `llm_enhanced` or `template_based` (default).
    pub message_generation_mode: MessageGenerationMode,
    /// `draft_confidence_threshold` (default 0.6): a draft for a lead whose classification is
    /// less sure than this waits for a human's approval.
    pub review_confidence_threshold: f64,
    /// `follow_up_days` (default `[3, 7]`): days after the first message; its length is
    /// `max_follow_ups`.
    pub follow_up_days: Vec<u32>,
    /// `invitation_withdraw_days` (default 21).
    pub invitation_withdraw_after_days: u32,
    /// `out_of_office_days` (default 7): after an OutOfOffice reply that gives no return date,
    /// the next follow-up waits this many days after the reply.
    pub out_of_office_days: u32,
    /// `response_check_interval_hours` (default 2 h): how often `check_replies` should run,
    /// and how far back the first poll after a start looks (two intervals).
    pub inbox_interval: TimeDelta,
    /// Invitation notes an account may send per calendar month (LinkedIn limits notes on
    /// free accounts); None: no quota. Past it, invitations go without a note.
    pub monthly_note_quota: Option<u32>,
    /// Provider refusals of one lead's sends before the agent gives up on it and records
    /// `agent_error` (default 3).
    pub max_send_attempts: u32,
    /// The wait before the first retry of a refused send; doubled for each further one
    /// (default 5 minutes).
    pub retry_backoff: TimeDelta,
    /// Refusals in a row, across leads, after which a tick stops calling the provider (a
    /// circuit breaker: the provider is failing, not the lead) and tells the manager with a
    /// `performance_alert` (default 5).
    pub provider_failure_threshold: u32,
    /// Who a positive reply is handed over to (the team's address).
    pub hand_over_to: String,
    /// The event the messages are about.
    pub event_name: String,
}

impl Default for OutreachSettings {
    fn default() -> Self {
        Self {
            message_generation_mode: MessageGenerationMode::TemplateBased,
            review_confidence_threshold: 0.6,
            follow_up_days: vec![3, 7],
            invitation_withdraw_after_days: 21,
            out_of_office_days: 7,
            inbox_interval: TimeDelta::hours(2),
            monthly_note_quota: None,
            max_send_attempts: 3,
            retry_backoff: TimeDelta::minutes(5),
            provider_failure_threshold: 5,
            hand_over_to: "sales-team@localhost".into(),
            event_name: MessageContext::default().event_name,
        }
    }
}

impl OutreachSettings {
    fn invitation_policy(&self) -> InvitationPolicy {
        let days = TimeDelta::days(i64::from(self.invitation_withdraw_after_days));
        InvitationPolicy {
            withdraw_after: days,
            reinvite_after: days,
            ..InvitationPolicy::default()
        }
    }

    fn sequence_policy(&self) -> SequencePolicy {
        SequencePolicy {
            follow_up_days: self.follow_up_days.clone(),
            invitations: self.invitation_policy(),
            out_of_office_delay: TimeDelta::days(i64::from(self.out_of_office_days)),
        }
    }
}

/// What one `tick` did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutreachTick {
    pub invitations_sent: u32,
    pub messages_sent: u32,
    pub follow_ups_sent: u32,
    pub withdrawn: u32,
    /// Sends the provider refused or whose outcome is unknown.
    pub failed: u32,
    /// When the agent next has something due (None: nothing until an outside event).
    pub next_due: Option<DateTime<Utc>>,
    /// Drafts written in this tick (first messages for leads the handler had not reached,
    /// follow-ups).
    pub drafted: u32,
    pub follow_ups_scheduled: u32,
    /// `agent_error` events recorded.
    pub agent_errors: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum OutreachError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Send(#[from] SendError),
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("the event {event_id} is not a lead event: {detail}")]
    BadEvent { event_id: Uuid, detail: String },
}

/// One lead as the agent follows it: its folded stream and what the fold alone does not keep.
#[derive(Clone, Debug, Default)]
struct Tracked {
    state: LeadState,
    version: i64,
    /// When the last send failure was recorded (for the backoff).
    last_failure_at: Option<DateTime<Utc>>,
    /// An invitation whose outcome nobody knows: never invited again by the agent.
    invitation_unknown: bool,
    /// `agent_error` already recorded for giving up on this lead's sends.
    gave_up: bool,
    /// The provider refused to withdraw the pending invitation this many times in a row, the
    /// last at `withdraw_failed_at` (for the backoff; withdrawing again is always safe).
    withdraw_failures: u32,
    withdraw_failed_at: Option<DateTime<Utc>>,
    /// The lead journey's correlation id (its first event's).
    correlation: Option<Uuid>,
}

impl Tracked {
    fn apply(&mut self, recorded: &RecordedEvent, event: &LeadEvent) {
        if let LeadEvent::MessageSendFailed(failed) = event {
            self.last_failure_at = Some(recorded.metadata.occurred_at);
            if failed.kind == SendKind::Invitation && failed.outcome == SendOutcome::Unknown {
                self.invitation_unknown = true;
            }
        }
        if self.correlation.is_none() {
            self.correlation = recorded.metadata.correlation_id.or(Some(recorded.event_id));
        }
        self.state = std::mem::take(&mut self.state).evolve(event);
        self.version = recorded.stream_version;
    }
}

/// The agent's fold of the log.
#[derive(Debug, Default)]
struct Index {
    checkpoint: Checkpoint,
    leads: BTreeMap<Uuid, Tracked>,
    /// Leads whose outreach is over: their further events are not folded.
    finished: HashSet<Uuid>,
    /// Invitation notes sent per (account, year, month).
    notes: HashMap<(String, i32, u32), u32>,
}

impl Index {
    fn fold(&mut self, recorded: &RecordedEvent) -> Result<(), StoreError> {
        let Some(lead_id) = lead_id_of(&recorded.stream_id) else {
            return Ok(());
        };
        if self.finished.contains(&lead_id) {
            return Ok(());
        }
        let tracked = self.leads.entry(lead_id).or_default();
        if recorded.stream_version <= tracked.version {
            return Ok(());
        }
        let event = LeadEvent::from_recorded(recorded)?;
        count_note(&mut self.notes, &event);
        tracked.apply(recorded, &event);
        Ok(())
    }
}

/// Counts an invitation note against its account's month (each event once: callers fold only
/// events past the version they hold).
fn count_note(notes: &mut HashMap<(String, i32, u32), u32>, event: &LeadEvent) {
    if let LeadEvent::InvitationSent(sent) = event
        && sent.pii.message_text.is_some()
    {
        *notes
            .entry((
                sent.account_id.to_string(),
                sent.sent_at.year(),
                sent.sent_at.month(),
            ))
            .or_default() += 1;
    }
}

/// The Outreach agent.
pub struct OutreachAgent<S: EventStore + ?Sized, L: LlmPort> {
    handler: CommandHandler<S>,
    clock: Arc<dyn Clock>,
    llm: Arc<L>,
    sender: Sender<S>,
    inbox: Inbox<S>,
    accounts: Vec<SendingAccount>,
    settings: OutreachSettings,
    policy: SequencePolicy,
    index: Mutex<Index>,
    last_poll: Mutex<Option<DateTime<Utc>>>,
    /// The latest `strategy_update`'s variant weights, and the department stream version
    /// read up to.
    weights: Mutex<(i64, BTreeMap<String, f64>)>,
}

impl<S: EventStore + ?Sized + 'static, L: LlmPort + 'static> OutreachAgent<S, L> {
    pub fn new(
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        llm: Arc<L>,
        accounts: Vec<SendingAccount>,
        settings: OutreachSettings,
    ) -> Self {
        let policy = settings.sequence_policy();
        let sender = Sender::new(
            Arc::clone(&store),
            accounts.clone(),
            Arc::clone(&clock),
            policy.follow_up_policy(),
            policy.invitations,
        );
        let inbox = Inbox::new(
            Arc::clone(&store),
            accounts
                .iter()
                .map(|account| (account.id.clone(), Arc::clone(&account.linkedin)))
                .collect(),
            Arc::clone(&clock),
        );
        Self {
            handler: CommandHandler::new(store).with_max_attempts(16),
            clock,
            llm,
            sender,
            inbox,
            accounts,
            settings,
            policy,
            index: Mutex::new(Index::default()),
            last_poll: Mutex::new(None),
            weights: Mutex::new((0, BTreeMap::new())),
        }
    }

    pub fn settings(&self) -> &OutreachSettings {
        &self.settings
    }

    /// The subscription handler (run it as [`OUTREACH_SUBSCRIPTION`]).
    pub fn handler(self: &Arc<Self>) -> Arc<dyn Handler> {
        Arc::new(OutreachHandler {
            agent: Arc::clone(self),
        })
    }

    /// One pass of the work due at `clock.now()` (see the module docs).
    #[tracing::instrument(skip_all, err)]
    pub async fn tick(&self) -> Result<OutreachTick, OutreachError> {
        let mut index = self.index.lock().await;
        self.catch_up(&mut index).await?;
        let now = self.clock.now();
        let mut pass = Pass::default();
        let mut order: Vec<(Priority, Uuid)> = index
            .leads
            .iter()
            .map(|(lead_id, tracked)| (tracked.state.priority.unwrap_or(Priority::Low), *lead_id))
            .collect();
        order.sort();
        for (_, lead_id) in order {
            // A few steps per lead and tick: e.g. schedule a follow-up, then nothing until it
            // is due; draft a follow-up, then send it.
            for _ in 0..6 {
                let Some(tracked) = index.leads.get(&lead_id) else {
                    break;
                };
                // Most leads wait: answer those without copying their state.
                let progress = match next_step(&tracked.state, &self.policy, now) {
                    Step::Idle => Progress::Done,
                    Step::Wait { until } => Progress::DueAt(until),
                    step => {
                        self.take_step(&mut index, lead_id, step, now, &mut pass)
                            .await?
                    }
                };
                match progress {
                    Progress::Again => continue,
                    Progress::Done => break,
                    Progress::DueAt(at) => {
                        let due = &mut pass.tick.next_due;
                        *due = Some(due.map_or(at, |due| due.min(at)));
                        break;
                    }
                }
            }
        }
        Ok(pass.tick)
    }

    /// Polls every account's replies and acceptances since the last poll (the first poll after
    /// a start looks back two intervals) and records failures to read as `agent_error`.
    #[tracing::instrument(skip_all, err)]
    pub async fn check_replies(&self) -> Result<InboxPass, OutreachError> {
        let now = self.clock.now();
        let mut last_poll = self.last_poll.lock().await;
        // Overlap the previous window: a reply that landed while it was read is not lost, and
        // one recorded twice is recognised by the lead's rules.
        let since = match *last_poll {
            Some(previous) => previous - self.settings.inbox_interval / 2,
            None => now - self.settings.inbox_interval * 2,
        };
        let pass = self.inbox.poll(since).await?;
        for (account_id, error) in &pass.failures {
            self.record_agent_error(
                "check_replies",
                &format!("reading the inbox of account {account_id}: {error}"),
                None,
                true,
                // One record per account and window, however often the window is read.
                step_event_id(
                    Uuid::NAMESPACE_OID,
                    &format!("outreach:inbox:{account_id}:{}", since.to_rfc3339()),
                ),
            )
            .await?;
        }
        if pass.failures.is_empty() {
            *last_poll = Some(now);
        } else if last_poll.is_none() {
            // Keep the window open from where it began until every account was read.
            *last_poll = Some(since + self.settings.inbox_interval / 2);
        }
        Ok(pass)
    }

    /// Reads the log from where the index stopped.
    async fn catch_up(&self, index: &mut Index) -> Result<(), StoreError> {
        loop {
            let events = self
                .handler
                .store()
                .read_all(index.checkpoint, 1_000)
                .await?;
            let Some(last) = events.last() else {
                return Ok(());
            };
            let checkpoint = last.checkpoint();
            for event in &events {
                index.fold(event)?;
            }
            index.checkpoint = checkpoint;
        }
    }

    /// Reloads one lead from its stream (after the agent changed it).
    async fn refresh(&self, index: &mut Index, lead_id: Uuid) -> Result<(), StoreError> {
        let events = self
            .handler
            .store()
            .read_stream(&lead_stream(lead_id), 1, None)
            .await?;
        let mut tracked = Tracked::default();
        let mut known_version = 0;
        if let Some(previous) = index.leads.get(&lead_id) {
            tracked.gave_up = previous.gave_up;
            tracked.withdraw_failures = previous.withdraw_failures;
            tracked.withdraw_failed_at = previous.withdraw_failed_at;
            known_version = previous.version;
        }
        for recorded in &events {
            let event = LeadEvent::from_recorded(recorded)?;
            if recorded.stream_version > known_version {
                count_note(&mut index.notes, &event);
            }
            tracked.apply(recorded, &event);
        }
        index.leads.insert(lead_id, tracked);
        Ok(())
    }

    fn metadata(&self, cause: Uuid, step: &str, correlation_id: Option<Uuid>) -> CommandMetadata {
        let mut metadata =
            CommandMetadata::new(Actor::agent(OUTREACH), self.clock.now()).with_step(cause, step);
        metadata.correlation_id = correlation_id;
        metadata
    }

    /// Runs a lead command; a refusal by the lead's rules is logged and returned as None.
    async fn run_lead(
        &self,
        lead_id: Uuid,
        command: &LeadCommand,
        metadata: &CommandMetadata,
    ) -> Result<Option<usize>, OutreachError> {
        match self
            .handler
            .execute::<LeadState>(&lead_stream(lead_id), command, metadata)
            .await
        {
            Ok(executed) => Ok(Some(executed.events.len())),
            Err(CommandError::Rejected(rejection)) => {
                tracing::info!(%lead_id, %rejection, "the lead refused an outreach step");
                Ok(None)
            }
            Err(other) => Err(other.into()),
        }
    }

    async fn take_step(
        &self,
        index: &mut Index,
        lead_id: Uuid,
        step: Step,
        now: DateTime<Utc>,
        pass: &mut Pass,
    ) -> Result<Progress, OutreachError> {
        let tick = &mut pass.tick;
        let tracked = index.leads.get(&lead_id).cloned().unwrap_or_default();
        let lead = &tracked.state;
        let is_send = matches!(
            step,
            Step::Invite | Step::SendInitial { .. } | Step::SendFollowUp { .. }
        );
        if is_send {
            if lead.send_failures >= self.settings.max_send_attempts {
                if !tracked.gave_up {
                    self.give_up(index, lead_id, lead.send_failures).await?;
                    tick.agent_errors += 1;
                }
                return Ok(Progress::Done);
            }
            if let Some(failed_at) = tracked.last_failure_at
                && lead.send_failures > 0
            {
                let exponent = (lead.send_failures - 1).min(16);
                let retry_at = failed_at + self.settings.retry_backoff * 2i32.pow(exponent);
                if now < retry_at {
                    return Ok(Progress::DueAt(retry_at));
                }
            }
        }
        match step {
            Step::Finished => {
                index.leads.remove(&lead_id);
                index.finished.insert(lead_id);
                Ok(Progress::Done)
            }
            Step::Idle => Ok(Progress::Done),
            Step::Wait { until } => Ok(Progress::DueAt(until)),
            Step::DraftInitial { draft_id } => {
                let drafted = self
                    .draft_initial(lead_id, lead, draft_id, tracked.correlation)
                    .await?;
                self.refresh(index, lead_id).await?;
                if drafted {
                    tick.drafted += 1;
                    Ok(Progress::Again)
                } else {
                    Ok(Progress::Done)
                }
            }
            Step::ScheduleFollowUp { number, delay } => {
                let mut policy = self.policy.follow_up_policy();
                policy.delay = delay;
                let metadata = self.metadata(
                    follow_up_draft_id(lead_id, number),
                    "follow_up_scheduled",
                    tracked.correlation,
                );
                let done = self
                    .run_lead(
                        lead_id,
                        &LeadCommand::ScheduleFollowUp { policy },
                        &metadata,
                    )
                    .await?;
                self.refresh(index, lead_id).await?;
                if done.is_some_and(|events| events > 0) {
                    tick.follow_ups_scheduled += 1;
                }
                Ok(if done.is_some() {
                    Progress::Again
                } else {
                    Progress::Done
                })
            }
            Step::DraftFollowUp { number, draft_id } => {
                let drafted = self
                    .draft_follow_up(lead_id, lead, number, draft_id, tracked.correlation)
                    .await?;
                self.refresh(index, lead_id).await?;
                if drafted {
                    tick.drafted += 1;
                    Ok(Progress::Again)
                } else {
                    Ok(Progress::Done)
                }
            }
            Step::Withdraw { reason } => {
                self.withdraw(index, lead_id, &tracked, reason, now, pass)
                    .await
            }
            Step::Invite => {
                if tracked.invitation_unknown {
                    // Nobody knows whether the last invitation arrived: a human decides.
                    return Ok(Progress::Done);
                }
                if let Some(at) = pass.blocked.get("invitation") {
                    return Ok(Progress::DueAt(*at));
                }
                let note = self.invitation_note(index, lead_id, lead, now).await?;
                let result = self
                    .sender
                    .send(
                        lead_id,
                        &SendRequest::Invitation { note },
                        tracked.correlation,
                    )
                    .await?;
                self.after_send(index, lead_id, result, "invitation", pass)
                    .await
            }
            Step::SendInitial { draft_id } | Step::SendFollowUp { draft_id, .. } => {
                if let Some(at) = pass.blocked.get("message") {
                    return Ok(Progress::DueAt(*at));
                }
                let result = self
                    .sender
                    .send(
                        lead_id,
                        &SendRequest::Message { draft_id },
                        tracked.correlation,
                    )
                    .await?;
                let what = if matches!(step, Step::SendInitial { .. }) {
                    "first_message"
                } else {
                    "follow_up"
                };
                self.after_send(index, lead_id, result, what, pass).await
            }
        }
    }

    async fn after_send(
        &self,
        index: &mut Index,
        lead_id: Uuid,
        result: SendResult,
        what: &'static str,
        pass: &mut Pass,
    ) -> Result<Progress, OutreachError> {
        let now = self.clock.now();
        let tick = &mut pass.tick;
        let action = if what == "invitation" {
            "invitation"
        } else {
            "message"
        };
        let progress = match result {
            SendResult::Sent { .. } => {
                pass.consecutive_failures = 0;
                match what {
                    "invitation" => tick.invitations_sent += 1,
                    "first_message" => tick.messages_sent += 1,
                    _ => tick.follow_ups_sent += 1,
                }
                Progress::Again
            }
            SendResult::NotNow { retry_at, .. } => {
                pass.blocked.insert(action, retry_at);
                return Ok(Progress::DueAt(retry_at));
            }
            SendResult::Refused(DomainError::FollowUpTooEarly { not_before }) => {
                Progress::DueAt(not_before)
            }
            SendResult::Refused(DomainError::ReinviteTooSoon { not_before }) => {
                Progress::DueAt(not_before)
            }
            SendResult::Refused(rejection) => {
                tracing::info!(%lead_id, %rejection, "the lead refused a send");
                Progress::Done
            }
            SendResult::Failed { error } => {
                tick.failed += 1;
                tracing::warn!(%lead_id, %error, "the provider refused a send");
                pass.consecutive_failures += 1;
                if pass.consecutive_failures >= self.settings.provider_failure_threshold {
                    // The provider, not the lead, is failing: stop calling it for a while.
                    let retry_at = now + self.settings.retry_backoff;
                    pass.blocked.insert("invitation", retry_at);
                    pass.blocked.insert("message", retry_at);
                    let alert = DepartmentCommand::RaiseAlert {
                        metric: "outreach_provider_failures".into(),
                        value: f64::from(pass.consecutive_failures),
                        threshold: f64::from(self.settings.provider_failure_threshold),
                        severity: AlertSeverity::Critical,
                        message: format!(
                            "the LinkedIn provider refused {} sends in a row; outreach paused \
                             until {retry_at}: {error}",
                            pass.consecutive_failures
                        ),
                    };
                    self.department(&alert, step_event_id(lead_id, "provider_failures"))
                        .await?;
                }
                Progress::Again
            }
            SendResult::Unknown { error, .. } => {
                tick.failed += 1;
                let key = step_event_id(lead_id, &format!("unknown:{what}:{error}"));
                self.record_agent_error(
                    what,
                    &format!("a send's outcome is unknown, a human decides: {error}"),
                    Some(lead_id),
                    false,
                    key,
                )
                .await?;
                tick.agent_errors += 1;
                Progress::Done
            }
        };
        self.refresh(index, lead_id).await?;
        Ok(progress)
    }

    /// Takes the lead's pending invitation back: at the provider first (on the account that
    /// sent it), then in the log. A refusal is retried after the send backoff (doubling, an
    /// `agent_error` once the attempts are spent, still retried); a provider that cannot
    /// withdraw still gets the withdrawal recorded, with a note that it was not told.
    async fn withdraw(
        &self,
        index: &mut Index,
        lead_id: Uuid,
        tracked: &Tracked,
        reason: WithdrawalReason,
        now: DateTime<Utc>,
        pass: &mut Pass,
    ) -> Result<Progress, OutreachError> {
        let lead = &tracked.state;
        let Some(invitation) = lead.invitation.as_ref().filter(|inv| inv.is_pending()) else {
            return Ok(Progress::Done);
        };
        if let Some(failed_at) = tracked.withdraw_failed_at
            && tracked.withdraw_failures > 0
        {
            let exponent = (tracked.withdraw_failures - 1).min(16);
            let retry_at = failed_at + self.settings.retry_backoff * 2i32.pow(exponent);
            if now < retry_at {
                return Ok(Progress::DueAt(retry_at));
            }
        }
        let port = self
            .accounts
            .iter()
            .find(|account| account.id == invitation.account_id)
            .map(|account| Arc::clone(&account.linkedin));
        let told = match &port {
            Some(port) => port
                .withdraw_invitation(&invitation.provider_message_id)
                .await
                .map_err(|error| match error {
                    LinkedInError::Unsupported { provider, .. } => Err(format!(
                        "{provider} cannot withdraw invitations, so it was not told"
                    )),
                    other => Ok(other),
                }),
            None => Err(Err(format!(
                "the account {} that sent it is not configured here, so the provider was not \
                 told",
                invitation.account_id
            ))),
        };
        let untold = match told {
            Ok(()) => None,
            Err(Err(untold)) => Some(untold),
            Err(Ok(error)) => {
                tracing::warn!(%lead_id, %error, "the provider refused to withdraw an invitation");
                let failures = tracked.withdraw_failures + 1;
                if let Some(entry) = index.leads.get_mut(&lead_id) {
                    entry.withdraw_failures = failures;
                    entry.withdraw_failed_at = Some(now);
                }
                pass.tick.failed += 1;
                if failures == self.settings.max_send_attempts {
                    self.record_agent_error(
                        "invitation_withdrawn",
                        &format!(
                            "the provider refused {failures} times to withdraw an invitation; \
                             still trying: {error}"
                        ),
                        Some(lead_id),
                        true,
                        step_event_id(
                            lead_id,
                            &format!("withdraw_failed#{}", lead.invitations_sent),
                        ),
                    )
                    .await?;
                    pass.tick.agent_errors += 1;
                }
                let exponent = (failures - 1).min(16);
                return Ok(Progress::DueAt(
                    now + self.settings.retry_backoff * 2i32.pow(exponent),
                ));
            }
        };
        let metadata = self.metadata(
            step_event_id(lead_id, &format!("withdraw#{}", lead.invitations_sent)),
            "invitation_withdrawn",
            tracked.correlation,
        );
        let command = LeadCommand::WithdrawInvitation {
            reason,
            policy: self.policy.invitations,
        };
        let done = self.run_lead(lead_id, &command, &metadata).await?;
        if done.is_some_and(|events| events > 0) {
            pass.tick.withdrawn += 1;
            if let Some(untold) = untold {
                let note = LeadCommand::AddNote {
                    text: format!("Invitation withdrawn here only: {untold}; withdraw it by hand"),
                };
                let metadata = self.metadata(
                    step_event_id(lead_id, &format!("withdraw_note#{}", lead.invitations_sent)),
                    "note_added",
                    tracked.correlation,
                );
                self.run_lead(lead_id, &note, &metadata).await?;
            }
        }
        self.refresh(index, lead_id).await?;
        if let Some(entry) = index.leads.get_mut(&lead_id) {
            entry.withdraw_failures = 0;
            entry.withdraw_failed_at = None;
        }
        Ok(if done.is_some() {
            Progress::Again
        } else {
            Progress::Done
        })
    }

    /// Records that the agent stopped trying to reach a lead after repeated refusals.
    async fn give_up(
        &self,
        index: &mut Index,
        lead_id: Uuid,
        failures: u32,
    ) -> Result<(), OutreachError> {
        self.record_agent_error(
            "send",
            &format!(
                "the provider refused {failures} sends to this lead; the agent stopped trying"
            ),
            Some(lead_id),
            false,
            step_event_id(lead_id, &format!("gave_up:{failures}")),
        )
        .await?;
        if let Some(tracked) = index.leads.get_mut(&lead_id) {
            tracked.gave_up = true;
        }
        Ok(())
    }

    /// `agent_error` on the department stream; `key` names it (the same key records it once).
    async fn record_agent_error(
        &self,
        operation: &str,
        error: &str,
        lead_id: Option<Uuid>,
        retryable: bool,
        key: Uuid,
    ) -> Result<(), OutreachError> {
        let command = DepartmentCommand::RecordAgentError {
            agent: OUTREACH.into(),
            operation: operation.into(),
            error: error.into(),
            lead_id,
            retryable,
        };
        let metadata = self.metadata(key, "agent_error", None);
        self.handler
            .execute::<DepartmentState>(DEPARTMENT_STREAM, &command, &metadata)
            .await?;
        Ok(())
    }

    /// Tells the manager what the LLM port asked to be told (budget spent, circuit open…).
    async fn raise_alerts(&self, alerts: &[LlmAlert], cause: Uuid) -> Result<(), OutreachError> {
        for alert in alerts {
            let command = DepartmentCommand::RaiseAlert {
                metric: alert.metric.clone(),
                value: alert.value,
                threshold: alert.threshold,
                severity: AlertSeverity::Warning,
                message: alert.message.clone(),
            };
            self.department(&command, step_event_id(cause, &alert.metric))
                .await?;
        }
        Ok(())
    }

    /// A department command (an alert) named by `key`; a refusal (e.g. the day's alert for
    /// this metric was raised already) is no error.
    async fn department(
        &self,
        command: &DepartmentCommand,
        key: Uuid,
    ) -> Result<(), OutreachError> {
        let metadata = self.metadata(key, "performance_alert", None);
        match self
            .handler
            .execute::<DepartmentState>(DEPARTMENT_STREAM, command, &metadata)
            .await
        {
            Ok(_) | Err(CommandError::Rejected(_)) => Ok(()),
            Err(other) => Err(other.into()),
        }
    }

    /// The variant weights of the latest `strategy_update` (empty: none, choose evenly). Read
    /// from the raw body, so a `strategy_update` written before the field existed reads as
    /// "no weights", and so do malformed ones.
    async fn variant_weights(&self) -> Result<BTreeMap<String, f64>, StoreError> {
        let mut cache = self.weights.lock().await;
        let events = self
            .handler
            .store()
            .read_stream(DEPARTMENT_STREAM, cache.0 + 1, None)
            .await?;
        for event in &events {
            if event.event_type == "strategy_update" {
                cache.1 = event
                    .data
                    .get("variant_weights")
                    .and_then(|weights| {
                        serde_json::from_value::<BTreeMap<String, f64>>(weights.clone()).ok()
                    })
                    .unwrap_or_default();
            }
            cache.0 = event.stream_version;
        }
        Ok(cache.1.clone())
    }

    /// Drafts lead `lead_id`'s first message as `draft_id`; false when the lead refused.
    async fn draft_initial(
        &self,
        lead_id: Uuid,
        lead: &LeadState,
        draft_id: Uuid,
        correlation_id: Option<Uuid>,
    ) -> Result<bool, OutreachError> {
        let Some((classification, confidence)) = lead.classification else {
            return Ok(false);
        };
        let weights = self.variant_weights().await?;
        let variant = choose_variant(classification, lead_id, &weights);
        let context = MessageContext {
            event_name: self.settings.event_name.clone(),
            after_invitation: !lead.is_connection,
        };
        let written = write_message(
            self.llm.as_ref(),
            self.settings.message_generation_mode,
            &profile_of(lead),
            classification,
            MessageKind::FirstMessage,
            variant,
            &context,
        )
        .await?;
        self.raise_alerts(&written.alerts, draft_id).await?;
        let review = if confidence.value() < self.settings.review_confidence_threshold {
            Review::Required {
                reason: format!(
                    "classification confidence {:.2} is below the review threshold {:.2}",
                    confidence.value(),
                    self.settings.review_confidence_threshold
                ),
            }
        } else {
            Review::NotNeeded
        };
        let command = LeadCommand::DraftMessage {
            draft_id,
            kind: LeadMessageKind::Initial,
            variant: Some(written.variant.as_str().to_owned()),
            text: written.text,
            review,
            policy: self.policy.follow_up_policy(),
        };
        let mut metadata = self.metadata(draft_id, "message_drafted", correlation_id);
        metadata.llm = written.usage;
        Ok(self.run_lead(lead_id, &command, &metadata).await?.is_some())
    }

    /// Drafts follow-up `number` in the lead's variant; approved at once (the sequence's own
    /// follow-up templates, for a lead a human or the rules already cleared).
    async fn draft_follow_up(
        &self,
        lead_id: Uuid,
        lead: &LeadState,
        number: u32,
        draft_id: Uuid,
        correlation_id: Option<Uuid>,
    ) -> Result<bool, OutreachError> {
        let Some((classification, _)) = lead.classification else {
            return Ok(false);
        };
        let variant = lead_variant(lead)
            .filter(|variant| variant.classification() == classification)
            .unwrap_or_else(|| choose_variant(classification, lead_id, &BTreeMap::new()));
        let kind = if number <= 1 {
            MessageKind::FollowUp1
        } else {
            MessageKind::FollowUp2
        };
        let context = MessageContext {
            event_name: self.settings.event_name.clone(),
            after_invitation: false,
        };
        let written = write_message(
            self.llm.as_ref(),
            self.settings.message_generation_mode,
            &profile_of(lead),
            classification,
            kind,
            variant,
            &context,
        )
        .await?;
        self.raise_alerts(&written.alerts, draft_id).await?;
        let command = LeadCommand::DraftMessage {
            draft_id,
            kind: LeadMessageKind::FollowUp,
            variant: Some(written.variant.as_str().to_owned()),
            text: written.text,
            review: Review::NotNeeded,
            policy: self.policy.follow_up_policy(),
        };
        let mut metadata = self.metadata(draft_id, "message_drafted", correlation_id);
        metadata.llm = written.usage;
        Ok(self.run_lead(lead_id, &command, &metadata).await?.is_some())
    }

    /// The note of the lead's next invitation, or None once an account's monthly quota is spent
    /// (any account may end up sending it, so every account must have room).
    async fn invitation_note(
        &self,
        index: &Index,
        lead_id: Uuid,
        lead: &LeadState,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, OutreachError> {
        if let Some(quota) = self.settings.monthly_note_quota {
            let spent = self.accounts.iter().any(|account| {
                index
                    .notes
                    .get(&(account.id.to_string(), now.year(), now.month()))
                    .copied()
                    .unwrap_or(0)
                    >= quota
            });
            if spent {
                return Ok(None);
            }
        }
        let Some((classification, _)) = lead.classification else {
            return Ok(None);
        };
        let variant = lead_variant(lead)
            .filter(|variant| variant.classification() == classification)
            .unwrap_or_else(|| choose_variant(classification, lead_id, &BTreeMap::new()));
        let written = write_message(
            self.llm.as_ref(),
            self.settings.message_generation_mode,
            &profile_of(lead),
            classification,
            MessageKind::ConnectionNote,
            variant,
            &MessageContext {
                event_name: self.settings.event_name.clone(),
                after_invitation: false,
            },
        )
        .await?;
        self.raise_alerts(&written.alerts, step_event_id(lead_id, "note"))
            .await?;
        Ok(Some(written.text).filter(|text| !text.trim().is_empty()))
    }

    /// `lead_allocation`: the first message's draft.
    async fn on_allocation(
        &self,
        lead_id: Uuid,
        event: &RecordedEvent,
    ) -> Result<(), OutreachError> {
        let lead = self.load(lead_id).await?;
        if !lead.drafts.is_empty() {
            return Ok(());
        }
        self.draft_initial(
            lead_id,
            &lead,
            initial_draft_id(lead_id, 0),
            correlation_from(event),
        )
        .await?;
        Ok(())
    }

    /// `invitation_accepted`: a new first-message draft when every earlier one was rejected.
    async fn on_acceptance(
        &self,
        lead_id: Uuid,
        event: &RecordedEvent,
    ) -> Result<(), OutreachError> {
        let lead = self.load(lead_id).await?;
        if live_initial_draft(&lead).is_some() || lead.first_message_sent_at.is_some() {
            return Ok(());
        }
        let attempt = rejected_initial_drafts(&lead);
        self.draft_initial(
            lead_id,
            &lead,
            initial_draft_id(lead_id, attempt),
            correlation_from(event),
        )
        .await?;
        Ok(())
    }

    /// `response_received`: the reply's analysis (which qualifies, closes or stops the lead).
    async fn on_response(&self, lead_id: Uuid, event: &RecordedEvent) -> Result<(), OutreachError> {
        let number = event
            .data
            .get("response_number")
            .and_then(serde_json::Value::as_u64)
            .and_then(|number| u32::try_from(number).ok())
            .ok_or_else(|| OutreachError::BadEvent {
                event_id: event.event_id,
                detail: "response_received without a response_number".into(),
            })?;
        let lead = self.load(lead_id).await?;
        let Some(response) = lead
            .responses
            .iter()
            .find(|response| response.response_number == number)
        else {
            return Ok(());
        };
        if response.analysis.is_some() || response.text.trim().is_empty() {
            return Ok(());
        }
        let analysed = analyse(self.llm.as_ref(), &response.text).await?;
        self.raise_alerts(&analysed.alerts, event.event_id).await?;
        if let Some(back) = analysed.return_date(response.received_at) {
            tracing::info!(%lead_id, %back, "out of office until the return date");
        }
        let received_at = response.received_at;
        let mut metadata =
            CommandMetadata::caused_by(event, Actor::agent(OUTREACH), self.clock.now())
                .with_step(event.event_id, "response_analysed");
        metadata.llm = analysed.usage.clone();
        let command = analysed.command(
            number,
            received_at,
            &self.settings.hand_over_to,
            self.policy.follow_up_policy(),
        );
        match self
            .handler
            .execute::<LeadState>(&lead_stream(lead_id), &command, &metadata)
            .await
        {
            Ok(_) | Err(CommandError::Rejected(DomainError::ResponseAlreadyAnalysed { .. })) => {
                Ok(())
            }
            Err(CommandError::Rejected(rejection)) => {
                tracing::info!(%lead_id, %rejection, "the lead refused the reply's analysis");
                Ok(())
            }
            Err(other) => Err(other.into()),
        }
    }

    async fn load(&self, lead_id: Uuid) -> Result<LeadState, StoreError> {
        Ok(self
            .handler
            .load::<LeadState>(&lead_stream(lead_id))
            .await?
            .state)
    }
}

/// One tick's bookkeeping.
#[derive(Default)]
struct Pass {
    tick: OutreachTick,
    /// Per send action, the time no account can take one before (learnt this tick).
    blocked: HashMap<&'static str, DateTime<Utc>>,
    /// Provider refusals in a row, across leads.
    consecutive_failures: u32,
}

/// What a step left to do.
enum Progress {
    /// Look at the lead again now.
    Again,
    /// Nothing more now, nor at a known time.
    Done,
    /// Nothing more before this time.
    DueAt(DateTime<Utc>),
}

/// The journey an event belongs to (its correlation, or itself when it starts one).
fn correlation_from(event: &RecordedEvent) -> Option<Uuid> {
    event.metadata.correlation_id.or(Some(event.event_id))
}

/// The variant the lead's first message was written in.
fn lead_variant(lead: &LeadState) -> Option<TemplateVariant> {
    let (draft_id, _) = live_initial_draft(lead)?;
    let name = lead.draft(draft_id)?.variant.as_deref()?;
    TemplateVariant::ALL
        .into_iter()
        .find(|variant| variant.as_str() == name)
}

/// The agent behind the durable subscription.
struct OutreachHandler<S: EventStore + ?Sized, L: LlmPort> {
    agent: Arc<OutreachAgent<S, L>>,
}

#[async_trait]
impl<S: EventStore + ?Sized + 'static, L: LlmPort + 'static> Handler for OutreachHandler<S, L> {
    async fn handle(
        &self,
        event: &RecordedEvent,
        _context: &mut HandlerContext,
    ) -> Result<(), HandlerError> {
        let Some(lead_id) = lead_id_of(&event.stream_id) else {
            return Ok(());
        };
        match event.event_type.as_str() {
            "lead_allocation" => self.agent.on_allocation(lead_id, event).await?,
            "invitation_accepted" => self.agent.on_acceptance(lead_id, event).await?,
            "response_received" => self.agent.on_response(lead_id, event).await?,
            _ => {}
        }
        Ok(())
    }
}
