//! Profiles: what a raw profile says (seniority, function, company size, industry fit,
//! speaking and sponsoring signals, recent activity), the Speaker / Sponsor / Other decision
//! and the 1–10 quality score with its named factors.
//!
//! The decision follows the business's definition rather than any particular wording:
//! Speaker = founders, CTOs, engineers and researchers with something to say (talks, papers,
//! books, open source, podcasts — unless negated, as in "no longer speaking"); Sponsor =
//! people who can buy a sponsorship for a company selling to technologists (C-level,
//! marketing, developer relations, partnerships, business development); Speaker wins when
//! both fit; Other otherwise.

use std::collections::BTreeMap;
use std::fmt;

use salesdept_events::domain::{Classification, Confidence, QualityScore};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::text::Tokens;
use crate::llm::answers::ProfileAssessment;

/// A prospect's profile as the sources give it (the fixtures' shape). Every field is
/// untrusted text and may be empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Profile {
    pub name: String,
    pub position: String,
    pub company: String,
    /// LinkedIn's bands: `1`, `1-10`, `11-50`, `51-200`, `201-500`, `501-1000`, `1001-5000`,
    /// `5001-10000`, `10001+`.
    pub company_size: String,
    pub industry: String,
    pub location: String,
    pub about: String,
    pub recent_activity: String,
    pub linkedin_url: String,
}

/// How senior a position is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Seniority {
    /// Chief …, CTO, CEO, CMO, CRO, president.
    CLevel,
    /// Founder, co-founder, owner.
    Founder,
    /// VP, vice president.
    Vp,
    /// Head of …, director.
    HeadDirector,
    /// Lead, principal, staff, distinguished, fellow, architect.
    LeadPrincipal,
    Manager,
    /// Senior individual contributor.
    Senior,
    /// Individual contributor.
    Individual,
    /// Student, intern, junior, coordinator, assistant.
    Entry,
    /// No position given.
    Unknown,
}

/// What a person does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    Engineering,
    Research,
    /// CEO, founder, president, managing director: runs the company.
    Executive,
    Marketing,
    DeveloperRelations,
    Partnerships,
    BusinessDevelopment,
    Sales,
    Events,
    Product,
    HumanResources,
    Consulting,
    Other,
}

impl Function {
    /// The functions whose people speak at technology events about their own work.
    pub fn speaks(self) -> bool {
        matches!(
            self,
            Self::Engineering | Self::Research | Self::Executive | Self::Consulting
        )
    }

    /// The functions that buy sponsorships.
    pub fn buys_sponsorships(self) -> bool {
        matches!(
            self,
            Self::Marketing
                | Self::DeveloperRelations
                | Self::Partnerships
                | Self::BusinessDevelopment
        )
    }
}

/// The company's size band.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompanySize {
    /// One person.
    Solo,
    /// 2–10.
    Micro,
    /// 11–50.
    Small,
    /// 51–200.
    Medium,
    /// 201–1000.
    MidMarket,
    /// 1001–5000.
    Large,
    /// 5001 and more.
    Enterprise,
    Unknown,
}

impl CompanySize {
    /// Reads LinkedIn's bands (`51-200`, `10001+`) or a plain head count.
    pub fn parse(text: &str) -> Self {
        let digits: Vec<u64> = text
            .split(|c: char| !c.is_ascii_digit() && c != ',')
            .filter_map(|part| part.replace(',', "").parse().ok())
            .collect();
        // The band's lower bound decides; "10001+" has only one.
        let Some(&low) = digits.first() else {
            return Self::Unknown;
        };
        let high = digits.get(1).copied().unwrap_or(low);
        match (low, high) {
            (_, 0..=1) => Self::Solo,
            (0..=10, _) if high <= 10 => Self::Micro,
            (0..=50, _) if high <= 50 => Self::Small,
            (0..=200, _) if high <= 200 => Self::Medium,
            (0..=1000, _) if high <= 1000 => Self::MidMarket,
            (0..=5000, _) if high <= 5000 => Self::Large,
            _ => Self::Enterprise,
        }
    }
}

/// Whether the company's industry sells to, or is made of, technologists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndustryFit {
    /// Software, AI, cloud, data, security, developer tools, deep tech, research.
    Core,
    /// Technology-heavy industries (finance, telecoms, education…) or a non-tech industry
    /// whose profile describes technical work.
    Adjacent,
    /// Retail, staffing, hospitality, weddings…
    Outside,
    Unknown,
}

