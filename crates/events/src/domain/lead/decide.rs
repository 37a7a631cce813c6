//! The lead's rules: every command a lead takes and what it produces, or why it is refused.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use uuid::Uuid;

use super::state::{Draft, DraftState, LeadState};
use super::{
    ClassificationFeedback, CloseOutcome, CloseReason, DoNotContactMarked, DoNotContactSource,
    FollowUpPolicy, FollowUpScheduled, HumanNotified, InvitationAccepted, InvitationKind,
    InvitationPolicy, InvitationSent, InvitationWithdrawn, LeadAllocation, LeadClassified,
    LeadClosed, LeadDiscovered, LeadEvent, LeadForgotten, LeadProfileUpdated, LeadQualified,
    LeadReassigned, LeadSource, MessageApproved, MessageDrafted, MessageKind, MessageRejected,
    MessageSendFailed, MessageSent, NoteAdded, PipelineStageChanged, Priority,
    QualityScoreCalculated, ResponseAnalysed, ResponseReceived, ReviewRequested, SendKind,
    SendOutcome, WithdrawalReason,
};
use crate::domain::error::DomainError;
use crate::domain::event::{Aggregate, DecisionContext};
use crate::domain::pii::Pii;
use crate::domain::status::{LeadStatus, LeadTransition, PipelineStage, next_status};
use crate::domain::values::{
    AccountId, Classification, Confidence, Intent, LinkedInUrl, QualityScore, Sentiment,
};

/// A new lead from a profile whose URL was just reserved.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscoverLead {
    pub lead_id: Uuid,
    pub url: LinkedInUrl,
    pub name: String,
    pub position: String,
    pub company: String,
    pub company_size: Option<String>,
    pub industry: Option<String>,
    pub is_connection: bool,
    pub source: LeadSource,
    pub search_id: Option<Uuid>,
    pub import_format: Option<String>,
    /// The rest of the profile (headline, about, location, recent activity, email); its name
    /// and URL are taken from the fields above.
    pub profile: Pii,
}

/// A known profile seen again: the fields read this time (None: not read).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileUpdate {
    pub position: Option<String>,
    pub company: Option<String>,
    pub company_size: Option<String>,
    pub industry: Option<String>,
    pub is_connection: Option<bool>,
    pub profile: Pii,
}

/// Whether a drafted message waits for a human.
#[derive(Clone, Debug, PartialEq)]
pub enum Review {
    /// Approved at once by the drafting agent.
    NotNeeded,
    /// Held In Review until a human approves or rejects it.
    Required { reason: String },
}

/// Everything that can be asked of a lead. Commands marked "human" are refused for any other
/// actor.
#[derive(Clone, Debug, PartialEq)]
pub enum LeadCommand {
    Discover(DiscoverLead),
    UpdateProfile(ProfileUpdate),
    Classify {
        classification: Classification,
        confidence: Confidence,
        rationale: Option<String>,
    },
    Score {
        score: QualityScore,
        factors: BTreeMap<String, f64>,
        rationale: Option<String>,
    },
    Allocate {
        assigned_to: String,
        priority: Priority,
        reason: String,
    },
    Reassign {
        to: String,
        reason: Option<String>,
    },
    /// The provider accepted a connection invitation (recorded right after the call).
    RecordInvitationSent {
        account_id: AccountId,
        slot_id: Uuid,
        provider_message_id: String,
        note: Option<String>,
        policy: InvitationPolicy,
    },
    RecordInvitationAccepted,
    WithdrawInvitation {
        reason: WithdrawalReason,
        policy: InvitationPolicy,
    },
    DraftMessage {
        draft_id: Uuid,
        kind: MessageKind,
        /// The template/variant the text was written from; the send carries it on.
        variant: Option<String>,
        text: String,
        review: Review,
        policy: FollowUpPolicy,
    },
    /// Human when the draft is held In Review or its send outcome is unknown.
    ApproveMessage {
        draft_id: Uuid,
        edited_text: Option<String>,
    },
    /// Human when the draft is held In Review or its send outcome is unknown.
    RejectMessage {
        draft_id: Uuid,
        reason: Option<String>,
    },
    /// The provider accepted an approved draft (recorded right after the call; check with
    /// [`LeadState::check_send`] right before it). Also records a send whose outcome was
    /// unknown, once the provider confirmed it arrived.
    RecordMessageSent {
        draft_id: Uuid,
        account_id: AccountId,
        slot_id: Uuid,
        provider_message_id: String,
        policy: FollowUpPolicy,
    },
    RecordSendFailure {
        kind: SendKind,
        account_id: AccountId,
        draft_id: Option<Uuid>,
        slot_id: Option<Uuid>,
        outcome: SendOutcome,
        error: String,
    },
    ScheduleFollowUp {
        policy: FollowUpPolicy,
    },
    RecordResponse {
        provider_message_id: Option<String>,
        text: String,
    },
    /// Also qualifies a positive reply (handing the lead to `hand_over_to`), closes the lead
    /// lost on NotInterested and marks it do-not-contact on DoNotContact. An OutOfOffice reply
    /// after the first message, when every reply so far was one, resumes the sequence: the
    /// lead goes back to Sent and its next follow-up (if `policy` leaves one) is rescheduled
    /// not before `return_date` (the day the reply says the person is back, 00:00 UTC), or
    /// `policy.out_of_office_delay` after the reply when it gives none.
    AnalyseResponse {
        response_number: u32,
        sentiment: Sentiment,
        intent: Intent,
        confidence: Confidence,
        rationale: Option<String>,
        hand_over_to: String,
        return_date: Option<NaiveDate>,
        policy: FollowUpPolicy,
    },
    NotifyHuman {
        recipient: String,
        channel: String,
    },
    /// Human.
    MoveToStage {
        stage: PipelineStage,
    },
    /// Human.
    Close {
        outcome: CloseOutcome,
        reason: Option<String>,
    },
    MarkDoNotContact {
        reason: Option<String>,
    },
    AddNote {
        text: String,
    },
    /// Human; also records `classification_feedback`.
    OverrideClassification {
        classification: Classification,
        reason: Option<String>,
    },
    /// Human; also records `classification_feedback`.
    OverrideScore {
        score: QualityScore,
        reason: Option<String>,
    },
    /// Erase the person's personal data (and never contact them again).
    Forget,
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::InvalidCommand(message.into())
}

