//! One request through one API: auth, session checks, limits, then the upstream. Hooks (issue 3)
//! slot in between these phases; the order follows DESIGN.md section 2.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Request, Response, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use moongate_config::ApiDefinition;
use moongate_session::{Denial, SESSION_PREFIX, Session, key_hint, unix_now};

use crate::auth::{find_key, remove_cookie, remove_query_param};
use crate::respond::{Body, GatewayError};
use crate::router::strip_listen_path;
use crate::upstream::strip_hop_by_hop;
use crate::{Generation, Worker};

impl Worker {
    /// Answers one request; never fails: every error becomes a response here.
    pub async fn handle(&self, req: Request<Incoming>, remote: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let generation = self.generation.load_full();
        let access_log = generation.gateway.log.access_log;
        let method = access_log.then(|| req.method().clone());
        let path = access_log.then(|| req.uri().path().to_owned());
        let api = generation.router.route(req.uri().path()).cloned();
        let resp = match &api {
            None => GatewayError::NoRoute.into_response(),
            Some(api) => match self.proxy(&generation, api, req, remote).await {
                Ok(resp) => resp,
                Err(err) => {
                    log_failure(api, &err);
                    err.into_response()
                }
            },
        };
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
        remote: SocketAddr,
    ) -> Result<Response<Body>, GatewayError> {
        let (mut parts, body) = req.into_parts();
        if !api.keyless {
            let key =
                find_key(&api.auth, &parts.headers, parts.uri.query()).ok_or(GatewayError::AuthMissing)?.into_owned();
            let key_id = self.sessions.scheme().key_id(&key);
            let session = self
                .sessions
                .get_by_storage_key(&format!("{SESSION_PREFIX}{key_id}"))
                .await?
                .ok_or(GatewayError::KeyNotFound)?;
            session.check(&api.api_id, unix_now()).map_err(|d| match d {
                Denial::Inactive => GatewayError::KeyInactive,
                Denial::Expired => GatewayError::KeyExpired,
                Denial::NoAccess => GatewayError::NoAccess,
            })?;
            self.enforce_limits(&key_id, &session).await?;
            tracing::debug!(api_id = %api.api_id, key = %key_hint(&key), "Key accepted.");
            if api.strip_auth_data {
                strip_auth_data(api, &mut parts);
            }
        }
        let upstream_req = upstream_request(api, parts, Either::Left(body), remote)?;
        let timeout = generation.gateway.upstream.timeout;
        match tokio::time::timeout(timeout, self.client.request(upstream_req)).await {
            Err(_) => Err(GatewayError::UpstreamTimeout(timeout.as_millis())),
            Ok(Err(e)) => Err(GatewayError::UpstreamUnreachable(error_chain(&e))),
            Ok(Ok(resp)) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Ok(Response::from_parts(parts, Either::Left(body)))
            }
        }
    }

    /// Rate limit (fixed window of `per` seconds) and quota (`quota_max` per `quota_renewal_rate`
    /// seconds), counted in the session store so that every worker and gateway shares them.
    async fn enforce_limits(&self, key_id: &str, session: &Session) -> Result<(), GatewayError> {
        let store = self.sessions.store();
        if session.rate > 0.0 && session.per > 0.0 {
            let n = store.incr(&format!("rate-limit-{key_id}"), session.per.ceil() as i64).await?;
            if n as f64 > session.rate {
                return Err(GatewayError::RateLimited);
            }
        }
        if session.quota_max > 0 {
            let n = store.incr(&format!("quota-{key_id}"), session.quota_renewal_rate).await?;
            if n > session.quota_max {
                return Err(GatewayError::QuotaExceeded);
            }
        }
        Ok(())
    }
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

/// The request as the upstream receives it: target URL, hop-by-hop headers removed, Host from the
/// target unless `preserve_host_header`, the client's address appended to X-Forwarded-For.
pub(crate) fn upstream_request(
    api: &ApiDefinition,
    mut parts: http::request::Parts,
    body: Body,
    remote: SocketAddr,
) -> Result<Request<Body>, GatewayError> {
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
    parts.uri = Uri::builder()
        .scheme(api.target.scheme.clone())
        .authority(api.target.authority.clone())
        .path_and_query(pq)
        .build()
        .map_err(|e| GatewayError::BadRequest(e.to_string()))?;
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    if !api.preserve_host_header {
        // The client adds Host from the target URL when none is set.
        parts.headers.remove(header::HOST);
    }
    let ip = remote.ip().to_string();
    let xff = match parts.headers.get("x-forwarded-for") {
        Some(prev) => format!("{}, {ip}", prev.to_str().unwrap_or_default()),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        parts.headers.insert("x-forwarded-for", v);
    }
    Ok(Request::from_parts(parts, body))
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
        other => tracing::debug!(api_id = %api.api_id, reason = %other, "Request refused."),
    }
}

/// The whole source chain: hyper's top-level messages alone ("client error (Connect)") hide the cause.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
