//! The outside world's keys in `agents.yaml`: `mail:` (the file outbox or SMTP) and
//! `linkedin:` (the credentials of the provider `lead_finder.linkedin_service` names, and the
//! webhook secret). Secrets are [`ConfigSecret`]s: read from the file (usually as `${VAR}`) or
//! from `SALESDEPT_AGENTS__…` variables, never serialised, shown as `[REDACTED]`.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};

use super::ConfigError;

/// A configured secret (an API key, a password, a webhook secret).
#[derive(Clone)]
pub struct ConfigSecret(SecretString);

impl ConfigSecret {
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl fmt::Debug for ConfigSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl PartialEq for ConfigSecret {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(
            self.0
                .expose_secret()
                .as_bytes()
                .ct_eq(other.0.expose_secret().as_bytes()),
        )
    }
}

impl<'de> Deserialize<'de> for ConfigSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Self(SecretString::from(text)))
    }
}

/// Mail (`mail:`): hand-overs and the daily report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// `outbox` (.eml files in the data directory's `outbox/`, the default) or `smtp`.
    pub provider: String,
    /// The sender of every mail, e.g. `Sales Desk <sales@example.com>`.
    pub from: String,
    pub smtp_host: String,
    /// Empty: the TLS mode's usual port (587 starttls, 465 tls, 25 none).
    pub smtp_port: Option<u16>,
    /// `starttls` (required, never downgraded), `tls` (from the first byte) or `none`.
    pub smtp_tls: String,
    pub smtp_username: String,
    #[serde(skip_serializing)]
    pub smtp_password: Option<ConfigSecret>,
    /// Lets credentials cross an unencrypted connection (a relay on the loopback interface).
    pub smtp_allow_plaintext_auth: bool,
    /// Bounds one whole send.
    pub smtp_timeout_seconds: u64,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            provider: "outbox".into(),
            from: "salesdept <salesdept@localhost>".into(),
            smtp_host: String::new(),
            smtp_port: None,
            smtp_tls: "starttls".into(),
            smtp_username: String::new(),
            smtp_password: None,
            smtp_allow_plaintext_auth: false,
            smtp_timeout_seconds: 30,
        }
    }
}

/// The LinkedIn automation provider (`linkedin:`), used when `lead_finder.linkedin_service` is
/// not `sandbox`. Each sending account names its id at the provider in
/// `outreach.accounts[].provider_account_id` (Unipile).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkedInConfig {
    /// The provider's API key.
    #[serde(skip_serializing)]
    pub api_key: Option<ConfigSecret>,
    /// Unipile: the tenant's DSN, e.g. `api1.unipile.com:13111`.
    #[serde(skip_serializing)]
    pub unipile_dsn: Option<ConfigSecret>,
    /// Gojiberry: the provider's base URL; empty for the public API (for a proxy or a fake).
    pub api_base_url: String,
    /// Gojiberry: the list attached to the outreach campaign.
    pub gojiberry_campaign_list_id: u64,
    /// Gojiberry: the campaign step whose message is the invitation note.
    pub gojiberry_invitation_step: u32,
    /// Time allowed for one provider call.
    pub request_timeout_seconds: u64,
    /// The secret inbound webhooks must present (`X-Webhook-Secret` for Unipile, the last
    /// path segment for Dripify, an HMAC-SHA256 `X-Signature` for the generic shape). No
    /// secret: the webhook routes answer 404.
    #[serde(skip_serializing)]
    pub webhook_secret: Option<ConfigSecret>,
}

impl Default for LinkedInConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            unipile_dsn: None,
            api_base_url: String::new(),
            gojiberry_campaign_list_id: 0,
            gojiberry_invitation_step: 1,
            request_timeout_seconds: 20,
            webhook_secret: None,
        }
    }
}

impl MailConfig {
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            file: file.to_owned(),
            key: format!("mail.{key}"),
            message,
        };
        self.from
            .parse::<salesdept_agents::mail::Mailbox>()
            .map_err(|_| invalid("from", format!("{:?} is not a mailbox", self.from)))?;
        match self.provider.as_str() {
            "outbox" => Ok(()),
            "smtp" => {
                if self.smtp_host.trim().is_empty() {
                    return Err(invalid("smtp_host", "must be set for provider smtp".into()));
                }
                if !matches!(self.smtp_tls.as_str(), "starttls" | "tls" | "none") {
                    return Err(invalid(
                        "smtp_tls",
                        format!("{:?} must be starttls, tls or none", self.smtp_tls),
                    ));
                }
                if self.smtp_password.is_some() && self.smtp_username.trim().is_empty() {
                    return Err(invalid(
                        "smtp_username",
                        "must be set when smtp_password is".into(),
                    ));
                }
                if self.smtp_timeout_seconds == 0 {
                    return Err(invalid("smtp_timeout_seconds", "must be at least 1".into()));
                }
                Ok(())
            }
            other => Err(invalid(
                "provider",
                format!("{other:?} must be outbox or smtp"),
            )),
        }
    }
}

impl LinkedInConfig {
    /// Checks what `service` (`lead_finder.linkedin_service`) needs.
    pub fn validate(&self, file: &str, service: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            file: file.to_owned(),
            key: format!("linkedin.{key}"),
            message,
        };
        if self.request_timeout_seconds == 0 {
            return Err(invalid(
                "request_timeout_seconds",
                "must be at least 1".into(),
            ));
        }
        let base = self.api_base_url.trim();
        if !(base.is_empty() || url::Url::parse(base).is_ok_and(|url| url.has_host())) {
            return Err(invalid("api_base_url", format!("{base:?} is not a URL")));
        }
        let needs_key = || {
            if self.api_key.is_none() {
                Err(invalid(
                    "api_key",
                    format!("must be set for lead_finder.linkedin_service {service}"),
                ))
            } else {
                Ok(())
            }
        };
        match service {
            "unipile" => {
                needs_key()?;
                if self.unipile_dsn.is_none() {
                    return Err(invalid(
                        "unipile_dsn",
                        "must be set for lead_finder.linkedin_service unipile".into(),
                    ));
                }
            }
            "gojiberry" => {
                needs_key()?;
                if self.gojiberry_campaign_list_id == 0 {
                    return Err(invalid(
                        "gojiberry_campaign_list_id",
                        "must name the campaign's list for lead_finder.linkedin_service gojiberry"
                            .into(),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}
