//! HTTP delivery: a generic endpoint (JSON array, CSV or Avro bodies), Splunk HTTP Event Collector and
//! Elasticsearch / OpenSearch `_bulk`.
//!
//! Status codes: 2xx delivered; 408, 429 and 5xx (and connection errors, timeouts) are retried with
//! backoff, honouring `Retry-After`; any other 4xx is permanent and the batch goes to the sink's dead
//! letters. `_bulk` answers 200 with a status per item: items refused with 429/5xx are retried alone,
//! other refused items are dead-lettered alone.

use super::config::{resolve_secret, SinkConfig, SinkKind};
use super::deliver::{parse_retry_after, Batch, DeliveryError, ItemFailure, Target};
use super::encode::{doc_id, Encoding};
use reqwest::blocking::{Client, Response};
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE,
};
use serde_json::{json, Value};
use std::io::Write;

enum Flavor {
    Json,
    Splunk {
        sourcetype: String,
        source: String,
        index: Option<String>,
        host: String,
    },
    Elasticsearch {
        index: String,
    },
}

pub struct HttpTarget {
    client: Client,
    url: reqwest::Url,
    encoding: Encoding,
    flavor: Flavor,
    headers: HeaderMap,
    gzip: bool,
}

impl HttpTarget {
    pub fn new(cfg: &SinkConfig) -> anyhow::Result<Self> {
        let kind = cfg.kind();
        let mut url = reqwest::Url::parse(cfg.url.as_deref().unwrap_or_default())?;
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let v = resolve_secret(&format!("headers.{k}"), v)?;
            headers.insert(
                HeaderName::from_bytes(k.as_bytes())
                    .map_err(|e| anyhow::anyhow!("key `headers`: {k:?}: {e}"))?,
                HeaderValue::from_str(&v).map_err(|e| anyhow::anyhow!("key `headers.{k}`: {e}"))?,
            );
        }
        if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
            let p = resolve_secret("password", p)?;
            use base64_lite::encode;
            headers.insert(
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Basic {}", encode(format!("{u}:{p}").as_bytes())))?,
            );
        }
        let flavor = match kind {
            SinkKind::SplunkHec => {
                let token = resolve_secret("token", cfg.token.as_deref().unwrap_or_default())?;
                headers.insert(
                    AUTHORIZATION,
                    HeaderValue::from_str(&format!("Splunk {token}"))?,
                );
                if url.path() == "/" || url.path().is_empty() {
                    url.set_path("/services/collector/event");
                }
                Flavor::Splunk {
                    sourcetype: cfg
                        .sourcetype
                        .clone()
                        .unwrap_or_else(|| "storyline:story".into()),
                    source: cfg.source.clone().unwrap_or_else(|| "storyline".into()),
                    index: cfg.index.clone(),
                    host: super::targets::hostname(),
                }
            }
            SinkKind::Elasticsearch => {
                if let Some(k) = &cfg.api_key {
                    let k = resolve_secret("api_key", k)?;
                    headers.insert(
                        AUTHORIZATION,
                        HeaderValue::from_str(&format!("ApiKey {k}"))?,
                    );
                }
                if !url.path().ends_with("/_bulk") {
                    let p = format!("{}/_bulk", url.path().trim_end_matches('/'));
                    url.set_path(&p);
                }
                Flavor::Elasticsearch {
                    index: cfg
                        .index
                        .clone()
                        .unwrap_or_else(|| "storyline-stories".into()),
                }
            }
            _ => Flavor::Json,
        };
        let client = Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .user_agent(concat!("storyline/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            url,
            encoding: cfg.encoding,
            flavor,
            headers,
            gzip: cfg.gzip,
        })
    }

    /// The request body and its content type.
    fn body(&self, batch: &Batch<'_>) -> (Vec<u8>, &'static str) {
        let mut buf = Vec::with_capacity(batch.stories.len() * 800);
        match &self.flavor {
            Flavor::Json if self.encoding.is_json() => {
                buf.push(b'[');
                for (i, s) in batch.stories.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    serde_json::to_writer(&mut buf, &self.encoding.json(s).unwrap()).unwrap();
                }
                buf.push(b']');
                (buf, "application/json")
            }
            Flavor::Json => (
                self.encoding.batch(batch.stories),
                self.encoding.content_type(),
            ),
            Flavor::Splunk {
                sourcetype,
                source,
                index,
                host,
            } => {
                // One event object after another (HEC accepts them concatenated); one per line here.
                for s in batch.stories {
                    let mut ev = json!({
                        "time": s.first_seen.as_nanos() as f64 / 1e9,
                        "host": host,
                        "source": source,
                        "sourcetype": sourcetype,
                        "event": self.encoding.json(s).unwrap(),
                        "fields": { "story_id": s.story_id.to_string(), "story_version": s.version },
                    });
                    if let Some(i) = index {
                        ev["index"] = json!(i);
                    }
                    serde_json::to_writer(&mut buf, &ev).unwrap();
                    buf.push(b'\n');
                }
                (buf, "application/json")
            }
            Flavor::Elasticsearch { index } => {
                for s in batch.stories {
                    serde_json::to_writer(
                        &mut buf,
                        &json!({ "index": { "_index": index, "_id": doc_id(s) } }),
                    )
                    .unwrap();
                    buf.push(b'\n');
                    serde_json::to_writer(&mut buf, &self.encoding.json(s).unwrap()).unwrap();
                    buf.push(b'\n');
                }
                (buf, "application/x-ndjson")
            }
        }
    }
}

