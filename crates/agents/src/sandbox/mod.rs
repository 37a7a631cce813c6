//! The sandbox LinkedIn: a seeded synthetic network of thousands of plausible people who accept
//! invitations and answer messages after realistic delays, the embedded default that needs no
//! account and no network. It is deterministic for a seed: every draw for a person comes from a
//! generator seeded by (network seed, person, how many times they were contacted), so the same
//! agents' decisions give the same answers whatever the order of other people's events.
//!
//! People answer like people do: a better-fitting, more personal message (their first name,
//! their company, something they actually did) gets more and more positive replies; some are
//! out of office, some refer a colleague, some ask never to be contacted again. Every send is
//! recorded so tests can check that the agents kept the limits.

mod people;
mod port;
mod replies;

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use people::{Archetype, SandboxPerson, generate_person};
pub use port::SandboxLinkedIn;
use salesdept_events::domain::Intent;

/// LinkedIn's limit for a connection note.
pub const NOTE_LIMIT: usize = 300;
/// LinkedIn's limit for a message.
pub const MESSAGE_LIMIT: usize = 8000;

/// What the sandbox refuses, as LinkedIn would.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    #[error("no profile at {0}")]
    UnknownProfile(String),
    #[error("{0} is not a connection: invite first")]
    NotConnected(String),
    #[error("{0} was already invited")]
    AlreadyInvited(String),
    #[error("no invitation {0} was sent")]
    UnknownInvitation(String),
    #[error("the invitation {0} was already accepted")]
    AlreadyAccepted(String),
    #[error("{what} is {length} characters, above LinkedIn's limit of {limit}")]
    TooLong {
        what: &'static str,
        length: usize,
        limit: usize,
    },
}

/// Which people a search wants. Empty lists match everything.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SandboxSearch {
    pub position_keywords: Vec<String>,
    pub industries: Vec<String>,
    pub locations: Vec<String>,
    pub offset: usize,
    pub limit: usize,
}

/// A send the sandbox received.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SandboxSend {
    pub kind: SendKind,
    pub account_id: String,
    pub profile_url: String,
    pub text: String,
    pub at: DateTime<Utc>,
    pub provider_id: String,
    pub idempotency_key: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    Invitation,
    Message,
}

/// A reply a person will have written by `received_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SandboxReply {
    pub provider_message_id: String,
    pub profile_url: String,
    pub thread_id: String,
    pub text: String,
    pub received_at: DateTime<Utc>,
    /// What the person meant (the sandbox's truth, for measuring the classifiers).
    pub intent: Intent,
}

/// An invitation a person will have accepted by `at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SandboxAcceptance {
    pub profile_url: String,
    pub at: DateTime<Utc>,
}

#[derive(Default)]
struct State {
    sends: Vec<SandboxSend>,
    /// Idempotency key → the provider id of the send it made.
    sent_keys: HashMap<String, String>,
    /// Per person: how many times contacted (the draw counter).
    contacts: HashMap<u32, u32>,
    invited: HashMap<u32, DateTime<Utc>>,
    /// Accepted invitations, with when they were (or will be) accepted.
    acceptances: Vec<(u32, DateTime<Utc>)>,
    replies: Vec<SandboxReply>,
    /// Once someone asked not to be contacted, they never answer again.
    silenced: HashMap<u32, bool>,
    /// Withdrawn invitations (provider id → when).
    withdrawn: HashMap<String, DateTime<Utc>>,
}

/// The synthetic network.
pub struct SandboxNetwork {
    seed: u64,
    people: Vec<SandboxPerson>,
    by_url: HashMap<String, usize>,
    state: Mutex<State>,
}

impl std::fmt::Debug for SandboxNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxNetwork")
            .field("seed", &self.seed)
            .field("people", &self.people.len())
            .finish_non_exhaustive()
    }
}