/// A kind of evidence in the about text or the recent activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Keynote,
    Talk,
    Paper,
    Book,
    OpenSource,
    Podcast,
    Writing,
    /// Sponsoring, booths, event partnerships, co-marketing.
    Sponsorship,
    /// Owning a marketing or events budget.
    Budget,
}

impl SignalKind {
    pub fn is_speaking(self) -> bool {
        !self.is_sponsoring()
    }

    pub fn is_sponsoring(self) -> bool {
        matches!(self, Self::Sponsorship | Self::Budget)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keynote => "keynote",
            Self::Talk => "talks",
            Self::Paper => "papers",
            Self::Book => "books",
            Self::OpenSource => "open source",
            Self::Podcast => "podcast",
            Self::Writing => "writing",
            Self::Sponsorship => "sponsorships",
            Self::Budget => "budget",
        }
    }

    /// What the signal adds to the Speaker case.
    fn speaker_weight(self) -> f64 {
        match self {
            Self::Keynote | Self::Paper | Self::Book => 3.0,
            Self::Talk => 2.5,
            Self::OpenSource | Self::Podcast => 2.0,
            Self::Writing => 1.5,
            Self::Sponsorship | Self::Budget => 0.0,
        }
    }

    /// What the signal adds to the Sponsor case.
    fn sponsor_weight(self) -> f64 {
        match self {
            Self::Sponsorship => 2.5,
            Self::Budget => 1.5,
            _ => 0.0,
        }
    }
}

/// The phrases of each signal (see [`Tokens::find`] for the pattern language).
const SIGNAL_PHRASES: &[(SignalKind, &[&str])] = &[
    (SignalKind::Keynote, &["keynote*"]),
    (
        SignalKind::Talk,
        &[
            "spoke",
            "speak",
            "speaks",
            "speaking at",
            "speaking on",
            "speaking about",
            "speaker*",
            "talk",
            "talks",
            "slides",
            "presented",
            "presenting at",
            "panelist*",
            "panel at",
            "webinar*",
            "conference talk*",
            "speaking",
        ],
    ),
    (
        SignalKind::Paper,
        &[
            "paper",
            "papers",
            "neurips",
            "icml",
            "iclr",
            "acl",
            "cvpr",
            "vldb",
            "sigmod",
            "usenix",
            "osdi",
            "sosp",
            "arxiv",
            "peer reviewed",
            "phd",
            "publications",
            "published in",
            "preprint*",
            "journal*",
            "proceedings",
        ],
    ),
    (
        SignalKind::Book,
        &[
            "author of",
            "co author",
            "coauthor",
            "book",
            "books",
            "o'reilly",
            "oreilly",
            "manning",
            "pragmatic bookshelf",
        ],
    ),
    (
        SignalKind::OpenSource,
        &[
            "open source",
            "maintainer*",
            "contributor to",
            "committer",
            "github",
            "oss",
        ],
    ),
    (SignalKind::Podcast, &["podcast*"]),
    (
        SignalKind::Writing,
        &[
            "writing about",
            "writes about",
            "write about",
            "blog",
            "blog post*",
            "blogger",
            "articles",
            "newsletter author",
        ],
    ),
    (
        SignalKind::Sponsorship,
        &[
            "sponsor*",
            "booth*",
            "exhibit*",
            "event partner*",
            "co marketing",
            "event presence",
            "events programme",
            "events program",
            "developer events",
            "back developer conferences",
            "conference partner*",
            "partner with",
            "meetup programme",
            "meetup program",
            "community programme*",
            "trade show*",
            "stand at",
            "events calendar",
            "conferences to",
        ],
    ),
    (
        SignalKind::Budget,
        &["budget*", "event spend", "marketing spend"],
    ),
];

/// Words in the position that make a talk signal a sales pitch rather than a talk: "speaking
/// slots" are bought, not given.
const BOUGHT_SPEAKING: &[&str] = &["speaking slot*", "speaker slot*"];

/// One signal found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Signal {
    pub kind: SignalKind,
    /// The pattern that matched.
    pub phrase: &'static str,
    /// Negated in its clause ("no longer speaking", "not event budgets").
    pub negated: bool,
}

