//! Dashboard sessions: `POST /login` trades an API token for a random session id kept in an
//! `HttpOnly; SameSite=Strict` cookie. The server keeps the sessions in memory (a restart logs
//! everyone out), each with its user, its expiry and its CSRF token; the map is keyed by the
//! SHA-256 of the id, so even a dump of the map holds no usable cookie.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::User;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "salesdept_session";

/// How long a session lasts after login.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);

/// A logged-in dashboard user.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: User,
    /// Every POST form of this session carries this value.
    pub csrf_token: String,
    expires_at: Instant,
}

impl Session {
    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|presented| {
            presented
                .as_bytes()
                .ct_eq(self.csrf_token.as_bytes())
                .into()
        })
    }
}

/// The sessions of one server.
#[derive(Debug)]
pub struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
    ttl: Duration,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::with_ttl(SESSION_TTL)
    }
}

impl Sessions {
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            by_hash: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session for `user`: returns its id (the cookie's value). Expired sessions are
    /// dropped on the way.
    pub fn create(&self, user: User) -> String {
        let id = random_token();
        let session = Session {
            user,
            csrf_token: random_token(),
            expires_at: Instant::now() + self.ttl,
        };
        let mut sessions = self.lock();
        let now = Instant::now();
        sessions.retain(|_, session| session.expires_at > now);
        sessions.insert(hash(&id), session);
        id
    }

    /// The live session with id `id`.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut sessions = self.lock();
        let key = hash(id);
        match sessions.get(&key) {
            Some(session) if session.expires_at > Instant::now() => Some(session.clone()),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session `id` (logout).
    pub fn remove(&self, id: &str) {
        self.lock().remove(&hash(id));
    }

    /// The live session named by the request's cookie, with its id.
    pub fn of_request(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie_value(headers, COOKIE_NAME)?;
        let session = self.get(&id)?;
        Some((id, session))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.by_hash
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The `Set-Cookie` value of a new session.
pub fn session_cookie(id: &str, ttl: Duration, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn expired_cookie(secure: bool) -> String {
    format!(
        "{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

/// 256 random bits as hex (two v4 UUIDs: 244 bits from the OS's generator).
fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Role;

    fn user() -> User {
        User {
            name: "ana".into(),
            role: Role::Operator,
        }
    }

    #[test]
    fn sessions_expire_end_and_check_their_csrf_token() {
        let sessions = Sessions::default();
        let id = sessions.create(user());
        let session = sessions.get(&id).expect("a live session");
        assert_eq!(session.user, user());
        assert!(session.csrf_matches(Some(&session.csrf_token)));
        assert!(!session.csrf_matches(Some("forged")));
        assert!(!session.csrf_matches(None));
        assert!(sessions.get("not-a-session").is_none());
        sessions.remove(&id);
        assert!(sessions.get(&id).is_none());

        let short = Sessions::with_ttl(Duration::from_millis(1));
        let id = short.create(user());
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.get(&id).is_none(), "an expired session is gone");
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            format!("theme=dark; {COOKIE_NAME}=abc123; other=1")
                .parse()
                .unwrap(),
        );
        assert_eq!(
            cookie_value(&headers, COOKIE_NAME).as_deref(),
            Some("abc123")
        );
        assert_eq!(cookie_value(&headers, "missing"), None);
        let cookie = session_cookie("abc", SESSION_TTL, true);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.contains("Path=/") && cookie.ends_with("; Secure"));
    }
}
