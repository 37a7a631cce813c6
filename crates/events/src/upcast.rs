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
    /// By event type, then by the version a step reads: looked up by `&str` on every read, so
    /// an event whose type has no upcaster costs one hash lookup and no allocation.
    steps: HashMap<String, HashMap<i32, UpcastFn>>,
}

impl fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<(&String, &i32)> = self
            .steps
            .iter()
            .flat_map(|(event_type, steps)| steps.keys().map(move |version| (event_type, version)))
            .collect();
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
            .entry(event_type.to_owned())
            .or_default()
            .insert(from_version, Arc::new(step));
        self
    }

    /// Merges another registry into this one.
    pub fn merge(mut self, other: Upcasters) -> Self {
        for (event_type, steps) in other.steps {
            self.steps.entry(event_type).or_default().extend(steps);
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Brings the event's body to the newest schema version known.
    pub fn upcast(&self, event: &mut RecordedEvent) -> Result<(), StoreError> {
        let Some(steps) = self.steps.get(event.event_type.as_str()) else {
            return Ok(());
        };
        while let Some(step) = steps.get(&event.schema_version) {
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
