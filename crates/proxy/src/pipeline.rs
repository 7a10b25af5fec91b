//! One request through one API: auth, session checks, limits, then the upstream. Hooks (issue 3)
//! slot in between these phases; the order follows DESIGN.md section 2.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, Uri, Version};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use moongate_config::ApiDefinition;
use moongate_scripting::{BodyState, Phase, RequestView, ResponseView, SessionReads, error_chain};
use moongate_session::{
    ApiLifetime, Denial, SESSION_PREFIX, Session, SessionStore, key_hint, quota_counter, rate_counter, unix_now,
};

use crate::auth::{find_key, remove_cookie, remove_query_param};
use crate::respond::{Body, GatewayError, override_response};
use crate::router::strip_listen_path;
use crate::upstream::{RequestBody, strip_hop_by_hop};
use crate::{Generation, Worker};

impl Worker {
    /// Answers one request; never fails: every error becomes a response here.
    /// `client_ip` is the peer's address as text, made once per connection.
    pub async fn handle(&self, req: Request<Incoming>, client_ip: &HeaderValue) -> Response<Body> {
        let started = Instant::now();
        let generation = self.generation.load_full();
        let access_log = generation.gateway.log.access_log;
        let method = access_log.then(|| req.method().clone());
        let path = access_log.then(|| req.uri().path().to_owned());
        let api = generation.router.route(req.uri().path()).cloned();
        let (resp, counters) = match &api {
            None => (GatewayError::NoRoute.into_response(), &generation.no_route_metrics),
            Some(api) => {
                let counters = generation.api_metrics.get(&api.api_id).unwrap_or(&generation.no_route_metrics);
                let resp = match self.proxy(&generation, api, req, client_ip).await {
                    Ok(resp) => resp,
                    Err(err) => {
                        count_failure(counters, &err);
                        log_failure(api, &err);
                        err.into_response()
                    }
                };
                (resp, counters)
            }
        };
        counters.record(resp.status().as_u16(), started.elapsed());
        if let (Some(method), Some(path)) = (method, path) {
            tracing::info!(
                target: "moongate::access",
                api_id = api.as_ref().map_or("", |a| a.api_id.as_str()),
                method = %method,
                path = %path,
                status = resp.status().as_u16(),
                latency_us = started.elapsed().as_micros() as u64,
                "request"
            );
        }
        resp
    }

