//! The sandbox network behind the [`LinkedInPort`]: what the agents talk to on the embedded
//! defaults. One [`SandboxLinkedIn`] is one sending account on the shared network; time comes
//! from the [`Clock`] port, so in a simulation people accept and reply in simulated time.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use salesdept_events::domain::LinkedInUrl;

use super::{SandboxError, SandboxNetwork, SandboxPerson, SandboxSearch, contains_words};
use crate::clock::Clock;
use crate::linkedin::{
    ConnectionAccepted, IdempotencyKey, InvitationNote, LimitKind, LinkedInError, LinkedInPort,
    MessageText, Provider, ProviderProfile, Recipient, Reply, SearchCriteria, SentMessage,
};

/// One sending account on the sandbox network.
#[derive(Clone)]
pub struct SandboxLinkedIn {
    network: Arc<SandboxNetwork>,
    clock: Arc<dyn Clock>,
    account_id: String,
}

impl std::fmt::Debug for SandboxLinkedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxLinkedIn")
            .field("account_id", &self.account_id)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

impl SandboxLinkedIn {
    pub fn new(
        network: Arc<SandboxNetwork>,
        clock: Arc<dyn Clock>,
        account_id: impl Into<String>,
    ) -> Self {
        Self {
            network,
            clock,
            account_id: account_id.into(),
        }
    }

    pub fn network(&self) -> &Arc<SandboxNetwork> {
        &self.network
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }
}

/// Which page of the matches a search on `now`'s day returns: real searches surface different
/// people from day to day (new activity, new hires), so a daily search keeps finding new
/// prospects instead of the same first page. Deterministic in the (simulated) date.
fn page_offset(now: DateTime<Utc>, limit: usize, matches: usize) -> usize {
    if matches == 0 || limit == 0 {
        return 0;
    }
    let day = usize::try_from(now.date_naive().to_epoch_days().max(0)).unwrap_or(0);
    day.wrapping_mul(limit) % matches
}

fn to_profile(person: &SandboxPerson) -> Result<ProviderProfile, LinkedInError> {
    let profile_url = LinkedInUrl::parse(&person.linkedin_url).map_err(|error| {
        LinkedInError::InvalidResponse {
            provider: Provider::Sandbox,
            reason: format!("a sandbox person has an unusable profile URL: {error}"),
        }
    })?;
    let present = |text: &str| (!text.trim().is_empty()).then(|| text.to_owned());
    Ok(ProviderProfile {
        provider_id: format!("sbx-{}", person.id),
        name: person.name.clone(),
        position: present(&person.position),
        company: present(&person.company),
        company_size: present(&person.company_size),
        industry: present(&person.industry),
        location: present(&person.location),
        about: present(&person.about),
        recent_activity: present(&person.recent_activity),
        profile_url,
        is_connection: person.is_connection,
    })
}

fn to_error(error: SandboxError) -> LinkedInError {
    let provider = Provider::Sandbox;
    match error {
        SandboxError::UnknownProfile(_) => LinkedInError::NotFound {
            provider,
            what: "profile".into(),
        },
        SandboxError::NotConnected(_) => LinkedInError::Permanent {
            provider,
            status: 422,
            code: Some("not_connected".into()),
            detail: "the person is not a connection: invite first".into(),
        },
        SandboxError::AlreadyInvited(_) => LinkedInError::Limit {
            provider,
            kind: LimitKind::AlreadyInvitedRecently,
        },
        SandboxError::UnknownInvitation(_) => LinkedInError::NotFound {
            provider,
            what: "invitation".into(),
        },
        SandboxError::AlreadyAccepted(_) => LinkedInError::Permanent {
            provider,
            status: 422,
            code: Some("already_accepted".into()),
            detail: "the invitation was already accepted".into(),
        },
        SandboxError::TooLong {
            what,
            length,
            limit,
        } => LinkedInError::InvalidRequest(format!(
            "{what} is {length} characters, above LinkedIn's limit of {limit}"
        )),
    }
}

#[async_trait]
impl LinkedInPort for SandboxLinkedIn {
    fn provider(&self) -> Provider {
        Provider::Sandbox
    }

    async fn search_profiles(
        &self,
        criteria: &SearchCriteria,
    ) -> Result<Vec<ProviderProfile>, LinkedInError> {
        let mut matches = self.network.search(&SandboxSearch {
            position_keywords: criteria.position_keywords.clone(),
            industries: criteria.industries.clone(),
            locations: criteria.locations.clone(),
            offset: 0,
            limit: 0,
        });
        // The filters the network's own search does not apply.
        matches.retain(|person| {
            let size_fits = criteria.company_sizes.is_empty()
                || criteria
                    .company_sizes
                    .iter()
                    .any(|size| size.trim() == person.company_size);
            let keywords_fit = criteria.keywords.as_deref().is_none_or(|keywords| {
                let text = format!(
                    "{} {} {} {}",
                    person.position, person.company, person.about, person.recent_activity
                );
                keywords
                    .split_whitespace()
                    .all(|word| contains_words(&text, word))
            });
            size_fits && keywords_fit
        });
        let limit = usize::try_from(criteria.limit).unwrap_or(usize::MAX);
        let offset = page_offset(self.clock.now(), limit, matches.len());
        matches
            .iter()
            .cycle()
            .skip(offset)
            .take(limit.min(matches.len()))
            .map(to_profile)
            .collect()
    }

