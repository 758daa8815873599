//! Object storage through the `object_store` crate: one object per delivered batch, NDJSON (`story`,
//! `ecs`, `ocsf`), CSV (with its header), an Avro container file, or a Parquet file (`parquet` story
//! rows, `ocsf_parquet` OCSF events; cargo feature `parquet`).
//!
//! Names are deterministic, so a batch delivered again after a crash overwrites its own object instead of
//! adding a duplicate: `<prefix>/<YYYY>/<MM>/<DD>/<HH>/<sink>-<backlog offset>-<index>.<ext>`, where the
//! hour is the UTC append time of the batch's first story version in the backlog, and offset/index say
//! where in the backlog it starts.
//!
//! Backends: `file:///dir` (local file system, always built) and `memory://`; `s3://bucket/prefix`,
//! `gs://bucket/prefix` and `az://container/prefix` with the `cloud` cargo feature (credentials from
//! `options` or the environment, as the object_store crate reads them).

use super::config::{resolve_secret, SinkConfig};
use super::deliver::{Batch, DeliveryError, ItemFailure, Target};
use super::encode::Encoding;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

pub struct ObjectTarget {
    store: Box<dyn ObjectStore>,
    prefix: ObjPath,
    sink: String,
    encoding: Encoding,
    timeout: std::time::Duration,
    rt: tokio::runtime::Runtime,
}

impl ObjectTarget {
    pub fn new(cfg: &SinkConfig) -> anyhow::Result<Self> {
        let url_text = cfg.url.as_deref().unwrap_or_default();
        let url = reqwest::Url::parse(url_text)?;
        let mut options = Vec::new();
        for (k, v) in &cfg.options {
            options.push((k.clone(), resolve_secret(&format!("options.{k}"), v)?));
        }
        if url.scheme() == "file" {
            let dir = url
                .to_file_path()
                .map_err(|_| anyhow::anyhow!("url {url_text:?}: not a local path"))?;
            std::fs::create_dir_all(&dir).map_err(|e| {
                anyhow::anyhow!("url {url_text:?}: cannot create {}: {e}", dir.display())
            })?;
        }
        let (store, prefix) = object_store::parse_url_opts(&url, options)
            .map_err(|e| anyhow::anyhow!("url {url_text:?}: {e}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Self {
            store,
            prefix,
            sink: cfg.name.clone(),
            encoding: cfg.encoding,
            timeout: cfg.timeout,
            rt,
        })
    }

    /// The object name of a batch.
    pub fn object_name(prefix: &ObjPath, sink: &str, enc: Encoding, batch: &Batch<'_>) -> ObjPath {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(batch.appended_ms) * 1_000_000,
        )
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let mut p = prefix.clone();
        for part in [
            format!("{:04}", t.year()),
            format!("{:02}", t.month() as u8),
            format!("{:02}", t.day()),
            format!("{:02}", t.hour()),
        ] {
            p = p.join(part);
        }
        p.join(format!(
            "{sink}-{:020}-{:06}.{}",
            batch.offset,
            batch.index.min(999_999),
            enc.extension()
        ))
    }
}

fn classify(e: object_store::Error) -> DeliveryError {
    match e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. }
        | object_store::Error::InvalidPath { .. } => DeliveryError::Permanent(e.to_string()),
        e => DeliveryError::transient(e),
    }
}

impl Target for ObjectTarget {
    fn deliver(&mut self, batch: &Batch<'_>) -> Result<Vec<ItemFailure>, DeliveryError> {
        let name = Self::object_name(&self.prefix, &self.sink, self.encoding, batch);
        // An encoding failure does not go away by retrying: dead-letter the batch with the reason.
        let body = self
            .encoding
            .try_batch(batch.stories)
            .map_err(|e| DeliveryError::Permanent(format!("{name}: {e}")))?;
        let store = &self.store;
        let timeout = self.timeout;
        self.rt.block_on(async move {
            match tokio::time::timeout(timeout, store.put(&name, PutPayload::from(body))).await {
                Ok(Ok(_)) => Ok(Vec::new()),
                Ok(Err(e)) => Err(classify(e)),
                Err(_) => Err(DeliveryError::transient(format!(
                    "{name}: timed out after {timeout:?}"
                ))),
            }
        })
    }
}
