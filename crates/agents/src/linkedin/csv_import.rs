//! CSV import of exported prospect lists (Dripify, Clay, Sales Navigator, Apollo, a manual
//! sheet). Pure: it reads bytes and returns an [`ImportPlan`] of accepted prospects,
//! in-file duplicates and rejected rows with their line numbers. Nothing is written here, so
//! the caller can append all of the plan or none of it.
//!
//! Headers are matched case-, space- and punctuation-insensitively against known aliases
//! ("First Name" + "Last Name" or "Full Name"; "Title" / "Job Title" / "Position" /
//! "Headline"; "Company" / "Company Name" / "Organization"; "LinkedIn URL" / "Person Linkedin
//! Url" / "profileUrl" / "LinkedIn Profile"; …). A semicolon-separated file (European
//! spreadsheet exports) is recognised from its header line.

use std::collections::HashMap;
use std::fmt;

use salesdept_events::domain::LinkedInUrl;
use serde::{Deserialize, Serialize};

/// The longest field accepted, in bytes.
pub const MAX_FIELD_BYTES: usize = 10_000;

/// One prospect read from the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedProspect {
    /// The line the row starts on (1 = the header line).
    pub line: u64,
    pub profile_url: LinkedInUrl,
    pub name: String,
    pub position: Option<String>,
    pub company: Option<String>,
    pub company_size: Option<String>,
    pub industry: Option<String>,
    pub location: Option<String>,
    pub about: Option<String>,
    pub email: Option<String>,
}

/// Why a row was not imported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowErrorReason {
    MissingUrl,
    InvalidUrl(String),
    MissingName,
    /// A field longer than [`MAX_FIELD_BYTES`] (LinkedIn's own longest, the 2,600-character
    /// About, fits several times): refused rather than stored, prompted or truncated.
    FieldTooLong(String),
    /// The row could not be read (bad quoting, invalid UTF-8).
    Unreadable(String),
}

impl fmt::Display for RowErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingUrl => f.write_str("no LinkedIn URL"),
            Self::InvalidUrl(why) => write!(f, "invalid LinkedIn URL: {why}"),
            Self::MissingName => f.write_str("no name"),
            Self::FieldTooLong(column) => {
                write!(
                    f,
                    "the {column} field is longer than {MAX_FIELD_BYTES} bytes"
                )
            }
            Self::Unreadable(why) => write!(f, "unreadable row: {why}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub line: u64,
    pub reason: RowErrorReason,
}

/// The outcome of reading a file, before anything is stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportPlan {
    pub accepted: Vec<ImportedProspect>,
    /// Rows whose normalised URL appeared on an earlier line of the same file.
    pub duplicates: Vec<(u64, LinkedInUrl)>,
    pub rejected: Vec<RowError>,
}

impl ImportPlan {
    /// Whether every data row was accepted or recognised as a duplicate.
    pub fn is_clean(&self) -> bool {
        self.rejected.is_empty()
    }
}

