//! Durable subscriptions: a named subscriber processes the whole log in order from its stored
//! checkpoint, with at-least-once delivery.
//!
//! - A handler that fails is retried with exponential backoff; after `max_attempts` the event
//!   is parked in `dead_letters` with its error and the subscription moves on. Parked events can
//!   be listed and marked for retry; the runner retries them on its next round.
//! - Only one process at a time runs a given subscription: an expiring lease on its row in
//!   `subscriptions`, renewed in short transactions (never by holding a transaction open). Every
//!   checkpoint write is fenced by the lease, so a runner that lost it cannot move the checkpoint.
//! - A handler may ask its [`HandlerContext`] for the transaction the checkpoint commits in: a SQL
//!   projection's rows and its checkpoint then commit together (its effect is exactly once).
//!   A handler that takes the transaction must not append through the store (on SQLite the one
//!   write connection is the transaction's).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::envelope::{Checkpoint, RecordedEvent};
use crate::error::StoreError;
use crate::store::sqlite::sqlite_time;
use crate::store::{EventStore, Store, StoreTx};
use tracing::Instrument;

/// A handler's failure; its text is stored with a parked event, so it must hold no secret.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// What a subscription does with each event.
#[async_trait]
pub trait Handler: Send + Sync {
    async fn handle(
        &self,
        event: &RecordedEvent,
        context: &mut HandlerContext,
    ) -> Result<(), HandlerError>;

    /// Handles a batch in log order. The default calls [`Handler::handle`] for each event; a
    /// SQL projection overrides it to load and write its rows once per batch instead of once
    /// per event. On failure it returns the index of the event that failed, and the events
    /// before that index must have been handled in this context (their rows written in its
    /// transaction, if it took one): the runner keeps that work — re-running those events when
    /// it had to roll their transaction back — and retries the failing event alone.
    async fn handle_batch(
        &self,
        events: &[RecordedEvent],
        context: &mut HandlerContext,
    ) -> Result<(), (usize, HandlerError)> {
        for (index, event) in events.iter().enumerate() {
            // Only an event stamped by a traced append gets a span, so with tracing off no
            // event pays for one.
            match event.metadata.traceparent.as_deref() {
                Some(traceparent) => {
                    let span = crate::trace::handle_event_span(event, traceparent);
                    self.handle(event, context).instrument(span).await
                }
                None => self.handle(event, context).await,
            }
            .map_err(|error| (index, error))?;
        }
        Ok(())
    }
}

/// Given to a handler with each event: the store, and on request the transaction the
/// subscription's checkpoint will commit in.
pub struct HandlerContext {
    store: Store,
    tx: Option<StoreTx>,
}

impl HandlerContext {
    fn new(store: Store) -> Self {
        Self { store, tx: None }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The transaction shared by this batch's events and the checkpoint, begun on first use.
    pub async fn transaction(&mut self) -> Result<&mut StoreTx, StoreError> {
        if self.tx.is_none() {
            self.tx = Some(self.store.begin().await?);
        }
        Ok(self.tx.as_mut().expect("just begun"))
    }

    fn uses_transaction(&self) -> bool {
        self.tx.is_some()
    }
}

/// Tuning of a subscription runner.
#[derive(Clone, Debug)]
pub struct SubscriptionOptions {
    /// Events read and handled per transaction.
    pub batch_size: i64,
    /// Attempts at one event before it is parked.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How long to wait for a wake-up before polling again.
    pub poll_interval: Duration,
    /// How long a lease lasts without renewal; a crashed runner's lease frees after this.
    pub lease_ttl: Duration,
    /// How often parked events marked for retry are looked for.
    pub dead_letter_check_interval: Duration,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            poll_interval: Duration::from_millis(500),
            lease_ttl: Duration::from_secs(30),
            dead_letter_check_interval: Duration::from_secs(5),
        }
    }
}

/// Why a subscription stopped processing.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("subscription {name} is leased by another runner")]
    LeaseHeld { name: String },
    #[error("subscription {name} lost its lease to another runner")]
    LeaseLost { name: String },
    /// The handler failed because the store (or another service) could not be reached: a lost
    /// connection, a pool out of connections. The event is not parked: the next round retries
    /// it, after the runner's backoff.
    #[error("subscription {name} cannot reach the store: {source}")]
    Unavailable {
        name: String,
        #[source]
        source: HandlerError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SubscriptionError {
    /// Whether the round may succeed later as it is (a lost connection, a busy database).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable { .. } => true,
            Self::Store(error) => error.is_transient(),
            Self::LeaseHeld { .. } | Self::LeaseLost { .. } => false,
        }
    }
}

