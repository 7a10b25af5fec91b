//! The admin API on its own listener: Tyk's key endpoints under `/tyk/` (guarded by
//! `x-tyk-authorization`), and `/hello` for health. Bodies and codes follow Tyk's gateway API.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use moongate_proxy::{GenerationHandle, percent_decode};
use moongate_session::{
    SESSION_PREFIX, Session, SessionStore, StoreError, generate_key, hash_key, key_hint, quota_counter, rfc3339,
    unix_now,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::control::{Outcome, ReloadRequest, SharedStatus, Source};

type Resp = Response<Full<Bytes>>;

/// A refused admin call: Tyk's `{"status":"error","message":...}` with this code.
struct Refusal(StatusCode, &'static str);

impl From<Refusal> for Resp {
    fn from(Refusal(code, message): Refusal) -> Self {
        status(code, "error", message)
    }
}

/// Session bodies larger than this are refused: no legitimate session comes close.
const MAX_BODY: usize = 1 << 20;

pub struct Admin {
    generation: GenerationHandle,
    sessions: SessionStore,
    reload: mpsc::Sender<ReloadRequest>,
    status: SharedStatus,
}

pub async fn serve(listener: TcpListener, admin: Arc<Admin>, mut stop: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let admin = admin.clone();
                let service = service_fn(move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.handle(req).await) }
                });
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(conn);
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

impl Admin {
    pub fn new(
        generation: GenerationHandle,
        sessions: SessionStore,
        reload: mpsc::Sender<ReloadRequest>,
        status: SharedStatus,
    ) -> Self {
        Self { generation, sessions, reload, status }
    }

