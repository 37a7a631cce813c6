//! The domain's vocabulary as types that cannot hold an invalid value: parse, don't validate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A value that failed to parse, with a message saying what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// What a prospect is to an events business. When a person fits both, Speaker wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Classification {
    Speaker,
    Sponsor,
    Other,
}

impl Classification {
    pub const ALL: [Classification; 3] = [Self::Speaker, Self::Sponsor, Self::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Speaker => "Speaker",
            Self::Sponsor => "Sponsor",
            Self::Other => "Other",
        }
    }
}

/// A reply's tone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Sentiment {
    Positive,
    Negative,
    Neutral,
}

impl Sentiment {
    pub const ALL: [Sentiment; 3] = [Self::Positive, Self::Negative, Self::Neutral];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Positive => "Positive",
            Self::Negative => "Negative",
            Self::Neutral => "Neutral",
        }
    }
}

/// What a reply asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Intent {
    Interested,
    NotInterested,
    InfoRequest,
    Referral,
    OutOfOffice,
    DoNotContact,
}

impl Intent {
    pub const ALL: [Intent; 6] = [
        Self::Interested,
        Self::NotInterested,
        Self::InfoRequest,
        Self::Referral,
        Self::OutOfOffice,
        Self::DoNotContact,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interested => "Interested",
            Self::NotInterested => "NotInterested",
            Self::InfoRequest => "InfoRequest",
            Self::Referral => "Referral",
            Self::OutOfOffice => "OutOfOffice",
            Self::DoNotContact => "DoNotContact",
        }
    }

    /// Interested, InfoRequest and Referral are handed to a human.
    pub fn is_positive(self) -> bool {
        matches!(self, Self::Interested | Self::InfoRequest | Self::Referral)
    }

    /// DoNotContact and NotInterested stop all outreach to that person for good.
    pub fn stops_outreach(self) -> bool {
        matches!(self, Self::DoNotContact | Self::NotInterested)
    }
}

macro_rules! text_enum {
    ($type:ident, $what:literal) => {
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $type {
            type Err = InvalidValue;

            /// Case-insensitive; spaces, dashes and underscores are ignored ("Not Interested",
            /// "not_interested" and "NotInterested" are the same intent).
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                let wanted: String = text
                    .chars()
                    .filter(|c| !matches!(c, ' ' | '-' | '_'))
                    .flat_map(char::to_lowercase)
                    .collect();
                Self::ALL
                    .into_iter()
                    .find(|value| value.as_str().to_lowercase() == wanted)
                    .ok_or_else(|| {
                        let names: Vec<&str> =
                            Self::ALL.iter().map(|value| value.as_str()).collect();
                        InvalidValue(format!(
                            concat!($what, " {:?} must be one of {}"),
                            text,
                            names.join(", ")
                        ))
                    })
            }
        }
    };
}

text_enum!(Classification, "classification");
text_enum!(Sentiment, "sentiment");
text_enum!(Intent, "intent");

/// A lead's quality score, 1.0 to 10.0.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct QualityScore(f64);

impl QualityScore {
    pub fn parse(value: f64) -> Result<Self, InvalidValue> {
        if value.is_finite() && (1.0..=10.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(InvalidValue(format!(
                "quality score {value} must be between 1.0 and 10.0"
            )))
        }
    }

