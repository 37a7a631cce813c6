//! Opening the event store a command names.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use salesdept_events::pii_vault::{MasterKey, PiiVault};
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
    store.enable_pii_vault(Arc::new(PiiVault::new(master_key()?)));
    Ok(store)
}

/// Where the embedded default keeps its generated master key.
pub const DEFAULT_MASTER_KEY_PATH: &str = "data/master.key";

/// The master key for personal data: `SALESDEPT_MASTER_KEY` (base64, 32 bytes), else the key
/// file `SALESDEPT_MASTER_KEY_FILE`, else `data/master.key`, generated (mode 0600) on first use.
pub fn master_key() -> anyhow::Result<MasterKey> {
    if let Ok(text) = std::env::var("SALESDEPT_MASTER_KEY") {
        return MasterKey::from_base64(&text)
            .context("SALESDEPT_MASTER_KEY is not a usable master key");
    }
    let path = std::env::var("SALESDEPT_MASTER_KEY_FILE")
        .unwrap_or_else(|_| DEFAULT_MASTER_KEY_PATH.to_owned());
    MasterKey::load_or_create(Path::new(&path))
        .context("cannot load the master key for personal data")
}