/// How much the recent activity says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// Nothing recent.
    None,
    /// Active, about something else.
    Some,
    /// A talk, paper, podcast, sponsorship… in the recent activity itself.
    Relevant,
}

/// Everything the rules read from a profile.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProfileFeatures {
    pub seniority: Seniority,
    pub function: Function,
    pub company_size: CompanySize,
    pub industry_fit: IndustryFit,
    pub signals: Vec<Signal>,
    pub activity: Activity,
}

impl ProfileFeatures {
    /// The distinct signal kinds found without a negation.
    pub fn affirmed(&self) -> Vec<SignalKind> {
        let mut kinds: Vec<SignalKind> = self
            .signals
            .iter()
            .filter(|signal| !signal.negated)
            .map(|signal| signal.kind)
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    /// The distinct signal kinds found only under a negation.
    pub fn negated(&self) -> Vec<SignalKind> {
        let affirmed = self.affirmed();
        let mut kinds: Vec<SignalKind> = self
            .signals
            .iter()
            .filter(|signal| signal.negated && !affirmed.contains(&signal.kind))
            .map(|signal| signal.kind)
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }
}

/// Reads a profile.
pub fn extract(profile: &Profile) -> ProfileFeatures {
    let position = Tokens::new(&profile.position);
    let about = Tokens::new(&profile.about);
    let activity = Tokens::new(&profile.recent_activity);
    let function = function_of(&position);
    let seniority = seniority_of(&position);
    let mut signals = find_signals(&about);
    let activity_signals = find_signals(&activity);
    let activity_level = if activity.is_empty()
        || activity.contains_any(&["no recent activity", "no activity", "none"])
    {
        Activity::None
    } else if activity_signals.iter().any(|signal| !signal.negated) {
        Activity::Relevant
    } else {
        Activity::Some
    };
    signals.extend(activity_signals);
    ProfileFeatures {
        seniority,
        function,
        company_size: CompanySize::parse(&profile.company_size),
        industry_fit: industry_fit(profile, &about, &activity),
        signals,
        activity: activity_level,
    }
}

fn find_signals(tokens: &Tokens) -> Vec<Signal> {
    let bought_speaking = tokens.contains_any(BOUGHT_SPEAKING);
    let mut signals = Vec::new();
    for (kind, phrases) in SIGNAL_PHRASES {
        if *kind == SignalKind::Talk && bought_speaking {
            continue;
        }
        for phrase in *phrases {
            for start in tokens.find(phrase) {
                signals.push(Signal {
                    kind: *kind,
                    phrase,
                    negated: tokens.negated_at(start),
                });
            }
        }
    }
    signals
}

fn function_of(position: &Tokens) -> Function {
    // Order matters: "HR Business Partner" is HR, "Head of Developer Marketing" is marketing,
    // "Founder & CTO" is engineering, "Product Marketing Manager" is marketing.
    let rules: &[(Function, &[&str])] = &[
        (
            Function::HumanResources,
            &[
                "recruit*",
                "talent",
                "hr",
                "human resources",
                "people",
                "people operations",
            ],
        ),
        (
            Function::DeveloperRelations,
            &[
                "developer relations",
                "devrel",
                "developer advocate",
                "advocate",
                "evangelist",
                "community",
            ],
        ),
        (
            Function::Partnerships,
            &["partnership*", "alliance*", "partner"],
        ),
        (
            Function::BusinessDevelopment,
            &["business development", "bd", "bizdev"],
        ),
        (
            Function::Marketing,
            &[
                "marketing",
                "marketer",
                "cmo",
                "brand",
                "growth",
                "demand generation",
            ],
        ),
        (
            Function::Sales,
            &[
                "sales",
                "account executive",
                "account manager",
                "cro",
                "revenue",
                "sales development",
            ],
        ),
        (
            Function::Research,
            &["research*", "scientist", "professor", "postdoc*", "phd"],
        ),
        (
            Function::Engineering,
            &[
                "engineer*",
                "developer",
                "cto",
                "chief technology",
                "chief technical",
                "architect",
                "programmer",
                "sre",
                "devops",
                "software",
                "technical",
                "tech lead",
                "chief scientist",
            ],
        ),
        (Function::Events, &["event", "events"]),
        (
            Function::Executive,
            &[
                "ceo",
                "chief executive",
                "founder",
                "cofounder",
                "president",
                "managing director",
                "owner",
                "coo",
                "chief operating",
                "general manager",
            ],
        ),
        (Function::Product, &["product"]),
        (
            Function::Consulting,
            &["consultant", "consulting", "advisor", "adviser"],
        ),
    ];
    rules
        .iter()
        .find(|(_, phrases)| position.contains_any(phrases))
        .map_or(Function::Other, |(function, _)| *function)
}

fn seniority_of(position: &Tokens) -> Seniority {
    if position.is_empty() {
        return Seniority::Unknown;
    }
    let rules: &[(Seniority, &[&str])] = &[
        (
            Seniority::Entry,
            &[
                "student",
                "intern",
                "internship",
                "junior",
                "trainee",
                "apprentice",
                "coordinator",
                "assistant",
            ],
        ),
        (Seniority::Founder, &["founder", "cofounder", "owner"]),
        (
            Seniority::CLevel,
            &[
                "chief",
                "cto",
                "ceo",
                "cmo",
                "cro",
                "coo",
                "cfo",
                "cpo",
                "cio",
                "ciso",
                "president",
                "managing director",
            ],
        ),
        (Seniority::Vp, &["vp", "vice president", "svp", "evp"]),
        (Seniority::HeadDirector, &["head", "director"]),
        (
            Seniority::LeadPrincipal,
            &[
                "distinguished",
                "principal",
                "staff",
                "fellow",
                "lead",
                "architect",
            ],
        ),
        (Seniority::Manager, &["manager"]),
        (Seniority::Senior, &["senior", "sr"]),
    ];
    rules
        .iter()
        .find(|(_, phrases)| position.contains_any(phrases))
        .map_or(Seniority::Individual, |(seniority, _)| *seniority)
}

fn industry_fit(profile: &Profile, about: &Tokens, activity: &Tokens) -> IndustryFit {
    const CORE: &[&str] = &[
        "software",
        "developer*",
        "artificial intelligence",
        "machine learning",
        "ai",
        "cloud",
        "data",
        "database*",
        "internet",
        "computer*",
        "security",
        "cybersecurity",
        "semiconductor*",
        "information technology",
        "it services",
        "saas",
        "open source",
        "technology",
        "tech",
        "robotics",
        "aerospace",
        "research",
        "quantum",
        "devops",
        "infrastructure",
        "platform*",
        "telecommunication*",
        "electronics",
        "biotech*",
    ];
    const ADJACENT: &[&str] = &[
        "financial",
        "fintech",
        "banking",
        "insurance",
        "automotive",
        "logistics",
        "education",
        "e learning",
        "gaming",
        "games",
        "media",
        "consulting",
        "engineering",
        "energy",
        "health tech",
        "space",
        "defense",
        "defence",
        "mobility",
    ];
    const OUTSIDE: &[&str] = &[
        "retail",
        "wholesale",
        "staffing",
        "recruiting",
        "translation",
        "events services",
        "wellness",
        "fitness",
        "manufacturing",
        "transportation",
        "hospital",
        "health care",
        "healthcare",
        "hospitality",
        "food",
        "restaurant*",
        "real estate",
        "legal",
        "law",
        "construction",
        "non profit",
        "nonprofit",
        "government",
        "farming",
        "agriculture",
        "beauty",
        "cosmetics",
        "wedding*",
        "apparel",
        "fashion",
        "furniture",
        "religious",
    ];
    // Technical work described in the profile itself lifts a non-tech industry to adjacent:
    // a platform team in a hospital, an open-source project run as a non-profit.
    const TECH_WORK: &[&str] = &[
        "open source",
        "software",
        "api",
        "apis",
        "platform team",
        "platform engineering",
        "developer*",
        "cloud",
        "kubernetes",
        "machine learning",
        "distributed systems",
        "devex",
        "data infrastructure",
    ];
    let industry = Tokens::new(&profile.industry);
    let fit = if industry.is_empty() {
        IndustryFit::Unknown
    } else if industry.contains_any(OUTSIDE) {
        IndustryFit::Outside
    } else if industry.contains_any(CORE) {
        IndustryFit::Core
    } else if industry.contains_any(ADJACENT) {
        IndustryFit::Adjacent
    } else {
        IndustryFit::Outside
    };
    let describes_tech_work = about.contains_any(TECH_WORK) || activity.contains_any(TECH_WORK);
    match fit {
        IndustryFit::Outside | IndustryFit::Unknown if describes_tech_work => IndustryFit::Adjacent,
        fit => fit,
    }
}

/// The evidence for each class, before the decision.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassScores {
    pub speaker: f64,
    pub sponsor: f64,
}

