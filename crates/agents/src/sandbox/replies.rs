//! How sandbox people answer a message: whether, when, with what intent and in what words.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rand::seq::IndexedRandom;
use salesdept_events::domain::Intent;

use super::people::{Archetype, SandboxPerson};
use super::{SandboxReply, personalisation};

const INTERESTED: &[&str] = &[
    "Sounds great, I'd love to join. What dates are you looking at?",
    "Thanks {first}-style outreach, appreciated! Yes, count me in - happy to talk about it.",
    "This is right up my street. I'm in, let's set up a call.",
    "Happy to do it. Send me the details and I'll block the time.",
    "Yes please! We've been looking for exactly this kind of audience.",
    "I'd be glad to. Who else is on the programme?",
];
const INFO_REQUEST: &[&str] = &[
    "Could you share more details about the audience size and ticket prices?",
    "What would the format be, and how long is the slot?",
    "Interesting - do you have a prospectus with the packages and numbers?",
    "Where and when is it? And is travel covered?",
    "How many attendees did you have last year, and what roles?",
];
const REFERRAL: &[&str] = &[
    "I'm not the right person for this - please talk to {colleague}, who runs our events.",
    "Let me loop in {colleague}; they handle sponsorships for us.",
    "{colleague} on my team would be a better fit for a talk, I'll forward this.",
];
const NOT_INTERESTED: &[&str] = &[
    "Not for me, thanks.",
    "Thanks, but we'll pass this year.",
    "I appreciate it, but I'm not interested.",
    "No budget for this right now, sorry.",
    "Not something we're pursuing at the moment.",
];
const DO_NOT_CONTACT: &[&str] = &[
    "Please remove me from your list and don't message me again.",
    "Stop messaging me.",
    "Unsubscribe. I never asked for this.",
    "Please don't contact me again about events.",
    "Take me off whatever list this is.",
];
const OUT_OF_OFFICE: &[&str] = &[
    "I'm out of the office until {date} with limited access to messages.",
    "Auto-reply: I am on leave and back on {date}.",
    "Thanks for your message. I'm travelling until {date} and will reply when I'm back.",
];
const COLLEAGUES: &[&str] = &[
    "Jana Kral",
    "Marco Rossi",
    "Aiko Mori",
    "Ben Okoye",
    "Clara Weiss",
];

/// Whether a text pitches a talk, a sponsorship, or neither.
fn pitch_fit(person: &SandboxPerson, text: &str) -> f64 {
    let text = text.to_lowercase();
    let speaking = ["speak", "talk", "stage", "keynote", "session", "panel"]
        .iter()
        .any(|w| text.contains(w));
    let sponsoring = ["sponsor", "booth", "partner", "prospectus", "exhibit"]
        .iter()
        .any(|w| text.contains(w));
    match person.archetype {
        Archetype::Speaker if speaking => 1.0,
        Archetype::Sponsor if sponsoring => 1.0,
        Archetype::Speaker | Archetype::Sponsor => 0.5,
        Archetype::Other => 0.25,
    }
}

/// The reply to a message, if the person answers at all.
pub fn draw_reply<R: Rng>(
    person: &SandboxPerson,
    text: &str,
    earlier_messages: usize,
    now: DateTime<Utc>,
    provider_id: &str,
    rng: &mut R,
) -> Option<SandboxReply> {
    let fit = pitch_fit(person, text);
    let personal = personalisation(person, text);
    let reply = |intent: Intent, delay: Duration, template: &str, rng: &mut R| {
        let return_date = (now + Duration::days(rng.random_range(3..15)))
            .format("%-d %B")
            .to_string();
        let colleague = COLLEAGUES.choose(rng).copied().unwrap_or("our events lead");
        let text = template
            .replace("{first}-style outreach", "for the thoughtful note")
            .replace("{date}", &return_date)
            .replace("{colleague}", colleague);
        SandboxReply {
            provider_message_id: format!("{provider_id}-reply"),
            profile_url: person.linkedin_url.clone(),
            thread_id: format!("sbx-thread-{}", person.id),
            text,
            received_at: now + delay,
            intent,
        }
    };
    // An autoresponder answers whatever the message says.
    if rng.random_bool(0.03) {
        let template = OUT_OF_OFFICE
            .choose(rng)
            .copied()
            .unwrap_or(OUT_OF_OFFICE[0]);
        return Some(reply(
            Intent::OutOfOffice,
            Duration::minutes(rng.random_range(1..20)),
            template,
            rng,
        ));
    }
    let follow_up_factor = if earlier_messages == 0 { 1.0 } else { 0.7 };
    let probability =
        ((0.03 + 0.10 * person.responsiveness * fit + 0.10 * personal) * follow_up_factor).min(0.9);
    if !rng.random_bool(probability) {
        return None;
    }
    let weights = [
        (Intent::Interested, 30.0 * fit + 15.0 * personal),
        (Intent::InfoRequest, 15.0 * fit + 5.0),
        (Intent::Referral, 8.0),
        (Intent::NotInterested, 25.0 - 10.0 * fit),
        (Intent::DoNotContact, 6.0 + 8.0 * (1.0 - fit)),
    ];
    let total: f64 = weights.iter().map(|(_, weight)| weight).sum();
    let mut roll = rng.random_range(0.0..total);
    let mut intent = Intent::NotInterested;
    for (candidate, weight) in weights {
        if roll < weight {
            intent = candidate;
            break;
        }
        roll -= weight;
    }
    let templates = match intent {
        Intent::Interested => INTERESTED,
        Intent::InfoRequest => INFO_REQUEST,
        Intent::Referral => REFERRAL,
        Intent::DoNotContact => DO_NOT_CONTACT,
        Intent::OutOfOffice => OUT_OF_OFFICE,
        Intent::NotInterested => NOT_INTERESTED,
    };
    let template = templates.choose(rng).copied().unwrap_or(templates[0]);
    let delay = Duration::minutes(rng.random_range(45..(3 * 24 * 60)));
    Some(reply(intent, delay, template, rng))
}
