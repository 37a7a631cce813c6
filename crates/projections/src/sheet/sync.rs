//! [`SheetSync`]: the tick that keeps the sheet in step with the log, the read-back of what
//! people typed into it, and the full rewrite.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use salesdept_events::domain::lead::CloseOutcome;
use salesdept_events::domain::{
    CommandError, CommandHandler, CommandMetadata, LeadCommand, LeadState, PipelineStage,
    StreamKind, lead_stream,
};
use salesdept_events::{Actor, Checkpoint, EventStore, RecordedEvent, Store};
use uuid::Uuid;

use super::state::{Commit, SheetRowState, SheetState, commit, line_hash, load_state};
use super::{EditableRow, STATUS_COLUMN, SheetError, SheetRow, SheetSink};
use crate::row::{LeadRow, NOTES_SEPARATOR};

/// Events read from the log per query.
const READ_BATCH: i64 = 1000;

/// The actor every edit read back from the sheet is recorded as.
pub fn sheet_actor() -> Actor {
    Actor::human("sheet")
}

/// What became of one edit a person made in the sheet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EditOutcome {
    /// Recorded as a new event of this type.
    Recorded {
        lead_id: Uuid,
        event_type: &'static str,
    },
    /// Recorded by an earlier tick whose write did not go through.
    AlreadyRecorded { lead_id: Uuid, edit: String },
    /// A domain rule refused it (e.g. Closed Won before the hand-over); the row shows the
    /// lead's real status again.
    Refused {
        lead_id: Uuid,
        edit: String,
        reason: String,
    },
    /// Not something the sheet can ask for (e.g. an unknown status); the row is rewritten.
    Ignored { lead_id: Uuid, edit: String },
}

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncReport {
    pub edits: Vec<EditOutcome>,
    /// Rows rewritten in place.
    pub rows_updated: usize,
    /// New leads appended below the last row.
    pub rows_appended: usize,
    pub header_written: bool,
    /// Whether a write was sent to the sheet.
    pub wrote: bool,
    pub checkpoint: Checkpoint,
}

/// What a full rewrite did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplayReport {
    pub edits: Vec<EditOutcome>,
    pub rows: usize,
    pub checkpoint: Checkpoint,
}

/// The sheet projection: one sink, its state in the store.
#[derive(Clone)]
pub struct SheetSync {
    store: Store,
    sink: Arc<dyn SheetSink>,
    commands: CommandHandler<Store>,
}

impl std::fmt::Debug for SheetSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SheetSync")
            .field("target", &self.sink.target())
            .finish_non_exhaustive()
    }
}

/// The lead a lead stream's event belongs to.
fn lead_of(event: &RecordedEvent) -> Option<Uuid> {
    match StreamKind::parse(&event.stream_id) {
        Some(StreamKind::Lead(lead_id)) => Some(lead_id),
        _ => None,
    }
}

/// A status as compared: letters and digits only, lower case ("Closed Won" = "closed won").
fn normalise_status(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The command a Contact Status typed into the sheet asks for.
fn status_command(text: &str) -> Option<LeadCommand> {
    let reason = Some("set in the sheet".to_owned());
    Some(match normalise_status(text).as_str() {
        // A bare "Closed" does not say the deal was won; winning is said explicitly.
        "closed" | "closedlost" => LeadCommand::Close {
            outcome: CloseOutcome::Lost,
            reason,
        },
        "closedwon" => LeadCommand::Close {
            outcome: CloseOutcome::Won,
            reason,
        },
        "donotcontact" => LeadCommand::MarkDoNotContact { reason },
        "indiscussion" => LeadCommand::MoveToStage {
            stage: PipelineStage::InDiscussion,
        },
        "meetingscheduled" => LeadCommand::MoveToStage {
            stage: PipelineStage::MeetingScheduled,
        },
        "proposalsent" => LeadCommand::MoveToStage {
            stage: PipelineStage::ProposalSent,
        },
        _ => return None,
    })
}

fn command_event_type(command: &LeadCommand) -> &'static str {
    match command {
        LeadCommand::Close { .. } => "lead_closed",
        LeadCommand::MarkDoNotContact { .. } => "do_not_contact",
        LeadCommand::MoveToStage { .. } => "pipeline_stage_changed",
        _ => "note_added",
    }
}

fn note_lines(notes: &str) -> impl Iterator<Item = &str> {
    notes
        .split(NOTES_SEPARATOR)
        .map(str::trim)
        .filter(|line| !line.is_empty())
}

