//! The Google adapter's resilience and hygiene at the fake: timeouts, connection errors, key
//! material never in errors, and the periodic tick. One store (SQLite) suffices: nothing here
//! depends on the backend.

mod support;

use std::sync::Arc;
use std::time::Duration;

use salesdept_projections::sheet::{
    GoogleSheetConfig, GoogleSheetSink, RetryPolicy, SheetError, SheetSync,
};
use support::{FakeSheets, discover, fast_retry};

#[tokio::test]
async fn a_call_that_outlasts_its_timeout_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::sqlite_store(dir.path()).await;
    let fake = FakeSheets::start(support::SPREADSHEET_ID, support::TAB).await;
    let policy = RetryPolicy {
        timeout: Duration::from_millis(300),
        ..fast_retry()
    };
    let sink = support::google_sink_with(&fake, dir.path(), policy, fake.base_url()).await;
    let sync = SheetSync::new(store.clone(), sink);
    discover(&store, "Maya Lindqvist").await;
    fake.delay_next(Duration::from_secs(2));
    let report = sync.sync().await.unwrap();
    assert!(report.wrote);
    assert_eq!(fake.cell(2, 1), "Maya Lindqvist");
    assert_eq!(
        fake.count("batchUpdate"),
        2,
        "the slow call and its retry: {:?}",
        fake.counts()
    );
}

#[tokio::test]
async fn connection_errors_are_retried_then_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::sqlite_store(dir.path()).await;
    let fake = FakeSheets::start(support::SPREADSHEET_ID, support::TAB).await;
    // A port nobody listens on: bind one, note it, close it.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let sink =
        support::google_sink_with(&fake, dir.path(), fast_retry(), format!("http://{closed}/"))
            .await;
    let sync = SheetSync::new(store.clone(), sink);
    discover(&store, "Maya Lindqvist").await;
    let error = sync.sync().await.unwrap_err();
    assert!(
        matches!(error, SheetError::Unavailable { attempts: 3, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("connection"), "{error}");
    assert!(sync.state().await.unwrap().rows.is_empty());
}

#[tokio::test]
async fn key_material_never_reaches_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::sqlite_store(dir.path()).await;
    let fake = FakeSheets::start(support::SPREADSHEET_ID, support::TAB).await;
    let secret = "TOPSECRETKEYMATERIAL";
    let key_file = dir.path().join("broken-key.json");
    std::fs::write(
        &key_file,
        serde_json::to_vec(&serde_json::json!({
            "type": "service_account",
            "private_key": format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
            "client_email": "sheet-sync@salesdept-test.iam.gserviceaccount.com",
            "token_uri": fake.token_uri(),
        }))
        .unwrap(),
    )
    .unwrap();
    let config = GoogleSheetConfig {
        spreadsheet_id: support::SPREADSHEET_ID.into(),
        sheet_name: support::TAB.into(),
        service_account_key_file: key_file,
        base_url: Some(fake.base_url()),
        retry: fast_retry(),
    };
    let message = match GoogleSheetSink::connect(&config).await {
        Err(error) => error.to_string(),
        Ok(sink) => {
            let sync = SheetSync::new(store.clone(), Arc::new(sink));
            discover(&store, "Maya Lindqvist").await;
            let error = sync.sync().await.unwrap_err();
            format!("{error} {error:?}")
        }
    };
    assert!(!message.contains(secret), "{message}");
    assert_eq!(fake.count("batchUpdate"), 0, "no API call without a token");

    // A key file that is not JSON at all names the file, not its content.
    let not_json = dir.path().join("not-json.json");
    std::fs::write(&not_json, format!("private_key={secret}")).unwrap();
    let error = GoogleSheetSink::connect(&GoogleSheetConfig {
        service_account_key_file: not_json.clone(),
        ..config
    })
    .await
    .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("not-json.json"), "{message}");
    assert!(!message.contains(secret), "{message}");
}

#[tokio::test]
async fn the_periodic_tick_keeps_the_sheet_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::sqlite_store(dir.path()).await;
    let fake = FakeSheets::start(support::SPREADSHEET_ID, support::TAB).await;
    let sync = SheetSync::new(store.clone(), support::google_sink(&fake, dir.path()).await);
    discover(&store, "Maya Lindqvist").await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let sync = sync.clone();
        tokio::spawn(async move {
            sync.run(Duration::from_millis(50), async {
                let _ = stopped.await;
            })
            .await;
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fake.cell(2, 1).is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.cell(2, 1), "Maya Lindqvist");
    discover(&store, "Ada Byron").await;
    while fake.cell(3, 1).is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        fake.cell(3, 1),
        "Ada Byron",
        "a later lead is written by a later tick"
    );
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), runner)
        .await
        .expect("the runner stops when told")
        .unwrap();
}
