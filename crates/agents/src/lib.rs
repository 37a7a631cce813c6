//! The agents, their ports and adapters.

pub mod crm;
pub mod mail;
