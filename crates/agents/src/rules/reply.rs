//! Replies: intent (Interested, NotInterested, InfoRequest, Referral, OutOfOffice,
//! DoNotContact), sentiment, a confidence, the return date of an out-of-office reply and the
//! person a referral names.
//!
//! The checks run from the costliest mistake down. DoNotContact comes first and is biased:
//! any request to stop, unsubscribe or be removed wins over everything else in the reply,
//! because messaging someone who asked us to stop is the worst error this product can make.
//! Then out-of-office (an autoresponder may mention a colleague to contact), referral ("not
//! the right person, talk to …" is a referral, not a refusal), refusal (negation-aware:
//! "not interested" refuses, "not sure yet but interested" does not), interest, questions.
//! A reply that matches nothing goes to a human as an InfoRequest with a low confidence:
//! NotInterested would stop outreach for good on a guess.

use std::fmt;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use salesdept_events::domain::{Confidence, Intent, Sentiment};

use super::text::{BREAK, Tokens};
use crate::llm::answers::ReplyAssessment;

/// Requests to stop. Matched anywhere, negated or not: "please don't contact me" and "do not
/// contact me" are the same request.
const DO_NOT_CONTACT: &[&str] = &[
    "stop messaging",
    "stop contacting",
    "stop emailing",
    "stop sending",
    "stop writing",
    "stop spamming",
    "stop reaching out",
    "stop this",
    "please stop",
    "stop it",
    "spam*",
    "remove me",
    "take me off",
    "unsubscribe*",
    "opt out",
    "opt me out",
    "do not contact",
    "don't contact",
    "dont contact",
    "do not message",
    "don't message",
    "dont message",
    "do not email",
    "don't email",
    "do not reach out",
    "don't reach out",
    "never contact",
    "leave me alone",
    "gdpr",
    "report you",
    "reporting you",
    "report this",
    "unsolicited",
    "harass*",
    "block you",
    "blocking you",
    "cease",
    "no more messages",
    "delete my data",
    "delete my details",
    "lose my number",
    "off your list",
    "off your mailing list",
    "remove my",
    "remove us",
    "delete my",
    "my details from",
    "never signed up",
    "didn't sign up",
    "did not sign up",
    "never asked for",
    "didn't ask for",
    "did not ask for",
    "never agreed",
    "reporting this",
    "reported you",
    "reported this",
    "flagging this",
    "flag this",
    "blocking you",
    "i'm blocking",
    "i am blocking",
    "blocked you",
    "will block",
    "go away",
    "get lost",
    "leave me be",
    "no more messages",
    "no more emails",
    "no more of this",
    "don't want to hear",
    "do not want to hear",
    "don't want any more",
    "this is harassment",
];

const OUT_OF_OFFICE: &[&str] = &[
    "out of the office",
    "out of office",
    "ooo",
    "automatic reply",
    "auto reply",
    "autoreply",
    "automated reply",
    "auto response",
    "on holiday",
    "on vacation",
    "on leave",
    "parental leave",
    "maternity leave",
    "paternity leave",
    "sick leave",
    "annual leave",
    "away from the office",
    "away until",
    "limited access",
    "travelling and will",
    "traveling and will",
    "i am travelling",
    "i'm travelling",
    "i am traveling",
    "i'm traveling",
    "currently away",
    "will respond when",
    "will reply when",
    "back in the office",
    "on sabbatical",
    "i'm away",
    "i am away",
    "away on",
    "unavailable until",
    "not available until",
    "offline until",
    "will be delayed",
    "slow to respond",
    "limited connectivity",
    "out until",
];

const REFERRAL: &[&str] = &[
    "not the right person",
    "wrong person",
    "talk to",
    "speak to",
    "reach out to",
    "get in touch with",
    "contact my",
    "contact our",
    "ask my",
    "ask our",
    "ask their",
    "best to ask",
    "my colleague",
    "our colleague",
    "colleague of mine",
    "cc'd",
    "cc'ed",
    "ccd",
    "cc",
    "copied in",
    "loop in",
    "looped in",
    "looping in",
    "forwarded",
    "forwarding",
    "i'll forward",
    "handle*",
    "in charge of",
    "owns partnerships",
    "better fit",
    "better person",
    "better placed",
    "better contact",
    "owns events",
    "responsible for events",
    "moved on from",
    "no longer at",
    "no longer with",
    "left the company",
    "have left",
    "i've left",
    "point you to",
    "introduce you",
    "try him",
    "try her",
    "try them",
    "try contacting",
    "try reaching",
    "decides on",
    "the person to",
    "i left",
    "no longer work",
    "don't work there",
    "do not work there",
    "moved to another",
    "new role at",
];