fn non_blank(text: &str, what: &str) -> Result<(), DomainError> {
    if text.trim().is_empty() {
        Err(invalid(format!("{what} must not be empty")))
    } else {
        Ok(())
    }
}

/// The longest note a person may add, in characters: notes are lines of the Sheet's Notes
/// cell, which holds at most 50,000 characters (Google Sheets refuses a longer cell, and the
/// whole Sheet sync with it).
pub const MAX_NOTE_CHARS: usize = 5_000;

/// The longest message text a person may approve, in characters: LinkedIn's limit for a
/// message.
pub const MAX_MESSAGE_CHARS: usize = 8_000;

fn at_most(text: &str, what: &str, max: usize) -> Result<(), DomainError> {
    let length = text.trim().chars().count();
    if length > max {
        Err(invalid(format!(
            "{what} has {length} characters; at most {max}"
        )))
    } else {
        Ok(())
    }
}

fn non_blank_option(text: &Option<String>) -> Option<String> {
    text.as_ref()
        .filter(|text| !text.trim().is_empty())
        .cloned()
}

impl LeadState {
    /// The lead exists and its personal data was not forgotten.
    fn require_known(&self) -> Result<(), DomainError> {
        if !self.is_discovered() {
            Err(DomainError::LeadNotDiscovered)
        } else if self.forgotten {
            Err(DomainError::LeadForgotten)
        } else {
            Ok(())
        }
    }

    /// Nothing may be sent to the person any more.
    fn require_not_stopped(&self) -> Result<(), DomainError> {
        if self.forgotten {
            Err(DomainError::LeadForgotten)
        } else if self.do_not_contact || self.status == LeadStatus::DoNotContact {
            Err(DomainError::LeadIsDoNotContact)
        } else if self.closed.is_some() || self.status.is_final() {
            Err(DomainError::LeadIsClosed)
        } else {
            Ok(())
        }
    }

    /// The transition table allows `transition` from the current status.
    fn require(&self, transition: LeadTransition) -> Result<(), DomainError> {
        if next_status(self.status, transition).is_some() {
            return Ok(());
        }
        self.require_not_stopped()?;
        Err(DomainError::TransitionNotAllowed {
            status: self.status,
            transition,
        })
    }

    /// Whether a message of `kind` is still possible at all.
    fn require_kind_possible(&self, kind: MessageKind) -> Result<(), DomainError> {
        match kind {
            MessageKind::Initial if self.first_message_sent_at.is_some() => {
                Err(DomainError::FirstMessageAlreadySent)
            }
            MessageKind::FollowUp if self.reply_blocks_follow_ups() => {
                Err(DomainError::ReplyReceived)
            }
            _ => Ok(()),
        }
    }

    /// A follow-up is allowed: no reply, under the cap, the first message sent (and, given
    /// `now`, the delay since the last message passed).
    fn require_follow_up(
        &self,
        policy: &FollowUpPolicy,
        already_planned: u32,
        now: Option<DateTime<Utc>>,
    ) -> Result<(), DomainError> {
        self.require_not_stopped()?;
        self.require_kind_possible(MessageKind::FollowUp)?;
        if self.follow_ups_sent + already_planned >= policy.max_follow_ups {
            return Err(DomainError::FollowUpLimitReached {
                max: policy.max_follow_ups,
            });
        }
        self.require(LeadTransition::SendFollowUp)?;
        let last = self
            .last_message_sent_at
            .ok_or(DomainError::TransitionNotAllowed {
                status: self.status,
                transition: LeadTransition::SendFollowUp,
            })?;
        if let Some(now) = now {
            let mut not_before = last + policy.delay;
            if let Some(back) = self.follow_up_not_before() {
                not_before = not_before.max(back);
            }
            if now < not_before {
                return Err(DomainError::FollowUpTooEarly { not_before });
            }
        }
        Ok(())
    }

