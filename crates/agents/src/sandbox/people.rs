//! Generating the sandbox's people: plausible speakers, sponsors and others in the shape of
//! `shared/fixtures/profiles.dev.jsonl`, deterministic for a seed.

use rand::Rng;
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};

/// What a sandbox person really is, hidden from the agents: it drives how they answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Archetype {
    Speaker,
    Sponsor,
    Other,
}

/// One person of the sandbox network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SandboxPerson {
    pub id: u32,
    pub name: String,
    pub first_name: String,
    pub position: String,
    pub company: String,
    pub company_size: String,
    pub industry: String,
    pub location: String,
    pub about: String,
    pub recent_activity: String,
    pub linkedin_url: String,
    /// Already a first-degree connection of the sending accounts.
    pub is_connection: bool,
    pub archetype: Archetype,
    /// 0–1: how likely this person is to answer at all.
    pub responsiveness: f64,
}

const FIRST_NAMES: &[&str] = &[
    "Maya", "Arjun", "Sofia", "Tom", "Lena", "Kwame", "Yuki", "Carlos", "Ingrid", "Omar", "Priya",
    "Lucas", "Aisha", "Jonas", "Mei", "Diego", "Hannah", "Ravi", "Elena", "Samuel", "Fatima",
    "Noah", "Chloe", "Mateo", "Zara", "Felix", "Amara", "Oskar", "Leila", "Ethan", "Nadia",
    "Viktor", "Grace", "Tariq", "Ines", "Henrik", "Julia", "Kenji", "Marta", "Daniel",
];
const LAST_NAMES: &[&str] = &[
    "Lindqvist",
    "Mehta",
    "Romano",
    "Becker",
    "Novak",
    "Mensah",
    "Tanaka",
    "Ortega",
    "Berg",
    "Haddad",
    "Iyer",
    "Moreau",
    "Bello",
    "Fischer",
    "Chen",
    "Alvarez",
    "Schmidt",
    "Rao",
    "Petrova",
    "Okafor",
    "Khan",
    "Dubois",
    "Wright",
    "Silva",
    "Hussain",
    "Wagner",
    "Adeyemi",
    "Nilsson",
    "Farouk",
    "Murphy",
    "Kowalski",
    "Ivanov",
    "Kim",
    "Costa",
    "Jensen",
    "Sato",
];
const COMPANY_PARTS: &[&str] = &[
    "Fjord", "Lattice", "Pagoda", "Quanta", "Helix", "Nimbus", "Vector", "Kestrel", "Orbit",
    "Cobalt", "Tessel", "Aurora", "Granite", "Photon", "Meridian", "Cinder", "Juniper", "Basalt",
];
const COMPANY_SUFFIXES: &[&str] = &[
    "byte", "ML", "Labs", "Systems", "Data", "Cloud", "AI", "Works", "Robotics", "Bio",
];
const TECH_INDUSTRIES: &[&str] = &[
    "Software Development",
    "Artificial Intelligence",
    "Semiconductors",
    "Computer Hardware",
    "Research",
    "Financial Services",
    "Robotics",
    "IT Services and IT Consulting",
];
const OTHER_INDUSTRIES: &[&str] = &[
    "Retail",
    "Hospitality",
    "Real Estate",
    "Food and Beverage",
    "Staffing and Recruiting",
];
const LOCATIONS: &[&str] = &[
    "Stockholm, Sweden",
    "Berlin, Germany",
    "London, United Kingdom",
    "Paris, France",
    "Amsterdam, Netherlands",
    "Bengaluru, India",
    "San Francisco, United States",
    "New York, United States",
    "Lisbon, Portugal",
    "Warsaw, Poland",
    "Zurich, Switzerland",
    "Toronto, Canada",
    "Singapore",
    "Tallinn, Estonia",
    "Milan, Italy",
];
const SIZES: &[&str] = &[
    "1-10",
    "11-50",
    "51-200",
    "201-500",
    "501-1000",
    "1001-5000",
    "5001-10000",
];
const TOPICS: &[&str] = &[
    "Postgres at scale",
    "zero-downtime schema migrations",
    "LLM evaluation",
    "Rust in production",
    "edge inference",
    "observability",
    "chip design verification",
    "quantum error correction",
    "platform engineering",
    "privacy-preserving ML",
    "robot motion planning",
    "event sourcing",
];
const CONFERENCES: &[&str] = &[
    "QCon",
    "KubeCon",
    "PyData",
    "RustConf",
    "NeurIPS",
    "Strange Loop",
    "FOSDEM",
    "GOTO",
];

