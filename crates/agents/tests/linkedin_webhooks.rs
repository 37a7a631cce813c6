//! Inbound webhooks: verification (shared secret, HMAC-SHA256), parsing of Unipile, Dripify
//! and generic payloads, and dedup keys that recognise repeated deliveries.

use chrono::{TimeZone, Utc};
use salesdept_agents::linkedin::webhooks::{
    Delivery, InboundEvent, MAX_BODY_BYTES, WebhookError, parse_dripify, parse_generic,
    parse_unipile, sign_hmac_sha256, verify_hmac_sha256, verify_shared_secret,
};
use secrecy::SecretString;
use serde_json::json;

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
}

fn reply(delivery: &Delivery) -> &salesdept_agents::linkedin::Reply {
    match &delivery.event {
        InboundEvent::Reply(reply) => reply,
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn shared_secrets_must_match_exactly() {
    let expected = secret("s3cret-token-abc");
    assert_eq!(
        verify_shared_secret(&expected, Some("s3cret-token-abc")),
        Ok(())
    );
    for (presented, why) in [
        (None, "missing"),
        (Some(""), "empty"),
        (Some("s3cret-token-ab"), "prefix"),
        (Some("s3cret-token-abcd"), "longer"),
        (Some("S3CRET-TOKEN-ABC"), "other case"),
    ] {
        assert_eq!(
            verify_shared_secret(&expected, presented),
            Err(WebhookError::Unauthenticated),
            "{why}"
        );
    }
}

#[test]
fn hmac_signatures_cover_the_exact_body() {
    let key = secret("hmac-key");
    let body = br#"{"type":"reply"}"#;
    let signature = sign_hmac_sha256(&key, body);
    assert!(signature.starts_with("sha256="));
    assert_eq!(verify_hmac_sha256(&key, body, Some(&signature)), Ok(()));
    let bare_hex = signature.trim_start_matches("sha256=");
    assert_eq!(verify_hmac_sha256(&key, body, Some(bare_hex)), Ok(()));
    for (body, signature, why) in [
        (
            &br#"{"type":"reply" }"#[..],
            Some(signature.as_str()),
            "body changed",
        ),
        (&body[..], Some("sha256=00"), "wrong signature"),
        (&body[..], Some("sha256=not-hex"), "not hex"),
        (&body[..], None, "no signature"),
    ] {
        assert_eq!(
            verify_hmac_sha256(&key, body, signature),
            Err(WebhookError::Unauthenticated),
            "{why}"
        );
    }
    assert_eq!(
        verify_hmac_sha256(&secret("other-key"), body, Some(&signature)),
        Err(WebhookError::Unauthenticated),
        "other key"
    );
}

#[test]
fn a_unipile_message_is_a_reply_keyed_by_message_id() {
    let body = json!({
        "event": "message_received", "account_id": "acc_1", "account_type": "LINKEDIN",
        "account_info": {"type": "LINKEDIN", "user_id": "ACoAAAme"},
        "chat_id": "chat_1", "message_id": "msg_9",
        "message": "Sounds great, I'd love to speak!",
        "sender": {"attendee_id": "att_maya", "attendee_provider_id": "ACoAAAmaya",
                   "attendee_name": "Maya Lindqvist",
                   "attendee_profile_url": "https://linkedin.com/in/maya-lindqvist-d1"},
        "timestamp": "2026-03-02T10:15:00.000Z"
    })
    .to_string();
    let first = parse_unipile(body.as_bytes(), now()).unwrap();
    let repeated = parse_unipile(body.as_bytes(), now() + chrono::Duration::hours(3)).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].dedup_key, "unipile:message:msg_9");
    assert_eq!(first, repeated, "a repeated delivery is the same delivery");
    let reply = reply(&first[0]);
    assert_eq!(reply.thread_id, "chat_1");
    assert_eq!(
        reply.profile_url.as_str(),
        "https://www.linkedin.com/in/maya-lindqvist-d1"
    );
    assert_eq!(
        reply.received_at,
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 15, 0).unwrap()
    );
}

