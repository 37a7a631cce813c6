//! The agents (Lead Finder, Outreach, Sales Manager), the ports they use — LLM, LinkedIn,
//! mail, CRM, clock — and the adapters behind those ports.

// The department's job futures nest the LLM router's, deeper than the default limit of
// layout queries.
#![recursion_limit = "256"]

pub mod clock;
pub mod crm;
pub mod department;
pub mod lead_finder;
pub mod linkedin;
pub mod llm;
pub mod mail;
pub mod manager;
pub mod outreach;
pub mod resilience;
pub mod rules;
pub mod sandbox;
