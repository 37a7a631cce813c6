//! A lead's state: the fold of its events. `evolve` only applies facts; the status moves by the
//! one transition table in [`crate::domain::status`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    CloseOutcome, FollowUpPolicy, InvitationPolicy, LeadEvent, MessageKind, Priority, SendOutcome,
    WithdrawalReason,
};
use crate::domain::pii::Pii;
use crate::domain::status::{self, LeadStatus, LeadTransition};
use crate::domain::values::{
    AccountId, Classification, Confidence, Intent, QualityScore, Sentiment,
};

/// Where a drafted message stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DraftState {
    /// Written, no decision yet.
    Pending,
    /// Held for a human.
    InReview,
    /// May be sent.
    Approved,
    Rejected,
    Sent {
        provider_message_id: String,
    },
    /// A send was attempted and nobody knows whether it arrived: a human decides.
    SendUnknown,
}

/// A drafted message.
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    pub kind: MessageKind,
    pub follow_up_number: Option<u32>,
    /// The template/variant it was written from.
    pub variant: Option<String>,
    /// The text to send (the approved edit, if any).
    pub text: String,
    pub state: DraftState,
}

/// The lead's connection invitation.
#[derive(Clone, Debug, PartialEq)]
pub struct Invitation {
    pub account_id: AccountId,
    pub provider_message_id: String,
    pub sent_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub withdrawn_at: Option<DateTime<Utc>>,
}

impl Invitation {
    pub fn is_pending(&self) -> bool {
        self.accepted_at.is_none() && self.withdrawn_at.is_none()
    }
}

/// A follow-up waiting for its time.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduledFollowUp {
    pub follow_up_number: u32,
    pub due_at: DateTime<Utc>,
    /// Not before this time (an OutOfOffice reply's return date, or its default delay).
    pub not_before: Option<DateTime<Utc>>,
}

/// One reply and its analysis.
#[derive(Clone, Debug, PartialEq)]
pub struct ResponseRecord {
    pub response_number: u32,
    pub provider_message_id: Option<String>,
    pub received_at: DateTime<Utc>,
    pub text: String,
    pub analysis: Option<(Sentiment, Intent, Confidence)>,
}

/// Everything the lead rules need, folded from the lead's stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeadState {
    pub lead_id: Option<Uuid>,
    pub status: LeadStatus,
    /// The status a lead In Review returns to.
    pub status_before_review: Option<LeadStatus>,
    pub position: String,
    pub company: String,
    pub company_size: Option<String>,
    pub industry: Option<String>,
    pub is_connection: bool,
    /// The person's profile (blank once forgotten).
    pub profile: Pii,
    pub classification: Option<(Classification, Confidence)>,
    pub classification_manual: bool,
    pub score: Option<QualityScore>,
    pub score_manual: bool,
    pub assigned_to: Option<String>,
    pub priority: Option<Priority>,
    pub invitation: Option<Invitation>,
    pub invitations_sent: u32,
    pub last_withdrawal_at: Option<DateTime<Utc>>,
    pub drafts: BTreeMap<Uuid, Draft>,
    pub first_message_sent_at: Option<DateTime<Utc>>,
    pub last_message_sent_at: Option<DateTime<Utc>>,
    pub follow_ups_sent: u32,
    pub scheduled_follow_up: Option<ScheduledFollowUp>,
    pub send_failures: u32,
    pub responses: Vec<ResponseRecord>,
    pub qualified: bool,
    pub human_notified: bool,
    pub do_not_contact: bool,
    pub closed: Option<CloseOutcome>,
    pub forgotten: bool,
    pub notes: u32,
    pub classification_feedbacks: u32,
}

impl LeadState {
    pub fn is_discovered(&self) -> bool {
        self.lead_id.is_some()
    }

    /// Do-not-contact, closed or forgotten: no outreach ever again.
    pub fn is_stopped(&self) -> bool {
        self.do_not_contact || self.closed.is_some() || self.forgotten || self.status.is_final()
    }

    /// Any reply at all, out of office or not.
    pub fn has_replied(&self) -> bool {
        !self.responses.is_empty()
    }

