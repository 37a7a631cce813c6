//! Configuration: `config/agents.yaml` with the seed's keys, `${VAR}` interpolation from the
//! environment, environment variables overriding files (`SALESDEPT_AGENTS__OUTREACH__RATE_LIMIT_DAILY=30`),
//! and every key validated at start with an error naming the key and the file.
//! Environment overrides use the prefix `SALESDEPT_AGENTS__` and `__` between key levels. With no file at
//! all, every key has its documented default: the embedded defaults need no configuration.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::NaiveTime;
use figment::Figment;
use figment::providers::{Env, Format, Yaml};
use salesdept_agents::llm::LlmConfig;
use serde::{Deserialize, Serialize};

mod outside;
pub use outside::{ConfigSecret, LinkedInConfig, MailConfig};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {file}: {message}")]
    Read { file: String, message: String },
    #[error("{file}: environment variable {variable} is not set (used as ${{{variable}}})")]
    MissingVariable { file: String, variable: String },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: key {key}: {message}")]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
}

/// The agents' configuration (`agents.yaml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsConfig {
    /// The department's time zone for the daily schedule (IANA name).
    pub timezone: String,
    pub sales_manager: SalesManagerConfig,
    pub lead_finder: LeadFinderConfig,
    pub outreach: OutreachConfig,
    pub sheet: SheetConfig,
    pub api: ApiConfig,
    pub mail: MailConfig,
    pub linkedin: LinkedInConfig,
}

