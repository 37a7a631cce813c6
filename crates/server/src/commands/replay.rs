//! `salesdept replay leads|sheet`: rebuild a projection from the whole log (the sheet's is in
//! `replay_sheet`).

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use salesdept_projections::leads::{RebuildOptions, rebuild_leads_with};

use crate::cli::{GlobalArgs, ReplayCommand};
use crate::database::open_store;

pub async fn run(global: &GlobalArgs, command: &ReplayCommand) -> anyhow::Result<()> {
    match command {
        ReplayCommand::Sheet => super::replay_sheet::run(global).await,
        ReplayCommand::Leads => {
            let store = open_store(global).await?;
            let result = replay_leads(&store).await;
            store.close().await;
            result
        }
    }
}

async fn replay_leads(store: &salesdept_events::Store) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_print = Instant::now();
    // Progress goes to stderr, at most a few lines a second; stdout carries the result only.
    let progress = move |events: u64| {
        if last_print.elapsed() >= Duration::from_millis(500) {
            last_print = Instant::now();
            let seconds = started.elapsed().as_secs_f64().max(1e-9);
            eprintln!(
                "replayed {events} events ({:.0} events/s)",
                events as f64 / seconds
            );
        }
    };
    let report = rebuild_leads_with(store, RebuildOptions::default(), progress)
        .await
        .context("cannot rebuild the lead table")?;
    let seconds = report.elapsed.as_secs_f64();
    writeln!(
        std::io::stdout().lock(),
        "lead table rebuilt: {} leads from {} events in {:.2} s ({:.0} events/s)",
        report.leads,
        report.events,
        seconds,
        report.events as f64 / seconds.max(1e-9)
    )?;
    Ok(())
}