const SPEAKER_ROLES: &[&str] = &[
    "CTO",
    "Co-founder & CTO",
    "Co-founder & CEO",
    "Principal Engineer",
    "Staff Engineer",
    "VP Engineering",
    "Head of Research",
    "Research Scientist",
    "Chief Architect",
    "Distinguished Engineer",
];
const SPONSOR_ROLES: &[&str] = &[
    "Head of Developer Marketing",
    "VP Marketing",
    "Director of Partnerships",
    "Head of Developer Relations",
    "Chief Marketing Officer",
    "VP Business Development",
    "Head of Community",
    "Director of Field Marketing",
];
const OTHER_ROLES: &[&str] = &[
    "Office Manager",
    "Recruiter",
    "Account Executive",
    "HR Business Partner",
    "Store Manager",
    "Executive Assistant",
    "Junior Accountant",
    "Customer Support Specialist",
];

fn pick<'a, R: Rng>(rng: &mut R, items: &'a [&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or_default()
}

/// The person with index `id`, drawn from `rng`.
pub fn generate_person<R: Rng>(id: u32, rng: &mut R) -> SandboxPerson {
    let roll: f64 = rng.random();
    let archetype = if roll < 0.40 {
        Archetype::Speaker
    } else if roll < 0.70 {
        Archetype::Sponsor
    } else {
        Archetype::Other
    };
    let first_name = pick(rng, FIRST_NAMES).to_owned();
    let last_name = pick(rng, LAST_NAMES);
    let name = format!("{first_name} {last_name}");
    let company = format!(
        "{}{}",
        pick(rng, COMPANY_PARTS),
        pick(rng, COMPANY_SUFFIXES)
    );
    let topic = pick(rng, TOPICS);
    let conference = pick(rng, CONFERENCES);
    let (position, industry, about, recent_activity) = match archetype {
        Archetype::Speaker => {
            let position = pick(rng, SPEAKER_ROLES);
            let about = match rng.random_range(0..4) {
                0 => format!(
                    "Building {topic} tooling at {company}. Spoke at {conference} about what broke and why."
                ),
                1 => format!(
                    "Engineer and author; my book on {topic} came out last year. Occasional keynote speaker."
                ),
                2 => format!(
                    "Maintainer of an open-source project for {topic}. I write and talk about it a lot."
                ),
                _ => format!(
                    "Researcher working on {topic}; papers at {conference} and a few invited talks."
                ),
            };
            let activity = match rng.random_range(0..3) {
                0 => format!("Posted slides from a talk on {topic}"),
                1 => format!("Shared a long post about lessons learned in {topic}"),
                _ => format!("Announced a workshop on {topic} at {conference}"),
            };
            (position, pick(rng, TECH_INDUSTRIES), about, activity)
        }
        Archetype::Sponsor => {
            let position = pick(rng, SPONSOR_ROLES);
            let about = match rng.random_range(0..3) {
                0 => format!("Growing {company}'s developer community; we sponsor the events engineers actually attend."),
                1 => "Partnerships and brand for a developer platform. Always looking for the right technical audiences.".to_owned(),
                _ => format!("Leading go-to-market at {company}, selling to engineering teams."),
            };
            let activity = match rng.random_range(0..3) {
                0 => format!("Shared {company}'s booth photos from {conference}"),
                1 => "Posted about a developer survey the team ran".to_owned(),
                _ => format!("Announced {company}'s new partner programme"),
            };
            (position, pick(rng, TECH_INDUSTRIES), about, activity)
        }
        Archetype::Other => {
            let position = pick(rng, OTHER_ROLES);
            let about =
                "Organised, friendly, and always learning. Open to new opportunities.".to_owned();
            let activity = "Congratulated a colleague on a work anniversary".to_owned();
            (position, pick(rng, OTHER_INDUSTRIES), about, activity)
        }
    };
    let slug = format!(
        "{}-{}-s{id}",
        first_name.to_lowercase(),
        last_name.to_lowercase()
    );
    SandboxPerson {
        id,
        first_name,
        name,
        position: position.to_owned(),
        company,
        company_size: pick(rng, SIZES).to_owned(),
        industry: industry.to_owned(),
        location: pick(rng, LOCATIONS).to_owned(),
        about,
        recent_activity,
        linkedin_url: format!("https://www.linkedin.com/in/{slug}"),
        is_connection: rng.random_bool(0.15),
        archetype,
        responsiveness: rng.random_range(0.3..1.0),
    }
}