    /// A reply not analysed yet: nothing more is sent until it is (it may end the sequence).
    pub fn awaits_analysis(&self) -> bool {
        self.responses
            .iter()
            .any(|response| response.analysis.is_none())
    }

    /// A reply analysed as anything but OutOfOffice: the sequence is over for good.
    pub fn reply_ended_sequence(&self) -> bool {
        self.responses.iter().any(|response| {
            response
                .analysis
                .is_some_and(|(_, intent, _)| intent != Intent::OutOfOffice)
        })
    }

    /// Whether a reply stops follow-ups now: one not analysed yet, or a real one (only
    /// out-of-office replies leave the sequence running).
    pub fn reply_blocks_follow_ups(&self) -> bool {
        self.awaits_analysis() || self.reply_ended_sequence()
    }

    pub fn draft(&self, draft_id: Uuid) -> Option<&Draft> {
        self.drafts.get(&draft_id)
    }

    /// The follow-up waiting to be sent, unless the lead was stopped or replied since.
    pub fn pending_follow_up(&self) -> Option<&ScheduledFollowUp> {
        self.scheduled_follow_up.as_ref().filter(|_| {
            !self.is_stopped() && !self.reply_blocks_follow_ups() && self.status == LeadStatus::Sent
        })
    }

    /// When the next follow-up may go out under `policy` (None: no follow-up is allowed).
    pub fn next_follow_up_at(&self, policy: &FollowUpPolicy) -> Option<DateTime<Utc>> {
        let allowed = !self.is_stopped()
            && !self.reply_blocks_follow_ups()
            && self.status == LeadStatus::Sent
            && self.follow_ups_sent < policy.max_follow_ups;
        let earliest = allowed
            .then_some(self.last_message_sent_at)
            .flatten()
            .map(|last| last + policy.delay)?;
        Some(match self.follow_up_not_before() {
            Some(not_before) => earliest.max(not_before),
            None => earliest,
        })
    }

    /// The time the next follow-up must not go out before, set by an OutOfOffice reply.
    pub fn follow_up_not_before(&self) -> Option<DateTime<Utc>> {
        self.scheduled_follow_up
            .as_ref()
            .filter(|scheduled| scheduled.follow_up_number == self.follow_ups_sent + 1)
            .and_then(|scheduled| scheduled.not_before)
    }

    /// Whether the pending invitation should be withdrawn now, and why: at once when the lead
    /// was stopped, else once it is older than the policy allows.
    pub fn invitation_to_withdraw(
        &self,
        policy: &InvitationPolicy,
        now: DateTime<Utc>,
    ) -> Option<WithdrawalReason> {
        let invitation = self
            .invitation
            .as_ref()
            .filter(|invitation| invitation.is_pending())?;
        if self.is_stopped() {
            Some(WithdrawalReason::Manual)
        } else if now >= invitation.sent_at + policy.withdraw_after {
            Some(WithdrawalReason::Expired)
        } else {
            None
        }
    }

    /// Moves the status by the transition table.
    fn transition(&mut self, transition: LeadTransition) {
        let next = status::apply(self.status, self.status_before_review, transition);
        if next == LeadStatus::InReview && self.status != LeadStatus::InReview {
            self.status_before_review = Some(self.status);
        }
        if next != LeadStatus::InReview {
            self.status_before_review = None;
        }
        self.status = next;
    }

    fn set_draft_state(&mut self, draft_id: Uuid, state: DraftState) {
        if let Some(draft) = self.drafts.get_mut(&draft_id) {
            draft.state = state;
        }
    }

