//! One lead's row: the seed's 15 columns (DESIGN.md, "Lead table / Sheet columns") and the few
//! hidden fields needed to evolve it, folded from the lead's own events.
//!
//! The row evolves from the previous row and one event, without the whole [`LeadState`]: a
//! projection can load a batch's rows from its table, apply the batch, and write them back, so
//! a rebuild keeps only one batch of rows in memory. The status moves by the domain's one
//! transition table ([`status::apply`]), so the table never disagrees with the aggregate.
//!
//! [`LeadState`]: salesdept_events::domain::LeadState

use chrono::{DateTime, SecondsFormat, Utc};
use salesdept_events::domain::lead::{LeadEvent, MessageKind, SendOutcome};
use salesdept_events::domain::status::{self, LeadStatus};
use salesdept_events::domain::{DomainEvent, lead_stream};
use salesdept_events::{RecordedEvent, StoreError};
use uuid::Uuid;

/// The Sheet's header row and the CSV's: the seed's 15 columns, in order.
pub const HEADERS: [&str; 15] = [
    "Lead ID",
    "Name",
    "Position",
    "Company",
    "LinkedIn URL",
    "Classification",
    "Quality Score",
    "Contact Status",
    "Last Contacted",
    "Message Sent",
    "Response",
    "Response Sentiment",
    "Response Intent",
    "Assigned To",
    "Notes",
];

/// The SQL column names of the 15 columns, in the same order.
pub const COLUMNS: [&str; 15] = [
    "lead_id",
    "name",
    "position",
    "company",
    "linkedin_url",
    "classification",
    "quality_score",
    "contact_status",
    "last_contacted",
    "message_sent",
    "response",
    "response_sentiment",
    "response_intent",
    "assigned_to",
    "notes",
];

/// Separates the lines of the Notes column (one note or system remark per line).
pub const NOTES_SEPARATOR: &str = "\n";

/// One lead as the team sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeadRow {
    pub lead_id: Uuid,
    pub name: String,
    pub position: String,
    pub company: String,
    pub linkedin_url: String,
    /// `Speaker`, `Sponsor`, `Other`, or empty before classification.
    pub classification: String,
    pub quality_score: Option<f64>,
    pub contact_status: LeadStatus,
    /// The last invitation or message sent to the person.
    pub last_contacted: Option<DateTime<Utc>>,
    /// The text of the last message (or invitation note) sent.
    pub message_sent: String,
    /// The text of the person's last reply.
    pub response: String,
    pub response_sentiment: String,
    pub response_intent: String,
    pub assigned_to: String,
    /// Notes and system remarks, one per line ([`NOTES_SEPARATOR`]).
    pub notes: String,
    // Hidden fields: what the row needs to evolve, and what readers use to find changes.
    /// The status a lead In Review returns to.
    pub status_before_review: Option<LeadStatus>,
    /// The stream version of the last event applied (0: none yet).
    pub version: i64,
    /// The domain time of the last event applied.
    pub updated_at: Option<DateTime<Utc>>,
    /// The lead was forgotten: personal columns stay blank for good.
    pub forgotten: bool,
}

impl LeadRow {
    /// An empty row for `lead_id`, before its first event.
    pub fn new(lead_id: Uuid) -> Self {
        Self {
            lead_id,
            ..Self::default()
        }
    }

