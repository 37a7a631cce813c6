//! The SMTP adapter against an SMTP sink started by each test: a small tokio listener that
//! speaks enough SMTP (EHLO, STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT)
//! to record what it is sent, and can be told to refuse, hang or require TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mail_parser::{MessageParser, MimeHeaders};
use salesdept_agents::mail::{
    Delivery, MailError, MailPort, MessageId, OutgoingMail, SmtpConfig, SmtpMailer, SmtpTlsMode,
};
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// The sink
// ---------------------------------------------------------------------------------------

/// How the sink behaves.
#[derive(Clone, Default)]
struct Behaviour {
    /// The AUTH mechanisms advertised (e.g. "PLAIN LOGIN"); `None` advertises no AUTH.
    auth_mechanisms: Option<&'static str>,
    /// Answer every AUTH with this line instead of accepting it.
    auth_reply: Option<&'static str>,
    /// Offer STARTTLS with this acceptor.
    starttls: Option<TlsAcceptor>,
    /// Speak TLS from the first byte with this acceptor.
    implicit_tls: Option<TlsAcceptor>,
    /// Answer RCPT with this line instead of 250.
    rcpt_reply: Option<&'static str>,
    /// Answer the end of DATA with this line instead of 250.
    data_end_reply: Option<&'static str>,
    /// Never answer the end of DATA.
    hang_after_data: bool,
}

#[derive(Clone, Debug, Default)]
struct Received {
    ehlo: String,
    tls: bool,
    auth: Option<(String, String)>,
    mail_from: String,
    rcpt_to: Vec<String>,
    data: String,
}

struct Sink {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    connections: Arc<AtomicUsize>,
}

impl Sink {
    async fn start(behaviour: Behaviour) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (recorded, counted) = (received.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(tcp, behaviour.clone(), recorded.clone()));
            }
        });
        Sink {
            address,
            received,
            connections,
        }
    }

    async fn messages(&self) -> Vec<Received> {
        self.received.lock().await.clone()
    }
}

enum SessionEnd {
    Closed,
    StartTls,
}

async fn serve(tcp: TcpStream, behaviour: Behaviour, received: Arc<Mutex<Vec<Received>>>) {
    if let Some(acceptor) = behaviour.implicit_tls.clone() {
        let Ok(tls) = acceptor.accept(tcp).await else {
            return;
        };
        let mut stream = BufReader::new(tls);
        let _ = session(&mut stream, &behaviour, &received, true).await;
        return;
    }
    let mut stream = BufReader::new(tcp);
    if let Ok(SessionEnd::StartTls) = session(&mut stream, &behaviour, &received, false).await {
        let acceptor = behaviour.starttls.clone().expect("STARTTLS was offered");
        let Ok(tls) = acceptor.accept(stream.into_inner()).await else {
            return;
        };
        let mut stream = BufReader::new(tls);
        let _ = session_after_starttls(&mut stream, &behaviour, &received).await;
    }
}

async fn session_after_starttls<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    behaviour: &Behaviour,
    received: &Arc<Mutex<Vec<Received>>>,
) -> std::io::Result<SessionEnd> {
    // After STARTTLS the client starts over with EHLO, without a new greeting.
    commands(stream, behaviour, received, true).await
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    behaviour: &Behaviour,
    received: &Arc<Mutex<Vec<Received>>>,
    tls: bool,
) -> std::io::Result<SessionEnd> {
    reply(stream, "220 sink.test ESMTP ready").await?;
    commands(stream, behaviour, received, tls).await
}

async fn reply<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    line: &str,
) -> std::io::Result<()> {
    let writer = stream.get_mut();
    writer.write_all(line.as_bytes()).await?;
    writer.write_all(b"\r\n").await?;
    writer.flush().await
}

async fn read_line<S: AsyncRead + Unpin>(
    stream: &mut BufReader<S>,
) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if stream.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

fn decode(text: &str) -> String {
    String::from_utf8(BASE64.decode(text.trim()).unwrap()).unwrap()
}