/// The HTTP API (`api:`): bearer tokens, each with a user and a role. A token is given as
/// `token_sha256` (its SHA-256, hex) or as `token` (e.g. `"${API_TOKEN}"`), hashed while it is
/// read and never kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub tokens: Vec<ApiTokenConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenConfig {
    pub user: String,
    /// `viewer`, `operator` or `admin`.
    pub role: crate::http::Role,
    #[serde(default)]
    pub token_sha256: Option<crate::http::TokenHash>,
    #[serde(
        default,
        skip_serializing,
        deserialize_with = "crate::http::TokenHash::deserialize_plain"
    )]
    pub token: Option<crate::http::TokenHash>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SalesManagerConfig {
    pub llm_provider: String,
    pub llm_model: String,
    pub coordination_interval_minutes: u32,
    /// Daily coordination (HH:MM, department time zone).
    pub coordination_time: String,
    /// Daily report (HH:MM).
    pub report_time: String,
    pub allocation_strategy: String,
    pub daily_allocation_min: u32,
    pub daily_allocation_max: u32,
    /// Leads at or above this score are allocated first.
    pub priority_quality_score: f64,
    /// Share of speakers among the day's allocations (the rest are sponsors).
    pub speaker_share: f64,
    /// A performance alert is raised when the weekly reply rate falls below this.
    pub reply_rate_floor: f64,
    /// Who receives the daily report and positive-reply hand-overs.
    pub team_emails: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeadFinderConfig {
    pub llm_provider: String,
    pub llm_model: String,
    pub search_interval_hours: u32,
    pub max_leads_per_day: u32,
    pub quality_threshold: f64,
    /// Classifications below this confidence go to the human review queue.
    pub review_confidence_threshold: f64,
    /// `sandbox`, `unipile`, `gojiberry`, `dripify`.
    pub linkedin_service: String,
    pub industries: Vec<String>,
    pub position_keywords: Vec<String>,
    pub company_sizes: Vec<String>,
    pub locations: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutreachConfig {
    pub llm_provider: String,
    pub llm_model: String,
    /// `llm_enhanced` or `template_based`.
    pub message_generation_mode: String,
    pub response_check_interval_hours: u32,
    pub rate_limit_daily: u32,
    pub rate_limit_min_interval_minutes: u32,
    pub rate_limit_max_interval_minutes: u32,
    pub invitations_per_day: u32,
    pub invitations_per_week: u32,
    pub working_hours_start: String,
    pub working_hours_end: String,
    /// Three-letter day names, e.g. [Mon, Tue, Wed, Thu, Fri].
    pub working_days: Vec<String>,
    pub max_follow_ups: u32,
    /// Days after the first message for each follow-up.
    pub follow_up_days: Vec<u32>,
    pub invitation_withdraw_days: u32,
    /// Drafts below this confidence wait for human approval.
    pub draft_confidence_threshold: f64,
    /// Sending accounts in priority order; the first is the primary.
    pub accounts: Vec<AccountConfig>,
}

/// The Google Sheet projection (`sheet:`); the CSV file is the embedded default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SheetConfig {
    /// `csv` (a file, the default) or `google` (a Google Sheets tab).
    pub provider: String,
    /// The CSV file (provider csv).
    pub csv_path: String,
    /// The spreadsheet's id, from its URL (provider google).
    pub spreadsheet_id: String,
    /// The tab the leads go to (provider google).
    pub sheet_name: String,
    /// The service account's JSON key file (provider google). Share the spreadsheet with the
    /// service account's e-mail address.
    pub service_account_key_file: String,
    /// How often `serve` syncs the sheet with the log.
    pub sync_interval_seconds: u64,
    /// The Sheets API's base URL; empty: Google's. For a proxy or a local fake.
    pub api_base_url: String,
    /// Time allowed for one Sheets API call.
    pub request_timeout_seconds: u64,
    /// Attempts per Sheets API call on 429, 5xx and connection errors (the first included).
    pub max_attempts: u32,
}

impl Default for SheetConfig {
    fn default() -> Self {
        Self {
            provider: "csv".into(),
            csv_path: salesdept_projections::sheet::DEFAULT_CSV_PATH.into(),
            spreadsheet_id: String::new(),
            sheet_name: "Leads".into(),
            service_account_key_file: String::new(),
            sync_interval_seconds: 60,
            api_base_url: String::new(),
            request_timeout_seconds: 30,
            max_attempts: 5,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub id: String,
    /// The account's own time zone for working hours (default: the department's).
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub rate_limit_daily: Option<u32>,
    #[serde(default)]
    pub invitations_per_day: Option<u32>,
    #[serde(default)]
    pub invitations_per_week: Option<u32>,
    /// The account's id at the LinkedIn provider (Unipile's connected-account id).
    #[serde(default)]
    pub provider_account_id: Option<String>,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
            sales_manager: SalesManagerConfig::default(),
            lead_finder: LeadFinderConfig::default(),
            outreach: OutreachConfig::default(),
            sheet: SheetConfig::default(),
            api: ApiConfig::default(),
            mail: MailConfig::default(),
            linkedin: LinkedInConfig::default(),
        }
    }
}

impl Default for SalesManagerConfig {
    fn default() -> Self {
        Self {
            llm_provider: "rules".into(),
            llm_model: "rules".into(),
            coordination_interval_minutes: 60,
            coordination_time: "09:00".into(),
            report_time: "09:15".into(),
            allocation_strategy: "quality_priority".into(),
            daily_allocation_min: 30,
            daily_allocation_max: 50,
            priority_quality_score: 7.0,
            speaker_share: 0.6,
            reply_rate_floor: 0.08,
            team_emails: vec!["sales-team@localhost".into()],
        }
    }
}

impl Default for LeadFinderConfig {
    fn default() -> Self {
        Self {
            llm_provider: "rules".into(),
            llm_model: "rules".into(),
            search_interval_hours: 24,
            max_leads_per_day: 100,
            quality_threshold: 6.0,
            review_confidence_threshold: 0.55,
            linkedin_service: "sandbox".into(),
            industries: vec![
                "Software Development".into(),
                "Artificial Intelligence".into(),
                "Semiconductors".into(),
                "Research".into(),
            ],
            position_keywords: vec![
                "CTO".into(),
                "Founder".into(),
                "VP Engineering".into(),
                "Head of Developer Marketing".into(),
                "Developer Relations".into(),
                "Partnerships".into(),
            ],
            company_sizes: vec![
                "11-50".into(),
                "51-200".into(),
                "201-500".into(),
                "501-1000".into(),
            ],
            locations: vec!["Europe".into(), "United States".into()],
        }
    }
}

impl Default for OutreachConfig {
    fn default() -> Self {
        Self {
            llm_provider: "rules".into(),
            llm_model: "rules".into(),
            message_generation_mode: "template_based".into(),
            response_check_interval_hours: 2,
            rate_limit_daily: 45,
            rate_limit_min_interval_minutes: 5,
            rate_limit_max_interval_minutes: 15,
            invitations_per_day: 20,
            invitations_per_week: 100,
            working_hours_start: "09:00".into(),
            working_hours_end: "17:00".into(),
            working_days: ["Mon", "Tue", "Wed", "Thu", "Fri"]
                .map(String::from)
                .to_vec(),
            max_follow_ups: 2,
            follow_up_days: vec![3, 7],
            invitation_withdraw_days: 21,
            draft_confidence_threshold: 0.6,
            accounts: vec![AccountConfig {
                id: "primary".into(),
                timezone: None,
                rate_limit_daily: None,
                invitations_per_day: None,
                invitations_per_week: None,
                provider_account_id: None,
            }],
        }
    }
}

/// Loads `DIR/agents.yaml` (if present) over the defaults, then `SALESDEPT_AGENTS__*` variables, and
/// validates every key.
pub fn load_agents(dir: &Path) -> Result<AgentsConfig, ConfigError> {
    let file = dir.join("agents.yaml");
    let shown = file.display().to_string();
    let mut figment = Figment::from(figment::providers::Serialized::defaults(
        AgentsConfig::default(),
    ));
    if file.exists() {
        let text = std::fs::read_to_string(&file).map_err(|error| ConfigError::Read {
            file: shown.clone(),
            message: error.to_string(),
        })?;
        figment = figment.merge(Yaml::string(&interpolate(&text, &shown)?));
    }
    let config: AgentsConfig = figment
        .merge(Env::prefixed("SALESDEPT_AGENTS__").split("__"))
        .extract()
        .map_err(|error| ConfigError::Parse {
            file: shown.clone(),
            message: error.to_string(),
        })?;
    config.validate(&shown)?;
    Ok(config)
}

/// Loads `DIR/llm.yaml` (with `${VAR}` expanded) and checks it; None when there is no such
/// file, which means the rules engine for every agent.
pub fn load_llm(dir: &Path) -> Result<Option<LlmConfig>, ConfigError> {
    let file = dir.join("llm.yaml");
    let shown = file.display().to_string();
    if !file.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&file).map_err(|error| ConfigError::Read {
        file: shown.clone(),
        message: error.to_string(),
    })?;
    let config: LlmConfig =
        serde_yaml::from_str(&interpolate(&text, &shown)?).map_err(|error| ConfigError::Parse {
            file: shown.clone(),
            message: error.to_string(),
        })?;
    config.validate().map_err(|error| ConfigError::Parse {
        file: shown,
        message: error.to_string(),
    })?;
    Ok(Some(config))
}