    /// Clamps any finite number into 1.0–10.0 (for computed scores), rounded to one decimal.
    pub fn clamped(value: f64) -> Self {
        let value = if value.is_finite() { value } else { 1.0 };
        Self(((value.clamp(1.0, 10.0)) * 10.0).round() / 10.0)
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for QualityScore {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(f64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for QualityScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", self.0)
    }
}

/// A confidence between 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Confidence(f64);

impl Confidence {
    pub fn parse(value: f64) -> Result<Self, InvalidValue> {
        if value.is_finite() && (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(InvalidValue(format!(
                "confidence {value} must be between 0 and 1"
            )))
        }
    }

    /// Clamps any finite number into 0–1, rounded to two decimals.
    pub fn clamped(value: f64) -> Self {
        let value = if value.is_finite() { value } else { 0.0 };
        Self((value.clamp(0.0, 1.0) * 100.0).round() / 100.0)
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Confidence {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(f64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// A LinkedIn profile URL in normal form: `https://www.linkedin.com/in/<slug>` with the slug
/// lower-cased, no query, fragment or trailing slash. Two spellings of one profile are equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LinkedInUrl(String);

impl LinkedInUrl {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let invalid = |why: &str| InvalidValue(format!("LinkedIn URL {text:?} {why}"));
        let trimmed = text.trim();
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("https://{trimmed}")
        };
        let url = url::Url::parse(&with_scheme).map_err(|_| invalid("is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("must be http or https"));
        }
        let host = url
            .host_str()
            .ok_or_else(|| invalid("has no host"))?
            .to_lowercase();
        let host = host.strip_prefix("www.").unwrap_or(&host);
        // Country subdomains (uk.linkedin.com, de.linkedin.com) name the same profiles.
        let is_linkedin = host == "linkedin.com"
            || host
                .strip_suffix(".linkedin.com")
                .is_some_and(|sub| sub.len() == 2 && sub.chars().all(|c| c.is_ascii_alphabetic()));
        if !is_linkedin {
            return Err(invalid("is not on linkedin.com"));
        }
        let segments: Vec<&str> = url
            .path_segments()
            .map(|segments| segments.filter(|segment| !segment.is_empty()).collect())
            .unwrap_or_default();
        match segments.as_slice() {
            [kind @ ("in" | "pub" | "company"), slug, ..] => {
                let slug = percent_decode(slug).to_lowercase();
                if slug.is_empty() || slug.chars().any(char::is_whitespace) {
                    return Err(invalid("has an empty or blank profile name"));
                }
                Ok(Self(format!("https://www.linkedin.com/{kind}/{slug}")))
            }
            _ => Err(invalid("is not a profile URL (expected /in/<name>)")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex SHA-256 of the normal form: names the `linkedin-url-<hash>` reservation stream
    /// without putting the URL (personal data) in a stream id.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%' && index + 2 < bytes.len())
            .then(|| {
                let high = (bytes[index + 1] as char).to_digit(16)?;
                let low = (bytes[index + 2] as char).to_digit(16)?;
                u8::try_from(high * 16 + low).ok()
            })
            .flatten();
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

impl<'de> Deserialize<'de> for LinkedInUrl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for LinkedInUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A LinkedIn sending account's id: lower-case letters, digits, `-` and `_`, 1–64 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let valid = !text.is_empty()
            && text.len() <= 64
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidValue(format!(
                "account id {text:?} must be 1-64 lower-case letters, digits, '-' or '_'"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_profile_normalise_to_one_url() {
        let spellings = [
            "https://www.linkedin.com/in/maya-lindqvist-d1",
            "http://linkedin.com/in/Maya-Lindqvist-D1/",
            "www.linkedin.com/in/maya-lindqvist-d1?utm_source=share#about",
            "  https://uk.linkedin.com/in/maya-lindqvist-d1/details/experience  ",
        ];
        let normal: Vec<LinkedInUrl> = spellings
            .iter()
            .map(|s| LinkedInUrl::parse(s).unwrap())
            .collect();
        assert!(normal.iter().all(|url| url == &normal[0]), "{normal:?}");
        assert_eq!(
            normal[0].as_str(),
            "https://www.linkedin.com/in/maya-lindqvist-d1"
        );
        assert_eq!(normal[0].hash().len(), 64);
    }

    #[test]
    fn percent_escapes_decode_and_odd_bytes_do_not_panic() {
        let url =
            LinkedInUrl::parse("https://www.linkedin.com/in/J%C3%BCrgen-M%C3%BCller").unwrap();
        assert_eq!(url.as_str(), "https://www.linkedin.com/in/jürgen-müller");
        assert!(LinkedInUrl::parse("https://www.linkedin.com/in/x%é%").is_ok());
    }

    #[test]
    fn non_profile_urls_are_refused() {
        for (input, why) in [
            ("", "empty"),
            ("https://example.com/in/x", "other host"),
            ("https://www.linkedin.com/feed/", "not a profile"),
            ("https://www.linkedin.com/in/", "no slug"),
            ("ftp://linkedin.com/in/x", "scheme"),
            ("https://evil-linkedin.com/in/x", "look-alike host"),
        ] {
            assert!(
                LinkedInUrl::parse(input).is_err(),
                "{why}: {input:?} was accepted"
            );
        }
    }

    #[test]
    fn scores_and_confidences_stay_in_range() {
        assert!(QualityScore::parse(0.9).is_err());
        assert!(QualityScore::parse(10.1).is_err());
        assert!(QualityScore::parse(f64::NAN).is_err());
        assert_eq!(QualityScore::parse(7.5).unwrap().value(), 7.5);
        assert_eq!(QualityScore::clamped(42.0).value(), 10.0);
        assert!(Confidence::parse(1.2).is_err());
        assert!(serde_json::from_str::<QualityScore>("11").is_err());
        assert!(serde_json::from_str::<Confidence>("-0.1").is_err());
    }

    #[test]
    fn enums_parse_loosely_and_print_exactly() {
        assert_eq!(
            "not interested".parse::<Intent>().unwrap(),
            Intent::NotInterested
        );
        assert_eq!(
            "DO_NOT_CONTACT".parse::<Intent>().unwrap(),
            Intent::DoNotContact
        );
        assert_eq!(
            "speaker".parse::<Classification>().unwrap(),
            Classification::Speaker
        );
        assert!("maybe".parse::<Sentiment>().is_err());
        assert_eq!(Intent::InfoRequest.to_string(), "InfoRequest");
        assert_eq!(
            serde_json::to_string(&Intent::OutOfOffice).unwrap(),
            "\"OutOfOffice\""
        );
    }

    #[test]
    fn percent_escapes_are_decoded_without_splitting_characters() {
        let url = LinkedInUrl::parse("https://www.linkedin.com/in/j%C3%B6rg-m").unwrap();
        assert_eq!(url.as_str(), "https://www.linkedin.com/in/jörg-m");
        // A '%' followed by a multi-byte character is kept as it is, not a panic.
        let url = LinkedInUrl::parse("https://www.linkedin.com/in/a%aé").unwrap();
        assert!(url.as_str().ends_with("/in/a%aé"), "{url}");
    }

    #[test]
    fn account_ids_are_checked() {
        assert!(AccountId::parse("primary-1").is_ok());
        assert!(AccountId::parse("Primary").is_err());
        assert!(AccountId::parse("").is_err());
    }
}
