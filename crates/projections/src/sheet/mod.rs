//! The Google Sheet the team works in, as a projection of the event log.
//!
//! - [`SheetSink`] is the port: where rows go. Two adapters: [`CsvFileSink`] (the embedded
//!   default, a CSV file written atomically) and [`GoogleSheetSink`] (google-sheets4 with a
//!   service account, bounded retries with backoff on 429/5xx/connection errors).
//! - [`SheetSync`] keeps the sheet up to date: each tick it reads back what people typed in
//!   the Notes and Contact Status columns (one read) and records it as events through the
//!   domain's command handler, then reads the log after its checkpoint and writes every
//!   changed lead's row in one write, appending new leads below the last row. Its checkpoint
//!   and the lead → row mapping live in the store (`sheet_sync`, `sheet_rows`) and move only
//!   after the sheet confirmed the write, so a failed tick is redone by the next one.
//! - [`SheetSync::replay`] rewrites the whole sheet from the log in a constant number of
//!   calls, however many leads.

mod csv_file;
mod google;
mod retry;
mod state;
mod sync;

use std::borrow::Cow;

use async_trait::async_trait;
use salesdept_events::StoreError;
use salesdept_events::domain::CommandError;

pub use csv_file::{CsvFileSink, DEFAULT_CSV_PATH};
pub use google::{GoogleSheetConfig, GoogleSheetSink};
pub use retry::RetryPolicy;
pub use state::{SheetRowState, SheetState, load_state};
pub use sync::{EditOutcome, ReplayReport, SheetSync, SyncReport};

use crate::row::HEADERS;

/// The number of columns the projection owns (A to O).
pub const COLUMN_COUNT: usize = HEADERS.len();

/// Index of the Lead ID column (A).
pub const LEAD_ID_COLUMN: usize = 0;

/// Index of the Contact Status column (H): people may set it to a pipeline stage, Closed or
/// Do Not Contact.
pub const STATUS_COLUMN: usize = 7;

/// Index of the Notes column (O): people may add lines to it.
pub const NOTES_COLUMN: usize = 14;

/// The first row holding a lead (row 1 is the header).
pub const FIRST_LEAD_ROW: u32 = 2;

/// One row to write: its 1-based row number (1 is the header) and its 15 cells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SheetRow {
    pub row: u32,
    pub cells: Vec<String>,
}

/// The cells of one lead row that people edit, as the sheet holds them now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EditableRow {
    pub row: u32,
    pub lead_id: String,
    pub contact_status: String,
    pub notes: String,
}

/// Where the sheet projection writes.
#[async_trait]
pub trait SheetSink: Send + Sync {
    /// Names the destination (e.g. `csv:data/leads.csv`, `google:<spreadsheet id>/<tab>`): the
    /// sync keeps a checkpoint and a row mapping per target, so switching targets starts over.
    fn target(&self) -> String;

    /// The Lead ID, Contact Status and Notes cells of rows 2..=`last_row`, in one read; rows
    /// the sheet does not have come back with empty cells.
    async fn read_editable(&self, last_row: u32) -> Result<Vec<EditableRow>, SheetError>;

    /// Writes these rows (each at its row number, in place) in one call.
    async fn write_rows(&self, rows: &[SheetRow]) -> Result<(), SheetError>;

    /// Replaces the whole projection: the header in row 1, `rows` from row 2 on, and nothing
    /// below them, in a constant number of calls.
    async fn replace_all(&self, rows: &[Vec<String>]) -> Result<(), SheetError>;
}

/// Why the sheet projection could not do its work. Messages never hold a secret (no token, no
/// key material).
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    /// Google kept answering with a retryable error (429, 5xx) or the connection kept failing.
    #[error("Google Sheets {operation} failed after {attempts} attempts: {message}")]
    Unavailable {
        operation: &'static str,
        attempts: u32,
        message: String,
    },
    /// Google refused the request (a 4xx other than 429): retrying would not help.
    #[error("Google Sheets {operation} was refused: {message}")]
    Refused {
        operation: &'static str,
        message: String,
    },
    /// The service account key file cannot be read or used.
    #[error("service account key file {path}: {message}")]
    Credentials { path: String, message: String },
    /// The CSV file cannot be read or written.
    #[error("CSV file {path}: {message}")]
    Csv { path: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A human edit could not be recorded for a reason other than a domain rule.
    #[error("cannot record a sheet edit of lead {lead_id}: {source}")]
    Command {
        lead_id: uuid::Uuid,
        #[source]
        source: CommandError,
    },
    /// The log holds something the sheet cannot show.
    #[error("{0}")]
    Invalid(String),
}

impl From<sqlx::Error> for SheetError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(error))
    }
}

/// The A1 column letter of a 0-based column index (0 → A, 14 → O).
pub fn column_letter(index: usize) -> String {
    let mut index = index + 1;
    let mut letters = Vec::new();
    while index > 0 {
        let rest = (index - 1) % 26;
        letters.push(b'A' + rest as u8);
        index = (index - 1) / 26;
    }
    letters.reverse();
    String::from_utf8(letters).expect("ASCII letters")
}

/// The first characters that make a spreadsheet program (Excel, LibreOffice, Google Sheets on
/// import) read a cell as a formula, and the apostrophe that escapes them.
const FORMULA_TRIGGERS: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\''];

/// A cell as written to the sheet or a CSV export: text from outside (a name, a headline, a
/// note) that starts like a formula (`=`, `+`, `-`, `@`, a tab or a carriage return) gets a
/// leading apostrophe, so `=HYPERLINK(…)` in a profile stays text when someone opens the file in
/// a spreadsheet (CSV or formula injection). A cell that already starts with an apostrophe gets
/// one more, so [`restore_formula`] undoes exactly this and nothing else.
pub fn neutralise_formula(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_TRIGGERS) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// The inverse of [`neutralise_formula`], for cells read back from the sheet: one leading
/// apostrophe is dropped when what follows it would have been escaped. A cell a person typed
/// with an apostrophe before ordinary text is left as it is.
pub fn restore_formula(cell: &str) -> Cow<'_, str> {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_TRIGGERS) => Cow::Borrowed(rest),
        _ => Cow::Borrowed(cell),
    }
}

/// [`neutralise_formula`] over a row.
pub fn neutralise_row(cells: &[String]) -> Vec<String> {
    cells
        .iter()
        .map(|cell| neutralise_formula(cell).into_owned())
        .collect()
}

/// The header row as cells.
pub fn header_cells() -> Vec<String> {
    HEADERS.iter().map(|header| (*header).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters_follow_a1_notation() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(STATUS_COLUMN), "H");
        assert_eq!(column_letter(NOTES_COLUMN), "O");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(HEADERS[STATUS_COLUMN], "Contact Status");
        assert_eq!(HEADERS[NOTES_COLUMN], "Notes");
        assert_eq!(HEADERS[LEAD_ID_COLUMN], "Lead ID");
    }

    #[test]
    fn formula_cells_are_neutralised_and_restored_exactly() {
        let cases = [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+44 20 7946 0000", "'+44 20 7946 0000"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("'=1", "''=1"),
            ("'quoted", "''quoted"),
            ("Maya = CTO", "Maya = CTO"),
            ("", ""),
            ("7.5", "7.5"),
        ];
        for (cell, written) in cases {
            assert_eq!(neutralise_formula(cell), written, "{cell:?}");
            assert_eq!(restore_formula(written), cell, "{cell:?} round trip");
        }
        assert_eq!(restore_formula("'typed by a person"), "'typed by a person");
    }
}
