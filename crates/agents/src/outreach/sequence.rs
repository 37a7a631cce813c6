//! The outreach sequence of one lead: what the agent should do next and when, worked out from
//! the lead's folded stream alone (pure code, no I/O, no clock: `now` is passed in).
//!
//! The sequence is allocation → first-message draft (held for review when unsure) → an
//! invitation for a person who is not a connection → the first message once connected → up to
//! N follow-ups at the configured days after the first message, each scheduled with
//! `follow_up_scheduled` → stop at the first reply, at do-not-contact or at a close. An
//! out-of-office reply does not stop it: its analysis reschedules the next follow-up not
//! before the return date, and the sequence waits for that. Every step
//! is named by the lead's own state (the draft's id, the invitation's number, the follow-up's
//! number), so asking again after a crash asks for the same step and never for a new one.

use chrono::{DateTime, TimeDelta, Utc};
use salesdept_events::domain::LeadStatus;
use salesdept_events::domain::lead::{
    DraftState, FollowUpPolicy, InvitationPolicy, LeadState, MessageKind, WithdrawalReason,
};
use salesdept_events::step_event_id;
use uuid::Uuid;

/// What the sequence of one lead asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Nothing more will ever be done for this lead by the agent (replied, stopped, handed
    /// over, or held for a human with no time attached).
    Finished,
    /// Waiting for something outside the agent's time (a human's review, an acceptance, a
    /// reply) with no deadline of its own.
    Idle,
    /// Nothing to do before `until`.
    Wait { until: DateTime<Utc> },
    /// Draft the first message (none is live: never drafted, or every draft was rejected
    /// after the lead became a connection).
    DraftInitial { draft_id: Uuid },
    /// Invite the person (the approved first message waits for the acceptance).
    Invite,
    /// Send the approved first message.
    SendInitial { draft_id: Uuid },
    /// Record when the next follow-up is due.
    ScheduleFollowUp { number: u32, delay: TimeDelta },
    /// The follow-up is due and not drafted yet.
    DraftFollowUp { number: u32, draft_id: Uuid },
    /// Send the approved follow-up.
    SendFollowUp { number: u32, draft_id: Uuid },
    /// Take the pending invitation back.
    Withdraw { reason: WithdrawalReason },
}

/// The timing rules of the sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct SequencePolicy {
    /// Days after the first message at which follow-ups go out (default `[3, 7]`); its length
    /// is the number of follow-ups.
    pub follow_up_days: Vec<u32>,
    pub invitations: InvitationPolicy,
    /// After an OutOfOffice reply without a return date, how long after the reply the next
    /// follow-up waits (default 7 days).
    pub out_of_office_delay: TimeDelta,
}

impl SequencePolicy {
    /// The follow-up policy the lead's rules check sends against: the cap, and the smallest
    /// gap between two messages of the sequence.
    pub fn follow_up_policy(&self) -> FollowUpPolicy {
        let mut previous = 0u32;
        let mut smallest: Option<u32> = None;
        for day in &self.follow_up_days {
            let gap = day.saturating_sub(previous);
            smallest = Some(smallest.map_or(gap, |smallest| smallest.min(gap)));
            previous = *day;
        }
        FollowUpPolicy {
            max_follow_ups: u32::try_from(self.follow_up_days.len()).unwrap_or(u32::MAX),
            delay: TimeDelta::days(i64::from(smallest.unwrap_or(0))),
            out_of_office_delay: self.out_of_office_delay,
        }
    }

    /// When follow-up `number` (1, 2…) is due: its day after the first message.
    pub fn follow_up_due(
        &self,
        first_sent_at: DateTime<Utc>,
        number: u32,
    ) -> Option<DateTime<Utc>> {
        let index = usize::try_from(number.checked_sub(1)?).ok()?;
        let day = self.follow_up_days.get(index)?;
        Some(first_sent_at + TimeDelta::days(i64::from(*day)))
    }
}

/// The id of the lead's `attempt`-th first-message draft (0 for the first; a new one only after
/// a rejection).
pub fn initial_draft_id(lead_id: Uuid, attempt: usize) -> Uuid {
    step_event_id(lead_id, &format!("outreach:draft:initial:{attempt}"))
}

/// The id of the lead's follow-up draft `number`.
pub fn follow_up_draft_id(lead_id: Uuid, number: u32) -> Uuid {
    step_event_id(lead_id, &format!("outreach:draft:follow_up:{number}"))
}

/// The first-message draft that still counts: sent, approved, held or pending (not rejected).
pub fn live_initial_draft(lead: &LeadState) -> Option<(Uuid, &DraftState)> {
    lead.drafts
        .iter()
        .filter(|(_, draft)| draft.kind == MessageKind::Initial)
        .find(|(_, draft)| draft.state != DraftState::Rejected)
        .map(|(id, draft)| (*id, &draft.state))
}

/// How many first-message drafts were rejected (the next draft's attempt number).
pub fn rejected_initial_drafts(lead: &LeadState) -> usize {
    lead.drafts
        .values()
        .filter(|draft| draft.kind == MessageKind::Initial && draft.state == DraftState::Rejected)
        .count()
}