async fn commands<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    behaviour: &Behaviour,
    received: &Arc<Mutex<Vec<Received>>>,
    tls: bool,
) -> std::io::Result<SessionEnd> {
    let mut current = Received {
        tls,
        ..Received::default()
    };
    while let Some(line) = read_line(stream).await? {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            current.ehlo = line[4..].trim().to_owned();
            let mut lines = vec!["250-sink.test".to_owned(), "250-8BITMIME".to_owned()];
            if let Some(mechanisms) = behaviour.auth_mechanisms {
                lines.push(format!("250-AUTH {mechanisms}"));
            }
            if behaviour.starttls.is_some() && !tls {
                lines.push("250-STARTTLS".to_owned());
            }
            lines.push("250 SMTPUTF8".to_owned());
            reply(stream, &lines.join("\r\n")).await?;
        } else if upper == "STARTTLS" {
            reply(stream, "220 2.0.0 go ahead").await?;
            return Ok(SessionEnd::StartTls);
        } else if upper.starts_with("AUTH PLAIN") {
            let initial = line[10..].trim().to_owned();
            let encoded = if initial.is_empty() {
                reply(stream, "334 ").await?;
                read_line(stream).await?.unwrap_or_default()
            } else {
                initial
            };
            let decoded = decode(&encoded);
            let mut parts = decoded.split('\0').skip(1);
            let user = parts.next().unwrap_or_default().to_owned();
            let password = parts.next().unwrap_or_default().to_owned();
            current.auth = Some((user, password));
            reply(stream, behaviour.auth_reply.unwrap_or("235 2.7.0 accepted")).await?;
        } else if upper.starts_with("AUTH LOGIN") {
            reply(stream, "334 VXNlcm5hbWU6").await?;
            let user = decode(&read_line(stream).await?.unwrap_or_default());
            reply(stream, "334 UGFzc3dvcmQ6").await?;
            let password = decode(&read_line(stream).await?.unwrap_or_default());
            current.auth = Some((user, password));
            reply(stream, behaviour.auth_reply.unwrap_or("235 2.7.0 accepted")).await?;
        } else if upper.starts_with("MAIL FROM:") {
            current.mail_from = line[10..].trim().to_owned();
            current.rcpt_to.clear();
            reply(stream, "250 2.1.0 ok").await?;
        } else if upper.starts_with("RCPT TO:") {
            current.rcpt_to.push(line[8..].trim().to_owned());
            reply(stream, behaviour.rcpt_reply.unwrap_or("250 2.1.5 ok")).await?;
        } else if upper == "DATA" {
            reply(stream, "354 end with <CRLF>.<CRLF>").await?;
            let mut data = String::new();
            while let Some(data_line) = read_line(stream).await? {
                if data_line == "." {
                    break;
                }
                let unstuffed = data_line.strip_prefix('.').unwrap_or(&data_line);
                data.push_str(unstuffed);
                data.push_str("\r\n");
            }
            current.data = data;
            if behaviour.hang_after_data {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            match behaviour.data_end_reply {
                Some(line) => reply(stream, line).await?,
                None => {
                    received.lock().await.push(current.clone());
                    reply(stream, "250 2.0.0 queued").await?;
                }
            }
        } else if upper == "RSET" || upper == "NOOP" {
            reply(stream, "250 2.0.0 ok").await?;
        } else if upper == "QUIT" {
            reply(stream, "221 2.0.0 bye").await?;
            return Ok(SessionEnd::Closed);
        } else {
            reply(stream, "502 5.5.2 command not implemented").await?;
        }
    }
    Ok(SessionEnd::Closed)
}

