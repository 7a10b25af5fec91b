//! A small upstream that answers every request with a JSON description of it, for the quick start
//! (`moongate echo`) and the tests. Query parameters `echo_status=NNN` and `echo_delay_ms=N` set the
//! status and delay the answer, `echo_header=Name:Value` (repeatable) adds a response header;
//! `GET /__echo` answers the `x-internal-authorization` header alone.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::auth::query_param;

/// Serves until the listener fails or the task is dropped.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(answer)).await;
        });
    }
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let query = req.uri().query().unwrap_or("").to_owned();
    if let Some(ms) = query_param(&query, "echo_delay_ms").and_then(|v| v.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = query_param(&query, "echo_status")
        .and_then(|v| v.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::OK);
    if req.uri().path() == "/__echo" {
        let v = req.headers().get("x-internal-authorization").map(|v| v.as_bytes().to_vec()).unwrap_or_default();
        return Ok(Response::new(Full::new(Bytes::from(v))));
    }
    let mut headers = serde_json::Map::new();
    for (name, value) in req.headers() {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(serde_json::Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), v.into());
            }
        }
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let out = serde_json::json!({
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut resp = Response::new(Full::new(Bytes::from(out.to_string())));
    *resp.status_mut() = status;
    for pair in query.split('&').filter_map(|p| p.strip_prefix("echo_header=")) {
        let pair = crate::percent_decode(pair);
        if let Some((k, v)) = pair.split_once(':')
            && let (Ok(k), Ok(v)) =
                (header::HeaderName::from_bytes(k.trim().as_bytes()), header::HeaderValue::from_str(v.trim()))
        {
            resp.headers_mut().append(k, v);
        }
    }
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    Ok(resp)
}