/// Referral cues that also mean the person helped actively (looped someone in).
const ACTIVE_REFERRAL: &[&str] = &[
    "cc'd",
    "cc'ed",
    "ccd",
    "cc",
    "copied in",
    "loop in",
    "looped in",
    "looping in",
    "forwarded",
    "forwarding",
    "i'll forward",
    "introduce you",
];

const NOT_INTERESTED: &[&str] = &[
    "not interested",
    "no thanks",
    "no thank you",
    "not for me",
    "not for us",
    "not a fit",
    "not a good fit",
    "we'll pass",
    "i'll pass",
    "pass on this",
    "not at this time",
    "not right now",
    "not now",
    "can't commit",
    "cannot commit",
    "can't make it",
    "won't be able",
    "not able to",
    "unable to",
    "already allocated",
    "already spent",
    "no budget",
    "budget is spent",
    "timing is bad",
    "bad timing",
    "next year",
    "not this year",
    "stepping back",
    "step back",
    "poor roi",
    "no roi",
    "don't do",
    "we don't",
    "not looking",
    "decline",
    "declining",
    "cutting costs",
    "cost cutting",
    "meh",
    "not relevant",
    "no capacity",
    "too busy",
    "not going to",
    "i don't think so",
    "not something we*",
    "not a priority",
    "no priority",
    "frozen",
    "freeze",
    "fully booked",
    "booked up",
    "not a good time",
    "bad time",
    "no bandwidth",
    "not this time",
    "not for now",
    "can't do",
    "cannot do",
    "anymore",
    "any more",
    "have to decline",
    "not the right time",
    "no time",
];

/// Refusals that leave the door open: their sentiment is Neutral, not Negative.
const SOFT_REFUSAL: &[&str] = &[
    "next year",
    "timing",
    "thanks for thinking of me",
    "thank you for thinking of me",
    "another time",
    "in the future",
    "keep me in mind",
    "stepping back",
    "maybe later",
    "not right now",
    "not at this time",
    "this time",
    "for now",
];

/// Interest. "interested" is checked separately, negation-aware.
const INTERESTED: &[&str] = &[
    "love to",
    "would love",
    "i'd love",
    "love the idea",
    "sounds great",
    "sounds good",
    "sounds interesting",
    "sounds fun",
    "keen",
    "happy to",
    "glad to",
    "count me in",
    "absolutely",
    "yes",
    "yep",
    "yeah",
    "sure",
    "let's",
    "honoured",
    "honored",
    "great timing",
    "i'm in",
    "definitely",
    "delighted",
    "excited",
    "would be great",
    "put me down",
    "send it over",
    "send over",
    "take a look",
    "let me know more",
    "schedule",
    "calendar",
    "book a call",
    "quick call",
    "hop on a call",
    "set up a call",
    "let's discuss",
    "let's talk",
    "happy to chat",
    "count us in",
    "we're in",
    "sign me up",
    "i accept",
    "i'd be glad",
    "i would be glad",
    "works for me",
    "great idea",
    "fantastic",
    "wonderful",
    "perfect",
    "great",
    "love it",
    "brilliant",
    "awesome",
    "excellent",
    "up for it",
    "i'm up for",
    "i could do",
    "i can do",
    "i could give",
    "i can give",
    "i'll submit",
    "we'll submit",
    "i'd like to",
    "we'd like to",
    "i would like to",
    "we would like to",
    "sounds like a plan",
    "works for us",
    "talk to you",
    "speak to you",
    "talk next week",
    "chat next week",
    "meet next week",
];

/// Referral cues that need no named target: the person left, so the company is the lead.
const LEFT_THE_COMPANY: &[&str] = &[
    "moved on from",
    "no longer at",
    "no longer with",
    "left the company",
    "i left",
    "i've left",
    "have left",
    "no longer work",
    "don't work there",
    "do not work there",
    "moved to another",
    "new role at",
];

/// A clause that is only one of these is a request to stop ("Stop.", "Please stop!").
const STOP_CLAUSES: &[&[&str]] = &[
    &["stop"],
    &["please", "stop"],
    &["stop", "please"],
    &["enough"],
];

