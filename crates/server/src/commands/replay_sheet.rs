//! `salesdept replay sheet`: rewrites the Google Sheet (or the CSV file) from the event log, in
//! a constant number of API calls, after reading back what people typed into it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use salesdept_projections::sheet::{
    CsvFileSink, GoogleSheetConfig, GoogleSheetSink, RetryPolicy, SheetSink, SheetSync,
};

use crate::cli::GlobalArgs;
use crate::config::{SheetConfig, load_agents};
use crate::database::open_store;

pub async fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    let agents = load_agents(&global.config)?;
    let sink = sheet_sink(&agents.sheet).await?;
    let store = open_store(global).await?;
    let sync = SheetSync::new(store.clone(), sink);
    let result = sync.replay().await;
    store.close().await;
    let report = result.with_context(|| format!("cannot rewrite {}", sync.sink().target()))?;
    if !report.edits.is_empty() {
        println!(
            "{} edit(s) read back from the sheet first: {:?}",
            report.edits.len(),
            report.edits
        );
    }
    println!(
        "{} rewritten from the log: {} lead row(s), checkpoint {}",
        sync.sink().target(),
        report.rows,
        report.checkpoint
    );
    Ok(())
}

/// The sink the `sheet:` configuration names: the CSV file, or a Google Sheets tab.
pub async fn sheet_sink(config: &SheetConfig) -> anyhow::Result<Arc<dyn SheetSink>> {
    match config.provider.as_str() {
        "google" => {
            let google = GoogleSheetConfig {
                spreadsheet_id: config.spreadsheet_id.trim().to_owned(),
                sheet_name: config.sheet_name.clone(),
                service_account_key_file: config.service_account_key_file.trim().into(),
                base_url: Some(config.api_base_url.trim().to_owned()).filter(|url| !url.is_empty()),
                retry: RetryPolicy {
                    timeout: Duration::from_secs(config.request_timeout_seconds),
                    max_attempts: config.max_attempts,
                    ..RetryPolicy::default()
                },
            };
            Ok(Arc::new(
                GoogleSheetSink::connect(&google)
                    .await
                    .context("cannot set up the Google Sheets client")?,
            ))
        }
        _ => Ok(Arc::new(CsvFileSink::new(&config.csv_path))),
    }
}
