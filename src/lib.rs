//! forge: authentication as infrastructure.
//!
//! The HTTP layer (`http`) parses requests into typed values (`domain`) and
//! calls one use case (`service`) each; use cases are plain Rust over small
//! ports (`store::Store`, `cache::Cache`) whose adapters are SQLite and moka
//! by default. Passwords and tokens live in `crypto`. [`Application`] wires it
//! together from a [`Config`]; [`testing::TestServer`] starts the real server
//! in-process on port 0 with an in-memory store, for forge's own tests and
//! for yours.
#![forbid(unsafe_code)]

pub mod app;
pub mod cache;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod doctor;
pub mod domain;
pub mod error;
pub mod http;
pub mod notify;
pub mod secret;
pub mod service;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod testing;
pub mod upstream;
pub mod webhooks;

pub use app::Application;
pub use config::Config;