impl From<sqlx::Error> for SubscriptionError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(error))
    }
}

/// What one catch-up pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatchUp {
    pub handled: u64,
    pub parked: u64,
    pub checkpoint: Checkpoint,
}

/// The first re-poll after a wake-up or a busy round that found nothing new; it doubles up to
/// [`SubscriptionOptions::poll_interval`].
const FIRST_IDLE_POLL: Duration = Duration::from_millis(2);

/// Moves a subscription's checkpoint and renews its lease, fenced by the lease owner.
///
/// The checkpoint and the handler's rows commit atomically; if a crash loses the last few
/// asynchronously committed transactions, both are lost together and the events are handled
/// again. So the commit need not wait for its WAL flush: `set_config(…, true)` is `SET LOCAL
/// synchronous_commit = off` for the transaction the statement runs in (the handler's, or its
/// own implicit one), folded into the statement to save a round trip.
const POSTGRES_SAVE_CHECKPOINT: &str = "WITH relaxed AS \
     (SELECT set_config('synchronous_commit', 'off', true) AS setting) \
     UPDATE subscriptions SET checkpoint_tx = $2, checkpoint_pos = $3, \
     lease_expires_at = now() + $5 * interval '1 millisecond', updated_at = now() \
     FROM relaxed WHERE name = $1 AND lease_owner = $4 AND relaxed.setting IS NOT NULL";

/// A named, durable subscriber.
pub struct Subscription {
    name: String,
    owner: String,
    /// The lease as this runner last renewed it: when, and the checkpoint it then committed.
    /// Within a third of the lease's lifetime nobody else can hold it, so a round needs no
    /// round trip to take it again; every checkpoint write renews it (fenced by owner).
    lease: std::sync::Mutex<Option<(std::time::Instant, Checkpoint)>>,
    dead_letters_checked: std::sync::Mutex<Option<std::time::Instant>>,
    store: Store,
    handler: Arc<dyn Handler>,
    options: SubscriptionOptions,
}

impl Subscription {
    pub fn new(name: impl Into<String>, store: Store, handler: Arc<dyn Handler>) -> Self {
        Self {
            name: name.into(),
            owner: format!("{}-{}", std::process::id(), Uuid::new_v4()),
            lease: std::sync::Mutex::new(None),
            dead_letters_checked: std::sync::Mutex::new(None),
            store,
            handler,
            options: SubscriptionOptions::default(),
        }
    }

