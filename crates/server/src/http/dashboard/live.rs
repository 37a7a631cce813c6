//! `GET /api/events/live`: the events appended from now on, as Server-Sent Events. The feed
//! starts at the head of the log and follows it by checkpoint with [`EventStore::read_all`]
//! (which never skips an event whose transaction may still commit), woken by the store's
//! notifications or a short poll. Each event's data is a small JSON object — type, stream,
//! position, occurred_at, actor — never the event's payload, so the feed shows no personal data.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use salesdept_events::store::wait_for_events;
use salesdept_events::{Checkpoint, EventStore, RecordedEvent, Store, StoreError};
use serde_json::json;

use super::{DashboardState, FeedViewer};
use crate::http::ApiError;

/// How often the feed looks at the log when no notification came.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// A comment line this often keeps proxies from closing an idle feed.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events read from the log per query.
const BATCH: i64 = 200;

/// `GET /api/events/live` (bearer token or dashboard session, any role).
pub async fn live(
    FeedViewer(user): FeedViewer,
    State(state): State<DashboardState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let store = state.api.store.clone();
    let after = head_checkpoint(&store).await?;
    tracing::info!(user = %user.name, %after, "live feed opened");
    Ok(Sse::new(follow(store, after)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// The events of `store` after `after`, forever.
pub fn follow(store: Store, after: Checkpoint) -> impl Stream<Item = Result<Event, Infallible>> {
    struct Feed {
        wake_ups: tokio::sync::watch::Receiver<u64>,
        store: Store,
        after: Checkpoint,
        pending: VecDeque<RecordedEvent>,
    }
    let feed = Feed {
        wake_ups: store.wake_ups(),
        store,
        after,
        pending: VecDeque::new(),
    };
    futures::stream::unfold(feed, |mut feed| async move {
        loop {
            if let Some(event) = feed.pending.pop_front() {
                return Some((Ok(sse_event(&event)), feed));
            }
            match feed.store.read_all(feed.after, BATCH).await {
                Ok(events) if !events.is_empty() => {
                    if let Some(last) = events.last() {
                        feed.after = last.checkpoint();
                    }
                    feed.pending.extend(events);
                }
                Ok(_) => wait_for_events(&mut feed.wake_ups, POLL_INTERVAL).await,
                Err(error) => {
                    tracing::warn!(%error, "live feed: cannot read the log");
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
            }
        }
    })
}

/// One feed line: what happened where and by whom, not the payload.
pub fn sse_event(event: &RecordedEvent) -> Event {
    let data = json!({
        "type": event.event_type,
        "stream": event.stream_id,
        "position": event.global_position,
        "occurred_at": event.metadata.occurred_at,
        "actor": event.metadata.actor.to_string(),
    });
    Event::default()
        .id(event.global_position.to_string())
        .data(data.to_string())
}

/// The checkpoint of the newest event committed now (the feed starts after it). Not the
/// visibility horizon `read_all` stops at: on PostgreSQL that horizon is the oldest snapshot
/// open anywhere on the server, which may be far behind, and the feed would replay the events
/// between it and the head. An event of a transaction still open at connect time with a lower
/// id may be left out: the feed is a live view, not a subscription.
pub async fn head_checkpoint(store: &Store) -> Result<Checkpoint, StoreError> {
    let row: Option<(i64, i64)> = match store {
        Store::Postgres(store) => {
            sqlx::query_as(
                "SELECT transaction_id::text::bigint, global_position FROM events \
                 ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
            )
            .fetch_optional(store.pool())
            .await?
        }
        Store::Sqlite(store) => {
            sqlx::query_as(
                "SELECT transaction_id, global_position FROM events \
                 ORDER BY global_position DESC LIMIT 1",
            )
            .fetch_optional(store.read_pool())
            .await?
        }
    };
    Ok(
        row.map_or(Checkpoint::START, |(transaction_id, global_position)| {
            Checkpoint {
                transaction_id,
                global_position,
            }
        }),
    )
}
