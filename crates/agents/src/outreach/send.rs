//! The send path: how one invitation or one approved message reaches a person at most once.
//!
//! Two streams take part, so it is two appends linked by deterministic ids (DESIGN.md, "Write
//! path rules"):
//!
//! 1. **Reserve** a slot on a sending account's stream (`send_slot_reserved`): the account's
//!    daily and weekly caps, the drawn 5–15 minute gap and the working hours hold there, even
//!    with several Outreach processes. The slot is also the recorded *intent to send*: its id
//!    is derived from the send (the draft, or the lead's invitation number), the account and
//!    the attempt, so a crashed attempt finds its own slot again.
//! 2. **Call the provider** with an idempotency key derived from the slot id.
//! 3. **Record** the outcome on the lead (`message_sent` / `invitation_sent`, or
//!    `message_send_failed`), releasing the slot when nothing reached LinkedIn.
//!
//! After a crash between 1 and 3 the next attempt finds the unreleased slot and reconciles
//! with the provider by the same key before anything is sent again: found → record it; the
//! provider says it never arrived → send with the same key; the provider cannot tell →
//! `message_send_failed` with outcome `unknown`, for a human to decide. Accounts are tried in
//! priority order: a reserve takes over when the primary's caps are reached.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use salesdept_events::domain::account::{
    AccountCommand, AccountLimits, AccountState, ReleaseReason, ReleaseSendSlot, ReserveSendSlot,
    SendAction,
};
use salesdept_events::domain::lead::{LeadCommand, LeadState, SendKind, SendOutcome};
use salesdept_events::domain::{
    AccountId, CommandError, CommandHandler, CommandMetadata, DomainError, FollowUpPolicy,
    InvitationPolicy, RateLimit, account_stream, is_account_stream, lead_stream,
};
use salesdept_events::{Actor, EventStore, StoreError, step_event_id};
use sha2::{Digest, Sha256};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::clock::Clock;
use crate::linkedin::{
    IdempotencyKey, InvitationNote, LinkedInError, LinkedInPort, MessageText, Recipient,
    SentMessage,
};

/// The actor name of the Outreach agent's events.
pub const OUTREACH: &str = "outreach";

/// One LinkedIn account Outreach may send from, with its limits and its provider adapter.
#[derive(Clone)]
pub struct SendingAccount {
    pub id: AccountId,
    pub limits: AccountLimits,
    pub linkedin: Arc<dyn LinkedInPort>,
}

impl std::fmt::Debug for SendingAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendingAccount")
            .field("id", &self.id)
            .field("provider", &self.linkedin.provider())
            .finish_non_exhaustive()
    }
}

/// What to send to a lead.
#[derive(Clone, Debug, PartialEq)]
pub enum SendRequest {
    /// An approved draft (a first message or a follow-up) to a connection.
    Message { draft_id: Uuid },
    /// A connection invitation, with a note or none.
    Invitation { note: Option<String> },
}

/// What became of a send.
#[derive(Clone, Debug, PartialEq)]
pub enum SendResult {
    /// The provider has it, and the lead's stream says so.
    Sent {
        account_id: AccountId,
        slot_id: Uuid,
        provider_message_id: String,
        /// Found again at the provider after an interrupted attempt (not sent a second time).
        reconciled: bool,
    },
    /// No account may send now: try again at `retry_at` (the earliest any account opens).
    NotNow {
        retry_at: DateTime<Utc>,
        /// The cap or rule that bound, per account in priority order.
        bound_by: Vec<(AccountId, Bound)>,
    },
    /// The lead may not get this send (stopped, already sent, not approved, not connected…).
    Refused(DomainError),
    /// The provider refused on every account that had room: recorded as failed (nothing
    /// reached LinkedIn); a later attempt may send.
    Failed { error: String },
    /// Nobody knows whether it arrived: recorded with outcome unknown; only a human can
    /// approve the draft again.
    Unknown {
        account_id: AccountId,
        error: String,
    },
}

/// Why an account could not take a send now.
#[derive(Clone, Debug, PartialEq)]
pub enum Bound {
    Limit(RateLimit),
    OutsideWorkingHours,
    /// The provider said the account's own LinkedIn limit is reached.
    ProviderLimit(String),
}

/// Why the send path could not run at all (the store failed). Nothing unsafe happened: the
/// next attempt resumes from the log.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stream {stream_id} kept changing: gave up after {attempts} attempts")]
    Contention { stream_id: String, attempts: usize },
    #[error("no sending account is configured")]
    NoAccounts,
}

