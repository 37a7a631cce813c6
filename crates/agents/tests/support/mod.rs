//! Test doubles shared by the agents' integration tests.

pub mod smtp_sink;
