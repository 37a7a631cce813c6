//! The embedded default sheet: a CSV file with the 15 headers and a row per lead, in the same
//! row numbers the Google Sheet would use. Every write replaces the file atomically (a temporary
//! file in the same directory, flushed, then renamed over it), so a reader never sees half a
//! file. People may edit it like the sheet: Notes and Contact Status are read back the same way.
//! Cells that start like a formula are written with a leading apostrophe
//! ([`super::neutralise_formula`]) and read back without it.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{
    COLUMN_COUNT, EditableRow, FIRST_LEAD_ROW, LEAD_ID_COLUMN, NOTES_COLUMN, STATUS_COLUMN,
    SheetError, SheetRow, SheetSink, header_cells, neutralise_row, restore_formula,
};

/// Where the CSV goes when the configuration names no path.
pub const DEFAULT_CSV_PATH: &str = "data/leads.csv";

/// A CSV file as the sheet.
#[derive(Clone, Debug)]
pub struct CsvFileSink {
    path: PathBuf,
}

impl CsvFileSink {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, message: impl std::fmt::Display) -> SheetError {
        SheetError::Csv {
            path: self.path.display().to_string(),
            message: message.to_string(),
        }
    }

    /// The file's records (row 1 first); none when the file does not exist yet.
    fn read_records(&self) -> Result<Vec<Vec<String>>, SheetError> {
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(self.error(error)),
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(file);
        reader
            .records()
            .map(|record| {
                record
                    .map(|record| record.iter().map(str::to_owned).collect())
                    .map_err(|error| self.error(error))
            })
            .collect()
    }

    /// Replaces the file with `records`, atomically.
    fn write_records(&self, records: &[Vec<String>]) -> Result<(), SheetError> {
        let directory = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&directory).map_err(|error| self.error(error))?;
        let file_name = self
            .path
            .file_name()
            .ok_or_else(|| self.error("the path names no file"))?
            .to_string_lossy()
            .into_owned();
        let temporary = directory.join(format!(
            ".{file_name}.{}.{}.tmp",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let result = (|| {
            let file = std::fs::File::create(&temporary).map_err(|error| self.error(error))?;
            let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(file);
            for record in records {
                writer
                    .write_record(record)
                    .map_err(|error| self.error(error))?;
            }
            let file = writer
                .into_inner()
                .map_err(|error| self.error(error.error()))?;
            file.sync_all().map_err(|error| self.error(error))?;
            std::fs::rename(&temporary, &self.path).map_err(|error| self.error(error))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        result
    }
}

fn blank_row() -> Vec<String> {
    vec![String::new(); COLUMN_COUNT]
}

#[async_trait]
impl SheetSink for CsvFileSink {
    fn target(&self) -> String {
        format!("csv:{}", self.path.display())
    }

    async fn read_editable(&self, last_row: u32) -> Result<Vec<EditableRow>, SheetError> {
        let sink = self.clone();
        let records = tokio::task::spawn_blocking(move || sink.read_records())
            .await
            .map_err(|error| self.error(error))??;
        let cell = |record: Option<&Vec<String>>, column: usize| {
            record
                .and_then(|record| record.get(column))
                .map(|cell| restore_formula(cell).into_owned())
                .unwrap_or_default()
        };
        Ok((FIRST_LEAD_ROW..=last_row)
            .map(|row| {
                let record = records.get(row as usize - 1);
                EditableRow {
                    row,
                    lead_id: cell(record, LEAD_ID_COLUMN),
                    contact_status: cell(record, STATUS_COLUMN),
                    notes: cell(record, NOTES_COLUMN),
                }
            })
            .collect())
    }

    async fn write_rows(&self, rows: &[SheetRow]) -> Result<(), SheetError> {
        let sink = self.clone();
        let rows = rows.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut records = sink.read_records()?;
            for row in rows {
                let index = row.row.checked_sub(1).ok_or_else(|| sink.error("row 0"))? as usize;
                if records.len() <= index {
                    records.resize_with(index + 1, blank_row);
                }
                records[index] = neutralise_row(&row.cells);
            }
            if records
                .first()
                .is_none_or(|first| first.iter().all(String::is_empty))
            {
                if records.is_empty() {
                    records.push(header_cells());
                } else {
                    records[0] = header_cells();
                }
            }
            sink.write_records(&records)
        })
        .await
        .map_err(|error| self.error(error))?
    }

    async fn replace_all(&self, rows: &[Vec<String>]) -> Result<(), SheetError> {
        let sink = self.clone();
        let mut records = Vec::with_capacity(rows.len() + 1);
        records.push(header_cells());
        records.extend(rows.iter().map(|row| neutralise_row(row)));
        tokio::task::spawn_blocking(move || sink.write_records(&records))
            .await
            .map_err(|error| self.error(error))?
    }
}
