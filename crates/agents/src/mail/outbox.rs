//! The embedded default mail adapter: lettre's file transport writing `.eml` files into
//! an outbox directory, at most one file per Message-ID.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use lettre::{AsyncFileTransport, AsyncTransport, Tokio1Executor};

use super::message::build_message;
use super::{Delivery, MailError, MailPort, MessageId, OutgoingMail, SentMail};

/// Where lettre writes a mail before it is published under its Message-ID. A crash
/// between the two steps leaves a stray file here, never a half-named one in the outbox.
const STAGING_DIR: &str = ".staging";

/// Writes each mail as `<percent-encoded Message-ID>.eml` into a directory (created if
/// missing). Sending a Message-ID that is already there writes nothing and reports
/// [`Delivery::AlreadyInOutbox`], so a retried send is harmless.
#[derive(Clone, Debug)]
pub struct FileOutbox {
    directory: PathBuf,
    staging: PathBuf,
    transport: AsyncFileTransport<Tokio1Executor>,
    timeout: Duration,
}

impl FileOutbox {
    /// Opens (creating if needed) the outbox at `directory`; every write is bounded by
    /// `timeout`.
    pub async fn open(directory: impl Into<PathBuf>, timeout: Duration) -> Result<Self, MailError> {
        let directory = directory.into();
        let staging = directory.join(STAGING_DIR);
        tokio::fs::create_dir_all(&staging)
            .await
            .map_err(|source| MailError::Outbox {
                path: staging.clone(),
                source,
            })?;
        Ok(Self {
            transport: AsyncFileTransport::new(&staging),
            directory,
            staging,
            timeout,
        })
    }

    /// The outbox directory.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The file a mail with this Message-ID is (or would be) written to.
    pub fn path_for(&self, message_id: &MessageId) -> PathBuf {
        self.directory
            .join(format!("{}.eml", message_id.file_stem()))
    }

    async fn write(&self, mail: &OutgoingMail) -> Result<SentMail, MailError> {
        let target = self.path_for(&mail.message_id);
        let already_there = |path: PathBuf| SentMail {
            message_id: mail.message_id.clone(),
            delivery: Delivery::AlreadyInOutbox { path },
        };
        if tokio::fs::try_exists(&target)
            .await
            .map_err(|source| outbox_error(&target, source))?
        {
            return Ok(already_there(target));
        }
        let message = build_message(mail)?;
        let staged_id = self
            .transport
            .send(message)
            .await
            .map_err(|error| MailError::Outbox {
                path: self.staging.clone(),
                source: std::io::Error::other(error.to_string()),
            })?;
        let staged = self.staging.join(format!("{staged_id}.eml"));
        // A hard link publishes the file atomically and fails if the name is taken, so
        // two concurrent sends of one Message-ID leave exactly one file.
        let linked = tokio::fs::hard_link(&staged, &target).await;
        let removed = tokio::fs::remove_file(&staged).await;
        match linked {
            Ok(()) => {
                removed.map_err(|source| outbox_error(&staged, source))?;
                Ok(SentMail {
                    message_id: mail.message_id.clone(),
                    delivery: Delivery::WrittenToOutbox { path: target },
                })
            }
            Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(already_there(target)),
            Err(source) => Err(outbox_error(&target, source)),
        }
    }
}

fn outbox_error(path: &Path, source: std::io::Error) -> MailError {
    MailError::Outbox {
        path: path.to_path_buf(),
        source,
    }
}

#[async_trait]
impl MailPort for FileOutbox {
    #[tracing::instrument(skip_all, fields(message_id = %mail.message_id), err)]
    async fn send(&self, mail: &OutgoingMail) -> Result<SentMail, MailError> {
        tokio::time::timeout(self.timeout, self.write(mail))
            .await
            .map_err(|_| MailError::Timeout(self.timeout))?
    }
}
