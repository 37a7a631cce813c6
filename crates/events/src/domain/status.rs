//! The lead status state machine (the seed's Contact Status), with its one transition table.
//!
//! A lead moves New → Allocated → (Invited → Connected) → Sent → Responded → Handed Over →
//! the team's pipeline (In Discussion → Meeting Scheduled → Proposal Sent) → Closed Won /
//! Closed Lost, and can be put on two holds: Do Not Contact (for good) and In Review (a
//! drafted message waits for a human; approving or rejecting it resumes the status it came
//! from). An out-of-office reply after the first message hands a Responded lead back to
//! Sent, where its follow-ups wait for the return date. [`next_status`] is the only place that says which transition is allowed from which
//! status: `decide` refuses a command whose transition it does not allow, and `evolve` moves
//! the status by it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a lead stands.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    #[default]
    New,
    Allocated,
    Invited,
    Connected,
    Sent,
    Responded,
    HandedOver,
    InDiscussion,
    MeetingScheduled,
    ProposalSent,
    ClosedWon,
    ClosedLost,
    DoNotContact,
    InReview,
}

impl LeadStatus {
    pub const ALL: [LeadStatus; 14] = [
        Self::New,
        Self::Allocated,
        Self::Invited,
        Self::Connected,
        Self::Sent,
        Self::Responded,
        Self::HandedOver,
        Self::InDiscussion,
        Self::MeetingScheduled,
        Self::ProposalSent,
        Self::ClosedWon,
        Self::ClosedLost,
        Self::DoNotContact,
        Self::InReview,
    ];

    /// The snake_case name used in event bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Allocated => "allocated",
            Self::Invited => "invited",
            Self::Connected => "connected",
            Self::Sent => "sent",
            Self::Responded => "responded",
            Self::HandedOver => "handed_over",
            Self::InDiscussion => "in_discussion",
            Self::MeetingScheduled => "meeting_scheduled",
            Self::ProposalSent => "proposal_sent",
            Self::ClosedWon => "closed_won",
            Self::ClosedLost => "closed_lost",
            Self::DoNotContact => "do_not_contact",
            Self::InReview => "in_review",
        }
    }

    /// The name people read in the lead table and the Sheet's Contact Status column.
    pub fn label(self) -> &'static str {
        match self {
            Self::New => "New",
            Self::Allocated => "Allocated",
            Self::Invited => "Invited",
            Self::Connected => "Connected",
            Self::Sent => "Sent",
            Self::Responded => "Responded",
            Self::HandedOver => "Handed Over",
            Self::InDiscussion => "In Discussion",
            Self::MeetingScheduled => "Meeting Scheduled",
            Self::ProposalSent => "Proposal Sent",
            Self::ClosedWon => "Closed Won",
            Self::ClosedLost => "Closed Lost",
            Self::DoNotContact => "Do Not Contact",
            Self::InReview => "In Review",
        }
    }

    /// Closed Won, Closed Lost or Do Not Contact: no outreach ever again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::ClosedWon | Self::ClosedLost | Self::DoNotContact
        )
    }
}

impl fmt::Display for LeadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The team's own pipeline after a hand-over, before closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineStage {
    InDiscussion,
    MeetingScheduled,
    ProposalSent,
}

impl PipelineStage {
    pub const ALL: [PipelineStage; 3] = [
        Self::InDiscussion,
        Self::MeetingScheduled,
        Self::ProposalSent,
    ];

    pub fn status(self) -> LeadStatus {
        match self {
            Self::InDiscussion => LeadStatus::InDiscussion,
            Self::MeetingScheduled => LeadStatus::MeetingScheduled,
            Self::ProposalSent => LeadStatus::ProposalSent,
        }
    }
}

/// Something that happens to a lead and may move its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadTransition {
    Allocate,
    Reassign,
    Invite,
    AcceptInvitation,
    WithdrawInvitation,
    Draft,
    RequestReview,
    Approve,
    Reject,
    SendFirstMessage,
    ScheduleFollowUp,
    SendFollowUp,
    RecordSendFailure,
    ReceiveResponse,
    AnalyseResponse,
    /// A follow-up rescheduled after an OutOfOffice reply (every reply so far was one) hands
    /// the lead back to its follow-up sequence: Responded → Sent.
    ResumeSequence,
    Qualify,
    NotifyHuman,
    MoveStage(PipelineStage),
    CloseWon,
    CloseLost,
    MarkDoNotContact,
    Forget,
    AddNote,
}