    pub fn store_name(&self) -> &'static str {
        self.sessions.store().backend_name()
    }

    async fn handle(&self, req: Request<Incoming>) -> Resp {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let resp = self.route(req, &method, &path).await;
        tracing::info!(
            target: "moongate::admin",
            method = %method,
            // Key paths carry raw keys: log the endpoint, not the key.
            path = %redact(&path),
            status = resp.status().as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            "admin request"
        );
        resp
    }

    async fn route(&self, req: Request<Incoming>, method: &Method, path: &str) -> Resp {
        if path == "/metrics" && method == Method::GET {
            let mut resp = Response::new(Full::new(Bytes::from(
                moongate_proxy::metrics::metrics().render(self.generation.load().id),
            )));
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; version=0.0.4"));
            return resp;
        }
        if path == "/ready" && method == Method::GET {
            return self.ready().await;
        }
        if path == "/hello" {
            return if method == Method::GET {
                self.hello().await
            } else {
                status(StatusCode::METHOD_NOT_ALLOWED, "error", "Method Not Allowed")
            };
        }
        let Some(rest) = path.strip_prefix("/tyk") else {
            return status(StatusCode::NOT_FOUND, "error", "Not Found");
        };
        if let Err(refusal) = self.authorize(&req) {
            return refusal.into();
        }
        let query = req.uri().query().unwrap_or("").to_owned();
        match (method, rest) {
            (&Method::POST, "/keys/create") => self.create(req, None).await,
            (&Method::GET, "/reload" | "/reload/group") => self.reload(&query).await,
            (&Method::GET, "/reload/status") => {
                let generation = self.generation.load().id;
                let body = self.status.lock().unwrap_or_else(|p| p.into_inner()).to_json(generation);
                json_response(StatusCode::OK, &body)
            }
            (&Method::GET, "/keys") => self.list(&query).await,
            (m, key_path) if key_path.starts_with("/keys/") => {
                let key = percent_decode(&key_path["/keys/".len()..]).into_owned();
                if key.is_empty() {
                    return status(StatusCode::NOT_FOUND, "error", "Not Found");
                }
                match *m {
                    Method::GET => self.get(&key, &query).await,
                    Method::POST => self.create(req, Some(key)).await,
                    Method::PUT => self.update(req, &key, &query).await,
                    Method::DELETE => self.delete(&key, &query).await,
                    _ => status(StatusCode::METHOD_NOT_ALLOWED, "error", "Method Not Allowed"),
                }
            }
            _ => status(StatusCode::NOT_FOUND, "error", "Not Found"),
        }
    }

    fn authorize(&self, req: &Request<Incoming>) -> Result<(), Refusal> {
        let generation = self.generation.load();
        let Some(secret) = generation.gateway.admin_secret.as_deref() else {
            return Err(Refusal(
                StatusCode::FORBIDDEN,
                "The admin API is disabled: no secret is configured (set admin.secret, admin.secret_file or MOONGATE_ADMIN_SECRET)",
            ));
        };
        let given = req.headers().get("x-tyk-authorization").map(|v| v.as_bytes()).unwrap_or_default();
        if constant_time_eq(given, secret.as_bytes()) {
            Ok(())
        } else {
            Err(Refusal(StatusCode::FORBIDDEN, "Attempted administrative access with invalid or missing key!"))
        }
    }

    /// `GET /tyk/reload`: queue a reload and answer at once, as Tyk does; with `?block=true`, wait
    /// and answer the outcome (400 with every error when the configuration was rejected).
    async fn reload(&self, query: &str) -> Resp {
        let block = query_flag(query, "block");
        let (tx, rx) = oneshot::channel();
        let request = ReloadRequest { source: Source::Admin, reply: block.then_some(tx) };
        if self.reload.send(request).await.is_err() {
            return status(StatusCode::SERVICE_UNAVAILABLE, "error", "The gateway is shutting down");
        }
        if !block {
            return status(StatusCode::OK, "ok", "");
        }
        match rx.await {
            Ok(outcome @ Outcome::Rejected { .. }) => json_response(StatusCode::BAD_REQUEST, &outcome.to_json()),
            Ok(outcome) => json_response(StatusCode::OK, &outcome.to_json()),
            Err(_) => status(StatusCode::SERVICE_UNAVAILABLE, "error", "The gateway is shutting down"),
        }
    }

    /// Ready once a configuration serves and, with Redis, Redis answers: what a load balancer or
    /// Kubernetes readiness probe should ask.
    async fn ready(&self) -> Resp {
        let generation = self.generation.load().id;
        match self.sessions.store().ping().await {
            Ok(()) => json_response(StatusCode::OK, &json!({"status": "ready", "generation": generation})),
            Err(e) => {
                json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"status": "not ready", "reason": e.to_string()}))
            }
        }
    }

    async fn hello(&self) -> Resp {
        let started = Instant::now();
        let check = self.sessions.store().ping().await;
        let elapsed = started.elapsed();
        let (store_status, overall) = match &check {
            Ok(()) => ("pass", "pass"),
            // The gateway itself is alive; it recovers by itself when the store is back.
            Err(_) => ("fail", "warn"),
        };
        let mut component = json!({
            "status": store_status,
            "componentType": "datastore",
            "time": rfc3339(unix_now()),
            "latency_ms": elapsed.as_secs_f64() * 1000.0,
        });
        if let Err(e) = &check {
            component["output"] = Value::String(e.to_string());
        }
        let generation = self.generation.load();
        let body = json!({
            "status": overall,
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Moongate",
            "details": { self.store_name(): component },
            "generation": generation.id,
            "apis": generation.apis.len(),
        });
        json_response(StatusCode::OK, &body)
    }

    /// `POST /tyk/keys/create` (generated key) and `POST /tyk/keys/{key}` (the caller's key).
    async fn create(&self, req: Request<Incoming>, custom: Option<String>) -> Resp {
        let body = match read_body(req).await {
            Ok(b) => b,
            Err(refusal) => return refusal.into(),
        };
        let mut session = match Session::from_json_bytes(&body) {
            Ok(s) => s,
            Err(_) if custom.is_none() => {
                return status(StatusCode::INTERNAL_SERVER_ERROR, "error", "Unmarshalling failed");
            }
            Err(_) => return status(StatusCode::BAD_REQUEST, "error", "Request malformed"),
        };
        let now = unix_now();
        let key = match custom {
            Some(k) => {
                // Tyk: a past expiry on a key created with a chosen id is replaced by "never".
                if session.is_expired(now) {
                    session.expires = 0;
                }
                k
            }
            None => generate_key(&session.org_id),
        };
        session.date_created = rfc3339(now);
        self.reset_quota(&key, &mut session, now).await;
        let ttl = self.ttl_for(&session, now);
        if let Err(e) = self.sessions.put(&key, &session, ttl).await {
            return store_failure(&e);
        }
        tracing::info!(key = %key_hint(&key), ttl, "Key added.");
        self.key_action(&key, "added")
    }

    /// `PUT /tyk/keys/{key}`: an atomic read-modify-write of an existing key.
    async fn update(&self, req: Request<Incoming>, key: &str, query: &str) -> Resp {
        let body = match read_body(req).await {
            Ok(b) => b,
            Err(refusal) => return refusal.into(),
        };
        let Ok(mut incoming) = Session::from_json_bytes(&body) else {
            return status(StatusCode::BAD_REQUEST, "error", "Request malformed");
        };
        let suppress_reset = query_flag(query, "suppress_reset");
        let now = unix_now();
        if !suppress_reset {
            incoming.start_quota_period(now);
        }
        let storage_key = self.sessions.scheme().storage_key(key);
        let generation = self.generation.load_full();
        let outcome = self
            .sessions
            .store()
            .update(&storage_key, |current| {
                let Some(current) = current else {
                    return (None, Ok(false));
                };
                let old = match Session::from_json(current) {
                    Ok(s) => s,
                    Err(e) => return (None, Err(StoreError::Corrupt(e.to_string()))),
                };
                let mut next = incoming.clone();
                next.date_created = old.date_created.clone();
                // Tyk: a past expiry in an update keeps the stored one.
                if next.is_expired(now) {
                    next.expires = old.expires;
                }
                if suppress_reset {
                    next.quota_renews = old.quota_renews;
                    next.last_updated = old.last_updated.clone();
                }
                let ttl = next.lifetime_over_access_rights(
                    |id| generation.api_lifetime(id),
                    &generation.gateway.lifetime,
                    now,
                );
                (Some((next.to_json(), ttl)), Ok(true))
            })
            .await;
        match outcome {
            Ok(Ok(true)) => {
                if !suppress_reset {
                    let _ = self.sessions.reset_quota(key).await;
                }
                tracing::info!(key = %key_hint(key), "Key modified.");
                self.key_action(key, "modified")
            }
            Ok(Ok(false)) => status(StatusCode::NOT_FOUND, "error", "Key is not found"),
            Ok(Err(e)) | Err(e) => store_failure(&e),
        }
    }

    async fn get(&self, key: &str, query: &str) -> Resp {
        let storage_key = match self.storage_key(key, query) {
            Ok(k) => k,
            Err(refusal) => return refusal.into(),
        };
        match self.sessions.store().get(&storage_key).await {
            Ok(Some(text)) => match serde_json::from_str::<Value>(&text) {
                Ok(v) => json_response(StatusCode::OK, &v),
                Err(e) => store_failure(&StoreError::Corrupt(e.to_string())),
            },
            Ok(None) => status(StatusCode::NOT_FOUND, "error", "Key not found"),
            Err(e) => store_failure(&e),
        }
    }

    async fn delete(&self, key: &str, query: &str) -> Resp {
        let storage_key = match self.storage_key(key, query) {
            Ok(k) => k,
            Err(refusal) => return refusal.into(),
        };
        match self.sessions.store().delete(&storage_key).await {
            Ok(true) => {
                let key_id = &storage_key[SESSION_PREFIX.len()..];
                let _ = self.sessions.store().delete(&quota_counter(key_id)).await;
                tracing::info!(key = %key_hint(key), "Key deleted.");
                self.key_action(key, "deleted")
            }
            Ok(false) => status(StatusCode::NOT_FOUND, "error", "There is no such key found"),
            Err(e) => store_failure(&e),
        }
    }

    async fn list(&self, query: &str) -> Resp {
        let generation = self.generation.load();
        if generation.gateway.hash_keys && !generation.gateway.enable_hashed_keys_listing {
            return status(
                StatusCode::NOT_FOUND,
                "error",
                "Hashed key listing is disabled in config (enable_hashed_keys_listing)",
            );
        }
        let filter = query_value(query, "filter").unwrap_or_default();
        let prefix = format!("{SESSION_PREFIX}{filter}");
        match self.sessions.store().keys_with_prefix(&prefix).await {
            Ok(keys) => {
                let keys: Vec<&str> = keys.iter().map(|k| &k[SESSION_PREFIX.len()..]).collect();
                json_response(StatusCode::OK, &json!({ "keys": keys }))
            }
            Err(e) => store_failure(&e),
        }
    }

    /// `?hashed=1` means the caller gives the hash instead of the key.
    fn storage_key(&self, key: &str, query: &str) -> Result<String, Refusal> {
        if query_flag(query, "hashed") {
            if !self.sessions.scheme().hash_keys {
                return Err(Refusal(StatusCode::BAD_REQUEST, "Key requested by hash but key hashing is not enabled"));
            }
            return Ok(format!("{SESSION_PREFIX}{key}"));
        }
        Ok(self.sessions.scheme().storage_key(key))
    }

    /// A write resets the quota period (Tyk), unless the caller asked otherwise.
    async fn reset_quota(&self, key: &str, session: &mut Session, now: i64) {
        session.start_quota_period(now);
        let _ = self.sessions.reset_quota(key).await;
    }

    fn ttl_for(&self, session: &Session, now: i64) -> i64 {
        let generation = self.generation.load();
        session.lifetime_over_access_rights(|id| generation.api_lifetime(id), &generation.gateway.lifetime, now)
    }

    fn key_action(&self, key: &str, action: &str) -> Resp {
        let mut body = json!({ "key": key, "status": "ok", "action": action });
        if self.sessions.scheme().hash_keys {
            body["key_hash"] = Value::String(hash_key(key));
        }
        json_response(StatusCode::OK, &body)
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Refusal> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) => Err(Refusal(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large or unreadable")),
    }
}

