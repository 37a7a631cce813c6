//! Read models built from the event log: the lead table, the Google Sheet, CSV, reports.

pub mod audit;
pub mod leads;
pub mod reports;
pub mod row;
pub mod sheet;

pub use leads::{
    LeadFilter, LeadOrder, LeadPage, LeadTableHandler, Page, ProjectionError, RebuildOptions,
    RebuildReport, get_lead, list_leads, rebuild_leads, rebuild_leads_with,
};
pub use row::{HEADERS, LeadRow};
