//! The Storyline service: its configuration ([`config`]), the HTTP API ([`http`]) and the wiring of
//! store, ingest, workers and sinks into one running process ([`service`]).

pub mod config;
pub mod http;
pub mod service;
pub mod sources;
pub mod store;
pub mod tenants;

pub use config::Config;
pub use service::Service;
