//! Personal data encrypted at rest, with crypto-shredding.
//!
//! Every event body keeps a person's personal fields in one `pii` object. When the store has a
//! [`PiiVault`], that object is sealed on append with the person's own data key
//! (ChaCha20-Poly1305), and opened again on read. Data keys live in `pii_keys`, wrapped by the
//! master key (which never touches the database). Forgetting a person deletes their key: their
//! events stay in the log — the audit trail is intact — but their personal fields read as
//! `{"forgotten": true}` everywhere, and no new key is ever made for them, so personal data
//! appended later is dropped rather than stored.
//!
//! The subject of an event is the lead it is about: the `lead-<uuid>` stream's id, or the
//! `lead_id` field of an event in another stream (the URL reservation). Events about no lead
//! are stored as they are.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, Generate, Key, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use serde_json::{Value, json};

use crate::error::StoreError;

/// The key that wraps every data key. Its bytes never reach a log line, an event or an error.
#[derive(Clone)]
pub struct MasterKey(Key<ChaCha20Poly1305>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// A master key from its base64 text (32 bytes), e.g. from the environment.
    pub fn from_base64(text: &str) -> Result<Self, StoreError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| StoreError::Vault("the master key is not valid base64".into()))?;
        let key = Key::<ChaCha20Poly1305>::try_from(bytes.as_slice())
            .map_err(|_| StoreError::Vault("the master key must be 32 bytes".into()))?;
        Ok(Self(key))
    }

    /// Reads the key file, or creates it (mode 0600) with a fresh random key: the embedded
    /// default needs no setup and no key to type.
    pub fn load_or_create(path: &Path) -> Result<Self, StoreError> {
        let vault_error = |what: &str, error: std::io::Error| {
            StoreError::Vault(format!("{what} {}: {error}", path.display()))
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| vault_error("cannot create the directory of", e))?;
                }
                let key = Key::<ChaCha20Poly1305>::generate();
                let text = BASE64.encode(key.as_slice());
                write_private(path, &text)
                    .map_err(|e| vault_error("cannot write the master key file", e))?;
                Ok(Self(key))
            }
            Err(error) => Err(vault_error("cannot read the master key file", error)),
        }
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// A data key as cached: usable, or shredded.
#[derive(Clone)]
enum DataKey {
    Live(Key<ChaCha20Poly1305>),
    Forgotten,
}

/// Seals and opens the `pii` objects of event bodies.
pub struct PiiVault {
    master: MasterKey,
    keys: Mutex<HashMap<String, DataKey>>,
}

impl fmt::Debug for PiiVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PiiVault").finish_non_exhaustive()
    }
}

/// The lead an event is about, if any.
pub fn subject_of(stream_id: &str, data: &Value) -> Option<String> {
    if stream_id.starts_with("lead-") {
        return Some(stream_id.to_owned());
    }
    data.get("lead_id")
        .and_then(Value::as_str)
        .map(|lead_id| format!("lead-{lead_id}"))
}

/// Whether a body carries a sealed `pii` object, and for which subject.
pub fn sealed_subject(data: &Value) -> Option<&str> {
    data.get("pii")?.get("sealed")?;
    data.get("pii")?.get("subject")?.as_str()
}

impl PiiVault {
    pub fn new(master: MasterKey) -> Self {
        Self {
            master,
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, subject: &str) -> Option<DataKey> {
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(subject)
            .cloned()
    }

    fn remember(&self, subject: &str, key: DataKey) {
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(subject.to_owned(), key);
    }

    /// Subjects among `subjects` whose key is not cached yet.
    pub fn missing<'a>(&self, subjects: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let keys = self
            .keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut missing: Vec<String> = subjects
            .into_iter()
            .filter(|subject| !keys.contains_key(*subject))
            .map(str::to_owned)
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    /// A new data key, wrapped for storage: base64 of nonce ‖ ciphertext.
    pub fn new_wrapped_key(&self) -> (Key<ChaCha20Poly1305>, String) {
        let key = Key::<ChaCha20Poly1305>::generate();
        let nonce = Nonce::generate();
        let wrapped = ChaCha20Poly1305::new(&self.master.0)
            .encrypt(&nonce, key.as_slice())
            .expect("encrypting 32 bytes cannot fail");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&wrapped);
        (key, BASE64.encode(bytes))
    }