/// A clause that is only one of these is a refusal ("No.", "Nope!").
const NO_CLAUSES: &[&[&str]] = &[&["no"], &["nope"], &["nah"], &["no", "sorry"], &["pass"]];

const QUESTION_WORDS: &[&str] = &[
    "what",
    "what's",
    "how",
    "who",
    "when",
    "where",
    "which",
    "why",
    "is there",
    "is this",
    "is it",
    "are there",
    "are you",
    "do you",
    "does",
    "could you",
    "can you",
    "would you",
    "more details",
    "more information",
    "more info",
    "tell me more",
    "details",
    "share",
];

/// The rules engine's analysis of a reply: the fallback of the `analyse_reply` task.
pub fn analyse_reply(text: &str) -> ReplyAssessment {
    let tokens = Tokens::new(text);
    let (intent, confidence, cue) = intent_of(text, &tokens);
    let sentiment = sentiment_of(&tokens, intent);
    let return_date = (intent == Intent::OutOfOffice)
        .then(|| find_return_date(&tokens))
        .flatten();
    let referred_person = (intent == Intent::Referral)
        .then(|| find_referred_person(text))
        .flatten();
    let rationale = match cue {
        Some(cue) => format!("{intent}: the reply says {cue:?}"),
        None => format!("{intent}: no clear cue; a human should read it"),
    };
    ReplyAssessment {
        sentiment,
        intent,
        confidence: Confidence::clamped(confidence),
        return_date: return_date.map(|date| date.to_string()),
        referred_person,
        rationale,
    }
}

fn intent_of(text: &str, tokens: &Tokens) -> (Intent, f64, Option<&'static str>) {
    if let Some(cue) = tokens.first_of(DO_NOT_CONTACT) {
        return (Intent::DoNotContact, 0.95, Some(cue));
    }
    if has_clause(tokens, STOP_CLAUSES) {
        return (Intent::DoNotContact, 0.9, Some("stop"));
    }
    if tokens.is_empty() {
        return (Intent::InfoRequest, 0.2, None);
    }
    if let Some(cue) = tokens.first_of(OUT_OF_OFFICE) {
        return (Intent::OutOfOffice, 0.9, Some(cue));
    }
    if let Some(cue) = back_on_a_date(tokens) {
        return (Intent::OutOfOffice, 0.8, Some(cue));
    }
    if let Some(cue) = tokens.first_of(REFERRAL) {
        // "I'll talk to the team and get back to you" is not a referral to a person; a
        // referral names someone or a role to go to.
        let names_someone = REFERRAL_TARGETS
            .iter()
            .any(|target| tokens.contains(target))
            || find_referred_person(text).is_some();
        if names_someone || tokens.contains_any(LEFT_THE_COMPANY) {
            return (Intent::Referral, 0.8, Some(cue));
        }
    }
    let refusal = NOT_INTERESTED
        .iter()
        .copied()
        .find(|phrase| tokens.contains(phrase))
        .or_else(|| negated_interest(tokens))
        .or_else(|| has_clause(tokens, NO_CLAUSES).then_some("no"));
    if let Some(cue) = refusal {
        return (Intent::NotInterested, 0.85, Some(cue));
    }
    let interest: Vec<&'static str> = INTERESTED
        .iter()
        .copied()
        .chain(["interested"])
        .filter(|phrase| tokens.contains_affirmed(phrase))
        .collect();
    if let Some(first) = interest.first() {
        let confidence = if interest.len() >= 2 { 0.9 } else { 0.75 };
        return (Intent::Interested, confidence, Some(first));
    }
    if text.contains('?') || tokens.contains_any(QUESTION_WORDS) {
        let cue = tokens.first_of(QUESTION_WORDS).unwrap_or("?");
        return (Intent::InfoRequest, 0.75, Some(cue));
    }
    (Intent::InfoRequest, 0.35, None)
}

/// Who or what a referral sends us to.
const REFERRAL_TARGETS: &[&str] = &[
    "colleague",
    "co founder",
    "cofounder",
    "founder",
    "lead",
    "manager",
    "head",
    "director",
    "team",
    "cmo",
    "ceo",
    "cto",
    "cro",
    "vp",
    "marketing",
    "partnerships",
    "events",
    "him",
    "her",
    "them",
    "they",
    "she",
    "he",
    "person",
    "replacement",
    "successor",
    "instead",
];

