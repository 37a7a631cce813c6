//! The `search-<uuid>` stream: one LinkedIn search, requested and then completed.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::DomainError;
use super::event::{Aggregate, DecisionContext, domain_events};

/// What to search LinkedIn for (the seed's search strategy: position keywords, industries,
/// company size, location, recent activity).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchCriteria {
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub positions: Vec<String>,
    #[serde(default)]
    pub industries: Vec<String>,
    #[serde(default)]
    pub locations: Vec<String>,
    #[serde(default)]
    pub company_sizes: Vec<String>,
    /// At most this many profiles.
    pub limit: u32,
}

/// The largest search one request may ask for.
pub const MAX_SEARCH_LIMIT: u32 = 1000;

domain_events! {
    /// Events of a `search-<uuid>` stream.
    pub enum SearchEvent {
        SearchRequest(SearchRequest) = "search_request",
        SearchCompleted(SearchCompleted) = "search_completed",
    }
}

/// A search was asked for (by the Sales Manager, a schedule or a human).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchRequest {
    pub search_id: Uuid,
    pub criteria: SearchCriteria,
    /// Why, in a few words (e.g. "speakers below target this week").
    #[serde(default)]
    pub reason: String,
}

/// The Lead Finder ran the search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchCompleted {
    pub search_id: Uuid,
    /// Profiles the provider returned.
    pub profiles_found: u32,
    /// New leads created.
    pub leads_discovered: u32,
    /// Profiles that already were leads.
    pub duplicates: u32,
    /// Profiles that could not be processed.
    pub failed: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SearchCommand {
    Request {
        search_id: Uuid,
        criteria: SearchCriteria,
        reason: String,
    },
    Complete {
        profiles_found: u32,
        leads_discovered: u32,
        duplicates: u32,
        failed: u32,
    },
}

/// Where a search stands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchState {
    pub request: Option<SearchRequest>,
    pub completed: Option<SearchCompleted>,
}

impl Aggregate for SearchState {
    type Event = SearchEvent;
    type Command = SearchCommand;

    fn evolve(mut self, event: &SearchEvent) -> Self {
        match event {
            SearchEvent::SearchRequest(request) => self.request = Some(request.clone()),
            SearchEvent::SearchCompleted(completed) => self.completed = Some(completed.clone()),
        }
        self
    }

    fn decide(
        &self,
        command: &SearchCommand,
        _context: &DecisionContext,
    ) -> Result<Vec<SearchEvent>, DomainError> {
        match command {
            SearchCommand::Request {
                search_id,
                criteria,
                reason,
            } => {
                if let Some(request) = &self.request {
                    return Err(DomainError::SearchAlreadyRequested {
                        search_id: request.search_id,
                    });
                }
                let has_terms = [
                    &criteria.keywords,
                    &criteria.positions,
                    &criteria.industries,
                ]
                .iter()
                .any(|terms| terms.iter().any(|term| !term.trim().is_empty()));
                if !has_terms {
                    return Err(DomainError::InvalidCommand(
                        "a search needs at least one keyword, position or industry".into(),
                    ));
                }
                if criteria.limit == 0 || criteria.limit > MAX_SEARCH_LIMIT {
                    return Err(DomainError::InvalidCommand(format!(
                        "a search returns 1 to {MAX_SEARCH_LIMIT} profiles, not {}",
                        criteria.limit
                    )));
                }
                Ok(vec![
                    SearchRequest {
                        search_id: *search_id,
                        criteria: criteria.clone(),
                        reason: reason.clone(),
                    }
                    .into(),
                ])
            }
            SearchCommand::Complete {
                profiles_found,
                leads_discovered,
                duplicates,
                failed,
            } => {
                let request = self
                    .request
                    .as_ref()
                    .ok_or(DomainError::SearchNotRequested)?;
                if self.completed.is_some() {
                    return Err(DomainError::SearchAlreadyCompleted);
                }
                let accounted =
                    u64::from(*leads_discovered) + u64::from(*duplicates) + u64::from(*failed);
                if accounted > u64::from(*profiles_found) {
                    return Err(DomainError::InvalidCommand(format!(
                        "{accounted} profiles accounted for, but only {profiles_found} found"
                    )));
                }
                Ok(vec![
                    SearchCompleted {
                        search_id: request.search_id,
                        profiles_found: *profiles_found,
                        leads_discovered: *leads_discovered,
                        duplicates: *duplicates,
                        failed: *failed,
                    }
                    .into(),
                ])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::given;

    fn criteria() -> SearchCriteria {
        SearchCriteria {
            positions: vec!["CTO".into(), "VP Engineering".into()],
            industries: vec!["Software Development".into()],
            limit: 50,
            ..SearchCriteria::default()
        }
    }

    fn requested(search_id: Uuid) -> SearchEvent {
        SearchRequest {
            search_id,
            criteria: criteria(),
            reason: "speakers".into(),
        }
        .into()
    }

    fn request(search_id: Uuid, criteria: SearchCriteria) -> SearchCommand {
        SearchCommand::Request {
            search_id,
            criteria,
            reason: "speakers".into(),
        }
    }

    fn complete(found: u32, discovered: u32, duplicates: u32, failed: u32) -> SearchCommand {
        SearchCommand::Complete {
            profiles_found: found,
            leads_discovered: discovered,
            duplicates,
            failed,
        }
    }

    #[test]
    fn a_search_is_requested_once() {
        let search_id = Uuid::now_v7();
        given::<SearchState>([])
            .when(request(search_id, criteria()))
            .then([requested(search_id)]);
        given::<SearchState>([requested(search_id)])
            .when(request(search_id, criteria()))
            .then_error(DomainError::SearchAlreadyRequested { search_id });
    }

    #[test]
    fn bad_criteria_are_refused() {
        for (criteria, why) in [
            (
                SearchCriteria {
                    limit: 10,
                    ..SearchCriteria::default()
                },
                "no terms",
            ),
            (
                SearchCriteria {
                    keywords: vec!["  ".into()],
                    limit: 10,
                    ..SearchCriteria::default()
                },
                "blank term",
            ),
            (
                SearchCriteria {
                    limit: 0,
                    ..criteria()
                },
                "zero limit",
            ),
            (
                SearchCriteria {
                    limit: 1001,
                    ..criteria()
                },
                "limit too high",
            ),
        ] {
            let error = given::<SearchState>([])
                .when(request(Uuid::now_v7(), criteria))
                .then_err();
            assert!(
                matches!(error, DomainError::InvalidCommand(_)),
                "{why}: {error:?}"
            );
        }
    }

    #[test]
    fn a_requested_search_completes_once() {
        let search_id = Uuid::now_v7();
        let completed: SearchEvent = SearchCompleted {
            search_id,
            profiles_found: 10,
            leads_discovered: 7,
            duplicates: 2,
            failed: 1,
        }
        .into();
        given::<SearchState>([requested(search_id)])
            .when(complete(10, 7, 2, 1))
            .then([completed.clone()]);
        given::<SearchState>([requested(search_id), completed])
            .when(complete(10, 7, 2, 1))
            .then_error(DomainError::SearchAlreadyCompleted);
        given::<SearchState>([])
            .when(complete(10, 7, 2, 1))
            .then_error(DomainError::SearchNotRequested);
    }

    #[test]
    fn completion_counts_must_add_up() {
        let error = given::<SearchState>([requested(Uuid::now_v7())])
            .when(complete(5, 4, 2, 0))
            .then_err();
        assert!(matches!(error, DomainError::InvalidCommand(_)), "{error:?}");
    }
}