    /// The row of a lead folded from its whole stream.
    pub fn from_events<'a>(
        lead_id: Uuid,
        events: impl IntoIterator<Item = &'a RecordedEvent>,
    ) -> Result<Self, StoreError> {
        let mut row = Self::new(lead_id);
        for event in events {
            row.apply_recorded(event)?;
        }
        Ok(row)
    }

    /// The stream id of this row's lead.
    pub fn stream_id(&self) -> String {
        lead_stream(self.lead_id)
    }

    /// Applies a recorded event of this lead's stream. Events at or below the row's version
    /// were applied already (a redelivery) and change nothing; returns whether the row changed.
    pub fn apply_recorded(&mut self, event: &RecordedEvent) -> Result<bool, StoreError> {
        if event.stream_version <= self.version {
            return Ok(false);
        }
        let lead_event = LeadEvent::from_recorded(event)?;
        self.apply(&lead_event, event.metadata.occurred_at);
        self.version = event.stream_version;
        Ok(true)
    }

    /// Applies one lead event that happened at `occurred_at`. Facts only: no rules here.
    pub fn apply(&mut self, event: &LeadEvent, occurred_at: DateTime<Utc>) {
        self.updated_at = Some(occurred_at);
        match event {
            LeadEvent::LeadDiscovered(discovered) => {
                self.lead_id = discovered.lead_id;
                self.position.clone_from(&discovered.position);
                self.company.clone_from(&discovered.company);
                if !self.forgotten {
                    self.name = discovered.pii.name.clone().unwrap_or_default();
                    self.linkedin_url = discovered
                        .pii
                        .linkedin_url
                        .as_ref()
                        .map(|url| url.as_str().to_owned())
                        .unwrap_or_default();
                }
            }
            LeadEvent::LeadProfileUpdated(update) => {
                if let Some(position) = &update.position {
                    self.position.clone_from(position);
                }
                if let Some(company) = &update.company {
                    self.company.clone_from(company);
                }
                if !self.forgotten {
                    if let Some(name) = &update.pii.name {
                        self.name.clone_from(name);
                    }
                    if let Some(url) = &update.pii.linkedin_url {
                        self.linkedin_url = url.as_str().to_owned();
                    }
                }
            }
            LeadEvent::LeadClassified(classified) => {
                self.classification = classified.classification.as_str().to_owned();
            }
            LeadEvent::QualityScoreCalculated(scored) => {
                self.quality_score = Some(scored.score.value());
            }
            LeadEvent::ClassificationFeedback(_) => {}
            LeadEvent::LeadAllocation(allocation) => {
                self.assigned_to.clone_from(&allocation.assigned_to);
            }
            LeadEvent::LeadReassigned(reassigned) => self.assigned_to.clone_from(&reassigned.to),
            LeadEvent::InvitationSent(sent) => {
                self.last_contacted = Some(sent.sent_at);
                if let Some(note) = &sent.pii.message_text {
                    self.set_personal_message(note);
                }
            }
            LeadEvent::InvitationAccepted(_)
            | LeadEvent::InvitationWithdrawn(_)
            | LeadEvent::MessageDrafted(_)
            | LeadEvent::ReviewRequested(_)
            | LeadEvent::MessageApproved(_)
            | LeadEvent::MessageRejected(_)
            | LeadEvent::HumanNotified(_)
            | LeadEvent::PipelineStageChanged(_)
            | LeadEvent::LeadClosed(_)
            | LeadEvent::DoNotContact(_) => {}
            LeadEvent::MessageSent(sent) => {
                self.last_contacted = Some(sent.sent_at);
                if let Some(text) = &sent.pii.message_text {
                    self.set_personal_message(text);
                }
                if sent.kind == MessageKind::FollowUp {
                    let number = sent.follow_up_number.unwrap_or(1);
                    self.add_note_line(&format!("Follow-up {number} sent"));
                }
            }
            LeadEvent::MessageSendFailed(failed) => {
                let line = match failed.outcome {
                    SendOutcome::Failed => format!("Send failed: {}", failed.error),
                    SendOutcome::Unknown => {
                        "Send outcome unknown: a person must check before anything is resent"
                            .to_owned()
                    }
                };
                self.add_note_line(&line);
            }
            LeadEvent::FollowUpScheduled(scheduled) => {
                let after_absence = if scheduled.not_before.is_some() {
                    " (rescheduled after an out-of-office reply)"
                } else {
                    ""
                };
                self.add_note_line(&format!(
                    "Follow-up {} due {}{after_absence}",
                    scheduled.follow_up_number,
                    scheduled.due_at.format("%Y-%m-%d %H:%M UTC")
                ));
            }
            LeadEvent::ResponseReceived(received) => {
                if !self.forgotten {
                    self.response = received.pii.reply_text.clone().unwrap_or_default();
                }
                self.response_sentiment.clear();
                self.response_intent.clear();
            }
            LeadEvent::ResponseAnalysed(analysed) => {
                self.response_sentiment = analysed.sentiment.as_str().to_owned();
                self.response_intent = analysed.intent.as_str().to_owned();
            }
            LeadEvent::LeadQualified(qualified) => {
                self.assigned_to.clone_from(&qualified.assigned_to);
            }
            LeadEvent::NoteAdded(added) => {
                if let Some(note) = &added.pii.note
                    && !self.forgotten
                {
                    self.add_note_line(note);
                }
            }
            LeadEvent::LeadForgotten(_) => {
                self.forgotten = true;
                self.name.clear();
                self.linkedin_url.clear();
                self.message_sent.clear();
                self.response.clear();
                self.notes.clear();
            }
        }
        if let Some(transition) = event.transition() {
            let next = status::apply(self.contact_status, self.status_before_review, transition);
            if next == LeadStatus::InReview && self.contact_status != LeadStatus::InReview {
                self.status_before_review = Some(self.contact_status);
            }
            if next != LeadStatus::InReview {
                self.status_before_review = None;
            }
            self.contact_status = next;
        }
    }

    /// The 15 columns as the Sheet and the CSV show them, in [`HEADERS`] order.
    pub fn cells(&self) -> [String; 15] {
        [
            self.lead_id.to_string(),
            self.name.clone(),
            self.position.clone(),
            self.company.clone(),
            self.linkedin_url.clone(),
            self.classification.clone(),
            self.quality_score
                .map(|score| format!("{score:.1}"))
                .unwrap_or_default(),
            self.contact_status.label().to_owned(),
            self.last_contacted
                .map(|time| time.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_default(),
            self.message_sent.clone(),
            self.response.clone(),
            self.response_sentiment.clone(),
            self.response_intent.clone(),
            self.assigned_to.clone(),
            self.notes.clone(),
        ]
    }

    /// The lines of the Notes column.
    pub fn note_lines(&self) -> impl Iterator<Item = &str> {
        self.notes
            .split(NOTES_SEPARATOR)
            .filter(|line| !line.is_empty())
    }

    fn set_personal_message(&mut self, text: &str) {
        if !self.forgotten {
            text.clone_into(&mut self.message_sent);
        }
    }

    fn add_note_line(&mut self, line: &str) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        if !self.notes.is_empty() {
            self.notes.push_str(NOTES_SEPARATOR);
        }
        self.notes.push_str(line);
    }
}