/// Whether a whole clause is one of `clauses`.
fn has_clause(tokens: &Tokens, clauses: &[&[&str]]) -> bool {
    tokens
        .as_slice()
        .split(|token| token == BREAK)
        .any(|clause| {
            clauses.iter().any(|wanted| {
                clause.len() == wanted.len() && clause.iter().zip(*wanted).all(|(a, b)| a == b)
            })
        })
}

/// "interested" under a negation ("I am not really interested").
fn negated_interest(tokens: &Tokens) -> Option<&'static str> {
    tokens
        .contains_negated("interested")
        .then_some("not … interested")
}

/// "back Monday", "back on the 2nd", "returning 12 January": out of office without the words.
fn back_on_a_date(tokens: &Tokens) -> Option<&'static str> {
    let words = tokens.as_slice();
    for (index, word) in words.iter().enumerate() {
        if matches!(word.as_str(), "back" | "returning" | "return")
            && parse_date_at(words, index + 1).is_some()
        {
            return Some("back on a date");
        }
    }
    None
}

fn sentiment_of(tokens: &Tokens, intent: Intent) -> Sentiment {
    match intent {
        Intent::DoNotContact => Sentiment::Negative,
        Intent::OutOfOffice | Intent::InfoRequest => Sentiment::Neutral,
        Intent::Interested => Sentiment::Positive,
        Intent::NotInterested if tokens.contains_any(SOFT_REFUSAL) => Sentiment::Neutral,
        Intent::NotInterested => Sentiment::Negative,
        // Looping a colleague in is help; pointing elsewhere is neutral.
        Intent::Referral if tokens.contains_any(ACTIVE_REFERRAL) => Sentiment::Positive,
        Intent::Referral => Sentiment::Neutral,
    }
}

/// A return date as a reply gives it: any of weekday, day of month and month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReturnDate {
    pub weekday: Option<Weekday>,
    pub day: Option<u32>,
    pub month: Option<u32>,
    /// A full date (an ISO date given by a model, or a day, month and year).
    pub year: Option<i32>,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

impl ReturnDate {
    /// Reads what [`fmt::Display`] writes, ISO dates (`2027-01-12`) and phrases like
    /// "12 January", "Monday 3rd", "the 2nd", "June".
    pub fn parse(text: &str) -> Option<Self> {
        if let Ok(date) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
            return Some(Self {
                weekday: None,
                day: Some(date.day()),
                month: Some(date.month()),
                year: Some(date.year()),
            });
        }
        let tokens = Tokens::new(text);
        parse_date_at(tokens.as_slice(), 0)
    }

    /// The first date on or after `reference` (the day the reply came) that fits; None if
    /// nothing within a year does.
    pub fn resolve(&self, reference: NaiveDate) -> Option<NaiveDate> {
        if let (Some(year), Some(month), Some(day)) = (self.year, self.month, self.day) {
            return NaiveDate::from_ymd_opt(year, month, day);
        }
        (0..=400u64)
            .filter_map(|offset| reference.checked_add_days(Days::new(offset)))
            .find(|date| {
                self.weekday.is_none_or(|weekday| date.weekday() == weekday)
                    && self.day.is_none_or(|day| date.day() == day)
                    && self.month.is_none_or(|month| date.month() == month)
                    // A month alone means its first day.
                    && (self.day.is_some() || self.weekday.is_some() || date.day() == 1)
            })
    }
}

impl fmt::Display for ReturnDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(year), Some(month), Some(day)) = (self.year, self.month, self.day) {
            return write!(f, "{year:04}-{month:02}-{day:02}");
        }
        let mut parts = Vec::new();
        if let Some(weekday) = self.weekday {
            parts.push(weekday_name(weekday).to_owned());
        }
        if let Some(day) = self.day {
            parts.push(match (self.weekday, self.month) {
                (_, Some(_)) => day.to_string(),
                (Some(_), None) => format!("{day}{}", ordinal_suffix(day)),
                (None, None) => format!("the {day}{}", ordinal_suffix(day)),
            });
        }
        if let Some(month) = self.month {
            let name = MONTHS[(month - 1) as usize];
            parts.push(format!("{}{}", name[..1].to_uppercase(), &name[1..]));
        }
        f.write_str(&parts.join(" "))
    }
}

