//! The Google Sheets adapter: google-sheets4 with a service account (yup-oauth2), one tab of one
//! spreadsheet.
//!
//! Every call runs under [`RetryPolicy`]: a timeout, and bounded retries with exponential
//! backoff and jitter on 429, 5xx and connection errors. google-sheets4 never retries and
//! reports a 429 or 5xx as `Error::BadRequest(json)`; the JSON's `error.code` / `error.status`
//! decide. The Retry-After header is only visible to a call's `Delegate`, so each attempt gets a
//! small delegate that records it and leaves the retrying to us. Every call asks for the
//! `Spreadsheet` scope, so one cached token serves them all. Errors carry Google's message,
//! never the token or the key.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use google_sheets4::api::{BatchClearValuesRequest, BatchUpdateValuesRequest, Scope, ValueRange};
use google_sheets4::{Sheets, common};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;
use tracing::Instrument as _;

use super::retry::{RetryPolicy, parse_retry_after};
use super::{
    COLUMN_COUNT, EditableRow, FIRST_LEAD_ROW, LEAD_ID_COLUMN, NOTES_COLUMN, STATUS_COLUMN,
    SheetError, SheetRow, SheetSink, column_letter, header_cells, neutralise_formula,
    restore_formula,
};

/// Where and how to reach the sheet.
#[derive(Clone, Debug, PartialEq)]
pub struct GoogleSheetConfig {
    pub spreadsheet_id: String,
    /// The tab's name, e.g. `Leads`.
    pub sheet_name: String,
    /// The service account's JSON key file (its `token_uri` says where tokens come from).
    pub service_account_key_file: PathBuf,
    /// The Sheets API's base URL with a trailing `/` (None: Google's).
    pub base_url: Option<String>,
    pub retry: RetryPolicy,
}

type Hub = Sheets<HttpsConnector<HttpConnector>>;

/// One tab of a Google spreadsheet as the sheet.
pub struct GoogleSheetSink {
    hub: Hub,
    spreadsheet_id: String,
    sheet_name: String,
    retry: RetryPolicy,
}

impl std::fmt::Debug for GoogleSheetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleSheetSink")
            .field("spreadsheet_id", &self.spreadsheet_id)
            .field("sheet_name", &self.sheet_name)
            .finish_non_exhaustive()
    }
}

/// What one attempt produced.
enum Attempt<T> {
    Done(T),
    /// Worth another attempt, after at least the server's Retry-After if it sent one.
    Retry {
        message: String,
        retry_after: Option<Duration>,
    },
    Refused(String),
}

/// Records the Retry-After header of a failed response; never retries by itself.
#[derive(Default)]
struct RetryAfterProbe {
    retry_after: Option<Duration>,
}

impl common::Delegate for RetryAfterProbe {
    fn http_failure(&mut self, response: &common::Response, _: Option<&Value>) -> common::Retry {
        self.retry_after = response
            .headers()
            .get(google_sheets4::hyper::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        common::Retry::Abort
    }
}

impl GoogleSheetSink {
    /// Reads the key file and builds the client; no request is made yet.
    pub async fn connect(config: &GoogleSheetConfig) -> Result<Self, SheetError> {
        let key_path = config.service_account_key_file.display().to_string();
        let credentials = |message: String| SheetError::Credentials {
            path: key_path.clone(),
            message,
        };
        let key = read_key(&config.service_account_key_file)
            .await
            .map_err(credentials)?;
        let auth = yup_oauth2::ServiceAccountAuthenticator::builder(key)
            .with_timeout(config.retry.timeout)
            .build()
            .await
            .map_err(|error| credentials(error.to_string()))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|error| {
                SheetError::Invalid(format!("cannot load the system's TLS roots: {error}"))
            })?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        let mut hub = Sheets::new(client, auth);
        if let Some(base) = &config.base_url {
            let base = if base.ends_with('/') {
                base.clone()
            } else {
                format!("{base}/")
            };
            hub.base_url(base.clone());
            hub.root_url(base);
        }
        Ok(Self {
            hub,
            spreadsheet_id: config.spreadsheet_id.clone(),
            sheet_name: config.sheet_name.clone(),
            retry: config.retry.clone(),
        })
    }

    /// `'Tab name'!` with quotes doubled, the prefix of every A1 range of the tab.
    fn tab(&self) -> String {
        format!("'{}'", self.sheet_name.replace('\'', "''"))
    }

