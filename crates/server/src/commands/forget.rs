//! `salesdept forget <lead id | LinkedIn URL>`: crypto-shredding of one person's data.

use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::Utc;
use salesdept_events::domain::url::UrlReservationEvent;
use salesdept_events::domain::{
    CommandHandler, CommandMetadata, DomainEvent, LeadCommand, LeadState, LinkedInUrl, lead_stream,
    url_stream,
};
use salesdept_events::{Actor, EventStore, Store};
use uuid::Uuid;

use crate::cli::{ForgetArgs, GlobalArgs};
use crate::database::open_store;

pub async fn run(global: &GlobalArgs, args: &ForgetArgs) -> anyhow::Result<()> {
    let store = open_store(global).await?;
    let result = forget(&store, args).await;
    store.close().await;
    result
}

/// The lead a user named: its id, or the lead that claimed the profile URL. The URL is looked
/// up through its reservation stream (by hash), never by scanning personal data.
pub async fn resolve_lead(store: &Store, text: &str) -> anyhow::Result<Uuid> {
    let text = text.trim();
    if let Ok(id) = Uuid::parse_str(text.strip_prefix("lead-").unwrap_or(text)) {
        return Ok(id);
    }
    let url = LinkedInUrl::parse(text)
        .map_err(|error| anyhow::anyhow!("{error}: give a lead id or a LinkedIn profile URL"))?;
    let reservation = store.read_stream(&url_stream(&url), 1, Some(1)).await?;
    let Some(first) = reservation.first() else {
        bail!("no lead has the LinkedIn URL {url}");
    };
    match UrlReservationEvent::from_recorded(first)? {
        UrlReservationEvent::UrlReserved(reserved) => Ok(reserved.lead_id),
    }
}

async fn forget(store: &Store, args: &ForgetArgs) -> anyhow::Result<()> {
    let lead_id = resolve_lead(store, &args.lead).await?;
    let stream = lead_stream(lead_id);
    if store.stream_version(&stream).await?.is_none() {
        bail!("there is no lead {lead_id}");
    }
    let actor = match &args.actor {
        Some(actor) => actor
            .parse::<Actor>()
            .map_err(|message| anyhow::anyhow!(message))?,
        None => Actor::human(std::env::var("USER").unwrap_or_else(|_| "cli".to_owned())),
    };
    // The key goes first: even if recording the event failed, the data is already unreadable,
    // and running the command again records it.
    store
        .forget_subject(&stream)
        .await
        .context("cannot shred the person's data key")?;
    let handler = CommandHandler::new(Arc::new(store.clone()));
    let executed = handler
        .execute::<LeadState>(
            &stream,
            &LeadCommand::Forget,
            &CommandMetadata::new(actor, Utc::now()),
        )
        .await
        .context("cannot record lead_forgotten")?;
    if executed.events.is_empty() {
        println!("lead {lead_id} was already forgotten");
    } else {
        println!(
            "lead {lead_id} forgotten: its personal data is unreadable everywhere; its events stay for the audit trail"
        );
    }
    Ok(())
}
