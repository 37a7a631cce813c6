//! A local SMTP sink for the tests: a small tokio listener that speaks enough SMTP (EHLO,
//! STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT) to record what it is sent,
//! and can be told to refuse, hang, garble its answers or require TLS. Its behaviour may be
//! changed while it runs (a relay that recovers); each connection takes the behaviour of the
//! moment it was accepted.

#![allow(dead_code, reason = "each test file uses a part of the sink")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// How the sink behaves.
#[derive(Clone, Default)]
pub struct Behaviour {
    /// The AUTH mechanisms advertised (e.g. "PLAIN LOGIN"); `None` advertises no AUTH.
    pub auth_mechanisms: Option<&'static str>,
    /// Answer every AUTH with this line instead of accepting it.
    pub auth_reply: Option<&'static str>,
    /// Offer STARTTLS with this acceptor.
    pub starttls: Option<TlsAcceptor>,
    /// Speak TLS from the first byte with this acceptor.
    pub implicit_tls: Option<TlsAcceptor>,
    /// Answer RCPT with this line instead of 250.
    pub rcpt_reply: Option<&'static str>,
    /// Answer the end of DATA with this line instead of 250.
    pub data_end_reply: Option<&'static str>,
    /// Never answer the end of DATA.
    pub hang_after_data: bool,
    /// Greet with this line instead of `220 … ready` (e.g. garbage).
    pub greeting: Option<&'static str>,
    /// Answer the end of DATA with half a line, then close the connection.
    pub cut_after_data: bool,
    /// How many DATA commands reached their end, successful or not.
    pub data_seen: Option<Arc<AtomicUsize>>,
}

#[derive(Clone, Debug, Default)]
pub struct Received {
    pub ehlo: String,
    pub tls: bool,
    pub auth: Option<(String, String)>,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: String,
}

pub struct Sink {
    pub address: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub connections: Arc<AtomicUsize>,
    behaviour: Arc<std::sync::Mutex<Behaviour>>,
}

impl Sink {
    pub async fn start(behaviour: Behaviour) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let behaviour = Arc::new(std::sync::Mutex::new(behaviour));
        let (recorded, counted) = (received.clone(), connections.clone());
        let current = behaviour.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let behaviour = current.lock().unwrap().clone();
                tokio::spawn(serve(tcp, behaviour, recorded.clone()));
            }
        });
        Sink {
            address,
            received,
            connections,
            behaviour,
        }
    }

    pub async fn messages(&self) -> Vec<Received> {
        self.received.lock().await.clone()
    }

    /// How the sink answers connections accepted from now on.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
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
    reply(
        stream,
        behaviour.greeting.unwrap_or("220 sink.test ESMTP ready"),
    )
    .await?;
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
            if let Some(seen) = &behaviour.data_seen {
                seen.fetch_add(1, Ordering::SeqCst);
            }
            if behaviour.cut_after_data {
                stream.get_mut().write_all(b"25").await?;
                stream.get_mut().flush().await?;
                return Ok(SessionEnd::Closed);
            }
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
pub fn throwaway_tls() -> (TlsAcceptor, String) {
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
