//! Stream ids of the sales domain (DESIGN.md, "Streams and events").

use uuid::Uuid;

use super::values::{AccountId, LinkedInUrl};

/// The department's one stream: strategy updates, alerts, agent errors, daily reports.
pub const DEPARTMENT_STREAM: &str = "department";

const LEAD_PREFIX: &str = "lead-";
const URL_PREFIX: &str = "linkedin-url-";
const ACCOUNT_PREFIX: &str = "account-";
const SEARCH_PREFIX: &str = "search-";

/// `lead-<uuid>`: one prospect's whole journey.
pub fn lead_stream(lead_id: Uuid) -> String {
    format!("{LEAD_PREFIX}{lead_id}")
}

/// `linkedin-url-<sha256 of the normalised URL>`: the reservation that makes a profile a lead
/// once. The hash keeps the URL (personal data) out of the stream id.
pub fn url_stream(url: &LinkedInUrl) -> String {
    format!("{URL_PREFIX}{}", url.hash())
}

/// `account-<id>`: one LinkedIn sending account's slots.
pub fn account_stream(account_id: &AccountId) -> String {
    format!("{ACCOUNT_PREFIX}{account_id}")
}

/// Whether `stream_id` is a sending account's stream (`account-<id>`).
pub fn is_account_stream(stream_id: &str) -> bool {
    stream_id.starts_with(ACCOUNT_PREFIX)
}

/// `search-<uuid>`: one LinkedIn search.
pub fn search_stream(search_id: Uuid) -> String {
    format!("{SEARCH_PREFIX}{search_id}")
}

/// Which kind of stream a stream id names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Lead(Uuid),
    /// The hex hash of a normalised LinkedIn URL.
    UrlReservation(String),
    Account(AccountId),
    Search(Uuid),
    Department,
}

impl StreamKind {
    /// Recognises a stream id of this domain; None for anything else.
    pub fn parse(stream_id: &str) -> Option<Self> {
        if stream_id == DEPARTMENT_STREAM {
            return Some(Self::Department);
        }
        // The prefixes are distinct, so the order of these checks does not matter.
        if let Some(hash) = stream_id.strip_prefix(URL_PREFIX) {
            let is_hash = hash.len() == 64
                && hash
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
            return is_hash.then(|| Self::UrlReservation(hash.to_owned()));
        }
        if let Some(id) = stream_id.strip_prefix(LEAD_PREFIX) {
            return Uuid::parse_str(id).ok().map(Self::Lead);
        }
        if let Some(id) = stream_id.strip_prefix(ACCOUNT_PREFIX) {
            return AccountId::parse(id).ok().map(Self::Account);
        }
        if let Some(id) = stream_id.strip_prefix(SEARCH_PREFIX) {
            return Uuid::parse_str(id).ok().map(Self::Search);
        }
        None
    }
}

/// The lead id of a `lead-<uuid>` stream.
pub fn lead_id_of(stream_id: &str) -> Option<Uuid> {
    match StreamKind::parse(stream_id) {
        Some(StreamKind::Lead(lead_id)) => Some(lead_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_round_trip() {
        let lead_id = Uuid::now_v7();
        let url = LinkedInUrl::parse("linkedin.com/in/Maya/").unwrap();
        let account = AccountId::parse("primary").unwrap();
        let search_id = Uuid::now_v7();
        assert_eq!(
            StreamKind::parse(&lead_stream(lead_id)),
            Some(StreamKind::Lead(lead_id))
        );
        assert_eq!(
            StreamKind::parse(&url_stream(&url)),
            Some(StreamKind::UrlReservation(url.hash()))
        );
        assert_eq!(
            StreamKind::parse(&account_stream(&account)),
            Some(StreamKind::Account(account))
        );
        assert_eq!(
            StreamKind::parse(&search_stream(search_id)),
            Some(StreamKind::Search(search_id))
        );
        assert_eq!(
            StreamKind::parse(DEPARTMENT_STREAM),
            Some(StreamKind::Department)
        );
        assert_eq!(lead_id_of(&lead_stream(lead_id)), Some(lead_id));
        assert!(url_stream(&url).starts_with("linkedin-url-"));
        assert!(
            !url_stream(&url).contains("maya"),
            "the URL must not appear in the stream id"
        );
    }

    #[test]
    fn foreign_stream_ids_are_not_recognised() {
        for stream_id in [
            "",
            "lead-",
            "lead-42",
            "linkedin-url-xyz",
            "account-Upper",
            "orders-1",
            "departments",
        ] {
            assert_eq!(StreamKind::parse(stream_id), None, "{stream_id:?}");
        }
    }
}