fn weekday_name(weekday: Weekday) -> &'static str {
    match weekday {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

fn ordinal_suffix(day: u32) -> &'static str {
    match (day % 10, day % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    }
}

fn weekday_of(word: &str) -> Option<Weekday> {
    Some(match word {
        "monday" | "mon" => Weekday::Mon,
        "tuesday" | "tue" | "tues" => Weekday::Tue,
        "wednesday" | "wed" => Weekday::Wed,
        "thursday" | "thu" | "thur" | "thurs" => Weekday::Thu,
        "friday" | "fri" => Weekday::Fri,
        "saturday" | "sat" => Weekday::Sat,
        "sunday" | "sun" => Weekday::Sun,
        _ => return None,
    })
}

fn month_of(word: &str) -> Option<u32> {
    let index = match word {
        "sept" => Some(8),
        // Three-letter abbreviations (jan, mar, dec); "may" is both.
        short if short.len() == 3 => MONTHS.iter().position(|month| month.starts_with(short)),
        full => MONTHS.iter().position(|month| *month == full),
    };
    index.map(|index| index as u32 + 1)
}

/// A day of month: `3`, `3rd`, `14th`.
fn day_of(word: &str) -> Option<u32> {
    let digits: String = word.chars().take_while(char::is_ascii_digit).collect();
    let rest = &word[digits.len()..];
    if digits.is_empty() || !matches!(rest, "" | "st" | "nd" | "rd" | "th") {
        return None;
    }
    digits.parse().ok().filter(|day| (1..=31).contains(day))
}

fn year_of(word: &str) -> Option<i32> {
    (word.len() == 4)
        .then(|| word.parse().ok())
        .flatten()
        .filter(|year| (2000..=2100).contains(year))
}

/// A date expression starting at `start` (after skipping `on`, `the`, `of`, `until`…).
fn parse_date_at(words: &[String], start: usize) -> Option<ReturnDate> {
    let mut date = ReturnDate {
        weekday: None,
        day: None,
        month: None,
        year: None,
    };
    let mut index = start;
    let mut seen_any = false;
    while let Some(word) = words.get(index) {
        let word = word.as_str();
        if word == BREAK {
            break;
        }
        if let Some(weekday) = weekday_of(word).filter(|_| date.weekday.is_none()) {
            date.weekday = Some(weekday);
        } else if let Some(month) = month_of(word).filter(|_| date.month.is_none()) {
            date.month = Some(month);
        } else if let Some(day) = day_of(word).filter(|_| date.day.is_none()) {
            date.day = Some(day);
        } else if let Some(year) = year_of(word).filter(|_| seen_any && date.year.is_none()) {
            date.year = Some(year);
        } else if matches!(
            word,
            "on" | "the" | "of" | "until" | "till" | "til" | "by" | "from"
        ) {
            if seen_any && word != "the" && word != "of" {
                break;
            }
        } else {
            break;
        }
        seen_any = date.weekday.is_some() || date.day.is_some() || date.month.is_some();
        index += 1;
    }
    if date.year.is_some() && (date.month.is_none() || date.day.is_none()) {
        date.year = None;
    }
    seen_any.then_some(date)
}

/// The return date named after "until", "back", "returning"… in an out-of-office reply.
fn find_return_date(tokens: &Tokens) -> Option<ReturnDate> {
    let words = tokens.as_slice();
    words
        .iter()
        .enumerate()
        .filter(|(_, word)| {
            matches!(
                word.as_str(),
                "until" | "till" | "til" | "back" | "returning" | "return" | "returns" | "after"
            )
        })
        .find_map(|(index, _)| parse_date_at(words, index + 1))
}

/// Words that start with a capital but are not names.
const NOT_NAMES: &[&str] = &[
    "I",
    "I'm",
    "I've",
    "I'll",
    "I'd",
    "Hi",
    "Hello",
    "Hey",
    "Thanks",
    "Thank",
    "Please",
    "My",
    "Our",
    "Their",
    "His",
    "Her",
    "He",
    "She",
    "They",
    "You",
    "Your",
    "We",
    "The",
    "Feel",
    "Sure",
    "Yes",
    "No",
    "Best",
    "Regards",
    "Cheers",
    "Kind",
    "Also",
    "Team",
    "CC",
    "Events",
    "Marketing",
    "Partnerships",
    "Sales",
    "Dear",
];