    fn range(&self, first_row: u32, last_row: u32) -> String {
        format!(
            "{}!A{first_row}:{}{last_row}",
            self.tab(),
            column_letter(COLUMN_COUNT - 1)
        )
    }

    fn column_range(&self, column: usize, last_row: u32) -> String {
        let letter = column_letter(column);
        format!("{}!{letter}{FIRST_LEAD_ROW}:{letter}{last_row}", self.tab())
    }

    /// Runs `attempt` under the retry policy.
    async fn with_retries<T, F, Fut>(
        &self,
        operation: &'static str,
        mut attempt: F,
    ) -> Result<T, SheetError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let attempts = self.retry.attempts();
        let mut last_message = String::new();
        for number in 1..=attempts {
            metrics::counter!("salesdept_sheets_api_calls_total", "operation" => operation)
                .increment(1);
            // One span per API call: the operation, its number and how it ended (never the
            // cells, which hold personal data).
            let span = tracing::info_span!(
                "sheets_call",
                provider = "google_sheets",
                operation,
                attempt = number,
                outcome = tracing::field::Empty
            );
            let outcome = attempt().instrument(span.clone()).await;
            span.record(
                "outcome",
                match &outcome {
                    Attempt::Done(_) => "ok",
                    Attempt::Refused(_) => "refused",
                    Attempt::Retry { .. } => "transient",
                },
            );
            match outcome {
                Attempt::Done(value) => return Ok(value),
                Attempt::Refused(message) => {
                    return Err(SheetError::Refused { operation, message });
                }
                Attempt::Retry {
                    message,
                    retry_after,
                } => {
                    if number < attempts {
                        let wait = self.retry.backoff(number, retry_after);
                        tracing::warn!(
                            operation,
                            attempt = number,
                            wait_ms = wait.as_millis() as u64,
                            error = %message,
                            "Google Sheets call failed; retrying"
                        );
                        tokio::time::sleep(wait).await;
                    }
                    last_message = message;
                }
            }
        }
        Err(SheetError::Unavailable {
            operation,
            attempts,
            message: last_message,
        })
    }
}

/// Retry 429, 5xx, timeouts, connection errors and answers that cannot be read (garbled or cut
/// short: every call here is an idempotent read or an in-place write, so repeating one is
/// safe); refuse every other answer.
fn classify_error<T>(error: google_sheets4::Error, retry_after: Option<Duration>) -> Attempt<T> {
    use google_sheets4::Error;
    match error {
        Error::BadRequest(body) => {
            let code = body["error"]["code"].as_u64().unwrap_or(0);
            let status = body["error"]["status"].as_str().unwrap_or("");
            let message = format!(
                "{code} {status}: {}",
                body["error"]["message"].as_str().unwrap_or("no message")
            );
            let retryable = code == 429
                || (500..600).contains(&code)
                || matches!(
                    status,
                    "RESOURCE_EXHAUSTED" | "UNAVAILABLE" | "INTERNAL" | "DEADLINE_EXCEEDED"
                );
            if retryable {
                Attempt::Retry {
                    message,
                    retry_after,
                }
            } else {
                Attempt::Refused(message)
            }
        }
        Error::Failure(response) => {
            let status = response.status();
            let message = format!("HTTP {status}");
            if status.as_u16() == 429 || status.is_server_error() {
                Attempt::Retry {
                    message,
                    retry_after,
                }
            } else {
                Attempt::Refused(message)
            }
        }
        Error::HttpError(error) => Attempt::Retry {
            message: format!("connection failed: {error}"),
            retry_after: None,
        },
        Error::Io(error) => Attempt::Retry {
            message: format!("connection failed: {error}"),
            retry_after: None,
        },
        // The token endpoint failed: a connection error or an overloaded server is worth
        // another try; a refused key fails every attempt, which stays bounded.
        Error::MissingToken(error) => Attempt::Retry {
            message: format!("no access token: {error}"),
            retry_after: None,
        },
        // The body itself stays out of the message: it may be anything.
        Error::JsonDecodeError(_, error) => Attempt::Retry {
            message: format!("the answer could not be read: {error}"),
            retry_after: None,
        },
        other => Attempt::Refused(other.to_string().trim().to_owned()),
    }
}

