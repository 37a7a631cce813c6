//! Named expiring leases for work that is not a subscription: one holder at a time, the others
//! standing by until the holder gives the lease back or stops renewing it (a crash).
//!
//! A lease is a row in `leases` taken or renewed by one short statement (an upsert fenced by the
//! owner or the expiry), never by a transaction held open. A holder renews it well before it
//! expires: [`Lease::hold`] costs a round trip only when the last renewal is older than a third
//! of the lease's lifetime. [`Lease::surely_held`] tells, without a round trip, whether the
//! last successful renewal is recent enough that nobody else can have the lease yet — what a
//! holder checks before going on with work it must not share.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use uuid::Uuid;

use crate::error::StoreError;
use crate::store::Store;

/// One process's claim on a named lease.
#[derive(Debug)]
pub struct Lease {
    store: Store,
    name: String,
    owner: String,
    ttl: Duration,
    /// When this holder's last successful renewal began (None: not held).
    renewed: Mutex<Option<Instant>>,
}

impl Lease {
    /// A claim on the lease `name` lasting `ttl` after each renewal; nothing is taken yet.
    pub fn new(store: Store, name: impl Into<String>, ttl: Duration) -> Self {
        Self {
            store,
            name: name.into(),
            owner: format!("{}-{}", std::process::id(), Uuid::new_v4()),
            ttl,
            renewed: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// This claim's owner id, as stored in the lease's row.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes or renews the lease: true when this claim holds it (false: another holder's lease
    /// has not expired). Within a third of the lifetime of the last renewal, no round trip.
    /// A failed renewal (a lost connection) is an error; the lease may still be held until
    /// [`Lease::surely_held`] turns false.
    pub async fn hold(&self) -> Result<bool, StoreError> {
        if self
            .last_renewal()
            .is_some_and(|at| at.elapsed() < self.ttl / 3)
        {
            return Ok(true);
        }
        self.renew().await
    }

    /// Renews now, whatever the last renewal; true when this claim holds the lease.
    pub async fn renew(&self) -> Result<bool, StoreError> {
        let began = Instant::now();
        let ttl = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let held = match &self.store {
            Store::Postgres(store) => sqlx::query_scalar::<_, String>(
                "INSERT INTO leases (name, owner, expires_at) \
                 VALUES ($1, $2, now() + $3 * interval '1 millisecond') \
                 ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at \
                 WHERE leases.owner = EXCLUDED.owner OR leases.expires_at < now() \
                 RETURNING owner",
            )
            .bind(&self.name)
            .bind(&self.owner)
            .bind(ttl)
            .fetch_optional(store.pool())
            .await?
            .is_some(),
            Store::Sqlite(store) => {
                let now = Utc::now().timestamp_millis();
                sqlx::query_scalar::<_, String>(
                    "INSERT INTO leases (name, owner, expires_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
                     WHERE leases.owner = excluded.owner OR leases.expires_at < ?4 \
                     RETURNING owner",
                )
                .bind(&self.name)
                .bind(&self.owner)
                .bind(now.saturating_add(ttl))
                .bind(now)
                .fetch_optional(store.write_pool())
                .await?
                .is_some()
            }
        };
        *self.renewed_at() = held.then_some(began);
        Ok(held)
    }

    /// Whether the last successful renewal is younger than five sixths of the lease's lifetime:
    /// until it expires no other claim can take it, even if the store cannot be reached now; the
    /// last sixth is a margin for a holder that looks only every so often.
    pub fn surely_held(&self) -> bool {
        self.last_renewal()
            .is_some_and(|at| at.elapsed() < self.ttl - self.ttl / 6)
    }

    /// Gives the lease up (if this claim holds it), so another claim can take it at once.
    pub async fn release(&self) -> Result<(), StoreError> {
        *self.renewed_at() = None;
        match &self.store {
            Store::Postgres(store) => {
                sqlx::query("DELETE FROM leases WHERE name = $1 AND owner = $2")
                    .bind(&self.name)
                    .bind(&self.owner)
                    .execute(store.pool())
                    .await?;
            }
            Store::Sqlite(store) => {
                sqlx::query("DELETE FROM leases WHERE name = ?1 AND owner = ?2")
                    .bind(&self.name)
                    .bind(&self.owner)
                    .execute(store.write_pool())
                    .await?;
            }
        }
        Ok(())
    }

    fn last_renewal(&self) -> Option<Instant> {
        *self.renewed_at()
    }

    fn renewed_at(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.renewed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
