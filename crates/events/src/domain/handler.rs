//! The generic command handler: load a stream, fold it, decide, append with the version read;
//! on a version conflict, catch up with what the other writer appended and decide again.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::error::DomainError;
use crate::domain::event::{Aggregate, CommandMetadata, DomainEvent};
use crate::envelope::{AppendResult, ExpectedVersion, NewEvent};
use crate::error::StoreError;
use crate::store::EventStore;
use tracing::Instrument as _;

/// How often a command is decided again after version conflicts before giving up.
pub const DEFAULT_MAX_ATTEMPTS: usize = 5;

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A rule refused it; nothing was appended.
    #[error(transparent)]
    Rejected(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Other writers kept appending to the stream between our read and our append.
    #[error("stream {stream_id} kept changing: gave up after {attempts} attempts")]
    TooManyConflicts { stream_id: String, attempts: usize },
}

impl CommandError {
    /// The rule that refused the command, if a rule did.
    pub fn rejection(&self) -> Option<&DomainError> {
        match self {
            Self::Rejected(error) => Some(error),
            _ => None,
        }
    }
}

/// A stream folded into its state.
#[derive(Clone, Debug)]
pub struct Loaded<A> {
    pub state: A,
    /// The stream's version read (None: the stream has no events).
    pub version: Option<i64>,
    /// The `traceparent` of the stream's latest event, when it was appended in a traced span
    /// (always None with tracing off, so nothing is allocated for it).
    pub latest_traceparent: Option<String>,
}

/// What a command did.
#[derive(Clone, Debug)]
pub struct Executed<A: Aggregate> {
    /// The events decided (empty: the command was already carried out).
    pub events: Vec<A::Event>,
    /// The rows appended, with their ids and metadata.
    pub appended: Vec<NewEvent>,
    /// The store's answer (None when nothing was appended).
    pub append: Option<AppendResult>,
    /// The state after the events.
    pub state: A,
    pub stream_version: Option<i64>,
    /// 1 plus the number of conflicts met.
    pub attempts: usize,
}

/// Runs commands of any [`Aggregate`] against an [`EventStore`] (`S` may be `dyn EventStore`).
pub struct CommandHandler<S: ?Sized> {
    store: Arc<S>,
    max_attempts: usize,
    /// Opt-in ([`CommandHandler::with_state_cache`]): per stream, the state folded up to a
    /// version, so the next command or load reads only the events after it. Shared by clones.
    cache: Option<Arc<StateCache>>,
}

/// Which streams a state cache keeps (a plain function: e.g. only the account streams, so
/// no lead's personal data stays in memory after it is forgotten).
pub type CacheFilter = fn(&str) -> bool;

/// The folded states a handler remembers, for the streams its filter accepts.
struct StateCache {
    keeps: CacheFilter,
    /// Each value is a `Loaded<A>` of the stream's aggregate.
    states: Mutex<HashMap<String, Box<dyn Any + Send + Sync>>>,
}

impl<S: ?Sized> Clone for CommandHandler<S> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            max_attempts: self.max_attempts,
            cache: self.cache.clone(),
        }
    }
}

