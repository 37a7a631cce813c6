//! Given/when/then tests of every lead rule.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::*;
use crate::domain::error::DomainError;
use crate::domain::event::{Aggregate, DomainEvent};
use crate::domain::status::{LeadStatus, LeadTransition, PipelineStage};
use crate::domain::testing::{Given, given, test_time};
use crate::domain::values::{
    AccountId, Classification, Confidence, Intent, LinkedInUrl, QualityScore, Sentiment,
};

// --- fixtures: the facts of a lead's journey -------------------------------------------

fn lead_id() -> Uuid {
    Uuid::from_u128(0x1ead)
}

fn url() -> LinkedInUrl {
    LinkedInUrl::parse("https://www.linkedin.com/in/maya-lindqvist-d1").unwrap()
}

fn account() -> AccountId {
    AccountId::parse("primary").unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn draft_id(n: u128) -> Uuid {
    Uuid::from_u128(0xd0 + n)
}

fn slot_id(n: u128) -> Uuid {
    Uuid::from_u128(0x5107 + n)
}

fn discover_command(is_connection: bool) -> DiscoverLead {
    DiscoverLead {
        lead_id: lead_id(),
        url: url(),
        name: "Maya Lindqvist".into(),
        position: "CTO".into(),
        company: "Fjordbyte".into(),
        company_size: Some("51-200".into()),
        industry: Some("Software Development".into()),
        is_connection,
        source: LeadSource::Search,
        search_id: None,
        import_format: None,
        profile: Pii {
            about: Some("Spoke at QCon about Postgres at scale.".into()),
            ..Pii::default()
        },
    }
}

fn discovered(is_connection: bool) -> LeadEvent {
    LeadDiscovered {
        lead_id: lead_id(),
        position: "CTO".into(),
        company: "Fjordbyte".into(),
        company_size: Some("51-200".into()),
        industry: Some("Software Development".into()),
        is_connection,
        source: LeadSource::Search,
        search_id: None,
        import_format: None,
        url_hash: url().hash(),
        pii: Pii {
            name: Some("Maya Lindqvist".into()),
            linkedin_url: Some(url()),
            about: Some("Spoke at QCon about Postgres at scale.".into()),
            ..Pii::default()
        },
    }
    .into()
}

fn classified(classification: Classification) -> LeadEvent {
    LeadClassified {
        classification,
        confidence: Confidence::parse(0.9).unwrap(),
        manual: false,
        pii: Pii::default(),
    }
    .into()
}

fn scored(score: f64) -> LeadEvent {
    QualityScoreCalculated {
        score: QualityScore::parse(score).unwrap(),
        factors: BTreeMap::new(),
        manual: false,
        pii: Pii::default(),
    }
    .into()
}

fn allocated() -> LeadEvent {
    LeadAllocation {
        assigned_to: "outreach".into(),
        priority: Priority::High,
        reason: "high quality speaker".into(),
    }
    .into()
}

/// Discovered, classified, scored and allocated.
fn ready(is_connection: bool) -> Vec<LeadEvent> {
    vec![
        discovered(is_connection),
        classified(Classification::Speaker),
        scored(8.0),
        allocated(),
    ]
}

fn drafted(id: Uuid, kind: MessageKind, follow_up_number: Option<u32>) -> LeadEvent {
    MessageDrafted {
        draft_id: id,
        kind,
        follow_up_number,
        variant: None,
        pii: Pii::message(format!("message {id}")),
    }
    .into()
}

fn approved(id: Uuid) -> LeadEvent {
    MessageApproved {
        draft_id: id,
        edited: false,
        pii: Pii::default(),
    }
    .into()
}

fn review_requested(id: Uuid) -> LeadEvent {
    ReviewRequested {
        draft_id: id,
        pii: Pii::note("mentions a competitor"),
    }
    .into()
}

fn sent(
    id: Uuid,
    kind: MessageKind,
    sent_at: DateTime<Utc>,
    follow_up_number: Option<u32>,
) -> LeadEvent {
    MessageSent {
        account_id: account(),
        kind,
        provider_message_id: format!("msg-{id}"),
        draft_id: id,
        slot_id: slot_id(1),
        follow_up_number,
        variant: None,
        sent_at,
        pii: Pii::message(format!("message {id}")),
    }
    .into()
}

/// A connection allocated, drafted, approved and sent its first message at `sent_at`.
fn contacted(sent_at: DateTime<Utc>) -> Vec<LeadEvent> {
    let mut events = ready(true);
    events.extend([
        drafted(draft_id(1), MessageKind::Initial, None),
        approved(draft_id(1)),
        sent(draft_id(1), MessageKind::Initial, sent_at, None),
    ]);
    events
}

fn invited(sent_at: DateTime<Utc>) -> LeadEvent {
    InvitationSent {
        account_id: account(),
        kind: InvitationKind::Invitation,
        provider_message_id: "inv-1".into(),
        slot_id: slot_id(0),
        sent_at,
        pii: Pii::message("Hi Maya, loved your QCon talk."),
    }
    .into()
}

fn accepted(accepted_at: DateTime<Utc>) -> LeadEvent {
    InvitationAccepted {
        account_id: account(),
        accepted_at,
    }
    .into()
}

fn withdrawn(withdrawn_at: DateTime<Utc>) -> LeadEvent {
    InvitationWithdrawn {
        account_id: account(),
        reason: WithdrawalReason::Expired,
        withdrawn_at,
    }
    .into()
}

fn response(number: u32, received_at: DateTime<Utc>) -> LeadEvent {
    ResponseReceived {
        response_number: number,
        provider_message_id: Some(format!("reply-{number}")),
        received_at,
        pii: Pii::reply("Sounds great, what dates?"),
    }
    .into()
}

fn analysed(number: u32, sentiment: Sentiment, intent: Intent) -> LeadEvent {
    ResponseAnalysed {
        response_number: number,
        sentiment,
        intent,
        confidence: Confidence::parse(0.8).unwrap(),
        pii: Pii::default(),
    }
    .into()
}

fn qualified() -> LeadEvent {
    LeadQualified {
        response_number: 1,
        intent: Intent::Interested,
        assigned_to: "alice".into(),
    }
    .into()
}

/// Contacted, replied positively, handed over to alice.
fn handed_over() -> Vec<LeadEvent> {
    let mut events = contacted(test_time() - TimeDelta::days(2));
    events.extend([
        response(1, test_time() - TimeDelta::days(1)),
        analysed(1, Sentiment::Positive, Intent::Interested),
        qualified(),
    ]);
    events
}

fn do_not_contact() -> LeadEvent {
    DoNotContactMarked {
        source: DoNotContactSource::Manual,
        response_number: None,
        pii: Pii::default(),
    }
    .into()
}

fn closed_lost() -> LeadEvent {
    LeadClosed {
        outcome: CloseOutcome::Lost,
        reason: CloseReason::Manual,
        pii: Pii::default(),
    }
    .into()
}

fn with(mut events: Vec<LeadEvent>, more: impl IntoIterator<Item = LeadEvent>) -> Vec<LeadEvent> {
    events.extend(more);
    events
}

fn lead(events: Vec<LeadEvent>) -> Given<LeadState> {
    given::<LeadState>(events)
}

// --- commands -----------------------------------------------------------------------

fn send(id: Uuid) -> LeadCommand {
    LeadCommand::RecordMessageSent {
        draft_id: id,
        account_id: account(),
        slot_id: slot_id(1),
        provider_message_id: format!("msg-{id}"),
        policy: FollowUpPolicy::default(),
    }
}

fn draft(id: Uuid, kind: MessageKind, review: Review) -> LeadCommand {
    LeadCommand::DraftMessage {
        draft_id: id,
        kind,
        variant: None,
        text: format!("message {id}"),
        review,
        policy: FollowUpPolicy::default(),
    }
}

fn invite(note: Option<&str>) -> LeadCommand {
    LeadCommand::RecordInvitationSent {
        account_id: account(),
        slot_id: slot_id(0),
        provider_message_id: "inv-1".into(),
        note: note.map(str::to_owned),
        policy: InvitationPolicy::default(),
    }
}

fn analyse(number: u32, sentiment: Sentiment, intent: Intent) -> LeadCommand {
    LeadCommand::AnalyseResponse {
        response_number: number,
        sentiment,
        intent,
        confidence: Confidence::parse(0.8).unwrap(),
        rationale: None,
        hand_over_to: "alice".into(),
        return_date: None,
        policy: FollowUpPolicy::default(),
    }
}

fn schedule() -> LeadCommand {
    LeadCommand::ScheduleFollowUp {
        policy: FollowUpPolicy::default(),
    }
}

// --- discovery and profile ---------------------------------------------------------------

#[test]
fn a_discovered_profile_becomes_a_new_lead() {
    lead(vec![])
        .when(LeadCommand::Discover(discover_command(false)))
        .then([discovered(false)]);
    assert_eq!(
        lead(vec![discovered(false)]).state().status,
        LeadStatus::New
    );
}

#[test]
fn a_lead_is_discovered_once() {
    lead(vec![discovered(false)])
        .when(LeadCommand::Discover(discover_command(false)))
        .then_error(DomainError::LeadAlreadyDiscovered { lead_id: lead_id() });
}

#[test]
fn a_lead_needs_a_name() {
    let mut command = discover_command(false);
    command.name = "  ".into();
    let error = lead(vec![]).when(LeadCommand::Discover(command)).then_err();
    assert!(matches!(error, DomainError::InvalidCommand(_)), "{error:?}");
}

#[test]
fn commands_on_an_undiscovered_lead_are_refused() {
    lead(vec![])
        .when(LeadCommand::Classify {
            classification: Classification::Speaker,
            confidence: Confidence::parse(0.9).unwrap(),
            rationale: None,
        })
        .then_error(DomainError::LeadNotDiscovered);
}

#[test]
fn a_profile_update_records_only_what_changed() {
    let update = ProfileUpdate {
        position: Some("CTO".into()),
        company: Some("Fjordbyte AB".into()),
        is_connection: Some(true),
        profile: Pii {
            name: Some("Maya Lindqvist".into()),
            headline: Some("CTO at Fjordbyte".into()),
            ..Pii::default()
        },
        ..ProfileUpdate::default()
    };
    lead(vec![discovered(false)])
        .when(LeadCommand::UpdateProfile(update.clone()))
        .then([LeadProfileUpdated {
            company: Some("Fjordbyte AB".into()),
            is_connection: Some(true),
            pii: Pii {
                headline: Some("CTO at Fjordbyte".into()),
                ..Pii::default()
            },
            ..LeadProfileUpdated::default()
        }
        .into()]);
    let unchanged = ProfileUpdate {
        position: Some("CTO".into()),
        ..ProfileUpdate::default()
    };
    lead(vec![discovered(false)])
        .when(LeadCommand::UpdateProfile(unchanged))
        .then([]);
}

#[test]
fn a_leads_url_never_changes() {
    let update = ProfileUpdate {
        profile: Pii {
            linkedin_url: Some(LinkedInUrl::parse("linkedin.com/in/someone-else").unwrap()),
            ..Pii::default()
        },
        ..ProfileUpdate::default()
    };
    let error = lead(vec![discovered(false)])
        .when(LeadCommand::UpdateProfile(update))
        .then_err();
    assert!(matches!(error, DomainError::InvalidCommand(_)), "{error:?}");
}

// --- classification and score --------------------------------------------------------------

#[test]
fn a_lead_is_classified_with_a_confidence() {
    lead(vec![discovered(false)])
        .when(LeadCommand::Classify {
            classification: Classification::Speaker,
            confidence: Confidence::parse(0.9).unwrap(),
            rationale: None,
        })
        .then([classified(Classification::Speaker)]);
}

#[test]
fn a_lead_is_scored() {
    lead(vec![discovered(false)])
        .when(LeadCommand::Score {
            score: QualityScore::parse(8.0).unwrap(),
            factors: BTreeMap::new(),
            rationale: None,
        })
        .then([scored(8.0)]);
}

#[test]
fn scores_and_confidences_out_of_range_never_decode() {
    let bad_score = serde_json::json!({"score": 10.5});
    assert!(LeadEvent::from_data("quality_score_calculated", bad_score).is_err());
    let bad_confidence = serde_json::json!({"classification": "Speaker", "confidence": 1.01});
    assert!(LeadEvent::from_data("lead_classified", bad_confidence).is_err());
    let bad_class = serde_json::json!({"classification": "Maybe", "confidence": 0.5});
    assert!(LeadEvent::from_data("lead_classified", bad_class).is_err());
}

#[test]
fn non_finite_score_factors_are_refused() {
    let error = lead(vec![discovered(false)])
        .when(LeadCommand::Score {
            score: QualityScore::parse(8.0).unwrap(),
            factors: BTreeMap::from([("seniority".to_owned(), f64::INFINITY)]),
            rationale: None,
        })
        .then_err();
    assert!(matches!(error, DomainError::InvalidCommand(_)), "{error:?}");
}

#[test]
fn a_human_override_is_also_classification_feedback() {
    lead(vec![discovered(false), classified(Classification::Speaker)])
        .by_human("alice")
        .when(LeadCommand::OverrideClassification {
            classification: Classification::Sponsor,
            reason: Some("runs DevRel budget".into()),
        })
        .then([
            LeadClassified {
                classification: Classification::Sponsor,
                confidence: Confidence::parse(1.0).unwrap(),
                manual: true,
                pii: Pii::rationale("runs DevRel budget"),
            }
            .into(),
            ClassificationFeedback {
                previous_classification: Some(Classification::Speaker),
                corrected_classification: Some(Classification::Sponsor),
                pii: Pii::note("runs DevRel budget"),
                ..ClassificationFeedback::default()
            }
            .into(),
        ]);
}

#[test]
fn a_score_override_is_also_classification_feedback() {
    lead(vec![discovered(false), scored(8.0)])
        .by_human("alice")
        .when(LeadCommand::OverrideScore {
            score: QualityScore::parse(4.0).unwrap(),
            reason: None,
        })
        .then([
            QualityScoreCalculated {
                score: QualityScore::parse(4.0).unwrap(),
                factors: BTreeMap::new(),
                manual: true,
                pii: Pii::default(),
            }
            .into(),
            ClassificationFeedback {
                previous_score: Some(QualityScore::parse(8.0).unwrap()),
                corrected_score: Some(QualityScore::parse(4.0).unwrap()),
                ..ClassificationFeedback::default()
            }
            .into(),
        ]);
}

#[test]
fn only_a_human_overrides() {
    lead(vec![discovered(false)])
        .when(LeadCommand::OverrideScore {
            score: QualityScore::parse(4.0).unwrap(),
            reason: None,
        })
        .then_error(DomainError::HumanRequired {
            action: "overriding a classification or score",
        });
}

#[test]
fn a_human_override_stands_against_automatic_results() {
    let overridden = LeadClassified {
        classification: Classification::Sponsor,
        confidence: Confidence::parse(1.0).unwrap(),
        manual: true,
        pii: Pii::default(),
    };
    lead(vec![discovered(false), overridden.into()])
        .when(LeadCommand::Classify {
            classification: Classification::Speaker,
            confidence: Confidence::parse(0.7).unwrap(),
            rationale: None,
        })
        .then_error(DomainError::OverriddenByHuman);
}

// --- allocation ---------------------------------------------------------------------------

fn allocate() -> LeadCommand {
    LeadCommand::Allocate {
        assigned_to: "outreach".into(),
        priority: Priority::High,
        reason: "high quality speaker".into(),
    }
}

#[test]
fn a_classified_and_scored_lead_is_allocated() {
    lead(vec![
        discovered(false),
        classified(Classification::Speaker),
        scored(8.0),
    ])
    .when(allocate())
    .then([allocated()]);
}

#[test]
fn allocation_needs_a_classification_and_a_score() {
    lead(vec![discovered(false), scored(8.0)])
        .when(allocate())
        .then_error(DomainError::NotClassified);
    lead(vec![discovered(false), classified(Classification::Other)])
        .when(allocate())
        .then_error(DomainError::NotScored);
}

#[test]
fn a_lead_is_allocated_once() {
    lead(ready(false))
        .when(allocate())
        .then_error(DomainError::TransitionNotAllowed {
            status: LeadStatus::Allocated,
            transition: LeadTransition::Allocate,
        });
}

#[test]
fn a_do_not_contact_lead_is_never_allocated() {
    lead(vec![
        discovered(false),
        classified(Classification::Speaker),
        scored(8.0),
        do_not_contact(),
    ])
    .when(allocate())
    .then_error(DomainError::LeadIsDoNotContact);
}

#[test]
fn a_lead_is_reassigned_to_someone_else_only() {
    lead(ready(false))
        .when(LeadCommand::Reassign {
            to: "bob".into(),
            reason: None,
        })
        .then([LeadReassigned {
            from: Some("outreach".into()),
            to: "bob".into(),
            pii: Pii::default(),
        }
        .into()]);
    lead(ready(false))
        .when(LeadCommand::Reassign {
            to: "outreach".into(),
            reason: None,
        })
        .then([]);
    lead(vec![discovered(false)])
        .when(LeadCommand::Reassign {
            to: "bob".into(),
            reason: None,
        })
        .then_error(DomainError::TransitionNotAllowed {
            status: LeadStatus::New,
            transition: LeadTransition::Reassign,
        });
}

// --- status order: first messages -----------------------------------------------------------

#[test]
fn the_first_message_goes_to_an_allocated_connection() {
    lead(with(
        ready(true),
        [
            drafted(draft_id(1), MessageKind::Initial, None),
            approved(draft_id(1)),
        ],
    ))
    .when(send(draft_id(1)))
    .then([sent(draft_id(1), MessageKind::Initial, test_time(), None)]);
}

#[test]
fn nothing_is_sent_to_an_unallocated_lead() {
    // Even with an approved draft somehow recorded, a New lead gets nothing.
    lead(vec![
        discovered(true),
        drafted(draft_id(1), MessageKind::Initial, None),
        approved(draft_id(1)),
    ])
    .when(send(draft_id(1)))
    .then_error(DomainError::TransitionNotAllowed {
        status: LeadStatus::New,
        transition: LeadTransition::SendFirstMessage,
    });
    lead(vec![discovered(true)])
        .when(draft(draft_id(1), MessageKind::Initial, Review::NotNeeded))
        .then_error(DomainError::TransitionNotAllowed {
            status: LeadStatus::New,
            transition: LeadTransition::Draft,
        });
}

#[test]
fn there_is_no_second_first_message() {
    let given_events = with(
        contacted(test_time() - TimeDelta::hours(1)),
        [
            drafted(draft_id(2), MessageKind::Initial, None),
            approved(draft_id(2)),
        ],
    );
    lead(given_events)
        .when(send(draft_id(2)))
        .then_error(DomainError::FirstMessageAlreadySent);
    lead(contacted(test_time()))
        .when(draft(draft_id(2), MessageKind::Initial, Review::NotNeeded))
        .then_error(DomainError::FirstMessageAlreadySent);
}

#[test]
fn a_person_who_is_not_a_connection_is_invited_first() {
    lead(with(
        ready(false),
        [
            drafted(draft_id(1), MessageKind::Initial, None),
            approved(draft_id(1)),
        ],
    ))
    .when(send(draft_id(1)))
    .then_error(DomainError::NotConnected);
}

#[test]
fn no_message_while_the_invitation_is_pending() {
    lead(with(
        ready(false),
        [
            invited(test_time() - TimeDelta::days(1)),
            drafted(draft_id(1), MessageKind::Initial, None),
            approved(draft_id(1)),
        ],
    ))
    .when(send(draft_id(1)))
    .then_error(DomainError::TransitionNotAllowed {
        status: LeadStatus::Invited,
        transition: LeadTransition::SendFirstMessage,
    });
}

#[test]
fn invitation_then_acceptance_then_first_message() {
    let journey = with(
        ready(false),
        [
            invited(test_time() - TimeDelta::days(2)),
            accepted(test_time() - TimeDelta::days(1)),
            drafted(draft_id(1), MessageKind::Initial, None),
            approved(draft_id(1)),
        ],
    );
    assert_eq!(lead(journey.clone()).state().status, LeadStatus::Connected);
    lead(journey).when(send(draft_id(1))).then([sent(
        draft_id(1),
        MessageKind::Initial,
        test_time(),
        None,
    )]);
}

#[test]
fn nothing_is_sent_to_a_do_not_contact_lead() {
    let stopped = with(
        ready(true),
        [
            drafted(draft_id(1), MessageKind::Initial, None),
            approved(draft_id(1)),
            do_not_contact(),
        ],
    );
    lead(stopped.clone())
        .when(send(draft_id(1)))
        .then_error(DomainError::LeadIsDoNotContact);
    lead(stopped.clone())
        .when(draft(draft_id(2), MessageKind::Initial, Review::NotNeeded))
        .then_error(DomainError::LeadIsDoNotContact);
    lead(with(ready(false), [do_not_contact()]))
        .when(invite(None))
        .then_error(DomainError::LeadIsDoNotContact);
    assert!(
        lead(stopped.clone())
            .state()
            .check_send(draft_id(1), &FollowUpPolicy::default(), test_time())
            .is_err()
    );
    assert_eq!(lead(stopped).state().status, LeadStatus::DoNotContact);
}

#[test]
fn nothing_is_sent_to_a_closed_lead() {
    lead(with(
        ready(true),
        [
            drafted(draft_id(1), MessageKind::Initial, None),
            approved(draft_id(1)),
            closed_lost(),
        ],
    ))
    .when(send(draft_id(1)))
    .then_error(DomainError::LeadIsClosed);
}

#[test]
fn only_approved_drafts_are_sent() {
    lead(with(
        ready(true),
        [drafted(draft_id(1), MessageKind::Initial, None)],
    ))
    .when(send(draft_id(1)))
    .then_error(DomainError::DraftNotApproved {
        draft_id: draft_id(1),
    });
    lead(ready(true))
        .when(send(draft_id(9)))
        .then_error(DomainError::UnknownDraft {
            draft_id: draft_id(9),
        });
}

#[test]
fn recording_the_same_send_again_is_a_no_op() {
    lead(contacted(test_time()))
        .when(send(draft_id(1)))
        .then([]);
}

#[test]
fn message_sent_carries_what_auditors_query_at_its_top_level() {
    let body = sent(draft_id(1), MessageKind::Initial, test_time(), None).to_data();
    assert_eq!(body["account_id"], "primary");
    assert_eq!(body["kind"], "initial");
    assert_eq!(body["provider_message_id"], format!("msg-{}", draft_id(1)));
    assert_eq!(
        body["pii"]["message_text"],
        format!("message {}", draft_id(1))
    );
    let follow_up = sent(draft_id(2), MessageKind::FollowUp, test_time(), Some(1)).to_data();
    assert_eq!(follow_up["kind"], "follow_up");
    let invitation = invited(test_time()).to_data();
    assert_eq!(invitation["account_id"], "primary");
    assert_eq!(invitation["kind"], "invitation");
    assert_eq!(invitation["provider_message_id"], "inv-1");
    assert_eq!(
        invitation["pii"]["message_text"],
        "Hi Maya, loved your QCon talk."
    );
}

// --- send failures ---------------------------------------------------------------------------

fn failure(outcome: SendOutcome) -> LeadCommand {
    LeadCommand::RecordSendFailure {
        kind: SendKind::Initial,
        account_id: account(),
        draft_id: Some(draft_id(1)),
        slot_id: Some(slot_id(1)),
        outcome,
        error: "provider returned 503".into(),
    }
}

fn failed(outcome: SendOutcome) -> LeadEvent {
    MessageSendFailed {
        account_id: account(),
        kind: SendKind::Initial,
        outcome,
        draft_id: Some(draft_id(1)),
        slot_id: Some(slot_id(1)),
        error: "provider returned 503".into(),
    }
    .into()
}

#[test]
fn a_failed_send_is_recorded_and_may_be_sent_again() {
    let approved_draft = with(
        ready(true),
        [
            drafted(draft_id(1), MessageKind::Initial, None),
            approved(draft_id(1)),
        ],
    );
    lead(approved_draft.clone())
        .when(failure(SendOutcome::Failed))
        .then([failed(SendOutcome::Failed)]);
    lead(with(approved_draft, [failed(SendOutcome::Failed)]))
        .when(send(draft_id(1)))
        .then([sent(draft_id(1), MessageKind::Initial, test_time(), None)]);
}

#[test]
fn an_unknown_send_outcome_is_never_retried_without_a_human() {
    let unknown = with(
        ready(true),
        [
            drafted(draft_id(1), MessageKind::Initial, None),
            approved(draft_id(1)),
            failed(SendOutcome::Unknown),
        ],
    );
    assert_eq!(
        lead(unknown.clone())
            .state()
            .check_send(draft_id(1), &FollowUpPolicy::default(), test_time())
            .unwrap_err(),
        DomainError::DraftNotApproved {
            draft_id: draft_id(1)
        }
    );
    lead(unknown.clone())
        .when(LeadCommand::ApproveMessage {
            draft_id: draft_id(1),
            edited_text: None,
        })
        .then_error(DomainError::HumanRequired {
            action: "approving a held message",
        });
    lead(unknown.clone())
        .by_human("alice")
        .when(LeadCommand::ApproveMessage {
            draft_id: draft_id(1),
            edited_text: None,
        })
        .then([approved(draft_id(1))]);
    // Reconciled with the provider: it did arrive.
    lead(unknown).when(send(draft_id(1))).then([sent(
        draft_id(1),
        MessageKind::Initial,
        test_time(),
        None,
    )]);
}

#[test]
fn a_failure_names_a_matching_approved_draft() {
    let error = lead(with(
        ready(true),
        [
            drafted(draft_id(1), MessageKind::Initial, None),
            approved(draft_id(1)),
        ],
    ))
    .when(LeadCommand::RecordSendFailure {
        kind: SendKind::FollowUp,
        account_id: account(),
        draft_id: Some(draft_id(1)),
        slot_id: None,
        outcome: SendOutcome::Failed,
        error: "x".into(),
    })
    .then_err();
    assert!(matches!(error, DomainError::InvalidCommand(_)), "{error:?}");
    lead(with(
        ready(true),
        [drafted(draft_id(1), MessageKind::Initial, None)],
    ))
    .when(failure(SendOutcome::Failed))
    .then_error(DomainError::DraftNotApproved {
        draft_id: draft_id(1),
    });
}

// --- invitations -----------------------------------------------------------------------------

#[test]
fn an_allocated_stranger_is_invited_with_a_note() {
    lead(ready(false))
        .when(invite(Some("Hi Maya, loved your QCon talk.")))
        .then([invited(test_time())]);
    assert_eq!(
        lead(with(ready(false), [invited(test_time())]))
            .state()
            .status,
        LeadStatus::Invited
    );
}

#[test]
fn an_invitation_note_has_at_most_300_characters() {
    let at_limit = "é".repeat(300);
    let ok = lead(ready(false)).when(invite(Some(&at_limit))).then_ok();
    assert_eq!(ok.len(), 1);
    lead(ready(false))
        .when(invite(Some(&"a".repeat(301))))
        .then_error(DomainError::InvitationNoteTooLong {
            chars: 301,
            max: 300,
        });
}

#[test]
fn an_invitation_without_a_note_is_fine() {
    let events = lead(ready(false)).when(invite(None)).then_ok();
    let LeadEvent::InvitationSent(sent) = &events[0] else {
        panic!("{events:?}")
    };
    assert!(sent.pii.is_empty());
}

#[test]
fn a_connection_is_not_invited() {
    lead(ready(true))
        .when(invite(None))
        .then_error(DomainError::AlreadyConnected);
}

#[test]
fn an_unallocated_lead_is_not_invited() {
    lead(vec![discovered(false)]).when(invite(None)).then_error(
        DomainError::TransitionNotAllowed {
            status: LeadStatus::New,
            transition: LeadTransition::Invite,
        },
    );
}

#[test]
fn a_lead_is_invited_once_at_a_time() {
    lead(with(ready(false), [invited(test_time())]))
        .when(invite(None))
        .then([]);
    lead(with(ready(false), [invited(test_time())]))
        .when(LeadCommand::RecordInvitationSent {
            account_id: account(),
            slot_id: slot_id(3),
            provider_message_id: "inv-2".into(),
            note: None,
            policy: InvitationPolicy::default(),
        })
        .then_error(DomainError::TransitionNotAllowed {
            status: LeadStatus::Invited,
            transition: LeadTransition::Invite,
        });
}

#[test]
fn an_acceptance_makes_the_person_a_connection() {
    lead(with(
        ready(false),
        [invited(test_time() - TimeDelta::days(1))],
    ))
    .when(LeadCommand::RecordInvitationAccepted)
    .then([accepted(test_time())]);
    lead(with(
        ready(false),
        [
            invited(test_time() - TimeDelta::days(1)),
            accepted(test_time()),
        ],
    ))
    .when(LeadCommand::RecordInvitationAccepted)
    .then([]);
    lead(ready(false))
        .when(LeadCommand::RecordInvitationAccepted)
        .then_error(DomainError::NoPendingInvitation);
}

fn withdraw(reason: WithdrawalReason, policy: InvitationPolicy) -> LeadCommand {
    LeadCommand::WithdrawInvitation { reason, policy }
}

#[test]
fn a_pending_invitation_is_withdrawn_after_21_days() {
    let sent_at = at("2026-11-01T10:00:00Z");
    let pending = with(ready(false), [invited(sent_at)]);
    lead(pending.clone())
        .at(at("2026-11-22T09:59:59Z"))
        .when(withdraw(
            WithdrawalReason::Expired,
            InvitationPolicy::default(),
        ))
        .then_error(DomainError::InvitationNotExpired {
            expires_at: at("2026-11-22T10:00:00Z"),
        });
    lead(pending.clone())
        .at(at("2026-11-22T10:00:00Z"))
        .when(withdraw(
            WithdrawalReason::Expired,
            InvitationPolicy::default(),
        ))
        .then([withdrawn(at("2026-11-22T10:00:00Z"))]);
    let state = lead(with(
        pending.clone(),
        [withdrawn(at("2026-11-22T10:00:00Z"))],
    ))
    .state();
    assert_eq!(state.status, LeadStatus::Allocated);
    assert_eq!(
        lead(pending)
            .state()
            .invitation_to_withdraw(&InvitationPolicy::default(), at("2026-11-22T10:00:00Z")),
        Some(WithdrawalReason::Expired)
    );
}

#[test]
fn the_withdrawal_delay_is_configurable() {
    let policy = InvitationPolicy {
        withdraw_after: TimeDelta::days(14),
        ..InvitationPolicy::default()
    };
    lead(with(ready(false), [invited(at("2026-11-01T10:00:00Z"))]))
        .at(at("2026-11-15T10:00:00Z"))
        .when(withdraw(WithdrawalReason::Expired, policy))
        .then([withdrawn(at("2026-11-15T10:00:00Z"))]);
}

#[test]
fn a_withdrawn_person_is_not_invited_again_for_three_weeks() {
    let withdrawn_at = at("2026-11-22T10:00:00Z");
    let history = with(
        ready(false),
        [invited(at("2026-11-01T10:00:00Z")), withdrawn(withdrawn_at)],
    );
    let again = LeadCommand::RecordInvitationSent {
        account_id: account(),
        slot_id: slot_id(2),
        provider_message_id: "inv-2".into(),
        note: None,
        policy: InvitationPolicy::default(),
    };
    lead(history.clone())
        .at(withdrawn_at + TimeDelta::days(20))
        .when(again.clone())
        .then_error(DomainError::ReinviteTooSoon {
            not_before: withdrawn_at + TimeDelta::days(21),
        });
    let events = lead(history)
        .at(withdrawn_at + TimeDelta::days(21))
        .when(again)
        .then_ok();
    assert!(
        matches!(events.as_slice(), [LeadEvent::InvitationSent(_)]),
        "{events:?}"
    );
}

#[test]
fn a_stopped_leads_pending_invitation_is_withdrawn_at_once() {
    let stopped = with(
        ready(false),
        [invited(test_time() - TimeDelta::days(1)), do_not_contact()],
    );
    assert_eq!(
        lead(stopped.clone())
            .state()
            .invitation_to_withdraw(&InvitationPolicy::default(), test_time()),
        Some(WithdrawalReason::Manual)
    );
    lead(stopped)
        .when(withdraw(
            WithdrawalReason::Manual,
            InvitationPolicy::default(),
        ))
        .then([InvitationWithdrawn {
            account_id: account(),
            reason: WithdrawalReason::Manual,
            withdrawn_at: test_time(),
        }
        .into()]);
    lead(ready(false))
        .when(withdraw(
            WithdrawalReason::Manual,
            InvitationPolicy::default(),
        ))
        .then_error(DomainError::NoPendingInvitation);
}

// --- drafts and review -------------------------------------------------------------------------

#[test]
fn a_draft_needing_no_review_is_approved_at_once() {
    lead(ready(true))
        .when(draft(draft_id(1), MessageKind::Initial, Review::NotNeeded))
        .then([
            drafted(draft_id(1), MessageKind::Initial, None),
            approved(draft_id(1)),
        ]);
}

#[test]
fn the_drafts_variant_is_carried_into_the_sent_message() {
    let mut command = draft(draft_id(1), MessageKind::Initial, Review::NotNeeded);
    if let LeadCommand::DraftMessage { variant, .. } = &mut command {
        *variant = Some(" speaker-a ".into());
    }
    let events = lead(ready(true)).when(command).then_ok();
    let LeadEvent::MessageDrafted(drafted) = &events[0] else {
        panic!("expected message_drafted first, got {events:?}");
    };
    assert_eq!(drafted.variant.as_deref(), Some("speaker-a"), "trimmed");
    let sent = lead(with(ready(true), events))
        .when(send(draft_id(1)))
        .then_ok();
    let [LeadEvent::MessageSent(sent)] = sent.as_slice() else {
        panic!("expected one message_sent, got {sent:?}");
    };
    assert_eq!(sent.variant.as_deref(), Some("speaker-a"));
}

#[test]
fn a_blank_variant_is_no_variant() {
    let mut command = draft(draft_id(1), MessageKind::Initial, Review::NotNeeded);
    if let LeadCommand::DraftMessage { variant, .. } = &mut command {
        *variant = Some("  ".into());
    }
    lead(ready(true)).when(command).then([
        drafted(draft_id(1), MessageKind::Initial, None),
        approved(draft_id(1)),
    ]);
}

#[test]
fn messages_written_before_variants_existed_still_read() {
    // A body stored before the field was added has no `variant` key; a None is not written.
    let old_sent = serde_json::json!({
        "account_id": "primary", "kind": "initial", "provider_message_id": "m-1",
        "draft_id": draft_id(1), "slot_id": slot_id(1), "sent_at": "2026-11-02T10:00:00.000000Z",
    });
    let LeadEvent::MessageSent(sent) = LeadEvent::from_data("message_sent", old_sent).unwrap()
    else {
        unreachable!()
    };
    assert_eq!(sent.variant, None);
    let old_drafted = serde_json::json!({ "draft_id": draft_id(1), "kind": "initial" });
    let LeadEvent::MessageDrafted(drafted) =
        LeadEvent::from_data("message_drafted", old_drafted).unwrap()
    else {
        unreachable!()
    };
    assert_eq!(drafted.variant, None);
    let body = LeadEvent::from(drafted).to_data();
    assert!(body.get("variant").is_none(), "{body}");
}

#[test]
fn a_draft_needing_review_holds_the_lead_in_review() {
    lead(ready(true))
        .when(draft(
            draft_id(1),
            MessageKind::Initial,
            Review::Required {
                reason: "mentions a competitor".into(),
            },
        ))
        .then([
            drafted(draft_id(1), MessageKind::Initial, None),
            review_requested(draft_id(1)),
        ]);
    let held = with(
        ready(true),
        [
            drafted(draft_id(1), MessageKind::Initial, None),
            review_requested(draft_id(1)),
        ],
    );
    assert_eq!(lead(held).state().status, LeadStatus::InReview);
}

#[test]
fn a_held_draft_is_approved_by_a_human_only_and_the_status_resumes() {
    let held = with(
        ready(true),
        [
            drafted(draft_id(1), MessageKind::Initial, None),
            review_requested(draft_id(1)),
        ],
    );
    let approve = LeadCommand::ApproveMessage {
        draft_id: draft_id(1),
        edited_text: Some("Hi Maya — edited.".into()),
    };
    lead(held.clone())
        .when(approve.clone())
        .then_error(DomainError::HumanRequired {
            action: "approving a held message",
        });
    let edited: LeadEvent = MessageApproved {
        draft_id: draft_id(1),
        edited: true,
        pii: Pii::message("Hi Maya — edited."),
    }
    .into();
    lead(held.clone())
        .by_human("alice")
        .when(approve)
        .then([edited.clone()]);
    let resumed = with(held, [edited]);
    assert_eq!(lead(resumed.clone()).state().status, LeadStatus::Allocated);
    // The edited text is what goes out.
    let events = lead(resumed).when(send(draft_id(1))).then_ok();
    let LeadEvent::MessageSent(message) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(
        message.pii.message_text.as_deref(),
        Some("Hi Maya — edited.")
    );
}

#[test]
fn a_held_draft_is_rejected_by_a_human_and_the_status_resumes() {
    let held = with(
        ready(true),
        [
            drafted(draft_id(1), MessageKind::Initial, None),
            review_requested(draft_id(1)),
        ],
    );
    let reject = LeadCommand::RejectMessage {
        draft_id: draft_id(1),
        reason: Some("too pushy".into()),
    };
    lead(held.clone())
        .when(reject.clone())
        .then_error(DomainError::HumanRequired {
            action: "rejecting a held message",
        });
    let rejected: LeadEvent = MessageRejected {
        draft_id: draft_id(1),
        pii: Pii::note("too pushy"),
    }
    .into();
    lead(held.clone())
        .by_human("alice")
        .when(reject)
        .then([rejected.clone()]);
    let state = lead(with(held, [rejected])).state();
    assert_eq!(state.status, LeadStatus::Allocated);
    assert_eq!(
        state.draft(draft_id(1)).unwrap().state,
        DraftState::Rejected
    );
}

#[test]
fn a_decided_or_unknown_draft_cannot_be_decided_again() {
    let approved_draft = with(
        ready(true),
        [
            drafted(draft_id(1), MessageKind::Initial, None),
            approved(draft_id(1)),
        ],
    );
    lead(approved_draft)
        .when(LeadCommand::ApproveMessage {
            draft_id: draft_id(1),
            edited_text: None,
        })
        .then_error(DomainError::DraftNotPending {
            draft_id: draft_id(1),
        });
    lead(ready(true))
        .when(LeadCommand::RejectMessage {
            draft_id: draft_id(5),
            reason: None,
        })
        .then_error(DomainError::UnknownDraft {
            draft_id: draft_id(5),
        });
}

#[test]
fn drafting_the_same_draft_again_is_a_no_op() {
    let drafted_once = with(
        ready(true),
        [
            drafted(draft_id(1), MessageKind::Initial, None),
            approved(draft_id(1)),
        ],
    );
    lead(drafted_once.clone())
        .when(draft(draft_id(1), MessageKind::Initial, Review::NotNeeded))
        .then([]);
    lead(drafted_once)
        .when(draft(draft_id(1), MessageKind::FollowUp, Review::NotNeeded))
        .then_error(DomainError::DraftAlreadyExists {
            draft_id: draft_id(1),
        });
}

#[test]
fn an_empty_message_is_refused() {
    let error = lead(ready(true))
        .when(LeadCommand::DraftMessage {
            draft_id: draft_id(1),
            kind: MessageKind::Initial,
            variant: None,
            text: " \n".into(),
            review: Review::NotNeeded,
            policy: FollowUpPolicy::default(),
        })
        .then_err();
    assert!(matches!(error, DomainError::InvalidCommand(_)), "{error:?}");
}

// --- follow-ups ------------------------------------------------------------------------------

#[test]
fn a_follow_up_is_scheduled_after_the_delay() {
    let sent_at = at("2026-11-20T10:00:00Z");
    lead(contacted(sent_at))
        .when(schedule())
        .then([FollowUpScheduled {
            follow_up_number: 1,
            due_at: sent_at + TimeDelta::days(5),
            not_before: None,
        }
        .into()]);
}

#[test]
fn scheduling_the_same_follow_up_again_is_a_no_op() {
    let sent_at = at("2026-11-20T10:00:00Z");
    lead(with(
        contacted(sent_at),
        [FollowUpScheduled {
            follow_up_number: 1,
            due_at: sent_at + TimeDelta::days(5),
            not_before: None,
        }
        .into()],
    ))
    .when(schedule())
    .then([]);
}

#[test]
fn no_follow_up_before_a_first_message() {
    lead(ready(true))
        .when(schedule())
        .then_error(DomainError::TransitionNotAllowed {
            status: LeadStatus::Allocated,
            transition: LeadTransition::SendFollowUp,
        });
    lead(ready(true))
        .when(draft(draft_id(2), MessageKind::FollowUp, Review::NotNeeded))
        .then_error(DomainError::TransitionNotAllowed {
            status: LeadStatus::Allocated,
            transition: LeadTransition::SendFollowUp,
        });
}

#[test]
fn a_follow_up_is_not_sent_before_the_delay() {
    let sent_at = at("2026-11-20T10:00:00Z");
    let ready_to_follow_up = with(
        contacted(sent_at),
        [
            drafted(draft_id(2), MessageKind::FollowUp, Some(1)),
            approved(draft_id(2)),
        ],
    );
    lead(ready_to_follow_up.clone())
        .at(sent_at + TimeDelta::days(5) - TimeDelta::seconds(1))
        .when(send(draft_id(2)))
        .then_error(DomainError::FollowUpTooEarly {
            not_before: sent_at + TimeDelta::days(5),
        });
    let due = sent_at + TimeDelta::days(5);
    lead(ready_to_follow_up)
        .at(due)
        .when(send(draft_id(2)))
        .then([sent(draft_id(2), MessageKind::FollowUp, due, Some(1))]);
}

#[test]
fn the_delay_is_counted_from_the_last_message() {
    let first = at("2026-11-01T10:00:00Z");
    let follow_up = at("2026-11-06T10:00:00Z");
    let history = with(
        contacted(first),
        [
            drafted(draft_id(2), MessageKind::FollowUp, Some(1)),
            approved(draft_id(2)),
            sent(draft_id(2), MessageKind::FollowUp, follow_up, Some(1)),
            drafted(draft_id(3), MessageKind::FollowUp, Some(2)),
            approved(draft_id(3)),
        ],
    );
    lead(history.clone())
        .at(follow_up + TimeDelta::days(4))
        .when(send(draft_id(3)))
        .then_error(DomainError::FollowUpTooEarly {
            not_before: follow_up + TimeDelta::days(5),
        });
    lead(history)
        .at(follow_up + TimeDelta::days(5))
        .when(send(draft_id(3)))
        .then([sent(
            draft_id(3),
            MessageKind::FollowUp,
            follow_up + TimeDelta::days(5),
            Some(2),
        )]);
}

#[test]
fn at_most_two_follow_ups_by_default() {
    let history = with(
        contacted(at("2026-11-01T10:00:00Z")),
        [
            drafted(draft_id(2), MessageKind::FollowUp, Some(1)),
            approved(draft_id(2)),
            sent(
                draft_id(2),
                MessageKind::FollowUp,
                at("2026-11-06T10:00:00Z"),
                Some(1),
            ),
            drafted(draft_id(3), MessageKind::FollowUp, Some(2)),
            approved(draft_id(3)),
            sent(
                draft_id(3),
                MessageKind::FollowUp,
                at("2026-11-11T10:00:00Z"),
                Some(2),
            ),
        ],
    );
    lead(history.clone())
        .when(schedule())
        .then_error(DomainError::FollowUpLimitReached { max: 2 });
    lead(history.clone())
        .when(draft(draft_id(4), MessageKind::FollowUp, Review::NotNeeded))
        .then_error(DomainError::FollowUpLimitReached { max: 2 });
    // A third follow-up recorded anyway (an approved draft) is refused at the send.
    lead(with(
        history,
        [
            drafted(draft_id(4), MessageKind::FollowUp, Some(3)),
            approved(draft_id(4)),
        ],
    ))
    .when(send(draft_id(4)))
    .then_error(DomainError::FollowUpLimitReached { max: 2 });
}

#[test]
fn the_follow_up_cap_is_configurable_and_counts_open_drafts() {
    let policy = FollowUpPolicy {
        max_follow_ups: 1,
        ..FollowUpPolicy::default()
    };
    let with_open_draft = with(
        contacted(at("2026-11-01T10:00:00Z")),
        [
            drafted(draft_id(2), MessageKind::FollowUp, Some(1)),
            approved(draft_id(2)),
        ],
    );
    lead(with_open_draft)
        .when(LeadCommand::DraftMessage {
            draft_id: draft_id(3),
            kind: MessageKind::FollowUp,
            variant: None,
            text: "again".into(),
            review: Review::NotNeeded,
            policy,
        })
        .then_error(DomainError::FollowUpLimitReached { max: 1 });
}

#[test]
fn no_follow_up_once_the_person_replied() {
    let replied = with(
        contacted(at("2026-11-01T10:00:00Z")),
        [
            drafted(draft_id(2), MessageKind::FollowUp, Some(1)),
            approved(draft_id(2)),
            response(1, at("2026-11-02T10:00:00Z")),
        ],
    );
    lead(replied.clone())
        .when(schedule())
        .then_error(DomainError::ReplyReceived);
    lead(replied.clone())
        .when(send(draft_id(2)))
        .then_error(DomainError::ReplyReceived);
    lead(replied.clone())
        .when(draft(draft_id(3), MessageKind::FollowUp, Review::NotNeeded))
        .then_error(DomainError::ReplyReceived);
    assert_eq!(
        lead(replied)
            .state()
            .next_follow_up_at(&FollowUpPolicy::default()),
        None
    );
}

#[test]
fn do_not_contact_stops_scheduled_follow_ups_forever() {
    let sent_at = at("2026-11-01T10:00:00Z");
    let scheduled: LeadEvent = FollowUpScheduled {
        follow_up_number: 1,
        due_at: sent_at + TimeDelta::days(5),
        not_before: None,
    }
    .into();
    let before = with(
        contacted(sent_at),
        [
            scheduled,
            drafted(draft_id(2), MessageKind::FollowUp, Some(1)),
            approved(draft_id(2)),
        ],
    );
    assert!(lead(before.clone()).state().pending_follow_up().is_some());
    let stopped = with(before, [do_not_contact()]);
    let state = lead(stopped.clone()).state();
    assert_eq!(state.pending_follow_up(), None);
    assert_eq!(state.next_follow_up_at(&FollowUpPolicy::default()), None);
    let due = sent_at + TimeDelta::days(30);
    lead(stopped.clone())
        .at(due)
        .when(send(draft_id(2)))
        .then_error(DomainError::LeadIsDoNotContact);
    lead(stopped.clone())
        .at(due)
        .when(schedule())
        .then_error(DomainError::LeadIsDoNotContact);
    lead(stopped.clone())
        .at(due)
        .when(allocate())
        .then_error(DomainError::LeadIsDoNotContact);
    // Forever: not even a human can move it back into outreach.
    lead(stopped)
        .by_human("alice")
        .when(LeadCommand::ApproveMessage {
            draft_id: draft_id(2),
            edited_text: None,
        })
        .then_error(DomainError::DraftNotPending {
            draft_id: draft_id(2),
        });
}

// --- responses -------------------------------------------------------------------------------

fn record_response(provider_id: &str, text: &str) -> LeadCommand {
    LeadCommand::RecordResponse {
        provider_message_id: Some(provider_id.into()),
        text: text.into(),
    }
}

#[test]
fn a_reply_is_recorded_and_the_lead_responded() {
    lead(contacted(test_time() - TimeDelta::days(1)))
        .when(record_response("reply-1", "Sounds great, what dates?"))
        .then([response(1, test_time())]);
    let state = lead(with(contacted(test_time()), [response(1, test_time())])).state();
    assert_eq!(state.status, LeadStatus::Responded);
}

#[test]
fn the_same_reply_delivered_twice_is_recorded_once() {
    lead(with(contacted(test_time()), [response(1, test_time())]))
        .when(record_response("reply-1", "Sounds great, what dates?"))
        .then([]);
}

#[test]
fn a_lead_never_contacted_cannot_reply() {
    lead(ready(true))
        .when(record_response("reply-1", "hello"))
        .then_error(DomainError::TransitionNotAllowed {
            status: LeadStatus::Allocated,
            transition: LeadTransition::ReceiveResponse,
        });
}

#[test]
fn a_positive_reply_hands_the_lead_to_a_human() {
    let replied = with(contacted(test_time()), [response(1, test_time())]);
    lead(replied.clone())
        .when(analyse(1, Sentiment::Positive, Intent::Interested))
        .then([
            analysed(1, Sentiment::Positive, Intent::Interested),
            qualified(),
        ]);
    for intent in [Intent::InfoRequest, Intent::Referral] {
        let events = lead(replied.clone())
            .when(analyse(1, Sentiment::Neutral, intent))
            .then_ok();
        assert!(
            matches!(events.as_slice(), [_, LeadEvent::LeadQualified(q)] if q.intent == intent)
        );
    }
    let state = lead(with(
        replied,
        [
            analysed(1, Sentiment::Positive, Intent::Interested),
            qualified(),
        ],
    ))
    .state();
    assert_eq!(state.status, LeadStatus::HandedOver);
    assert_eq!(state.assigned_to.as_deref(), Some("alice"));
}

#[test]
fn a_do_not_contact_reply_marks_the_lead() {
    lead(with(contacted(test_time()), [response(1, test_time())]))
        .when(analyse(1, Sentiment::Negative, Intent::DoNotContact))
        .then([
            analysed(1, Sentiment::Negative, Intent::DoNotContact),
            DoNotContactMarked {
                source: DoNotContactSource::Reply,
                response_number: Some(1),
                pii: Pii::default(),
            }
            .into(),
        ]);
}

#[test]
fn a_not_interested_reply_closes_the_lead_lost() {
    lead(with(contacted(test_time()), [response(1, test_time())]))
        .when(analyse(1, Sentiment::Negative, Intent::NotInterested))
        .then([
            analysed(1, Sentiment::Negative, Intent::NotInterested),
            LeadClosed {
                outcome: CloseOutcome::Lost,
                reason: CloseReason::NotInterested,
                pii: Pii::default(),
            }
            .into(),
        ]);
}

#[test]
fn an_out_of_office_reply_is_analysed_and_reschedules_the_follow_up() {
    // No return date given: the default delay after the reply (7 days, past the 5-day gap).
    let back = test_time() + TimeDelta::days(7);
    lead(with(contacted(test_time()), [response(1, test_time())]))
        .when(analyse(1, Sentiment::Neutral, Intent::OutOfOffice))
        .then([
            analysed(1, Sentiment::Neutral, Intent::OutOfOffice),
            scheduled(1, back, Some(back)),
        ]);
}

#[test]
fn a_reply_is_analysed_once() {
    let analysed_once = with(
        contacted(test_time()),
        [
            response(1, test_time()),
            analysed(1, Sentiment::Neutral, Intent::OutOfOffice),
        ],
    );
    lead(analysed_once.clone())
        .when(analyse(1, Sentiment::Positive, Intent::Interested))
        .then_error(DomainError::ResponseAlreadyAnalysed { response_number: 1 });
    lead(analysed_once)
        .when(analyse(2, Sentiment::Positive, Intent::Interested))
        .then_error(DomainError::UnknownResponse { response_number: 2 });
}

#[test]
fn a_positive_reply_needs_someone_to_hand_over_to() {
    let error = lead(with(contacted(test_time()), [response(1, test_time())]))
        .when(LeadCommand::AnalyseResponse {
            response_number: 1,
            sentiment: Sentiment::Positive,
            intent: Intent::Interested,
            confidence: Confidence::parse(0.8).unwrap(),
            rationale: None,
            hand_over_to: " ".into(),
            return_date: None,
            policy: FollowUpPolicy::default(),
        })
        .then_err();
    assert!(matches!(error, DomainError::InvalidCommand(_)), "{error:?}");
}

#[test]
fn response_analysed_carries_sentiment_intent_and_confidence_at_its_top_level() {
    let body = analysed(1, Sentiment::Positive, Intent::InfoRequest).to_data();
    assert_eq!(body["sentiment"], "Positive");
    assert_eq!(body["intent"], "InfoRequest");
    assert_eq!(body["confidence"], 0.8);
}

// --- hand-over and the team's pipeline ---------------------------------------------------------

fn notify() -> LeadCommand {
    LeadCommand::NotifyHuman {
        recipient: "alice".into(),
        channel: "email".into(),
    }
}

#[test]
fn exactly_one_human_is_notified_after_qualification() {
    let notified: LeadEvent = HumanNotified {
        recipient: "alice".into(),
        channel: "email".into(),
    }
    .into();
    lead(handed_over()).when(notify()).then([notified.clone()]);
    lead(with(handed_over(), [notified]))
        .when(notify())
        .then_error(DomainError::AlreadyNotified);
    lead(contacted(test_time()))
        .when(notify())
        .then_error(DomainError::NotQualified);
}

#[test]
fn the_team_moves_a_handed_over_lead_through_its_pipeline() {
    lead(handed_over())
        .by_human("alice")
        .when(LeadCommand::MoveToStage {
            stage: PipelineStage::InDiscussion,
        })
        .then([PipelineStageChanged {
            from: LeadStatus::HandedOver,
            to: PipelineStage::InDiscussion,
        }
        .into()]);
    lead(handed_over())
        .when(LeadCommand::MoveToStage {
            stage: PipelineStage::InDiscussion,
        })
        .then_error(DomainError::HumanRequired {
            action: "moving a lead through the team's pipeline",
        });
    let proposal = with(
        handed_over(),
        [PipelineStageChanged {
            from: LeadStatus::HandedOver,
            to: PipelineStage::ProposalSent,
        }
        .into()],
    );
    assert_eq!(
        lead(proposal.clone()).state().status,
        LeadStatus::ProposalSent
    );
    lead(proposal)
        .by_human("alice")
        .when(LeadCommand::MoveToStage {
            stage: PipelineStage::InDiscussion,
        })
        .then_error(DomainError::TransitionNotAllowed {
            status: LeadStatus::ProposalSent,
            transition: LeadTransition::MoveStage(PipelineStage::InDiscussion),
        });
    lead(contacted(test_time()))
        .by_human("alice")
        .when(LeadCommand::MoveToStage {
            stage: PipelineStage::MeetingScheduled,
        })
        .then_error(DomainError::TransitionNotAllowed {
            status: LeadStatus::Sent,
            transition: LeadTransition::MoveStage(PipelineStage::MeetingScheduled),
        });
}

#[test]
fn a_human_closes_a_lead_won_after_the_hand_over_only() {
    let close = |outcome| LeadCommand::Close {
        outcome,
        reason: Some("signed the gold package".into()),
    };
    lead(handed_over())
        .by_human("alice")
        .when(close(CloseOutcome::Won))
        .then([LeadClosed {
            outcome: CloseOutcome::Won,
            reason: CloseReason::Manual,
            pii: Pii::note("signed the gold package"),
        }
        .into()]);
    lead(contacted(test_time()))
        .by_human("alice")
        .when(close(CloseOutcome::Won))
        .then_error(DomainError::TransitionNotAllowed {
            status: LeadStatus::Sent,
            transition: LeadTransition::CloseWon,
        });
    let events = lead(contacted(test_time()))
        .by_human("alice")
        .when(close(CloseOutcome::Lost))
        .then_ok();
    assert_eq!(events.len(), 1);
    lead(handed_over())
        .when(close(CloseOutcome::Won))
        .then_error(DomainError::HumanRequired {
            action: "closing a lead",
        });
    lead(with(handed_over(), [closed_lost()]))
        .by_human("alice")
        .when(close(CloseOutcome::Won))
        .then_error(DomainError::LeadIsClosed);
}

// --- human commands: do-not-contact, notes, forgetting -------------------------------------------

#[test]
fn a_human_marks_a_lead_do_not_contact_once() {
    let mark = LeadCommand::MarkDoNotContact {
        reason: Some("asked on the phone".into()),
    };
    lead(contacted(test_time()))
        .by_human("alice")
        .when(mark.clone())
        .then([DoNotContactMarked {
            source: DoNotContactSource::Manual,
            response_number: None,
            pii: Pii::note("asked on the phone"),
        }
        .into()]);
    lead(with(contacted(test_time()), [do_not_contact()]))
        .by_human("alice")
        .when(mark)
        .then([]);
}

#[test]
fn notes_are_personal_and_never_empty() {
    lead(with(contacted(test_time()), [do_not_contact()]))
        .by_human("alice")
        .when(LeadCommand::AddNote {
            text: "met at KubeCon".into(),
        })
        .then([NoteAdded {
            pii: Pii::note("met at KubeCon"),
        }
        .into()]);
    let error = lead(contacted(test_time()))
        .when(LeadCommand::AddNote { text: "".into() })
        .then_err();
    assert!(matches!(error, DomainError::InvalidCommand(_)), "{error:?}");
}

#[test]
fn a_note_longer_than_the_sheet_takes_and_an_edit_longer_than_linkedin_takes_are_refused() {
    let error = lead(contacted(test_time()))
        .by_human("alice")
        .when(LeadCommand::AddNote {
            text: "x".repeat(super::decide::MAX_NOTE_CHARS + 1),
        })
        .then_err();
    assert!(error.to_string().contains("at most 5000"), "{error}");
    lead(contacted(test_time()))
        .by_human("alice")
        .when(LeadCommand::AddNote {
            text: "x".repeat(super::decide::MAX_NOTE_CHARS),
        })
        .then_ok();
    let held = with(
        ready(true),
        [
            drafted(draft_id(1), MessageKind::Initial, None),
            review_requested(draft_id(1)),
        ],
    );
    let error = lead(held)
        .by_human("alice")
        .when(LeadCommand::ApproveMessage {
            draft_id: draft_id(1),
            edited_text: Some("x".repeat(super::decide::MAX_MESSAGE_CHARS + 1)),
        })
        .then_err();
    assert!(
        matches!(error, DomainError::InvalidCommand(_))
            && error.to_string().contains("at most 8000"),
        "{error}"
    );
}

#[test]
fn a_forgotten_person_is_blanked_and_never_contacted_again() {
    lead(contacted(test_time()))
        .when(LeadCommand::Forget)
        .then([LeadForgotten {}.into()]);
    let forgotten = with(contacted(test_time()), [LeadForgotten {}.into()]);
    let state = lead(forgotten.clone()).state();
    assert!(state.profile.is_empty());
    assert_eq!(state.status, LeadStatus::DoNotContact);
    assert!(state.drafts.values().all(|draft| draft.text.is_empty()));
    lead(forgotten.clone()).when(LeadCommand::Forget).then([]);
    lead(forgotten.clone())
        .when(LeadCommand::AddNote { text: "x".into() })
        .then_error(DomainError::LeadForgotten);
    lead(forgotten.clone())
        .when(schedule())
        .then_error(DomainError::LeadForgotten);
    lead(forgotten)
        .when(record_response("reply-9", "hello?"))
        .then_error(DomainError::LeadForgotten);
}

// --- the vocabulary ---------------------------------------------------------------------------

/// One event of every lead event type.
fn one_of_each() -> Vec<LeadEvent> {
    let mut events = handed_over();
    events.extend([
        LeadProfileUpdated::default().into(),
        ClassificationFeedback::default().into(),
        LeadReassigned {
            from: None,
            to: "bob".into(),
            pii: Pii::default(),
        }
        .into(),
        invited(test_time()),
        accepted(test_time()),
        withdrawn(test_time()),
        review_requested(draft_id(1)),
        MessageRejected {
            draft_id: draft_id(1),
            pii: Pii::default(),
        }
        .into(),
        failed(SendOutcome::Unknown),
        FollowUpScheduled {
            follow_up_number: 1,
            due_at: test_time(),
            not_before: None,
        }
        .into(),
        HumanNotified {
            recipient: "alice".into(),
            channel: "email".into(),
        }
        .into(),
        PipelineStageChanged {
            from: LeadStatus::HandedOver,
            to: PipelineStage::InDiscussion,
        }
        .into(),
        closed_lost(),
        do_not_contact(),
        NoteAdded {
            pii: Pii::note("n"),
        }
        .into(),
        LeadForgotten {}.into(),
    ]);
    events
}

#[test]
fn every_lead_event_type_round_trips_through_the_log() {
    let events = one_of_each();
    let types: BTreeSet<&str> = events.iter().map(|event| event.event_type()).collect();
    let all: BTreeSet<&str> = LeadEvent::EVENT_TYPES.iter().copied().collect();
    assert_eq!(types, all, "the sample must hold every event type");
    for event in &events {
        let back = LeadEvent::from_data(event.event_type(), event.to_data()).unwrap();
        assert_eq!(&back, event);
    }
}

#[test]
fn no_personal_field_sits_at_the_top_level_of_any_lead_event() {
    const PERSONAL: [&str; 12] = [
        "name",
        "linkedin_url",
        "headline",
        "about",
        "location",
        "recent_activity",
        "email",
        "message_text",
        "reply_text",
        "text",
        "note",
        "rationale",
    ];
    for event in one_of_each() {
        let Value::Object(body) = event.to_data() else {
            panic!("{} is not an object", event.event_type())
        };
        for field in PERSONAL {
            assert!(
                !body.contains_key(field),
                "{} has {field} at its top level",
                event.event_type()
            );
        }
        if let Some(pii) = body.get("pii") {
            assert!(
                pii.is_object(),
                "{}: pii must be an object",
                event.event_type()
            );
        }
    }
    let discovered = discovered(false).to_data();
    assert_eq!(discovered["pii"]["name"], "Maya Lindqvist");
    assert_eq!(discovered["pii"]["linkedin_url"], url().as_str());
    assert_eq!(discovered["position"], "CTO");
    assert_eq!(discovered["company"], "Fjordbyte");
    let reply = response(1, test_time()).to_data();
    assert_eq!(reply["pii"]["reply_text"], "Sounds great, what dates?");
}

#[test]
fn the_fold_of_a_whole_journey_is_deterministic() {
    let events = one_of_each();
    assert_eq!(LeadState::fold(&events), LeadState::fold(&events));
}

// --- properties: whatever the order of commands, the rules hold ----------------------------------

mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::event::DecisionContext;
    use crate::envelope::Actor;

    /// One thing that may happen to a lead, with its parameters drawn at random.
    #[derive(Clone, Debug)]
    enum Step {
        Classify(usize),
        Score(f64),
        Allocate,
        Invite(usize),
        Accept,
        Withdraw(bool),
        Draft(u128, bool, bool),
        Approve(u128, bool),
        Reject(u128),
        Send(u128, u8),
        Fail(u128, bool),
        ScheduleFollowUp,
        Respond(u8),
        Analyse(u32, usize),
        Notify,
        Move(usize),
        Close(bool),
        MarkDoNotContact,
        Note,
        Override(usize),
        Forget,
    }

    /// Steps weighted so that journeys get far (sends, follow-ups, replies, the pipeline)
    /// before a stop (do-not-contact, close, forget) ends them.
    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            1 => (0..3usize).prop_map(Step::Classify),
            1 => (1.0..=10.0f64).prop_map(Step::Score),
            2 => Just(Step::Allocate),
            4 => (0..320usize).prop_map(Step::Invite),
            3 => Just(Step::Accept),
            1 => any::<bool>().prop_map(Step::Withdraw),
            8 => (0..4u128, any::<bool>(), 0..4u8).prop_map(|(slot, follow_up, review)| Step::Draft(slot, follow_up, review == 0)),
            5 => (0..4u128, any::<bool>()).prop_map(|(slot, edited)| Step::Approve(slot, edited)),
            1 => (0..4u128).prop_map(Step::Reject),
            10 => (0..4u128, 0..3u8).prop_map(|(slot, id)| Step::Send(slot, id)),
            1 => (0..4u128, any::<bool>()).prop_map(|(slot, unknown)| Step::Fail(slot, unknown)),
            2 => Just(Step::ScheduleFollowUp),
            1 => (0..3u8).prop_map(Step::Respond),
            2 => (1..4u32, 0..6usize).prop_map(|(number, intent)| Step::Analyse(number, intent)),
            2 => Just(Step::Notify),
            2 => (0..3usize).prop_map(Step::Move),
            1 => any::<bool>().prop_map(Step::Close),
            1 => (0..2u8).prop_map(|roll| if roll == 0 { Step::MarkDoNotContact } else { Step::Note }),
            1 => Just(Step::Note),
            1 => (0..3usize).prop_map(Step::Override),
            1 => (0..20u8).prop_map(|roll| if roll == 0 { Step::Forget } else { Step::Note }),
        ]
    }

    /// Mostly minutes between two steps, sometimes days, so that delays and expiries both
    /// pass and are tried too early.
    fn pause() -> impl Strategy<Value = TimeDelta> {
        prop_oneof![
            6 => Just(TimeDelta::minutes(7)),
            2 => Just(TimeDelta::days(1)),
            1 => Just(TimeDelta::days(3)),
            1 => Just(TimeDelta::days(8)),
        ]
    }

    fn command(step: &Step) -> LeadCommand {
        let follow_ups = FollowUpPolicy::default();
        match step.clone() {
            Step::Classify(index) => LeadCommand::Classify {
                classification: Classification::ALL[index],
                confidence: Confidence::parse(0.7).unwrap(),
                rationale: None,
            },
            Step::Score(score) => LeadCommand::Score {
                score: QualityScore::parse(score).unwrap(),
                factors: BTreeMap::new(),
                rationale: None,
            },
            Step::Allocate => LeadCommand::Allocate {
                assigned_to: "outreach".into(),
                priority: Priority::Medium,
                reason: String::new(),
            },
            Step::Invite(length) => LeadCommand::RecordInvitationSent {
                account_id: account(),
                slot_id: Uuid::now_v7(),
                provider_message_id: format!("inv-{}", Uuid::now_v7()),
                note: Some("n".repeat(length)),
                policy: InvitationPolicy::default(),
            },
            Step::Accept => LeadCommand::RecordInvitationAccepted,
            Step::Withdraw(expired) => LeadCommand::WithdrawInvitation {
                reason: if expired {
                    WithdrawalReason::Expired
                } else {
                    WithdrawalReason::Manual
                },
                policy: InvitationPolicy::default(),
            },
            Step::Draft(slot, follow_up, review) => LeadCommand::DraftMessage {
                draft_id: draft_id(slot),
                kind: if follow_up {
                    MessageKind::FollowUp
                } else {
                    MessageKind::Initial
                },
                variant: None,
                text: format!("draft {slot}"),
                review: if review {
                    Review::Required {
                        reason: "check".into(),
                    }
                } else {
                    Review::NotNeeded
                },
                policy: follow_ups,
            },
            Step::Approve(slot, edited) => LeadCommand::ApproveMessage {
                draft_id: draft_id(slot),
                edited_text: edited.then(|| "edited".to_owned()),
            },
            Step::Reject(slot) => LeadCommand::RejectMessage {
                draft_id: draft_id(slot),
                reason: None,
            },
            Step::Send(slot, id) => LeadCommand::RecordMessageSent {
                draft_id: draft_id(slot),
                account_id: account(),
                slot_id: Uuid::now_v7(),
                provider_message_id: format!("msg-{slot}-{id}"),
                policy: follow_ups,
            },
            Step::Fail(slot, unknown) => LeadCommand::RecordSendFailure {
                kind: SendKind::Initial,
                account_id: account(),
                draft_id: Some(draft_id(slot)),
                slot_id: None,
                outcome: if unknown {
                    SendOutcome::Unknown
                } else {
                    SendOutcome::Failed
                },
                error: "timeout".into(),
            },
            Step::ScheduleFollowUp => LeadCommand::ScheduleFollowUp { policy: follow_ups },
            Step::Respond(id) => LeadCommand::RecordResponse {
                provider_message_id: Some(format!("reply-{id}")),
                text: "a reply".into(),
            },
            Step::Analyse(number, intent) => LeadCommand::AnalyseResponse {
                response_number: number,
                sentiment: Sentiment::Neutral,
                intent: Intent::ALL[intent],
                confidence: Confidence::parse(0.6).unwrap(),
                rationale: None,
                hand_over_to: "alice".into(),
                return_date: None,
                policy: follow_ups,
            },
            Step::Notify => LeadCommand::NotifyHuman {
                recipient: "alice".into(),
                channel: "email".into(),
            },
            Step::Move(index) => LeadCommand::MoveToStage {
                stage: PipelineStage::ALL[index],
            },
            Step::Close(won) => LeadCommand::Close {
                outcome: if won {
                    CloseOutcome::Won
                } else {
                    CloseOutcome::Lost
                },
                reason: None,
            },
            Step::MarkDoNotContact => LeadCommand::MarkDoNotContact { reason: None },
            Step::Note => LeadCommand::AddNote {
                text: "note".into(),
            },
            Step::Override(index) => LeadCommand::OverrideClassification {
                classification: Classification::ALL[index],
                reason: None,
            },
            Step::Forget => LeadCommand::Forget,
        }
    }

    /// Checks the outreach rules on a whole recorded history.
    fn check_history(
        history: &[LeadEvent],
        connected_at_discovery: bool,
    ) -> Result<(), TestCaseError> {
        let policy = FollowUpPolicy::default();
        let invitations = InvitationPolicy::default();
        let mut allocated = false;
        let mut connected = connected_at_discovery;
        let mut stopped_by: Option<&'static str> = None;
        let mut initial_messages = 0;
        let mut follow_ups = 0;
        let mut last_sent: Option<DateTime<Utc>> = None;
        let mut unanalysed = 0u32;
        let mut ended = false;
        let mut not_before: Option<(u32, DateTime<Utc>)> = None;
        let mut qualified = false;
        let mut notified = 0;
        let mut last_withdrawal: Option<DateTime<Utc>> = None;
        for event in history {
            let outreach = matches!(
                event,
                LeadEvent::MessageSent(_)
                    | LeadEvent::InvitationSent(_)
                    | LeadEvent::MessageDrafted(_)
                    | LeadEvent::MessageApproved(_)
                    | LeadEvent::FollowUpScheduled(_)
                    | LeadEvent::LeadAllocation(_)
            );
            if let Some(stop) = stopped_by {
                prop_assert!(!outreach, "{} after {stop}", event.event_type());
            }
            match event {
                LeadEvent::LeadAllocation(_) => allocated = true,
                LeadEvent::InvitationAccepted(_) => connected = true,
                LeadEvent::InvitationWithdrawn(withdrawn) => {
                    last_withdrawal = Some(withdrawn.withdrawn_at)
                }
                LeadEvent::InvitationSent(sent) => {
                    prop_assert!(allocated, "invitation to an unallocated lead");
                    prop_assert!(!connected, "invitation to a connection");
                    let note = sent.pii.message_text.as_deref().unwrap_or("");
                    prop_assert!(note.chars().count() <= invitations.max_note_chars);
                    if let Some(withdrawn_at) = last_withdrawal {
                        prop_assert!(
                            sent.sent_at >= withdrawn_at + invitations.reinvite_after,
                            "re-invited too soon"
                        );
                    }
                }
                LeadEvent::MessageSent(sent) => {
                    prop_assert!(allocated, "message to an unallocated lead");
                    prop_assert!(
                        !(ended || unanalysed > 0) || sent.kind == MessageKind::Initial,
                        "follow-up after a reply"
                    );
                    match sent.kind {
                        MessageKind::Initial => {
                            initial_messages += 1;
                            prop_assert!(connected, "first message to a stranger");
                        }
                        MessageKind::FollowUp => {
                            follow_ups += 1;
                            let last = last_sent.expect("a follow-up follows a message");
                            prop_assert!(
                                sent.sent_at >= last + policy.delay,
                                "follow-up too early"
                            );
                            if let Some((number, not_before)) = not_before {
                                prop_assert!(
                                    sent.follow_up_number != Some(number)
                                        || sent.sent_at >= not_before,
                                    "follow-up before the return date"
                                );
                            }
                        }
                    }
                    prop_assert!(initial_messages <= 1, "a second first message");
                    prop_assert!(follow_ups <= policy.max_follow_ups, "too many follow-ups");
                    last_sent = Some(sent.sent_at);
                }
                LeadEvent::FollowUpScheduled(scheduled) => {
                    // Only out-of-office replies (all analysed) leave follow-ups possible.
                    prop_assert!(
                        !(ended || unanalysed > 0),
                        "follow-up scheduled after a reply"
                    );
                    if let Some(at) = scheduled.not_before {
                        prop_assert!(scheduled.due_at >= at, "due before the return date");
                        not_before = Some((scheduled.follow_up_number, at));
                    }
                }
                LeadEvent::ResponseReceived(_) => unanalysed += 1,
                LeadEvent::ResponseAnalysed(analysed) => {
                    unanalysed = unanalysed.saturating_sub(1);
                    if analysed.intent != Intent::OutOfOffice {
                        ended = true;
                    }
                }
                LeadEvent::LeadQualified(_) => qualified = true,
                LeadEvent::HumanNotified(_) => {
                    notified += 1;
                    prop_assert!(qualified && notified == 1, "notified twice or unqualified");
                }
                LeadEvent::LeadClosed(closed) => {
                    prop_assert!(
                        closed.outcome == CloseOutcome::Lost || qualified,
                        "won without a hand-over"
                    );
                    stopped_by = Some("lead_closed");
                }
                LeadEvent::DoNotContact(_) => stopped_by = Some("do_not_contact"),
                LeadEvent::LeadForgotten(_) => stopped_by = Some("lead_forgotten"),
                _ => {}
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn no_order_of_commands_breaks_the_outreach_rules(
            connected in any::<bool>(),
            allocated_already in 0..4u8,
            steps in prop::collection::vec((pause(), step(), any::<bool>()), 1..120),
        ) {
            let mut now = at("2026-11-02T09:00:00Z");
            // Most journeys start allocated; the others must get there by the rules.
            let mut history = vec![discovered(connected), classified(Classification::Speaker), scored(7.0)];
            if allocated_already > 0 {
                history.push(allocated());
            }
            let mut state = LeadState::fold(&history);
            for (pause, step, human) in &steps {
                now += *pause;
                let actor = if *human { Actor::human("alice") } else { Actor::agent("outreach") };
                let context = DecisionContext::new(now, actor);
                if let Ok(events) = state.decide(&command(step), &context) {
                    for event in events {
                        let back = LeadEvent::from_data(event.event_type(), event.to_data());
                        prop_assert_eq!(back.as_ref(), Ok(&event));
                        state = state.evolve(&event);
                        history.push(event);
                    }
                }
            }
            check_history(&history, connected)?;
            // Deciding and evolving step by step is the same as folding the history.
            prop_assert_eq!(&LeadState::fold(&history), &state);
        }
    }
}

// --- out-of-office replies ---------------------------------------------------------------

fn out_of_office(number: u32, return_date: Option<chrono::NaiveDate>) -> LeadCommand {
    LeadCommand::AnalyseResponse {
        response_number: number,
        sentiment: Sentiment::Neutral,
        intent: Intent::OutOfOffice,
        confidence: Confidence::parse(0.8).unwrap(),
        rationale: None,
        hand_over_to: "alice".into(),
        return_date,
        policy: FollowUpPolicy::default(),
    }
}

fn scheduled(number: u32, due_at: DateTime<Utc>, not_before: Option<DateTime<Utc>>) -> LeadEvent {
    FollowUpScheduled {
        follow_up_number: number,
        due_at,
        not_before,
    }
    .into()
}

fn day(text: &str) -> chrono::NaiveDate {
    text.parse().unwrap()
}

/// First message on 20 Nov, follow-up 1 scheduled for the 25th, an out-of-office reply on
/// the 21st.
fn replied_out_of_office() -> Vec<LeadEvent> {
    let sent_at = at("2026-11-20T10:00:00Z");
    with(
        contacted(sent_at),
        [
            scheduled(1, sent_at + TimeDelta::days(5), None),
            response(1, at("2026-11-21T08:00:00Z")),
        ],
    )
}

#[test]
fn an_out_of_office_reply_with_a_return_date_reschedules_the_follow_up_after_it() {
    let back = at("2026-12-15T00:00:00Z");
    let events = lead(replied_out_of_office())
        .when(out_of_office(1, Some(day("2026-12-15"))))
        .then_ok();
    assert_eq!(
        events,
        vec![
            analysed(1, Sentiment::Neutral, Intent::OutOfOffice),
            scheduled(1, back, Some(back)),
        ]
    );
    // The lead is back in Sent, waiting for its follow-up.
    let state = lead(with(replied_out_of_office(), events.clone())).state();
    assert_eq!(state.status, LeadStatus::Sent);
    assert!(!state.reply_blocks_follow_ups());
    assert_eq!(
        state.next_follow_up_at(&FollowUpPolicy::default()),
        Some(back)
    );
    // The drafted follow-up is refused before the return date and sent on it.
    let ready = with(
        with(replied_out_of_office(), events),
        [
            drafted(draft_id(2), MessageKind::FollowUp, Some(1)),
            approved(draft_id(2)),
        ],
    );
    lead(ready.clone())
        .at(back - TimeDelta::seconds(1))
        .when(send(draft_id(2)))
        .then_error(DomainError::FollowUpTooEarly { not_before: back });
    lead(ready).at(back).when(send(draft_id(2))).then([sent(
        draft_id(2),
        MessageKind::FollowUp,
        back,
        Some(1),
    )]);
}

#[test]
fn an_out_of_office_reply_without_a_date_waits_the_default_delay() {
    let not_before = at("2026-11-21T08:00:00Z") + TimeDelta::days(7);
    let events = lead(replied_out_of_office())
        .when(out_of_office(1, None))
        .then_ok();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1], scheduled(1, not_before, Some(not_before)));
    assert_eq!(
        lead(with(replied_out_of_office(), events)).state().status,
        LeadStatus::Sent
    );
}

