//! Bearer tokens and roles. Tokens are kept only as SHA-256 hashes ([`TokenHash`]): a plain
//! token from the configuration is hashed while it is read and never stored. A presented token
//! is hashed and compared with every configured hash in constant time.

use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiState;
use super::error::ApiError;
use crate::config::ApiConfig;

/// What a token may do; each role may do everything the roles before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads: leads, the log, reports, the review queue.
    Viewer,
    /// Also human commands and review decisions.
    Operator,
    /// Also dead letters (and later forgetting and configuration).
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

/// The shortest plain token accepted from the configuration.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The SHA-256 of a token. Compared in constant time; its Debug form shows nothing.
#[derive(Clone)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Parses 64 hex digits. The error never repeats the text (it may be a misplaced token).
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes)
            .map_err(|_| "must be 64 hex digits (the SHA-256 of the token)".to_owned())?;
        Ok(Self(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Reads a plain token (through [`SecretString`], so the text is wiped when dropped) and
    /// keeps only its hash.
    pub fn deserialize_plain<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Self>, D::Error> {
        let token = deserializer.deserialize_any(PlainTokenVisitor)?;
        let text = token.expose_secret();
        if text.trim() != text || text.chars().count() < MIN_TOKEN_CHARS {
            return Err(serde::de::Error::custom(format!(
                "a token needs at least {MIN_TOKEN_CHARS} characters and no surrounding spaces"
            )));
        }
        Ok(Some(Self::of(text)))
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash([redacted])")
    }
}

impl Serialize for TokenHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = deserializer.deserialize_any(PlainTokenVisitor)?;
        Self::from_hex(text.expose_secret()).map_err(serde::de::Error::custom)
    }
}

/// Accepts a string only; other values are refused without echoing them (serde's own message
/// would quote the value, which may be a secret).
struct PlainTokenVisitor;

impl serde::de::Visitor<'_> for PlainTokenVisitor {
    type Value = SecretString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<SecretString, E> {
        Ok(SecretString::from(value.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, value: String) -> Result<SecretString, E> {
        Ok(SecretString::from(value))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<SecretString, E> {
        Err(E::custom("must be a string (quote it)"))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<SecretString, E> {
        Err(E::custom("must be a string (quote it)"))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<SecretString, E> {
        Err(E::custom("must be a string (quote it)"))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<SecretString, E> {
        Err(E::custom("must be a string (quote it)"))
    }
}

/// A configured token's owner.
#[derive(Clone, Debug)]
struct TokenEntry {
    hash: TokenHash,
    user: String,
    role: Role,
}

/// The tokens the API accepts.
#[derive(Clone, Debug, Default)]
pub struct ApiTokens {
    entries: Vec<TokenEntry>,
}

impl ApiTokens {
    /// The tokens of a validated `api:` section.
    pub fn from_config(config: &ApiConfig) -> Self {
        Self {
            entries: config
                .tokens
                .iter()
                .filter_map(|token| {
                    let hash = token.token_sha256.clone().or_else(|| token.token.clone())?;
                    Some(TokenEntry {
                        hash,
                        user: token.user.clone(),
                        role: token.role,
                    })
                })
                .collect(),
        }
    }

    /// One more token (for tests and programmatic set-up).
    pub fn with(mut self, user: &str, role: Role, hash: TokenHash) -> Self {
        self.entries.push(TokenEntry {
            hash,
            user: user.to_owned(),
            role,
        });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Who holds `token`, comparing its hash with every entry (no early exit).
    pub fn authenticate(&self, token: &str) -> Option<User> {
        let presented = TokenHash::of(token);
        let mut found = None;
        for entry in &self.entries {
            let matches: bool = entry.hash.0.ct_eq(&presented.0).into();
            if matches && found.is_none() {
                found = Some(User {
                    name: entry.user.clone(),
                    role: entry.role,
                });
            }
        }
        found
    }
}

/// The caller, authenticated by its bearer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
}

impl User {
    /// The actor of the caller's commands.
    pub fn actor(&self) -> salesdept_events::Actor {
        salesdept_events::Actor::human(self.name.clone())
    }
}

/// The bearer token's user, with at least the `needed` role.
pub(crate) fn authenticate(
    parts: &Parts,
    state: &ApiState,
    needed: Role,
) -> Result<User, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|value| {
            // The scheme is case-insensitive (RFC 9110).
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be: Bearer <token>")
        })?;
    let Some(user) = state.tokens.authenticate(token) else {
        tracing::warn!("request with an unknown bearer token refused");
        return Err(ApiError::unauthorized("unknown bearer token"));
    };
    if user.role < needed {
        tracing::warn!(user = %user.name, role = user.role.as_str(), needed = needed.as_str(), "role too low");
        return Err(ApiError::forbidden(format!(
            "this needs the {} role; {} has {}",
            needed.as_str(),
            user.name,
            user.role.as_str()
        )));
    }
    Ok(user)
}

macro_rules! role_extractor {
    ($(#[$meta:meta])* $name:ident, $role:expr) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        // Not every role's handlers read the caller (viewers' reads are not attributed).
        #[allow(dead_code)]
        pub struct $name(pub User);

        impl FromRequestParts<ApiState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &ApiState,
            ) -> Result<Self, Self::Rejection> {
                authenticate(parts, state, $role).map(Self)
            }
        }
    };
}

role_extractor!(
    /// A caller with at least the viewer role.
    Viewer,
    Role::Viewer
);
role_extractor!(
    /// A caller with at least the operator role.
    Operator,
    Role::Operator
);
role_extractor!(
    /// A caller with the admin role.
    Admin,
    Role::Admin
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_never_show_and_compare_by_value() {
        let hash = TokenHash::of("a-long-enough-token-123");
        assert_eq!(format!("{hash:?}"), "TokenHash([redacted])");
        assert_eq!(TokenHash::from_hex(&hash.to_hex()).unwrap(), hash);
        assert!(TokenHash::from_hex("zz").is_err());
        let tokens = ApiTokens::default().with("ana", Role::Operator, hash);
        assert_eq!(
            tokens.authenticate("a-long-enough-token-123"),
            Some(User {
                name: "ana".into(),
                role: Role::Operator
            })
        );
        assert_eq!(tokens.authenticate("a-long-enough-token-124"), None);
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }
}