    async fn proxy(
        &self,
        generation: &Generation,
        api: &Arc<ApiDefinition>,
        req: Request<Incoming>,
        client_ip: &HeaderValue,
    ) -> Result<Response<Body>, GatewayError> {
        let (mut parts, incoming) = req.into_parts();
        let mw = &api.middleware;
        let hooks = if mw.is_empty() { None } else { Some(self.hook_runtime(generation)?) };
        // What hooks read of the session store, for the token auth that follows them.
        let reads = hooks.as_ref().map(|_| Arc::new(SessionReads::default()));
        let mut incoming = Some(incoming);
        let mut body = BodyState::Stream;
        if hooks.is_some() && generation.scripts.needs_body(&api.api_id) {
            let limit = generation.gateway.hooks.max_body_bytes;
            let stream = incoming.take().map(|b| Limited::new(b, usize::try_from(limit).unwrap_or(usize::MAX)));
            let bytes = match stream {
                Some(s) => s.collect().await.map_err(|_| GatewayError::BodyTooLarge(limit))?.to_bytes(),
                None => Bytes::new(),
            };
            body = BodyState::Buffered(bytes);
        }

        // 2. `pre` hooks, for keyless APIs too, with an empty session.
        if let Some(rt) = &hooks {
            for hook in &mw.pre {
                let mut view = RequestView { parts: &mut parts, body: &mut body };
                let out = rt.run_request(Phase::Pre, hook, api, &mut view, None, reads.as_ref()).await?;
                if let Some(o) = out.overrides {
                    return Ok(override_response(&o));
                }
            }
        }

        // 3-5. Auth (custom hook or token), `post_key_auth` hooks, then Tyk's session checks.
        let mut session: Option<KeySession> = None;
        if !api.keyless {
            let mut found = match (&hooks, &mw.auth_check) {
                (Some(rt), Some(hook)) => {
                    let mut view = RequestView { parts: &mut parts, body: &mut body };
                    let out = rt.run_request(Phase::AuthCheck, hook, api, &mut view, None, reads.as_ref()).await?;
                    if let Some(o) = out.overrides {
                        return Ok(override_response(&o));
                    }
                    let auth = out.auth.ok_or(GatewayError::CustomAuthDenied)?;
                    let key_id = auth.key.as_deref().map(|k| self.sessions.scheme().key_id(k));
                    // Tyk keeps the session a custom auth hook built under its `AuthValue`.
                    KeySession { dirty: key_id.is_some(), key_id, session: auth.session }
                }
                _ => self.token_session(api, &parts, reads.as_deref()).await?,
            };
            if let Some(rt) = &hooks {
                for hook in &mw.post_key_auth {
                    let mut view = RequestView { parts: &mut parts, body: &mut body };
                    let visible = hook.require_session.then_some(&found.session);
                    let out = rt.run_request(Phase::PostKeyAuth, hook, api, &mut view, visible, reads.as_ref()).await?;
                    if hook.require_session {
                        found.apply_meta(out.meta);
                    }
                    if let Some(o) = out.overrides {
                        return Ok(override_response(&o));
                    }
                }
            }
            found.session.check(&api.api_id, unix_now()).map_err(|d| match d {
                Denial::Inactive => GatewayError::KeyInactive,
                Denial::Expired => GatewayError::KeyExpired,
                Denial::NoAccess => GatewayError::NoAccess,
            })?;
            if let Some(key_id) = &found.key_id {
                self.enforce_limits(key_id, &found.session).await?;
            }
            if api.strip_auth_data {
                strip_auth_data(api, &mut parts);
            }
            session = Some(found);
        }

        // 6. `post` hooks: the session only with `require_session`.
        if let Some(rt) = &hooks {
            for hook in &mw.post {
                let mut view = RequestView { parts: &mut parts, body: &mut body };
                let visible = session.as_ref().filter(|_| hook.require_session).map(|s| &s.session);
                let out = rt.run_request(Phase::Post, hook, api, &mut view, visible, reads.as_ref()).await?;
                if hook.require_session
                    && let Some(s) = session.as_mut()
                {
                    s.apply_meta(out.meta);
                }
                if let Some(o) = out.overrides {
                    self.save_session(generation, api, session.as_ref()).await;
                    return Ok(override_response(&o));
                }
            }
        }

        // 7. The upstream.
        let mut request_copy = (!mw.response.is_empty()).then(|| copy_parts(&parts));
        let upstream_body: RequestBody = match body {
            BodyState::Buffered(b) => Either::Right(Full::new(b)),
            BodyState::Stream => match incoming {
                Some(i) => Either::Left(i),
                None => Either::Right(Full::default()),
            },
        };
        let upstream_req = upstream_request(api, parts, upstream_body, client_ip)?;
        let timeout = generation.gateway.upstream.timeout;
        let resp = match tokio::time::timeout(timeout, self.upstream.send(&api.target.authority, upstream_req)).await {
            Err(_) => return Err(GatewayError::UpstreamTimeout(timeout.as_millis())),
            Ok(Err(e)) => return Err(GatewayError::UpstreamUnreachable(error_chain(&e))),
            Ok(Ok(resp)) => resp,
        };
        let (mut resp_parts, resp_body) = resp.into_parts();
        strip_hop_by_hop(&mut resp_parts.headers);

        // 8. `response` hooks see the whole upstream body.
        let resp = match (&hooks, request_copy.as_mut()) {
            (Some(rt), Some(req_parts)) => {
                let limit = generation.gateway.hooks.max_body_bytes;
                let mut bytes = Limited::new(resp_body, usize::try_from(limit).unwrap_or(usize::MAX))
                    .collect()
                    .await
                    .map_err(|e| {
                        GatewayError::UpstreamUnreachable(format!("reading the response for response hooks: {e}"))
                    })?
                    .to_bytes();
                let mut status = resp_parts.status;
                let mut req_body = BodyState::Stream;
                for hook in &mw.response {
                    let mut view =
                        ResponseView { status: &mut status, headers: &mut resp_parts.headers, body: &mut bytes };
                    let mut req_view = RequestView { parts: req_parts, body: &mut req_body };
                    let visible = session.as_ref().map(|s| &s.session);
                    let out = rt.run_response(hook, api, &mut view, &mut req_view, visible).await?;
                    if hook.require_session
                        && let Some(s) = session.as_mut()
                    {
                        s.apply_meta(out.meta);
                    }
                }
                resp_parts.status = status;
                resp_parts.headers.remove(header::TRANSFER_ENCODING);
                resp_parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                Response::from_parts(resp_parts, Either::Right(Full::new(bytes)))
            }
            _ => Response::from_parts(resp_parts, Either::Left(resp_body)),
        };
        self.save_session(generation, api, session.as_ref()).await;
        Ok(resp)
    }