/// Words after which a name in a referral usually stands.
const NAME_CUES: &[&str] = &[
    "to",
    "contact",
    "ask",
    "colleague",
    "cofounder",
    "founder",
    "lead",
    "manager",
    "head",
    "director",
    "cc'd",
    "cc'ed",
    "ccd",
    "cc",
    "with",
    "ping",
    "try",
    "email",
    "is",
    "named",
    "called",
    "cmo",
    "ceo",
    "cto",
    "vp",
    "owner",
    "boss",
    "partner",
    "copied",
    "looped",
    "in",
    "marketing",
    "partnerships",
    "sales",
    "events",
    "relations",
    "devrel",
    "community",
];

/// The person a referral names: capitalised words after a cue ("talk to Jana Kral", "my
/// colleague Pedro"), or an email address.
pub fn find_referred_person(text: &str) -> Option<String> {
    if let Some(email) = text
        .split_whitespace()
        .map(|word| word.trim_matches(|c: char| !c.is_alphanumeric()))
        .find(|word| {
            word.split_once('@')
                .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
        })
    {
        return Some(email.to_owned());
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    for (index, raw) in words.iter().enumerate() {
        let word = raw.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'');
        if !is_capitalised_name(word) || index == 0 {
            continue;
        }
        let previous = words[index - 1];
        let cue = previous
            .trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
            .to_lowercase()
            .replace("co-founder", "cofounder");
        let cue_word = cue.rsplit('-').next().unwrap_or(&cue);
        if !NAME_CUES.contains(&cue_word) {
            continue;
        }
        let mut name = vec![word];
        // The name goes on while words stay capitalised and no punctuation ends it.
        let mut ended = raw.ends_with([',', '.', ';', ':', '!', '?']);
        for next in words.iter().skip(index + 1).take(2) {
            let clean = next.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'');
            if ended || !is_capitalised_name(clean) {
                break;
            }
            name.push(clean);
            ended = next.ends_with([',', '.', ';', ':', '!', '?']);
        }
        return Some(name.join(" "));
    }
    None
}