    async fn fetch_profile(
        &self,
        profile_url: &LinkedInUrl,
    ) -> Result<ProviderProfile, LinkedInError> {
        let person = self
            .network
            .profile(profile_url.as_str())
            .map_err(to_error)?;
        to_profile(&person)
    }

    async fn send_connection_request(
        &self,
        to: &Recipient,
        note: Option<&InvitationNote>,
        key: IdempotencyKey,
    ) -> Result<SentMessage, LinkedInError> {
        let provider_message_id = self
            .network
            .send_invitation(
                &self.account_id,
                to.profile_url.as_str(),
                note.map(InvitationNote::as_str),
                &key.to_string(),
                self.clock.now(),
            )
            .map_err(to_error)?;
        Ok(SentMessage {
            provider_message_id,
        })
    }

    async fn send_message(
        &self,
        to: &Recipient,
        text: &MessageText,
        key: IdempotencyKey,
    ) -> Result<SentMessage, LinkedInError> {
        let provider_message_id = self
            .network
            .send_message(
                &self.account_id,
                to.profile_url.as_str(),
                text.as_str(),
                &key.to_string(),
                self.clock.now(),
            )
            .map_err(to_error)?;
        Ok(SentMessage {
            provider_message_id,
        })
    }

    async fn replies_since(&self, since: DateTime<Utc>) -> Result<Vec<Reply>, LinkedInError> {
        self.network
            .replies_between(since, self.clock.now())
            .into_iter()
            .map(|reply| {
                let profile_url = LinkedInUrl::parse(&reply.profile_url).map_err(|error| {
                    LinkedInError::InvalidResponse {
                        provider: Provider::Sandbox,
                        reason: format!("a reply has an unusable profile URL: {error}"),
                    }
                })?;
                Ok(Reply {
                    provider_message_id: reply.provider_message_id,
                    profile_url,
                    text: reply.text,
                    received_at: reply.received_at,
                    thread_id: reply.thread_id,
                })
            })
            .collect()
    }

    /// The network itself remembers every send by its key, so this always knows.
    async fn find_sent(&self, key: IdempotencyKey) -> Result<Option<SentMessage>, LinkedInError> {
        Ok(self
            .network
            .find_send(&key.to_string())
            .map(|provider_message_id| SentMessage {
                provider_message_id,
            }))
    }

    async fn withdraw_invitation(&self, invitation_id: &str) -> Result<(), LinkedInError> {
        self.network
            .withdraw_invitation(invitation_id, self.clock.now())
            .map_err(to_error)
    }

