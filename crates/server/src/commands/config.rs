//! `salesdept config check`: `agents.yaml` and `llm.yaml`, as `serve` would read them.

use anyhow::Context;

use crate::cli::GlobalArgs;
use crate::config::load_agents;

pub fn check(global: &GlobalArgs) -> anyhow::Result<()> {
    let agents = load_agents(&global.config)?;
    crate::commands::classify::check_llm_chains(global)?;
    let yaml = serde_yaml::to_string(&agents).context("cannot print the configuration")?;
    println!(
        "# effective agents configuration ({})\n{yaml}",
        global.config.join("agents.yaml").display()
    );
    Ok(())
}
