//! `salesdept migrate`.

use salesdept_events::store::redact_url;

use crate::cli::GlobalArgs;
use crate::database::{database_url, open_store};

pub async fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    let store = open_store(global).await?;
    println!(
        "migrations applied to the {} store at {}",
        store.backend(),
        redact_url(&database_url(global))
    );
    store.close().await;
    Ok(())
}