    pub fn with_options(mut self, options: SubscriptionOptions) -> Self {
        self.options = options;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs until cancelled: takes the lease (waiting while another runner holds it), processes
    /// the log, waits for wake-ups, and releases the lease when cancelled.
    pub async fn run(&self, cancel: CancellationToken) -> Result<(), SubscriptionError> {
        let mut wake_ups = self.store.wake_ups();
        let mut lease_wait = self.options.initial_backoff;
        let mut idle_poll = FIRST_IDLE_POLL;
        while !cancel.is_cancelled() {
            match self.catch_up_once().await {
                Ok(pass) if pass.handled == 0 && pass.parked == 0 => {
                    lease_wait = self.options.initial_backoff;
                    // Just after a wake-up or a busy round, poll again soon, backing off to the
                    // poll interval: an event whose wake-up came before the visibility horizon
                    // passed it (an older transaction still open) is read once the horizon
                    // moves, not a whole poll interval later. The horizon still decides.
                    let wait = idle_poll.min(self.options.poll_interval);
                    let woken = tokio::select! {
                        () = cancel.cancelled() => break,
                        changed = tokio::time::timeout(wait, wake_ups.changed()) => changed,
                    };
                    idle_poll = match woken {
                        Ok(Ok(())) => FIRST_IDLE_POLL,
                        Ok(Err(_closed)) => {
                            // No more wake-ups can come: plain polling.
                            tokio::select! {
                                () = cancel.cancelled() => break,
                                () = tokio::time::sleep(wait) => {}
                            }
                            self.options.poll_interval
                        }
                        Err(_elapsed) => (idle_poll * 2).min(self.options.poll_interval),
                    };
                }
                Ok(_) => {
                    lease_wait = self.options.initial_backoff;
                    idle_poll = FIRST_IDLE_POLL;
                }
                Err(SubscriptionError::LeaseHeld { .. } | SubscriptionError::LeaseLost { .. }) => {
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(self.options.poll_interval.max(lease_wait)) => {}
                    }
                }
                Err(
                    error @ (SubscriptionError::Store(_) | SubscriptionError::Unavailable { .. }),
                ) => {
                    tracing::warn!(subscription = %self.name, %error, "subscription round failed; backing off");
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(lease_wait) => {}
                    }
                    lease_wait = (lease_wait * 2).min(self.options.max_backoff);
                }
            }
        }
        self.release_lease().await?;
        Ok(())
    }

    /// Takes the lease and processes every event available now (including retries of parked
    /// events that were marked for retry), then keeps the lease until it expires or `run`
    /// releases it. Used by `run`, by replays and by tests.
    pub async fn catch_up(&self) -> Result<CatchUp, SubscriptionError> {
        let mut total = CatchUp::default();
        loop {
            let pass = self.catch_up_once().await?;
            total.handled += pass.handled;
            total.parked += pass.parked;
            total.checkpoint = pass.checkpoint;
            if pass.handled == 0 && pass.parked == 0 {
                return Ok(total);
            }
        }
    }

    /// One batch: lease, retries of parked events, then up to `batch_size` new events.
    #[tracing::instrument(name = "subscription_batch", level = "info", skip_all, fields(subscription = %self.name))]
    async fn catch_up_once(&self) -> Result<CatchUp, SubscriptionError> {
        let mut checkpoint = self.lease_checkpoint().await?;
        let retried = if self.dead_letter_check_due() {
            self.retry_requested_dead_letters().await?
        } else {
            0
        };
        let events = self
            .store
            .read_all(checkpoint, self.options.batch_size)
            .await?;
        let mut pass = CatchUp {
            handled: retried,
            parked: 0,
            checkpoint,
        };
        if events.is_empty() {
            return Ok(pass);
        }
        let mut context = HandlerContext::new(self.store.clone());
        let failed_at = self.handler.handle_batch(&events, &mut context).await.err();
        let Some((index, error)) = failed_at else {
            let last = events.last().expect("not empty").checkpoint();
            self.commit(context, last).await?;
            pass.handled += events.len() as u64;
            pass.checkpoint = last;
            return Ok(pass);
        };
        // A lost connection says nothing about the event: it is retried on a later round (after
        // the caller's backoff) as often as it takes, never counted towards parking it.
        if crate::error::is_transient_error(error.as_ref()) {
            return Err(self.unavailable(context, &events[..index], error).await);
        }

        // Keep the work of the events before the failing one, then retry it alone.
        if index > 0 {
            let before = events[index - 1].checkpoint();
            if context.uses_transaction() {
                if let Some(tx) = context.tx.take() {
                    tx.rollback().await?;
                }
                let mut redo = HandlerContext::new(self.store.clone());
                if let Err((_, error)) =
                    self.handler.handle_batch(&events[..index], &mut redo).await
                {
                    // The handler failed on events it had just handled: let the next round start
                    // over from the last checkpoint.
                    tracing::warn!(subscription = %self.name, %error, "handler failed on redo");
                    if let Some(tx) = redo.tx.take() {
                        tx.rollback().await?;
                    }
                    return Ok(pass);
                }
                self.commit(redo, before).await?;
            } else {
                self.commit(context, before).await?;
            }
            pass.handled += index as u64;
            checkpoint = before;
        } else if let Some(tx) = context.tx.take() {
            tx.rollback().await?;
        }
        let failing = &events[index];
        let mut attempts = 1;
        let mut last_error = error.to_string();
        let mut backoff = self.options.initial_backoff;
        while attempts < self.options.max_attempts {
            tracing::debug!(subscription = %self.name, position = failing.global_position, attempts, error = %last_error, "handler failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.options.max_backoff);
            attempts += 1;
            let mut context = HandlerContext::new(self.store.clone());
            match self
                .handler
                .handle_batch(std::slice::from_ref(failing), &mut context)
                .await
                .map_err(|(_, error)| error)
            {
                Ok(()) => {
                    self.commit(context, failing.checkpoint()).await?;
                    pass.handled += 1;
                    pass.checkpoint = failing.checkpoint();
                    return Ok(pass);
                }
                Err(error) if crate::error::is_transient_error(error.as_ref()) => {
                    if let Some(tx) = context.tx.take() {
                        let _ = tx.rollback().await;
                    }
                    return Err(SubscriptionError::Unavailable {
                        name: self.name.clone(),
                        source: error,
                    });
                }
                Err(error) => {
                    if let Some(tx) = context.tx.take() {
                        tx.rollback().await?;
                    }
                    last_error = error.to_string();
                }
            }
        }
        tracing::warn!(subscription = %self.name, position = failing.global_position, event_type = %failing.event_type, attempts, error = %last_error, "parking event in dead letters");
        self.park(failing, &last_error, attempts).await?;
        pass.parked += 1;
        pass.checkpoint = failing.checkpoint();
        let _ = checkpoint;
        Ok(pass)
    }

    /// The round's end after a transient handler failure at the event after `handled`: the
    /// events before it are kept when they can be (their work committed with the checkpoint,
    /// redone first if it was in the rolled-back transaction); the failure is returned.
    async fn unavailable(
        &self,
        mut context: HandlerContext,
        handled: &[RecordedEvent],
        error: HandlerError,
    ) -> SubscriptionError {
        let unavailable = SubscriptionError::Unavailable {
            name: self.name.clone(),
            source: error,
        };
        let Some(last) = handled.last() else {
            if let Some(tx) = context.tx.take() {
                let _ = tx.rollback().await;
            }
            return unavailable;
        };
        let context = if let Some(tx) = context.tx.take() {
            // The failing event's work is in the same transaction: roll it back and redo the
            // events before it alone.
            let _ = tx.rollback().await;
            let mut redo = HandlerContext::new(self.store.clone());
            if self.handler.handle_batch(handled, &mut redo).await.is_err() {
                if let Some(tx) = redo.tx.take() {
                    let _ = tx.rollback().await;
                }
                return unavailable;
            }
            redo
        } else {
            context
        };
        // Most likely the connection is still gone and this fails too: the next round starts
        // from the stored checkpoint then, and at-least-once delivery covers the redo.
        if let Err(error) = self.commit(context, last.checkpoint()).await {
            tracing::debug!(subscription = %self.name, %error, "cannot keep the work before a transient failure");
        }
        unavailable
    }

    /// The stored checkpoint, taking or renewing the lease only when this runner's last renewal
    /// is older than a third of the lease's lifetime.
    async fn lease_checkpoint(&self) -> Result<Checkpoint, SubscriptionError> {
        let cached = *self
            .lease
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((renewed, checkpoint)) = cached
            && renewed.elapsed() < self.options.lease_ttl / 3
        {
            return Ok(checkpoint);
        }
        let renewed = std::time::Instant::now();
        match self.acquire_lease().await {
            Ok(checkpoint) => {
                self.remember_lease(renewed, checkpoint);
                Ok(checkpoint)
            }
            Err(error) => {
                self.forget_lease();
                Err(error)
            }
        }
    }

    fn remember_lease(&self, renewed: std::time::Instant, checkpoint: Checkpoint) {
        *self
            .lease
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((renewed, checkpoint));
    }

    fn forget_lease(&self) {
        *self
            .lease
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }

    fn dead_letter_check_due(&self) -> bool {
        let mut checked = self
            .dead_letters_checked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = checked.is_none_or(|at| at.elapsed() >= self.options.dead_letter_check_interval);
        if due {
            *checked = Some(std::time::Instant::now());
        }
        due
    }

    /// Commits the handler's transaction (or a fresh one) with the checkpoint, fenced by the lease.
    async fn commit(
        &self,
        context: HandlerContext,
        checkpoint: Checkpoint,
    ) -> Result<(), SubscriptionError> {
        let renewed = std::time::Instant::now();
        let mut tx = match (context.tx, &self.store) {
            (Some(tx), _) => tx,
            (None, Store::Postgres(store)) => {
                // Nothing else to commit: the checkpoint alone is one statement in its own
                // (implicit) transaction, one round trip instead of four.
                let updated = sqlx::query(sqlx::AssertSqlSafe(POSTGRES_SAVE_CHECKPOINT))
                    .bind(&self.name)
                    .bind(checkpoint.transaction_id)
                    .bind(checkpoint.global_position)
                    .bind(&self.owner)
                    .bind(self.options.lease_ttl.as_millis() as i64)
                    .execute(store.pool())
                    .await;
                return match updated {
                    Ok(done) if done.rows_affected() > 0 => {
                        self.remember_lease(renewed, checkpoint);
                        Ok(())
                    }
                    Ok(_) => {
                        self.forget_lease();
                        Err(SubscriptionError::LeaseLost {
                            name: self.name.clone(),
                        })
                    }
                    Err(error) => {
                        self.forget_lease();
                        Err(error.into())
                    }
                };
            }
            (None, Store::Sqlite(_)) => self.store.begin().await?,
        };
        let updated = self.save_checkpoint(&mut tx, checkpoint).await?;
        if updated == 0 {
            tx.rollback().await?;
            self.forget_lease();
            return Err(SubscriptionError::LeaseLost {
                name: self.name.clone(),
            });
        }
        if let Err(error) = tx.commit().await {
            self.forget_lease();
            return Err(error.into());
        }
        self.remember_lease(renewed, checkpoint);
        Ok(())
    }

    async fn save_checkpoint(
        &self,
        tx: &mut StoreTx,
        checkpoint: Checkpoint,
    ) -> Result<u64, SubscriptionError> {
        let ttl = self.options.lease_ttl.as_millis() as i64;
        let rows = match tx {
            StoreTx::Postgres(tx) => sqlx::query(sqlx::AssertSqlSafe(POSTGRES_SAVE_CHECKPOINT))
                .bind(&self.name)
                .bind(checkpoint.transaction_id)
                .bind(checkpoint.global_position)
                .bind(&self.owner)
                .bind(ttl)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            StoreTx::Sqlite(tx) => {
                let now = Utc::now();
                sqlx::query(
                    "UPDATE subscriptions SET checkpoint_tx = ?2, checkpoint_pos = ?3, \
                     lease_expires_at = ?5, updated_at = ?6 WHERE name = ?1 AND lease_owner = ?4",
                )
                .bind(&self.name)
                .bind(checkpoint.transaction_id)
                .bind(checkpoint.global_position)
                .bind(&self.owner)
                .bind(now.timestamp_millis() + ttl)
                .bind(sqlite_time(now))
                .execute(&mut **tx)
                .await?
                .rows_affected()
            }
        };
        Ok(rows)
    }

    /// Takes or renews the lease and returns the stored checkpoint.
    async fn acquire_lease(&self) -> Result<Checkpoint, SubscriptionError> {
        let ttl = self.options.lease_ttl.as_millis() as i64;
        let row = match &self.store {
            Store::Postgres(store) => {
                sqlx::query("INSERT INTO subscriptions (name) VALUES ($1) ON CONFLICT DO NOTHING")
                    .bind(&self.name)
                    .execute(store.pool())
                    .await?;
                sqlx::query(
                    "UPDATE subscriptions SET lease_owner = $2, \
                     lease_expires_at = now() + $3 * interval '1 millisecond' \
                     WHERE name = $1 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_expires_at < now()) \
                     RETURNING checkpoint_tx, checkpoint_pos",
                )
                .bind(&self.name)
                .bind(&self.owner)
                .bind(ttl)
                .fetch_optional(store.pool())
                .await?
                .map(|row| -> Result<Checkpoint, sqlx::Error> {
                    Ok(Checkpoint {
                        transaction_id: row.try_get(0)?,
                        global_position: row.try_get(1)?,
                    })
                })
                .transpose()?
            }
            Store::Sqlite(store) => {
                let now = Utc::now();
                let mut tx = store.write_pool().begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query("INSERT INTO subscriptions (name, updated_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
                    .bind(&self.name)
                    .bind(sqlite_time(now))
                    .execute(&mut *tx)
                    .await?;
                let row = sqlx::query(
                    "UPDATE subscriptions SET lease_owner = ?2, lease_expires_at = ?3 \
                     WHERE name = ?1 AND (lease_owner IS NULL OR lease_owner = ?2 OR lease_expires_at < ?4) \
                     RETURNING checkpoint_tx, checkpoint_pos",
                )
                .bind(&self.name)
                .bind(&self.owner)
                .bind(now.timestamp_millis() + ttl)
                .bind(now.timestamp_millis())
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| -> Result<Checkpoint, sqlx::Error> {
                    Ok(Checkpoint {
                        transaction_id: row.try_get(0)?,
                        global_position: row.try_get(1)?,
                    })
                })
                .transpose()?;
                tx.commit().await?;
                row
            }
        };
        row.ok_or_else(|| SubscriptionError::LeaseHeld {
            name: self.name.clone(),
        })
    }

    /// Gives the lease up so another runner can take over at once.
    pub async fn release_lease(&self) -> Result<(), SubscriptionError> {
        self.forget_lease();
        match &self.store {
            Store::Postgres(store) => {
                sqlx::query("UPDATE subscriptions SET lease_owner = NULL, lease_expires_at = NULL WHERE name = $1 AND lease_owner = $2")
                    .bind(&self.name)
                    .bind(&self.owner)
                    .execute(store.pool())
                    .await?;
            }
            Store::Sqlite(store) => {
                sqlx::query("UPDATE subscriptions SET lease_owner = NULL, lease_expires_at = NULL WHERE name = ?1 AND lease_owner = ?2")
                    .bind(&self.name)
                    .bind(&self.owner)
                    .execute(store.write_pool())
                    .await?;
            }
        }
        Ok(())
    }

    async fn park(
        &self,
        event: &RecordedEvent,
        error: &str,
        attempts: u32,
    ) -> Result<(), SubscriptionError> {
        let mut tx = self.store.begin().await?;
        match &mut tx {
            StoreTx::Postgres(tx) => {
                sqlx::query(
                    "INSERT INTO dead_letters (subscription, global_position, transaction_id, event_id, \
                     stream_id, event_type, error, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (subscription, event_id) DO UPDATE SET error = EXCLUDED.error, \
                     attempts = dead_letters.attempts + EXCLUDED.attempts, parked_at = now(), \
                     resolved_at = NULL, retry_requested_at = NULL",
                )
                .bind(&self.name)
                .bind(event.global_position)
                .bind(event.transaction_id)
                .bind(event.event_id)
                .bind(&event.stream_id)
                .bind(&event.event_type)
                .bind(error)
                .bind(attempts as i32)
                .execute(&mut **tx)
                .await?;
            }
            StoreTx::Sqlite(tx) => {
                sqlx::query(
                    "INSERT INTO dead_letters (subscription, global_position, transaction_id, event_id, \
                     stream_id, event_type, error, attempts, parked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                     ON CONFLICT (subscription, event_id) DO UPDATE SET error = excluded.error, \
                     attempts = dead_letters.attempts + excluded.attempts, parked_at = excluded.parked_at, \
                     resolved_at = NULL, retry_requested_at = NULL",
                )
                .bind(&self.name)
                .bind(event.global_position)
                .bind(event.transaction_id)
                .bind(event.event_id.to_string())
                .bind(&event.stream_id)
                .bind(&event.event_type)
                .bind(error)
                .bind(attempts as i32)
                .bind(sqlite_time(Utc::now()))
                .execute(&mut **tx)
                .await?;
            }
        }
        let renewed = std::time::Instant::now();
        let updated = self.save_checkpoint(&mut tx, event.checkpoint()).await?;
        if updated == 0 {
            tx.rollback().await?;
            self.forget_lease();
            return Err(SubscriptionError::LeaseLost {
                name: self.name.clone(),
            });
        }
        tx.commit().await?;
        self.remember_lease(renewed, event.checkpoint());
        Ok(())
    }

    /// Handles parked events a human marked for retry; resolves the ones that now succeed.
    async fn retry_requested_dead_letters(&self) -> Result<u64, SubscriptionError> {
        let requested: Vec<DeadLetter> = list_dead_letters(&self.store, Some(&self.name))
            .await?
            .into_iter()
            .filter(|letter| letter.retry_requested_at.is_some())
            .collect();
        let mut handled = 0;
        for letter in requested {
            let event = read_event_at(&self.store, letter.global_position).await?;
            let mut context = HandlerContext::new(self.store.clone());
            let outcome = match event {
                Some(event) => self
                    .handler
                    .handle_batch(std::slice::from_ref(&event), &mut context)
                    .await
                    .map_err(|(_, error)| error),
                None => Err("the parked event is no longer in the log".into()),
            };
            let mut tx = match context.tx.take() {
                Some(tx) if outcome.is_ok() => tx,
                Some(tx) => {
                    tx.rollback().await?;
                    self.store.begin().await?
                }
                None => self.store.begin().await?,
            };
            let error = outcome.as_ref().err().map(ToString::to_string);
            match &mut tx {
                StoreTx::Postgres(tx) => {
                    sqlx::query(
                        "UPDATE dead_letters SET retry_requested_at = NULL, attempts = attempts + 1, \
                         resolved_at = CASE WHEN $2::text IS NULL THEN now() END, error = COALESCE($2, error) \
                         WHERE id = $1",
                    )
                    .bind(letter.id)
                    .bind(&error)
                    .execute(&mut **tx)
                    .await?;
                }
                StoreTx::Sqlite(tx) => {
                    sqlx::query(
                        "UPDATE dead_letters SET retry_requested_at = NULL, attempts = attempts + 1, \
                         resolved_at = CASE WHEN ?2 IS NULL THEN ?3 END, error = COALESCE(?2, error) \
                         WHERE id = ?1",
                    )
                    .bind(letter.id)
                    .bind(&error)
                    .bind(sqlite_time(Utc::now()))
                    .execute(&mut **tx)
                    .await?;
                }
            }
            tx.commit().await?;
            if outcome.is_ok() {
                handled += 1;
            }
        }
        Ok(handled)
    }
}

