use chrono::{DateTime, Duration, Utc};
use salesdept_events::domain::Intent;

use super::*;

fn monday() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn the_same_seed_gives_the_same_people_and_another_seed_other_people() {
    let a = SandboxNetwork::generate(7, 2000);
    let b = SandboxNetwork::generate(7, 2000);
    let c = SandboxNetwork::generate(8, 2000);
    assert_eq!(a.people(), b.people());
    assert_ne!(a.people(), c.people());
    let speakers = a
        .people()
        .iter()
        .filter(|p| p.archetype == Archetype::Speaker)
        .count();
    let sponsors = a
        .people()
        .iter()
        .filter(|p| p.archetype == Archetype::Sponsor)
        .count();
    assert!(
        (600..1000).contains(&speakers) && (400..800).contains(&sponsors),
        "{speakers} speakers, {sponsors} sponsors"
    );
    for person in a.people().iter().take(50) {
        assert!(salesdept_events::domain::LinkedInUrl::parse(&person.linkedin_url).is_ok());
    }
}

#[test]
fn search_filters_by_position_industry_and_location_and_pages() {
    let network = SandboxNetwork::generate(1, 3000);
    let search = SandboxSearch {
        position_keywords: vec!["cto".into()],
        locations: vec!["Germany".into()],
        limit: 5,
        ..Default::default()
    };
    let page = network.search(&search);
    assert!(!page.is_empty() && page.len() <= 5);
    assert!(
        page.iter()
            .all(|p| p.position.contains("CTO") && p.location.contains("Germany")),
        "{page:#?}"
    );
    let next = network.search(&SandboxSearch {
        offset: 5,
        ..search
    });
    assert!(
        next.iter().all(|p| page.iter().all(|q| q.id != p.id)),
        "pages do not overlap"
    );
}

#[test]
fn messages_need_a_connection_and_invitations_get_accepted_later() {
    let network = SandboxNetwork::generate(3, 500);
    let stranger = network
        .people()
        .iter()
        .find(|p| !p.is_connection && p.archetype == Archetype::Speaker)
        .unwrap()
        .clone();
    let now = monday();
    assert_eq!(
        network.send_message("primary", &stranger.linkedin_url, "Hi", "k1", now),
        Err(SandboxError::NotConnected(stranger.linkedin_url.clone()))
    );
    let long_note = "x".repeat(301);
    assert!(matches!(
        network.send_invitation(
            "primary",
            &stranger.linkedin_url,
            Some(&long_note),
            "k2",
            now
        ),
        Err(SandboxError::TooLong { .. })
    ));
    // Many invitations: some are accepted, hours or days later, never at once.
    let mut accepted = 0;
    for (n, person) in network
        .people()
        .iter()
        .filter(|p| !p.is_connection)
        .take(200)
        .enumerate()
    {
        network
            .send_invitation(
                "primary",
                &person.linkedin_url,
                Some("Hello"),
                &format!("inv-{n}"),
                now,
            )
            .unwrap();
    }
    for acceptance in network.acceptances_between(now - Duration::days(1), now + Duration::days(10))
    {
        assert!(acceptance.at > now + Duration::minutes(60));
        accepted += 1;
    }
    assert!((40..190).contains(&accepted), "{accepted} of 200 accepted");
}

#[test]
fn idempotency_keys_make_a_retried_send_a_no_op() {
    let network = SandboxNetwork::generate(4, 300);
    let friend = network
        .people()
        .iter()
        .find(|p| p.is_connection)
        .unwrap()
        .clone();
    let first = network
        .send_message(
            "primary",
            &friend.linkedin_url,
            "Hi there",
            "same-key",
            monday(),
        )
        .unwrap();
    let again = network
        .send_message(
            "primary",
            &friend.linkedin_url,
            "Hi there",
            "same-key",
            monday(),
        )
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(network.sends().len(), 1);
    assert_eq!(network.find_send("same-key"), Some(first));
    assert_eq!(network.find_send("other-key"), None);
}

