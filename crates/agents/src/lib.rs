//! The agents, their ports and adapters.
pub mod linkedin;