fn is_capitalised_name(word: &str) -> bool {
    let mut chars = word.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let rest: Vec<char> = chars.collect();
    first.is_uppercase()
        && !rest.is_empty()
        && rest
            .iter()
            .all(|c| c.is_alphabetic() || *c == '\'' || *c == '-')
        && rest.iter().any(|c| c.is_lowercase())
        && !NOT_NAMES.contains(&word)
        && weekday_of(&word.to_lowercase()).is_none()
        && month_of(&word.to_lowercase()).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_and_sentiments() {
        use Intent::*;
        use Sentiment::*;
        let cases: &[(&str, Intent, Sentiment, &str)] = &[
            ("Please stop messaging me.", DoNotContact, Negative, "stop"),
            (
                "Remove me from your list, thanks!",
                DoNotContact,
                Negative,
                "remove me beats thanks",
            ),
            (
                "I'm interested, but please don't contact me on LinkedIn again.",
                DoNotContact,
                Negative,
                "a stop request wins over interest",
            ),
            (
                "This is spam. Reporting you.",
                DoNotContact,
                Negative,
                "spam",
            ),
            (
                "Under GDPR, delete my data.",
                DoNotContact,
                Negative,
                "GDPR",
            ),
            ("UNSUBSCRIBE", DoNotContact, Negative, "shouting"),
            (
                "Do not contact me again",
                DoNotContact,
                Negative,
                "do not contact",
            ),
            (
                "Not interested, thanks.",
                NotInterested,
                Negative,
                "plain refusal",
            ),
            (
                "I'm not really interested in this.",
                NotInterested,
                Negative,
                "negated interest",
            ),
            ("No thanks.", NotInterested, Negative, "no thanks"),
            (
                "Not sure yet but interested - tell me more",
                Interested,
                Positive,
                "negation stays in its clause",
            ),
            (
                "Maybe next year, the timing isn't right.",
                NotInterested,
                Neutral,
                "soft refusal",
            ),
            (
                "No worries at all - send it over!",
                Interested,
                Positive,
                "no worries is not no",
            ),
            (
                "I'd love to speak. When is it?",
                Interested,
                Positive,
                "interest with a question",
            ),
            (
                "What is the audience size?",
                InfoRequest,
                Neutral,
                "a question",
            ),
            (
                "Not sure yet - what would it involve?",
                InfoRequest,
                Neutral,
                "unsure question",
            ),
            (
                "Out of office until 12 January.",
                OutOfOffice,
                Neutral,
                "ooo",
            ),
            (
                "Back on Monday 3rd, limited email until then.",
                OutOfOffice,
                Neutral,
                "back on",
            ),
            (
                "I'm not the right person, talk to Ana Silva.",
                Referral,
                Neutral,
                "a referral is not a refusal",
            ),
            (
                "My colleague Raj runs our events, I've cc'd him.",
                Referral,
                Positive,
                "looped in",
            ),
            (
                "Let me loop in Dana Cole; she runs our sponsorships.",
                Referral,
                Positive,
                "loop in a named colleague",
            ),
            (
                "Not something we're pursuing at the moment.",
                NotInterested,
                Negative,
                "contraction after the refusal",
            ),
            ("Stop.", DoNotContact, Negative, "a bare stop"),
            (
                "I never signed up for this list.",
                DoNotContact,
                Negative,
                "never signed up",
            ),
            ("No.", NotInterested, Negative, "a bare no"),
            (
                "No worries, no rush - what's the date?",
                InfoRequest,
                Neutral,
                "no worries is not a refusal",
            ),
            (
                "I left the company in May.",
                Referral,
                Neutral,
                "left: the company is the lead",
            ),
            (
                "I'll talk to you next week about the details",
                Interested,
                Positive,
                "talk to you is not a referral",
            ),
            ("Ok.", InfoRequest, Neutral, "no cue: a human reads it"),
        ];
        for (text, intent, sentiment, why) in cases {
            let answer = analyse_reply(text);
            assert_eq!(answer.intent, *intent, "{why}: {text:?} {answer:?}");
            assert_eq!(answer.sentiment, *sentiment, "{why}: {text:?} {answer:?}");
        }
    }

    #[test]
    fn return_dates_are_read_and_resolved() {
        let received = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(); // a Tuesday
        let cases: &[(&str, &str, NaiveDate)] = &[
            (
                "I'm out of office, back on 12 January.",
                "12 January",
                NaiveDate::from_ymd_opt(2027, 1, 12).unwrap(),
            ),
            (
                "Out of the office until Monday 7th.",
                "Monday 7th",
                NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
            ),
            (
                "On holiday - back Monday.",
                "Monday",
                NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
            ),
            (
                "Automatic reply: I'll respond when I'm back on the 2nd.",
                "the 2nd",
                NaiveDate::from_ymd_opt(2026, 12, 2).unwrap(),
            ),
            (
                "On parental leave until June.",
                "June",
                NaiveDate::from_ymd_opt(2027, 6, 1).unwrap(),
            ),
            (
                "Out of office until March 14th",
                "14 March",
                NaiveDate::from_ymd_opt(2027, 3, 14).unwrap(),
            ),
        ];
        for (text, shown, resolved) in cases {
            let answer = analyse_reply(text);
            assert_eq!(answer.intent, Intent::OutOfOffice, "{text:?}");
            assert_eq!(answer.return_date.as_deref(), Some(*shown), "{text:?}");
            let date = ReturnDate::parse(shown).unwrap();
            assert_eq!(date.resolve(received), Some(*resolved), "{text:?}");
        }
        assert_eq!(analyse_reply("Out of office.").return_date, None);
        assert_eq!(
            ReturnDate::parse("2027-01-12").unwrap().resolve(received),
            NaiveDate::from_ymd_opt(2027, 1, 12)
        );
    }

    #[test]
    fn referrals_name_the_person() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "Please talk to our events lead, Jana Kral.",
                Some("Jana Kral"),
            ),
            (
                "My colleague Pedro handles developer events.",
                Some("Pedro"),
            ),
            (
                "You should reach out to Maria Lopez, she owns partnerships now.",
                Some("Maria Lopez"),
            ),
            (
                "Feel free to contact my co-founder Marek instead.",
                Some("Marek"),
            ),
            ("Best to ask their new CMO.", None),
            (
                "Talk to events@example.com instead.",
                Some("events@example.com"),
            ),
        ];
        for (text, person) in cases {
            let answer = analyse_reply(text);
            assert_eq!(answer.intent, Intent::Referral, "{text:?}");
            assert_eq!(answer.referred_person.as_deref(), *person, "{text:?}");
        }
    }
}
