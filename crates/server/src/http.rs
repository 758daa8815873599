//! The HTTP API: ingest (`POST /v1/events`, `POST /v1/tenants/{tenant}/events`), tenant lifecycle
//! (`/v1/tenants...`), `GET /healthz`, `GET /readyz`, `GET /metrics`, and its own description at
//! `GET /v1/openapi.json` (crates/server/openapi.json).
//!
//! Ingest answers only after the accepted events are durable, with one error entry per rejected line.
//! Rejected lines are dead-lettered, so a batch with bad lines still gets 200: retrying it cannot help.
//! A store failure gets 503 with Retry-After: nothing of that batch is acknowledged, and a retry is safe
//! because event ids dedupe. A tenant over its quota gets 429 with Retry-After, nothing stored.
//!
//! Who may do what: a tenant's token (`Authorization: Bearer slt_...`) reads and writes that tenant only;
//! the admin token manages tenants and may act for any; without a token, requests go to the default
//! tenant while `[tenants] anonymous` is on. Another tenant's id in the path gets 403, a bad token 401.
//!
//! `/healthz` is liveness (the process serves HTTP: 200 `ok`). `/readyz` is readiness: 200 while the store
//! can be reached, 503 with the reason while it cannot (then ingest answers 503 at once, without parsing).

// The handlers' helpers return the error response itself (`Result<_, Response>`), which is what axum's
// handlers answer with; it is large, but only built once per failed request.
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use std::io::Read;
use std::sync::Arc;
use storyline_pipeline::ingest::Framing;

use crate::store::ServiceStore;
use crate::tenants::registry::{hash_token, same_secret, token_tenant, Quotas};
use crate::tenants::{IngestError, Tenants};

/// The API's own description, served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

#[derive(Clone)]
struct AppState {
    tenants: Arc<Tenants>,
    max_body: usize,
    health: Option<Arc<ServiceStore>>,
    /// SHA-256 of the admin token, if tenant management is open.
    admin_sha256: Option<String>,
}

/// The API without store health: `/readyz` always answers 200.
pub fn router(tenants: Arc<Tenants>, max_body: usize) -> Router {
    router_with_health(tenants, max_body, None)
}

/// The API; `/readyz` and ingest follow the store's health.
pub fn router_with_health(
    tenants: Arc<Tenants>,
    max_body: usize,
    health: Option<Arc<ServiceStore>>,
) -> Router {
    let admin_sha256 = tenants
        .settings()
        .admin_token_sha256
        .clone()
        .map(|h| h.trim().to_ascii_lowercase())
        .or_else(|| {
            std::env::var("STORYLINE_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .map(|t| hash_token(&t))
        });
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/v1/tenants", get(list_tenants).post(create_tenant))
        .route(
            "/v1/tenants/{tenant}",
            get(show_tenant).delete(delete_tenant),
        )
        .route("/v1/tenants/{tenant}/events", post(post_tenant_events))
        .route("/v1/tenants/{tenant}/token", post(rotate_token))
        .route("/v1/tenants/{tenant}/quotas", put(set_quotas))
        .route("/v1/tenants/{tenant}/history", get(history))
        .route("/v1/tenants/{tenant}/dead-letters", get(dead_letters))
        .route(
            "/v1/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // Compressed bodies are limited after decompression, in `decode_body`.
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(AppState {
            tenants,
            max_body,
            health,
            admin_sha256,
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

/// Who is asking.
#[derive(Debug, PartialEq)]
enum Caller {
    Admin,
    Tenant(String),
    Anonymous,
}

/// Reads the bearer token. Runs on a blocking thread: a tenant missing from the cache is read from the
/// store.
fn authenticate(st: &AppState, headers: &HeaderMap) -> Result<Caller, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Caller::Anonymous);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            error(
                StatusCode::UNAUTHORIZED,
                "Authorization must be `Bearer <token>`",
            )
        })?;
    if let Some(admin) = &st.admin_sha256 {
        if same_secret(admin, &hash_token(token)) {
            return Ok(Caller::Admin);
        }
    }
    let invalid = || error(StatusCode::UNAUTHORIZED, "invalid or revoked token");
    let tenant = token_tenant(token).ok_or_else(invalid)?;
    match st.tenants.registry.get(tenant) {
        Ok(Some(rec)) if rec.accepts(token) => Ok(Caller::Tenant(rec.id)),
        Ok(_) => Err(invalid()),
        Err(e) => Err(unavailable(format!("cannot check the token: {e}"))),
    }
}

/// May `caller` act for `tenant`?
fn authorize(st: &AppState, caller: &Caller, tenant: &str) -> Result<(), Response> {
    match caller {
        Caller::Admin => Ok(()),
        Caller::Tenant(t) if t == tenant => Ok(()),
        Caller::Tenant(_) => Err(error(
            StatusCode::FORBIDDEN,
            "this token belongs to another tenant",
        )),
        Caller::Anonymous
            if st.tenants.settings().anonymous && tenant == st.tenants.default_tenant() =>
        {
            Ok(())
        }
        Caller::Anonymous => Err(error(
            StatusCode::UNAUTHORIZED,
            "send `Authorization: Bearer <token>`",
        )),
    }
}

fn require_admin(st: &AppState, caller: &Caller) -> Result<(), Response> {
    match caller {
        Caller::Admin => Ok(()),
        _ if st.admin_sha256.is_none() => Err(error(
            StatusCode::FORBIDDEN,
            "tenant management is closed: set [tenants] admin_token_sha256 or STORYLINE_ADMIN_TOKEN",
        )),
        Caller::Tenant(_) => Err(error(
            StatusCode::FORBIDDEN,
            "this needs the admin token, not a tenant's",
        )),
        Caller::Anonymous => Err(error(
            StatusCode::UNAUTHORIZED,
            "send `Authorization: Bearer <admin token>`",
        )),
    }
}

/// Runs `f` on a blocking thread (the store calls block) and turns a panic into a 500.
async fn blocking(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("task failed: {e}"),
        )
    })
}