/// What the lead's sequence asks for at `now`.
pub fn next_step(lead: &LeadState, policy: &SequencePolicy, now: DateTime<Utc>) -> Step {
    let Some(lead_id) = lead.lead_id else {
        return Step::Idle;
    };
    // A stopped person's pending invitation is taken back at once; then nothing, ever.
    if lead.is_stopped() {
        return match lead.invitation_to_withdraw(&policy.invitations, now) {
            Some(reason) => Step::Withdraw { reason },
            None => Step::Finished,
        };
    }
    // Any reply but an out-of-office one ends the sequence; one not analysed yet holds it
    // (its analysis may end it, or reschedule the follow-up after the person's return).
    if lead.reply_ended_sequence() || lead.qualified || lead.human_notified {
        return Step::Finished;
    }
    if lead.awaits_analysis() {
        return Step::Idle;
    }
    if lead.status == LeadStatus::Responded {
        // An out-of-office reply that left nothing to resume.
        return Step::Finished;
    }
    if lead.status == LeadStatus::New {
        return Step::Idle;
    }
    if let Some(first_sent_at) = lead.first_message_sent_at {
        return follow_up_step(lead, lead_id, policy, first_sent_at, now);
    }
    // Before the first message.
    let Some((draft_id, state)) = live_initial_draft(lead) else {
        // Drafting happens on allocation (and again on acceptance after a rejection); a lead
        // whose only draft was rejected before it was connected waits for a human.
        return if lead.is_connection && rejected_initial_drafts(lead) > 0 {
            Step::Idle
        } else if lead.drafts.is_empty() {
            Step::DraftInitial {
                draft_id: initial_draft_id(lead_id, 0),
            }
        } else {
            Step::Idle
        };
    };
    match state {
        DraftState::Approved => {}
        // Held for review, or an unknown send outcome: a human decides.
        _ => return Step::Idle,
    }
    if lead.is_connection {
        return Step::SendInitial { draft_id };
    }
    match &lead.invitation {
        Some(invitation) if invitation.is_pending() => {
            match lead.invitation_to_withdraw(&policy.invitations, now) {
                Some(reason) => Step::Withdraw { reason },
                None => Step::Wait {
                    until: invitation.sent_at + policy.invitations.withdraw_after,
                },
            }
        }
        _ => match lead.last_withdrawal_at {
            Some(withdrawn_at) if now < withdrawn_at + policy.invitations.reinvite_after => {
                Step::Wait {
                    until: withdrawn_at + policy.invitations.reinvite_after,
                }
            }
            _ => Step::Invite,
        },
    }
}

fn follow_up_step(
    lead: &LeadState,
    lead_id: Uuid,
    policy: &SequencePolicy,
    first_sent_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Step {
    let number = lead.follow_ups_sent + 1;
    let Some(due) = policy.follow_up_due(first_sent_at, number) else {
        return Step::Finished;
    };
    match &lead.scheduled_follow_up {
        Some(scheduled) if scheduled.follow_up_number == number => {
            if now < scheduled.due_at {
                return Step::Wait {
                    until: scheduled.due_at,
                };
            }
        }
        _ => {
            let last = lead.last_message_sent_at.unwrap_or(first_sent_at);
            // Never closer to the last message than the smallest gap the lead's rules allow.
            let delay = (due - last).max(policy.follow_up_policy().delay);
            return Step::ScheduleFollowUp { number, delay };
        }
    }
    let draft_id = follow_up_draft_id(lead_id, number);
    match lead.draft(draft_id).map(|draft| &draft.state) {
        None => Step::DraftFollowUp { number, draft_id },
        Some(DraftState::Approved) => Step::SendFollowUp { number, draft_id },
        // Rejected by a human, held, or unknown: the sequence stops here for the agent.
        Some(DraftState::Rejected) => Step::Finished,
        Some(_) => Step::Idle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> SequencePolicy {
        SequencePolicy {
            follow_up_days: vec![3, 7],
            invitations: InvitationPolicy::default(),
            out_of_office_delay: TimeDelta::days(7),
        }
    }

    #[test]
    fn the_follow_up_policy_caps_and_takes_the_smallest_gap() {
        let policy = policy().follow_up_policy();
        assert_eq!(policy.max_follow_ups, 2);
        assert_eq!(policy.delay, TimeDelta::days(3));
        let uneven = SequencePolicy {
            follow_up_days: vec![5, 7],
            invitations: InvitationPolicy::default(),
            out_of_office_delay: TimeDelta::days(7),
        };
        assert_eq!(uneven.follow_up_policy().delay, TimeDelta::days(2));
    }

    #[test]
    fn follow_ups_are_due_on_their_days_after_the_first_message() {
        let first: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let policy = policy();
        assert_eq!(
            policy.follow_up_due(first, 1),
            Some("2026-12-04T10:00:00Z".parse().unwrap())
        );
        assert_eq!(
            policy.follow_up_due(first, 2),
            Some("2026-12-08T10:00:00Z".parse().unwrap())
        );
        assert_eq!(policy.follow_up_due(first, 3), None);
        assert_eq!(policy.follow_up_due(first, 0), None);
    }

    #[test]
    fn an_unknown_lead_asks_for_nothing() {
        assert_eq!(
            next_step(
                &LeadState::default(),
                &policy(),
                "2026-12-01T10:00:00Z".parse().unwrap()
            ),
            Step::Idle
        );
    }

    #[test]
    fn draft_ids_are_stable_and_distinct() {
        let lead = Uuid::now_v7();
        assert_eq!(initial_draft_id(lead, 0), initial_draft_id(lead, 0));
        assert_ne!(initial_draft_id(lead, 0), initial_draft_id(lead, 1));
        assert_ne!(follow_up_draft_id(lead, 1), follow_up_draft_id(lead, 2));
    }
}