    /// Follow-up drafts written but neither sent nor rejected.
    fn open_follow_up_drafts(&self) -> u32 {
        let open = self.drafts.values().filter(|draft| {
            draft.kind == MessageKind::FollowUp
                && matches!(
                    draft.state,
                    DraftState::Pending
                        | DraftState::InReview
                        | DraftState::Approved
                        | DraftState::SendUnknown
                )
        });
        u32::try_from(open.count()).unwrap_or(u32::MAX)
    }

    /// Whether the approved draft may be sent now: the check `RecordMessageSent` makes. The
    /// Outreach agent asks it right before calling the provider, so that nothing goes to a
    /// lead that was stopped, already contacted, or not yet connected. A draft whose earlier
    /// send has an unknown outcome is refused: only a human may approve it again.
    pub fn check_send(
        &self,
        draft_id: Uuid,
        policy: &FollowUpPolicy,
        now: DateTime<Utc>,
    ) -> Result<&Draft, DomainError> {
        self.check_send_of(draft_id, policy, now, false)
    }

    /// `check_send`; `reconciled` also accepts a draft whose send outcome was unknown (the
    /// provider since confirmed it arrived).
    fn check_send_of(
        &self,
        draft_id: Uuid,
        policy: &FollowUpPolicy,
        now: DateTime<Utc>,
        reconciled: bool,
    ) -> Result<&Draft, DomainError> {
        self.require_known()?;
        let draft = self
            .draft(draft_id)
            .ok_or(DomainError::UnknownDraft { draft_id })?;
        let sendable = match draft.state {
            DraftState::Approved => true,
            DraftState::SendUnknown => reconciled,
            _ => false,
        };
        if !sendable {
            return Err(DomainError::DraftNotApproved { draft_id });
        }
        self.require_not_stopped()?;
        match draft.kind {
            MessageKind::Initial => {
                self.require_kind_possible(MessageKind::Initial)?;
                if self.status == LeadStatus::Allocated && !self.is_connection {
                    return Err(DomainError::NotConnected);
                }
                self.require(LeadTransition::SendFirstMessage)?;
            }
            MessageKind::FollowUp => self.require_follow_up(policy, 0, Some(now))?,
        }
        Ok(draft)
    }

    /// Whether an invitation may be sent now: the check `RecordInvitationSent` makes.
    pub fn check_invite(
        &self,
        note: Option<&str>,
        policy: &InvitationPolicy,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        self.require_known()?;
        self.require_not_stopped()?;
        if self.is_connection {
            return Err(DomainError::AlreadyConnected);
        }
        let chars = note.map_or(0, |note| note.chars().count());
        if chars > policy.max_note_chars {
            return Err(DomainError::InvitationNoteTooLong {
                chars,
                max: policy.max_note_chars,
            });
        }
        if let Some(withdrawn_at) = self.last_withdrawal_at {
            let not_before = withdrawn_at + policy.reinvite_after;
            if now < not_before {
                return Err(DomainError::ReinviteTooSoon { not_before });
            }
        }
        self.require(LeadTransition::Invite)
    }

    fn decide_discover(&self, discover: &DiscoverLead) -> Result<Vec<LeadEvent>, DomainError> {
        if let Some(lead_id) = self.lead_id {
            return Err(DomainError::LeadAlreadyDiscovered { lead_id });
        }
        non_blank(&discover.name, "the name")?;
        let mut pii = discover.profile.clone();
        pii.name = Some(discover.name.trim().to_owned());
        pii.linkedin_url = Some(discover.url.clone());
        Ok(vec![
            LeadDiscovered {
                lead_id: discover.lead_id,
                position: discover.position.trim().to_owned(),
                company: discover.company.trim().to_owned(),
                company_size: discover.company_size.clone(),
                industry: discover.industry.clone(),
                is_connection: discover.is_connection,
                source: discover.source,
                search_id: discover.search_id,
                import_format: discover.import_format.clone(),
                url_hash: discover.url.hash(),
                pii,
            }
            .into(),
        ])
    }

