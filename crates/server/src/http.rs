//! The HTTP API: `POST /v1/events`, `GET /healthz`, `GET /readyz`, `GET /metrics`.
//!
//! Ingest answers only after the accepted events are durable, with one error entry per rejected line.
//! Rejected lines are dead-lettered, so a batch with bad lines still gets 200: retrying it cannot help.
//! A store failure gets 503 with Retry-After: nothing of that batch is acknowledged, and a retry is safe
//! because event ids dedupe.
//!
//! `/healthz` is liveness (the process serves HTTP: 200 `ok`). `/readyz` is readiness: 200 while the store
//! can be reached, 503 with the reason while it cannot (then ingest answers 503 at once, without parsing).

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::io::Read;
use std::sync::Arc;
use storyline_pipeline::ingest::Framing;
use storyline_pipeline::Ingestor;

use crate::store::ServiceStore;

#[derive(Clone)]
struct AppState {
    ingestor: Arc<Ingestor>,
    max_body: usize,
    health: Option<Arc<ServiceStore>>,
}

/// The API without store health: `/readyz` always answers 200.
pub fn router(ingestor: Arc<Ingestor>, max_body: usize) -> Router {
    router_with_health(ingestor, max_body, None)
}

/// The API; `/readyz` and ingest follow the store's health.
pub fn router_with_health(
    ingestor: Arc<Ingestor>,
    max_body: usize,
    health: Option<Arc<ServiceStore>>,
) -> Router {
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // Compressed bodies are limited after decompression, in `decode_body`.
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(AppState {
            ingestor,
            max_body,
            health,
        })
}

async fn readyz(State(st): State<AppState>) -> Response {
    match &st.health {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(h) => {
            let r = h.readiness();
            let status = if r.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let mut resp = (status, Json(r)).into_response();
            if status != StatusCode::OK {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            }
            resp
        }
    }
}

async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    if let Some(h) = &st.health {
        h.export_ready();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::service::metrics_handle().render(),
    )
}

fn unavailable(msg: String) -> Response {
    let mut resp = error(StatusCode::SERVICE_UNAVAILABLE, msg);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    resp
}

#[derive(Deserialize)]
struct IngestParams {
    /// Plain (un-enveloped) records of one format...
    format: Option<String>,
    /// ...from one sensor.
    sensor: Option<String>,
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": msg.into() }))).into_response()
}

fn decode_body(headers: &HeaderMap, body: Bytes, max: usize) -> Result<Vec<u8>, Response> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    match encoding.trim().to_ascii_lowercase().as_str() {
        "identity" | "" => Ok(body.to_vec()),
        "gzip" | "x-gzip" => {
            let mut out = Vec::new();
            let mut dec = flate2::read::MultiGzDecoder::new(&body[..]).take(max as u64 + 1);
            dec.read_to_end(&mut out).map_err(|e| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("body is not valid gzip: {e}"),
                )
            })?;
            if out.len() > max {
                return Err(error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("decompressed body is over {max} bytes: send smaller batches or raise limits.max_body_bytes"),
                ));
            }
            Ok(out)
        }
        other => Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {other:?} is not supported: send identity or gzip"),
        )),
    }
}

async fn post_events(
    State(st): State<AppState>,
    Query(params): Query<IngestParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(h) = st.health.as_ref().filter(|h| !h.is_ready()) {
        let r = h.readiness();
        return unavailable(format!(
            "store unavailable, nothing in this batch was stored ({} store {}, down for {:.0} s: {}); retry later",
            r.store,
            r.target,
            r.for_seconds,
            r.reason.as_deref().unwrap_or("unknown reason")
        ));
    }
    let body = match decode_body(&headers, body, st.max_body) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let framing_owned = match (params.format, params.sensor) {
        (None, None) => None,
        (Some(f), Some(s)) => Some((f, s)),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give both ?format= and ?sensor= for plain records, or neither for envelopes",
            )
        }
    };
    let ingestor = st.ingestor.clone();
    let result = tokio::task::spawn_blocking(move || {
        let framing = match &framing_owned {
            Some((format, sensor)) => Framing::Plain { format, sensor },
            None => Framing::Envelopes,
        };
        ingestor.ingest(&body, framing, "http")
    })
    .await;
    match result {
        Ok(Ok(report)) => (StatusCode::OK, Json(report)).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "ingest failed: store unavailable");
            unavailable(format!(
                "store unavailable, nothing in this batch was stored: {e}"
            ))
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("ingest task failed: {e}"),
        ),
    }
}