    /// Applies one recorded event.
    pub(super) fn apply(mut self, event: &LeadEvent) -> Self {
        match event {
            LeadEvent::LeadDiscovered(discovered) => {
                self.lead_id = Some(discovered.lead_id);
                self.status = LeadStatus::New;
                self.position.clone_from(&discovered.position);
                self.company.clone_from(&discovered.company);
                self.company_size.clone_from(&discovered.company_size);
                self.industry.clone_from(&discovered.industry);
                self.is_connection = discovered.is_connection;
                self.profile = discovered.pii.clone();
            }
            LeadEvent::LeadProfileUpdated(update) => {
                if let Some(position) = &update.position {
                    self.position.clone_from(position);
                }
                if let Some(company) = &update.company {
                    self.company.clone_from(company);
                }
                if update.company_size.is_some() {
                    self.company_size.clone_from(&update.company_size);
                }
                if update.industry.is_some() {
                    self.industry.clone_from(&update.industry);
                }
                if let Some(is_connection) = update.is_connection {
                    self.is_connection = is_connection;
                }
                self.profile.merge(&update.pii);
            }
            LeadEvent::LeadClassified(classified) => {
                self.classification = Some((classified.classification, classified.confidence));
                self.classification_manual = classified.manual;
            }
            LeadEvent::QualityScoreCalculated(scored) => {
                self.score = Some(scored.score);
                self.score_manual = scored.manual;
            }
            LeadEvent::ClassificationFeedback(_) => self.classification_feedbacks += 1,
            LeadEvent::LeadAllocation(allocation) => {
                self.assigned_to = Some(allocation.assigned_to.clone());
                self.priority = Some(allocation.priority);
            }
            LeadEvent::LeadReassigned(reassigned) => self.assigned_to = Some(reassigned.to.clone()),
            LeadEvent::InvitationSent(sent) => {
                self.invitation = Some(Invitation {
                    account_id: sent.account_id.clone(),
                    provider_message_id: sent.provider_message_id.clone(),
                    sent_at: sent.sent_at,
                    accepted_at: None,
                    withdrawn_at: None,
                });
                self.invitations_sent += 1;
            }
            LeadEvent::InvitationAccepted(accepted) => {
                if let Some(invitation) = &mut self.invitation {
                    invitation.accepted_at = Some(accepted.accepted_at);
                }
                self.is_connection = true;
            }
            LeadEvent::InvitationWithdrawn(withdrawn) => {
                if let Some(invitation) = &mut self.invitation {
                    invitation.withdrawn_at = Some(withdrawn.withdrawn_at);
                }
                self.last_withdrawal_at = Some(withdrawn.withdrawn_at);
            }
            LeadEvent::MessageDrafted(drafted) => {
                self.drafts.insert(
                    drafted.draft_id,
                    Draft {
                        kind: drafted.kind,
                        follow_up_number: drafted.follow_up_number,
                        variant: drafted.variant.clone(),
                        text: drafted.pii.message_text.clone().unwrap_or_default(),
                        state: DraftState::Pending,
                    },
                );
            }
            LeadEvent::ReviewRequested(review) => {
                self.set_draft_state(review.draft_id, DraftState::InReview)
            }
            LeadEvent::MessageApproved(approved) => {
                if let Some(draft) = self.drafts.get_mut(&approved.draft_id) {
                    draft.state = DraftState::Approved;
                    if let Some(text) = approved
                        .pii
                        .message_text
                        .as_ref()
                        .filter(|_| approved.edited)
                    {
                        draft.text.clone_from(text);
                    }
                }
            }
            LeadEvent::MessageRejected(rejected) => {
                self.set_draft_state(rejected.draft_id, DraftState::Rejected)
            }
            LeadEvent::MessageSent(sent) => {
                self.set_draft_state(
                    sent.draft_id,
                    DraftState::Sent {
                        provider_message_id: sent.provider_message_id.clone(),
                    },
                );
                if sent.kind == MessageKind::Initial && self.first_message_sent_at.is_none() {
                    self.first_message_sent_at = Some(sent.sent_at);
                }
                if sent.kind == MessageKind::FollowUp {
                    self.follow_ups_sent += 1;
                }
                self.last_message_sent_at = Some(sent.sent_at);
                self.scheduled_follow_up = None;
            }
            LeadEvent::MessageSendFailed(failed) => {
                self.send_failures += 1;
                if let (Some(draft_id), SendOutcome::Unknown) = (failed.draft_id, failed.outcome) {
                    self.set_draft_state(draft_id, DraftState::SendUnknown);
                }
            }
            LeadEvent::FollowUpScheduled(scheduled) => {
                self.scheduled_follow_up = Some(ScheduledFollowUp {
                    follow_up_number: scheduled.follow_up_number,
                    due_at: scheduled.due_at,
                    not_before: scheduled.not_before,
                });
            }
            LeadEvent::ResponseReceived(received) => self.responses.push(ResponseRecord {
                response_number: received.response_number,
                provider_message_id: received.provider_message_id.clone(),
                received_at: received.received_at,
                text: received.pii.reply_text.clone().unwrap_or_default(),
                analysis: None,
            }),
            LeadEvent::ResponseAnalysed(analysed) => {
                if let Some(response) = self
                    .responses
                    .iter_mut()
                    .find(|response| response.response_number == analysed.response_number)
                {
                    response.analysis =
                        Some((analysed.sentiment, analysed.intent, analysed.confidence));
                }
            }
            LeadEvent::LeadQualified(qualified) => {
                self.qualified = true;
                self.assigned_to = Some(qualified.assigned_to.clone());
            }
            LeadEvent::HumanNotified(_) => self.human_notified = true,
            LeadEvent::PipelineStageChanged(_) | LeadEvent::NoteAdded(_) => {}
            LeadEvent::LeadClosed(closed) => self.closed = Some(closed.outcome),
            LeadEvent::DoNotContact(_) => {
                self.do_not_contact = true;
                // Stops everything, including a follow-up already scheduled.
                self.scheduled_follow_up = None;
            }
            LeadEvent::LeadForgotten(_) => {
                self.forgotten = true;
                self.profile = Pii::default();
                self.scheduled_follow_up = None;
                for draft in self.drafts.values_mut() {
                    draft.text.clear();
                }
                for response in &mut self.responses {
                    response.text.clear();
                }
            }
        }
        if let LeadEvent::NoteAdded(_) = event {
            self.notes += 1;
        }
        if let Some(transition) = event.transition() {
            self.transition(transition);
        }
        self
    }
}