    /// Caches a key row read from `pii_keys` (None: forgotten).
    pub fn learn(&self, subject: &str, wrapped: Option<&str>) -> Result<(), StoreError> {
        let key = match wrapped {
            None => DataKey::Forgotten,
            Some(wrapped) => DataKey::Live(self.unwrap_key(subject, wrapped)?),
        };
        self.remember(subject, key);
        Ok(())
    }

    fn unwrap_key(
        &self,
        subject: &str,
        wrapped: &str,
    ) -> Result<Key<ChaCha20Poly1305>, StoreError> {
        let refuse = || {
            StoreError::Vault(format!(
                "the data key of {subject} cannot be unwrapped with this master key"
            ))
        };
        let bytes = BASE64.decode(wrapped).map_err(|_| refuse())?;
        if bytes.len() < 12 {
            return Err(refuse());
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let nonce = Nonce::try_from(nonce).map_err(|_| refuse())?;
        let key = ChaCha20Poly1305::new(&self.master.0)
            .decrypt(&nonce, ciphertext)
            .map_err(|_| refuse())?;
        Key::<ChaCha20Poly1305>::try_from(key.as_slice()).map_err(|_| refuse())
    }

    /// Marks a subject forgotten in the cache (the store deletes the key row).
    pub fn forget_cached(&self, subject: &str) {
        self.remember(subject, DataKey::Forgotten);
    }

    /// Seals the body's `pii` object in place with the subject's cached key. An empty or absent
    /// `pii` is left alone; a forgotten subject's `pii` is dropped. Returns false when the key
    /// is not cached (the store must fetch or create it first).
    pub fn seal(&self, subject: &str, data: &mut Value) -> bool {
        let Some(pii) = data.get("pii") else {
            return true;
        };
        if pii.as_object().is_some_and(|fields| fields.is_empty()) || pii.get("sealed").is_some() {
            return true;
        }
        match self.cached(subject) {
            None => false,
            Some(DataKey::Forgotten) => {
                data["pii"] = json!({ "forgotten": true });
                true
            }
            Some(DataKey::Live(key)) => {
                let plaintext = pii.to_string();
                let nonce = Nonce::generate();
                let ciphertext = ChaCha20Poly1305::new(&key)
                    .encrypt(&nonce, plaintext.as_bytes())
                    .expect("encryption of a JSON text cannot fail");
                let mut bytes = nonce.to_vec();
                bytes.extend_from_slice(&ciphertext);
                data["pii"] = json!({ "v": 1, "subject": subject, "sealed": BASE64.encode(bytes) });
                true
            }
        }
    }

    /// Opens a sealed `pii` object in place. A forgotten subject reads as
    /// `{"forgotten": true}`; a key that is not cached is an error (the store prefetches).
    pub fn open(&self, data: &mut Value) -> Result<(), StoreError> {
        // One lookup of `pii` in the body; the sealed text is borrowed, not copied.
        let Some(pii) = data.get_mut("pii") else {
            return Ok(());
        };
        let opened = {
            let Some(fields) = pii.as_object() else {
                return Ok(());
            };
            let (Some(sealed), Some(subject)) = (
                fields.get("sealed"),
                fields.get("subject").and_then(Value::as_str),
            ) else {
                return Ok(());
            };
            match self.cached(subject) {
                Some(DataKey::Live(key)) => Some(open_sealed(&key, subject, sealed)?),
                // No key row at all can only mean it was deleted outside salesdept: unreadable.
                Some(DataKey::Forgotten) | None => None,
            }
        };
        *pii = opened.unwrap_or_else(|| json!({ "forgotten": true }));
        Ok(())
    }
}

/// Decrypts one sealed `pii` text (base64 of nonce ‖ ciphertext) into its JSON object.
fn open_sealed(
    key: &Key<ChaCha20Poly1305>,
    subject: &str,
    sealed: &Value,
) -> Result<Value, StoreError> {
    let refuse = || StoreError::Vault(format!("the personal data of {subject} does not decrypt"));
    let sealed = sealed.as_str().ok_or_else(refuse)?;
    let bytes = BASE64.decode(sealed).map_err(|_| refuse())?;
    if bytes.len() < 12 {
        return Err(refuse());
    }
    let (nonce, ciphertext) = bytes.split_at(12);
    let nonce = Nonce::try_from(nonce).map_err(|_| refuse())?;
    let plaintext = ChaCha20Poly1305::new(key)
        .decrypt(&nonce, ciphertext)
        .map_err(|_| refuse())?;
    serde_json::from_slice(&plaintext).map_err(|_| refuse())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> PiiVault {
        PiiVault::new(MasterKey(Key::<ChaCha20Poly1305>::generate()))
    }

    #[test]
    fn sealed_personal_data_opens_again_and_hides_the_text() {
        let vault = vault();
        let (_, wrapped) = vault.new_wrapped_key();
        vault.learn("lead-1", Some(&wrapped)).unwrap();
        let mut data = json!({ "position": "CTO", "pii": { "name": "Maya Lindqvist" } });
        assert!(vault.seal("lead-1", &mut data));
        let stored = data.to_string();
        assert!(!stored.contains("Maya"), "{stored}");
        assert!(stored.contains("CTO"), "non-personal fields stay readable");
        vault.open(&mut data).unwrap();
        assert_eq!(
            data,
            json!({ "position": "CTO", "pii": { "name": "Maya Lindqvist" } })
        );
    }

    #[test]
    fn a_forgotten_subject_reads_as_forgotten_and_new_data_is_dropped() {
        let vault = vault();
        let (_, wrapped) = vault.new_wrapped_key();
        vault.learn("lead-1", Some(&wrapped)).unwrap();
        let mut data = json!({ "pii": { "name": "Ada" } });
        vault.seal("lead-1", &mut data);
        vault.forget_cached("lead-1");
        vault.open(&mut data).unwrap();
        assert_eq!(data["pii"], json!({ "forgotten": true }));
        let mut later = json!({ "pii": { "note": "called her" } });
        assert!(vault.seal("lead-1", &mut later));
        assert_eq!(later["pii"], json!({ "forgotten": true }));
    }

    #[test]
    fn another_master_key_cannot_unwrap_and_says_so_without_secrets() {
        let (_, wrapped) = vault().new_wrapped_key();
        let error = vault()
            .learn("lead-1", Some(&wrapped))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("lead-1") && !error.contains(&wrapped),
            "{error}"
        );
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert!(MasterKey::from_base64(&BASE64.encode([0u8; 16])).is_err());
        assert_eq!(
            format!(
                "{:?}",
                MasterKey::from_base64(&BASE64.encode([7u8; 32])).unwrap()
            ),
            "MasterKey(***)"
        );
    }

    #[test]
    fn the_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/master.key");
        let first = MasterKey::load_or_create(&path).unwrap();
        let again = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(first.0, again.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn subjects_come_from_the_lead_stream_or_the_lead_id() {
        assert_eq!(subject_of("lead-abc", &json!({})), Some("lead-abc".into()));
        assert_eq!(
            subject_of("linkedin-url-ff", &json!({ "lead_id": "abc" })),
            Some("lead-abc".into())
        );
        assert_eq!(subject_of("department", &json!({ "note": 1 })), None);
    }
}
