//! LLM port.
