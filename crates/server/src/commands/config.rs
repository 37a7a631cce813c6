//! `salesdept config check`.

use anyhow::Context;

use crate::cli::GlobalArgs;
use crate::config::load_agents;

pub fn check(global: &GlobalArgs) -> anyhow::Result<()> {
    let agents = load_agents(&global.config)?;
    let yaml = serde_yaml::to_string(&agents).context("cannot print the configuration")?;
    println!(
        "# effective agents configuration ({})\n{yaml}",
        global.config.join("agents.yaml").display()
    );
    Ok(())
}