    fn decide_update_profile(&self, update: &ProfileUpdate) -> Result<Vec<LeadEvent>, DomainError> {
        self.require_known()?;
        if update
            .profile
            .linkedin_url
            .as_ref()
            .is_some_and(|url| Some(url) != self.profile.linkedin_url.as_ref())
        {
            return Err(invalid(
                "a lead's LinkedIn URL never changes: it is the lead's identity",
            ));
        }
        let changed = |new: &Option<String>, old: &Option<String>| {
            new.as_ref()
                .filter(|new| Some(*new) != old.as_ref())
                .cloned()
        };
        let changed_text = |new: &Option<String>, old: &str| {
            new.as_ref().filter(|new| new.as_str() != old).cloned()
        };
        let profile = &self.profile;
        let new = &update.profile;
        let event = LeadProfileUpdated {
            position: changed_text(&update.position, &self.position),
            company: changed_text(&update.company, &self.company),
            company_size: changed(&update.company_size, &self.company_size),
            industry: changed(&update.industry, &self.industry),
            is_connection: update
                .is_connection
                .filter(|now| *now != self.is_connection),
            pii: Pii {
                name: changed(&new.name, &profile.name),
                linkedin_url: None,
                headline: changed(&new.headline, &profile.headline),
                about: changed(&new.about, &profile.about),
                location: changed(&new.location, &profile.location),
                recent_activity: changed(&new.recent_activity, &profile.recent_activity),
                email: changed(&new.email, &profile.email),
                message_text: None,
                reply_text: None,
                note: None,
                rationale: None,
            },
        };
        if event == LeadProfileUpdated::default() {
            return Ok(Vec::new());
        }
        Ok(vec![event.into()])
    }

    fn decide_draft(
        &self,
        draft_id: Uuid,
        kind: MessageKind,
        variant: &Option<String>,
        text: &str,
        review: &Review,
        policy: &FollowUpPolicy,
    ) -> Result<Vec<LeadEvent>, DomainError> {
        self.require_known()?;
        if let Some(existing) = self.draft(draft_id) {
            return if existing.kind == kind {
                Ok(Vec::new())
            } else {
                Err(DomainError::DraftAlreadyExists { draft_id })
            };
        }
        non_blank(text, "the message")?;
        self.require_not_stopped()?;
        let follow_up_number = match kind {
            MessageKind::Initial => {
                self.require_kind_possible(kind)?;
                None
            }
            MessageKind::FollowUp => {
                let planned = self.open_follow_up_drafts();
                self.require_follow_up(policy, planned, None)?;
                Some(self.follow_ups_sent + planned + 1)
            }
        };
        self.require(LeadTransition::Draft)?;
        let drafted = MessageDrafted {
            draft_id,
            kind,
            follow_up_number,
            variant: non_blank_option(variant).map(|variant| variant.trim().to_owned()),
            pii: Pii::message(text),
        };
        let decision: LeadEvent = match review {
            Review::NotNeeded => MessageApproved {
                draft_id,
                edited: false,
                pii: Pii::default(),
            }
            .into(),
            Review::Required { reason } => {
                self.require(LeadTransition::RequestReview)?;
                ReviewRequested {
                    draft_id,
                    pii: Pii::optional_note(non_blank_option(&Some(reason.clone()))),
                }
                .into()
            }
        };
        Ok(vec![drafted.into(), decision])
    }

    /// The draft awaits a decision; a held one needs a human.
    fn require_decidable_draft(
        &self,
        draft_id: Uuid,
        context: &DecisionContext,
        action: &'static str,
    ) -> Result<&Draft, DomainError> {
        self.require_known()?;
        let draft = self
            .draft(draft_id)
            .ok_or(DomainError::UnknownDraft { draft_id })?;
        match draft.state {
            DraftState::Pending => {}
            DraftState::InReview | DraftState::SendUnknown => context.require_human(action)?,
            _ => return Err(DomainError::DraftNotPending { draft_id }),
        }
        Ok(draft)
    }

    fn decide_approve(
        &self,
        draft_id: Uuid,
        edited_text: &Option<String>,
        context: &DecisionContext,
    ) -> Result<Vec<LeadEvent>, DomainError> {
        let draft = self.require_decidable_draft(draft_id, context, "approving a held message")?;
        self.require_not_stopped()?;
        self.require_kind_possible(draft.kind)?;
        self.require(LeadTransition::Approve)?;
        if let Some(text) = edited_text {
            non_blank(text, "the edited message")?;
            at_most(text, "the edited message", MAX_MESSAGE_CHARS)?;
        }
        Ok(vec![
            MessageApproved {
                draft_id,
                edited: edited_text.is_some(),
                pii: edited_text.clone().map(Pii::message).unwrap_or_default(),
            }
            .into(),
        ])
    }

    fn decide_reject(
        &self,
        draft_id: Uuid,
        reason: &Option<String>,
        context: &DecisionContext,
    ) -> Result<Vec<LeadEvent>, DomainError> {
        self.require_decidable_draft(draft_id, context, "rejecting a held message")?;
        self.require(LeadTransition::Reject)?;
        Ok(vec![
            MessageRejected {
                draft_id,
                pii: Pii::optional_note(non_blank_option(reason)),
            }
            .into(),
        ])
    }

