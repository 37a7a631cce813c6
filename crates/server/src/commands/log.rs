//! `salesdept log append|read`: low-level access to the event log.

use std::io::Write;

use anyhow::{Context, bail};
use chrono::Utc;
use salesdept_events::{
    Actor, Checkpoint, EventStore, ExpectedVersion, Metadata, NewEvent, RecordedEvent,
};
use serde_json::Value;

use crate::cli::{AppendArgs, GlobalArgs, LogCommand, ReadArgs};
use crate::database::open_store;

pub async fn run(global: &GlobalArgs, command: &LogCommand) -> anyhow::Result<()> {
    let store = open_store(global).await?;
    let result = match command {
        LogCommand::Append(args) => append(&store, args).await,
        LogCommand::Read(args) => read(&store, args).await,
    };
    store.close().await;
    result
}

async fn append(store: &impl EventStore, args: &AppendArgs) -> anyhow::Result<()> {
    let data: Value = serde_json::from_str(&args.data).context("--data is not valid JSON")?;
    let expected: ExpectedVersion = args
        .expected_version
        .parse()
        .map_err(|message: String| anyhow::anyhow!(message))?;
    let actor = match &args.actor {
        Some(actor) => actor
            .parse::<Actor>()
            .map_err(|message| anyhow::anyhow!(message))?,
        None => Actor::human(std::env::var("USER").unwrap_or_else(|_| "cli".to_owned())),
    };
    let mut metadata = Metadata::new(actor, Utc::now());
    if let Some(extra) = &args.metadata {
        let Value::Object(extra) =
            serde_json::from_str(extra).context("--metadata is not valid JSON")?
        else {
            bail!("--metadata must be a JSON object");
        };
        metadata.extra.extend(extra);
    }
    let mut event = NewEvent::new(&args.event_type, data, metadata);
    if let Some(event_id) = args.event_id {
        event = event.with_event_id(event_id);
    }
    let event_id = event.event_id;
    let result = store
        .append(&args.stream, expected, vec![event])
        .await
        .map_err(anyhow::Error::new)?;
    let stored = store
        .read_stream(&args.stream, result.stream_version, Some(1))
        .await?
        .into_iter()
        .find(|stored| stored.event_id == event_id);
    let mut out = std::io::stdout().lock();
    match (args.json, stored) {
        (true, Some(stored)) => writeln!(out, "{}", stored.to_json_line())?,
        _ => writeln!(
            out,
            "{} {} to {} at version {}",
            if result.already_stored {
                "already stored:"
            } else {
                "appended"
            },
            event_id,
            args.stream,
            result.stream_version
        )?,
    }
    Ok(())
}

async fn read(store: &impl EventStore, args: &ReadArgs) -> anyhow::Result<()> {
    if args.limit < 1 {
        bail!("--limit must be at least 1");
    }
    let events = match &args.stream {
        Some(stream) => store.read_stream(stream, 1, Some(args.limit)).await?,
        None => {
            let after = match &args.after {
                Some(text) => text.parse::<Checkpoint>()?,
                None => Checkpoint::START,
            };
            store.read_all(after, args.limit).await?
        }
    };
    let mut out = std::io::stdout().lock();
    for event in &events {
        if args.json {
            writeln!(out, "{}", event.to_json_line())?;
        } else {
            writeln!(out, "{}", human_line(event))?;
        }
    }
    Ok(())
}

fn human_line(event: &RecordedEvent) -> String {
    format!(
        "{:<24} {} {}@{} {} by {}",
        event.checkpoint().to_string(),
        event.metadata.occurred_at.format("%Y-%m-%d %H:%M:%S"),
        event.stream_id,
        event.stream_version,
        event.event_type,
        event.metadata.actor
    )
}
