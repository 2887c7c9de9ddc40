//! Procedural macros for [mercato](https://docs.rs/mercato).
//!
//! This crate is re-exported by `mercato`; depend on `mercato` instead of
//! using it directly. The derive and attribute macros that declare events
//! and actors arrive here; until then events and actors implement
//! `mercato::Event` and `mercato::Actor` by hand.
