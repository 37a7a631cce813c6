-- Per-person data keys for the personal fields (`pii`) of event bodies, wrapped by the master
-- key. Forgetting a person deletes the key material (crypto-shredding).
CREATE TABLE pii_keys (
    subject      TEXT PRIMARY KEY,
    wrapped_key  TEXT,
    created_at   TEXT NOT NULL,
    forgotten_at TEXT,
    CHECK (forgotten_at IS NULL OR wrapped_key IS NULL)
);