    fn decide_message_sent(
        &self,
        draft_id: Uuid,
        account_id: &AccountId,
        slot_id: Uuid,
        provider_message_id: &str,
        policy: &FollowUpPolicy,
        now: DateTime<Utc>,
    ) -> Result<Vec<LeadEvent>, DomainError> {
        if let Some(DraftState::Sent {
            provider_message_id: recorded,
        }) = self.draft(draft_id).map(|draft| &draft.state)
        {
            // The same send recorded again (a retried step): already done.
            if recorded == provider_message_id {
                return Ok(Vec::new());
            }
        }
        non_blank(provider_message_id, "the provider message id")?;
        let draft = self.check_send_of(draft_id, policy, now, true)?;
        let follow_up_number =
            (draft.kind == MessageKind::FollowUp).then_some(self.follow_ups_sent + 1);
        Ok(vec![
            MessageSent {
                account_id: account_id.clone(),
                kind: draft.kind,
                provider_message_id: provider_message_id.to_owned(),
                draft_id,
                slot_id,
                follow_up_number,
                variant: draft.variant.clone(),
                sent_at: now,
                pii: Pii::message(draft.text.clone()),
            }
            .into(),
        ])
    }

    #[allow(clippy::too_many_arguments)]
    fn decide_send_failure(
        &self,
        kind: SendKind,
        account_id: &AccountId,
        draft_id: Option<Uuid>,
        slot_id: Option<Uuid>,
        outcome: SendOutcome,
        error: &str,
    ) -> Result<Vec<LeadEvent>, DomainError> {
        self.require_known()?;
        non_blank(error, "the error")?;
        match (kind, draft_id) {
            (SendKind::Invitation, None) => {}
            (SendKind::Invitation, Some(_)) => return Err(invalid("an invitation has no draft")),
            (_, None) => return Err(invalid("a failed message names its draft")),
            (kind, Some(draft_id)) => {
                let draft = self
                    .draft(draft_id)
                    .ok_or(DomainError::UnknownDraft { draft_id })?;
                if !matches!(draft.state, DraftState::Approved | DraftState::SendUnknown) {
                    return Err(DomainError::DraftNotApproved { draft_id });
                }
                if SendKind::from(draft.kind) != kind {
                    return Err(invalid(format!(
                        "draft {draft_id} is not a {kind:?} message"
                    )));
                }
            }
        }
        self.require(LeadTransition::RecordSendFailure)?;
        Ok(vec![
            MessageSendFailed {
                account_id: account_id.clone(),
                kind,
                outcome,
                draft_id,
                slot_id,
                error: error.to_owned(),
            }
            .into(),
        ])
    }

    fn decide_schedule_follow_up(
        &self,
        policy: &FollowUpPolicy,
    ) -> Result<Vec<LeadEvent>, DomainError> {
        self.require_known()?;
        self.require_follow_up(policy, 0, None)?;
        let follow_up_number = self.follow_ups_sent + 1;
        if self
            .scheduled_follow_up
            .as_ref()
            .is_some_and(|scheduled| scheduled.follow_up_number == follow_up_number)
        {
            return Ok(Vec::new());
        }
        let last = self
            .last_message_sent_at
            .ok_or(DomainError::TransitionNotAllowed {
                status: self.status,
                transition: LeadTransition::ScheduleFollowUp,
            })?;
        self.require(LeadTransition::ScheduleFollowUp)?;
        Ok(vec![
            FollowUpScheduled {
                follow_up_number,
                due_at: last + policy.delay,
                not_before: None,
            }
            .into(),
        ])
    }

    /// After an OutOfOffice analysis (`self` has it applied, still Responded): the next
    /// follow-up rescheduled not before `not_before`, which hands the lead back to Sent; None
    /// when the sequence has nothing left to send (the lead then stays Responded).
    fn reschedule_after_absence(
        &self,
        policy: &FollowUpPolicy,
        not_before: DateTime<Utc>,
    ) -> Option<LeadEvent> {
        let follow_up_number = self.follow_ups_sent + 1;
        let resumable = !self.is_stopped()
            && !self.reply_blocks_follow_ups()
            && self.follow_ups_sent < policy.max_follow_ups
            && next_status(self.status, LeadTransition::ResumeSequence).is_some();
        if !resumable {
            return None;
        }
        let due = match &self.scheduled_follow_up {
            Some(scheduled) if scheduled.follow_up_number == follow_up_number => scheduled.due_at,
            _ => self.last_message_sent_at? + policy.delay,
        };
        Some(
            FollowUpScheduled {
                follow_up_number,
                due_at: due.max(not_before),
                not_before: Some(not_before),
            }
            .into(),
        )
    }

