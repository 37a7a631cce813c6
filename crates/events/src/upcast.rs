//! Schema evolution: stored events keep the shape they were written with; an upcaster registry
//! turns old shapes into the current one on read, one schema version at a time.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::envelope::RecordedEvent;
use crate::error::StoreError;

type UpcastFn = Arc<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;

/// Upcasters keyed by (event type, schema version they read). Each turns version `v` into
/// `v + 1`; reading applies them in a chain until no upcaster is registered.
#[derive(Clone, Default)]
pub struct Upcasters {
    steps: HashMap<(String, i32), UpcastFn>,
}

impl fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<_> = self.steps.keys().collect();
        keys.sort();
        f.debug_struct("Upcasters").field("steps", &keys).finish()
    }
}

impl Upcasters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the step that turns `event_type` at `from_version` into `from_version + 1`.
    pub fn register(
        mut self,
        event_type: &str,
        from_version: i32,
        step: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.steps
            .insert((event_type.to_owned(), from_version), Arc::new(step));
        self
    }

    /// Merges another registry into this one.
    pub fn merge(mut self, other: Upcasters) -> Self {
        self.steps.extend(other.steps);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Brings the event's body to the newest schema version known.
    pub fn upcast(&self, event: &mut RecordedEvent) -> Result<(), StoreError> {
        if self.steps.is_empty() {
            return Ok(());
        }
        while let Some(step) = self
            .steps
            .get(&(event.event_type.clone(), event.schema_version))
        {
            let data = std::mem::take(&mut event.data);
            event.data = step(data).map_err(|message| StoreError::Upcast {
                event_type: event.event_type.clone(),
                from: event.schema_version,
                message,
            })?;
            event.schema_version += 1;
        }
        Ok(())
    }
}
