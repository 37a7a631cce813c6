//! Durable subscriptions.