/// Expands `${VAR}` from the environment; a missing variable is an error naming it. Comment
/// lines are left as they are, so documentation may mention `${VAR}`.
pub fn interpolate(text: &str, file: &str) -> Result<String, ConfigError> {
    let mut expanded = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            expanded.push_str(line);
            continue;
        }
        let line = shellexpand::env_with_context(line, |name: &str| match std::env::var(name) {
            Ok(value) => Ok(Some(value)),
            Err(_) => Err(name.to_owned()),
        })
        .map_err(|error| ConfigError::MissingVariable {
            file: file.to_owned(),
            variable: error.cause,
        })?;
        expanded.push_str(&line);
    }
    Ok(expanded)
}

/// The most messages a day a sending account may be configured to send: LinkedIn restricts
/// accounts that send more (its limits are not published; this is the usual ceiling).
pub const LINKEDIN_MAX_MESSAGES_PER_DAY: u32 = 150;

/// The most connection invitations a week LinkedIn lets an account send.
pub const LINKEDIN_MAX_INVITATIONS_PER_WEEK: u32 = 200;

fn parse_time(value: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(value, "%H:%M").map_err(|_| format!("{value:?} is not a time HH:MM"))
}

fn parse_zone(value: &str) -> Result<chrono_tz::Tz, String> {
    value
        .parse::<chrono_tz::Tz>()
        .map_err(|_| format!("{value:?} is not an IANA time zone such as Europe/Berlin"))
}