impl From<CommandError> for SendError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Store(error) => Self::Store(error),
            CommandError::TooManyConflicts {
                stream_id,
                attempts,
            } => Self::Contention {
                stream_id,
                attempts,
            },
            // Callers handle rejections before converting; one that slips through is a bug in
            // the send path, reported as a store-level failure rather than lost.
            CommandError::Rejected(rejection) => Self::Store(StoreError::InvalidAppend(format!(
                "unexpected refusal in the send path: {rejection}"
            ))),
        }
    }
}

/// Runs the send path against the store, for accounts in priority order.
pub struct Sender<S: EventStore + ?Sized> {
    handler: CommandHandler<S>,
    accounts: Vec<SendingAccount>,
    clock: Arc<dyn Clock>,
    follow_ups: FollowUpPolicy,
    invitations: InvitationPolicy,
}

impl<S: EventStore + ?Sized> Sender<S> {
    pub fn new(
        store: Arc<S>,
        accounts: Vec<SendingAccount>,
        clock: Arc<dyn Clock>,
        follow_ups: FollowUpPolicy,
        invitations: InvitationPolicy,
    ) -> Self {
        Self {
            // Account streams take every send all month: fold them on from the last read. Only
            // they are cached: lead streams hold personal data, which must not outlive a forget.
            handler: CommandHandler::new(store)
                .with_max_attempts(8)
                .with_state_cache(is_account_stream),
            accounts,
            clock,
            follow_ups,
            invitations,
        }
    }

    pub fn accounts(&self) -> &[SendingAccount] {
        &self.accounts
    }

    fn metadata(&self, correlation_id: Option<Uuid>, cause: Uuid, step: &str) -> CommandMetadata {
        let mut metadata = CommandMetadata::new(Actor::agent(OUTREACH), self.clock.now())
            .with_step(cause, step.to_owned());
        metadata.correlation_id = correlation_id;
        metadata
    }

    /// Sends `request` to lead `lead_id` at most once (see the module docs).
    ///
    /// The whole send — the account's slot, the provider's call, the outcome — runs in a
    /// `send` span that continues the lead's trace (the span of its latest event) when the
    /// caller, a scheduled tick, is in another one.
    pub async fn send(
        &self,
        lead_id: Uuid,
        request: &SendRequest,
        correlation_id: Option<Uuid>,
    ) -> Result<SendResult, SendError> {
        if self.accounts.is_empty() {
            return Err(SendError::NoAccounts);
        }
        let stream = lead_stream(lead_id);
        let loaded = self.handler.load::<LeadState>(&stream).await?;
        let action = match request {
            SendRequest::Message { .. } => "message",
            SendRequest::Invitation { .. } => "invitation",
        };
        let span = tracing::info_span!("send", lead_id = %lead_id, action);
        salesdept_events::trace::continue_stream_trace(&span, loaded.latest_traceparent.as_deref());
        async move {
            let outcome = self
                .send_from(lead_id, &stream, loaded.state, request, correlation_id)
                .await;
            if let Err(error) = &outcome {
                tracing::error!(error = %error);
            }
            outcome
        }
        .instrument(span)
        .await
    }