/// The lowest evidence that makes a Speaker.
pub const SPEAKER_THRESHOLD: f64 = 2.5;
/// The lowest evidence that makes a Sponsor.
pub const SPONSOR_THRESHOLD: f64 = 3.0;

/// The evidence for Speaker and for Sponsor.
pub fn class_scores(features: &ProfileFeatures) -> ClassScores {
    let affirmed = features.affirmed();
    let negated = features.negated();
    let ProfileFeatures {
        seniority,
        function,
        industry_fit,
        ..
    } = features;

    let speaker_role = match (function, seniority) {
        (_, Seniority::Entry) => 0.0,
        (Function::Engineering | Function::Research, s) => match s {
            Seniority::CLevel | Seniority::Founder => 3.0,
            Seniority::Vp | Seniority::HeadDirector => 2.5,
            Seniority::LeadPrincipal => 2.0,
            Seniority::Manager => 1.0,
            Seniority::Senior => 0.8,
            _ => 0.5,
        },
        (Function::Executive, Seniority::CLevel | Seniority::Founder) => 2.5,
        (Function::Executive | Function::Consulting, _) => 1.0,
        _ => 0.0,
    };
    // Talks and papers make a speaker of people who speak about their own work; a marketer's
    // "speaking slots" are part of a sponsorship.
    let signal_factor = if function.speaks() {
        1.0
    } else if matches!(function, Function::Other | Function::Product) {
        0.5
    } else {
        0.0
    };
    let speaking: f64 = affirmed
        .iter()
        .map(|kind| kind.speaker_weight())
        .sum::<f64>()
        .min(6.0)
        * signal_factor;
    let stopped_speaking = negated
        .iter()
        .filter(|kind| matches!(kind, SignalKind::Talk | SignalKind::Keynote))
        .count() as f64
        * 2.5;
    let speaker_industry = match industry_fit {
        IndustryFit::Core => 0.5,
        IndustryFit::Adjacent | IndustryFit::Unknown => 0.0,
        IndustryFit::Outside => -2.0,
    };
    let speaker = speaker_role + speaking - stopped_speaking + speaker_industry;

    let sponsor_role = match function {
        f if f.buys_sponsorships() => 2.5,
        Function::Executive | Function::Sales
            if matches!(seniority, Seniority::CLevel | Seniority::Founder) =>
        {
            2.5
        }
        Function::Engineering if *seniority == Seniority::CLevel => 1.5,
        Function::Events => 1.5,
        Function::Sales | Function::Product => 0.5,
        _ => 0.0,
    };
    let sponsor_seniority = if *function == Function::HumanResources {
        // HR people are senior, but they do not buy sponsorships for a product.
        0.0
    } else {
        match seniority {
            Seniority::CLevel | Seniority::Founder | Seniority::Vp => 1.0,
            Seniority::HeadDirector => 0.8,
            Seniority::LeadPrincipal => 0.5,
            Seniority::Manager => 0.3,
            Seniority::Entry => -1.5,
            _ => 0.0,
        }
    };
    let sponsoring: f64 = affirmed.iter().map(|kind| kind.sponsor_weight()).sum();
    let refused_sponsoring = if negated.iter().any(|kind| kind.is_sponsoring()) {
        3.0
    } else {
        0.0
    };
    let sponsor_industry = match industry_fit {
        IndustryFit::Core => 1.0,
        IndustryFit::Adjacent => 0.3,
        IndustryFit::Unknown => 0.0,
        IndustryFit::Outside => -3.0,
    };
    let sponsor =
        sponsor_role + sponsor_seniority + sponsoring - refused_sponsoring + sponsor_industry;
    ClassScores { speaker, sponsor }
}