impl LeadTransition {
    /// Every transition, for exhaustive tests.
    pub const ALL: [LeadTransition; 26] = [
        Self::Allocate,
        Self::Reassign,
        Self::Invite,
        Self::AcceptInvitation,
        Self::WithdrawInvitation,
        Self::Draft,
        Self::RequestReview,
        Self::Approve,
        Self::Reject,
        Self::SendFirstMessage,
        Self::ScheduleFollowUp,
        Self::SendFollowUp,
        Self::RecordSendFailure,
        Self::ReceiveResponse,
        Self::AnalyseResponse,
        Self::ResumeSequence,
        Self::Qualify,
        Self::NotifyHuman,
        Self::MoveStage(PipelineStage::InDiscussion),
        Self::MoveStage(PipelineStage::MeetingScheduled),
        Self::MoveStage(PipelineStage::ProposalSent),
        Self::CloseWon,
        Self::CloseLost,
        Self::MarkDoNotContact,
        Self::Forget,
        Self::AddNote,
    ];
}

impl fmt::Display for LeadTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MoveStage(stage) => write!(f, "move to {}", stage.status()),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Where an allowed transition leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// To this status (possibly the same one).
    To(LeadStatus),
    /// Back to the status the lead had before it was put In Review.
    Resume,
}

/// The transition table: where `transition` takes a lead in status `from`, or None when it is
/// not allowed. This is the only place the order of statuses is written down.
pub fn next_status(from: LeadStatus, transition: LeadTransition) -> Option<Target> {
    use LeadStatus::*;
    use LeadTransition as T;
    use Target::{Resume, To};
    let stay = Some(To(from));
    match (transition, from) {
        (T::Allocate, New) => Some(To(Allocated)),
        (
            T::Reassign,
            Allocated | Invited | Connected | Sent | Responded | HandedOver | InDiscussion
            | MeetingScheduled | ProposalSent | InReview,
        ) => stay,
        (T::Invite, Allocated) => Some(To(Invited)),
        (T::AcceptInvitation, Invited) => Some(To(Connected)),
        (T::WithdrawInvitation, Invited) => Some(To(Allocated)),
        // A stopped lead's pending invitation is still taken back.
        (T::WithdrawInvitation, DoNotContact | ClosedLost) => stay,
        (T::Draft, Allocated | Invited | Connected | Sent) => stay,
        (T::RequestReview, Allocated | Invited | Connected | Sent) => Some(To(InReview)),
        (T::Approve | T::Reject, InReview) => Some(Resume),
        (T::Approve | T::Reject, Allocated | Invited | Connected | Sent) => stay,
        // From Allocated only for a person who is already a connection: a guard in decide.
        (T::SendFirstMessage, Allocated | Connected) => Some(To(Sent)),
        (T::ScheduleFollowUp | T::SendFollowUp, Sent) => stay,
        (T::RecordSendFailure, Allocated | Invited | Connected | Sent) => stay,
        (T::ReceiveResponse, Invited | Connected | Sent | InReview) => Some(To(Responded)),
        (
            T::ReceiveResponse | T::AnalyseResponse,
            Responded | HandedOver | InDiscussion | MeetingScheduled | ProposalSent | ClosedWon
            | ClosedLost | DoNotContact,
        ) => stay,
        // Only an out-of-office reply after the first message: the sequence waits in Sent.
        (T::ResumeSequence, Responded) => Some(To(Sent)),
        (T::Qualify, Responded) => Some(To(HandedOver)),
        (T::NotifyHuman, HandedOver | InDiscussion | MeetingScheduled | ProposalSent) => stay,
        (T::MoveStage(PipelineStage::InDiscussion), HandedOver) => Some(To(InDiscussion)),
        (T::MoveStage(PipelineStage::MeetingScheduled), HandedOver | InDiscussion) => {
            Some(To(MeetingScheduled))
        }
        (
            T::MoveStage(PipelineStage::ProposalSent),
            HandedOver | InDiscussion | MeetingScheduled,
        ) => Some(To(ProposalSent)),
        (T::CloseWon, HandedOver | InDiscussion | MeetingScheduled | ProposalSent) => {
            Some(To(ClosedWon))
        }
        (
            T::CloseLost,
            New | Allocated | Invited | Connected | Sent | Responded | HandedOver | InDiscussion
            | MeetingScheduled | ProposalSent | InReview,
        ) => Some(To(ClosedLost)),
        (T::MarkDoNotContact, status) if status != DoNotContact => Some(To(DoNotContact)),
        (T::Forget, _) => Some(To(DoNotContact)),
        (T::AddNote, _) => stay,
        _ => None,
    }
}