#[cfg(test)]
mod tests {
    use salesdept_events::domain::lead::{
        FollowUpScheduled, LeadAllocation, LeadDiscovered, LeadForgotten, LeadSource,
        MessageDrafted, MessageSent, NoteAdded, Priority, ResponseAnalysed, ResponseReceived,
        ReviewRequested,
    };
    use salesdept_events::domain::{
        AccountId, Classification, Confidence, Intent, LinkedInUrl, Pii, QualityScore, Sentiment,
    };

    use super::*;

    fn at(hour: u32) -> DateTime<Utc> {
        format!("2026-12-01T{hour:02}:00:00Z").parse().unwrap()
    }

    fn discovered(lead_id: Uuid) -> LeadEvent {
        let url = LinkedInUrl::parse("https://www.linkedin.com/in/maya-lindqvist").unwrap();
        LeadEvent::LeadDiscovered(LeadDiscovered {
            lead_id,
            position: "CTO".into(),
            company: "Fjordbyte".into(),
            company_size: None,
            industry: None,
            is_connection: true,
            source: LeadSource::Search,
            search_id: None,
            import_format: None,
            url_hash: url.hash(),
            pii: Pii {
                name: Some("Maya Lindqvist".into()),
                linkedin_url: Some(url),
                ..Pii::default()
            },
        })
    }

    fn journey(lead_id: Uuid) -> Vec<LeadEvent> {
        let draft_id = Uuid::now_v7();
        vec![
            discovered(lead_id),
            LeadEvent::LeadClassified(salesdept_events::domain::lead::LeadClassified {
                classification: Classification::Speaker,
                confidence: Confidence::parse(0.9).unwrap(),
                manual: false,
                pii: Pii::default(),
            }),
            LeadEvent::QualityScoreCalculated(
                salesdept_events::domain::lead::QualityScoreCalculated {
                    score: QualityScore::parse(8.25).unwrap(),
                    factors: Default::default(),
                    manual: false,
                    pii: Pii::default(),
                },
            ),
            LeadEvent::LeadAllocation(LeadAllocation {
                assigned_to: "outreach".into(),
                priority: Priority::High,
                reason: "high quality speaker".into(),
            }),
            LeadEvent::MessageDrafted(MessageDrafted {
                draft_id,
                kind: MessageKind::Initial,
                follow_up_number: None,
                variant: None,
                pii: Pii::message("Hi Maya"),
            }),
            LeadEvent::ReviewRequested(ReviewRequested {
                draft_id,
                pii: Pii::note("low confidence"),
            }),
        ]
    }

    fn fold(lead_id: Uuid, events: &[LeadEvent]) -> LeadRow {
        let mut row = LeadRow::new(lead_id);
        for (hour, event) in events.iter().enumerate() {
            row.apply(event, at(9 + hour as u32));
        }
        row
    }

    #[test]
    fn a_lead_in_review_shows_its_columns() {
        let lead_id = Uuid::now_v7();
        let row = fold(lead_id, &journey(lead_id));
        assert_eq!(row.contact_status, LeadStatus::InReview);
        assert_eq!(row.status_before_review, Some(LeadStatus::Allocated));
        let cells = row.cells();
        assert_eq!(cells[0], lead_id.to_string());
        assert_eq!(cells[1], "Maya Lindqvist");
        assert_eq!(cells[4], "https://www.linkedin.com/in/maya-lindqvist");
        assert_eq!(cells[5], "Speaker");
        assert_eq!(cells[6], "8.2");
        assert_eq!(cells[7], "In Review");
        assert_eq!(cells[13], "outreach");
        assert_eq!(cells[9], "", "a draft is not a message sent");
    }