/// The decision, its confidence and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub classification: Classification,
    pub confidence: Confidence,
    pub rationale: String,
}

/// Speaker, Sponsor or Other (Speaker wins when both fit).
pub fn classify(features: &ProfileFeatures) -> Decision {
    let scores = class_scores(features);
    let speaker_margin = scores.speaker - SPEAKER_THRESHOLD;
    let sponsor_margin = scores.sponsor - SPONSOR_THRESHOLD;
    let (classification, margin) = if speaker_margin >= 0.0 {
        (Classification::Speaker, speaker_margin)
    } else if sponsor_margin >= 0.0 {
        (Classification::Sponsor, sponsor_margin)
    } else {
        (Classification::Other, -speaker_margin.max(sponsor_margin))
    };
    // A decision right at a threshold is a coin toss; each point of margin adds confidence.
    let confidence = Confidence::clamped((0.5 + 0.08 * margin).clamp(0.35, 0.95));
    Decision {
        classification,
        confidence,
        rationale: rationale(features, classification),
    }
}

fn rationale(features: &ProfileFeatures, classification: Classification) -> String {
    let affirmed = features.affirmed();
    let negated = features.negated();
    let mut parts = vec![format!(
        "{} ({}, {})",
        classification,
        describe(features.function),
        describe(features.seniority)
    )];
    parts.push(format!("industry fit {}", describe(features.industry_fit)));
    if !affirmed.is_empty() {
        let kinds: Vec<&str> = affirmed.iter().map(|kind| kind.as_str()).collect();
        parts.push(format!("signals: {}", kinds.join(", ")));
    }
    if !negated.is_empty() {
        let kinds: Vec<&str> = negated.iter().map(|kind| kind.as_str()).collect();
        parts.push(format!("negated: {}", kinds.join(", ")));
    }
    parts.join("; ")
}