/// The status after `transition`, given the status a lead In Review came from. A transition
/// the table does not allow leaves the status as it is: `evolve` applies recorded facts and
/// never refuses one.
pub fn apply(
    from: LeadStatus,
    before_review: Option<LeadStatus>,
    transition: LeadTransition,
) -> LeadStatus {
    match next_status(from, transition) {
        Some(Target::To(status)) => status,
        Some(Target::Resume) => before_review.unwrap_or(LeadStatus::Allocated),
        None => from,
    }
}

#[cfg(test)]
mod tests {
    use super::LeadStatus::*;
    use super::*;
    use std::collections::HashMap;

    /// The expected table, written out independently of the `match` above: every allowed
    /// (status, transition) pair and where it leads. Every pair not listed must be refused.
    fn expected_table() -> HashMap<(LeadStatus, LeadTransition), Target> {
        use LeadTransition as T;
        use Target::{Resume, To};
        let mut table = HashMap::new();
        let mut allow =
            |from: &[LeadStatus], transition: LeadTransition, target: Option<LeadStatus>| {
                for &status in from {
                    let target = match target {
                        Some(to) => To(to),
                        None => To(status),
                    };
                    table.insert((status, transition), target);
                }
            };
        let pre_contact = [Allocated, Invited, Connected, Sent];
        let after_reply = [
            Responded,
            HandedOver,
            InDiscussion,
            MeetingScheduled,
            ProposalSent,
            ClosedWon,
            ClosedLost,
            DoNotContact,
        ];
        let team = [HandedOver, InDiscussion, MeetingScheduled, ProposalSent];
        allow(&[New], T::Allocate, Some(Allocated));
        allow(
            &[
                Allocated,
                Invited,
                Connected,
                Sent,
                Responded,
                HandedOver,
                InDiscussion,
                MeetingScheduled,
                ProposalSent,
                InReview,
            ],
            T::Reassign,
            None,
        );
        allow(&[Allocated], T::Invite, Some(Invited));
        allow(&[Invited], T::AcceptInvitation, Some(Connected));
        allow(&[Invited], T::WithdrawInvitation, Some(Allocated));
        allow(&[DoNotContact, ClosedLost], T::WithdrawInvitation, None);
        allow(&pre_contact, T::Draft, None);
        allow(&pre_contact, T::RequestReview, Some(InReview));
        allow(&pre_contact, T::Approve, None);
        allow(&pre_contact, T::Reject, None);
        allow(&[Allocated, Connected], T::SendFirstMessage, Some(Sent));
        allow(&[Sent], T::ScheduleFollowUp, None);
        allow(&[Sent], T::SendFollowUp, None);
        allow(&pre_contact, T::RecordSendFailure, None);
        allow(
            &[Invited, Connected, Sent, InReview],
            T::ReceiveResponse,
            Some(Responded),
        );
        allow(&after_reply, T::ReceiveResponse, None);
        allow(&after_reply, T::AnalyseResponse, None);
        allow(&[Responded], T::ResumeSequence, Some(Sent));
        allow(&[Responded], T::Qualify, Some(HandedOver));
        allow(&team, T::NotifyHuman, None);
        allow(
            &[HandedOver],
            T::MoveStage(PipelineStage::InDiscussion),
            Some(InDiscussion),
        );
        allow(
            &[HandedOver, InDiscussion],
            T::MoveStage(PipelineStage::MeetingScheduled),
            Some(MeetingScheduled),
        );
        allow(
            &[HandedOver, InDiscussion, MeetingScheduled],
            T::MoveStage(PipelineStage::ProposalSent),
            Some(ProposalSent),
        );
        allow(&team, T::CloseWon, Some(ClosedWon));
        allow(
            &[
                New,
                Allocated,
                Invited,
                Connected,
                Sent,
                Responded,
                HandedOver,
                InDiscussion,
                MeetingScheduled,
                ProposalSent,
                InReview,
            ],
            T::CloseLost,
            Some(ClosedLost),
        );
        let all_but_dnc: Vec<LeadStatus> = LeadStatus::ALL
            .into_iter()
            .filter(|s| *s != DoNotContact)
            .collect();
        allow(&all_but_dnc, T::MarkDoNotContact, Some(DoNotContact));
        allow(&LeadStatus::ALL, T::Forget, Some(DoNotContact));
        allow(&LeadStatus::ALL, T::AddNote, None);
        table.insert((InReview, T::Approve), Resume);
        table.insert((InReview, T::Reject), Resume);
        table
    }