    fn decide_response(
        &self,
        provider_message_id: &Option<String>,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<LeadEvent>, DomainError> {
        self.require_known()?;
        if let Some(id) = provider_message_id
            && self
                .responses
                .iter()
                .any(|response| response.provider_message_id.as_ref() == Some(id))
        {
            // The same reply delivered again (webhooks retry): already recorded.
            return Ok(Vec::new());
        }
        non_blank(text, "the reply")?;
        self.require(LeadTransition::ReceiveResponse)?;
        let response_number = u32::try_from(self.responses.len() + 1).unwrap_or(u32::MAX);
        Ok(vec![
            ResponseReceived {
                response_number,
                provider_message_id: provider_message_id.clone(),
                received_at: now,
                pii: Pii::reply(text),
            }
            .into(),
        ])
    }

    #[allow(clippy::too_many_arguments)]
    fn decide_analysis(
        &self,
        response_number: u32,
        sentiment: Sentiment,
        intent: Intent,
        confidence: Confidence,
        rationale: &Option<String>,
        hand_over_to: &str,
        return_date: Option<NaiveDate>,
        policy: &FollowUpPolicy,
    ) -> Result<Vec<LeadEvent>, DomainError> {
        self.require_known()?;
        let response = self
            .responses
            .iter()
            .find(|response| response.response_number == response_number)
            .ok_or(DomainError::UnknownResponse { response_number })?;
        if response.analysis.is_some() {
            return Err(DomainError::ResponseAlreadyAnalysed { response_number });
        }
        self.require(LeadTransition::AnalyseResponse)?;
        // An out-of-office reply leaves the sequence running only when every other reply was
        // one too and the first message went out (the follow-ups wait in Sent).
        let resumes_sequence = intent == Intent::OutOfOffice
            && self.first_message_sent_at.is_some()
            && !self.qualified;
        let analysed: LeadEvent = ResponseAnalysed {
            response_number,
            sentiment,
            intent,
            confidence,
            pii: Pii {
                rationale: non_blank_option(rationale),
                ..Pii::default()
            },
        }
        .into();
        let mut events: Vec<LeadEvent> = vec![analysed.clone()];
        if resumes_sequence {
            let received_at = response.received_at;
            let not_before = match return_date {
                Some(day) => day.and_time(NaiveTime::MIN).and_utc().max(received_at),
                None => received_at + policy.out_of_office_delay,
            };
            let after = self.clone().apply(&analysed);
            events.extend(after.reschedule_after_absence(policy, not_before));
            return Ok(events);
        }
        match intent {
            Intent::DoNotContact if !self.do_not_contact => events.push(
                DoNotContactMarked {
                    source: DoNotContactSource::Reply,
                    response_number: Some(response_number),
                    pii: Pii::default(),
                }
                .into(),
            ),
            Intent::NotInterested
                if next_status(self.status, LeadTransition::CloseLost).is_some() =>
            {
                events.push(
                    LeadClosed {
                        outcome: CloseOutcome::Lost,
                        reason: CloseReason::NotInterested,
                        pii: Pii::default(),
                    }
                    .into(),
                )
            }
            intent
                if intent.is_positive()
                    && next_status(self.status, LeadTransition::Qualify).is_some() =>
            {
                non_blank(hand_over_to, "the team member to hand over to")?;
                events.push(
                    LeadQualified {
                        response_number,
                        intent,
                        assigned_to: hand_over_to.trim().to_owned(),
                    }
                    .into(),
                );
            }
            _ => {}
        }
        Ok(events)
    }

    fn decide_override(
        &self,
        classification: Option<Classification>,
        score: Option<QualityScore>,
        reason: &Option<String>,
        context: &DecisionContext,
    ) -> Result<Vec<LeadEvent>, DomainError> {
        context.require_human("overriding a classification or score")?;
        self.require_known()?;
        let reason = non_blank_option(reason);
        let mut events: Vec<LeadEvent> = Vec::new();
        let mut feedback = ClassificationFeedback {
            pii: Pii::optional_note(reason.clone()),
            ..ClassificationFeedback::default()
        };
        if let Some(classification) = classification {
            events.push(
                LeadClassified {
                    classification,
                    confidence: Confidence::clamped(1.0),
                    manual: true,
                    pii: Pii {
                        rationale: reason.clone(),
                        ..Pii::default()
                    },
                }
                .into(),
            );
            feedback.previous_classification = self.classification.map(|(previous, _)| previous);
            feedback.corrected_classification = Some(classification);
        }
        if let Some(score) = score {
            events.push(
                QualityScoreCalculated {
                    score,
                    factors: BTreeMap::new(),
                    manual: true,
                    pii: Pii {
                        rationale: reason.clone(),
                        ..Pii::default()
                    },
                }
                .into(),
            );
            feedback.previous_score = self.score;
            feedback.corrected_score = Some(score);
        }
        events.push(feedback.into());
        Ok(events)
    }
}

impl Aggregate for LeadState {
    type Event = LeadEvent;
    type Command = LeadCommand;