/// A throwaway CA and a leaf certificate for 127.0.0.1 signed by it (rustls refuses a
/// self-signed leaf that is itself a CA). Returns the acceptor and the CA's PEM.
fn throwaway_tls() -> (TlsAcceptor, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "salesdept test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    leaf_params.use_authority_key_identifier_extension = true;
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    (TlsAcceptor::from(Arc::new(config)), ca_cert.pem())
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn config_for(sink: &Sink, tls: SmtpTlsMode) -> SmtpConfig {
    let mut config = SmtpConfig::new("127.0.0.1", tls);
    config.port = Some(sink.address.port());
    config.hello_name = Some("salesdept.test".to_owned());
    config.connect_timeout = Duration::from_secs(5);
    config.send_timeout = Duration::from_secs(5);
    config
}

fn multipart_mail(event_id: Uuid) -> OutgoingMail {
    OutgoingMail {
        message_id: MessageId::for_event(event_id, "salesdept.test").unwrap(),
        from: "Sales Dept <sales@salesdept.test>".parse().unwrap(),
        to: vec![
            "Team <team@example.com>".parse().unwrap(),
            "boss@example.com".parse().unwrap(),
        ],
        subject: "Positive reply: Ada Lovelace (Speaker, Interested)".to_owned(),
        text: "Ada replied: yes, gladly.\nNext step: book a call.".to_owned(),
        html: Some("<p>Ada replied: <em>yes, gladly</em>.</p>".to_owned()),
    }
}

const PASSWORD: &str = "s3cr3t-p4ss";

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn given_a_multipart_mail_when_sent_then_the_sink_receives_it_with_its_message_id_and_both_parts()
 {
    let sink = Sink::start(Behaviour::default()).await;
    let mailer = SmtpMailer::new(&config_for(&sink, SmtpTlsMode::None)).unwrap();
    let event_id = Uuid::now_v7();

    let sent = mailer.send(&multipart_mail(event_id)).await.unwrap();

    assert_eq!(
        sent.message_id.as_str(),
        format!("{event_id}@salesdept.test")
    );
    assert!(
        matches!(sent.delivery, Delivery::Relayed { code: 250, .. }),
        "{sent:?}"
    );
    let messages = sink.messages().await;
    assert_eq!(messages.len(), 1);
    let received = &messages[0];
    assert_eq!(received.ehlo, "salesdept.test");
    assert_eq!(received.mail_from, "<sales@salesdept.test>");
    assert_eq!(
        received.rcpt_to,
        vec!["<team@example.com>", "<boss@example.com>"]
    );
    assert!(!received.tls);
    assert_eq!(received.auth, None);

    let parsed = MessageParser::default()
        .parse(received.data.as_bytes())
        .expect("a parsable message");
    assert_eq!(
        parsed.message_id(),
        Some(format!("{event_id}@salesdept.test").as_str())
    );
    assert_eq!(
        parsed.subject(),
        Some("Positive reply: Ada Lovelace (Speaker, Interested)")
    );
    assert!(
        parsed
            .content_type()
            .is_some_and(|ct| ct.ctype() == "multipart" && ct.subtype() == Some("alternative")),
        "{}",
        received.data
    );
    assert_eq!(
        parsed
            .body_text(0)
            .map(|text| text.replace("\r\n", "\n").trim_end().to_owned())
            .as_deref(),
        Some("Ada replied: yes, gladly.\nNext step: book a call.")
    );
    assert_eq!(
        parsed
            .body_html(0)
            .map(|html| html.replace("\r\n", "\n").trim_end().to_owned())
            .as_deref(),
        Some("<p>Ada replied: <em>yes, gladly</em>.</p>")
    );
}

#[tokio::test]
async fn given_auth_plain_or_login_when_sent_then_the_credentials_reach_the_sink() {
    for mechanisms in ["PLAIN LOGIN", "LOGIN"] {
        let sink = Sink::start(Behaviour {
            auth_mechanisms: Some(mechanisms),
            ..Behaviour::default()
        })
        .await;
        let mut config = config_for(&sink, SmtpTlsMode::None);
        config.credentials = Some(("mailer".to_owned(), SecretString::from(PASSWORD)));
        config.allow_plaintext_auth = true;
        let mailer = SmtpMailer::new(&config).unwrap();

        mailer.send(&multipart_mail(Uuid::now_v7())).await.unwrap();

        let messages = sink.messages().await;
        assert_eq!(messages.len(), 1, "{mechanisms}");
        assert_eq!(
            messages[0].auth,
            Some(("mailer".to_owned(), PASSWORD.to_owned())),
            "{mechanisms}"
        );
    }
}

#[tokio::test]
async fn given_rejected_credentials_when_sent_then_the_error_is_permanent_and_hides_the_password() {
    let sink = Sink::start(Behaviour {
        auth_mechanisms: Some("PLAIN"),
        auth_reply: Some("535 5.7.8 authentication credentials invalid"),
        ..Behaviour::default()
    })
    .await;
    let mut config = config_for(&sink, SmtpTlsMode::None);
    config.credentials = Some(("mailer".to_owned(), SecretString::from(PASSWORD)));
    config.allow_plaintext_auth = true;
    let mailer = SmtpMailer::new(&config).unwrap();

    let error = mailer
        .send(&multipart_mail(Uuid::now_v7()))
        .await
        .unwrap_err();

    assert!(
        matches!(error, MailError::Permanent { code: 535, .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains(PASSWORD), "{text}");
    }
    assert!(sink.messages().await.is_empty());
}

#[tokio::test]
async fn given_a_4xx_or_5xx_answer_when_sent_then_it_is_classified_transient_or_permanent() {
    let cases: [(Behaviour, u16, bool); 4] = [
        (
            Behaviour {
                rcpt_reply: Some("450 4.2.1 mailbox busy, try later"),
                ..Behaviour::default()
            },
            450,
            true,
        ),
        (
            Behaviour {
                rcpt_reply: Some("550 5.1.1 no such user"),
                ..Behaviour::default()
            },
            550,
            false,
        ),
        (
            Behaviour {
                data_end_reply: Some("451 4.3.0 local error, try again"),
                ..Behaviour::default()
            },
            451,
            true,
        ),
        (
            Behaviour {
                data_end_reply: Some("554 5.7.1 message refused"),
                ..Behaviour::default()
            },
            554,
            false,
        ),
    ];
    for (behaviour, expected_code, retryable) in cases {
        let sink = Sink::start(behaviour).await;
        let mailer = SmtpMailer::new(&config_for(&sink, SmtpTlsMode::None)).unwrap();

        let error = mailer
            .send(&multipart_mail(Uuid::now_v7()))
            .await
            .unwrap_err();

        match (&error, retryable) {
            (MailError::Transient { code, message }, true)
            | (MailError::Permanent { code, message }, false) => {
                assert_eq!(*code, expected_code);
                assert!(!message.is_empty());
            }
            _ => panic!("{expected_code}: unexpected {error:?}"),
        }
        assert_eq!(error.is_retryable(), retryable, "{error}");
        assert!(!error.may_have_been_delivered(), "{error}");
        assert!(sink.messages().await.is_empty());
    }
}

#[tokio::test]
async fn given_a_sink_that_hangs_after_data_when_sent_then_the_send_times_out() {
    let sink = Sink::start(Behaviour {
        hang_after_data: true,
        ..Behaviour::default()
    })
    .await;
    let mut config = config_for(&sink, SmtpTlsMode::None);
    config.send_timeout = Duration::from_millis(400);
    let mailer = SmtpMailer::new(&config).unwrap();

    let started = Instant::now();
    // The outer bound makes a missing timeout fail the test instead of hanging it.
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        mailer.send(&multipart_mail(Uuid::now_v7())),
    )
    .await
    .expect("the adapter's own timeout fired")
    .unwrap_err();

    let elapsed = started.elapsed();
    assert!(matches!(error, MailError::Timeout(_)), "{error:?}");
    assert!(error.is_retryable());
    assert!(
        error.may_have_been_delivered(),
        "the data was sent: reconcile by Message-ID before re-sending"
    );
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn given_nothing_listening_when_sent_then_the_error_is_a_retryable_connection_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut config = SmtpConfig::new("127.0.0.1", SmtpTlsMode::None);
    config.port = Some(port);
    let mailer = SmtpMailer::new(&config).unwrap();

    let error = mailer
        .send(&multipart_mail(Uuid::now_v7()))
        .await
        .unwrap_err();

    assert!(matches!(error, MailError::Connection(_)), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn given_two_mails_when_sent_then_the_pooled_connection_is_reused() {
    let sink = Sink::start(Behaviour::default()).await;
    let mailer = SmtpMailer::new(&config_for(&sink, SmtpTlsMode::None)).unwrap();

    mailer.send(&multipart_mail(Uuid::now_v7())).await.unwrap();
    // lettre hands a used connection back to its pool on a spawned task: let it run.
    tokio::time::sleep(Duration::from_millis(100)).await;
    mailer.send(&multipart_mail(Uuid::now_v7())).await.unwrap();

    assert_eq!(sink.messages().await.len(), 2);
    assert_eq!(sink.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn given_starttls_with_a_private_ca_when_sent_then_the_mail_and_credentials_go_over_tls() {
    let (acceptor, ca_pem) = throwaway_tls();
    let sink = Sink::start(Behaviour {
        auth_mechanisms: Some("PLAIN"),
        starttls: Some(acceptor),
        ..Behaviour::default()
    })
    .await;
    let mut config = config_for(&sink, SmtpTlsMode::StartTls);
    config.credentials = Some(("mailer".to_owned(), SecretString::from(PASSWORD)));
    config.extra_root_certificate_pem = Some(ca_pem);
    let mailer = SmtpMailer::new(&config).unwrap();

    mailer.send(&multipart_mail(Uuid::now_v7())).await.unwrap();

    let messages = sink.messages().await;
    assert_eq!(messages.len(), 1);
    assert!(messages[0].tls, "the mail was sent after STARTTLS");
    assert_eq!(
        messages[0].auth,
        Some(("mailer".to_owned(), PASSWORD.to_owned()))
    );
}

#[tokio::test]
async fn given_implicit_tls_with_a_private_ca_when_sent_then_the_mail_arrives_over_tls() {
    let (acceptor, ca_pem) = throwaway_tls();
    let sink = Sink::start(Behaviour {
        implicit_tls: Some(acceptor),
        ..Behaviour::default()
    })
    .await;
    let mut config = config_for(&sink, SmtpTlsMode::Implicit);
    config.extra_root_certificate_pem = Some(ca_pem);
    let mailer = SmtpMailer::new(&config).unwrap();

    mailer.send(&multipart_mail(Uuid::now_v7())).await.unwrap();

    let messages = sink.messages().await;
    assert_eq!(messages.len(), 1);
    assert!(messages[0].tls);
}

#[tokio::test]
async fn given_an_untrusted_certificate_when_sent_with_starttls_then_nothing_is_sent() {
    let (acceptor, _ca_pem) = throwaway_tls();
    let sink = Sink::start(Behaviour {
        auth_mechanisms: Some("PLAIN"),
        starttls: Some(acceptor),
        ..Behaviour::default()
    })
    .await;
    let mut config = config_for(&sink, SmtpTlsMode::StartTls);
    config.credentials = Some(("mailer".to_owned(), SecretString::from(PASSWORD)));
    let mailer = SmtpMailer::new(&config).unwrap();

    let error = mailer
        .send(&multipart_mail(Uuid::now_v7()))
        .await
        .unwrap_err();

    assert!(
        matches!(error, MailError::Tls(_) | MailError::Connection(_)),
        "{error:?}"
    );
    assert!(!error.to_string().contains(PASSWORD));
    assert!(sink.messages().await.is_empty());
}

#[tokio::test]
async fn given_starttls_required_when_the_server_does_not_offer_it_then_nothing_is_sent() {
    let sink = Sink::start(Behaviour {
        auth_mechanisms: Some("PLAIN"),
        ..Behaviour::default()
    })
    .await;
    let mut config = config_for(&sink, SmtpTlsMode::StartTls);
    config.credentials = Some(("mailer".to_owned(), SecretString::from(PASSWORD)));
    let mailer = SmtpMailer::new(&config).unwrap();

    let result = mailer.send(&multipart_mail(Uuid::now_v7())).await;

    assert!(result.is_err(), "no silent downgrade to plain text");
    assert!(sink.messages().await.is_empty());
}
