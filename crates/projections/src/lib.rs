//! Read models built from the event log: the lead table, the Google Sheet, CSV, reports.

pub mod reports;
pub mod row;
pub mod sheet;

pub use row::{HEADERS, LeadRow};