#[test]
fn our_own_unipile_messages_and_other_events_give_nothing() {
    let own = json!({
        "event": "message_received", "account_id": "acc_1",
        "account_info": {"user_id": "ACoAAAme"}, "chat_id": "chat_1", "message_id": "msg_1",
        "message": "Thanks for connecting!",
        "sender": {"attendee_provider_id": "ACoAAAme", "attendee_profile_url": "https://linkedin.com/in/me"},
        "timestamp": "2026-03-02T09:00:00.000Z"
    });
    assert!(
        parse_unipile(own.to_string().as_bytes(), now())
            .unwrap()
            .is_empty()
    );
    let reaction = json!({"event": "message_reaction", "account_id": "acc_1"});
    assert!(
        parse_unipile(reaction.to_string().as_bytes(), now())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_late_unipile_relation_is_an_acceptance_keyed_by_person() {
    let body = json!({
        "event": "new_relation", "account_id": "acc_1", "account_type": "LINKEDIN",
        "user_full_name": "Maya Lindqvist", "user_provider_id": "ACoAAAmaya",
        "user_public_identifier": "maya-lindqvist-d1",
        "user_profile_url": "https://www.linkedin.com/in/maya-lindqvist-d1/"
    })
    .to_string();
    let early = parse_unipile(body.as_bytes(), now()).unwrap();
    let late = parse_unipile(body.as_bytes(), now() + chrono::Duration::hours(8)).unwrap();
    assert_eq!(early[0].dedup_key, "unipile:relation:acc_1:ACoAAAmaya");
    assert_eq!(
        early[0].dedup_key, late[0].dedup_key,
        "a late repeat has the same key"
    );
    match &early[0].event {
        InboundEvent::ConnectionAccepted(accepted) => {
            assert_eq!(
                accepted.profile_url.as_str(),
                "https://www.linkedin.com/in/maya-lindqvist-d1"
            );
            assert_eq!(accepted.at, now());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_dripify_conversation_gives_the_leads_messages_once_each() {
    let first = json!({
        "campaign": {"id": 12, "name": "DeepTech Days speakers"},
        "lead": {"id": 1, "firstName": "Maya", "lastName": "Lindqvist",
                 "linkedinProfileUrl": "https://www.linkedin.com/in/Maya-Lindqvist-D1"},
        "conversation": [
            {"text": "Hi Maya, we run DeepTech Days…", "type": "Linkedin message sent",
             "userName": "Alex Organiser", "timestamp": "2026-03-01T09:00:00.000Z"},
            {"text": "Sounds great!", "type": "Linkedin message replied",
             "userName": "Maya Lindqvist", "timestamp": "2026-03-02T10:15:00.000Z"}
        ]
    });
    let mut second = first.clone();
    second["conversation"].as_array_mut().unwrap().push(
        json!({"text": "What dates are you looking at?", "type": "Linkedin message replied",
                     "userName": "Maya Lindqvist", "timestamp": "2026-03-02T10:16:00.000Z"}),
    );
    let first = parse_dripify(first.to_string().as_bytes(), now()).unwrap();
    let second = parse_dripify(second.to_string().as_bytes(), now()).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(second.len(), 2);
    assert_eq!(
        first[0].dedup_key, second[0].dedup_key,
        "the re-sent message keeps its key"
    );
    assert_ne!(second[0].dedup_key, second[1].dedup_key);
    assert_eq!(reply(&second[1]).text, "What dates are you looking at?");
    assert_eq!(reply(&second[1]).thread_id, "dripify:maya-lindqvist-d1");
}

#[test]
fn a_generic_delivery_takes_replies_and_acceptances() {
    let body = json!([
        {"type": "reply", "profile_url": "linkedin.com/in/arjun-mehta-d2", "text": "Please remove me from your list.",
         "at": "2026-03-02T11:00:00Z", "message_id": "clay-77"},
        {"type": "connection_accepted", "profile_url": "https://www.linkedin.com/in/sofia-romano-d3"},
        {"type": "reply", "profile_url": "https://www.linkedin.com/in/sofia-romano-d3", "text": "Interested!"}
    ])
    .to_string();
    let deliveries = parse_generic(body.as_bytes(), now()).unwrap();
    assert_eq!(deliveries.len(), 3);
    assert_eq!(deliveries[0].dedup_key, "generic:reply:clay-77");
    assert!(matches!(
        deliveries[1].event,
        InboundEvent::ConnectionAccepted(_)
    ));
    assert!(deliveries[2].dedup_key.starts_with("generic:reply:"));
    let again = parse_generic(body.as_bytes(), now()).unwrap();
    assert_eq!(deliveries, again, "content keys are stable");
}

#[test]
fn bad_payloads_are_refused() {
    let huge = vec![b' '; MAX_BODY_BYTES + 1];
    for (result, why) in [
        (parse_generic(b"{not json", now()), "not JSON"),
        (parse_generic(br#"{"type":"reply","profile_url":"https://example.com/in/x","text":"hi"}"#, now()), "not LinkedIn"),
        (parse_generic(br#"{"type":"reply","profile_url":"https://www.linkedin.com/in/x"}"#, now()), "reply without text"),
        (parse_generic(br#"{"type":"like","profile_url":"https://www.linkedin.com/in/x"}"#, now()), "unknown type"),
        (parse_generic(br#"{"type":"reply","profile_url":"https://www.linkedin.com/in/x","text":"hi","at":"yesterday"}"#, now()), "bad time"),
        (parse_dripify(br#"{"conversation":[]}"#, now()), "no profile URL"),
        (parse_dripify(br#"{"lead":{"linkedinProfileUrl":"https://www.linkedin.com/in/x"}}"#, now()), "no conversation"),
        (parse_unipile(br#"{"event":"message_received","chat_id":"c"}"#, now()), "message without fields"),
        (parse_unipile(&huge, now()), "too large"),
    ] {
        assert!(result.is_err(), "{why}: {result:?}");
    }
    assert_eq!(parse_unipile(&huge, now()), Err(WebhookError::TooLarge));
}