    async fn connections_accepted_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ConnectionAccepted>, LinkedInError> {
        self.network
            .acceptances_between(since, self.clock.now())
            .into_iter()
            .map(|accepted| {
                let profile_url = LinkedInUrl::parse(&accepted.profile_url).map_err(|error| {
                    LinkedInError::InvalidResponse {
                        provider: Provider::Sandbox,
                        reason: format!("an acceptance has an unusable profile URL: {error}"),
                    }
                })?;
                Ok(ConnectionAccepted {
                    profile_url,
                    at: accepted.at,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::clock::SimulatedClock;

    fn start() -> DateTime<Utc> {
        "2026-12-01T09:00:00Z".parse().unwrap()
    }

    fn port(clock: &SimulatedClock) -> SandboxLinkedIn {
        SandboxLinkedIn::new(
            Arc::new(SandboxNetwork::generate(7, 2_000)),
            Arc::new(clock.clone()),
            "primary",
        )
    }

    fn recipient(profile: &ProviderProfile) -> Recipient {
        Recipient {
            profile_url: profile.profile_url.clone(),
            provider_id: Some(profile.provider_id.clone()),
            full_name: profile.name.clone(),
        }
    }

    #[tokio::test]
    async fn searches_apply_every_filter_and_turn_the_page_each_day() {
        let clock = SimulatedClock::starting_at(start());
        let linkedin = port(&clock);
        let criteria = SearchCriteria {
            position_keywords: vec!["CTO".into(), "Founder".into()],
            company_sizes: vec!["11-50".into(), "51-200".into()],
            limit: 25,
            ..SearchCriteria::default()
        };
        let today = linkedin.search_profiles(&criteria).await.unwrap();
        assert_eq!(today.len(), 25);
        for profile in &today {
            let position = profile.position.as_deref().unwrap_or_default();
            assert!(
                contains_words(position, "CTO") || contains_words(position, "Founder"),
                "{position}"
            );
            assert!(
                matches!(profile.company_size.as_deref(), Some("11-50" | "51-200")),
                "{:?}",
                profile.company_size
            );
        }
        assert_eq!(
            linkedin.search_profiles(&criteria).await.unwrap(),
            today,
            "the same day gives the same page"
        );
        clock.advance_by(Duration::days(1));
        let tomorrow = linkedin.search_profiles(&criteria).await.unwrap();
        assert_ne!(tomorrow, today, "the next day surfaces other people");
    }

    #[tokio::test]
    async fn an_invitation_is_accepted_in_simulated_time_and_then_a_message_gets_through() {
        let clock = SimulatedClock::starting_at(start());
        let linkedin = port(&clock);
        let strangers: Vec<ProviderProfile> = linkedin
            .network()
            .people()
            .iter()
            .filter(|person| !person.is_connection)
            .take(200)
            .map(|person| to_profile(person).unwrap())
            .collect();
        let note = InvitationNote::parse("Hello, I organise deep-tech events.").unwrap();
        for (index, stranger) in strangers.iter().enumerate() {
            let key = IdempotencyKey::new(uuid::Uuid::from_u128(index as u128 + 1));
            let first = linkedin
                .send_connection_request(&recipient(stranger), Some(&note), key)
                .await
                .unwrap();
            let again = linkedin
                .send_connection_request(&recipient(stranger), Some(&note), key)
                .await
                .unwrap();
            assert_eq!(first, again, "the same key sends once");
        }
        assert_eq!(linkedin.network().sends().len(), strangers.len());

        let message = MessageText::parse("Thanks for connecting!").unwrap();
        let refused = linkedin
            .send_message(
                &recipient(&strangers[0]),
                &message,
                IdempotencyKey::new(uuid::Uuid::from_u128(9_999)),
            )
            .await;
        assert!(
            matches!(refused, Err(LinkedInError::Permanent { status: 422, .. })),
            "{refused:?}"
        );

        assert!(
            linkedin
                .connections_accepted_since(start())
                .await
                .unwrap()
                .is_empty(),
            "nobody accepts in no time"
        );
        clock.advance_by(Duration::days(5));
        let accepted = linkedin.connections_accepted_since(start()).await.unwrap();
        assert!(!accepted.is_empty(), "some accept within days");
        let connection = strangers
            .iter()
            .find(|stranger| stranger.profile_url == accepted[0].profile_url)
            .unwrap();
        let sent = linkedin
            .send_message(
                &recipient(connection),
                &message,
                IdempotencyKey::new(uuid::Uuid::from_u128(10_000)),
            )
            .await
            .unwrap();
        assert!(sent.provider_message_id.starts_with("sbx-msg-"));
    }

    #[tokio::test]
    async fn replies_arrive_only_once_their_time_has_come() {
        let clock = SimulatedClock::starting_at(start());
        let linkedin = port(&clock);
        let connections: Vec<ProviderProfile> = linkedin
            .network()
            .people()
            .iter()
            .filter(|person| person.is_connection)
            .take(150)
            .map(|person| to_profile(person).unwrap())
            .collect();
        for (index, connection) in connections.iter().enumerate() {
            let text = MessageText::parse(&format!(
                "Hi {}, would you speak at our event?",
                connection.name
            ))
            .unwrap();
            linkedin
                .send_message(
                    &recipient(connection),
                    &text,
                    IdempotencyKey::new(uuid::Uuid::from_u128(index as u128 + 1)),
                )
                .await
                .unwrap();
        }
        let now = linkedin.replies_since(start()).await.unwrap();
        clock.advance_by(Duration::days(10));
        let later = linkedin.replies_since(start()).await.unwrap();
        assert!(later.len() > now.len(), "replies come after a delay");
        assert!(later.iter().all(|reply| reply.received_at <= clock.now()));
        assert!(later.iter().all(|reply| {
            connections
                .iter()
                .any(|c| c.profile_url == reply.profile_url)
        }));
    }

    #[tokio::test]
    async fn unknown_profiles_and_long_notes_are_clear_errors() {
        let clock = SimulatedClock::starting_at(start());
        let linkedin = port(&clock);
        let nobody = LinkedInUrl::parse("https://www.linkedin.com/in/nobody-here-at-all").unwrap();
        assert!(matches!(
            linkedin.fetch_profile(&nobody).await,
            Err(LinkedInError::NotFound { .. })
        ));
        let someone = to_profile(&linkedin.network().people()[0]).unwrap();
        assert_eq!(
            linkedin.fetch_profile(&someone.profile_url).await.unwrap(),
            someone
        );
    }
}
