//! The tenant registry (who may send and read, with which limits) and each tenant's job history. Both
//! live in the store's records (`tenant/<id>`, `history/<id>/<time>`), so every process on a shared
//! PostgreSQL store sees the same tenants; each process caches the registry and re-reads it on a miss.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use storyline_model::Timestamp;
use storyline_store::{Store, StoreError};

/// Per-tenant limits; `None` is unlimited.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// Sustained events per second a tenant may send (a batch may overdraw it once; the next waits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_per_second: Option<u64>,
    /// Sustained request bytes per second (after gzip decompression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<u64>,
    /// Most stories held open (correlating) at once; ingest answers 429 above it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_open_stories: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub id: String,
    pub created: Timestamp,
    #[serde(default)]
    pub quotas: Quotas,
    /// SHA-256 of each valid API token. Tokens are 256-bit random values, so a fast hash is as safe as a
    /// password KDF here (there is nothing guessable to brute-force) and keeps every request cheap.
    #[serde(default)]
    pub token_sha256: Vec<String>,
    /// True once the tenant's workers stopped cleanly for lack of traffic (everything read, committed and
    /// published); a restarted process wakes every tenant that is not asleep.
    #[serde(default)]
    pub asleep: bool,
}

/// One entry of a tenant's job history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: Timestamp,
    /// `created`, `started`, `woke`, `slept`, `stopped`, `quotas_changed`, `token_rotated`, `error`, ...
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Entries kept per tenant; older ones are deleted as new ones come.
pub const HISTORY_KEEP: usize = 1000;

const TOKEN_PREFIX: &str = "slt_";

/// A new API token. It names its tenant (`slt_<tenant>_<64 hex>`) so a request finds the record to check
/// it against without scanning every tenant.
pub fn new_token(tenant: &str) -> String {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    format!("{TOKEN_PREFIX}{tenant}_{}", hex::encode(secret))
}