impl AgentsConfig {
    /// Checks every key; the first problem is reported with its key and file.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            file: file.to_owned(),
            key: key.to_owned(),
            message,
        };
        let fraction = |key: &str, value: f64| {
            (0.0..=1.0)
                .contains(&value)
                .then_some(())
                .ok_or_else(|| invalid(key, format!("{value} must be between 0 and 1")))
        };
        parse_zone(&self.timezone).map_err(|m| invalid("timezone", m))?;

        let manager = &self.sales_manager;
        parse_time(&manager.coordination_time)
            .map_err(|m| invalid("sales_manager.coordination_time", m))?;
        parse_time(&manager.report_time).map_err(|m| invalid("sales_manager.report_time", m))?;
        if manager.coordination_interval_minutes == 0 {
            return Err(invalid(
                "sales_manager.coordination_interval_minutes",
                "must be at least 1".into(),
            ));
        }
        if manager.daily_allocation_min > manager.daily_allocation_max {
            return Err(invalid(
                "sales_manager.daily_allocation_min",
                format!(
                    "{} is above daily_allocation_max {}",
                    manager.daily_allocation_min, manager.daily_allocation_max
                ),
            ));
        }
        if !(1.0..=10.0).contains(&manager.priority_quality_score) {
            return Err(invalid(
                "sales_manager.priority_quality_score",
                "must be between 1 and 10".into(),
            ));
        }
        fraction("sales_manager.speaker_share", manager.speaker_share)?;
        fraction("sales_manager.reply_rate_floor", manager.reply_rate_floor)?;
        if !matches!(
            manager.allocation_strategy.as_str(),
            "quality_priority" | "balanced"
        ) {
            return Err(invalid(
                "sales_manager.allocation_strategy",
                format!(
                    "{:?} must be quality_priority or balanced",
                    manager.allocation_strategy
                ),
            ));
        }
        for (index, email) in manager.team_emails.iter().enumerate() {
            if !email.contains('@') || email.trim() != email {
                return Err(invalid(
                    &format!("sales_manager.team_emails[{index}]"),
                    format!("{email:?} is not an email address"),
                ));
            }
        }

        let finder = &self.lead_finder;
        if !(1.0..=10.0).contains(&finder.quality_threshold) {
            return Err(invalid(
                "lead_finder.quality_threshold",
                "must be between 1 and 10".into(),
            ));
        }
        fraction(
            "lead_finder.review_confidence_threshold",
            finder.review_confidence_threshold,
        )?;
        if finder.max_leads_per_day == 0 {
            return Err(invalid(
                "lead_finder.max_leads_per_day",
                "must be at least 1".into(),
            ));
        }
        if finder.search_interval_hours == 0 {
            return Err(invalid(
                "lead_finder.search_interval_hours",
                "must be at least 1".into(),
            ));
        }
        if !matches!(
            finder.linkedin_service.as_str(),
            "sandbox" | "unipile" | "gojiberry" | "dripify"
        ) {
            return Err(invalid(
                "lead_finder.linkedin_service",
                format!(
                    "{:?} must be sandbox, unipile, gojiberry or dripify",
                    finder.linkedin_service
                ),
            ));
        }

        let outreach = &self.outreach;
        if !matches!(
            outreach.message_generation_mode.as_str(),
            "llm_enhanced" | "template_based"
        ) {
            return Err(invalid(
                "outreach.message_generation_mode",
                format!(
                    "{:?} must be llm_enhanced or template_based",
                    outreach.message_generation_mode
                ),
            ));
        }
        let daily_messages = |key: &str, value: u32| {
            if value == 0 || value > LINKEDIN_MAX_MESSAGES_PER_DAY {
                Err(invalid(
                    key,
                    format!(
                        "{value} must be from 1 to {LINKEDIN_MAX_MESSAGES_PER_DAY} \
                         (LinkedIn restricts accounts that send more)"
                    ),
                ))
            } else {
                Ok(())
            }
        };
        let invitations = |key: &str, per_day: u32, per_week: u32| {
            if per_week > LINKEDIN_MAX_INVITATIONS_PER_WEEK {
                Err(invalid(
                    &key.replace("per_day", "per_week"),
                    format!(
                        "{per_week} is above LinkedIn's {LINKEDIN_MAX_INVITATIONS_PER_WEEK} \
                         invitations a week"
                    ),
                ))
            } else if per_day > per_week {
                Err(invalid(key, "is above invitations_per_week".into()))
            } else {
                Ok(())
            }
        };
        daily_messages("outreach.rate_limit_daily", outreach.rate_limit_daily)?;
        if outreach.rate_limit_min_interval_minutes > outreach.rate_limit_max_interval_minutes {
            return Err(invalid(
                "outreach.rate_limit_min_interval_minutes",
                "is above rate_limit_max_interval_minutes".into(),
            ));
        }
        invitations(
            "outreach.invitations_per_day",
            outreach.invitations_per_day,
            outreach.invitations_per_week,
        )?;
        let start = parse_time(&outreach.working_hours_start)
            .map_err(|m| invalid("outreach.working_hours_start", m))?;
        let end = parse_time(&outreach.working_hours_end)
            .map_err(|m| invalid("outreach.working_hours_end", m))?;
        if start >= end {
            return Err(invalid(
                "outreach.working_hours_start",
                "must be before working_hours_end".into(),
            ));
        }
        if outreach.working_days.is_empty() {
            return Err(invalid(
                "outreach.working_days",
                "must name at least one day".into(),
            ));
        }
        for (index, day) in outreach.working_days.iter().enumerate() {
            if day.parse::<chrono::Weekday>().is_err() {
                return Err(invalid(
                    &format!("outreach.working_days[{index}]"),
                    format!("{day:?} is not a day name such as Mon"),
                ));
            }
        }
        if outreach.follow_up_days.len() < outreach.max_follow_ups as usize {
            return Err(invalid(
                "outreach.follow_up_days",
                format!(
                    "names {} delays for max_follow_ups {}",
                    outreach.follow_up_days.len(),
                    outreach.max_follow_ups
                ),
            ));
        }
        if outreach
            .follow_up_days
            .windows(2)
            .any(|pair| pair[0] >= pair[1])
            || outreach.follow_up_days.first() == Some(&0)
        {
            return Err(invalid(
                "outreach.follow_up_days",
                "must be increasing numbers of days above 0".into(),
            ));
        }
        fraction(
            "outreach.draft_confidence_threshold",
            outreach.draft_confidence_threshold,
        )?;
        if outreach.accounts.is_empty() {
            return Err(invalid(
                "outreach.accounts",
                "must list at least one sending account".into(),
            ));
        }
        let mut ids = BTreeSet::new();
        for (index, account) in outreach.accounts.iter().enumerate() {
            let key = format!("outreach.accounts[{index}]");
            salesdept_events::domain::AccountId::parse(&account.id)
                .map_err(|error| invalid(&format!("{key}.id"), error.to_string()))?;
            if !ids.insert(account.id.as_str()) {
                return Err(invalid(
                    &format!("{key}.id"),
                    format!("{:?} is listed twice", account.id),
                ));
            }
            if let Some(zone) = &account.timezone {
                parse_zone(zone).map_err(|m| invalid(&format!("{key}.timezone"), m))?;
            }
            if let Some(daily) = account.rate_limit_daily {
                daily_messages(&format!("{key}.rate_limit_daily"), daily)?;
            }
            invitations(
                &format!("{key}.invitations_per_day"),
                account
                    .invitations_per_day
                    .unwrap_or(outreach.invitations_per_day),
                account
                    .invitations_per_week
                    .unwrap_or(outreach.invitations_per_week),
            )?;
            if finder.linkedin_service == "unipile"
                && account
                    .provider_account_id
                    .as_deref()
                    .is_none_or(|id| id.trim().is_empty())
            {
                return Err(invalid(
                    &format!("{key}.provider_account_id"),
                    "must name the Unipile account for lead_finder.linkedin_service unipile".into(),
                ));
            }
        }
        self.sheet.validate(file)?;
        self.mail.validate(file)?;
        self.linkedin.validate(file, &finder.linkedin_service)?;
        for (index, token) in self.api.tokens.iter().enumerate() {
            let key = format!("api.tokens[{index}]");
            if token.user.trim().is_empty() || token.user.trim() != token.user {
                return Err(invalid(&format!("{key}.user"), "must name the user".into()));
            }
            let hash = match (&token.token_sha256, &token.token) {
                (Some(hash), None) | (None, Some(hash)) => hash,
                _ => {
                    return Err(invalid(
                        &key,
                        "give exactly one of token_sha256 and token".into(),
                    ));
                }
            };
            if self.api.tokens[..index]
                .iter()
                .any(|other| other.token_sha256.as_ref().or(other.token.as_ref()) == Some(hash))
            {
                return Err(invalid(&key, "the same token is listed twice".into()));
            }
        }
        Ok(())
    }
}