async fn read_key(path: &Path) -> Result<yup_oauth2::ServiceAccountKey, String> {
    let text = tokio::fs::read(path)
        .await
        .map_err(|error| format!("cannot read it: {error}"))?;
    // serde's message names the field, never the value, so no key material leaks.
    yup_oauth2::parse_service_account_key(text)
        .map_err(|error| format!("not a service account key: {error}"))
}

/// The cells as the API's values. They are written `RAW`, so Sheets itself never evaluates
/// them, and neutralised as well: a sheet downloaded as CSV or opened in Excel must not turn a
/// profile's `=HYPERLINK(…)` into a formula either.
fn cells_to_values(cells: &[String]) -> Vec<Value> {
    cells
        .iter()
        .map(|cell| Value::String(neutralise_formula(cell).into_owned()))
        .collect()
}

fn cell_text(value: &Value) -> String {
    match value {
        Value::String(text) => restore_formula(text).into_owned(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Groups rows into runs of consecutive row numbers, each written as one range.
fn consecutive_runs(rows: &[SheetRow]) -> Vec<Vec<&SheetRow>> {
    let mut sorted: Vec<&SheetRow> = rows.iter().collect();
    sorted.sort_by_key(|row| row.row);
    let mut runs: Vec<Vec<&SheetRow>> = Vec::new();
    for row in sorted {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|last| last.row + 1 == row.row) => run.push(row),
            _ => runs.push(vec![row]),
        }
    }
    runs
}

#[async_trait]
impl SheetSink for GoogleSheetSink {
    fn target(&self) -> String {
        format!("google:{}/{}", self.spreadsheet_id, self.sheet_name)
    }

    #[tracing::instrument(skip_all, fields(last_row), err)]
    async fn read_editable(&self, last_row: u32) -> Result<Vec<EditableRow>, SheetError> {
        if last_row < FIRST_LEAD_ROW {
            return Ok(Vec::new());
        }
        let ranges = [LEAD_ID_COLUMN, STATUS_COLUMN, NOTES_COLUMN]
            .map(|column| self.column_range(column, last_row));
        let response = self
            .with_retries("values.batchGet", || async {
                let mut probe = RetryAfterProbe::default();
                let mut call = self
                    .hub
                    .spreadsheets()
                    .values_batch_get(&self.spreadsheet_id)
                    .major_dimension("COLUMNS")
                    .value_render_option("FORMATTED_VALUE")
                    .add_scope(Scope::Spreadsheet);
                for range in &ranges {
                    call = call.add_ranges(range);
                }
                let outcome =
                    tokio::time::timeout(self.retry.timeout, call.delegate(&mut probe).doit())
                        .await;
                match outcome {
                    Err(_) => Attempt::Retry {
                        message: format!("no answer within {:?}", self.retry.timeout),
                        retry_after: None,
                    },
                    Ok(Ok((_, value))) => Attempt::Done(value),
                    Ok(Err(error)) => classify_error(error, probe.retry_after),
                }
            })
            .await?;
        let value_ranges = response.value_ranges.unwrap_or_default();
        let column = |index: usize| -> Vec<String> {
            value_ranges
                .get(index)
                .and_then(|range| range.values.as_ref())
                .and_then(|columns| columns.first())
                .map(|cells| cells.iter().map(cell_text).collect())
                .unwrap_or_default()
        };
        let (ids, statuses, notes) = (column(0), column(1), column(2));
        let at = |cells: &[String], row: u32| {
            cells
                .get((row - FIRST_LEAD_ROW) as usize)
                .cloned()
                .unwrap_or_default()
        };
        Ok((FIRST_LEAD_ROW..=last_row)
            .map(|row| EditableRow {
                row,
                lead_id: at(&ids, row),
                contact_status: at(&statuses, row),
                notes: at(&notes, row),
            })
            .collect())
    }

    #[tracing::instrument(skip_all, fields(rows = rows.len()), err)]
    async fn write_rows(&self, rows: &[SheetRow]) -> Result<(), SheetError> {
        if rows.is_empty() {
            return Ok(());
        }
        let data: Vec<ValueRange> = consecutive_runs(rows)
            .into_iter()
            .map(|run| ValueRange {
                range: Some(self.range(run[0].row, run[run.len() - 1].row)),
                major_dimension: Some("ROWS".into()),
                values: Some(run.iter().map(|row| cells_to_values(&row.cells)).collect()),
            })
            .collect();
        let request = BatchUpdateValuesRequest {
            data: Some(data),
            value_input_option: Some("RAW".into()),
            ..BatchUpdateValuesRequest::default()
        };
        self.batch_update(request).await
    }

    #[tracing::instrument(skip_all, fields(rows = rows.len()), err)]
    async fn replace_all(&self, rows: &[Vec<String>]) -> Result<(), SheetError> {
        let mut values = Vec::with_capacity(rows.len() + 1);
        values.push(cells_to_values(&header_cells()));
        values.extend(rows.iter().map(|row| cells_to_values(row)));
        let last_row = values.len() as u32;
        // Write first, then clear what lies below: the sheet is never seen empty.
        self.batch_update(BatchUpdateValuesRequest {
            data: Some(vec![ValueRange {
                range: Some(self.range(1, last_row)),
                major_dimension: Some("ROWS".into()),
                values: Some(values),
            }]),
            value_input_option: Some("RAW".into()),
            ..BatchUpdateValuesRequest::default()
        })
        .await?;
        let below = format!(
            "{}!A{}:{}",
            self.tab(),
            last_row + 1,
            column_letter(COLUMN_COUNT - 1)
        );
        let request = BatchClearValuesRequest {
            ranges: Some(vec![below]),
        };
        self.with_retries("values.batchClear", || async {
            let mut probe = RetryAfterProbe::default();
            let call = self
                .hub
                .spreadsheets()
                .values_batch_clear(request.clone(), &self.spreadsheet_id)
                .add_scope(Scope::Spreadsheet)
                .delegate(&mut probe)
                .doit();
            let outcome = tokio::time::timeout(self.retry.timeout, call).await;
            match outcome {
                Err(_) => Attempt::Retry {
                    message: format!("no answer within {:?}", self.retry.timeout),
                    retry_after: None,
                },
                Ok(Ok(_)) => Attempt::Done(()),
                Ok(Err(error)) => classify_error(error, probe.retry_after),
            }
        })
        .await
    }
}

impl GoogleSheetSink {
    async fn batch_update(&self, request: BatchUpdateValuesRequest) -> Result<(), SheetError> {
        self.with_retries("values.batchUpdate", || async {
            let mut probe = RetryAfterProbe::default();
            let call = self
                .hub
                .spreadsheets()
                .values_batch_update(request.clone(), &self.spreadsheet_id)
                .add_scope(Scope::Spreadsheet)
                .delegate(&mut probe)
                .doit();
            let outcome = tokio::time::timeout(self.retry.timeout, call).await;
            match outcome {
                Err(_) => Attempt::Retry {
                    message: format!("no answer within {:?}", self.retry.timeout),
                    retry_after: None,
                },
                Ok(Ok(_)) => Attempt::Done(()),
                Ok(Err(error)) => classify_error(error, probe.retry_after),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(number: u32) -> SheetRow {
        SheetRow {
            row: number,
            cells: vec![number.to_string()],
        }
    }

    #[test]
    fn consecutive_rows_share_one_range() {
        let rows = [row(5), row(2), row(3), row(9), row(4)];
        let runs: Vec<Vec<u32>> = consecutive_runs(&rows)
            .into_iter()
            .map(|run| run.iter().map(|row| row.row).collect())
            .collect();
        assert_eq!(runs, vec![vec![2, 3, 4, 5], vec![9]]);
    }

    #[test]
    fn rate_limits_and_server_errors_are_retried_other_refusals_are_not() {
        let body = |code: u64, status: &str| {
            google_sheets4::Error::BadRequest(serde_json::json!({
                "error": { "code": code, "status": status, "message": "m" }
            }))
        };
        assert!(matches!(
            classify_error::<()>(body(429, "RESOURCE_EXHAUSTED"), Some(Duration::from_secs(2))),
            Attempt::Retry { retry_after: Some(after), .. } if after == Duration::from_secs(2)
        ));
        assert!(matches!(
            classify_error::<()>(body(503, "UNAVAILABLE"), None),
            Attempt::Retry { .. }
        ));
        assert!(matches!(
            classify_error::<()>(body(400, "INVALID_ARGUMENT"), None),
            Attempt::Refused(_)
        ));
        assert!(matches!(
            classify_error::<()>(body(403, "PERMISSION_DENIED"), None),
            Attempt::Refused(_)
        ));
    }
}
