//! A local fake of the Google Sheets API v4 (the endpoints the sheet adapter uses) and of the
//! OAuth token endpoint, on an in-memory grid. It counts requests per endpoint, can be told to
//! answer 429 (with Retry-After) or 500 to the next N API calls, and lets a test type into a
//! cell as a person would.
//!
//! Endpoints: `POST /token` (service-account JWT grant), `POST /v4/spreadsheets/{id}/values:batchUpdate`,
//! `GET /v4/spreadsheets/{id}/values:batchGet`, `POST /v4/spreadsheets/{id}/values:batchClear`,
//! `GET` and `PUT /v4/spreadsheets/{id}/values/{range}` (values.get / values.update).
//! API calls need a bearer token this fake issued; ranges are A1 notation on one tab.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

/// One injected failure.
#[derive(Clone, Copy, Debug)]
struct Failure {
    /// Only calls to this endpoint fail (None: any API call).
    endpoint: Option<&'static str>,
    status: u16,
    retry_after_seconds: Option<u64>,
    /// When set, the call is carried out and then answered 200 with this body instead of its
    /// JSON (a garbled or truncated answer after the write landed).
    garbled_body: Option<&'static str>,
}

#[derive(Default)]
struct Inner {
    spreadsheet_id: String,
    sheet_name: String,
    /// row (1-based) → column (0-based) → value; empty cells are absent.
    grid: BTreeMap<u32, BTreeMap<u32, String>>,
    counts: BTreeMap<String, usize>,
    failures: VecDeque<Failure>,
    /// Waits before answering the next API calls (to outlast a client's timeout).
    delays: VecDeque<std::time::Duration>,
    tokens: HashSet<String>,
    scopes: Vec<String>,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeSheets {
    address: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

/// A parsed A1 range: 1-based rows, 0-based columns, inclusive; `last_row` None: open-ended.
#[derive(Clone, Copy, Debug)]
struct Range {
    first_row: u32,
    first_column: u32,
    last_row: Option<u32>,
    last_column: u32,
}

impl FakeSheets {
    /// Serves on 127.0.0.1 on a free port, for `spreadsheet_id` with one tab `sheet_name`.
    pub async fn start(spreadsheet_id: &str, sheet_name: &str) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            spreadsheet_id: spreadsheet_id.to_owned(),
            sheet_name: sheet_name.to_owned(),
            ..Inner::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            // A full rewrite of 10,000 leads is one request of several megabytes.
            .layer(axum::extract::DefaultBodyLimit::max(256 * 1024 * 1024))
            .with_state(Arc::clone(&inner));
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { address, inner }
    }

    /// The API base URL, with the trailing `/` google-sheets4 needs.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.address)
    }

    pub fn token_uri(&self) -> String {
        format!("http://{}/token", self.address)
    }

