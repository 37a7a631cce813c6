//! The `lead-<uuid>` stream: one prospect's journey, from discovery to a closed deal or a
//! do-not-contact, as typed events ([`LeadEvent`]), the folded [`LeadState`] and the rules in
//! `decide` of [`LeadState`] (see [`LeadCommand`]).
//!
//! Every event body keeps the person's personal fields in its `pii` object; the top level holds
//! only what auditors and projections may read in clear.

mod decide;
mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use decide::{DiscoverLead, LeadCommand, ProfileUpdate, Review};
pub use state::{Draft, DraftState, Invitation, LeadState, ResponseRecord, ScheduledFollowUp};

use super::event::domain_events;
use super::pii::Pii;
use super::status::{LeadStatus, PipelineStage};
use super::values::{AccountId, Classification, Confidence, Intent, QualityScore, Sentiment};

domain_events! {
    /// Events of a `lead-<uuid>` stream.
    pub enum LeadEvent {
        LeadDiscovered(LeadDiscovered) = "lead_discovered" @ v 2,
        LeadProfileUpdated(LeadProfileUpdated) = "lead_profile_updated",
        LeadClassified(LeadClassified) = "lead_classified",
        QualityScoreCalculated(QualityScoreCalculated) = "quality_score_calculated",
        ClassificationFeedback(ClassificationFeedback) = "classification_feedback",
        LeadAllocation(LeadAllocation) = "lead_allocation",
        LeadReassigned(LeadReassigned) = "lead_reassigned",
        InvitationSent(InvitationSent) = "invitation_sent",
        InvitationAccepted(InvitationAccepted) = "invitation_accepted",
        InvitationWithdrawn(InvitationWithdrawn) = "invitation_withdrawn",
        MessageDrafted(MessageDrafted) = "message_drafted",
        ReviewRequested(ReviewRequested) = "review_requested",
        MessageApproved(MessageApproved) = "message_approved",
        MessageRejected(MessageRejected) = "message_rejected",
        MessageSent(MessageSent) = "message_sent",
        MessageSendFailed(MessageSendFailed) = "message_send_failed",
        FollowUpScheduled(FollowUpScheduled) = "follow_up_scheduled",
        ResponseReceived(ResponseReceived) = "response_received",
        ResponseAnalysed(ResponseAnalysed) = "response_analysed",
        LeadQualified(LeadQualified) = "lead_qualified",
        HumanNotified(HumanNotified) = "human_notified",
        PipelineStageChanged(PipelineStageChanged) = "pipeline_stage_changed",
        LeadClosed(LeadClosed) = "lead_closed",
        DoNotContact(DoNotContactMarked) = "do_not_contact",
        NoteAdded(NoteAdded) = "note_added",
        LeadForgotten(LeadForgotten) = "lead_forgotten",
    }
}

/// Where a lead came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadSource {
    /// A LinkedIn search (`search_id` says which).
    Search,
    /// An imported list (Clay, Sales Navigator, Apollo, Dripify exports).
    Import,
    /// Typed in by a person (the Sheet, the API).
    Manual,
}

/// How urgently the Sales Manager wants a lead contacted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    High,
    Medium,
    Low,
}

/// A message to a connection: the first one, or a follow-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Initial,
    FollowUp,
}

/// The `kind` of an invitation event: always `invitation` (so that auditors can query the
/// `kind` column of every send alike).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationKind {
    #[default]
    Invitation,
}

/// What a failed send was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    Initial,
    FollowUp,
    Invitation,
}

impl From<MessageKind> for SendKind {
    fn from(kind: MessageKind) -> Self {
        match kind {
            MessageKind::Initial => Self::Initial,
            MessageKind::FollowUp => Self::FollowUp,
        }
    }
}

/// What is known about a send that did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendOutcome {
    /// The provider refused: nothing reached the person; sending again is safe.
    Failed,
    /// Nobody knows whether it reached the person (a crash or a timeout that could not be
    /// reconciled): a human decides, the agent never retries on its own.
    Unknown,
}

/// Why an invitation was withdrawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawalReason {
    /// Pending longer than the policy allows.
    Expired,
    /// Withdrawn on purpose (the lead was stopped, or a person asked).
    Manual,
}

/// How a lead was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseOutcome {
    Won,
    Lost,
}

/// Why a lead was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The person replied they are not interested.
    NotInterested,
    /// A person on the team closed it.
    Manual,
}

/// Who asked for do-not-contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoNotContactSource {
    /// The person's reply (intent DoNotContact).
    Reply,
    /// Someone on the team, or the Sales Manager.
    Manual,
}