/// Classifies a failed response: 408/429/5xx transient (with `Retry-After`), other statuses permanent.
fn failed(resp: Response) -> DeliveryError {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let text = resp.text().unwrap_or_default();
    let excerpt: String = text.chars().take(300).collect();
    let error = format!("HTTP {status}: {excerpt}");
    if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
        DeliveryError::Transient { error, retry_after }
    } else {
        DeliveryError::Permanent(error)
    }
}

/// Per-item results of a `_bulk` answer.
fn bulk_failures(body: &str) -> Result<Vec<ItemFailure>, DeliveryError> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| DeliveryError::transient(format!("unreadable _bulk answer: {e}")))?;
    if v["errors"] != json!(true) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (i, item) in v["items"].as_array().into_iter().flatten().enumerate() {
        let r = item
            .as_object()
            .and_then(|o| o.values().next())
            .cloned()
            .unwrap_or(Value::Null);
        let status = r["status"].as_u64().unwrap_or(0);
        if (200..300).contains(&status) {
            continue;
        }
        out.push(ItemFailure {
            index: i,
            error: format!("status {status}: {}", r["error"]),
            transient: status == 429 || status >= 500,
        });
    }
    Ok(out)
}

impl Target for HttpTarget {
    fn deliver(&mut self, batch: &Batch<'_>) -> Result<Vec<ItemFailure>, DeliveryError> {
        let (mut body, content_type) = self.body(batch);
        let mut req = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, content_type);
        if self.gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&body).map_err(DeliveryError::transient)?;
            body = enc.finish().map_err(DeliveryError::transient)?;
            req = req.header(CONTENT_ENCODING, "gzip");
        }
        let resp = req
            .body(body)
            .send()
            .map_err(|e| DeliveryError::transient(format!("{}: {e}", self.url)))?;
        if !resp.status().is_success() {
            return Err(failed(resp));
        }
        match self.flavor {
            Flavor::Elasticsearch { .. } => {
                let text = resp.text().map_err(DeliveryError::transient)?;
                bulk_failures(&text)
            }
            _ => {
                // Read the answer so the connection goes back to the pool.
                let _ = resp.bytes();
                Ok(Vec::new())
            }
        }
    }
}

/// Base64 for Basic authentication (a dozen lines beat a dependency).
mod base64_lite {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(input: &[u8]) -> String {
        let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn rfc4648_vectors() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg==");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(encode(b"foo"), "Zm9v");
        assert_eq!(encode(b"elastic:changeme"), "ZWxhc3RpYzpjaGFuZ2VtZQ==");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_items_split_into_retry_and_reject() {
        let body = r#"{"took":3,"errors":true,"items":[
            {"index":{"_id":"a-1","status":201}},
            {"index":{"_id":"b-1","status":429,"error":{"type":"es_rejected_execution_exception"}}},
            {"index":{"_id":"c-1","status":400,"error":{"type":"mapper_parsing_exception"}}}]}"#;
        let f = bulk_failures(body).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].index, f[0].transient), (1, true));
        assert_eq!((f[1].index, f[1].transient), (2, false));
        assert!(f[1].error.contains("mapper_parsing_exception"));
        assert!(bulk_failures(r#"{"errors":false,"items":[]}"#)
            .unwrap()
            .is_empty());
    }
}