#[test]
fn a_return_date_before_the_follow_up_keeps_its_due_time() {
    // Back on the 23rd: the follow-up stays due on the 25th, but not before the 23rd.
    let events = lead(replied_out_of_office())
        .when(out_of_office(1, Some(day("2026-11-23"))))
        .then_ok();
    assert_eq!(
        events[1],
        scheduled(
            1,
            at("2026-11-25T10:00:00Z"),
            Some(at("2026-11-23T00:00:00Z"))
        )
    );
}

#[test]
fn a_later_real_reply_cancels_the_rescheduled_follow_up() {
    let back = at("2026-12-15T00:00:00Z");
    let resumed = with(
        replied_out_of_office(),
        [
            analysed(1, Sentiment::Neutral, Intent::OutOfOffice),
            scheduled(1, back, Some(back)),
            drafted(draft_id(2), MessageKind::FollowUp, Some(1)),
            approved(draft_id(2)),
            response(2, at("2026-12-01T09:00:00Z")),
        ],
    );
    assert_eq!(lead(resumed.clone()).state().status, LeadStatus::Responded);
    // Not analysed yet: already nothing goes out.
    lead(resumed.clone())
        .at(back)
        .when(send(draft_id(2)))
        .then_error(DomainError::ReplyReceived);
    let answered = with(
        resumed,
        [analysed(2, Sentiment::Neutral, Intent::InfoRequest)],
    );
    let state = lead(answered.clone()).state();
    assert!(state.reply_ended_sequence());
    assert_eq!(state.pending_follow_up(), None);
    assert_eq!(state.next_follow_up_at(&FollowUpPolicy::default()), None);
    lead(answered.clone())
        .at(back)
        .when(send(draft_id(2)))
        .then_error(DomainError::ReplyReceived);
    lead(answered)
        .when(schedule())
        .then_error(DomainError::ReplyReceived);
}