impl LeadEvent {
    /// The status transition this event records, if it moves (or may move) the status.
    pub fn transition(&self) -> Option<LeadTransition> {
        use LeadTransition as T;
        Some(match self {
            Self::LeadDiscovered(_)
            | Self::LeadProfileUpdated(_)
            | Self::LeadClassified(_)
            | Self::QualityScoreCalculated(_)
            | Self::ClassificationFeedback(_) => return None,
            Self::LeadAllocation(_) => T::Allocate,
            Self::LeadReassigned(_) => T::Reassign,
            Self::InvitationSent(_) => T::Invite,
            Self::InvitationAccepted(_) => T::AcceptInvitation,
            Self::InvitationWithdrawn(_) => T::WithdrawInvitation,
            Self::MessageDrafted(_) => T::Draft,
            Self::ReviewRequested(_) => T::RequestReview,
            Self::MessageApproved(_) => T::Approve,
            Self::MessageRejected(_) => T::Reject,
            Self::MessageSent(sent) => match sent.kind {
                MessageKind::Initial => T::SendFirstMessage,
                MessageKind::FollowUp => T::SendFollowUp,
            },
            Self::MessageSendFailed(_) => T::RecordSendFailure,
            // A follow-up rescheduled by an out-of-office reply resumes the sequence.
            Self::FollowUpScheduled(scheduled) if scheduled.not_before.is_some() => {
                T::ResumeSequence
            }
            Self::FollowUpScheduled(_) => T::ScheduleFollowUp,
            Self::ResponseReceived(_) => T::ReceiveResponse,
            Self::ResponseAnalysed(_) => T::AnalyseResponse,
            Self::LeadQualified(_) => T::Qualify,
            Self::HumanNotified(_) => T::NotifyHuman,
            Self::PipelineStageChanged(changed) => T::MoveStage(changed.to),
            Self::LeadClosed(closed) => match closed.outcome {
                CloseOutcome::Won => T::CloseWon,
                CloseOutcome::Lost => T::CloseLost,
            },
            Self::DoNotContact(_) => T::MarkDoNotContact,
            Self::NoteAdded(_) => T::AddNote,
            Self::LeadForgotten(_) => T::Forget,
        })
    }
}