/// The lead rows to write this tick, with what the store remembers of them.
struct Planned {
    writes: Vec<SheetRow>,
    rows: Vec<SheetRowState>,
    updated: usize,
    appended: usize,
}

impl SheetSync {
    pub fn new(store: Store, sink: Arc<dyn SheetSink>) -> Self {
        let commands = CommandHandler::new(Arc::new(store.clone()));
        Self {
            store,
            sink,
            commands,
        }
    }

    pub fn sink(&self) -> &Arc<dyn SheetSink> {
        &self.sink
    }

    /// The sync's state in the store.
    pub async fn state(&self) -> Result<SheetState, SheetError> {
        load_state(&self.store, &self.sink.target()).await
    }

    /// Runs a tick every `interval` until `shutdown` completes. A failed tick is logged and
    /// redone by the next one (nothing moved).
    pub async fn run(&self, interval: Duration, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match self.sync().await {
                Ok(report) if report.wrote || !report.edits.is_empty() => tracing::info!(
                    updated = report.rows_updated,
                    appended = report.rows_appended,
                    edits = report.edits.len(),
                    "sheet synced"
                ),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "sheet sync failed; the next tick redoes it"),
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// One tick: read back people's edits (one read) and record them, then write every lead
    /// changed in the log since the checkpoint (one write), then move the checkpoint and the
    /// row mapping. Nothing moves unless the sheet confirmed the write.
    #[tracing::instrument(skip_all, fields(target = %self.sink.target()), err)]
    pub async fn sync(&self) -> Result<SyncReport, SheetError> {
        let target = self.sink.target();
        let state = load_state(&self.store, &target).await?;
        let mut report = SyncReport::default();
        let mut rewrite = Vec::new();
        if !state.rows.is_empty() {
            let cells = self.sink.read_editable(state.last_row()).await?;
            let (edits, touched) = self.record_edits(&state, &cells).await?;
            report.edits = edits;
            rewrite = touched;
        }

        let (mut changed, checkpoint) = self.changed_leads(state.checkpoint).await?;
        let mut seen: HashSet<Uuid> = changed.iter().copied().collect();
        changed.extend(rewrite.into_iter().filter(|lead_id| seen.insert(*lead_id)));

        let planned = self.plan(&state, &changed).await?;
        let mut writes = planned.writes;
        if !state.header_written {
            writes.insert(
                0,
                SheetRow {
                    row: 1,
                    cells: super::header_cells(),
                },
            );
            report.header_written = true;
        }
        report.checkpoint = checkpoint;
        if writes.is_empty() {
            if checkpoint == state.checkpoint {
                return Ok(report);
            }
        } else {
            self.sink.write_rows(&writes).await?;
            report.wrote = true;
        }
        report.rows_updated = planned.updated;
        report.rows_appended = planned.appended;
        commit(
            &self.store,
            Commit {
                target: &target,
                expected_generation: state.generation,
                checkpoint,
                header_written: true,
                rows: planned.rows,
                replace: false,
            },
        )
        .await?;
        Ok(report)
    }

    /// Rewrites the whole sheet from the log: people's edits are read back and recorded first
    /// (one read), then the header and every lead's row replace the sheet's content in a
    /// constant number of calls, and the row mapping is rebuilt.
    #[tracing::instrument(skip_all, fields(target = %self.sink.target()), err)]
    pub async fn replay(&self) -> Result<ReplayReport, SheetError> {
        let target = self.sink.target();
        let state = load_state(&self.store, &target).await?;
        let mut report = ReplayReport::default();
        let mut edited = Vec::new();
        if !state.rows.is_empty() {
            let cells = self.sink.read_editable(state.last_row()).await?;
            (report.edits, edited) = self.record_edits(&state, &cells).await?;
        }

        // One pass over the whole log, folding each lead's row as its events go by: no
        // per-lead reads, and the rows come out in the order the leads first appeared.
        let mut rows: Vec<LeadRow> = Vec::new();
        let mut index: HashMap<Uuid, usize> = HashMap::new();
        let mut after = Checkpoint::START;
        loop {
            let batch = self.store.read_all(after, READ_BATCH).await?;
            let Some(last) = batch.last() else { break };
            after = last.checkpoint();
            for event in &batch {
                let Some(lead_id) = lead_of(event) else {
                    continue;
                };
                let position = *index.entry(lead_id).or_insert_with(|| {
                    rows.push(LeadRow::new(lead_id));
                    rows.len() - 1
                });
                rows[position].apply_recorded(event)?;
            }
        }
        // What an edit just appended may not be readable through the log's order yet (on
        // PostgreSQL, a transaction elsewhere can hold the horizon back); the lead's own stream
        // already has it. The next tick sees those events again and writes the same row.
        for lead_id in edited {
            if let Some(&position) = index.get(&lead_id) {
                let events = self
                    .store
                    .read_stream(&lead_stream(lead_id), 1, None)
                    .await?;
                rows[position] = LeadRow::from_events(lead_id, &events)?;
            }
        }
        let cells: Vec<Vec<String>> = rows.iter().map(|row| row.cells().to_vec()).collect();
        self.sink.replace_all(&cells).await?;
        let mapping = rows
            .iter()
            .zip(&cells)
            .enumerate()
            .map(|(position, (row, cells))| SheetRowState {
                lead_id: row.lead_id,
                row: super::FIRST_LEAD_ROW + position as u32,
                written_status: cells[STATUS_COLUMN].clone(),
                written_notes: row.note_lines().map(line_hash).collect(),
            })
            .collect();
        report.rows = rows.len();
        report.checkpoint = after;
        commit(
            &self.store,
            Commit {
                target: &target,
                expected_generation: state.generation,
                checkpoint: after,
                header_written: true,
                rows: mapping,
                replace: true,
            },
        )
        .await?;
        Ok(report)
    }

    /// The leads with events after `after`, in the order they first appear, and the checkpoint
    /// of the last event read (the head of the log as far as it is readable).
    async fn changed_leads(
        &self,
        after: Checkpoint,
    ) -> Result<(Vec<Uuid>, Checkpoint), SheetError> {
        let mut checkpoint = after;
        let mut seen = HashSet::new();
        let mut changed = Vec::new();
        loop {
            let batch = self.store.read_all(checkpoint, READ_BATCH).await?;
            let Some(last) = batch.last() else { break };
            checkpoint = last.checkpoint();
            for lead_id in batch.iter().filter_map(lead_of) {
                if seen.insert(lead_id) {
                    changed.push(lead_id);
                }
            }
        }
        Ok((changed, checkpoint))
    }

    /// Folds each lead's row from its stream and places it: in its row when it has one, else
    /// below the last row.
    async fn plan(&self, state: &SheetState, leads: &[Uuid]) -> Result<Planned, SheetError> {
        let mut planned = Planned {
            writes: Vec::with_capacity(leads.len()),
            rows: Vec::with_capacity(leads.len()),
            updated: 0,
            appended: 0,
        };
        let mut next_row = state.last_row() + 1;
        for &lead_id in leads {
            let events = self
                .store
                .read_stream(&lead_stream(lead_id), 1, None)
                .await?;
            if events.is_empty() {
                continue;
            }
            let row = LeadRow::from_events(lead_id, &events)?;
            let row_number = match state.rows.get(&lead_id) {
                Some(known) => {
                    planned.updated += 1;
                    known.row
                }
                None => {
                    planned.appended += 1;
                    next_row += 1;
                    next_row - 1
                }
            };
            let cells = row.cells().to_vec();
            planned.rows.push(SheetRowState {
                lead_id,
                row: row_number,
                written_status: cells[STATUS_COLUMN].clone(),
                written_notes: row.note_lines().map(line_hash).collect(),
            });
            planned.writes.push(SheetRow {
                row: row_number,
                cells,
            });
        }
        Ok(planned)
    }

    /// Compares the editable cells with what was last written and records each difference
    /// through the lead's command handler, as `human:sheet`. Returns the outcomes and the
    /// leads whose rows must be written again (edited, refused or unreadable).
    async fn record_edits(
        &self,
        state: &SheetState,
        cells: &[EditableRow],
    ) -> Result<(Vec<EditOutcome>, Vec<Uuid>), SheetError> {
        let target = self.sink.target();
        let by_row = state.leads_by_row();
        let mut outcomes = Vec::new();
        let mut rewrite = Vec::new();
        for cell in cells {
            let Some(&lead_id) = by_row.get(&cell.row) else {
                continue;
            };
            let written = &state.rows[&lead_id];
            let id_in_sheet = cell.lead_id.trim();
            if id_in_sheet != lead_id.to_string() {
                if id_in_sheet.is_empty() {
                    // The row was cleared or deleted: write it again, take nothing from it.
                    rewrite.push(lead_id);
                } else {
                    tracing::warn!(
                        row = cell.row,
                        %lead_id,
                        "the sheet's row holds another lead (rows were moved or sorted): its edits are not read; run `salesdept replay sheet`"
                    );
                }
                continue;
            }

            let mut edits: Vec<(String, LeadCommand)> = Vec::new();
            let written_lines: HashSet<&str> =
                written.written_notes.iter().map(String::as_str).collect();
            let sheet_lines: Vec<&str> = note_lines(&cell.notes).collect();
            let sheet_hashes: HashSet<String> = sheet_lines.iter().map(|l| line_hash(l)).collect();
            let mut new_in_cell = HashSet::new();
            for line in &sheet_lines {
                let hash = line_hash(line);
                if !written_lines.contains(hash.as_str()) && new_in_cell.insert(hash.clone()) {
                    edits.push((
                        format!("note:{hash}"),
                        LeadCommand::AddNote {
                            text: (*line).to_owned(),
                        },
                    ));
                }
            }
            let notes_differ = !new_in_cell.is_empty()
                || written
                    .written_notes
                    .iter()
                    .any(|hash| !sheet_hashes.contains(hash));
            let status_in_sheet = cell.contact_status.trim();
            let status_differs =
                normalise_status(status_in_sheet) != normalise_status(&written.written_status);
            if status_differs {
                match status_command(status_in_sheet) {
                    Some(command) => edits.push((
                        format!("status:{}", normalise_status(status_in_sheet)),
                        command,
                    )),
                    None => outcomes.push(EditOutcome::Ignored {
                        lead_id,
                        edit: format!("Contact Status {status_in_sheet:?}"),
                    }),
                }
            }
            if notes_differ || status_differs {
                rewrite.push(lead_id);
            }
            if edits.is_empty() {
                continue;
            }

            let stream = lead_stream(lead_id);
            let recorded: HashSet<Uuid> = self
                .store
                .read_stream(&stream, 1, None)
                .await?
                .iter()
                .map(|event| event.event_id)
                .collect();
            // The edit's id depends on the sheet's content and on what was written before it:
            // a tick redone after a failed write finds the same id already stored, while the
            // same words typed again after a later write are a new note.
            let written_fingerprint = format!(
                "{}|{}",
                written.written_status,
                written.written_notes.join(",")
            );
            for (edit, command) in edits {
                let edit_id = Uuid::new_v5(
                    &lead_id,
                    format!("{target}|{written_fingerprint}|{edit}").as_bytes(),
                );
                let metadata = CommandMetadata::new(sheet_actor(), Utc::now())
                    .with_step(edit_id, format!("sheet-{edit}"));
                if recorded.contains(&metadata.event_id(0)) {
                    outcomes.push(EditOutcome::AlreadyRecorded { lead_id, edit });
                    continue;
                }
                match self
                    .commands
                    .execute::<LeadState>(&stream, &command, &metadata)
                    .await
                {
                    Ok(executed) if executed.events.is_empty() => {
                        outcomes.push(EditOutcome::AlreadyRecorded { lead_id, edit });
                    }
                    Ok(_) => outcomes.push(EditOutcome::Recorded {
                        lead_id,
                        event_type: command_event_type(&command),
                    }),
                    Err(CommandError::Rejected(rule)) => {
                        tracing::warn!(%lead_id, %edit, reason = %rule, "a sheet edit was refused");
                        outcomes.push(EditOutcome::Refused {
                            lead_id,
                            edit,
                            reason: rule.to_string(),
                        });
                    }
                    Err(source) => return Err(SheetError::Command { lead_id, source }),
                }
            }
        }
        Ok((outcomes, rewrite))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_statuses_map_to_commands() {
        for (text, event_type) in [
            ("Closed", "lead_closed"),
            ("closed won", "lead_closed"),
            ("Closed Lost", "lead_closed"),
            ("Do Not Contact", "do_not_contact"),
            ("DoNotContact", "do_not_contact"),
            ("In Discussion", "pipeline_stage_changed"),
        ] {
            let command = status_command(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(command_event_type(&command), event_type, "{text}");
        }
        assert!(matches!(
            status_command("Closed"),
            Some(LeadCommand::Close {
                outcome: CloseOutcome::Lost,
                ..
            })
        ));
        assert!(matches!(
            status_command("Closed Won"),
            Some(LeadCommand::Close {
                outcome: CloseOutcome::Won,
                ..
            })
        ));
        assert!(status_command("Sent").is_none());
        assert!(status_command("").is_none());
    }
}
