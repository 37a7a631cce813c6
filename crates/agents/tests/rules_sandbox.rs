//! The rules engine against a second, independently written population: the sandbox network's
//! generated people (whose hidden archetype is the truth) and the replies they write (whose
//! drawn intent is the truth). Its wording differs from the fixtures', so this checks that the
//! rules capture the ideas rather than the dev set's sentences.

use chrono::{Duration, TimeZone, Utc};
use salesdept_agents::rules::evaluation::ConfusionMatrix;
use salesdept_agents::rules::{
    MessageContext, MessageKind, Profile, TemplateVariant, analyse_reply, assess_profile,
    draft_message,
};
use salesdept_agents::sandbox::{Archetype, SandboxNetwork, SandboxPerson};
use salesdept_events::domain::{Classification, Intent};

fn as_profile(person: &SandboxPerson) -> Profile {
    Profile {
        name: person.name.clone(),
        position: person.position.clone(),
        company: person.company.clone(),
        company_size: person.company_size.clone(),
        industry: person.industry.clone(),
        location: person.location.clone(),
        about: person.about.clone(),
        recent_activity: person.recent_activity.clone(),
        linkedin_url: person.linkedin_url.clone(),
    }
}

#[test]
fn sandbox_people_are_classified_as_their_archetype() {
    let network = SandboxNetwork::generate(7, 400);
    let names: Vec<&str> = Classification::ALL.iter().map(|c| c.as_str()).collect();
    let mut matrix = ConfusionMatrix::new("classification", &names);
    for person in network.people() {
        let expected = match person.archetype {
            Archetype::Speaker => Classification::Speaker,
            Archetype::Sponsor => Classification::Sponsor,
            Archetype::Other => Classification::Other,
        };
        let answer = assess_profile(&as_profile(person));
        if answer.classification != expected {
            println!(
                "miss: {} / {} / {:?} -> {}",
                person.position, person.industry, person.about, answer.rationale
            );
        }
        matrix.record(expected.as_str(), answer.classification.as_str());
    }
    println!("{matrix}");
    assert!(matrix.accuracy() >= 0.85, "{matrix}");
}

#[test]
fn sandbox_replies_are_read_as_meant_and_every_do_not_contact_is_found() {
    let network = SandboxNetwork::generate(11, 4_000);
    let start = Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap();
    let context = MessageContext {
        event_name: "DeepTech Summit".into(),
        after_invitation: false,
    };
    let kinds = [
        MessageKind::FirstMessage,
        MessageKind::FollowUp1,
        MessageKind::FollowUp2,
    ];
    // The rules' own templates are the messages, so the people answer what agents would send.
    for person in network
        .people()
        .iter()
        .filter(|person| person.is_connection)
    {
        let profile = as_profile(person);
        let classification = assess_profile(&profile).classification;
        let variant = TemplateVariant::choose(classification, &profile.linkedin_url);
        for (step, kind) in kinds.into_iter().enumerate() {
            let message = draft_message(&profile, classification, kind, variant, &context);
            let at = start + Duration::days(4 * step as i64);
            network
                .send_message(
                    "primary",
                    &person.linkedin_url,
                    &message.text,
                    &format!("{}-{step}", person.id),
                    at,
                )
                .unwrap();
        }
    }
    let names: Vec<&str> = Intent::ALL.iter().map(|i| i.as_str()).collect();
    let mut matrix = ConfusionMatrix::new("intent", &names);
    for reply in network.replies_between(start - Duration::days(1), start + Duration::days(60)) {
        let answer = analyse_reply(&reply.text);
        if answer.intent != reply.intent {
            println!(
                "miss: {:?} meant {}, read {}",
                reply.text, reply.intent, answer.intent
            );
        }
        matrix.record(reply.intent.as_str(), answer.intent.as_str());
    }
    println!("{matrix}");
    assert!(matrix.total() >= 100, "only {} replies", matrix.total());
    assert_eq!(matrix.recall("DoNotContact"), Some(1.0), "{matrix}");
    assert!(matrix.accuracy() >= 0.85, "{matrix}");
}