/// A snake_case name of a feature value, for rationales.
fn describe(value: impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|value| value.as_str().map(|text| text.replace('_', " ")))
        .unwrap_or_default()
}

/// The quality score and what each factor contributed (they sum to the score before it is
/// clamped to 1–10).
pub fn quality(features: &ProfileFeatures, classification: Classification) -> QualityBreakdown {
    let affirmed = features.affirmed();
    let mut factors = BTreeMap::new();
    factors.insert("base".to_owned(), 1.0);
    let seniority = match features.seniority {
        Seniority::CLevel | Seniority::Founder => 2.0,
        Seniority::Vp => 1.8,
        Seniority::HeadDirector => 1.5,
        Seniority::LeadPrincipal => 1.4,
        Seniority::Manager => 0.8,
        Seniority::Senior => 0.7,
        Seniority::Individual => 0.4,
        Seniority::Unknown => 0.3,
        Seniority::Entry => 0.0,
    };
    factors.insert("seniority".to_owned(), seniority);
    let role_fit = match classification {
        Classification::Speaker if features.function.speaks() => 1.5,
        Classification::Sponsor if features.function.buys_sponsorships() => 1.5,
        Classification::Sponsor
            if matches!(features.seniority, Seniority::CLevel | Seniority::Founder) =>
        {
            1.5
        }
        Classification::Speaker | Classification::Sponsor => 0.8,
        Classification::Other => 0.0,
    };
    factors.insert("role_fit".to_owned(), role_fit);
    let size = match features.company_size {
        CompanySize::Solo => 0.1,
        CompanySize::Micro => 0.2,
        CompanySize::Small => 0.6,
        CompanySize::Medium => 0.8,
        CompanySize::MidMarket => 0.9,
        CompanySize::Large => 0.8,
        CompanySize::Enterprise => 0.7,
        CompanySize::Unknown => 0.4,
    };
    factors.insert("company_size".to_owned(), size);
    let industry = match features.industry_fit {
        IndustryFit::Core => 1.0,
        IndustryFit::Adjacent => 0.5,
        IndustryFit::Unknown => 0.3,
        IndustryFit::Outside => 0.0,
    };
    factors.insert("industry_fit".to_owned(), industry);
    let signals = match classification {
        Classification::Speaker => affirmed
            .iter()
            .map(|kind| kind.speaker_weight() * 0.5)
            .sum::<f64>(),
        Classification::Sponsor => affirmed
            .iter()
            .map(|kind| kind.sponsor_weight() * 0.6)
            .sum::<f64>(),
        Classification::Other => 0.0,
    }
    .min(2.0);
    factors.insert("signals".to_owned(), signals);
    let activity = match features.activity {
        Activity::Relevant => 1.0,
        Activity::Some => 0.4,
        Activity::None => 0.0,
    };
    factors.insert("recent_activity".to_owned(), activity);
    let total: f64 = factors.values().sum();
    QualityBreakdown {
        score: QualityScore::clamped(total),
        factors,
    }
}