    /// The loop of [`Sender::send`], from the lead as first read.
    async fn send_from(
        &self,
        lead_id: Uuid,
        stream: &str,
        first_read: LeadState,
        request: &SendRequest,
        correlation_id: Option<Uuid>,
    ) -> Result<SendResult, SendError> {
        let mut first_read = Some(first_read);
        let mut bound_by = Vec::new();
        let mut retry_at: Option<DateTime<Utc>> = None;
        let mut last_failure: Option<String> = None;
        let mut index = 0;
        while index < self.accounts.len() {
            let lead = match first_read.take() {
                Some(lead) => lead,
                None => self.handler.load::<LeadState>(stream).await?.state,
            };
            let plan = match self.plan(&lead, request) {
                Ok(plan) => plan,
                Err(rejection) => return Ok(SendResult::Refused(rejection)),
            };
            // An interrupted attempt's slot, on whichever account it was taken, comes first.
            if let Some((account, slot_id)) = self.interrupted_slot(lead_id, &plan).await? {
                return self
                    .reconcile(&plan, account, slot_id, correlation_id)
                    .await;
            }
            let account = &self.accounts[index];
            let slot_id = plan.slot_id(&account.id);
            let reserve: AccountCommand = ReserveSendSlot {
                slot_id,
                lead_id,
                action: plan.action,
                gap: account.limits.gap_from_fraction(fraction_of(slot_id)),
                limits: account.limits.clone(),
            }
            .into();
            // Named by the slot (the intent, the account and the attempt): a retry after a
            // recorded failure reserves a new slot under a new event id, while a crashed
            // attempt's retry finds its own reservation again.
            let metadata = self.metadata(correlation_id, slot_id, "reserve_slot");
            match self
                .handler
                .execute::<AccountState>(&account_stream(&account.id), &reserve, &metadata)
                .await
            {
                Ok(_) => {}
                Err(CommandError::Rejected(DomainError::RateLimited {
                    limit,
                    retry_at: at,
                })) => {
                    bound_by.push((account.id.clone(), Bound::Limit(limit)));
                    retry_at = Some(retry_at.map_or(at, |earliest| earliest.min(at)));
                    index += 1;
                    continue;
                }
                Err(CommandError::Rejected(DomainError::OutsideWorkingHours { next_opening })) => {
                    bound_by.push((account.id.clone(), Bound::OutsideWorkingHours));
                    retry_at = Some(retry_at.map_or(next_opening, |at| at.min(next_opening)));
                    index += 1;
                    continue;
                }
                Err(other) => return Err(other.into()),
            }
            match self
                .call_provider(&plan, account, slot_id, correlation_id)
                .await?
            {
                Attempt::Done(result) => return Ok(result),
                Attempt::AccountLimited(kind) => {
                    bound_by.push((account.id.clone(), Bound::ProviderLimit(kind.clone())));
                    last_failure = Some(kind);
                    index += 1;
                }
                Attempt::Failed(error) => {
                    return Ok(SendResult::Failed { error });
                }
            }
        }
        match retry_at {
            Some(retry_at) => Ok(SendResult::NotNow { retry_at, bound_by }),
            None => Ok(SendResult::Failed {
                error: last_failure
                    .unwrap_or_else(|| "no sending account could take the send".to_owned()),
            }),
        }
    }

    /// What this send is, given the lead as it stands; refuses what the lead's rules refuse.
    fn plan(&self, lead: &LeadState, request: &SendRequest) -> Result<Plan, DomainError> {
        let now = self.clock.now();
        let url = lead
            .profile
            .linkedin_url
            .clone()
            .ok_or(DomainError::LeadForgotten)?;
        let recipient = Recipient {
            profile_url: url,
            provider_id: None,
            full_name: lead.profile.name.clone().unwrap_or_default(),
        };
        let lead_id = lead.lead_id.ok_or(DomainError::LeadNotDiscovered)?;
        match request {
            SendRequest::Message { draft_id } => {
                let draft = lead.check_send(*draft_id, &self.follow_ups, now)?;
                Ok(Plan {
                    lead_id,
                    intent: *draft_id,
                    attempt: lead.send_failures,
                    action: SendAction::Message,
                    kind: SendKind::from(draft.kind),
                    draft_id: Some(*draft_id),
                    text: draft.text.clone(),
                    recipient,
                })
            }
            SendRequest::Invitation { note } => {
                let note = note
                    .as_deref()
                    .map(str::trim)
                    .filter(|note| !note.is_empty());
                lead.check_invite(note, &self.invitations, now)?;
                Ok(Plan {
                    lead_id,
                    intent: step_event_id(
                        lead_id,
                        &format!("invitation#{}", lead.invitations_sent),
                    ),
                    attempt: lead.send_failures,
                    action: SendAction::Invitation,
                    kind: SendKind::Invitation,
                    draft_id: None,
                    text: note.unwrap_or_default().to_owned(),
                    recipient,
                })
            }
        }
    }

    /// A slot this send reserved earlier whose outcome was never recorded.
    async fn interrupted_slot(
        &self,
        lead_id: Uuid,
        plan: &Plan,
    ) -> Result<Option<(&SendingAccount, Uuid)>, SendError> {
        for account in &self.accounts {
            let slot_id = plan.slot_id(&account.id);
            let state = self
                .handler
                .load::<AccountState>(&account_stream(&account.id))
                .await?
                .state;
            if let Some(slot) = state.slot(slot_id)
                && slot.lead_id == lead_id
                && slot.released.is_none()
            {
                return Ok(Some((account, slot_id)));
            }
        }
        Ok(None)
    }

