//! The SMTP mail adapter: lettre's pooled asynchronous transport over rustls.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use super::message::build_message;
use super::{Delivery, MailError, MailPort, OutgoingMail, SentMail};

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTlsMode {
    /// Plain text (a relay on the same host or network only); default port 25.
    None,
    /// Plain connect, then STARTTLS, which is required: a server that does not offer it is
    /// an error, never a silent downgrade. Default port 587.
    StartTls,
    /// TLS from the first byte ("SMTPS"); default port 465.
    Implicit,
}

impl SmtpTlsMode {
    fn default_port(self) -> u16 {
        match self {
            Self::None => 25,
            Self::StartTls => 587,
            Self::Implicit => 465,
        }
    }
}

/// Everything the SMTP adapter needs; the server crate fills it from configuration.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    /// `None` takes the TLS mode's usual port.
    pub port: Option<u16>,
    pub tls: SmtpTlsMode,
    /// The user name and password for AUTH (PLAIN or LOGIN), if the server needs them.
    pub credentials: Option<(String, SecretString)>,
    /// Credentials over an unencrypted connection are refused unless this is set (for a
    /// relay on the loopback interface, say).
    pub allow_plaintext_auth: bool,
    /// A PEM root certificate to trust besides the public web roots (a private CA).
    pub extra_root_certificate_pem: Option<String>,
    /// The name sent with EHLO; `None` sends this machine's host name.
    pub hello_name: Option<String>,
    /// Bounds the TCP connect and the TLS handshake.
    pub connect_timeout: Duration,
    /// Bounds one whole send, from taking a connection to the server's final answer.
    pub send_timeout: Duration,
    /// The most pooled connections kept open to the server.
    pub pool_max_size: u32,
    /// How long a pooled connection may stay idle before it is closed.
    pub pool_idle_timeout: Duration,
}

impl SmtpConfig {
    /// A configuration with the usual timeouts (10 s connect, 30 s send), a pool of four
    /// connections closed after 60 s idle, and no credentials.
    pub fn new(host: impl Into<String>, tls: SmtpTlsMode) -> Self {
        Self {
            host: host.into(),
            port: None,
            tls,
            credentials: None,
            allow_plaintext_auth: false,
            extra_root_certificate_pem: None,
            hello_name: None,
            connect_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            pool_max_size: 4,
            pool_idle_timeout: Duration::from_secs(60),
        }
    }

    /// The port actually used.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(self.tls.default_port())
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.effective_port())
            .field("tls", &self.tls)
            .field(
                "username",
                &self.credentials.as_ref().map(|(user, _)| user.as_str()),
            )
            .field("allow_plaintext_auth", &self.allow_plaintext_auth)
            .field(
                "extra_root_certificate",
                &self.extra_root_certificate_pem.is_some(),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("send_timeout", &self.send_timeout)
            .field("pool_max_size", &self.pool_max_size)
            .finish_non_exhaustive()
    }
}

/// Relays mail through an SMTP server over a pool of connections.
///
/// A send cut off by the send timeout leaves its connection mid-transaction, and lettre's
/// pool would take it back as if it were healthy (the next send would then wait on a server
/// that is still busy with the old one); so a timeout replaces the whole pool with a fresh
/// one from `builder`, and the next send opens a new connection.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: Arc<RwLock<AsyncSmtpTransport<Tokio1Executor>>>,
    builder: AsyncSmtpTransportBuilder,
    host: String,
    port: u16,
    tls: SmtpTlsMode,
    send_timeout: Duration,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("send_timeout", &self.send_timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// Builds the transport; no connection is made until the first send. Must be called
    /// inside a Tokio runtime, which runs the connection pool's upkeep.
    pub fn new(config: &SmtpConfig) -> Result<Self, MailError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(MailError::Config(
                "the SMTP connection pool needs a Tokio runtime".to_owned(),
            ));
        }
        if config.credentials.is_some()
            && config.tls == SmtpTlsMode::None
            && !config.allow_plaintext_auth
        {
            return Err(MailError::Config(
                "SMTP credentials over an unencrypted connection: use STARTTLS or implicit TLS, \
                 or allow plaintext authentication explicitly"
                    .to_owned(),
            ));
        }
        let port = config.effective_port();
        let tls = match config.tls {
            SmtpTlsMode::None => Tls::None,
            SmtpTlsMode::StartTls => Tls::Required(tls_parameters(config)?),
            SmtpTlsMode::Implicit => Tls::Wrapper(tls_parameters(config)?),
        };
        let pool = PoolConfig::new()
            .max_size(config.pool_max_size.max(1))
            .idle_timeout(config.pool_idle_timeout);
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(port)
            .tls(tls)
            .timeout(Some(config.connect_timeout))
            .pool_config(pool);
        if let Some(name) = &config.hello_name {
            builder = builder.hello_name(lettre::transport::smtp::extension::ClientId::Domain(
                name.clone(),
            ));
        }
        if let Some((user, password)) = &config.credentials {
            builder = builder
                .credentials(Credentials::new(
                    user.clone(),
                    password.expose_secret().to_owned(),
                ))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(Self {
            transport: Arc::new(RwLock::new(builder.clone().build())),
            builder,
            host: config.host.clone(),
            port,
            tls: config.tls,
            send_timeout: config.send_timeout,
        })
    }
}