    #[test]
    fn a_sent_message_and_an_analysed_reply_fill_their_columns() {
        let lead_id = Uuid::now_v7();
        let mut events = journey(lead_id);
        events.pop(); // no review
        let LeadEvent::MessageDrafted(draft) = events.last().unwrap().clone() else {
            unreachable!()
        };
        events.extend([
            LeadEvent::MessageSent(MessageSent {
                account_id: AccountId::parse("primary").unwrap(),
                kind: MessageKind::Initial,
                provider_message_id: "m-1".into(),
                draft_id: draft.draft_id,
                slot_id: Uuid::now_v7(),
                follow_up_number: None,
                variant: None,
                sent_at: at(15),
                pii: Pii::message("Hi Maya"),
            }),
            LeadEvent::ResponseReceived(ResponseReceived {
                response_number: 1,
                provider_message_id: None,
                received_at: at(16),
                pii: Pii::reply("Sounds great"),
            }),
            LeadEvent::ResponseAnalysed(ResponseAnalysed {
                response_number: 1,
                sentiment: Sentiment::Positive,
                intent: Intent::Interested,
                confidence: Confidence::parse(0.8).unwrap(),
                pii: Pii::default(),
            }),
            LeadEvent::NoteAdded(NoteAdded {
                pii: Pii::note("call her on Monday"),
            }),
        ]);
        let row = fold(lead_id, &events);
        assert_eq!(row.contact_status, LeadStatus::Responded);
        assert_eq!(row.last_contacted, Some(at(15)));
        assert_eq!(row.message_sent, "Hi Maya");
        assert_eq!(row.response, "Sounds great");
        assert_eq!(row.response_sentiment, "Positive");
        assert_eq!(row.response_intent, "Interested");
        assert_eq!(row.note_lines().collect::<Vec<_>>(), ["call her on Monday"]);
    }

    #[test]
    fn an_out_of_office_reply_puts_the_row_back_to_sent() {
        let lead_id = Uuid::now_v7();
        let mut events = journey(lead_id);
        events.pop(); // no review
        let LeadEvent::MessageDrafted(draft) = events.last().unwrap().clone() else {
            unreachable!()
        };
        events.extend([
            LeadEvent::MessageSent(MessageSent {
                account_id: AccountId::parse("primary").unwrap(),
                kind: MessageKind::Initial,
                provider_message_id: "m-1".into(),
                draft_id: draft.draft_id,
                slot_id: Uuid::now_v7(),
                follow_up_number: None,
                variant: None,
                sent_at: at(15),
                pii: Pii::message("Hi Maya"),
            }),
            LeadEvent::ResponseReceived(ResponseReceived {
                response_number: 1,
                provider_message_id: None,
                received_at: at(16),
                pii: Pii::reply("Out of the office until Monday"),
            }),
        ]);
        assert_eq!(fold(lead_id, &events).contact_status, LeadStatus::Responded);
        events.extend([
            LeadEvent::ResponseAnalysed(ResponseAnalysed {
                response_number: 1,
                sentiment: Sentiment::Neutral,
                intent: Intent::OutOfOffice,
                confidence: Confidence::parse(0.9).unwrap(),
                pii: Pii::default(),
            }),
            LeadEvent::FollowUpScheduled(FollowUpScheduled {
                follow_up_number: 1,
                due_at: at(20),
                not_before: Some(at(20)),
            }),
        ]);
        let row = fold(lead_id, &events);
        assert_eq!(row.contact_status, LeadStatus::Sent);
        assert_eq!(row.response_intent, "OutOfOffice");
        let notes: Vec<&str> = row.note_lines().collect();
        assert!(
            notes
                .iter()
                .any(|line| line.ends_with("(rescheduled after an out-of-office reply)")),
            "{notes:?}"
        );
    }

    #[test]
    fn forgetting_blanks_every_personal_column_for_good() {
        let lead_id = Uuid::now_v7();
        let mut events = journey(lead_id);
        events.push(LeadEvent::NoteAdded(NoteAdded {
            pii: Pii::note("met at QCon"),
        }));
        events.push(LeadEvent::LeadForgotten(LeadForgotten {}));
        events.push(LeadEvent::NoteAdded(NoteAdded {
            pii: Pii::note("should not show"),
        }));
        let row = fold(lead_id, &events);
        assert!(row.forgotten);
        assert_eq!(row.name, "");
        assert_eq!(row.linkedin_url, "");
        assert_eq!(row.notes, "");
        assert_eq!(row.position, "CTO", "non-personal columns stay");
    }
}
