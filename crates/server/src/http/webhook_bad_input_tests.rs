//! The bad-input corpus of the provider webhooks, through the real routes (`webhooks::router`,
//! as `serve` mounts it): each delivery authenticated correctly so that the payload is what is
//! bad (and a few with a bad or missing signature), answered with its status and a JSON error
//! naming the problem, and the inbox check not woken — the wake-up is the only thing a webhook
//! sets off, so a refused delivery writes nothing. A valid delivery after all of them is still
//! taken: nothing wedged.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use salesdept_agents::clock::{Clock, SimulatedClock};
use salesdept_agents::linkedin::webhooks::{MAX_BODY_BYTES, sign_hmac_sha256};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tower::ServiceExt;

use super::webhooks::router;
use crate::config::ConfigSecret;

const SECRET: &str = "webhook-secret-7d1f0c2b";

/// How a delivery authenticates itself.
#[derive(Clone, Copy)]
enum Auth {
    /// The right secret or signature for the body sent.
    Good,
    /// None at all.
    Missing,
    /// A wrong one.
    Wrong,
    /// The generic route: the signature of another body (the body changed on the way).
    SignedOther(&'static str),
}

struct Delivery {
    route: &'static str,
    auth: Auth,
    body: Vec<u8>,
}

async fn deliver(app: &axum::Router, delivery: &Delivery) -> (StatusCode, Value) {
    let secret = SecretString::from(SECRET.to_owned());
    let mut path = delivery.route.to_owned();
    let mut request = Request::builder()
        .method("POST")
        .header("content-type", "application/json");
    match (delivery.route, delivery.auth) {
        ("/webhooks/dripify", auth) => {
            let presented = match auth {
                Auth::Good => SECRET,
                Auth::Missing => "",
                _ => "not-the-secret",
            };
            path = format!("/webhooks/dripify/{presented}");
        }
        ("/webhooks/unipile", Auth::Good) => {
            request = request.header("x-webhook-secret", SECRET);
        }
        ("/webhooks/unipile", Auth::Missing) => {}
        ("/webhooks/unipile", _) => request = request.header("x-webhook-secret", "not-the-secret"),
        (_, Auth::Good) => {
            request = request.header("x-signature", sign_hmac_sha256(&secret, &delivery.body));
        }
        (_, Auth::Missing) => {}
        (_, Auth::Wrong) => {
            let other = SecretString::from("another-secret".to_owned());
            request = request.header("x-signature", sign_hmac_sha256(&other, &delivery.body));
        }
        (_, Auth::SignedOther(body)) => {
            request = request.header("x-signature", sign_hmac_sha256(&secret, body.as_bytes()));
        }
    }
    let response = app
        .clone()
        .oneshot(
            request
                .uri(path)
                .body(Body::from(delivery.body.clone()))
                .unwrap(),
        )
        .await
        .unwrap();
    super::tests::answer(response).await
}

/// Whether the inbox check was woken since the last look (a `notify_one` with nobody waiting
/// leaves a permit, taken here).
async fn woken(inbox: &Notify) -> bool {
    tokio::time::timeout(Duration::from_millis(20), inbox.notified())
        .await
        .is_ok()
}

const REPLY: &str = r#"{"type": "reply", "profile_url": "https://www.linkedin.com/in/maya-lindqvist-d1", "text": "Sounds great!", "at": "2026-03-02T10:15:00Z"}"#;

fn generic(body: &str, status: u16, names: &'static str, why: &'static str) -> Row {
    Row {
        delivery: Delivery {
            route: "/webhooks/linkedin",
            auth: Auth::Good,
            body: body.as_bytes().to_vec(),
        },
        status,
        names,
        why,
    }
}

struct Row {
    delivery: Delivery,
    status: u16,
    /// A fragment of the error message, in lower case.
    names: &'static str,
    why: &'static str,
}

#[tokio::test]
async fn bad_webhook_deliveries_are_refused_clearly_and_wake_nothing() {
    let inbox = Arc::new(Notify::new());
    let clock: Arc<dyn Clock> = Arc::new(SimulatedClock::starting_at(
        "2026-03-02T12:00:00Z".parse().unwrap(),
    ));
    let secret: ConfigSecret = serde_json::from_value(json!(SECRET)).unwrap();
    let app = router(Some(secret), Arc::clone(&inbox), clock);
    let unipile = |body: Value, status, names, why| Row {
        delivery: Delivery {
            route: "/webhooks/unipile",
            auth: Auth::Good,
            body: body.to_string().into_bytes(),
        },
        status,
        names,
        why,
    };
    let dripify = |body: Value, status, names, why| Row {
        delivery: Delivery {
            route: "/webhooks/dripify",
            auth: Auth::Good,
            body: body.to_string().into_bytes(),
        },
        status,
        names,
        why,
    };
    let oversize = format!(
        r#"{{"type": "reply", "profile_url": "https://www.linkedin.com/in/x", "text": "{}"}}"#,
        "x".repeat(MAX_BODY_BYTES)
    );
    let mut rows = vec![
        generic("{", 400, "not json: it ends early", "not JSON"),
        generic("", 400, "not json", "an empty body"),
        generic("<xml/>", 400, "not json: a syntax error", "XML"),
        generic(&REPLY[..REPLY.len() - 20], 400, "not json", "truncated"),
        generic("{}", 400, "missing field `type`", "no fields"),
        generic(
            r#"{"type": "reply", "profile_url": "https://www.linkedin.com/in/maya"}"#,
            400,
            "a reply without text",
            "a reply without its text",
        ),
        generic(
            r#"{"type": "reply", "text": "hi"}"#,
            400,
            "missing field `profile_url`",
            "no profile",
        ),
        generic(
            r#"{"type": "vote", "profile_url": "https://www.linkedin.com/in/maya", "text": "hi"}"#,
            400,
            "unknown variant `vote`",
            "an unknown event kind",
        ),
        generic(
            r#"{"type": "reply", "profile_url": 5, "text": "hi"}"#,
            400,
            "invalid type: integer",
            "a URL that is a number",
        ),
        generic(
            r#"{"type": "reply", "profile_url": "https://www.linkedin.com/in/maya", "text": ["hi"]}"#,
            400,
            "invalid type: sequence",
            "a text that is a list",
        ),
        generic(
            r#"{"type": "reply", "profile_url": "https://evil.example/in/maya", "text": "hi"}"#,
            400,
            "profile_url is not a linkedin profile",
            "a URL elsewhere",
        ),
        generic(
            r#"{"type": "reply", "profile_url": "https://www.linkedin.com/in/maya", "text": "hi", "at": "yesterday"}"#,
            400,
            "at is not an rfc 3339 time",
            "a bad time",
        ),
        generic(
            &format!(r#"[{REPLY}, {{"type": "reply"}}]"#),
            400,
            "missing field",
            "a good item beside a bad one: all or nothing",
        ),
        generic("\"reply\"", 400, "not the generic event shape", "a string"),
        generic(&oversize, 413, "larger than", "over 1 MiB"),
        Row {
            delivery: Delivery {
                route: "/webhooks/linkedin",
                auth: Auth::Missing,
                body: REPLY.as_bytes().to_vec(),
            },
            ..generic("", 401, "not authenticated", "no signature")
        },
        Row {
            delivery: Delivery {
                route: "/webhooks/linkedin",
                auth: Auth::Wrong,
                body: REPLY.as_bytes().to_vec(),
            },
            ..generic("", 401, "not authenticated", "signed with another key")
        },
        Row {
            delivery: Delivery {
                route: "/webhooks/linkedin",
                auth: Auth::SignedOther(REPLY),
                body: REPLY.as_bytes()[..REPLY.len() - 20].to_vec(),
            },
            ..generic("", 401, "not authenticated", "cut short after signing")
        },
        unipile(
            json!({"event": "message_received"}),
            400,
            "without its fields",
            "no fields",
        ),
        unipile(
            json!({"event": "message_received", "account_id": "acc_1", "chat_id": "chat_1",
                   "message_id": "msg_1", "message": "hi",
                   "sender": {"attendee_provider_id": "ACoAAAmaya"},
                   "timestamp": "2026-03-02T10:15:00.000Z"}),
            400,
            "no linkedin profile url",
            "a sender without a profile",
        ),
        unipile(
            json!({"event": "new_relation", "account_id": "acc_1"}),
            400,
            "without",
            "a relation without a profile",
        ),
        Row {
            delivery: Delivery {
                route: "/webhooks/unipile",
                auth: Auth::Missing,
                body: b"{}".to_vec(),
            },
            ..generic("", 401, "not authenticated", "Unipile without its secret")
        },
        Row {
            delivery: Delivery {
                route: "/webhooks/unipile",
                auth: Auth::Wrong,
                body: b"{}".to_vec(),
            },
            ..generic("", 401, "not authenticated", "Unipile with a wrong secret")
        },
        dripify(
            json!({"lead": {"id": 1}}),
            400,
            "no linkedin profile url",
            "no profile",
        ),
        dripify(
            json!({"lead": {"linkedinProfileUrl": "https://www.linkedin.com/in/maya"}}),
            400,
            "no conversation",
            "no conversation",
        ),
        Row {
            delivery: Delivery {
                route: "/webhooks/dripify",
                auth: Auth::Wrong,
                body: b"{}".to_vec(),
            },
            ..generic("", 401, "not authenticated", "Dripify with a wrong secret")
        },
    ];
    // Unipile's other events are answered 202 (so that Unipile does not retry them) with no
    // delivery, and wake nothing either.
    rows.push(unipile(
        json!({"event": "message_reaction", "account_id": "acc_1"}),
        202,
        "",
        "an event kind we do not take",
    ));
    let mut failures = Vec::new();
    for row in &rows {
        let (status, answer) = deliver(&app, &row.delivery).await;
        let message = answer["error"].as_str().unwrap_or_default().to_lowercase();
        let clear = if row.status == 202 {
            answer["deliveries"] == 0
        } else {
            message.contains(row.names)
        };
        if status.as_u16() != row.status || !clear {
            failures.push(format!(
                "{}: expected {} naming {:?}, got {status} {answer}",
                row.why, row.status, row.names
            ));
        }
        assert!(
            !answer.to_string().contains(SECRET),
            "{}: the secret in an answer",
            row.why
        );
        assert!(
            !woken(&inbox).await,
            "{}: the inbox check was woken",
            row.why
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );

    // Still open for business: a valid delivery on each route is taken and wakes the inbox.
    let valid = [
        Delivery {
            route: "/webhooks/linkedin",
            auth: Auth::Good,
            body: REPLY.as_bytes().to_vec(),
        },
        Delivery {
            route: "/webhooks/unipile",
            auth: Auth::Good,
            body: json!({
                "event": "new_relation", "account_id": "acc_1",
                "user_provider_id": "ACoAAAmaya",
                "user_profile_url": "https://www.linkedin.com/in/maya-lindqvist-d1/"
            })
            .to_string()
            .into_bytes(),
        },
        Delivery {
            route: "/webhooks/dripify",
            auth: Auth::Good,
            body: json!({
                "lead": {"linkedinProfileUrl": "https://www.linkedin.com/in/maya-lindqvist-d1"},
                "conversation": [{"text": "Sounds great!", "type": "Linkedin message replied",
                                  "userName": "Maya Lindqvist",
                                  "timestamp": "2026-03-02T10:15:00.000Z"}]
            })
            .to_string()
            .into_bytes(),
        },
    ];
    for delivery in &valid {
        let (status, answer) = deliver(&app, delivery).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{}: {answer}", delivery.route);
        assert_eq!(answer["deliveries"], 1, "{}: {answer}", delivery.route);
        assert!(
            woken(&inbox).await,
            "{}: the inbox check is woken",
            delivery.route
        );
    }
}
