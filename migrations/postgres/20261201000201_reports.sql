-- The Sales Manager's and the dashboard's read models (crates/projections/src/reports.rs),
-- kept by the `reports` subscription in the transaction that moves its checkpoint.
--
-- Decisions:
-- * Facts, not counters. Every row is one lead reaching one funnel stage, or one lead's reply
--   attribution, so applying an event twice (a redelivered batch, a rebuild over existing rows)
--   changes nothing: stage rows are inserted with ON CONFLICT DO NOTHING, attribution fields are
--   set once. Counts and rates are computed on read with GROUP BY over the day indexes; at
--   200–500 messages a week that stays a few thousand rows a year.
-- * The day is the domain clock's UTC date of the event (metadata.occurred_at), so a simulated
--   week reports as that week.
-- * No personal data: lead ids, classifications, template variants, account ids and days only.
--   Forgetting a person shreds their event bodies' `pii`; nothing here needs to change, and a
--   forgotten lead keeps counting.

-- The first time a lead reached a stage: discovered, classified, allocated, invited, sent
-- (first message), replied, positive, qualified, do_not_contact (seq 0); follow_up once per
-- follow-up number (seq = follow_up_number), so follow-ups count as messages.
CREATE TABLE report_funnel_stages (
    lead_id uuid NOT NULL,
    stage   text NOT NULL,
    seq     int  NOT NULL DEFAULT 0,
    day     date NOT NULL,
    CONSTRAINT report_funnel_stages_pkey PRIMARY KEY (lead_id, stage, seq)
);
CREATE INDEX report_funnel_stages_day ON report_funnel_stages (day, stage);

-- One row per lead: what its first message was sent with (variant, account, classification at
-- send time, frozen then) and whether a reply and a positive reply followed it. The send day is
-- the cohort a reply rate is computed for, so "last 7 days" is a range on sent_day.
CREATE TABLE report_attribution (
    lead_id             uuid PRIMARY KEY,
    -- The latest classification, copied into sent_classification at the first send.
    classification      text,
    sent_day            date,
    -- The stream version of the first message: only replies after it (by stream order, not by
    -- day) count, which keeps a redelivered reply from before the message out.
    sent_version        bigint,
    variant             text,
    account_id          text,
    sent_classification text,
    -- The number of the first reply received after the first message.
    replied_response    int,
    replied_day         date,
    positive_day        date
);
CREATE INDEX report_attribution_sent_day ON report_attribution (sent_day);