    /// One lead's journey — found, classified, allocated, messaged, answered — is one trace.
    const CONTINUES_TRACE: bool = true;

    fn evolve(self, event: &LeadEvent) -> Self {
        self.apply(event)
    }

    fn decide(
        &self,
        command: &LeadCommand,
        context: &DecisionContext,
    ) -> Result<Vec<LeadEvent>, DomainError> {
        let now = context.now;
        match command {
            LeadCommand::Discover(discover) => self.decide_discover(discover),
            LeadCommand::UpdateProfile(update) => self.decide_update_profile(update),
            LeadCommand::Classify {
                classification,
                confidence,
                rationale,
            } => {
                self.require_known()?;
                if self.classification_manual {
                    return Err(DomainError::OverriddenByHuman);
                }
                Ok(vec![
                    LeadClassified {
                        classification: *classification,
                        confidence: *confidence,
                        manual: false,
                        pii: Pii {
                            rationale: non_blank_option(rationale),
                            ..Pii::default()
                        },
                    }
                    .into(),
                ])
            }
            LeadCommand::Score {
                score,
                factors,
                rationale,
            } => {
                self.require_known()?;
                if self.score_manual {
                    return Err(DomainError::OverriddenByHuman);
                }
                if factors.values().any(|value| !value.is_finite()) {
                    return Err(invalid("score factors must be finite numbers"));
                }
                Ok(vec![
                    QualityScoreCalculated {
                        score: *score,
                        factors: factors.clone(),
                        manual: false,
                        pii: Pii {
                            rationale: non_blank_option(rationale),
                            ..Pii::default()
                        },
                    }
                    .into(),
                ])
            }
            LeadCommand::Allocate {
                assigned_to,
                priority,
                reason,
            } => {
                self.require_known()?;
                self.require(LeadTransition::Allocate)?;
                if self.classification.is_none() {
                    return Err(DomainError::NotClassified);
                }
                if self.score.is_none() {
                    return Err(DomainError::NotScored);
                }
                non_blank(assigned_to, "the assignee")?;
                Ok(vec![
                    LeadAllocation {
                        assigned_to: assigned_to.trim().to_owned(),
                        priority: *priority,
                        reason: reason.clone(),
                    }
                    .into(),
                ])
            }
            LeadCommand::Reassign { to, reason } => {
                self.require_known()?;
                non_blank(to, "the new assignee")?;
                if self.assigned_to.as_deref() == Some(to.trim()) {
                    return Ok(Vec::new());
                }
                self.require(LeadTransition::Reassign)?;
                Ok(vec![
                    LeadReassigned {
                        from: self.assigned_to.clone(),
                        to: to.trim().to_owned(),
                        pii: Pii::optional_note(non_blank_option(reason)),
                    }
                    .into(),
                ])
            }
            LeadCommand::RecordInvitationSent {
                account_id,
                slot_id,
                provider_message_id,
                note,
                policy,
            } => {
                self.require_known()?;
                if self.invitation.as_ref().is_some_and(|invitation| {
                    &invitation.provider_message_id == provider_message_id
                }) {
                    return Ok(Vec::new());
                }
                non_blank(provider_message_id, "the provider message id")?;
                let note = non_blank_option(note);
                self.check_invite(note.as_deref(), policy, now)?;
                Ok(vec![
                    InvitationSent {
                        account_id: account_id.clone(),
                        kind: InvitationKind::Invitation,
                        provider_message_id: provider_message_id.clone(),
                        slot_id: *slot_id,
                        sent_at: now,
                        pii: Pii {
                            message_text: note,
                            ..Pii::default()
                        },
                    }
                    .into(),
                ])
            }
            LeadCommand::RecordInvitationAccepted => {
                self.require_known()?;
                let invitation = match &self.invitation {
                    Some(invitation) if invitation.accepted_at.is_some() => return Ok(Vec::new()),
                    Some(invitation) => invitation,
                    None => return Err(DomainError::NoPendingInvitation),
                };
                self.require(LeadTransition::AcceptInvitation)?;
                Ok(vec![
                    InvitationAccepted {
                        account_id: invitation.account_id.clone(),
                        accepted_at: now,
                    }
                    .into(),
                ])
            }
            LeadCommand::WithdrawInvitation { reason, policy } => {
                // A forgotten person's invitation is withdrawn too: it records nothing personal.
                if !self.is_discovered() {
                    return Err(DomainError::LeadNotDiscovered);
                }
                let invitation = self
                    .invitation
                    .as_ref()
                    .filter(|invitation| invitation.is_pending())
                    .ok_or(DomainError::NoPendingInvitation)?;
                if *reason == WithdrawalReason::Expired {
                    let expires_at = invitation.sent_at + policy.withdraw_after;
                    if now < expires_at {
                        return Err(DomainError::InvitationNotExpired { expires_at });
                    }
                }
                self.require(LeadTransition::WithdrawInvitation)?;
                Ok(vec![
                    InvitationWithdrawn {
                        account_id: invitation.account_id.clone(),
                        reason: *reason,
                        withdrawn_at: now,
                    }
                    .into(),
                ])
            }
            LeadCommand::DraftMessage {
                draft_id,
                kind,
                variant,
                text,
                review,
                policy,
            } => self.decide_draft(*draft_id, *kind, variant, text, review, policy),
            LeadCommand::ApproveMessage {
                draft_id,
                edited_text,
            } => self.decide_approve(*draft_id, edited_text, context),
            LeadCommand::RejectMessage { draft_id, reason } => {
                self.decide_reject(*draft_id, reason, context)
            }
            LeadCommand::RecordMessageSent {
                draft_id,
                account_id,
                slot_id,
                provider_message_id,
                policy,
            } => self.decide_message_sent(
                *draft_id,
                account_id,
                *slot_id,
                provider_message_id,
                policy,
                now,
            ),
            LeadCommand::RecordSendFailure {
                kind,
                account_id,
                draft_id,
                slot_id,
                outcome,
                error,
            } => self.decide_send_failure(*kind, account_id, *draft_id, *slot_id, *outcome, error),
            LeadCommand::ScheduleFollowUp { policy } => self.decide_schedule_follow_up(policy),
            LeadCommand::RecordResponse {
                provider_message_id,
                text,
            } => self.decide_response(provider_message_id, text, now),
            LeadCommand::AnalyseResponse {
                response_number,
                sentiment,
                intent,
                confidence,
                rationale,
                hand_over_to,
                return_date,
                policy,
            } => self.decide_analysis(
                *response_number,
                *sentiment,
                *intent,
                *confidence,
                rationale,
                hand_over_to,
                *return_date,
                policy,
            ),
            LeadCommand::NotifyHuman { recipient, channel } => {
                self.require_known()?;
                if self.human_notified {
                    return Err(DomainError::AlreadyNotified);
                }
                if !self.qualified {
                    return Err(DomainError::NotQualified);
                }
                self.require(LeadTransition::NotifyHuman)?;
                non_blank(recipient, "the recipient")?;
                non_blank(channel, "the channel")?;
                Ok(vec![
                    HumanNotified {
                        recipient: recipient.trim().to_owned(),
                        channel: channel.trim().to_owned(),
                    }
                    .into(),
                ])
            }
            LeadCommand::MoveToStage { stage } => {
                context.require_human("moving a lead through the team's pipeline")?;
                self.require_known()?;
                self.require(LeadTransition::MoveStage(*stage))?;
                Ok(vec![
                    PipelineStageChanged {
                        from: self.status,
                        to: *stage,
                    }
                    .into(),
                ])
            }
            LeadCommand::Close { outcome, reason } => {
                context.require_human("closing a lead")?;
                self.require_known()?;
                self.require(match outcome {
                    CloseOutcome::Won => LeadTransition::CloseWon,
                    CloseOutcome::Lost => LeadTransition::CloseLost,
                })?;
                Ok(vec![
                    LeadClosed {
                        outcome: *outcome,
                        reason: CloseReason::Manual,
                        pii: Pii::optional_note(non_blank_option(reason)),
                    }
                    .into(),
                ])
            }
            LeadCommand::MarkDoNotContact { reason } => {
                if !self.is_discovered() {
                    return Err(DomainError::LeadNotDiscovered);
                }
                if self.do_not_contact || self.status == LeadStatus::DoNotContact {
                    return Ok(Vec::new());
                }
                self.require(LeadTransition::MarkDoNotContact)?;
                Ok(vec![
                    DoNotContactMarked {
                        source: DoNotContactSource::Manual,
                        response_number: None,
                        pii: Pii::optional_note(non_blank_option(reason)),
                    }
                    .into(),
                ])
            }
            LeadCommand::AddNote { text } => {
                self.require_known()?;
                non_blank(text, "the note")?;
                at_most(text, "the note", MAX_NOTE_CHARS)?;
                self.require(LeadTransition::AddNote)?;
                Ok(vec![
                    NoteAdded {
                        pii: Pii::note(text.trim()),
                    }
                    .into(),
                ])
            }
            LeadCommand::OverrideClassification {
                classification,
                reason,
            } => self.decide_override(Some(*classification), None, reason, context),
            LeadCommand::OverrideScore { score, reason } => {
                self.decide_override(None, Some(*score), reason, context)
            }
            LeadCommand::Forget => {
                if !self.is_discovered() {
                    return Err(DomainError::LeadNotDiscovered);
                }
                if self.forgotten {
                    return Ok(Vec::new());
                }
                Ok(vec![LeadForgotten {}.into()])
            }
        }
    }
}
