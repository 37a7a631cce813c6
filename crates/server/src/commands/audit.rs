//! `salesdept audit`: history from the log.
//!
//! - `audit [--from T] [--to T] [--actor A] [--type T] [--json]`: events across the log by
//!   domain time, actor and type.
//! - `audit lead <id | url> [--json]`: one lead's history; `--at T` prints its row then.
//! - `audit table --at T [--json]`: the whole lead table as it was at T (CSV or JSON lines).

use std::io::Write;

use anyhow::{Context, bail};
use salesdept_events::{Actor, Store};
use salesdept_projections::HEADERS;
use salesdept_projections::audit::{
    AuditError, AuditFilter, audit_events, for_each_lead_as_of, lead_as_of, lead_history,
    parse_time, resolve_lead,
};
use salesdept_projections::leads::row_to_json;
use salesdept_projections::sheet::neutralise_row;

use crate::cli::{AuditArgs, AuditCommand, AuditLeadArgs, AuditTableArgs, GlobalArgs};
use crate::database::open_store;

pub async fn run(global: &GlobalArgs, args: &AuditArgs) -> anyhow::Result<()> {
    let store = open_store(global).await?;
    let result = match &args.command {
        None => range(&store, args).await,
        Some(AuditCommand::Lead(lead)) => lead_command(&store, lead).await,
        Some(AuditCommand::Table(table)) => table_command(&store, table).await,
    };
    store.close().await;
    result
}

fn time_arg(
    text: &str,
    option: &str,
    upper_bound: bool,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    parse_time(text, upper_bound).map_err(|message| anyhow::anyhow!("{option}: {message}"))
}

/// Writing to stdout failed (e.g. a closed pipe): stop the audit.
fn output_error(error: std::io::Error) -> AuditError {
    AuditError::Output(error)
}

async fn range(store: &Store, args: &AuditArgs) -> anyhow::Result<()> {
    let filter = AuditFilter {
        from: args
            .from
            .as_deref()
            .map(|text| time_arg(text, "--from", false))
            .transpose()?,
        to: args
            .to
            .as_deref()
            .map(|text| time_arg(text, "--to", true))
            .transpose()?,
        actor: args
            .actor
            .as_deref()
            .map(|text| {
                text.parse::<Actor>()
                    .map_err(|message| anyhow::anyhow!(message))
            })
            .transpose()?,
        event_type: args.event_type.clone(),
    };
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from > to
    {
        bail!("--from is after --to");
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let json = args.json;
    audit_events(store, &filter, |entry| {
        if json {
            writeln!(out, "{}", entry.to_json_line())
        } else {
            writeln!(out, "{}  {}", entry.event.stream_id, entry.text_line())
        }
        .map_err(output_error)
    })
    .await
    .context("cannot read the log")?;
    out.flush()?;
    Ok(())
}

async fn lead_command(store: &Store, args: &AuditLeadArgs) -> anyhow::Result<()> {
    let lead_id = resolve_lead(store, &args.lead).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if let Some(at) = &args.at {
        let time = time_arg(at, "--at", true)?;
        let Some((row, state)) = lead_as_of(store, lead_id, time).await? else {
            bail!("lead {lead_id} did not exist at {time}");
        };
        if args.json {
            let mut line = row_to_json(&row);
            line["as_of"] = serde_json::Value::String(time.to_rfc3339());
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "lead {lead_id} as of {time}:")?;
            for (header, cell) in HEADERS.iter().zip(row.cells()) {
                writeln!(out, "  {header:<19} {}", cell.replace('\n', " | "))?;
            }
            writeln!(
                out,
                "  {:<19} {} events, {} drafts, {} replies{}",
                "Journey",
                row.version,
                state.drafts.len(),
                state.responses.len(),
                if row.forgotten { ", forgotten" } else { "" }
            )?;
        }
        out.flush()?;
        return Ok(());
    }
    let history = lead_history(store, lead_id).await?;
    if history.is_empty() {
        bail!("there is no lead {lead_id}");
    }
    for entry in &history {
        if args.json {
            writeln!(out, "{}", entry.to_json_line())?;
        } else {
            writeln!(out, "{}", entry.text_line())?;
        }
    }
    out.flush()?;
    Ok(())
}

async fn table_command(store: &Store, args: &AuditTableArgs) -> anyhow::Result<()> {
    let time = time_arg(&args.at, "--at", true)?;
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        let mut out = out;
        for_each_lead_as_of(store, time, |row| {
            writeln!(out, "{}", row_to_json(&row)).map_err(output_error)
        })
        .await?;
        out.flush()?;
    } else {
        let mut csv = csv::Writer::from_writer(out);
        csv.write_record(HEADERS)?;
        for_each_lead_as_of(store, time, |row| {
            // A CSV export is opened in spreadsheets: formula-like cells stay text.
            csv.write_record(neutralise_row(&row.cells()))
                .map_err(|error| output_error(std::io::Error::other(error)))
        })
        .await?;
        csv.flush()?;
    }
    Ok(())
}