    /// Finds out at the provider what became of an interrupted attempt, and records it.
    async fn reconcile(
        &self,
        plan: &Plan,
        account: &SendingAccount,
        slot_id: Uuid,
        correlation_id: Option<Uuid>,
    ) -> Result<SendResult, SendError> {
        let key = plan.key(slot_id);
        match account.linkedin.find_sent(key).await {
            Ok(Some(sent)) => {
                tracing::info!(account = %account.id, "an interrupted send had reached the provider: recording it");
                self.record_sent(plan, account, slot_id, &sent, correlation_id, true)
                    .await
            }
            Ok(None) => {
                tracing::info!(account = %account.id, "an interrupted send never reached the provider: sending it now");
                match self
                    .call_provider(plan, account, slot_id, correlation_id)
                    .await?
                {
                    Attempt::Done(result) => Ok(result),
                    Attempt::AccountLimited(error) | Attempt::Failed(error) => {
                        Ok(SendResult::Failed { error })
                    }
                }
            }
            Err(error) => {
                let error = format!(
                    "an earlier attempt was interrupted and {} cannot tell whether it arrived: {error}",
                    account.linkedin.provider()
                );
                self.record_unknown(plan, account, slot_id, error, correlation_id)
                    .await
            }
        }
    }

    /// Calls the provider for a reserved slot and records what happened.
    async fn call_provider(
        &self,
        plan: &Plan,
        account: &SendingAccount,
        slot_id: Uuid,
        correlation_id: Option<Uuid>,
    ) -> Result<Attempt, SendError> {
        let key = plan.key(slot_id);
        let answer = match plan.action {
            SendAction::Message => match MessageText::parse(&plan.text) {
                Ok(text) => {
                    account
                        .linkedin
                        .send_message(&plan.recipient, &text, key)
                        .await
                }
                Err(error) => Err(error),
            },
            SendAction::Invitation => {
                let note = if plan.text.is_empty() {
                    Ok(None)
                } else {
                    InvitationNote::parse(&plan.text).map(Some)
                };
                match note {
                    Ok(note) => {
                        account
                            .linkedin
                            .send_connection_request(&plan.recipient, note.as_ref(), key)
                            .await
                    }
                    Err(error) => Err(error),
                }
            }
        };
        match answer {
            Ok(sent) => Ok(Attempt::Done(
                self.record_sent(plan, account, slot_id, &sent, correlation_id, false)
                    .await?,
            )),
            Err(
                error @ (LinkedInError::OutcomeUnknown { .. }
                | LinkedInError::InvalidResponse { .. }),
            ) => {
                let error = error.to_string();
                Ok(Attempt::Done(
                    self.record_unknown(plan, account, slot_id, error, correlation_id)
                        .await?,
                ))
            }
            Err(error) => {
                let limited = matches!(error, LinkedInError::Limit { .. });
                let error = error.to_string();
                self.record_failure(
                    plan,
                    account,
                    slot_id,
                    SendOutcome::Failed,
                    &error,
                    correlation_id,
                )
                .await?;
                self.release(account, slot_id, correlation_id).await?;
                Ok(if limited {
                    Attempt::AccountLimited(error)
                } else {
                    Attempt::Failed(error)
                })
            }
        }
    }