#[test]
fn an_out_of_office_reply_does_not_resume_after_a_real_reply() {
    // A real reply came first (not analysed yet): the out-of-office one resumes nothing.
    let history = with(
        replied_out_of_office(),
        [response(2, at("2026-11-21T09:00:00Z"))],
    );
    let events = lead(history.clone())
        .when(out_of_office(1, Some(day("2026-12-15"))))
        .then_ok();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        lead(with(history, events)).state().status,
        LeadStatus::Responded
    );
    // Nor after one analysed as interested (the lead went to the team).
    let handed = with(
        with(
            contacted(at("2026-11-20T10:00:00Z")),
            [response(1, at("2026-11-21T08:00:00Z"))],
        ),
        [
            analysed(1, Sentiment::Positive, Intent::Interested),
            qualified(),
            response(2, at("2026-11-22T08:00:00Z")),
        ],
    );
    let events = lead(handed.clone()).when(out_of_office(2, None)).then_ok();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        lead(with(handed, events)).state().status,
        LeadStatus::HandedOver
    );
}

#[test]
fn a_second_out_of_office_reply_reschedules_again() {
    let first_back = at("2026-12-01T00:00:00Z");
    let history = with(
        replied_out_of_office(),
        [
            analysed(1, Sentiment::Neutral, Intent::OutOfOffice),
            scheduled(1, first_back, Some(first_back)),
            response(2, at("2026-11-30T08:00:00Z")),
        ],
    );
    let events = lead(history.clone())
        .when(out_of_office(2, Some(day("2026-12-20"))))
        .then_ok();
    let back = at("2026-12-20T00:00:00Z");
    assert_eq!(events[1], scheduled(1, back, Some(back)));
    assert_eq!(lead(with(history, events)).state().status, LeadStatus::Sent);
}