impl SheetConfig {
    /// Checks the `sheet:` keys; a relative key file is taken from the working directory.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            file: file.to_owned(),
            key: format!("sheet.{key}"),
            message,
        };
        if self.sync_interval_seconds == 0 {
            return Err(invalid(
                "sync_interval_seconds",
                "must be at least 1".into(),
            ));
        }
        if self.request_timeout_seconds == 0 {
            return Err(invalid(
                "request_timeout_seconds",
                "must be at least 1".into(),
            ));
        }
        if self.max_attempts == 0 {
            return Err(invalid("max_attempts", "must be at least 1".into()));
        }
        match self.provider.as_str() {
            "csv" => {
                if self.csv_path.trim().is_empty() {
                    return Err(invalid("csv_path", "must name a file".into()));
                }
            }
            "google" => {
                let id = self.spreadsheet_id.trim();
                if id.is_empty() {
                    return Err(invalid(
                        "spreadsheet_id",
                        "must be set for provider google (the id in the spreadsheet's URL)".into(),
                    ));
                }
                if !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(invalid(
                        "spreadsheet_id",
                        format!("{id:?} is not a spreadsheet id (letters, digits, - and _)"),
                    ));
                }
                if self.sheet_name.trim().is_empty() {
                    return Err(invalid("sheet_name", "must name the tab".into()));
                }
                let key_file = self.service_account_key_file.trim();
                if key_file.is_empty() {
                    return Err(invalid(
                        "service_account_key_file",
                        "must be set for provider google".into(),
                    ));
                }
                if !Path::new(key_file).is_file() {
                    return Err(invalid(
                        "service_account_key_file",
                        format!("{key_file} is not a readable file"),
                    ));
                }
                let base = self.api_base_url.trim();
                if !(base.is_empty() || base.starts_with("https://") || base.starts_with("http://"))
                {
                    return Err(invalid(
                        "api_base_url",
                        format!("{base:?} is not an http(s) URL"),
                    ));
                }
            }
            other => {
                return Err(invalid(
                    "provider",
                    format!("{other:?} must be csv or google"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, yaml: &str) {
        std::fs::write(dir.join("agents.yaml"), yaml).unwrap();
    }

    #[test]
    fn no_configuration_at_all_gives_the_documented_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let config = load_agents(dir.path()).unwrap();
        assert_eq!(config, AgentsConfig::default());
        assert_eq!(config.outreach.rate_limit_daily, 45);
        assert_eq!(config.sales_manager.report_time, "09:15");
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"));
        let config = load_agents(dir).unwrap();
        assert_eq!(config.outreach.accounts[0].id, "primary");
        assert_eq!(config.sheet.provider, "csv");
    }

    #[test]
    #[allow(
        clippy::result_large_err,
        reason = "figment's Jail fixes the closure's error type"
    )]
    fn the_production_example_config_is_valid_and_keeps_its_secrets() {
        let dir = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/production"
        ));
        let variables = [
            ("UNIPILE_PRIMARY_ACCOUNT_ID", "acc-1"),
            ("UNIPILE_RESERVE_ACCOUNT_ID", "acc-2"),
            ("SHEET_ID", "sheet-1"),
            ("SMTP_PASSWORD", "smtp-secret-8812"),
            ("UNIPILE_API_KEY", "unipile-secret-7781"),
            ("UNIPILE_DSN", "api1.unipile.com:13111"),
            ("LINKEDIN_WEBHOOK_SECRET", "webhook-secret-3321"),
            ("API_TOKEN_OPS", "ops-token-0123456789abcdef"),
            ("API_TOKEN_ADMIN", "admin-token-0123456789abcdef"),
        ];
        figment::Jail::expect_with(|jail| {
            for (name, value) in variables {
                jail.set_env(name, value);
            }
            // The service account's key file is checked to exist; stand one in.
            let key = jail.directory().join("service-account.json");
            std::fs::write(&key, "{}").unwrap();
            let text = std::fs::read_to_string(dir.join("agents.yaml"))
                .unwrap()
                .replace("/etc/salesdept/service-account.json", key.to_str().unwrap());
            let copy = jail.directory().join("production");
            std::fs::create_dir_all(&copy).unwrap();
            std::fs::write(copy.join("agents.yaml"), text).unwrap();
            let config = load_agents(&copy).unwrap();
            assert_eq!(config.lead_finder.linkedin_service, "unipile");
            assert_eq!(config.mail.provider, "smtp");
            assert_eq!(config.sheet.provider, "google");
            assert_eq!(
                config.outreach.accounts[1].provider_account_id.as_deref(),
                Some("acc-2")
            );
            let shown = format!("{config:?}");
            for (_, value) in &variables[3..7] {
                assert!(!shown.contains(value), "a secret in Debug");
            }
            jail.set_env("OPENAI_API_KEY", "sk-openai-secret");
            let llm = load_llm(dir).unwrap().expect("llm.yaml");
            assert!(llm.providers.contains_key("openai"));
            Ok(())
        });
    }

    #[test]
    fn a_google_sheet_configuration_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.json");
        std::fs::write(&key, "{}").unwrap();
        write(
            dir.path(),
            &format!(
                "sheet:\n  provider: google\n  spreadsheet_id: 1AbC-d_9\n  sheet_name: Pipeline\n  service_account_key_file: {}\n  sync_interval_seconds: 120\n",
                key.display()
            ),
        );
        let config = load_agents(dir.path()).unwrap();
        assert_eq!(config.sheet.provider, "google");
        assert_eq!(config.sheet.sheet_name, "Pipeline");
        assert_eq!(config.sheet.sync_interval_seconds, 120);
        assert_eq!(
            config.sheet.max_attempts, 5,
            "other keys keep their defaults"
        );
    }

    #[test]
    #[allow(
        clippy::result_large_err,
        reason = "figment's Jail fixes the closure's error type"
    )]
    fn files_override_defaults_variables_interpolate_and_the_environment_wins() {
        // The jail gives the closure its own working directory and restores the environment.
        figment::Jail::expect_with(|jail| {
            jail.set_env("REPORT_TIME_FOR_TEST", "10:30");
            jail.set_env("SALESDEPT_AGENTS__OUTREACH__INVITATIONS_PER_DAY", "12");
            jail.create_file(
                "agents.yaml",
                "sales_manager:\n  report_time: \"${REPORT_TIME_FOR_TEST}\"\noutreach:\n  rate_limit_daily: 30\n  invitations_per_day: 15\n",
            )?;
            let config = load_agents(Path::new(".")).map_err(|error| error.to_string())?;
            assert_eq!(config.sales_manager.report_time, "10:30");
            assert_eq!(config.outreach.rate_limit_daily, 30);
            assert_eq!(
                config.outreach.invitations_per_day, 12,
                "the environment overrides the file"
            );
            assert_eq!(
                config.outreach.rate_limit_min_interval_minutes, 5,
                "other keys keep their defaults"
            );
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_key_and_the_file() {
        let cases = [
            (
                "outreach:\n  rate_limit_min_interval_minutes: 20\n",
                "outreach.rate_limit_min_interval_minutes",
            ),
            (
                "outreach:\n  working_hours_start: \"9am\"\n",
                "outreach.working_hours_start",
            ),
            ("timezone: Mars/Olympus\n", "timezone"),
            (
                "outreach:\n  rate_limit_daily: 0\n",
                "outreach.rate_limit_daily",
            ),
            (
                "outreach:\n  rate_limit_daily: 151\n",
                "outreach.rate_limit_daily",
            ),
            (
                "outreach:\n  accounts: [{id: a, rate_limit_daily: 500}]\n",
                "outreach.accounts[0].rate_limit_daily",
            ),
            (
                "outreach:\n  invitations_per_week: 500\n",
                "outreach.invitations_per_week",
            ),
            (
                "outreach:\n  accounts: [{id: a, invitations_per_day: 150}]\n",
                "outreach.accounts[0].invitations_per_day",
            ),
            (
                "lead_finder:\n  max_leads_per_day: 0\n",
                "lead_finder.max_leads_per_day",
            ),
            (
                "sales_manager:\n  speaker_share: 1.5\n",
                "sales_manager.speaker_share",
            ),
            (
                "outreach:\n  accounts: [{id: Primary}]\n",
                "outreach.accounts[0].id",
            ),
            (
                "outreach:\n  accounts: [{id: a}, {id: a}]\n",
                "outreach.accounts[1].id",
            ),
            (
                "outreach:\n  working_days: [Mon, Funday]\n",
                "outreach.working_days[1]",
            ),
            (
                "lead_finder:\n  linkedin_service: myspace\n",
                "lead_finder.linkedin_service",
            ),
            (
                "outreach:\n  message_generation_mode: yolo\n",
                "outreach.message_generation_mode",
            ),
            ("sheet:\n  provider: excel\n", "sheet.provider"),
            ("mail:\n  provider: pigeon\n", "mail.provider"),
            ("mail:\n  from: nobody\n", "mail.from"),
            ("mail:\n  provider: smtp\n", "mail.smtp_host"),
            (
                "mail:\n  provider: smtp\n  smtp_host: mx\n  smtp_tls: maybe\n",
                "mail.smtp_tls",
            ),
            (
                "mail:\n  provider: smtp\n  smtp_host: mx\n  smtp_password: hunter2\n",
                "mail.smtp_username",
            ),
            (
                "lead_finder:\n  linkedin_service: unipile\noutreach:\n  accounts: [{id: primary}]\n",
                "outreach.accounts[0].provider_account_id",
            ),
            (
                "lead_finder:\n  linkedin_service: unipile\noutreach:\n  accounts: [{id: primary, provider_account_id: x}]\n",
                "linkedin.api_key",
            ),
            (
                "lead_finder:\n  linkedin_service: unipile\noutreach:\n  accounts: [{id: primary, provider_account_id: x}]\nlinkedin:\n  api_key: k\n",
                "linkedin.unipile_dsn",
            ),
            (
                "lead_finder:\n  linkedin_service: gojiberry\nlinkedin:\n  api_key: k\n",
                "linkedin.gojiberry_campaign_list_id",
            ),
            (
                "linkedin:\n  api_base_url: not a url\n",
                "linkedin.api_base_url",
            ),
            (
                "linkedin:\n  request_timeout_seconds: 0\n",
                "linkedin.request_timeout_seconds",
            ),
            (
                "sheet:\n  provider: google\n  service_account_key_file: /dev/null\n",
                "sheet.spreadsheet_id",
            ),
            (
                "sheet:\n  provider: google\n  spreadsheet_id: 1AbC\n",
                "sheet.service_account_key_file",
            ),
            (
                "sheet:\n  provider: google\n  spreadsheet_id: 1AbC\n  service_account_key_file: /surely/not/here.json\n",
                "sheet.service_account_key_file",
            ),
            (
                "sheet:\n  provider: google\n  spreadsheet_id: \"a/b\"\n  service_account_key_file: /dev/null\n",
                "sheet.spreadsheet_id",
            ),
            (
                "sheet:\n  sync_interval_seconds: 0\n",
                "sheet.sync_interval_seconds",
            ),
            ("sheet:\n  csv_path: \"\"\n", "sheet.csv_path"),
        ];
        for (yaml, key) in cases {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), yaml);
            let message = load_agents(dir.path()).unwrap_err().to_string();
            assert!(
                message.contains(key) && message.contains("agents.yaml"),
                "{yaml:?}: {message}"
            );
        }
    }

    #[test]
    #[allow(
        clippy::result_large_err,
        reason = "figment's Jail fixes the closure's error type"
    )]
    fn api_tokens_are_read_hashed_and_never_kept() {
        let hash = crate::http::TokenHash::of("viewer-token-0123456789");
        figment::Jail::expect_with(|jail| {
            jail.set_env("SALESDEPT_TEST_API_TOKEN", "operator-token-0123456789");
            jail.create_file(
                "agents.yaml",
                &format!(
                    "api:\n  tokens:\n    - {{user: ana, role: operator, token: \"${{SALESDEPT_TEST_API_TOKEN}}\"}}\n    - {{user: bo, role: viewer, token_sha256: {}}}\n",
                    hash.to_hex()
                ),
            )?;
            let config = load_agents(Path::new(".")).map_err(|error| error.to_string())?;
            let debug = format!("{config:?}");
            assert!(!debug.contains("operator-token-0123456789"), "{debug}");
            assert!(!debug.contains(&hash.to_hex()), "{debug}");
            let printed = serde_yaml::to_string(&config).unwrap();
            assert!(!printed.contains("operator-token-0123456789"), "{printed}");
            let tokens = crate::http::ApiTokens::from_config(&config.api);
            assert_eq!(
                tokens
                    .authenticate("operator-token-0123456789")
                    .unwrap()
                    .name,
                "ana"
            );
            assert_eq!(
                tokens.authenticate("viewer-token-0123456789").unwrap().role,
                crate::http::Role::Viewer
            );
            assert!(tokens.authenticate("viewer-token-012345678").is_none());
            Ok(())
        });
    }

    #[test]
    fn bad_api_tokens_name_the_key_and_never_echo_the_token() {
        for (yaml, key) in [
            (
                "api:\n  tokens:\n    - {user: ana, role: root, token: abcdefghijklmnopq}\n",
                "role",
            ),
            (
                "api:\n  tokens:\n    - {user: ana, role: viewer, token: short}\n",
                "token",
            ),
            (
                "api:\n  tokens:\n    - {user: ana, role: viewer, token: 12345678901234567890}\n",
                "token",
            ),
            (
                "api:\n  tokens:\n    - {user: ana, role: viewer, token_sha256: abcdefghijklmnopq}\n",
                "token_sha256",
            ),
            (
                "api:\n  tokens:\n    - {user: ana, role: viewer}\n",
                "api.tokens[0]",
            ),
            (
                "api:\n  tokens:\n    - {user: \" \", role: viewer, token: abcdefghijklmnopq}\n",
                "api.tokens[0].user",
            ),
            (
                "api:\n  tokens:\n    - {user: a, role: viewer, token: abcdefghijklmnopq}\n    - {user: b, role: admin, token: abcdefghijklmnopq}\n",
                "api.tokens[1]",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), yaml);
            let message = load_agents(dir.path()).unwrap_err().to_string();
            assert!(
                message.contains(key) && message.contains("agents.yaml"),
                "{yaml:?}: {message}"
            );
            assert!(
                !message.contains("abcdefghijklmnopq") && !message.contains("12345678901234567890"),
                "a token reached the message: {message}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused() {
        for (yaml, expected) in [
            ("outreach:\n  rate_limit_dialy: 30\n", "rate_limit_dialy"),
            ("outreach:\n  rate_limit_daily: lots\n", "rate_limit_daily"),
            ("outreach: [1, 2\n", "agents.yaml"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), yaml);
            let message = load_agents(dir.path()).unwrap_err().to_string();
            assert!(message.contains(expected), "{yaml:?}: {message}");
        }
    }

    #[test]
    fn a_missing_variable_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "sales_manager:\n  report_time: ${SALESDEPT_SURELY_UNSET_VARIABLE_991}\n",
        );
        let message = load_agents(dir.path()).unwrap_err().to_string();
        assert!(
            message.contains("SALESDEPT_SURELY_UNSET_VARIABLE_991"),
            "{message}"
        );
    }
}
