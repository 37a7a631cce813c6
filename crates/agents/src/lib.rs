//! The agents, their ports and adapters.
