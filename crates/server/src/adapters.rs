//! The outside world `serve` runs against, from `agents.yaml` and `llm.yaml`: the LinkedIn
//! provider `lead_finder.linkedin_service` names (Unipile or Gojiberry), the LLM chains the
//! agents' `llm_provider`s name, SMTP mail and the Google Sheet. Anything not configured
//! stays on the embedded default (sandbox, rules, file outbox, CSV), and [`describe`] says
//! which is which on start.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use salesdept_agents::clock::Clock;
use salesdept_agents::department::{Adapters, DepartmentSettings};
use salesdept_agents::linkedin::LinkedInPort;
use salesdept_agents::linkedin::gojiberry::{GojiberryClient, GojiberryConfig};
use salesdept_agents::linkedin::unipile::{UnipileClient, UnipileConfig};
use salesdept_agents::llm::{AgentName, LlmRouter};
use salesdept_agents::mail::{SmtpConfig, SmtpMailer, SmtpTlsMode};
use salesdept_events::Store;

use crate::cli::GlobalArgs;
use crate::commands::classify::llm_chain;
use crate::commands::replay_sheet::sheet_sink;
use crate::config::{AgentsConfig, LinkedInConfig, MailConfig};

/// Builds every configured adapter. Nothing connects yet; a missing or inconsistent key is an
/// error naming it.
pub async fn configured_adapters(
    global: &GlobalArgs,
    agents: &AgentsConfig,
    settings: &DepartmentSettings,
    store: &Store,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Adapters> {
    let mut adapters = Adapters {
        linkedin: linkedin_adapters(agents, settings)?,
        ..Adapters::default()
    };
    let mut llm = None;
    for agent in [
        AgentName::LeadFinder,
        AgentName::Outreach,
        AgentName::SalesManager,
    ] {
        if let Some(config) = llm_chain(global, agent, false)? {
            llm = Some(config);
        }
    }
    if let Some(config) = llm {
        let today = move || clock.now().date_naive();
        adapters.llm = Some(Arc::new(
            LlmRouter::new(&config, store.clone(), today)
                .context("cannot build the LLM router from llm.yaml")?,
        ));
    }
    if agents.mail.provider == "smtp" {
        adapters.mail = Some(Arc::new(
            SmtpMailer::new(&smtp_config(&agents.mail)).context("cannot set up SMTP mail")?,
        ));
    }
    if agents.sheet.provider == "google" {
        adapters.sheet = Some(sheet_sink(&agents.sheet).await?);
    }
    Ok(adapters)
}

fn smtp_config(mail: &MailConfig) -> SmtpConfig {
    let tls = match mail.smtp_tls.as_str() {
        "tls" => SmtpTlsMode::Implicit,
        "none" => SmtpTlsMode::None,
        _ => SmtpTlsMode::StartTls,
    };
    let mut config = SmtpConfig::new(mail.smtp_host.trim(), tls);
    config.port = mail.smtp_port;
    config.allow_plaintext_auth = mail.smtp_allow_plaintext_auth;
    config.send_timeout = Duration::from_secs(mail.smtp_timeout_seconds);
    config.credentials = mail
        .smtp_password
        .as_ref()
        .map(|password| (mail.smtp_username.clone(), password.secret().clone()));
    config
}

/// One adapter per sending account (Unipile: the account's own connected account; Gojiberry:
/// one client for the organisation, shared), or none for the sandbox.
fn linkedin_adapters(
    agents: &AgentsConfig,
    settings: &DepartmentSettings,
) -> anyhow::Result<Vec<(salesdept_events::domain::AccountId, Arc<dyn LinkedInPort>)>> {
    let linkedin: &LinkedInConfig = &agents.linkedin;
    let timeout = Duration::from_secs(linkedin.request_timeout_seconds);
    let service = agents.lead_finder.linkedin_service.as_str();
    let key = || {
        linkedin
            .api_key
            .as_ref()
            .map(|key| key.secret().clone())
            .with_context(|| format!("linkedin.api_key must be set for {service}"))
    };
    match service {
        "sandbox" => Ok(Vec::new()),
        "unipile" => {
            let dsn = linkedin
                .unipile_dsn
                .as_ref()
                .context("linkedin.unipile_dsn must be set for unipile")?;
            settings
                .accounts
                .iter()
                .map(|account| {
                    let provider_id = agents
                        .outreach
                        .accounts
                        .iter()
                        .find(|configured| configured.id == account.id.as_str())
                        .and_then(|configured| configured.provider_account_id.clone())
                        .with_context(|| {
                            format!(
                                "outreach.accounts: {} has no provider_account_id",
                                account.id
                            )
                        })?;
                    let mut config = UnipileConfig::new(dsn.secret().clone(), key()?, provider_id);
                    config.timeout = timeout;
                    let client = UnipileClient::new(config).with_context(|| {
                        format!("cannot set up Unipile for account {}", account.id)
                    })?;
                    Ok((
                        account.id.clone(),
                        Arc::new(client) as Arc<dyn LinkedInPort>,
                    ))
                })
                .collect()
        }
        "gojiberry" => {
            let mut config = GojiberryConfig::new(
                key()?,
                linkedin.gojiberry_campaign_list_id,
                linkedin.gojiberry_invitation_step,
            );
            config.timeout = timeout;
            let base = linkedin.api_base_url.trim();
            if !base.is_empty() {
                config.base_url = url::Url::parse(base)
                    .with_context(|| format!("linkedin.api_base_url {base:?}"))?;
            }
            let client: Arc<dyn LinkedInPort> =
                Arc::new(GojiberryClient::new(config).context("cannot set up Gojiberry")?);
            Ok(settings
                .accounts
                .iter()
                .map(|account| (account.id.clone(), Arc::clone(&client)))
                .collect())
        }
        other => bail!(
            "lead_finder.linkedin_service {other:?}: serve sends through sandbox, unipile or \
             gojiberry (Dripify is a campaign channel: import its exports with `salesdept import`)"
        ),
    }
}

/// One line per port: what `serve` talks to.
pub fn describe(agents: &AgentsConfig, adapters: &Adapters) -> String {
    let linkedin = if adapters.linkedin.is_empty() {
        "sandbox network".to_owned()
    } else {
        format!(
            "{} ({} account(s))",
            agents.lead_finder.linkedin_service,
            adapters.linkedin.len()
        )
    };
    let llm = if adapters.llm.is_some() {
        "configured chains, then the rules"
    } else {
        "the rules"
    };
    let mail = match &agents.mail.provider[..] {
        "smtp" => format!("SMTP via {}", agents.mail.smtp_host),
        _ => "the file outbox".to_owned(),
    };
    let sheet = adapters
        .sheet
        .as_ref()
        .map_or_else(|| "CSV file".to_owned(), |sheet| sheet.target());
    format!("LinkedIn: {linkedin}; LLM: {llm}; mail: {mail}; sheet: {sheet}")
}