impl SmtpMailer {
    /// Drops the pool (its parked connections are closed once the last send using it ends)
    /// for a fresh, empty one.
    fn replace_pool(&self) {
        tracing::warn!(host = %self.host, "SMTP send timed out: its connection pool is replaced");
        let fresh = self.builder.clone().build();
        *self
            .transport
            .write()
            .unwrap_or_else(PoisonError::into_inner) = fresh;
    }
}

fn tls_parameters(config: &SmtpConfig) -> Result<TlsParameters, MailError> {
    let mut builder = TlsParameters::builder(config.host.clone());
    if let Some(pem) = &config.extra_root_certificate_pem {
        // lettre accepts a PEM without any certificate in it; that is a mistake here.
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(MailError::Config(
                "extra root certificate holds no PEM certificate".to_owned(),
            ));
        }
        let certificate = Certificate::from_pem(pem.as_bytes()).map_err(|error| {
            MailError::Config(format!("extra root certificate is not usable PEM: {error}"))
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|error| MailError::Config(format!("TLS parameters: {error}")))
}

/// Maps lettre's error to ours by its kind, never by its text.
fn classify(error: lettre::transport::smtp::Error, timeout: Duration) -> MailError {
    if let Some(code) = error.status() {
        let code = u16::from(code);
        // The source of a 4xx/5xx error is the server's own explanation.
        let message = std::error::Error::source(&error)
            .map(ToString::to_string)
            .unwrap_or_else(|| "no explanation given".to_owned());
        if error.is_transient() {
            return MailError::Transient { code, message };
        }
        if error.is_permanent() {
            return MailError::Permanent { code, message };
        }
    }
    if error.is_timeout() {
        return MailError::Timeout(timeout);
    }
    if error.is_tls() {
        return MailError::Tls(error.to_string());
    }
    MailError::Connection(error.to_string())
}

#[async_trait]
impl MailPort for SmtpMailer {
    #[tracing::instrument(
        skip_all,
        fields(
            provider = "smtp",
            message_id = %mail.message_id,
            host = %self.host,
            port = self.port,
            smtp.response_code = tracing::field::Empty
        ),
        err
    )]
    async fn send(&self, mail: &OutgoingMail) -> Result<SentMail, MailError> {
        let message = build_message(mail)?;
        let transport = self
            .transport
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Ok(sent) = tokio::time::timeout(self.send_timeout, transport.send(message)).await
        else {
            self.replace_pool();
            return Err(MailError::Timeout(self.send_timeout));
        };
        let response = sent.map_err(|error| classify(error, self.send_timeout))?;
        tracing::Span::current().record("smtp.response_code", u16::from(response.code()));
        Ok(SentMail {
            message_id: mail.message_id.clone(),
            delivery: Delivery::Relayed {
                code: u16::from(response.code()),
                response: response.message().collect::<Vec<_>>().join(" "),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn given_credentials_without_tls_when_built_then_it_is_refused_unless_allowed() {
        let mut config = SmtpConfig::new("127.0.0.1", SmtpTlsMode::None);
        config.credentials = Some(("user".to_owned(), SecretString::from("hunter2")));
        assert!(matches!(
            SmtpMailer::new(&config),
            Err(MailError::Config(_))
        ));
        config.allow_plaintext_auth = true;
        assert!(SmtpMailer::new(&config).is_ok());
    }

    #[tokio::test]
    async fn given_a_password_when_the_config_is_debug_printed_then_it_is_absent() {
        let mut config = SmtpConfig::new("smtp.example.com", SmtpTlsMode::StartTls);
        config.credentials = Some(("user".to_owned(), SecretString::from("hunter2")));
        let printed = format!("{config:?} {:?}", SmtpMailer::new(&config).unwrap());
        assert!(printed.contains("user"));
        assert!(!printed.contains("hunter2"));
        assert!(printed.contains("587"));
    }

    #[test]
    fn given_each_tls_mode_when_no_port_is_set_then_the_usual_port_is_used() {
        for (mode, port) in [
            (SmtpTlsMode::None, 25),
            (SmtpTlsMode::StartTls, 587),
            (SmtpTlsMode::Implicit, 465),
        ] {
            assert_eq!(SmtpConfig::new("h", mode).effective_port(), port);
        }
    }

    #[test]
    fn given_no_runtime_when_built_then_it_is_a_config_error_not_a_panic() {
        let config = SmtpConfig::new("127.0.0.1", SmtpTlsMode::None);
        assert!(matches!(
            SmtpMailer::new(&config),
            Err(MailError::Config(_))
        ));
    }

    #[tokio::test]
    async fn given_a_malformed_root_certificate_when_built_then_the_config_is_rejected() {
        let mut config = SmtpConfig::new("smtp.example.com", SmtpTlsMode::Implicit);
        config.extra_root_certificate_pem = Some("not a certificate".to_owned());
        assert!(matches!(
            SmtpMailer::new(&config),
            Err(MailError::Config(_))
        ));
    }
}