    /// Token auth: the key from header, parameter or cookie, and its stored session.
    async fn token_session(
        &self,
        api: &ApiDefinition,
        parts: &http::request::Parts,
        reads: Option<&SessionReads>,
    ) -> Result<KeySession, GatewayError> {
        let key = find_key(&api.auth, &parts.headers, parts.uri.query()).ok_or(GatewayError::AuthMissing)?;
        let key_id = self.sessions.scheme().key_id(&key);
        let storage_key = format!("{SESSION_PREFIX}{key_id}");
        let session = match reads.and_then(|r| r.take(&storage_key)) {
            Some(text) => Some(SessionStore::parse(&text)?),
            None => self.sessions.get_by_storage_key(&storage_key).await?,
        }
        .ok_or(GatewayError::KeyNotFound)?;
        tracing::debug!(api_id = %api.api_id, key = %key_hint(&key), "Key found.");
        Ok(KeySession { key_id: Some(key_id), session, dirty: false })
    }

    /// Writes back a session that hooks changed (or a custom auth hook created), with the API's
    /// lifetime as its TTL. A failure is logged: the response is already decided.
    async fn save_session(&self, generation: &Generation, api: &ApiDefinition, session: Option<&KeySession>) {
        let Some(KeySession { key_id: Some(key_id), session, dirty: true }) = session else { return };
        let lifetime = ApiLifetime {
            session_lifetime: api.session_lifetime,
            respects_key_expiration: api.session_lifetime_respects_key_expiration,
        };
        let ttl = session.lifetime(lifetime, &generation.gateway.lifetime, unix_now());
        if let Err(e) = self.sessions.store().set(&format!("{SESSION_PREFIX}{key_id}"), &session.to_json(), ttl).await {
            tracing::warn!(api_id = %api.api_id, error = %e, "Could not save the session changed by hooks.");
        }
    }

    /// Rate limit (fixed window of `per` seconds) and quota (`quota_max` per `quota_renewal_rate`
    /// seconds), counted in the session store so that every worker and gateway shares them.
    async fn enforce_limits(&self, key_id: &str, session: &Session) -> Result<(), GatewayError> {
        let store = self.sessions.store();
        if session.rate > 0.0 && session.per > 0.0 {
            let n = store.incr(&rate_counter(key_id), session.per.ceil() as i64).await?;
            if n as f64 > session.rate {
                return Err(GatewayError::RateLimited);
            }
        }
        if session.quota_max > 0 {
            let n = store.incr(&quota_counter(key_id), session.quota_renewal_rate).await?;
            if n > session.quota_max {
                return Err(GatewayError::QuotaExceeded);
            }
        }
        Ok(())
    }
}

/// The session of the request's key, and whether hooks changed it.
struct KeySession {
    /// The key's id in the store (hash or key); `None` for a custom auth session without `AuthValue`.
    key_id: Option<String>,
    session: Session,
    dirty: bool,
}

impl KeySession {
    /// Meta returned by a hook replaces `meta_data` wholesale (Tyk); a change is saved at the end.
    fn apply_meta(&mut self, meta: Option<serde_json::Map<String, serde_json::Value>>) {
        if let Some(meta) = meta
            && meta != self.session.meta_data
        {
            self.session.meta_data = meta;
            self.dirty = true;
        }
    }
}

/// What response hooks see of the request: its head, as it was sent upstream.
fn copy_parts(parts: &http::request::Parts) -> http::request::Parts {
    let (mut copy, ()) = Request::new(()).into_parts();
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy
}