/// Replies to `n` connections with a message built by `write`.
fn reply_stats(write: impl Fn(&SandboxPerson) -> String) -> (usize, usize, usize) {
    let network = SandboxNetwork::generate(11, 20_000);
    let mut replies = 0;
    let mut positive = 0;
    let mut sent = 0;
    for person in network
        .people()
        .iter()
        .filter(|p| p.is_connection && p.archetype == Archetype::Speaker)
    {
        network
            .send_message(
                "primary",
                &person.linkedin_url,
                &write(person),
                &format!("m-{}", person.id),
                monday(),
            )
            .unwrap();
        sent += 1;
    }
    for reply in network.replies_between(monday(), monday() + Duration::days(5)) {
        replies += 1;
        if reply.intent.is_positive() {
            positive += 1;
        }
    }
    (sent, replies, positive)
}

#[test]
fn personal_fitting_messages_get_more_and_more_positive_replies() {
    let (sent, generic_replies, generic_positive) =
        reply_stats(|_| "Hello, we run events. Interested?".into());
    let (_, personal_replies, personal_positive) = reply_stats(|p| {
        format!(
            "Hi {}, loved your recent post: {}. Would you speak at our conference? Your work at {} fits our stage.",
            p.first_name, p.recent_activity, p.company
        )
    });
    assert!(sent > 400, "{sent}");
    assert!(
        personal_replies > generic_replies,
        "{personal_replies} vs {generic_replies}"
    );
    assert!(
        personal_positive > generic_positive * 2,
        "{personal_positive} vs {generic_positive}"
    );
    let rate = personal_replies as f64 / sent as f64;
    assert!((0.08..0.40).contains(&rate), "reply rate {rate}");
}

#[test]
fn replies_are_deterministic_and_include_every_kind_of_answer() {
    let run = || {
        let network = SandboxNetwork::generate(5, 20_000);
        for person in network.people().iter().filter(|p| p.is_connection) {
            network
                .send_message(
                    "primary",
                    &person.linkedin_url,
                    &format!("Hi {}, would you speak at our event?", person.first_name),
                    &format!("k{}", person.id),
                    monday(),
                )
                .unwrap();
        }
        network.replies_between(monday(), monday() + Duration::days(5))
    };
    let first = run();
    assert_eq!(first, run());
    for intent in Intent::ALL {
        assert!(
            first.iter().any(|r| r.intent == intent),
            "no {intent} reply"
        );
    }
    let out_of_office = first
        .iter()
        .find(|r| r.intent == Intent::OutOfOffice)
        .unwrap();
    assert!(out_of_office.text.contains("until") || out_of_office.text.contains("back on"));
}

#[test]
fn someone_who_asked_to_be_left_alone_never_answers_again() {
    let network = SandboxNetwork::generate(5, 20_000);
    let people: Vec<_> = network
        .people()
        .iter()
        .filter(|p| p.is_connection)
        .cloned()
        .collect();
    for person in &people {
        network
            .send_message(
                "primary",
                &person.linkedin_url,
                "Sponsor our booth?",
                &format!("a{}", person.id),
                monday(),
            )
            .unwrap();
    }
    let replies = network.replies_between(monday(), monday() + Duration::days(5));
    let stopper = replies
        .iter()
        .find(|r| r.intent == Intent::DoNotContact)
        .expect("someone says stop")
        .profile_url
        .clone();
    network
        .send_message(
            "primary",
            &stopper,
            "Just following up!",
            "again",
            monday() + Duration::days(6),
        )
        .unwrap();
    let later =
        network.replies_between(monday() + Duration::days(6), monday() + Duration::days(20));
    assert!(later.iter().all(|r| r.profile_url != stopper));
}

#[test]
fn keywords_match_whole_words_only() {
    assert!(contains_words("Co-founder & CTO", "cto"));
    assert!(!contains_words("Director of Partnerships", "cto"));
    assert!(contains_words("VP Engineering, Payments", "vp engineering"));
    assert!(!contains_words("anything", " "));
}
