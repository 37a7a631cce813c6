-- The lead list's pages in their own order, without a sort: each index ends with the list's
-- ORDER BY (ties broken by lead_id), so the first page of "most recently changed" — overall or
-- within a status or a classification, the dashboard's and the API's common filters — reads
-- LIMIT rows off the index. The single-column indexes on status, classification and score are
-- prefixes of these and go. Names follow PostgreSQL's `<table>_<columns>_idx` pattern, which
-- the rebuild's swap relies on (see 20261201000001_leads.sql).
DROP INDEX leads_updated_at_idx;
DROP INDEX leads_contact_status_idx;
DROP INDEX leads_classification_idx;
DROP INDEX leads_quality_score_idx;
CREATE INDEX leads_updated_at_lead_id_idx ON leads (updated_at DESC, lead_id);
CREATE INDEX leads_contact_status_updated_at_lead_id_idx ON leads (contact_status, updated_at DESC, lead_id);
CREATE INDEX leads_classification_updated_at_lead_id_idx ON leads (classification, updated_at DESC, lead_id);
CREATE INDEX leads_quality_score_lead_id_idx ON leads (quality_score DESC NULLS LAST, lead_id);
