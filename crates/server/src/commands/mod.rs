//! One module per command.

pub mod audit;
pub mod classify;
pub mod config;
pub mod forget;
pub mod import;
pub mod log;
pub mod migrate;
pub mod replay;
pub mod replay_sheet;
pub mod serve;
pub mod simulate;

use salesdept_events::StoreError;

/// Exit codes: 1 for errors in general, 3 for a version conflict (the caller may re-read and
/// try again), 2 is clap's for bad usage.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    match error.downcast_ref::<StoreError>() {
        Some(StoreError::Conflict { .. }) => 3,
        _ => 1,
    }
}
