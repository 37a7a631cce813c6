//! `salesdept import FILE.csv`: an exported prospect list into leads.
//!
//! The whole file is read and checked first ([`plan_import`]): a file that cannot be read
//! imports nothing, and neither does a file with a rejected row unless `--skip-invalid` says
//! to import the valid ones. Then every accepted row goes through the Lead Finder's intake
//! (URL claimed once, lead discovered with source `import`, classified and scored). Lead ids
//! derive from the file's bytes, so running the same file again after a crash finishes the
//! import and adds nothing twice. The report names rows by line number only.

use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::Utc;
use salesdept_agents::clock::{Clock, SystemClock};
use salesdept_agents::lead_finder::{
    CorrectionSource, FinderSettings, ImportOutcome, LeadFinder, import_id,
};
use salesdept_agents::linkedin::csv_import::{ImportPlan, plan_import};
use salesdept_agents::llm::{AgentName, LlmPort, LlmRouter, RulesOnly};
use salesdept_events::{Actor, Store};
use serde::Serialize;
use uuid::Uuid;

use crate::cli::{GlobalArgs, ImportArgs};
use crate::config::load_agents;
use crate::database::open_store;

/// How many of the team's latest classification corrections guide the classifier.
const CORRECTION_EXAMPLES: usize = 5;

/// The report, as printed with `--json`.
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
    pub import_id: Option<Uuid>,
    pub stored: bool,
    pub accepted: usize,
    pub imported: usize,
    pub duplicates_in_file: Vec<u64>,
    pub already_leads: Vec<u64>,
    pub rejected: Vec<RejectedRow>,
    pub failed: Vec<RejectedRow>,
    pub allocatable: usize,
    pub needs_review: usize,
}

#[derive(Debug, Serialize)]
pub struct RejectedRow {
    pub line: u64,
    pub reason: String,
}

pub async fn run(global: &GlobalArgs, args: &ImportArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let plan = plan_import(&bytes)
        .map_err(|error| anyhow::anyhow!("{}: {error}; nothing imported", args.file.display()))?;
    let mut report = ImportReport {
        accepted: plan.accepted.len(),
        duplicates_in_file: plan.duplicates.iter().map(|(line, _)| *line).collect(),
        rejected: plan
            .rejected
            .iter()
            .map(|row| RejectedRow {
                line: row.line,
                reason: row.reason.to_string(),
            })
            .collect(),
        ..ImportReport::default()
    };
    let refused = !plan.is_clean() && !args.skip_invalid;
    if args.dry_run || refused || plan.accepted.is_empty() {
        print_report(args, &report)?;
        if refused {
            bail!(
                "{}: {} row(s) rejected, nothing imported (fix them, or use --skip-invalid to import the {} valid row(s))",
                args.file.display(),
                plan.rejected.len(),
                plan.accepted.len()
            );
        }
        return Ok(());
    }

    let actor = match &args.actor {
        Some(actor) => actor
            .parse::<Actor>()
            .map_err(|message| anyhow::anyhow!(message))?,
        None => Actor::human(std::env::var("USER").unwrap_or_else(|_| "cli".to_owned())),
    };
    let settings = finder_settings(global)?;
    let id = import_id(&bytes);
    let store = open_store(global).await?;
    let outcome = match super::classify::llm_chain(global, AgentName::LeadFinder, args.rules)? {
        None => import(&store, RulesOnly, settings, &plan, id, args, actor).await,
        Some(config) => {
            let router = LlmRouter::new(&config, store.clone(), || Utc::now().date_naive())
                .context("cannot build the LLM router from llm.yaml")?;
            import(&store, router, settings, &plan, id, args, actor).await
        }
    };
    store.close().await;
    let outcome = outcome.context("the import stopped; run the same command again to finish it")?;
    report.import_id = Some(outcome.import_id);
    report.stored = true;
    report.imported = outcome.leads.len();
    report.allocatable = outcome
        .leads
        .iter()
        .filter(|(_, lead)| lead.allocatable)
        .count();
    report.needs_review = outcome
        .leads
        .iter()
        .filter(|(_, lead)| lead.needs_review)
        .count();
    report.already_leads = outcome.already_leads;
    report.failed = outcome
        .failed
        .into_iter()
        .map(|(line, reason)| RejectedRow { line, reason })
        .collect();
    print_report(args, &report)
}

async fn import<L: LlmPort>(
    store: &Store,
    llm: L,
    settings: FinderSettings,
    plan: &ImportPlan,
    import_id: Uuid,
    args: &ImportArgs,
    actor: Actor,
) -> anyhow::Result<ImportOutcome> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let corrections: Arc<dyn CorrectionSource> = Arc::new(store.clone());
    let finder = LeadFinder::importer(Arc::new(store.clone()), Arc::new(llm), clock, settings)
        .with_corrections(corrections, CORRECTION_EXAMPLES);
    Ok(finder.import(plan, import_id, &args.format, actor).await?)
}

fn finder_settings(global: &GlobalArgs) -> anyhow::Result<FinderSettings> {
    let agents = load_agents(&global.config)?;
    Ok(FinderSettings {
        max_leads_per_day: agents.lead_finder.max_leads_per_day,
        quality_threshold: agents.lead_finder.quality_threshold,
        review_confidence_threshold: agents.lead_finder.review_confidence_threshold,
    })
}

fn print_report(args: &ImportArgs, report: &ImportReport) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    for row in &report.rejected {
        println!("line {}: rejected: {}", row.line, row.reason);
    }
    for line in &report.duplicates_in_file {
        println!("line {line}: duplicate of an earlier line of this file");
    }
    for line in &report.already_leads {
        println!("line {line}: duplicate: already a lead");
    }
    for row in &report.failed {
        println!("line {}: not imported: {}", row.line, row.reason);
    }
    // Stored: what was imported; a dry run: what would be; a refusal: nothing.
    let (verb, count) = if report.stored {
        ("imported", report.imported)
    } else if args.dry_run {
        ("would import (dry run)", report.accepted)
    } else {
        ("imported", 0)
    };
    println!(
        "{verb} {count} of {} valid row(s); {} duplicate(s) in the file, {} already lead(s), {} rejected, {} failed; {} allocatable, {} for review",
        report.accepted,
        report.duplicates_in_file.len(),
        report.already_leads.len(),
        report.rejected.len(),
        report.failed.len(),
        report.allocatable,
        report.needs_review,
    );
    Ok(())
}