    async fn record_sent(
        &self,
        plan: &Plan,
        account: &SendingAccount,
        slot_id: Uuid,
        sent: &SentMessage,
        correlation_id: Option<Uuid>,
        reconciled: bool,
    ) -> Result<SendResult, SendError> {
        let command = match plan.draft_id {
            Some(draft_id) => LeadCommand::RecordMessageSent {
                draft_id,
                account_id: account.id.clone(),
                slot_id,
                provider_message_id: sent.provider_message_id.clone(),
                policy: self.follow_ups,
            },
            None => LeadCommand::RecordInvitationSent {
                account_id: account.id.clone(),
                slot_id,
                provider_message_id: sent.provider_message_id.clone(),
                note: (!plan.text.is_empty()).then(|| plan.text.clone()),
                policy: self.invitations,
            },
        };
        let metadata = self.metadata(correlation_id, slot_id, "record_sent");
        match self
            .handler
            .execute::<LeadState>(&lead_stream(plan.lead_id), &command, &metadata)
            .await
        {
            Ok(_) => {
                let kind = if plan.draft_id.is_some() {
                    "message"
                } else {
                    "invitation"
                };
                metrics::counter!(
                    "salesdept_sends_total",
                    "account" => account.id.to_string(),
                    "kind" => kind
                )
                .increment(1);
                Ok(SendResult::Sent {
                    account_id: account.id.clone(),
                    slot_id,
                    provider_message_id: sent.provider_message_id.clone(),
                    reconciled,
                })
            }
            // The person has the message whatever the lead's rules now say (e.g. a human marked
            // the lead do-not-contact while it was in flight): the fact cannot be recorded as a
            // send, so it is recorded as a send with an unknown outcome for a human to see.
            Err(CommandError::Rejected(rejection)) => {
                let error = format!(
                    "{} accepted the send ({}) but the lead refused the record: {rejection}",
                    account.linkedin.provider(),
                    sent.provider_message_id
                );
                self.record_unknown(plan, account, slot_id, error, correlation_id)
                    .await
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Records that nobody knows whether the send arrived (a human decides) and says so.
    async fn record_unknown(
        &self,
        plan: &Plan,
        account: &SendingAccount,
        slot_id: Uuid,
        error: String,
        correlation_id: Option<Uuid>,
    ) -> Result<SendResult, SendError> {
        self.record_failure(
            plan,
            account,
            slot_id,
            SendOutcome::Unknown,
            &error,
            correlation_id,
        )
        .await?;
        Ok(SendResult::Unknown {
            account_id: account.id.clone(),
            error,
        })
    }

    async fn record_failure(
        &self,
        plan: &Plan,
        account: &SendingAccount,
        slot_id: Uuid,
        outcome: SendOutcome,
        error: &str,
        correlation_id: Option<Uuid>,
    ) -> Result<(), SendError> {
        let command = LeadCommand::RecordSendFailure {
            kind: plan.kind,
            account_id: account.id.clone(),
            draft_id: plan.draft_id,
            slot_id: Some(slot_id),
            outcome,
            error: error.to_owned(),
        };
        let metadata = self.metadata(correlation_id, slot_id, "record_failure");
        match self
            .handler
            .execute::<LeadState>(&lead_stream(plan.lead_id), &command, &metadata)
            .await
        {
            Ok(_) => Ok(()),
            Err(CommandError::Rejected(rejection)) => {
                // Only a lead that vanished refuses a failure record; say so and go on.
                tracing::warn!(%rejection, "the lead refused a send-failure record");
                Ok(())
            }
            Err(other) => Err(other.into()),
        }
    }

    async fn release(
        &self,
        account: &SendingAccount,
        slot_id: Uuid,
        correlation_id: Option<Uuid>,
    ) -> Result<(), SendError> {
        let release: AccountCommand = ReleaseSendSlot {
            slot_id,
            reason: ReleaseReason::SendFailed,
        }
        .into();
        let metadata = self.metadata(correlation_id, slot_id, "release_slot");
        self.handler
            .execute::<AccountState>(&account_stream(&account.id), &release, &metadata)
            .await?;
        Ok(())
    }
}

/// One provider call's end.
enum Attempt {
    Done(SendResult),
    /// The provider said the account's LinkedIn limit is reached: try the next account.
    AccountLimited(String),
    /// The provider refused: recorded; stop for now.
    Failed(String),
}

/// A send, worked out from the lead's state.
#[derive(Clone, Debug)]
struct Plan {
    lead_id: Uuid,
    /// What identifies this send across attempts: the draft, or the lead's n-th invitation.
    intent: Uuid,
    /// How many sends to this lead failed before: a recorded failure starts a new attempt
    /// with new slot ids, while an interrupted attempt keeps its own.
    attempt: u32,
    action: SendAction,
    kind: SendKind,
    draft_id: Option<Uuid>,
    text: String,
    recipient: Recipient,
}

impl Plan {
    fn slot_id(&self, account: &AccountId) -> Uuid {
        step_event_id(self.intent, &format!("slot:{account}:{}", self.attempt))
    }

    fn key(&self, slot_id: Uuid) -> IdempotencyKey {
        IdempotencyKey::for_step(slot_id, "linkedin_send")
    }
}

/// A fraction in [0, 1] drawn from a slot id: the gap is random across slots but the same for
/// a retried reservation (which is then recognised, not drawn again).
fn fraction_of(slot_id: Uuid) -> f64 {
    let digest = Sha256::digest(slot_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}