    /// Writes a service-account key file whose `token_uri` points here, with a throwaway RSA
    /// key made now.
    pub fn write_key_file(&self, dir: &Path) -> PathBuf {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let file = json!({
            "type": "service_account",
            "project_id": "salesdept-test",
            "private_key_id": "test-key-1",
            "private_key": key.serialize_pem(),
            "client_email": "sheet-sync@salesdept-test.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri(),
        });
        let path = dir.join("service-account.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
        path
    }

    /// Requests received at `endpoint` (`token`, `batchUpdate`, `batchGet`, `batchClear`,
    /// `get`, `update`), failed ones included.
    pub fn count(&self, endpoint: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .counts
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// Every endpoint's count.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.inner.lock().unwrap().counts.clone()
    }

    /// API calls (token requests not included).
    pub fn api_calls(&self) -> usize {
        self.counts()
            .iter()
            .filter(|(endpoint, _)| endpoint.as_str() != "token")
            .map(|(_, count)| count)
            .sum()
    }

    pub fn reset_counts(&self) {
        self.inner.lock().unwrap().counts.clear();
    }

    /// The next `times` API calls answer `status` (429 carries `Retry-After` when given).
    pub fn fail_next(&self, times: usize, status: u16, retry_after_seconds: Option<u64>) {
        self.fail(None, times, status, retry_after_seconds);
    }

    /// The next `times` calls to `endpoint` (e.g. `batchUpdate`) answer `status`.
    pub fn fail_next_on(
        &self,
        endpoint: &'static str,
        times: usize,
        status: u16,
        retry_after_seconds: Option<u64>,
    ) {
        self.fail(Some(endpoint), times, status, retry_after_seconds);
    }

    fn fail(
        &self,
        endpoint: Option<&'static str>,
        times: usize,
        status: u16,
        retry_after_seconds: Option<u64>,
    ) {
        let mut inner = self.inner.lock().unwrap();
        for _ in 0..times {
            inner.failures.push_back(Failure {
                endpoint,
                status,
                retry_after_seconds,
                garbled_body: None,
            });
        }
    }

    /// The next `times` calls to `endpoint` are carried out, then answered 200 with `body`
    /// (not the API's JSON: garbage, or an answer cut short).
    pub fn garble_next_on(&self, endpoint: &'static str, times: usize, body: &'static str) {
        let mut inner = self.inner.lock().unwrap();
        for _ in 0..times {
            inner.failures.push_back(Failure {
                endpoint: Some(endpoint),
                status: 200,
                retry_after_seconds: None,
                garbled_body: Some(body),
            });
        }
    }

    /// The next API call is answered only after `delay` (and then processed as usual).
    pub fn delay_next(&self, delay: std::time::Duration) {
        self.inner.lock().unwrap().delays.push_back(delay);
    }

    pub fn stop_failing(&self) {
        self.inner.lock().unwrap().failures.clear();
    }

    /// The scopes of the token requests received.
    pub fn scopes(&self) -> Vec<String> {
        self.inner.lock().unwrap().scopes.clone()
    }

    /// A person types `value` into a cell (row 1-based, column 0-based).
    pub fn set_cell(&self, row: u32, column: u32, value: &str) {
        let mut inner = self.inner.lock().unwrap();
        set(&mut inner.grid, row, column, value.to_owned());
    }

    pub fn cell(&self, row: u32, column: u32) -> String {
        let inner = self.inner.lock().unwrap();
        inner
            .grid
            .get(&row)
            .and_then(|cells| cells.get(&column))
            .cloned()
            .unwrap_or_default()
    }

    /// Row `row`'s first 15 cells.
    pub fn row(&self, row: u32) -> Vec<String> {
        (0..15).map(|column| self.cell(row, column)).collect()
    }

    /// The last row holding any value (0: the grid is empty).
    pub fn last_row(&self) -> u32 {
        let inner = self.inner.lock().unwrap();
        inner.grid.keys().next_back().copied().unwrap_or(0)
    }
}

fn set(grid: &mut BTreeMap<u32, BTreeMap<u32, String>>, row: u32, column: u32, value: String) {
    if value.is_empty() {
        if let Some(cells) = grid.get_mut(&row) {
            cells.remove(&column);
            if cells.is_empty() {
                grid.remove(&row);
            }
        }
    } else {
        grid.entry(row).or_default().insert(column, value);
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    let status_text = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    (
        status,
        axum::Json(json!({
            "error": { "code": status.as_u16(), "message": message, "status": status_text }
        })),
    )
        .into_response()
}

fn column_index(letters: &str) -> Option<u32> {
    if letters.is_empty() {
        return None;
    }
    let mut index = 0_u32;
    for c in letters.chars() {
        if !c.is_ascii_uppercase() {
            return None;
        }
        index = index * 26 + (c as u32 - 'A' as u32 + 1);
    }
    Some(index - 1)
}

fn cell_ref(text: &str) -> Option<(u32, Option<u32>)> {
    let split = text
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(text.len());
    let column = column_index(&text[..split])?;
    let row = if split < text.len() {
        Some(text[split..].parse::<u32>().ok()?)
    } else {
        None
    };
    Some((column, row))
}

/// Parses `'Tab'!A1:O9`, `Tab!H2:H`, `'Tab'` (the whole tab) against the fake's tab name.
fn parse_range(text: &str, sheet_name: &str) -> Result<Range, String> {
    let (sheet, cells) = match text.rfind('!') {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let sheet = sheet
        .strip_prefix('\'')
        .and_then(|rest| rest.strip_suffix('\''))
        .map(|inner| inner.replace("''", "'"))
        .unwrap_or_else(|| sheet.to_owned());
    if sheet != sheet_name {
        return Err(format!("Unable to parse range: {text}"));
    }
    let Some(cells) = cells else {
        return Ok(Range {
            first_row: 1,
            first_column: 0,
            last_row: None,
            last_column: 25,
        });
    };
    let (start, end) = cells.split_once(':').unwrap_or((cells, cells));
    let bad = || format!("Unable to parse range: {text}");
    let (first_column, first_row) = cell_ref(start).ok_or_else(bad)?;
    let (last_column, last_row) = cell_ref(end).ok_or_else(bad)?;
    Ok(Range {
        first_row: first_row.unwrap_or(1),
        first_column,
        last_row,
        last_column,
    })
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Writes `values` (rows of cells) at the range's top-left; refuses data larger than the range.
fn write_range(
    inner: &mut Inner,
    range_text: &str,
    values: &[Value],
) -> Result<(u32, u32), String> {
    let range = parse_range(range_text, &inner.sheet_name)?;
    let mut cells_written = 0;
    for (row_offset, row_values) in values.iter().enumerate() {
        let row = range.first_row + row_offset as u32;
        if range.last_row.is_some_and(|last| row > last) {
            return Err(format!(
                "Requested writing within range [{range_text}], but tried writing to row [{row}]"
            ));
        }
        let cells = row_values.as_array().cloned().unwrap_or_default();
        for (column_offset, value) in cells.iter().enumerate() {
            let column = range.first_column + column_offset as u32;
            if column > range.last_column {
                return Err(format!(
                    "Requested writing within range [{range_text}], but tried writing to column [{column}]"
                ));
            }
            set(&mut inner.grid, row, column, text_of(value));
            cells_written += 1;
        }
    }
    Ok((values.len() as u32, cells_written))
}

fn read_range(inner: &Inner, range_text: &str, major_dimension: &str) -> Result<Value, String> {
    let range = parse_range(range_text, &inner.sheet_name)?;
    let last_row = range
        .last_row
        .unwrap_or_else(|| inner.grid.keys().next_back().copied().unwrap_or(0));
    let cell = |row: u32, column: u32| {
        inner
            .grid
            .get(&row)
            .and_then(|cells| cells.get(&column))
            .cloned()
            .unwrap_or_default()
    };
    // Google trims trailing empty cells in each line and trailing empty lines.
    let trim = |mut line: Vec<String>| {
        while line.last().is_some_and(String::is_empty) {
            line.pop();
        }
        line
    };
    let mut lines: Vec<Vec<String>> = if major_dimension == "COLUMNS" {
        (range.first_column..=range.last_column)
            .map(|column| {
                trim(
                    (range.first_row..=last_row)
                        .map(|row| cell(row, column))
                        .collect(),
                )
            })
            .collect()
    } else {
        (range.first_row..=last_row)
            .map(|row| {
                trim(
                    (range.first_column..=range.last_column)
                        .map(|column| cell(row, column))
                        .collect(),
                )
            })
            .collect()
    };
    while lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    let mut answer = json!({ "range": range_text, "majorDimension": major_dimension });
    if !lines.is_empty() {
        answer["values"] = json!(lines);
    }
    Ok(answer)
}

fn clear_range(inner: &mut Inner, range_text: &str) -> Result<(), String> {
    let range = parse_range(range_text, &inner.sheet_name)?;
    let rows: Vec<u32> = inner
        .grid
        .keys()
        .copied()
        .filter(|row| *row >= range.first_row && range.last_row.is_none_or(|last| *row <= last))
        .collect();
    for row in rows {
        for column in range.first_column..=range.last_column {
            set(&mut inner.grid, row, column, String::new());
        }
    }
    Ok(())
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path == "/token" && method == Method::POST {
        return token(&inner, &body);
    }
    let Some(rest) = path.strip_prefix("/v4/spreadsheets/") else {
        return error(StatusCode::NOT_FOUND, "no such endpoint");
    };
    let (spreadsheet_id, call) = match rest.split_once("/values") {
        Some((id, call)) => (id.to_owned(), call.to_owned()),
        None => return error(StatusCode::NOT_FOUND, "no such endpoint"),
    };
    let endpoint = match (method.clone(), call.as_str()) {
        (Method::POST, ":batchUpdate") => "batchUpdate",
        (Method::GET, ":batchGet") => "batchGet",
        (Method::POST, ":batchClear") => "batchClear",
        (Method::GET, call) if call.starts_with('/') => "get",
        (Method::PUT, call) if call.starts_with('/') => "update",
        _ => return error(StatusCode::NOT_FOUND, "no such endpoint"),
    };
    // Counted on arrival: a client that gives up on a slow answer drops the connection, and
    // the server drops the handler with it.
    let delay = {
        let mut inner = inner.lock().unwrap();
        *inner.counts.entry(endpoint.to_owned()).or_default() += 1;
        inner.delays.pop_front()
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut inner = inner.lock().unwrap();

    let authorised = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|token| inner.tokens.contains(token));
    if !authorised {
        return error(
            StatusCode::UNAUTHORIZED,
            "Request is missing required authentication credential.",
        );
    }
    let failing = inner
        .failures
        .iter()
        .position(|failure| failure.endpoint.is_none_or(|only| only == endpoint));
    let failure = failing.and_then(|index| inner.failures.remove(index));
    let garbled = failure.and_then(|failure| failure.garbled_body);
    if let Some(failure) = failure.filter(|failure| failure.garbled_body.is_none()) {
        let status = StatusCode::from_u16(failure.status).unwrap();
        let mut response = error(status, "injected failure");
        if let Some(seconds) = failure.retry_after_seconds {
            response
                .headers_mut()
                .insert("retry-after", seconds.to_string().parse().unwrap());
        }
        return response;
    }
    if spreadsheet_id != inner.spreadsheet_id {
        return error(StatusCode::NOT_FOUND, "Requested entity was not found.");
    }
    let spreadsheet_id = inner.spreadsheet_id.clone();
    let body_json = || serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let outcome: Result<Value, String> = match endpoint {
        "batchUpdate" => {
            let request = body_json();
            if request["valueInputOption"].as_str().is_none() {
                Err("'valueInputOption' is required but not specified".to_owned())
            } else {
                let mut rows = 0;
                let mut cells = 0;
                let mut result = Ok(());
                for data in request["data"].as_array().cloned().unwrap_or_default() {
                    let values = data["values"].as_array().cloned().unwrap_or_default();
                    match write_range(&mut inner, data["range"].as_str().unwrap_or(""), &values) {
                        Ok((r, c)) => {
                            rows += r;
                            cells += c;
                        }
                        Err(message) => {
                            result = Err(message);
                            break;
                        }
                    }
                }
                result.map(|()| {
                    json!({
                        "spreadsheetId": spreadsheet_id,
                        "totalUpdatedRows": rows,
                        "totalUpdatedCells": cells,
                        "totalUpdatedSheets": 1,
                    })
                })
            }
        }
        "batchGet" => {
            let pairs = query_pairs(&uri);
            let major = pairs
                .iter()
                .find(|(key, _)| key == "majorDimension")
                .map(|(_, value)| value.clone())
                .unwrap_or_else(|| "ROWS".to_owned());
            pairs
                .iter()
                .filter(|(key, _)| key == "ranges")
                .map(|(_, range)| read_range(&inner, range, &major))
                .collect::<Result<Vec<_>, _>>()
                .map(|ranges| json!({ "spreadsheetId": spreadsheet_id, "valueRanges": ranges }))
        }
        "batchClear" => {
            let request = body_json();
            let ranges: Vec<String> = request["ranges"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(text_of)
                .collect();
            ranges
                .iter()
                .try_for_each(|range| clear_range(&mut inner, range))
                .map(|()| json!({ "spreadsheetId": spreadsheet_id, "clearedRanges": ranges }))
        }
        "get" => {
            let range = percent_decode(call.trim_start_matches('/'));
            read_range(&inner, &range, "ROWS")
        }
        "update" => {
            let range = percent_decode(call.trim_start_matches('/'));
            let request = body_json();
            let values = request["values"].as_array().cloned().unwrap_or_default();
            write_range(&mut inner, &range, &values).map(|(rows, cells)| {
                json!({ "spreadsheetId": spreadsheet_id, "updatedRange": range,
                        "updatedRows": rows, "updatedCells": cells })
            })
        }
        _ => unreachable!(),
    };
    match outcome {
        Ok(_) if garbled.is_some() => (
            StatusCode::OK,
            [("content-type", "application/json")],
            garbled.unwrap_or_default(),
        )
            .into_response(),
        Ok(answer) => axum::Json(answer).into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, &message),
    }
}

/// The service-account JWT grant: checks the form, records the scope, issues a token.
fn token(inner: &Mutex<Inner>, body: &[u8]) -> Response {
    let mut inner = inner.lock().unwrap();
    *inner.counts.entry("token".to_owned()).or_default() += 1;
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let claims = form
        .get("assertion")
        .and_then(|jwt| jwt.split('.').nth(1))
        .and_then(|part| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    let Some(claims) = claims else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    };
    inner
        .scopes
        .push(claims["scope"].as_str().unwrap_or("").to_owned());
    let token = format!("fake-token-{}", inner.tokens.len() + 1);
    inner.tokens.insert(token.clone());
    axum::Json(json!({ "access_token": token, "token_type": "Bearer", "expires_in": 3600 }))
        .into_response()
}