/// A quality score and its factors.
#[derive(Clone, Debug, PartialEq)]
pub struct QualityBreakdown {
    pub score: QualityScore,
    pub factors: BTreeMap<String, f64>,
}

/// The rules engine's whole answer for a profile: the fallback of the `classify_profile` task.
pub fn assess_profile(profile: &Profile) -> ProfileAssessment {
    let features = extract(profile);
    let decision = classify(&features);
    let quality = quality(&features, decision.classification);
    ProfileAssessment {
        classification: decision.classification,
        confidence: decision.confidence,
        quality_score: quality.score,
        rationale: decision.rationale,
        factors: Some(quality.factors),
    }
}

impl fmt::Display for Seniority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe(self))
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(position: &str, industry: &str, about: &str, activity: &str) -> Profile {
        Profile {
            name: "Ada Example".into(),
            position: position.into(),
            company: "Examplecorp".into(),
            company_size: "51-200".into(),
            industry: industry.into(),
            about: about.into(),
            recent_activity: activity.into(),
            ..Profile::default()
        }
    }

    #[test]
    fn positions_give_seniority_and_function() {
        let cases: &[(&str, Seniority, Function, &str)] = &[
            ("CTO", Seniority::CLevel, Function::Engineering, "acronym"),
            (
                "Founder & CTO",
                Seniority::Founder,
                Function::Engineering,
                "CTO decides function",
            ),
            (
                "Co-founder & CEO",
                Seniority::Founder,
                Function::Executive,
                "hyphenated founder",
            ),
            ("VP Engineering", Seniority::Vp, Function::Engineering, "vp"),
            (
                "Head of Developer Marketing",
                Seniority::HeadDirector,
                Function::Marketing,
                "developer marketing is marketing",
            ),
            (
                "Developer Relations Lead",
                Seniority::LeadPrincipal,
                Function::DeveloperRelations,
                "devrel before engineering",
            ),
            (
                "HR Business Partner",
                Seniority::Individual,
                Function::HumanResources,
                "HR before partnerships",
            ),
            (
                "Software Engineering Student",
                Seniority::Entry,
                Function::Engineering,
                "student",
            ),
            (
                "Product Marketing Manager",
                Seniority::Manager,
                Function::Marketing,
                "marketing before product",
            ),
            (
                "Chief Revenue Officer",
                Seniority::CLevel,
                Function::Sales,
                "revenue is sales",
            ),
            (
                "Senior Recruiter",
                Seniority::Senior,
                Function::HumanResources,
                "recruiter",
            ),
            (
                "Freelance Translator",
                Seniority::Individual,
                Function::Other,
                "no known function",
            ),
            ("", Seniority::Unknown, Function::Other, "no position"),
        ];
        for (position, seniority, function, why) in cases {
            let features = extract(&profile(position, "", "", ""));
            assert_eq!(features.seniority, *seniority, "{why}: {position:?}");
            assert_eq!(features.function, *function, "{why}: {position:?}");
        }
    }

    #[test]
    fn company_sizes_parse_linkedin_bands() {
        let cases: &[(&str, CompanySize)] = &[
            ("1", CompanySize::Solo),
            ("1-10", CompanySize::Micro),
            ("11-50", CompanySize::Small),
            ("51-200", CompanySize::Medium),
            ("201-500", CompanySize::MidMarket),
            ("501-1000", CompanySize::MidMarket),
            ("1001-5000", CompanySize::Large),
            ("5001-10000", CompanySize::Enterprise),
            ("10001+", CompanySize::Enterprise),
            ("1,200 employees", CompanySize::Large),
            ("", CompanySize::Unknown),
            ("unknown", CompanySize::Unknown),
        ];
        for (text, expected) in cases {
            assert_eq!(CompanySize::parse(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn classification_follows_role_signals_and_industry() {
        let cases: &[(Profile, Classification, &str)] = &[
            (
                profile("Chief Technology Officer", "Software Development", "", ""),
                Classification::Speaker,
                "a CTO of a software company is a speaker even without signals",
            ),
            (
                profile("Backend Developer", "Software Development", "", ""),
                Classification::Other,
                "an engineer without anything public to say",
            ),
            (
                profile(
                    "Backend Developer",
                    "Software Development",
                    "Maintainer of a popular open-source HTTP library; gave a talk at GopherCon.",
                    "",
                ),
                Classification::Speaker,
                "an engineer with talks and open source",
            ),
            (
                profile(
                    "CTO",
                    "Software Development",
                    "I am no longer speaking at conferences; focused on the team.",
                    "",
                ),
                Classification::Sponsor,
                "a CTO who stopped speaking is still a C-level buyer",
            ),
            (
                profile(
                    "Growth Marketing Lead",
                    "Developer Tools",
                    "We sponsor meetups for backend developers.",
                    "",
                ),
                Classification::Sponsor,
                "marketing at a developer-tools company with sponsorships",
            ),
            (
                profile(
                    "Marketing Manager",
                    "Software Development",
                    "I run launches, not event budgets or sponsorships.",
                    "",
                ),
                Classification::Other,
                "negated budget and sponsorship",
            ),
            (
                profile(
                    "Head of Partnerships",
                    "Restaurants",
                    "Partnerships with local farms.",
                    "",
                ),
                Classification::Other,
                "partnerships outside technology",
            ),
            (
                profile(
                    "Event Marketing Manager",
                    "Computer and Network Security",
                    "Sponsorships, booths and speaking slots at security summits.",
                    "",
                ),
                Classification::Sponsor,
                "bought speaking slots are not talks",
            ),
            (
                profile(
                    "Founder",
                    "Health, Wellness and Fitness",
                    "Founder of a pilates studio.",
                    "",
                ),
                Classification::Other,
                "a founder outside technology",
            ),
            (
                profile(
                    "Founder & CEO",
                    "Artificial Intelligence",
                    "Building agents for finance teams.",
                    "",
                ),
                Classification::Speaker,
                "a tech founder fits both: Speaker wins",
            ),
            (
                profile(
                    "Staff Engineer",
                    "Software Development",
                    "I used to speak at conferences but stepped back from speaking.",
                    "",
                ),
                Classification::Other,
                "past speaking is negated",
            ),
            (
                profile(
                    "Research Engineer",
                    "Semiconductors",
                    "Published in IEEE journals on chip verification.",
                    "",
                ),
                Classification::Speaker,
                "journal publications are papers",
            ),
            (
                profile(
                    "Talent Acquisition Lead",
                    "Software Development",
                    "Speaker at HR tech meetups",
                    "",
                ),
                Classification::Other,
                "recruiters are neither",
            ),
        ];
        for (profile, expected, why) in cases {
            let features = extract(profile);
            let decision = classify(&features);
            assert_eq!(
                decision.classification,
                *expected,
                "{why}: {features:?} {:?}",
                class_scores(&features)
            );
            assert!(!decision.rationale.is_empty());
        }
    }

    #[test]
    fn quality_factors_sum_to_the_score_and_reward_fit() {
        let strong = profile(
            "CTO",
            "Software Development",
            "Keynote speaker, author of a book on databases.",
            "Shared slides from her talk",
        );
        let weak = profile("Marketing Coordinator", "Retail", "Helping our shop.", "");
        let strong_answer = assess_profile(&strong);
        let weak_answer = assess_profile(&weak);
        let factors = strong_answer.factors.clone().unwrap();
        let sum: f64 = factors.values().sum();
        assert!(
            (QualityScore::clamped(sum).value() - strong_answer.quality_score.value()).abs() < 1e-9
        );
        for name in [
            "seniority",
            "role_fit",
            "company_size",
            "industry_fit",
            "signals",
            "recent_activity",
        ] {
            assert!(factors.contains_key(name), "factor {name} is missing");
        }
        assert!(
            strong_answer.quality_score.value() >= 8.0,
            "{strong_answer:?}"
        );
        assert!(weak_answer.quality_score.value() < 4.0, "{weak_answer:?}");
    }

    #[test]
    fn the_rules_are_deterministic() {
        let one = profile(
            "VP Marketing",
            "Data Infrastructure",
            "We sponsor events.",
            "Posted",
        );
        assert_eq!(assess_profile(&one), assess_profile(&one.clone()));
    }

    #[test]
    fn an_empty_profile_is_other_with_a_valid_score() {
        let answer = assess_profile(&Profile::default());
        assert_eq!(answer.classification, Classification::Other);
        assert!((1.0..=10.0).contains(&answer.quality_score.value()));
    }
}
