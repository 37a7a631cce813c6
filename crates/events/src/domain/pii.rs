//! A person's personal data, kept in one sub-object of every event body.
//!
//! Every event that mentions something personal about a prospect (their name, profile, the
//! messages we sent them, their replies, notes about them) puts it in a field named `pii`
//! holding a [`Pii`]. Nothing personal sits at an event's top level, so the reliability layer
//! can encrypt that one object with a per-person key (and forgetting the person deletes the
//! key) without reshaping any event. Top-level fields are what auditors and projections may
//! read in clear: ids, positions, companies, kinds, scores, sentiments, intents, timestamps.

use serde::{Deserialize, Serialize};

use super::values::LinkedInUrl;

/// Personal fields of one prospect. Every field is optional: an event fills only those it
/// records, and a forgotten person's events decode to an empty `Pii`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pii {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The normalised profile URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linkedin_url: Option<LinkedInUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// What the person posted or did recently (a personalisation hook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_activity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The text of a message or invitation note sent to the person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_text: Option<String>,
    /// The text of the person's reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_text: Option<String>,
    /// A note written about the person (by a human, or a reason given for a decision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// An explanation an LLM or the rules engine wrote about the person (it quotes their
    /// profile or reply, so it is personal too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
}

impl Pii {
    /// No personal field at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Only a message text.
    pub fn message(text: impl Into<String>) -> Self {
        Self {
            message_text: Some(text.into()),
            ..Self::default()
        }
    }

    /// Only a reply text.
    pub fn reply(text: impl Into<String>) -> Self {
        Self {
            reply_text: Some(text.into()),
            ..Self::default()
        }
    }

    /// Only a note.
    pub fn note(text: impl Into<String>) -> Self {
        Self {
            note: Some(text.into()),
            ..Self::default()
        }
    }

    /// Only a rationale.
    pub fn rationale(text: impl Into<String>) -> Self {
        Self {
            rationale: Some(text.into()),
            ..Self::default()
        }
    }

    /// Only a note, when there is one.
    pub fn optional_note(text: Option<String>) -> Self {
        Self {
            note: text,
            ..Self::default()
        }
    }

    /// Overwrites this profile's fields with those set in `update` (a profile update).
    pub fn merge(&mut self, update: &Pii) {
        macro_rules! take {
            ($($field:ident),*) => {
                $(if update.$field.is_some() {
                    self.$field = update.$field.clone();
                })*
            };
        }
        take!(
            name,
            linkedin_url,
            headline,
            about,
            location,
            recent_activity,
            email,
            message_text,
            reply_text,
            note,
            rationale
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_pii_serialises_as_an_empty_object() {
        assert_eq!(
            serde_json::to_value(Pii::default()).unwrap(),
            serde_json::json!({})
        );
        assert!(
            serde_json::from_value::<Pii>(serde_json::json!({}))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn merge_takes_only_the_fields_set() {
        let mut profile = Pii {
            name: Some("Maya".into()),
            about: Some("old".into()),
            ..Pii::default()
        };
        profile.merge(&Pii {
            about: Some("new".into()),
            ..Pii::default()
        });
        assert_eq!(profile.name.as_deref(), Some("Maya"));
        assert_eq!(profile.about.as_deref(), Some("new"));
    }
}