/// Follow-up rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowUpPolicy {
    /// Follow-ups per lead. Default 2.
    pub max_follow_ups: u32,
    /// How long after the last message a follow-up may go out. Default 5 days.
    pub delay: TimeDelta,
    /// After an OutOfOffice reply that gives no return date, how long after the reply the
    /// next follow-up may go out. Default 7 days.
    pub out_of_office_delay: TimeDelta,
}

impl Default for FollowUpPolicy {
    fn default() -> Self {
        Self {
            max_follow_ups: 2,
            delay: TimeDelta::days(5),
            out_of_office_delay: TimeDelta::days(7),
        }
    }
}

/// Connection-invitation rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvitationPolicy {
    /// LinkedIn's limit on an invitation note. Default 300 characters.
    pub max_note_chars: usize,
    /// A pending invitation is withdrawn after this long. Default 21 days.
    pub withdraw_after: TimeDelta,
    /// A withdrawn person is not invited again for this long. Default 21 days.
    pub reinvite_after: TimeDelta,
}

impl Default for InvitationPolicy {
    fn default() -> Self {
        Self {
            max_note_chars: 300,
            withdraw_after: TimeDelta::days(21),
            reinvite_after: TimeDelta::days(21),
        }
    }
}

/// A LinkedIn profile became this lead (after its URL was reserved). Schema version 2: the
/// name and URL moved into `pii` (see [`crate::domain::upcasters()`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeadDiscovered {
    pub lead_id: Uuid,
    pub position: String,
    pub company: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub industry: Option<String>,
    /// Already a first-degree connection of the sending account (no invitation needed).
    #[serde(default)]
    pub is_connection: bool,
    pub source: LeadSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_id: Option<Uuid>,
    /// The export format of an import (`clay`, `dripify`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_format: Option<String>,
    /// The hash naming the `linkedin-url-<hash>` reservation.
    pub url_hash: String,
    /// Name, normalised LinkedIn URL, and whatever else of the profile was read.
    #[serde(default)]
    pub pii: Pii,
}

/// A known profile was seen again with changes; only the changed fields are set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LeadProfileUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub industry: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_connection: Option<bool>,
    #[serde(default)]
    pub pii: Pii,
}

/// Speaker, Sponsor or Other, with a confidence 0–1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeadClassified {
    pub classification: Classification,
    pub confidence: Confidence,
    /// A human set it (a manual override): automatic classifications no longer replace it.
    #[serde(default)]
    pub manual: bool,
    #[serde(default)]
    pub pii: Pii,
}

/// A quality score 1–10.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualityScoreCalculated {
    pub score: QualityScore,
    /// The factors' contributions (seniority, speaking signals…), non-personal names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub factors: BTreeMap<String, f64>,
    #[serde(default)]
    pub manual: bool,
    #[serde(default)]
    pub pii: Pii,
}

/// A human corrected the classification or the score: what the Lead Finder learns from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassificationFeedback {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_classification: Option<Classification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrected_classification: Option<Classification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_score: Option<QualityScore>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrected_score: Option<QualityScore>,
    /// The human's reason.
    #[serde(default)]
    pub pii: Pii,
}

/// The Sales Manager allocated the lead for outreach.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeadAllocation {
    /// The agent (or account) that will contact the lead.
    pub assigned_to: String,
    pub priority: Priority,
    /// Why, without personal data (e.g. "high quality speaker").
    #[serde(default)]
    pub reason: String,
}

/// The lead was given to someone else.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeadReassigned {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    #[serde(default)]
    pub pii: Pii,
}

/// A connection invitation went out (note text in `pii.message_text`, if any).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvitationSent {
    pub account_id: AccountId,
    pub kind: InvitationKind,
    pub provider_message_id: String,
    /// The account slot reserved for it.
    pub slot_id: Uuid,
    #[serde(with = "crate::envelope::rfc3339")]
    pub sent_at: DateTime<Utc>,
    #[serde(default)]
    pub pii: Pii,
}

/// The person accepted: they are a connection now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvitationAccepted {
    pub account_id: AccountId,
    #[serde(with = "crate::envelope::rfc3339")]
    pub accepted_at: DateTime<Utc>,
}

/// The pending invitation was taken back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvitationWithdrawn {
    pub account_id: AccountId,
    pub reason: WithdrawalReason,
    #[serde(with = "crate::envelope::rfc3339")]
    pub withdrawn_at: DateTime<Utc>,
}