impl<S: ?Sized> std::fmt::Debug for CommandHandler<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandHandler")
            .field("max_attempts", &self.max_attempts)
            .field("state_cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: EventStore + ?Sized> CommandHandler<S> {
    pub fn new(store: Arc<S>) -> Self {
        Self {
            store,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            cache: None,
        }
    }

    /// Remembers the folded state and version of each stream `keeps` accepts between
    /// commands and loads: the next one reads only the events appended since (by anyone), and
    /// a stale entry is caught up like any version conflict. Worth it for long streams one
    /// process keeps writing to (a sending account's slots all month).
    pub fn with_state_cache(mut self, keeps: CacheFilter) -> Self {
        self.cache = Some(Arc::new(StateCache {
            keeps,
            states: Mutex::default(),
        }));
        self
    }

    /// The cached fold of `stream_id`, or an empty one.
    fn cached<A: Aggregate>(&self, stream_id: &str) -> Loaded<A> {
        self.cache
            .as_ref()
            .filter(|cache| (cache.keeps)(stream_id))
            .and_then(|cache| {
                let states = cache
                    .states
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                states
                    .get(stream_id)
                    .and_then(|entry| entry.downcast_ref::<Loaded<A>>())
                    .cloned()
            })
            .unwrap_or(Loaded {
                state: A::default(),
                version: None,
                latest_traceparent: None,
            })
    }

    fn remember<A: Aggregate>(
        &self,
        stream_id: &str,
        state: &A,
        version: Option<i64>,
        latest_traceparent: Option<&str>,
    ) {
        if let Some(cache) = self.cache.as_ref().filter(|cache| (cache.keeps)(stream_id)) {
            let loaded = Loaded {
                state: state.clone(),
                version,
                latest_traceparent: latest_traceparent.map(str::to_owned),
            };
            cache
                .states
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(stream_id.to_owned(), Box::new(loaded));
        }
    }

    /// Remembers `loaded` when it went past the cached version `known` (unchanged: the cached
    /// entry already holds it, and cloning the state again is wasted).
    fn remember_if_moved<A: Aggregate>(
        &self,
        stream_id: &str,
        loaded: &Loaded<A>,
        known: Option<i64>,
    ) {
        if loaded.version != known {
            self.remember(
                stream_id,
                &loaded.state,
                loaded.version,
                loaded.latest_traceparent.as_deref(),
            );
        }
    }

    /// At most `attempts` decisions per command (at least 1).
    pub fn with_max_attempts(mut self, attempts: usize) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Reads and folds the stream (with the state cache: from the cached version on).
    #[tracing::instrument(skip_all, fields(stream_id = %stream_id), err)]
    pub async fn load<A: Aggregate>(&self, stream_id: &str) -> Result<Loaded<A>, StoreError> {
        let cached = self.cached::<A>(stream_id);
        let known = cached.version;
        let loaded = self.catch_up(stream_id, cached).await?;
        self.remember_if_moved(stream_id, &loaded, known);
        Ok(loaded)
    }

    /// Folds the events appended after `loaded` was read.
    async fn catch_up<A: Aggregate>(
        &self,
        stream_id: &str,
        loaded: Loaded<A>,
    ) -> Result<Loaded<A>, StoreError> {
        let from_version = loaded.version.unwrap_or(0) + 1;
        let recorded = self
            .store
            .read_stream(stream_id, from_version, None)
            .await?;
        let mut state = loaded.state;
        let mut version = loaded.version;
        for event in &recorded {
            state = state.evolve(&A::Event::from_recorded(event)?);
            version = Some(event.stream_version);
        }
        let latest_traceparent = match recorded.last() {
            Some(latest) => latest.metadata.traceparent.clone(),
            None => loaded.latest_traceparent,
        };
        Ok(Loaded {
            state,
            version,
            latest_traceparent,
        })
    }

    /// Decides `command` on the stream's current state and appends the events with
    /// `metadata`, expecting the version read; on a conflict, catches up and decides again
    /// (at most `max_attempts` times).
    ///
    /// The command runs in an `execute` span. On a stream whose aggregate continues its trace
    /// ([`Aggregate::CONTINUES_TRACE`]: a lead's), a command that is not already in the trace of
    /// the stream's latest event (a scheduled job's, say) becomes a child of that event's span,
    /// linked to the caller's span: one lead's whole journey is one trace. The span is made
    /// after the stream is read because a span's parent cannot change once it has started.
    pub async fn execute<A: Aggregate>(
        &self,
        stream_id: &str,
        command: &A::Command,
        metadata: &CommandMetadata,
    ) -> Result<Executed<A>, CommandError> {
        let span = |latest_traceparent: Option<&str>| {
            let span = tracing::info_span!(
                "execute",
                stream_id = %stream_id,
                attempts = tracing::field::Empty
            );
            if A::CONTINUES_TRACE {
                crate::trace::continue_stream_trace(&span, latest_traceparent);
            }
            span
        };
        let cached = self.cached::<A>(stream_id);
        let known = cached.version;
        let loaded = match self.catch_up(stream_id, cached).await {
            Ok(loaded) => loaded,
            Err(error) => {
                span(None).in_scope(|| tracing::error!(error = %error));
                return Err(error.into());
            }
        };
        let span = span(loaded.latest_traceparent.as_deref());
        async move {
            let outcome = self
                .decide_and_append(stream_id, command, metadata, loaded, known)
                .await;
            if let Err(error) = &outcome {
                tracing::error!(error = %error);
            }
            outcome
        }
        .instrument(span)
        .await
    }

    /// The decide-append loop of [`CommandHandler::execute`], from the stream as read.
    async fn decide_and_append<A: Aggregate>(
        &self,
        stream_id: &str,
        command: &A::Command,
        metadata: &CommandMetadata,
        mut loaded: Loaded<A>,
        known: Option<i64>,
    ) -> Result<Executed<A>, CommandError> {
        let context = metadata.context();
        for attempt in 1..=self.max_attempts {
            tracing::Span::current().record("attempts", attempt);
            let events = match loaded.state.decide(command, &context) {
                Ok(events) => events,
                Err(rejection) => {
                    // What was read stays useful to the next command.
                    self.remember_if_moved(stream_id, &loaded, known);
                    return Err(rejection.into());
                }
            };
            if events.is_empty() {
                self.remember(
                    stream_id,
                    &loaded.state,
                    loaded.version,
                    loaded.latest_traceparent.as_deref(),
                );
                return Ok(Executed {
                    events,
                    appended: Vec::new(),
                    append: None,
                    state: loaded.state,
                    stream_version: loaded.version,
                    attempts: attempt,
                });
            }
            let appended = metadata.new_events(&events);
            let expected = ExpectedVersion::from_read(loaded.version);
            match self
                .store
                .append(stream_id, expected, appended.clone())
                .await
            {
                Ok(append) => {
                    let state = events.iter().fold(loaded.state, A::evolve);
                    // The store stamped its append span's traceparent on its copy of the events;
                    // this command's span (the append span's parent) is in the same trace.
                    let latest_traceparent = crate::trace::current_traceparent();
                    self.remember(
                        stream_id,
                        &state,
                        Some(append.stream_version),
                        latest_traceparent.as_deref(),
                    );
                    return Ok(Executed {
                        stream_version: Some(append.stream_version),
                        events,
                        appended,
                        append: Some(append),
                        state,
                        attempts: attempt,
                    });
                }
                Err(StoreError::Conflict { .. }) => {
                    tracing::debug!(attempt, "version conflict: catching up and deciding again");
                    loaded = self.catch_up(stream_id, loaded).await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
        self.remember(
            stream_id,
            &loaded.state,
            loaded.version,
            loaded.latest_traceparent.as_deref(),
        );
        Err(CommandError::TooManyConflicts {
            stream_id: stream_id.to_owned(),
            attempts: self.max_attempts,
        })
    }
}
