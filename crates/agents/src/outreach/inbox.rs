//! Hearing back: replies and accepted invitations read from each sending account's provider
//! and recorded on the leads they belong to.
//!
//! Polling is the backstop of webhooks (which arrive late, twice or never), so a poll looks
//! back over a window and relies on the lead's rules to recognise what is already recorded: a
//! reply by its provider message id, an acceptance by the invitation already accepted. Nothing
//! here keeps state of its own; the window's start is the caller's (e.g. now minus two check
//! intervals).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use salesdept_events::domain::lead::{LeadCommand, LeadState};
use salesdept_events::domain::url::UrlReservation;
use salesdept_events::domain::{
    AccountId, CommandError, CommandHandler, CommandMetadata, DomainError, LinkedInUrl,
    lead_stream, url_stream,
};
use salesdept_events::{Actor, EventStore};
use uuid::Uuid;

use super::send::{OUTREACH, SendError};
use crate::clock::Clock;
use crate::linkedin::{LinkedInError, LinkedInPort};

/// What one poll found and did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InboxPass {
    /// Replies recorded now: the lead and the reply's number on it.
    pub replies: Vec<(Uuid, u32)>,
    /// Invitations whose acceptance was recorded now.
    pub acceptances: Vec<Uuid>,
    /// Replies and acceptances that were recorded before (a repeated delivery).
    pub already_recorded: u32,
    /// Messages from people who are not leads (or whose lead refused them: forgotten, stopped).
    pub ignored: Vec<String>,
    /// Providers that could not be read, per account; the next poll's window covers them.
    pub failures: Vec<(AccountId, String)>,
}

/// Reads every account's replies and acceptances into the leads' streams.
pub struct Inbox<S: EventStore + ?Sized> {
    handler: CommandHandler<S>,
    accounts: Vec<(AccountId, Arc<dyn LinkedInPort>)>,
    clock: Arc<dyn Clock>,
}

impl<S: EventStore + ?Sized> Inbox<S> {
    pub fn new(
        store: Arc<S>,
        accounts: Vec<(AccountId, Arc<dyn LinkedInPort>)>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            handler: CommandHandler::new(store).with_max_attempts(8),
            accounts,
            clock,
        }
    }

    /// Records what every account heard after `since`.
    #[tracing::instrument(skip_all, fields(since = %since), err)]
    pub async fn poll(&self, since: DateTime<Utc>) -> Result<InboxPass, SendError> {
        let mut pass = InboxPass::default();
        for (account_id, linkedin) in &self.accounts {
            match linkedin.connections_accepted_since(since).await {
                Ok(accepted) => {
                    for acceptance in accepted {
                        self.record(
                            &mut pass,
                            &acceptance.profile_url,
                            LeadCommand::RecordInvitationAccepted,
                            &format!("acceptance:{account_id}"),
                        )
                        .await?;
                    }
                }
                Err(error) => pass.failures.push((account_id.clone(), describe(&error))),
            }
            match linkedin.replies_since(since).await {
                Ok(replies) => {
                    for reply in replies {
                        self.record(
                            &mut pass,
                            &reply.profile_url,
                            LeadCommand::RecordResponse {
                                provider_message_id: Some(reply.provider_message_id.clone()),
                                text: reply.text.clone(),
                            },
                            &format!("reply:{}", reply.provider_message_id),
                        )
                        .await?;
                    }
                }
                Err(error) => pass.failures.push((account_id.clone(), describe(&error))),
            }
        }
        Ok(pass)
    }

    /// The lead that holds `url`, if the profile is one of ours.
    async fn lead_of(&self, url: &LinkedInUrl) -> Result<Option<Uuid>, SendError> {
        Ok(self
            .handler
            .load::<UrlReservation>(&url_stream(url))
            .await?
            .state
            .lead_id)
    }

    async fn record(
        &self,
        pass: &mut InboxPass,
        url: &LinkedInUrl,
        command: LeadCommand,
        what: &str,
    ) -> Result<(), SendError> {
        let Some(lead_id) = self.lead_of(url).await? else {
            pass.ignored.push(format!("{what}: not a lead"));
            return Ok(());
        };
        let stream = lead_stream(lead_id);
        // The lead journey's correlation id, so the reply joins the lead's trace and audit.
        let correlation_id = self
            .handler
            .store()
            .read_stream(&stream, 1, Some(1))
            .await?
            .first()
            .and_then(|first| first.metadata.correlation_id.or(Some(first.event_id)));
        let mut metadata = CommandMetadata::new(Actor::agent(OUTREACH), self.clock.now());
        metadata.correlation_id = correlation_id;
        let accepted = matches!(command, LeadCommand::RecordInvitationAccepted);
        match self
            .handler
            .execute::<LeadState>(&stream, &command, &metadata)
            .await
        {
            Ok(executed) if executed.events.is_empty() => pass.already_recorded += 1,
            Ok(_) if accepted => pass.acceptances.push(lead_id),
            Ok(executed) => {
                let number = u32::try_from(executed.state.responses.len()).unwrap_or(u32::MAX);
                pass.replies.push((lead_id, number));
            }
            // An acceptance of an invitation we never recorded (sent from elsewhere) is no news.
            Err(CommandError::Rejected(DomainError::NoPendingInvitation)) if accepted => {
                pass.ignored
                    .push(format!("{what}: lead {lead_id} had no pending invitation"));
            }
            Err(CommandError::Rejected(rejection)) => {
                pass.ignored
                    .push(format!("{what}: lead {lead_id}: {rejection}"));
            }
            Err(other) => return Err(other.into()),
        }
        Ok(())
    }
}

fn describe(error: &LinkedInError) -> String {
    error.to_string()
}