#[test]
fn do_not_contact_and_not_interested_still_stop_after_an_out_of_office_reply() {
    let back = at("2026-12-15T00:00:00Z");
    let resumed = with(
        replied_out_of_office(),
        [
            analysed(1, Sentiment::Neutral, Intent::OutOfOffice),
            scheduled(1, back, Some(back)),
            response(2, at("2026-12-16T09:00:00Z")),
        ],
    );
    let events = lead(resumed.clone())
        .when(analyse(2, Sentiment::Negative, Intent::DoNotContact))
        .then_ok();
    assert!(
        events
            .iter()
            .any(|event| matches!(event, LeadEvent::DoNotContact(_)))
    );
    let state = lead(with(resumed.clone(), events)).state();
    assert_eq!(state.status, LeadStatus::DoNotContact);
    assert_eq!(state.pending_follow_up(), None);
    let events = lead(resumed.clone())
        .when(analyse(2, Sentiment::Negative, Intent::NotInterested))
        .then_ok();
    assert_eq!(
        lead(with(resumed, events)).state().status,
        LeadStatus::ClosedLost
    );
}

#[test]
fn an_out_of_office_reply_with_no_follow_up_left_changes_nothing_more() {
    let first = at("2026-11-01T10:00:00Z");
    let history = with(
        contacted(first),
        [
            drafted(draft_id(2), MessageKind::FollowUp, Some(1)),
            approved(draft_id(2)),
            sent(
                draft_id(2),
                MessageKind::FollowUp,
                at("2026-11-06T10:00:00Z"),
                Some(1),
            ),
            drafted(draft_id(3), MessageKind::FollowUp, Some(2)),
            approved(draft_id(3)),
            sent(
                draft_id(3),
                MessageKind::FollowUp,
                at("2026-11-11T10:00:00Z"),
                Some(2),
            ),
            response(1, at("2026-11-12T10:00:00Z")),
        ],
    );
    let events = lead(history.clone()).when(out_of_office(1, None)).then_ok();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        lead(with(history, events)).state().status,
        LeadStatus::Responded
    );
}