fn internal(e: impl std::fmt::Display) -> Response {
    unavailable(format!("store error: {e}"))
}

fn no_tenant(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("no tenant {id:?}"))
}

/// Answers a tenant operation: 404 when the tenant is not there (any more), 503 on a store error.
fn answer<T, E: std::fmt::Display>(
    tenant: &str,
    result: Result<Option<T>, E>,
    ok: impl FnOnce(T) -> Response,
) -> Response {
    match result {
        Ok(Some(v)) => ok(v),
        Ok(None) => no_tenant(tenant),
        Err(e) => internal(e),
    }
}

async fn post_events(
    State(st): State<AppState>,
    Query(params): Query<IngestParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    ingest(st, None, params, headers, body).await
}

async fn post_tenant_events(
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    Query(params): Query<IngestParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    ingest(st, Some(tenant), params, headers, body).await
}

async fn ingest(
    st: AppState,
    path_tenant: Option<String>,
    params: IngestParams,
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
    blocking(move || {
        let caller = match authenticate(&st, &headers) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let tenant = match (path_tenant, &caller) {
            (Some(t), _) => t,
            (None, Caller::Tenant(t)) => t.clone(),
            (None, Caller::Admin) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "the admin token names no tenant: POST to /v1/tenants/{tenant}/events",
                )
            }
            (None, Caller::Anonymous) => st.tenants.default_tenant().to_string(),
        };
        if let Err(r) = authorize(&st, &caller, &tenant) {
            return r;
        }
        let body = match decode_body(&headers, body, st.max_body) {
            Ok(b) => b,
            Err(resp) => return resp,
        };
        let framing = match &framing_owned {
            Some((format, sensor)) => Framing::Plain { format, sensor },
            None => Framing::Envelopes,
        };
        match st.tenants.ingest(&tenant, &body, framing, "http", 1) {
            Ok(report) => (StatusCode::OK, Json(report)).into_response(),
            Err(IngestError::UnknownTenant(t)) => no_tenant(&t),
            Err(e @ IngestError::Quota { retry_after, .. }) => {
                let mut resp = error(StatusCode::TOO_MANY_REQUESTS, e.to_string());
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                resp
            }
            Err(IngestError::Store(e)) => {
                tracing::warn!(error = %e, "ingest failed: store unavailable");
                unavailable(format!(
                    "store unavailable, nothing in this batch was stored: {e:#}"
                ))
            }
        }
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    id: String,
    #[serde(default)]
    quotas: Option<Quotas>,
}

async fn create_tenant(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    blocking(move || {
        let caller = match authenticate(&st, &headers) {
            Ok(c) => c,
            Err(r) => return r,
        };
        if let Err(r) = require_admin(&st, &caller) {
            return r;
        }
        let req: CreateTenant = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("body must be {{\"id\": \"...\", \"quotas\": {{...}}}}: {e}"),
                )
            }
        };
        if let Err(e) = storyline_store::validate_tenant(&req.id) {
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
        match st.tenants.registry.get(&req.id) {
            Ok(Some(_)) => {
                return error(
                    StatusCode::CONFLICT,
                    format!("tenant {:?} exists already", req.id),
                )
            }
            Ok(None) => {}
            Err(e) => return internal(e),
        }
        match st.tenants.create(&req.id, req.quotas) {
            Ok((view, token)) => (
                StatusCode::CREATED,
                Json(serde_json::json!({ "tenant": view, "token": token })),
            )
                .into_response(),
            Err(e) => internal(format!("{e:#}")),
        }
    })
    .await
}

