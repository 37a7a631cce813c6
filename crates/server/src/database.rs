//! Opening the event store a command names.

use anyhow::Context;
use salesdept_events::store::{DEFAULT_SQLITE_PATH, redact_url};
use salesdept_events::{Store, domain};

use crate::cli::GlobalArgs;

/// The database URL: `--database`, else `DATABASE_URL` (clap reads both), else the embedded file.
pub fn database_url(global: &GlobalArgs) -> String {
    global
        .database
        .clone()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| format!("sqlite://{DEFAULT_SQLITE_PATH}"))
}

/// Connects and applies migrations (idempotent), so every command works on a fresh database.
pub async fn open_store(global: &GlobalArgs) -> anyhow::Result<Store> {
    let url = database_url(global);
    let store = Store::connect(&url, domain::upcasters())
        .await
        .with_context(|| format!("cannot open the event store at {}", redact_url(&url)))?;
    store
        .migrate()
        .await
        .with_context(|| format!("cannot migrate the event store at {}", redact_url(&url)))?;
    Ok(store)
}
