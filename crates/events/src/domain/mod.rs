//! The sales domain: typed events per stream kind, aggregates as pure `decide`/`evolve`
//! functions, and the generic command handler that runs them against the store.

pub mod values;

pub use values::{
    AccountId, Classification, Confidence, Intent, InvalidValue, LinkedInUrl, QualityScore,
    Sentiment,
};

/// The upcasters of the domain's stored events.
pub fn upcasters() -> crate::Upcasters {
    crate::Upcasters::new()
}