fn store_failure(e: &StoreError) -> Resp {
    tracing::warn!(error = %e, "Admin request failed in the session store.");
    moongate_proxy::metrics::metrics().admin_store_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match e {
        StoreError::Corrupt(_) => {
            status(StatusCode::INTERNAL_SERVER_ERROR, "error", "Stored session is not valid JSON")
        }
        StoreError::Conflict => status(StatusCode::CONFLICT, "error", "The key changed during the update; try again"),
        _ => status(StatusCode::SERVICE_UNAVAILABLE, "error", "Session store unavailable"),
    }
}

fn status(code: StatusCode, status: &str, message: &str) -> Resp {
    json_response(code, &json!({ "status": status, "message": message }))
}

/// Compact JSON with a trailing newline, as Tyk answers.
fn json_response(code: StatusCode, body: &Value) -> Resp {
    let mut text = body.to_string();
    text.push('\n');
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = code;
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    resp
}

fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v).into_owned())
    })
}

fn query_flag(query: &str, name: &str) -> bool {
    matches!(query_value(query, name).as_deref(), Some("1" | "true"))
}

fn redact(path: &str) -> String {
    match path.strip_prefix("/tyk/keys/") {
        Some(key) if key != "create" => format!("/tyk/keys/<{}>", key_hint(key)),
        _ => path.to_owned(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
