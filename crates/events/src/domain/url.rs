//! The `linkedin-url-<hash>` reservation stream: a LinkedIn profile becomes a lead only once.
//!
//! The Lead Finder first appends `url_reserved` here with expected version "no stream" (the
//! [`CommandHandler`](super::handler::CommandHandler) does that for an empty stream), then
//! creates the lead stream. Two finders racing on one profile: one append wins, the other
//! conflicts, reloads, and is refused with the winner's lead id.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::DomainError;
use super::event::{Aggregate, DecisionContext, domain_events};
use super::pii::Pii;
use super::values::LinkedInUrl;

domain_events! {
    /// Events of a `linkedin-url-<hash>` stream.
    pub enum UrlReservationEvent {
        UrlReserved(UrlReserved) = "url_reserved",
    }
}

/// The profile at this URL is lead `lead_id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UrlReserved {
    pub lead_id: Uuid,
    /// The stream's hash, so the reservation can be found without the URL.
    pub url_hash: String,
    /// The normalised URL itself.
    #[serde(default)]
    pub pii: Pii,
}

impl UrlReserved {
    pub fn new(lead_id: Uuid, url: &LinkedInUrl) -> Self {
        Self {
            lead_id,
            url_hash: url.hash(),
            pii: Pii {
                linkedin_url: Some(url.clone()),
                ..Pii::default()
            },
        }
    }
}

/// Claims the profile at `url` for `lead_id`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReserveUrl {
    pub lead_id: Uuid,
    pub url: LinkedInUrl,
}

/// Which lead holds the URL, if any.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UrlReservation {
    pub lead_id: Option<Uuid>,
}

impl Aggregate for UrlReservation {
    type Event = UrlReservationEvent;
    type Command = ReserveUrl;

    fn evolve(self, event: &UrlReservationEvent) -> Self {
        match event {
            UrlReservationEvent::UrlReserved(reserved) => Self {
                lead_id: Some(reserved.lead_id),
            },
        }
    }

    fn decide(
        &self,
        command: &ReserveUrl,
        _context: &DecisionContext,
    ) -> Result<Vec<UrlReservationEvent>, DomainError> {
        match self.lead_id {
            None => Ok(vec![UrlReserved::new(command.lead_id, &command.url).into()]),
            // The same claim again (a retried step): already done.
            Some(lead_id) if lead_id == command.lead_id => Ok(Vec::new()),
            Some(lead_id) => Err(DomainError::UrlAlreadyClaimed { lead_id }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::given;

    fn url() -> LinkedInUrl {
        LinkedInUrl::parse("https://www.linkedin.com/in/maya-lindqvist-d1/").unwrap()
    }

    #[test]
    fn an_unclaimed_url_is_reserved_for_the_lead() {
        let lead_id = Uuid::now_v7();
        given::<UrlReservation>([])
            .when(ReserveUrl {
                lead_id,
                url: url(),
            })
            .then([UrlReserved::new(lead_id, &url()).into()]);
    }

    #[test]
    fn a_claimed_url_is_refused_with_the_holder() {
        let (holder, other) = (Uuid::now_v7(), Uuid::now_v7());
        given::<UrlReservation>([UrlReserved::new(holder, &url()).into()])
            .when(ReserveUrl {
                lead_id: other,
                url: url(),
            })
            .then_error(DomainError::UrlAlreadyClaimed { lead_id: holder });
    }

    #[test]
    fn the_same_claim_again_is_a_no_op() {
        let holder = Uuid::now_v7();
        given::<UrlReservation>([UrlReserved::new(holder, &url()).into()])
            .when(ReserveUrl {
                lead_id: holder,
                url: url(),
            })
            .then([]);
    }

    #[test]
    fn the_url_is_personal_and_the_hash_is_not() {
        let body = serde_json::to_value(UrlReserved::new(Uuid::nil(), &url())).unwrap();
        assert_eq!(body["pii"]["linkedin_url"], url().as_str());
        assert_eq!(body["url_hash"], url().hash());
        assert!(body.get("linkedin_url").is_none());
    }
}