async fn list_tenants(State(st): State<AppState>, headers: HeaderMap) -> Response {
    blocking(move || {
        let caller = match authenticate(&st, &headers) {
            Ok(c) => c,
            Err(r) => return r,
        };
        if let Err(r) = require_admin(&st, &caller) {
            return r;
        }
        if let Err(e) = st.tenants.registry.reload() {
            return internal(e);
        }
        let views: Vec<_> = st
            .tenants
            .registry
            .list()
            .iter()
            .map(|r| st.tenants.view(r))
            .collect();
        Json(serde_json::json!({ "tenants": views })).into_response()
    })
    .await
}

/// Runs `f` for a tenant the caller may act for (`admin_only` narrows it to the admin).
async fn for_tenant(
    st: AppState,
    headers: HeaderMap,
    tenant: String,
    admin_only: bool,
    f: impl FnOnce(&AppState, &str) -> Response + Send + 'static,
) -> Response {
    blocking(move || {
        let caller = match authenticate(&st, &headers) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let allowed = if admin_only {
            require_admin(&st, &caller)
        } else {
            authorize(&st, &caller, &tenant)
        };
        if let Err(r) = allowed {
            return r;
        }
        match st.tenants.registry.get(&tenant) {
            Ok(Some(_)) => f(&st, &tenant),
            Ok(None) => no_tenant(&tenant),
            Err(e) => internal(e),
        }
    })
    .await
}

async fn show_tenant(
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    for_tenant(st, headers, tenant, false, |st, t| {
        answer(t, st.tenants.registry.get(t), |rec| {
            Json(st.tenants.view(&rec)).into_response()
        })
    })
    .await
}

async fn delete_tenant(
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    for_tenant(st, headers, tenant, true, |st, t| {
        if t == st.tenants.default_tenant() {
            return error(
                StatusCode::CONFLICT,
                "the default tenant is the config's `tenant` and cannot be deleted while it is",
            );
        }
        answer(t, st.tenants.delete(t), |events| {
            Json(serde_json::json!({ "deleted": t, "events": events })).into_response()
        })
    })
    .await
}

async fn rotate_token(
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    for_tenant(st, headers, tenant, false, |st, t| {
        answer(t, st.tenants.rotate_token(t), |token| {
            Json(serde_json::json!({ "tenant": t, "token": token })).into_response()
        })
    })
    .await
}

async fn set_quotas(
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    for_tenant(st, headers, tenant, true, move |st, t| {
        let quotas: Quotas = match serde_json::from_slice(&body) {
            Ok(q) => q,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("body must be quotas (events_per_second, bytes_per_second, max_open_stories): {e}"),
                )
            }
        };
        answer(t, st.tenants.set_quotas(t, quotas), |view| {
            Json(view).into_response()
        })
    })
    .await
}

#[derive(Deserialize)]
struct Page {
    limit: Option<usize>,
    after: Option<u64>,
}

async fn history(
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Response {
    for_tenant(st, headers, tenant, false, move |st, t| {
        match st.tenants.registry.history(t, page.limit.unwrap_or(100)) {
            Ok(h) => Json(serde_json::json!({ "tenant": t, "history": h })).into_response(),
            Err(e) => internal(e),
        }
    })
    .await
}

/// Letters not yet replayed by `storyline dead-letters replay`, with their latest reason; paging goes past
/// replayed ones so a page is only short at the end.
fn pending_dead_letters(
    store: &dyn storyline_store::Store,
    tenant: &str,
    mut after: Option<u64>,
    limit: usize,
) -> Result<Vec<storyline_store::DeadLetter>, storyline_store::StoreError> {
    let states = storyline_pipeline::ingest::replay::LetterStates::load(store, tenant)?;
    let mut out = Vec::new();
    while out.len() < limit {
        let page = store.dead_letters(tenant, after, limit.max(1))?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        out.extend(page.into_iter().filter_map(|d| states.current(d)));
    }
    out.truncate(limit);
    Ok(out)
}

async fn dead_letters(
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Response {
    for_tenant(st, headers, tenant, false, move |st, t| {
        let limit = page.limit.unwrap_or(100).min(1000);
        match pending_dead_letters(&**st.tenants.store(), t, page.after, limit) {
            Ok(letters) => {
                let items: Vec<_> = letters
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "id": d.id, "received": d.received, "source": d.source, "line": d.line,
                            "format": d.format, "code": d.code, "reason": d.reason,
                            "raw": String::from_utf8_lossy(&d.raw[..d.raw.len().min(4096)]),
                            "raw_bytes": d.raw.len(),
                        })
                    })
                    .collect();
                Json(serde_json::json!({ "tenant": t, "dead_letters": items })).into_response()
            }
            Err(e) => internal(e),
        }
    })
    .await
}
