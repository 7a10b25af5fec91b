//! The one place where a failure becomes a status code and a body. Every error a client sees is
//! JSON, in Tyk's template: `{"error": "<message>"}`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{Either, Full};
use moongate_scripting::{HookError, Overrides};
use moongate_session::StoreError;

/// Response bodies: streamed from the upstream, or made here.
pub type Body = Either<crate::upstream::UpstreamBody, Full<Bytes>>;

/// Why a request was answered by the gateway instead of the upstream.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no API listens on this path")]
    NoRoute,
    #[error("no key in the request")]
    AuthMissing,
    #[error("unknown key")]
    KeyNotFound,
    #[error("inactive key")]
    KeyInactive,
    #[error("expired key")]
    KeyExpired,
    #[error("key has no access to this API")]
    NoAccess,
    #[error("rate limit exceeded")]
    RateLimited,
    #[error("quota exceeded")]
    QuotaExceeded,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(String),
    #[error("upstream did not answer within {0} ms")]
    UpstreamTimeout(u128),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error("the custom auth hook returned no session")]
    CustomAuthDenied,
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(u64),
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// Status and client-facing message (Tyk's wording where Tyk has one).
    pub fn status_and_message(&self) -> (StatusCode, &'static str) {
        use GatewayError::*;
        match self {
            NoRoute => (StatusCode::NOT_FOUND, "Not Found"),
            AuthMissing => (StatusCode::UNAUTHORIZED, "Authorization field missing"),
            KeyNotFound | NoAccess => (StatusCode::FORBIDDEN, "Access to this API has been disallowed"),
            KeyInactive => (StatusCode::FORBIDDEN, "Key is inactive, please renew"),
            KeyExpired => (StatusCode::UNAUTHORIZED, "Key has expired, please renew"),
            RateLimited => (StatusCode::TOO_MANY_REQUESTS, "Rate Limit Exceeded"),
            QuotaExceeded => (StatusCode::FORBIDDEN, "Quota exceeded"),
            Store(StoreError::Corrupt(_)) => (StatusCode::FORBIDDEN, "Access to this API has been disallowed"),
            Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "Session store unavailable"),
            UpstreamUnreachable(_) => (StatusCode::BAD_GATEWAY, "There was a problem proxying the request"),
            UpstreamTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "Upstream service did not respond in time"),
            BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad Request"),
            Hook(HookError::BodyTooLarge { .. }) | BodyTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")
            }
            Hook(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
            CustomAuthDenied => (StatusCode::FORBIDDEN, "Key not authorised"),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let (status, message) = self.status_and_message();
        error_response(status, message)
    }
}

/// A JSON error body in Tyk's template.
pub fn error_response(status: StatusCode, message: &str) -> Response<Body> {
    let body = format!("{{\n    \"error\": {}\n}}", serde_json::Value::String(message.to_owned()));
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The response a hook asked for with `ReturnOverrides` (Tyk's rules: `ResponseError` replaces
/// `ResponseBody`; >= 400 without `OverrideError` is the JSON error template).
pub fn override_response(o: &Overrides) -> Response<Body> {
    let status = StatusCode::from_u16(o.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp =
        if o.wraps_error() { error_response(status, o.message()) } else { full(status, o.message().to_owned()) };
    for (k, v) in &o.headers {
        if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// A local response with a ready body.
pub fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(body.into())));
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn errors_are_tyk_json() {
        let resp = GatewayError::KeyExpired.into_response();
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let Either::Right(full) = resp.into_body() else { panic!("local body") };
        let bytes = full.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert_eq!(v["error"], "Key has expired, please renew");
    }
}
