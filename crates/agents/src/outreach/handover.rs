//! Handing a positive reply to a human: one mail per `lead_qualified`, then `human_notified`.
//!
//! The mail's Message-ID is derived from the `lead_qualified` event's id, and the
//! `human_notified` event's id from the same event, so a crash anywhere in between repeats
//! nothing visible: the outbox writes a Message-ID once, an SMTP relay's recipients see the
//! same Message-ID (and deduplicate on it), and the second `human_notified` append is a no-op.
//! [`HandOverHandler`] runs it as a durable subscription: a failed mail is retried with the
//! subscription's backoff, then parked as a dead letter for an operator.

use std::sync::Arc;

use async_trait::async_trait;
use salesdept_events::domain::lead::{LeadCommand, LeadEvent, LeadState};
use salesdept_events::domain::streams::lead_id_of;
use salesdept_events::domain::{
    Classification, CommandError, CommandHandler, CommandMetadata, DomainError, DomainEvent,
    Intent, Sentiment, lead_stream,
};
use salesdept_events::{
    Actor, EventStore, Handler, HandlerContext, HandlerError, RecordedEvent, StoreError,
};
use uuid::Uuid;

use super::send::OUTREACH;
use crate::mail::{
    ConversationTurn, LeadSummary, MailError, MailHeaders, MailPort, Mailbox, MessageId, Party,
    positive_reply_mail,
};

/// Who the hand-over mails come from and go to.
#[derive(Clone, Debug)]
pub struct HandOverConfig {
    pub from: Mailbox,
    pub team: Vec<Mailbox>,
    /// The right-hand side of every Message-ID, e.g. `salesdept.example`.
    pub message_id_domain: String,
}

/// What one hand-over did.
#[derive(Clone, Debug, PartialEq)]
pub enum HandOverResult {
    /// The mail went out and `human_notified` is recorded.
    Notified { message_id: String },
    /// A human was notified before (a redelivered event): nothing was sent.
    AlreadyNotified,
    /// The lead can no longer be handed over (forgotten, or not qualified any more).
    Skipped(String),
}