#[test]
fn an_out_of_office_reply_before_the_first_message_resumes_nothing() {
    let history = with(
        ready(false),
        [
            invited(at("2026-11-20T10:00:00Z")),
            response(1, at("2026-11-21T08:00:00Z")),
        ],
    );
    let events = lead(history.clone()).when(out_of_office(1, None)).then_ok();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        lead(with(history, events)).state().status,
        LeadStatus::Responded
    );
}

#[test]
fn follow_up_scheduled_reads_old_bodies_and_omits_an_empty_not_before() {
    let plain = scheduled(1, at("2026-11-25T10:00:00Z"), None);
    let body = plain.to_data();
    assert!(body.get("not_before").is_none(), "{body}");
    let old: Value = serde_json::json!({
        "follow_up_number": 1,
        "due_at": "2026-11-25T10:00:00.000000Z",
    });
    let read: FollowUpScheduled = serde_json::from_value(old).unwrap();
    assert_eq!(read.not_before, None);
    let back = at("2026-12-15T00:00:00Z");
    let rescheduled = scheduled(1, back, Some(back));
    let body = rescheduled.to_data();
    assert_eq!(body["not_before"], "2026-12-15T00:00:00.000000Z");
    let read: FollowUpScheduled = serde_json::from_value(body).unwrap();
    assert_eq!(read.not_before, Some(back));
    assert_eq!(
        rescheduled.transition(),
        Some(LeadTransition::ResumeSequence)
    );
    assert_eq!(plain.transition(), Some(LeadTransition::ScheduleFollowUp));
}