/// Why the file as a whole cannot be imported.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("the file is empty")]
    Empty,
    #[error("no LinkedIn URL column (headers: {0})")]
    NoUrlColumn(String),
    #[error(
        "no name column: need \"Full Name\", or \"First Name\" and/or \"Last Name\" (headers: {0})"
    )]
    NoNameColumn(String),
    #[error("the header line cannot be read: {0}")]
    UnreadableHeader(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Field {
    Url,
    FullName,
    FirstName,
    LastName,
    Position,
    Company,
    CompanySize,
    Industry,
    Location,
    About,
    Email,
}

/// Normalised header spellings (lower-case letters and digits only) per field.
const ALIASES: &[(Field, &[&str])] = &[
    (
        Field::Url,
        &[
            "linkedinurl",
            "personlinkedinurl",
            "profileurl",
            "linkedinprofile",
            "linkedinprofileurl",
            "linkedin",
            "linkedinlink",
            "profilelink",
            "publicprofileurl",
            "defaultprofileurl",
            "linkedinprofilelink",
            "url",
        ],
    ),
    (
        Field::FullName,
        &["fullname", "name", "contactname", "personname", "leadname"],
    ),
    (Field::FirstName, &["firstname", "givenname", "first"]),
    (
        Field::LastName,
        &["lastname", "surname", "familyname", "last"],
    ),
    (
        Field::Position,
        &[
            "title",
            "jobtitle",
            "position",
            "headline",
            "currentposition",
            "currenttitle",
            "role",
        ],
    ),
    (
        Field::Company,
        &[
            "company",
            "companyname",
            "organization",
            "organisation",
            "currentcompany",
            "account",
            "accountname",
            "employer",
        ],
    ),
    (
        Field::CompanySize,
        &[
            "companysize",
            "employees",
            "numberofemployees",
            "companyheadcount",
            "headcount",
            "size",
        ],
    ),
    (Field::Industry, &["industry", "companyindustry"]),
    (
        Field::Location,
        &["location", "city", "personlocation", "geography", "region"],
    ),
    (Field::About, &["about", "summary", "bio"]),
    (
        Field::Email,
        &["email", "emailaddress", "workemail", "personalemail"],
    ),
];

fn normalise_header(header: &str) -> String {
    header
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn map_headers(headers: &csv::StringRecord) -> HashMap<Field, usize> {
    let mut columns = HashMap::new();
    for (index, header) in headers.iter().enumerate() {
        let normal = normalise_header(header);
        // "#" in Apollo's "# Employees" disappears; "employees" matches company size.
        if let Some((field, _)) = ALIASES
            .iter()
            .find(|(_, names)| names.contains(&normal.as_str()))
        {
            // The first column of a kind wins; exports sometimes repeat a column.
            columns.entry(*field).or_insert(index);
        }
    }
    columns
}

/// Reads an exported list and plans its import. Fails only when the file as a whole is
/// unusable (empty, no URL column, no name column); every row problem is a [`RowError`].
pub fn plan_import(bytes: &[u8]) -> Result<ImportPlan, ImportError> {
    let header_line = bytes
        .split(|byte| *byte == b'\n')
        .next()
        .unwrap_or_default();
    let semicolons = header_line.iter().filter(|byte| **byte == b';').count();
    let commas = header_line.iter().filter(|byte| **byte == b',').count();
    let delimiter = if semicolons > commas { b';' } else { b',' };

    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .delimiter(delimiter)
        .from_reader(bytes);
    let mut records = reader.records();
    let headers = match records.next() {
        None => return Err(ImportError::Empty),
        Some(Err(error)) => return Err(ImportError::UnreadableHeader(error.to_string())),
        Some(Ok(headers)) => headers,
    };
    let shown_headers = headers.iter().collect::<Vec<_>>().join(", ");
    let columns = map_headers(&headers);
    if !columns.contains_key(&Field::Url) {
        return Err(ImportError::NoUrlColumn(shown_headers));
    }
    if ![Field::FullName, Field::FirstName, Field::LastName]
        .iter()
        .any(|field| columns.contains_key(field))
    {
        return Err(ImportError::NoNameColumn(shown_headers));
    }

    let mut plan = ImportPlan::default();
    let mut seen: HashMap<LinkedInUrl, u64> = HashMap::new();
    for record in records {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error
                    .position()
                    .map(csv::Position::line)
                    .unwrap_or_default();
                plan.rejected.push(RowError {
                    line,
                    reason: RowErrorReason::Unreadable(unreadable_reason(&error)),
                });
                continue;
            }
        };
        let line = record
            .position()
            .map(|position| record_line(bytes, position))
            .unwrap_or_default();
        if record.iter().all(str::is_empty) {
            continue;
        }
        match read_row(&record, &columns, line) {
            Ok(prospect) => match seen.get(&prospect.profile_url) {
                Some(_) => plan.duplicates.push((line, prospect.profile_url)),
                None => {
                    seen.insert(prospect.profile_url.clone(), line);
                    plan.accepted.push(prospect);
                }
            },
            Err(reason) => plan.rejected.push(RowError { line, reason }),
        }
    }
    Ok(plan)
}

/// The line a record's first field is on. The csv reader reports the position where it
/// started reading, which is before any blank lines it skipped; count those too.
fn record_line(bytes: &[u8], position: &csv::Position) -> u64 {
    let start = usize::try_from(position.byte()).unwrap_or(usize::MAX);
    let skipped = bytes
        .get(start..)
        .unwrap_or_default()
        .iter()
        .take_while(|byte| matches!(byte, b'\r' | b'\n'))
        .filter(|byte| **byte == b'\n')
        .count();
    position.line() + skipped as u64
}

/// The csv crate's own messages repeat the row's bytes for UTF-8 errors; keep the kind only.
fn unreadable_reason(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".into(),
        csv::ErrorKind::UnequalLengths { .. } => "wrong number of fields".into(),
        _ => "malformed CSV".into(),
    }
}

fn read_row(
    record: &csv::StringRecord,
    columns: &HashMap<Field, usize>,
    line: u64,
) -> Result<ImportedProspect, RowErrorReason> {
    // The leftmost long column is named, so the message does not depend on map order.
    if let Some((field, _)) = columns
        .iter()
        .filter(|(_, index)| {
            record
                .get(**index)
                .is_some_and(|value| value.len() > MAX_FIELD_BYTES)
        })
        .min_by_key(|(_, index)| **index)
    {
        return Err(RowErrorReason::FieldTooLong(format!("{field:?}")));
    }
    let get = |field: Field| {
        columns
            .get(&field)
            .and_then(|index| record.get(*index))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    let url_text = get(Field::Url).ok_or(RowErrorReason::MissingUrl)?;
    let profile_url =
        LinkedInUrl::parse(&url_text).map_err(|error| RowErrorReason::InvalidUrl(error.0))?;
    let name = get(Field::FullName)
        .or_else(|| {
            let parts: Vec<String> = [get(Field::FirstName), get(Field::LastName)]
                .into_iter()
                .flatten()
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
        .ok_or(RowErrorReason::MissingName)?;
    Ok(ImportedProspect {
        line,
        profile_url,
        name,
        position: get(Field::Position),
        company: get(Field::Company),
        company_size: get(Field::CompanySize),
        industry: get(Field::Industry),
        location: get(Field::Location),
        about: get(Field::About),
        email: get(Field::Email),
    })
}