#[derive(Debug, thiserror::Error)]
pub enum HandOverError {
    #[error("the hand-over mail failed: {0}")]
    Mail(#[from] MailError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("recording human_notified failed: {0}")]
    Command(#[from] CommandError),
    #[error("the team has no mail address to hand over to")]
    NoRecipients,
}

/// Sends the hand-over mail for one qualified lead.
pub struct HandOver<S: EventStore + ?Sized> {
    handler: CommandHandler<S>,
    mail: Arc<dyn MailPort>,
    config: HandOverConfig,
}

impl<S: EventStore + ?Sized> HandOver<S> {
    pub fn new(store: Arc<S>, mail: Arc<dyn MailPort>, config: HandOverConfig) -> Self {
        Self {
            handler: CommandHandler::new(store),
            mail,
            config,
        }
    }

    /// The store the hand-over reads and records in.
    pub fn store(&self) -> &S {
        self.handler.store()
    }

    /// Hands lead `lead_id` over because of `qualified` (its `lead_qualified` event).
    #[tracing::instrument(skip_all, fields(lead_id = %lead_id), err)]
    pub async fn hand_over(
        &self,
        lead_id: Uuid,
        qualified: &RecordedEvent,
    ) -> Result<HandOverResult, HandOverError> {
        if self.config.team.is_empty() {
            return Err(HandOverError::NoRecipients);
        }
        let stream = lead_stream(lead_id);
        let events = self.handler.store().read_stream(&stream, 1, None).await?;
        let decoded = events
            .iter()
            .map(|event| LeadEvent::from_recorded(event).map(|typed| (event, typed)))
            .collect::<Result<Vec<_>, _>>()?;
        let state = decoded
            .iter()
            .fold(LeadState::default(), |state, (_, event)| {
                salesdept_events::domain::Aggregate::evolve(state, event)
            });
        if state.human_notified {
            return Ok(HandOverResult::AlreadyNotified);
        }
        if state.forgotten {
            return Ok(HandOverResult::Skipped("the lead was forgotten".into()));
        }
        if !state.qualified {
            return Ok(HandOverResult::Skipped("the lead is not qualified".into()));
        }
        let Some(summary) = summary_of(lead_id, &state) else {
            return Ok(HandOverResult::Skipped(
                "the lead has no profile URL or analysed reply".into(),
            ));
        };
        let conversation = conversation_of(&decoded);
        let message_id = MessageId::for_event(qualified.event_id, &self.config.message_id_domain)?;
        let mail = positive_reply_mail(
            MailHeaders {
                message_id: message_id.clone(),
                from: self.config.from.clone(),
                to: self.config.team.clone(),
            },
            &summary,
            &conversation,
            &suggested_next_step(summary.reply_intent, summary.classification),
        );
        self.mail.send(&mail).await?;

        let recipients = self
            .config
            .team
            .iter()
            .map(|mailbox| mailbox.email.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let metadata = CommandMetadata::caused_by(
            qualified,
            Actor::agent(OUTREACH),
            qualified.metadata.occurred_at,
        )
        .with_step(qualified.event_id, "human_notified");
        let command = LeadCommand::NotifyHuman {
            recipient: recipients,
            channel: "email".into(),
        };
        match self
            .handler
            .execute::<LeadState>(&stream, &command, &metadata)
            .await
        {
            Ok(_) | Err(CommandError::Rejected(DomainError::AlreadyNotified)) => {
                Ok(HandOverResult::Notified {
                    message_id: message_id.as_str().to_owned(),
                })
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// Runs [`HandOver`] for every `lead_qualified` in the log.
pub struct HandOverHandler<S: EventStore + ?Sized> {
    hand_over: HandOver<S>,
}

impl<S: EventStore + ?Sized> HandOverHandler<S> {
    pub fn new(hand_over: HandOver<S>) -> Self {
        Self { hand_over }
    }
}

#[async_trait]
impl<S: EventStore + ?Sized + 'static> Handler for HandOverHandler<S> {
    async fn handle(
        &self,
        event: &RecordedEvent,
        _context: &mut HandlerContext,
    ) -> Result<(), HandlerError> {
        if event.event_type != "lead_qualified" {
            return Ok(());
        }
        let Some(lead_id) = lead_id_of(&event.stream_id) else {
            return Ok(());
        };
        match self.hand_over.hand_over(lead_id, event).await? {
            HandOverResult::Skipped(why) => {
                tracing::info!(%lead_id, %why, "no hand-over mail");
            }
            HandOverResult::Notified { .. } | HandOverResult::AlreadyNotified => {}
        }
        Ok(())
    }
}

/// The lead as the hand-over mail shows it.
fn summary_of(lead_id: Uuid, state: &LeadState) -> Option<LeadSummary> {
    let (sentiment, intent) = state
        .responses
        .iter()
        .rev()
        .find_map(|response| response.analysis.map(|(s, i, _)| (s, i)))
        .unwrap_or((Sentiment::Positive, Intent::Interested));
    let present = |text: &str| (!text.trim().is_empty()).then(|| text.to_owned());
    Some(LeadSummary {
        lead_id,
        name: state.profile.name.clone().unwrap_or_default(),
        position: present(&state.position),
        company: present(&state.company),
        linkedin_url: state.profile.linkedin_url.clone()?,
        classification: state
            .classification
            .map_or(Classification::Other, |(classification, _)| classification),
        quality_score: state.score,
        reply_intent: intent,
        reply_sentiment: sentiment,
    })
}

/// Every message sent and every reply, in the order they happened.
fn conversation_of(events: &[(&RecordedEvent, LeadEvent)]) -> Vec<ConversationTurn> {
    let mut turns: Vec<ConversationTurn> = events
        .iter()
        .filter_map(|(_, event)| match event {
            LeadEvent::InvitationSent(sent) => {
                sent.pii.message_text.as_ref().map(|text| ConversationTurn {
                    who: Party::Us {
                        account: sent.account_id.to_string(),
                    },
                    text: text.clone(),
                    at: sent.sent_at,
                })
            }
            LeadEvent::MessageSent(sent) => Some(ConversationTurn {
                who: Party::Us {
                    account: sent.account_id.to_string(),
                },
                text: sent.pii.message_text.clone().unwrap_or_default(),
                at: sent.sent_at,
            }),
            LeadEvent::ResponseReceived(received) => Some(ConversationTurn {
                who: Party::Lead,
                text: received.pii.reply_text.clone().unwrap_or_default(),
                at: received.received_at,
            }),
            _ => None,
        })
        .collect();
    turns.sort_by_key(|turn| turn.at);
    turns
}

/// What the team should do next, by what the person asked for.
pub fn suggested_next_step(intent: Intent, classification: Classification) -> String {
    let offer = match classification {
        Classification::Speaker => "the speaker brief (dates, format, audience, travel)",
        Classification::Sponsor => "the sponsorship prospectus and the available packages",
        Classification::Other => "a short overview of the event",
    };
    match intent {
        Intent::InfoRequest => {
            format!("They asked for information: send {offer} today and offer a 20-minute call.")
        }
        Intent::Referral => "They referred us to someone else: thank them, ask for an \
            introduction, and contact the person they named with a mention of the referral."
            .to_owned(),
        _ => format!(
            "They are interested: reply within a working day, propose two times for a call, \
             and attach {offer}."
        ),
    }
}