/// One event by its global position.
async fn read_event_at(store: &Store, position: i64) -> Result<Option<RecordedEvent>, StoreError> {
    // The log is read through the trait so upcasting applies; positions are unique, and a
    // parked event's transaction committed long ago, so reading from (its tx, position - 1)
    // finds it first.
    let transaction_id = match store {
        Store::Postgres(store) => {
            sqlx::query_scalar::<_, i64>(
                "SELECT transaction_id::text::bigint FROM events WHERE global_position = $1",
            )
            .bind(position)
            .fetch_optional(store.pool())
            .await?
        }
        Store::Sqlite(_) => Some(0),
    };
    let Some(transaction_id) = transaction_id else {
        return Ok(None);
    };
    let after = Checkpoint {
        transaction_id,
        global_position: position - 1,
    };
    let events = store.read_all(after, 1).await?;
    Ok(events
        .into_iter()
        .find(|event| event.global_position == position))
}

/// A parked event.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub subscription: String,
    pub global_position: i64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub event_type: String,
    pub error: String,
    pub attempts: i32,
    pub parked_at: DateTime<Utc>,
    pub retry_requested_at: Option<DateTime<Utc>>,
}

/// Open (unresolved) dead letters, of one subscription or of all, oldest first.
pub async fn list_dead_letters(
    store: &Store,
    subscription: Option<&str>,
) -> Result<Vec<DeadLetter>, StoreError> {
    match store {
        Store::Postgres(store) => {
            let rows = sqlx::query(
                "SELECT id, subscription, global_position, event_id, stream_id, event_type, error, \
                 attempts, parked_at, retry_requested_at FROM dead_letters \
                 WHERE resolved_at IS NULL AND ($1::text IS NULL OR subscription = $1) ORDER BY id",
            )
            .bind(subscription)
            .fetch_all(store.pool())
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(DeadLetter {
                        id: row.try_get(0)?,
                        subscription: row.try_get(1)?,
                        global_position: row.try_get(2)?,
                        event_id: row.try_get(3)?,
                        stream_id: row.try_get(4)?,
                        event_type: row.try_get(5)?,
                        error: row.try_get(6)?,
                        attempts: row.try_get(7)?,
                        parked_at: row.try_get(8)?,
                        retry_requested_at: row.try_get(9)?,
                    })
                })
                .collect()
        }
        Store::Sqlite(store) => {
            let rows = sqlx::query(
                "SELECT id, subscription, global_position, event_id, stream_id, event_type, error, \
                 attempts, parked_at, retry_requested_at FROM dead_letters \
                 WHERE resolved_at IS NULL AND (?1 IS NULL OR subscription = ?1) ORDER BY id",
            )
            .bind(subscription)
            .fetch_all(store.read_pool())
            .await?;
            let time = |text: String| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|time| time.with_timezone(&Utc))
                    .map_err(|error| StoreError::Decode {
                        event_type: "dead_letter".into(),
                        global_position: 0,
                        message: error.to_string(),
                    })
            };
            rows.iter()
                .map(|row| {
                    let event_id: String = row.try_get(3)?;
                    Ok(DeadLetter {
                        id: row.try_get(0)?,
                        subscription: row.try_get(1)?,
                        global_position: row.try_get(2)?,
                        event_id: Uuid::parse_str(&event_id).unwrap_or_default(),
                        stream_id: row.try_get(4)?,
                        event_type: row.try_get(5)?,
                        error: row.try_get(6)?,
                        attempts: row.try_get(7)?,
                        parked_at: time(row.try_get(8)?)?,
                        retry_requested_at: row
                            .try_get::<Option<String>, _>(9)?
                            .map(time)
                            .transpose()?,
                    })
                })
                .collect()
        }
    }
}

