//! The embedded default: the same sync writing a CSV file, on both stores.

mod support;

use salesdept_events::Store;
use sqlx::PgPool;

mod suite {
    use std::path::Path;
    use std::sync::Arc;

    use salesdept_events::Actor;
    use salesdept_events::domain::lead::LeadEvent;
    use salesdept_events::domain::{Classification, Confidence, LeadCommand};
    use salesdept_projections::sheet::{CsvFileSink, EditOutcome, SheetSync};
    use salesdept_projections::{HEADERS, LeadRow};

    use super::support::{discover, events_of, run, sync, typed_events_of};
    use super::*;

    fn records(path: &Path) -> Vec<Vec<String>> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_path(path)
            .unwrap()
            .records()
            .map(|record| record.unwrap().iter().map(str::to_owned).collect())
            .collect()
    }

    fn write_records(path: &Path, records: &[Vec<String>]) {
        let mut writer = csv::WriterBuilder::new()
            .flexible(true)
            .from_path(path)
            .unwrap();
        for record in records {
            writer.write_record(record).unwrap();
        }
        writer.flush().unwrap();
    }

    async fn row_of(store: &Store, lead_id: uuid::Uuid) -> Vec<String> {
        LeadRow::from_events(lead_id, &events_of(store, lead_id).await)
            .unwrap()
            .cells()
            .to_vec()
    }

    pub async fn csv_default_writes_the_same_columns(store: Store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("leads.csv");
        let sync_ = SheetSync::new(store.clone(), Arc::new(CsvFileSink::new(&path)));
        let first = discover(&store, "Maya Lindqvist").await;
        let second = discover(&store, "Ada, \"the Countess\" Byron").await;
        sync(&sync_, &store).await;
        let file = records(&path);
        assert_eq!(file[0], HEADERS.map(String::from).to_vec());
        assert_eq!(file[1], row_of(&store, first).await);
        assert_eq!(
            file[2],
            row_of(&store, second).await,
            "quotes and commas survive"
        );
        assert_eq!(file.len(), 3);

        run(
            &store,
            first,
            LeadCommand::Classify {
                classification: Classification::Sponsor,
                confidence: Confidence::parse(0.8).unwrap(),
                rationale: None,
            },
            Actor::agent("lead_finder"),
        )
        .await;
        let third = discover(&store, "Grace Hopper").await;
        let report = sync(&sync_, &store).await;
        assert_eq!((report.rows_updated, report.rows_appended), (1, 1));
        let file = records(&path);
        assert_eq!(file[1][5], "Sponsor");
        assert_eq!(file[3], row_of(&store, third).await);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name != "leads.csv")
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    pub async fn csv_edits_are_read_back_and_replay_rewrites_the_file(store: Store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leads.csv");
        let sync_ = SheetSync::new(store.clone(), Arc::new(CsvFileSink::new(&path)));
        let lead = discover(&store, "Maya Lindqvist").await;
        discover(&store, "Ada Byron").await;
        sync(&sync_, &store).await;

        let mut file = records(&path);
        file[1][14] = "asked for the sponsor deck".into();
        file.push(vec!["junk row".into()]);
        write_records(&path, &file);
        let report = sync(&sync_, &store).await;
        assert_eq!(
            report.edits,
            vec![EditOutcome::Recorded {
                lead_id: lead,
                event_type: "note_added"
            }]
        );
        let (event, recorded) = typed_events_of(&store, lead).await.pop().unwrap();
        assert!(matches!(event, LeadEvent::NoteAdded(_)));
        assert_eq!(recorded.metadata.actor, Actor::human("sheet"));

        // The replay reads the whole log, which on the shared PostgreSQL server shows the note
        // once no older transaction is open anywhere (other tests'): replay again, boundedly,
        // until it does.
        let expected = row_of(&store, lead).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let file = loop {
            let report = sync_.replay().await.unwrap();
            assert_eq!(report.rows, 2);
            let file = records(&path);
            if file[1] == expected || std::time::Instant::now() > deadline {
                break file;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(file.len(), 3, "the junk row is gone: {file:?}");
        assert_eq!(file[1], expected);
        assert_eq!(file[1][14], "asked for the sponsor deck");
    }

    /// Profile text that starts like a formula is written as text (a leading apostrophe) and
    /// read back without it, so the sync sees no edit; a person's note starting with `-` is
    /// recorded as typed.
    pub async fn csv_formula_cells_are_neutralised_and_read_back_unchanged(store: Store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leads.csv");
        let sync_ = SheetSync::new(store.clone(), Arc::new(CsvFileSink::new(&path)));
        let attack = "=HYPERLINK(\"https://evil.example/x\",\"open\")";
        let cases = [
            attack,
            "+1 555 0100",
            "-2+3",
            "@SUM(A1:A9)",
            "'=already quoted",
        ];
        let mut leads = Vec::new();
        for name in cases {
            leads.push(discover(&store, name).await);
        }
        sync(&sync_, &store).await;
        let file = records(&path);
        for (index, (name, lead)) in cases.iter().zip(&leads).enumerate() {
            let cells = &file[index + 1];
            assert_eq!(cells[1], format!("'{name}"), "{name:?} is neutralised");
            let expected = row_of(&store, *lead).await;
            let restored: Vec<String> = cells
                .iter()
                .map(|cell| salesdept_projections::sheet::restore_formula(cell).into_owned())
                .collect();
            assert_eq!(restored, expected, "{name:?} reads back as the projection");
        }
        assert!(
            file.iter()
                .flatten()
                .all(|cell| !cell.starts_with(['=', '+', '-', '@'])),
            "no cell of the file starts like a formula: {file:?}"
        );

        let report = sync(&sync_, &store).await;
        assert!(report.edits.is_empty(), "{:?}", report.edits);

        let mut file = records(&path);
        file[1][14] = "-call back on Monday".into();
        write_records(&path, &file);
        let report = sync(&sync_, &store).await;
        assert_eq!(
            report.edits,
            vec![EditOutcome::Recorded {
                lead_id: leads[0],
                event_type: "note_added"
            }]
        );
        let (event, _) = typed_events_of(&store, leads[0]).await.pop().unwrap();
        let LeadEvent::NoteAdded(added) = event else {
            panic!("{event:?}")
        };
        assert_eq!(added.pii.note.as_deref(), Some("-call back on Monday"));
        sync(&sync_, &store).await;
        assert_eq!(records(&path)[1][14], "'-call back on Monday");
        let report = sync(&sync_, &store).await;
        assert!(
            report.edits.is_empty(),
            "the note is not recorded twice: {:?}",
            report.edits
        );
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
    csv_default_writes_the_same_columns,
    csv_edits_are_read_back_and_replay_rewrites_the_file,
    csv_formula_cells_are_neutralised_and_read_back_unchanged,
);
