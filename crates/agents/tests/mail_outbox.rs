//! The embedded default mail adapter: `.eml` files in an outbox directory, one per
//! Message-ID however often (or however concurrently) a mail is sent.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use salesdept_agents::mail::{Delivery, FileOutbox, MailPort, MessageId, OutgoingMail};
use uuid::Uuid;

fn mail(event_id: Uuid, subject: &str) -> OutgoingMail {
    OutgoingMail {
        message_id: MessageId::for_event(event_id, "salesdept.test").unwrap(),
        from: "Sales Dept <sales@salesdept.test>".parse().unwrap(),
        to: vec!["team@example.com".parse().unwrap()],
        subject: subject.to_owned(),
        text: "Daily report\n- 42 messages sent".to_owned(),
        html: Some("<h1>Daily report</h1><ul><li>42 messages sent</li></ul>".to_owned()),
    }
}

fn eml_files(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".eml"))
        .collect();
    names.sort();
    names
}

const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn given_a_missing_directory_when_a_mail_is_sent_then_it_is_created_and_holds_the_mail() {
    let root = tempfile::TempDir::new().unwrap();
    let directory = root.path().join("data").join("outbox");
    let outbox = FileOutbox::open(&directory, TIMEOUT).await.unwrap();
    let event_id = Uuid::now_v7();

    let sent = outbox.send(&mail(event_id, "Report")).await.unwrap();

    let expected_path = directory.join(format!("{event_id}@salesdept.test.eml"));
    assert_eq!(
        sent.delivery,
        Delivery::WrittenToOutbox {
            path: expected_path.clone()
        }
    );
    assert_eq!(
        eml_files(&directory),
        vec![format!("{event_id}@salesdept.test.eml")]
    );
    let bytes = std::fs::read(&expected_path).unwrap();
    let parsed = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(
        parsed.message_id(),
        Some(format!("{event_id}@salesdept.test").as_str())
    );
    assert_eq!(parsed.subject(), Some("Report"));
    assert!(
        parsed
            .content_type()
            .is_some_and(|ct| ct.subtype() == Some("alternative"))
    );
    assert!(parsed.body_text(0).unwrap().contains("42 messages sent"));
    assert!(
        parsed
            .body_html(0)
            .unwrap()
            .contains("<h1>Daily report</h1>")
    );
}

#[tokio::test]
async fn given_a_mail_already_in_the_outbox_when_sent_again_then_no_second_file_is_written() {
    let root = tempfile::TempDir::new().unwrap();
    let outbox = FileOutbox::open(root.path(), TIMEOUT).await.unwrap();
    let event_id = Uuid::now_v7();
    let first = outbox.send(&mail(event_id, "First")).await.unwrap();
    let Delivery::WrittenToOutbox { path } = first.delivery else {
        panic!("{first:?}");
    };
    let original = std::fs::read(&path).unwrap();

    // A retry after a crash: same event, so same Message-ID.
    let second = outbox.send(&mail(event_id, "Retried")).await.unwrap();

    assert_eq!(
        second.delivery,
        Delivery::AlreadyInOutbox { path: path.clone() }
    );
    assert_eq!(eml_files(root.path()).len(), 1);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        original,
        "the first file is untouched"
    );

    outbox.send(&mail(Uuid::now_v7(), "Another")).await.unwrap();
    assert_eq!(eml_files(root.path()).len(), 2);
}

#[tokio::test]
async fn given_concurrent_sends_of_one_message_id_then_exactly_one_file_is_written() {
    let root = tempfile::TempDir::new().unwrap();
    let outbox: Arc<dyn MailPort> = Arc::new(FileOutbox::open(root.path(), TIMEOUT).await.unwrap());
    let event_id = Uuid::now_v7();

    let tasks: Vec<_> = (0..16)
        .map(|attempt| {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                outbox
                    .send(&mail(event_id, &format!("attempt {attempt}")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut written = 0;
    for task in tasks {
        if let Delivery::WrittenToOutbox { .. } = task.await.unwrap().delivery {
            written += 1;
        }
    }

    assert_eq!(written, 1);
    assert_eq!(eml_files(root.path()).len(), 1);
    let staging = root.path().join(".staging");
    assert_eq!(
        std::fs::read_dir(staging).unwrap().count(),
        0,
        "no stray staged files"
    );
}

#[tokio::test]
async fn given_a_message_id_with_a_slash_then_the_file_name_stays_inside_the_outbox() {
    let root = tempfile::TempDir::new().unwrap();
    let outbox = FileOutbox::open(root.path(), TIMEOUT).await.unwrap();
    let mut odd = mail(Uuid::now_v7(), "Odd");
    odd.message_id = MessageId::parse("<a/b+c@salesdept.test>").unwrap();

    let sent = outbox.send(&odd).await.unwrap();

    assert_eq!(
        sent.delivery,
        Delivery::WrittenToOutbox {
            path: root.path().join("a%2Fb%2Bc@salesdept.test.eml")
        }
    );
}