/// A message was written (text in `pii.message_text`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageDrafted {
    pub draft_id: Uuid,
    pub kind: MessageKind,
    /// 1, 2… for follow-ups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up_number: Option<u32>,
    /// The message template/variant the text was written from (e.g. `speaker-a`), so reply
    /// rates can be compared per variant. Not personal data. Added without a schema bump: it is
    /// optional, absent in older bodies (read as None) and left out when None, so events written
    /// before it and after it read alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub pii: Pii,
}

/// The draft waits for a human (why in `pii.note`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewRequested {
    pub draft_id: Uuid,
    #[serde(default)]
    pub pii: Pii,
}

/// The draft may be sent (an edited text in `pii.message_text` when `edited`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageApproved {
    pub draft_id: Uuid,
    #[serde(default)]
    pub edited: bool,
    #[serde(default)]
    pub pii: Pii,
}

/// The draft must not be sent (why in `pii.note`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageRejected {
    pub draft_id: Uuid,
    #[serde(default)]
    pub pii: Pii,
}

/// A message reached the provider (text in `pii.message_text`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageSent {
    pub account_id: AccountId,
    pub kind: MessageKind,
    pub provider_message_id: String,
    pub draft_id: Uuid,
    pub slot_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up_number: Option<u32>,
    /// The draft's template/variant, copied from its `message_drafted` (see
    /// [`MessageDrafted::variant`]; optional without a schema bump for the same reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(with = "crate::envelope::rfc3339")]
    pub sent_at: DateTime<Utc>,
    #[serde(default)]
    pub pii: Pii,
}

/// A send did not succeed, or nobody knows whether it did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageSendFailed {
    pub account_id: AccountId,
    pub kind: SendKind,
    pub outcome: SendOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_id: Option<Uuid>,
    /// The provider's error, without personal data.
    pub error: String,
}

/// A follow-up is due at `due_at` (if no reply comes first).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FollowUpScheduled {
    pub follow_up_number: u32,
    #[serde(with = "crate::envelope::rfc3339")]
    pub due_at: DateTime<Utc>,
    /// Set only when an OutOfOffice reply rescheduled the follow-up (recorded with the reply's
    /// analysis): it must not go out before this time (the return date the reply gave, or the
    /// configured delay after the reply), and the lead goes back from Responded to Sent (the
    /// transition `ResumeSequence`). Added without a schema bump: optional, absent in older
    /// bodies (read as None) and left out when None.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rfc3339_option"
    )]
    pub not_before: Option<DateTime<Utc>>,
}

/// The person replied (text in `pii.reply_text`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResponseReceived {
    /// 1, 2… in the order the lead's replies arrived.
    pub response_number: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    #[serde(with = "crate::envelope::rfc3339")]
    pub received_at: DateTime<Utc>,
    #[serde(default)]
    pub pii: Pii,
}

/// A reply's sentiment, intent and the confidence in them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResponseAnalysed {
    pub response_number: u32,
    pub sentiment: Sentiment,
    pub intent: Intent,
    pub confidence: Confidence,
    #[serde(default)]
    pub pii: Pii,
}

/// A positive reply: the lead goes to a human.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeadQualified {
    pub response_number: u32,
    pub intent: Intent,
    /// The team member who takes it over.
    pub assigned_to: String,
}

/// The team member was told (the mail's Message-ID derives from this event's id).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HumanNotified {
    /// The team member (not the prospect).
    pub recipient: String,
    /// `email`, …
    pub channel: String,
}

/// The team moved the lead along its pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineStageChanged {
    pub from: LeadStatus,
    pub to: PipelineStage,
}

/// The lead is closed, won or lost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeadClosed {
    pub outcome: CloseOutcome,
    pub reason: CloseReason,
    #[serde(default)]
    pub pii: Pii,
}

/// The `do_not_contact` event: never contact this person again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DoNotContactMarked {
    pub source: DoNotContactSource,
    /// The reply that asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_number: Option<u32>,
    #[serde(default)]
    pub pii: Pii,
}

/// A note about the person (in `pii.note`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoteAdded {
    #[serde(default)]
    pub pii: Pii,
}

/// The person's personal data was erased (their key deleted): every `pii` of this lead reads
/// as empty from now on, and the lead is never contacted again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LeadForgotten {}

/// An optional time in the same RFC 3339 form as [`crate::envelope::rfc3339`].
mod rfc3339_option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => crate::envelope::rfc3339::serialize(time, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|time| time.with_timezone(&Utc))
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}