impl SandboxNetwork {
    /// `size` people drawn from `seed`.
    pub fn generate(seed: u64, size: u32) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let people: Vec<SandboxPerson> =
            (0..size).map(|id| generate_person(id, &mut rng)).collect();
        let by_url = people
            .iter()
            .enumerate()
            .map(|(index, person)| (person.linkedin_url.clone(), index))
            .collect();
        Self {
            seed,
            people,
            by_url,
            state: Mutex::new(State::default()),
        }
    }

    pub fn people(&self) -> &[SandboxPerson] {
        &self.people
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn person(&self, url: &str) -> Result<&SandboxPerson, SandboxError> {
        let normal = salesdept_events::domain::LinkedInUrl::parse(url)
            .map(|url| url.as_str().to_owned())
            .unwrap_or_else(|_| url.to_owned());
        self.by_url
            .get(&normal)
            .map(|&index| &self.people[index])
            .ok_or_else(|| SandboxError::UnknownProfile(url.to_owned()))
    }

    /// The generator for a person's `draw`-th contact.
    fn rng_for(&self, person: u32, draw: u32) -> ChaCha8Rng {
        let digest = Sha256::digest(format!("{}:{person}:{draw}", self.seed).as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&digest);
        ChaCha8Rng::from_seed(bytes)
    }

    /// People matching the search, in a stable order.
    pub fn search(&self, search: &SandboxSearch) -> Vec<SandboxPerson> {
        let any = |wanted: &[String], text: &str| {
            wanted.is_empty() || wanted.iter().any(|w| contains_words(text, w))
        };
        self.people
            .iter()
            .filter(|person| {
                any(&search.position_keywords, &person.position)
                    && any(&search.industries, &person.industry)
                    && any(&search.locations, &person.location)
            })
            .skip(search.offset)
            .take(if search.limit == 0 {
                usize::MAX
            } else {
                search.limit
            })
            .cloned()
            .collect()
    }

    /// One profile by URL (any spelling LinkedIn accepts).
    pub fn profile(&self, url: &str) -> Result<SandboxPerson, SandboxError> {
        self.person(url).cloned()
    }

    /// Whether the person is a connection at `now` (already, or by an accepted invitation).
    pub fn is_connected(&self, url: &str, now: DateTime<Utc>) -> Result<bool, SandboxError> {
        let person = self.person(url)?;
        if person.is_connection {
            return Ok(true);
        }
        Ok(self
            .state()
            .acceptances
            .iter()
            .any(|&(id, at)| id == person.id && at <= now))
    }

    /// Sends a connection request. The same idempotency key twice sends once.
    pub fn send_invitation(
        &self,
        account_id: &str,
        url: &str,
        note: Option<&str>,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<String, SandboxError> {
        let person = self.person(url)?.clone();
        if let Some(note) = note
            && note.chars().count() > NOTE_LIMIT
        {
            return Err(SandboxError::TooLong {
                what: "the connection note",
                length: note.chars().count(),
                limit: NOTE_LIMIT,
            });
        }
        let mut state = self.state();
        if let Some(id) = state.sent_keys.get(idempotency_key) {
            return Ok(id.clone());
        }
        if person.is_connection || state.invited.contains_key(&person.id) {
            return Err(SandboxError::AlreadyInvited(url.to_owned()));
        }
        let draw = next_draw(&mut state, person.id);
        let mut rng = self.rng_for(person.id, draw);
        let personal = note.map_or(0.0, |note| personalisation(&person, note));
        let fit = match person.archetype {
            Archetype::Speaker | Archetype::Sponsor => 1.0,
            Archetype::Other => 0.45,
        };
        let accept_probability =
            (0.25 + 0.45 * person.responsiveness * fit + 0.15 * personal).min(0.95);
        if rng.random_bool(accept_probability) {
            let delay = Duration::minutes(rng.random_range(90..(4 * 24 * 60)));
            state.acceptances.push((person.id, now + delay));
        }
        let provider_id = format!("sbx-inv-{}-{draw}", person.id);
        state.invited.insert(person.id, now);
        state
            .sent_keys
            .insert(idempotency_key.to_owned(), provider_id.clone());
        state.sends.push(SandboxSend {
            kind: SendKind::Invitation,
            account_id: account_id.to_owned(),
            profile_url: person.linkedin_url.clone(),
            text: note.unwrap_or_default().to_owned(),
            at: now,
            provider_id: provider_id.clone(),
            idempotency_key: idempotency_key.to_owned(),
        });
        Ok(provider_id)
    }

    /// Sends a message to a connection. The same idempotency key twice sends once.
    pub fn send_message(
        &self,
        account_id: &str,
        url: &str,
        text: &str,
        idempotency_key: &str,
        now: DateTime<Utc>,
    ) -> Result<String, SandboxError> {
        let person = self.person(url)?.clone();
        if text.chars().count() > MESSAGE_LIMIT {
            return Err(SandboxError::TooLong {
                what: "the message",
                length: text.chars().count(),
                limit: MESSAGE_LIMIT,
            });
        }
        if !self.is_connected(url, now)? {
            return Err(SandboxError::NotConnected(url.to_owned()));
        }
        let mut state = self.state();
        if let Some(id) = state.sent_keys.get(idempotency_key) {
            return Ok(id.clone());
        }
        let draw = next_draw(&mut state, person.id);
        let provider_id = format!("sbx-msg-{}-{draw}", person.id);
        let earlier_messages = state
            .sends
            .iter()
            .filter(|send| {
                send.kind == SendKind::Message && send.profile_url == person.linkedin_url
            })
            .count();
        let silenced = state.silenced.get(&person.id).copied().unwrap_or(false);
        let already_replied = state
            .replies
            .iter()
            .any(|reply| reply.profile_url == person.linkedin_url);
        if !silenced && !already_replied {
            let mut rng = self.rng_for(person.id, draw);
            if let Some(reply) =
                replies::draw_reply(&person, text, earlier_messages, now, &provider_id, &mut rng)
            {
                if reply.intent == Intent::DoNotContact {
                    state.silenced.insert(person.id, true);
                }
                state.replies.push(reply);
            }
        }
        state
            .sent_keys
            .insert(idempotency_key.to_owned(), provider_id.clone());
        state.sends.push(SandboxSend {
            kind: SendKind::Message,
            account_id: account_id.to_owned(),
            profile_url: person.linkedin_url.clone(),
            text: text.to_owned(),
            at: now,
            provider_id: provider_id.clone(),
            idempotency_key: idempotency_key.to_owned(),
        });
        Ok(provider_id)
    }

    /// Takes back the pending invitation `provider_id`: the person can no longer accept it
    /// (an acceptance still to come is cancelled). Withdrawing it again changes nothing; one
    /// the person already accepted cannot be withdrawn.
    pub fn withdraw_invitation(
        &self,
        provider_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SandboxError> {
        let mut state = self.state();
        if state.withdrawn.contains_key(provider_id) {
            return Ok(());
        }
        let Some(url) = state
            .sends
            .iter()
            .find(|send| send.kind == SendKind::Invitation && send.provider_id == provider_id)
            .map(|send| send.profile_url.clone())
        else {
            return Err(SandboxError::UnknownInvitation(provider_id.to_owned()));
        };
        let person = self.person(&url)?.id;
        if state
            .acceptances
            .iter()
            .any(|&(id, at)| id == person && at <= now)
        {
            return Err(SandboxError::AlreadyAccepted(provider_id.to_owned()));
        }
        state.acceptances.retain(|&(id, _)| id != person);
        state.invited.remove(&person);
        state.withdrawn.insert(provider_id.to_owned(), now);
        Ok(())
    }

    /// When the invitation `provider_id` was withdrawn, if it was.
    pub fn withdrawn_at(&self, provider_id: &str) -> Option<DateTime<Utc>> {
        self.state().withdrawn.get(provider_id).copied()
    }

    /// Whether a send with this idempotency key reached the network (for reconciling after a
    /// crash), and its provider id.
    pub fn find_send(&self, idempotency_key: &str) -> Option<String> {
        self.state().sent_keys.get(idempotency_key).cloned()
    }

    /// Replies written in (`since`, `now`].
    pub fn replies_between(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> Vec<SandboxReply> {
        let mut replies: Vec<SandboxReply> = self
            .state()
            .replies
            .iter()
            .filter(|reply| reply.received_at > since && reply.received_at <= now)
            .cloned()
            .collect();
        replies.sort_by(|a, b| {
            a.received_at
                .cmp(&b.received_at)
                .then_with(|| a.provider_message_id.cmp(&b.provider_message_id))
        });
        replies
    }

    /// Invitations accepted in (`since`, `now`].
    pub fn acceptances_between(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<SandboxAcceptance> {
        let mut accepted: Vec<SandboxAcceptance> = self
            .state()
            .acceptances
            .iter()
            .filter(|&&(_, at)| at > since && at <= now)
            .map(|&(id, at)| SandboxAcceptance {
                profile_url: self.people[id as usize].linkedin_url.clone(),
                at,
            })
            .collect();
        accepted.sort_by(|a, b| {
            a.at.cmp(&b.at)
                .then_with(|| a.profile_url.cmp(&b.profile_url))
        });
        accepted
    }

    /// The earliest reply or acceptance after `now`: the next time the world changes by itself.
    pub fn next_event_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let state = self.state();
        let replies = state.replies.iter().map(|reply| reply.received_at);
        let accepted = state.acceptances.iter().map(|&(_, at)| at);
        replies.chain(accepted).filter(|&at| at > now).min()
    }

    /// Every send so far, in order.
    pub fn sends(&self) -> Vec<SandboxSend> {
        self.state().sends.clone()
    }
}

/// Whether `text` contains `phrase` as whole words, ignoring case ("CTO" is not in "Director").
pub fn contains_words(text: &str, phrase: &str) -> bool {
    let text = text.to_lowercase();
    let phrase = phrase.trim().to_lowercase();
    if phrase.is_empty() {
        return false;
    }
    text.match_indices(&phrase).any(|(start, _)| {
        let before = text[..start].chars().next_back();
        let after = text[start + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

fn next_draw(state: &mut State, person: u32) -> u32 {
    let counter = state.contacts.entry(person).or_insert(0);
    *counter += 1;
    *counter
}

/// 0–1: how much a text speaks to this person (their name, company, what they did).
pub fn personalisation(person: &SandboxPerson, text: &str) -> f64 {
    let text = text.to_lowercase();
    let mut score = 0.0;
    if text.contains(&person.first_name.to_lowercase()) {
        score += 0.3;
    }
    if text.contains(&person.company.to_lowercase()) {
        score += 0.3;
    }
    // Words of four letters or more from what they wrote or did, echoed in the message.
    let own_words: Vec<String> = format!("{} {}", person.about, person.recent_activity)
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| word.len() >= 6)
        .map(str::to_owned)
        .collect();
    let echoed = own_words
        .iter()
        .filter(|word| text.contains(word.as_str()))
        .count();
    score += (echoed as f64 * 0.1).min(0.4);
    score.min(1.0)
}

#[cfg(test)]
mod tests;