    #[test]
    fn every_status_and_transition_pair_matches_the_expected_table() {
        let expected = expected_table();
        let mut allowed = 0;
        for status in LeadStatus::ALL {
            for transition in LeadTransition::ALL {
                let actual = next_status(status, transition);
                assert_eq!(
                    actual,
                    expected.get(&(status, transition)).copied(),
                    "({status:?}, {transition:?})"
                );
                allowed += usize::from(actual.is_some());
            }
        }
        assert_eq!(
            allowed,
            expected.len(),
            "the expected table lists a pair twice"
        );
        assert_eq!(LeadStatus::ALL.len() * LeadTransition::ALL.len(), 14 * 26);
    }

    #[test]
    fn the_happy_path_reaches_closed_won_without_skipping() {
        use LeadTransition as T;
        let path = [
            (T::Allocate, Allocated),
            (T::Invite, Invited),
            (T::AcceptInvitation, Connected),
            (T::SendFirstMessage, Sent),
            (T::ReceiveResponse, Responded),
            (T::Qualify, HandedOver),
            (T::MoveStage(PipelineStage::InDiscussion), InDiscussion),
            (
                T::MoveStage(PipelineStage::MeetingScheduled),
                MeetingScheduled,
            ),
            (T::MoveStage(PipelineStage::ProposalSent), ProposalSent),
            (T::CloseWon, ClosedWon),
        ];
        let mut status = New;
        for (transition, expected) in path {
            status = apply(status, None, transition);
            assert_eq!(status, expected, "after {transition:?}");
        }
    }

    #[test]
    fn skipping_a_step_is_refused() {
        use LeadTransition as T;
        assert_eq!(
            next_status(New, T::SendFirstMessage),
            None,
            "send to an unallocated lead"
        );
        assert_eq!(
            next_status(Sent, T::SendFirstMessage),
            None,
            "second first message"
        );
        assert_eq!(next_status(New, T::Invite), None);
        assert_eq!(
            next_status(Sent, T::Qualify),
            None,
            "qualify before a reply"
        );
        assert_eq!(
            next_status(Responded, T::CloseWon),
            None,
            "win before the hand-over"
        );
        assert_eq!(
            next_status(ProposalSent, T::MoveStage(PipelineStage::InDiscussion)),
            None
        );
    }

    #[test]
    fn final_statuses_allow_no_outreach() {
        use LeadTransition as T;
        let outreach = [
            T::Allocate,
            T::Invite,
            T::Draft,
            T::RequestReview,
            T::Approve,
            T::SendFirstMessage,
            T::ScheduleFollowUp,
            T::SendFollowUp,
        ];
        for status in LeadStatus::ALL
            .into_iter()
            .filter(|status| status.is_final())
        {
            for transition in outreach {
                assert_eq!(
                    next_status(status, transition),
                    None,
                    "{transition:?} from {status:?}"
                );
            }
        }
    }

    #[test]
    fn review_resumes_where_it_started() {
        use LeadTransition as T;
        for before in [Allocated, Invited, Connected, Sent] {
            let held = apply(before, None, T::RequestReview);
            assert_eq!(held, InReview);
            assert_eq!(apply(held, Some(before), T::Approve), before);
            assert_eq!(apply(held, Some(before), T::Reject), before);
        }
    }

    #[test]
    fn statuses_serialise_in_snake_case_and_print_their_labels() {
        assert_eq!(serde_json::to_value(HandedOver).unwrap(), "handed_over");
        assert_eq!(DoNotContact.to_string(), "Do Not Contact");
        for status in LeadStatus::ALL {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }
}