fn strip_auth_data(api: &ApiDefinition, parts: &mut http::request::Parts) {
    parts.headers.remove(&api.auth.header_name);
    if let Some(name) = &api.auth.cookie_name {
        remove_cookie(&mut parts.headers, name);
    }
    if let (Some(name), Some(query)) = (&api.auth.param_name, parts.uri.query()) {
        let query = remove_query_param(query, name);
        let pq = match query {
            Some(q) => format!("{}?{q}", parts.uri.path()),
            None => parts.uri.path().to_owned(),
        };
        if let Ok(uri) = Uri::builder().path_and_query(pq).build() {
            parts.uri = uri;
        }
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The request as the upstream receives it: target URL, hop-by-hop headers removed, Host from the
/// target unless `preserve_host_header`, the client's address appended to X-Forwarded-For.
pub(crate) fn upstream_request(
    api: &ApiDefinition,
    mut parts: http::request::Parts,
    body: RequestBody,
    client_ip: &HeaderValue,
) -> Result<Request<RequestBody>, GatewayError> {
    let path = parts.uri.path();
    let path = if api.strip_listen_path { strip_listen_path(&api.listen_path, path) } else { path.into() };
    let query = parts.uri.query();
    let mut pq = String::with_capacity(api.target.base_path.len() + path.len() + query.map_or(0, |q| q.len() + 1));
    pq.push_str(&api.target.base_path);
    pq.push_str(&path);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    // Origin form: the connection already goes to the target.
    parts.uri = Uri::from_maybe_shared(pq).map_err(|e| GatewayError::BadRequest(e.to_string()))?;
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    if !api.preserve_host_header || !parts.headers.contains_key(header::HOST) {
        parts.headers.insert(header::HOST, api.target.host.clone());
    }
    for name in &api.global_headers_remove {
        parts.headers.remove(name);
    }
    for (name, value) in &api.global_headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    let xff = match parts.headers.get(X_FORWARDED_FOR) {
        Some(prev) => {
            let mut joined = Vec::with_capacity(prev.len() + 2 + client_ip.len());
            joined.extend_from_slice(prev.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(client_ip.as_bytes());
            HeaderValue::from_maybe_shared(Bytes::from(joined)).ok()
        }
        None => Some(client_ip.clone()),
    };
    if let Some(v) = xff {
        parts.headers.insert(X_FORWARDED_FOR, v);
    }
    Ok(Request::from_parts(parts, body))
}

fn count_failure(counters: &crate::metrics::ApiMetrics, err: &GatewayError) {
    use moongate_scripting::HookError;
    use std::sync::atomic::Ordering::Relaxed;
    let counter = match err {
        GatewayError::UpstreamUnreachable(_) => &counters.upstream_errors,
        GatewayError::UpstreamTimeout(_) => &counters.upstream_timeouts,
        GatewayError::Hook(HookError::Timeout { .. }) => &counters.hook_timeouts,
        GatewayError::Hook(HookError::BodyTooLarge { .. }) => return,
        GatewayError::Hook(_) | GatewayError::Internal(_) => &counters.hook_errors,
        GatewayError::Store(moongate_session::StoreError::Corrupt(_)) => return,
        GatewayError::Store(_) => &counters.store_errors,
        _ => return,
    };
    counter.fetch_add(1, Relaxed);
}

fn log_failure(api: &ApiDefinition, err: &GatewayError) {
    match err {
        GatewayError::Store(e) => {
            tracing::warn!(api_id = %api.api_id, error = %e, "Session store failed.")
        }
        GatewayError::UpstreamUnreachable(e) => {
            tracing::warn!(api_id = %api.api_id, error = %e, "Upstream unreachable.")
        }
        GatewayError::UpstreamTimeout(ms) => {
            tracing::warn!(api_id = %api.api_id, timeout_ms = *ms as u64, "Upstream timed out.")
        }
        GatewayError::Internal(e) => {
            tracing::error!(api_id = %api.api_id, error = %e, "Internal error.")
        }
        // A broken hook needs its author: ERROR, with the hook, its script:line and the Lua message.
        GatewayError::Hook(e) => tracing::error!(api_id = %api.api_id, error = %e, "Hook failed."),
        other => tracing::debug!(api_id = %api.api_id, reason = %other, "Request refused."),
    }
}
