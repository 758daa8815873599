//! The moving parts between the store and the sinks: [`ingest`] writes parsed events into the store
//! (acknowledging only durable writes); [`worker`] turns one shard's stored events into published stories
//! and commits its read offset; [`pool`] runs workers that share shards through leases.

pub mod config;
pub mod heartbeat;
pub mod horizon;
pub mod ingest;
pub mod pool;
pub mod worker;

pub use config::PipelineConfig;
pub use ingest::{IngestReport, Ingestor, LineError};
pub use pool::WorkerPool;
