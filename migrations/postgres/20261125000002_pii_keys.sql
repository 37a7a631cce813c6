-- Per-person data keys for the personal fields (`pii`) of event bodies, wrapped by the master
-- key. Forgetting a person deletes the key material (crypto-shredding): their events stay in
-- the log, unreadable; the row stays with forgotten_at so no new key is ever made for them.
CREATE TABLE pii_keys (
    subject      text PRIMARY KEY,
    wrapped_key  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    forgotten_at timestamptz,
    CONSTRAINT pii_keys_forgotten_has_no_key CHECK (forgotten_at IS NULL OR wrapped_key IS NULL)
);
