//! The agents, their ports and adapters.

pub mod llm;
pub mod resilience;
