//! The SMTP adapter against an SMTP sink started by each test: a small tokio listener that
//! speaks enough SMTP (EHLO, STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT)
//! to record what it is sent, and can be told to refuse, hang or require TLS (`support::smtp_sink`).

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mail_parser::{MessageParser, MimeHeaders};
use salesdept_agents::mail::{
    Delivery, MailError, MailPort, MessageId, OutgoingMail, SmtpConfig, SmtpMailer, SmtpTlsMode,
};
use secrecy::SecretString;
use uuid::Uuid;

use tokio::net::TcpListener;

use support::smtp_sink::{Behaviour, Sink, throwaway_tls};

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