/// The tenant a token claims to belong to (still to be verified against the record).
pub fn token_tenant(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (tenant, secret) = rest.rsplit_once('_')?;
    (secret.len() == 64 && !tenant.is_empty()).then_some(tenant)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares in time independent of where the first difference is, so response timing tells an attacker
/// nothing about a hash prefix.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

impl TenantRecord {
    pub fn accepts(&self, token: &str) -> bool {
        let h = hash_token(token);
        // Every hash is compared, matching or not, for the same reason as `same_secret`.
        self.token_sha256
            .iter()
            .fold(false, |ok, stored| same_secret(stored, &h) | ok)
    }
}

pub struct Registry {
    store: Arc<dyn Store>,
    cache: RwLock<HashMap<String, TenantRecord>>,
}

fn tenant_key(id: &str) -> String {
    format!("tenant/{id}")
}

fn history_prefix(id: &str) -> String {
    format!("history/{id}/")
}

impl Registry {
    /// An empty registry; [`Registry::reload`] fills it.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Re-reads every record (another process may have created, changed or deleted tenants).
    pub fn reload(&self) -> Result<(), StoreError> {
        let mut all = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.records("tenant/", after.as_deref(), 1000)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (key, value) in page {
                match serde_json::from_str::<TenantRecord>(&value) {
                    Ok(rec) => {
                        all.insert(rec.id.clone(), rec);
                    }
                    Err(e) => tracing::error!(%key, error = %e, "unreadable tenant record skipped"),
                }
            }
        }
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = all;
        Ok(())
    }

    /// The record, from the cache, or from the store if the cache does not have it yet.
    pub fn get(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        if let Some(r) = self.cached(id) {
            return Ok(Some(r));
        }
        let found = self.store.records(&tenant_key(id), None, 1)?;
        let Some((key, value)) = found.into_iter().next() else {
            return Ok(None);
        };
        if key != tenant_key(id) {
            return Ok(None);
        }
        let rec: TenantRecord =
            serde_json::from_str(&value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), rec.clone());
        Ok(Some(rec))
    }

    pub fn cached(&self, id: &str) -> Option<TenantRecord> {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    pub fn tenant_count(&self) -> usize {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn list(&self) -> Vec<TenantRecord> {
        let mut v: Vec<_> = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub fn put(&self, rec: &TenantRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(rec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store.put_record(&tenant_key(&rec.id), Some(&json))?;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rec.id.clone(), rec.clone());
        Ok(())
    }

    /// Changes a record with `f` and stores it; `None` if there is no such tenant.
    pub fn update(
        &self,
        id: &str,
        f: impl FnOnce(&mut TenantRecord),
    ) -> Result<Option<TenantRecord>, StoreError> {
        let Some(mut rec) = self.get(id)? else {
            return Ok(None);
        };
        f(&mut rec);
        self.put(&rec)?;
        Ok(Some(rec))
    }

    /// Removes the record and the tenant's history.
    pub fn remove(&self, id: &str) -> Result<(), StoreError> {
        self.store.put_record(&tenant_key(id), None)?;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        loop {
            let page = self.store.records(&history_prefix(id), None, 1000)?;
            if page.is_empty() {
                return Ok(());
            }
            for (k, _) in page {
                self.store.put_record(&k, None)?;
            }
        }
    }

    /// Appends to the tenant's job history. Failing to record history never fails the caller's work.
    pub fn note(&self, id: &str, kind: &str, detail: impl Into<String>) {
        let entry = HistoryEntry {
            at: Timestamp::now(),
            kind: kind.into(),
            detail: detail.into(),
        };
        // Zero-padded nanoseconds sort in time order; the counter separates entries of the same instant.
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = format!("{}{:020}-{seq:010}", history_prefix(id), entry.at.0.max(0));
        let result = serde_json::to_string(&entry)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
            .and_then(|json| self.store.put_record(&key, Some(&json)))
            // Trimming reads the whole history, so it runs every 64th entry; reads cap at the limit.
            .and_then(|()| {
                if seq.is_multiple_of(64) {
                    self.trim_history(id)
                } else {
                    Ok(())
                }
            });
        if let Err(e) = result {
            tracing::warn!(tenant = id, kind, error = %e, "job history entry not recorded");
        }
    }

    fn trim_history(&self, id: &str) -> Result<(), StoreError> {
        let all = self
            .store
            .records(&history_prefix(id), None, HISTORY_KEEP * 2)?;
        if all.len() > HISTORY_KEEP {
            for (k, _) in &all[..all.len() - HISTORY_KEEP] {
                self.store.put_record(k, None)?;
            }
        }
        Ok(())
    }

    /// The tenant's history, oldest first, the last `limit` entries.
    pub fn history(&self, id: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        let all = self
            .store
            .records(&history_prefix(id), None, HISTORY_KEEP * 2)?;
        let skip = all.len().saturating_sub(limit.min(HISTORY_KEEP));
        Ok(all
            .into_iter()
            .skip(skip)
            .filter_map(|(_, v)| serde_json::from_str(&v).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_tenant_and_verify_only_against_their_hash() {
        let t = new_token("acme_eu");
        assert_eq!(token_tenant(&t), Some("acme_eu"));
        assert_ne!(new_token("acme_eu"), t, "tokens are random");
        let rec = TenantRecord {
            id: "acme_eu".into(),
            created: Timestamp(0),
            quotas: Quotas::default(),
            token_sha256: vec![hash_token(&t)],
            asleep: false,
        };
        assert!(rec.accepts(&t));
        assert!(!rec.accepts(&new_token("acme_eu")));
        assert!(!rec.accepts(""));
        assert_eq!(token_tenant("slt_x_short"), None);
        assert_eq!(token_tenant("Bearer whatever"), None);
    }

    #[test]
    fn history_keeps_order_and_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            storyline_store::embedded::EmbeddedStore::open(dir.path(), Default::default()).unwrap(),
        );
        let reg = Registry::new(store);
        for i in 0..(HISTORY_KEEP + 5) {
            reg.note("a", "woke", format!("{i}"));
        }
        reg.note("b", "created", "");
        let h = reg.history("a", usize::MAX).unwrap();
        assert_eq!(h.len(), HISTORY_KEEP);
        assert_eq!(h.last().unwrap().detail, format!("{}", HISTORY_KEEP + 4));
        assert_eq!(h[0].detail, "5");
        assert_eq!(reg.history("a", 3).unwrap().len(), 3);
        reg.remove("a").unwrap();
        assert!(reg.history("a", 10).unwrap().is_empty());
        assert_eq!(reg.history("b", 10).unwrap().len(), 1);
    }
}