/// Marks a parked event for retry; the subscription's runner retries it on its next round.
/// Returns false when no open dead letter has that id.
pub async fn request_dead_letter_retry(store: &Store, id: i64) -> Result<bool, StoreError> {
    let rows = match store {
        Store::Postgres(store) => sqlx::query(
            "UPDATE dead_letters SET retry_requested_at = now() WHERE id = $1 AND resolved_at IS NULL",
        )
        .bind(id)
        .execute(store.pool())
        .await?
        .rows_affected(),
        Store::Sqlite(store) => sqlx::query(
            "UPDATE dead_letters SET retry_requested_at = ?2 WHERE id = ?1 AND resolved_at IS NULL",
        )
        .bind(id)
        .bind(sqlite_time(Utc::now()))
        .execute(store.write_pool())
        .await?
        .rows_affected(),
    };
    Ok(rows == 1)
}

/// The stored checkpoint of a subscription (START if it never ran).
pub async fn stored_checkpoint(store: &Store, name: &str) -> Result<Checkpoint, StoreError> {
    let row = match store {
        Store::Postgres(store) => {
            sqlx::query("SELECT checkpoint_tx, checkpoint_pos FROM subscriptions WHERE name = $1")
                .bind(name)
                .fetch_optional(store.pool())
                .await?
        }
        Store::Sqlite(store) => {
            return sqlx::query(
                "SELECT checkpoint_tx, checkpoint_pos FROM subscriptions WHERE name = ?1",
            )
            .bind(name)
            .fetch_optional(store.read_pool())
            .await?
            .map_or(Ok(Checkpoint::START), |row| {
                Ok(Checkpoint {
                    transaction_id: row.try_get(0)?,
                    global_position: row.try_get(1)?,
                })
            });
        }
    };
    row.map_or(Ok(Checkpoint::START), |row| {
        Ok(Checkpoint {
            transaction_id: row.try_get(0)?,
            global_position: row.try_get(1)?,
        })
    })
}

/// How far each stored subscription is behind the head of the log, in global positions
/// (the newest event's position minus the subscription's checkpoint; 0 when caught up), by
/// name. What `/metrics` reports as subscription lag.
pub async fn subscription_lags(store: &Store) -> Result<Vec<(String, i64)>, StoreError> {
    const LAGS: &str = "SELECT s.name, \
         MAX(COALESCE((SELECT MAX(global_position) FROM events), 0) - s.checkpoint_pos, 0) \
         FROM subscriptions s ORDER BY s.name";
    const LAGS_PG: &str = "SELECT s.name, \
         GREATEST(COALESCE((SELECT MAX(global_position) FROM events), 0) - s.checkpoint_pos, 0) \
         FROM subscriptions s ORDER BY s.name";
    let lags = match store {
        Store::Postgres(store) => sqlx::query_as(LAGS_PG).fetch_all(store.pool()).await?,
        Store::Sqlite(store) => sqlx::query_as(LAGS).fetch_all(store.read_pool()).await?,
    };
    Ok(lags)
}
