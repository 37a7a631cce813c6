-- The Sales Manager's and the dashboard's read models. Same tables as PostgreSQL's (see
-- migrations/postgres/20261201000201_reports.sql for the decisions).
--
-- Embedded-edition decisions:
-- * Lead ids are hyphenated lower-case uuid TEXT, as elsewhere in the embedded edition.
-- * Days are ISO 8601 TEXT (YYYY-MM-DD), which sorts and compares like a date.
CREATE TABLE report_funnel_stages (
    lead_id TEXT    NOT NULL,
    stage   TEXT    NOT NULL,
    seq     INTEGER NOT NULL DEFAULT 0,
    day     TEXT    NOT NULL,
    PRIMARY KEY (lead_id, stage, seq)
);
CREATE INDEX report_funnel_stages_day ON report_funnel_stages (day, stage);

CREATE TABLE report_attribution (
    lead_id             TEXT PRIMARY KEY,
    classification      TEXT,
    sent_day            TEXT,
    sent_version        INTEGER,
    variant             TEXT,
    account_id          TEXT,
    sent_classification TEXT,
    replied_response    INTEGER,
    replied_day         TEXT,
    positive_day        TEXT
);
CREATE INDEX report_attribution_sent_day ON report_attribution (sent_day);
