use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("storage engine error: {0}")]
    Engine(String),
    #[error("stored data is corrupt or from an incompatible version: {0}")]
    Corrupt(String),
    #[error("the lease on shard {shard} is no longer held by {owner} (epoch {epoch}); another worker owns it now")]
    LeaseLost {
        shard: u16,
        owner: String,
        epoch: u64,
    },
    #[error("tenant {tenant} was created with {stored} shards but the config says {configured}; the shard count of a tenant cannot change (set `shards = {stored}`)")]
    ShardCountMismatch {
        tenant: String,
        stored: u16,
        configured: u16,
    },
    #[error("invalid tenant name {0:?}: use 1-64 characters of a-z, 0-9, '-' and '_'")]
    BadTenant(String),
    #[error("the store is shutting down")]
    Closed,
    /// The configuration names a store this process cannot open (a backend not built in, a credential
    /// missing): retrying does not help, so it is not an engine error.
    #[error("{0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;
