//! One worker's keep-alive connections to upstreams, and the header rules for crossing the proxy.
//!
//! A connection has no task of its own: the request that uses it drives it. While the request
//! waits for the response head it polls the connection, and the response body polls it while the
//! body streams to the client; once the body has ended the connection goes back on the worker's
//! idle list. This spares every request the channel hop and the two task wake-ups that a pooled
//! client with one task per connection (hyper-util's) costs.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http::uri::Authority;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use moongate_config::UpstreamConfig;
use tokio::net::TcpStream;

/// What goes to the upstream: the client's body as it streams in, or one a hook buffered.
pub type RequestBody = Either<Incoming, Full<Bytes>>;

type Connection = http1::Connection<TokioIo<TcpStream>, RequestBody>;

/// One HTTP/1.1 connection: the handle that sends requests and the state machine behind it.
struct Conn {
    sender: http1::SendRequest<RequestBody>,
    conn: Connection,
    /// The connection future has finished: the peer closed it or it failed.
    done: bool,
}

impl Conn {
    /// Lets the connection make progress (write the request, read the response); remembers when
    /// it has finished, since a finished connection must not be polled again.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if !self.done && Pin::new(&mut self.conn).poll(cx).is_ready() {
            self.done = true;
        }
    }

    /// Idle and able to take the next request.
    fn reusable(&mut self, cx: &mut Context<'_>) -> bool {
        self.drive(cx);
        !self.done && self.sender.is_ready()
    }
}

/// One upstream's idle connections with the time each went idle, oldest first.
type IdleList = VecDeque<(Box<Conn>, Instant)>;

/// Keep-alive connections of one worker, by upstream authority as written in the target URL.
/// Connections are boxed: they move in and out of the pool and through response bodies on every
/// request, and the connection state is several hundred bytes.
pub struct UpstreamPool {
    idle: Mutex<HashMap<String, IdleList>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle_per_host: usize,
}

impl UpstreamPool {
    /// Must be called inside the worker's runtime: it starts the task that closes idle connections.
    pub fn new(cfg: &UpstreamConfig) -> Arc<Self> {
        let pool = Arc::new(Self {
            idle: Mutex::new(HashMap::new()),
            connect_timeout: cfg.connect_timeout,
            idle_timeout: cfg.idle_timeout,
            max_idle_per_host: cfg.max_idle_per_host,
        });
        // Connections of an upstream that gets no more traffic would otherwise stay open forever.
        let weak: Weak<Self> = Arc::downgrade(&pool);
        let every = cfg.idle_timeout.max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(pool) = weak.upgrade() else { return };
                pool.sweep();
            }
        });
        pool
    }

    /// Sends `req` (its URI in origin form) to `authority` on an idle connection or a new one,
    /// and returns once the response head has arrived.
    pub async fn send(
        self: &Arc<Self>,
        authority: &Authority,
        req: Request<RequestBody>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let mut conn = match self.checkout(authority).await {
            Some(c) => c,
            None => self.connect(authority).await?,
        };
        let response = conn.sender.send_request(req);
        let mut response = std::pin::pin!(response);
        let head = poll_fn(|cx| {
            conn.drive(cx);
            response.as_mut().poll(cx)
        })
        .await
        .map_err(UpstreamError::Http)?;
        let (parts, body) = head.into_parts();
        let body = UpstreamBody { body, conn: Some(conn), pool: Arc::downgrade(self), authority: authority.clone() };
        Ok(Response::from_parts(parts, body))
    }

    /// The most recently used idle connection that is still open; closed and stale ones go.
    async fn checkout(&self, authority: &Authority) -> Option<Box<Conn>> {
        loop {
            let (mut conn, since) = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.get_mut(authority.as_str())?.pop_back()?
            };
            if since.elapsed() >= self.idle_timeout {
                continue;
            }
            // One poll notices a close by the upstream that arrived while the connection was idle.
            if poll_fn(|cx| Poll::Ready(conn.reusable(cx))).await {
                return Some(conn);
            }
        }
    }

    async fn connect(&self, authority: &Authority) -> Result<Box<Conn>, UpstreamError> {
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let stream = match tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port))).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(UpstreamError::Connect(authority.to_string(), e)),
            Err(_) => {
                return Err(UpstreamError::ConnectTimeout(authority.to_string(), self.connect_timeout.as_millis()));
            }
        };
        // Small requests and responses go out at once, not after the peer's delayed ACK.
        let _ = stream.set_nodelay(true);
        // Flat writes, as on the server side (see `server::serve`).
        let (sender, conn) =
            http1::Builder::new().writev(false).handshake(TokioIo::new(stream)).await.map_err(UpstreamError::Http)?;
        crate::metrics::metrics().upstream_connections.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(Conn { sender, conn, done: false }))
    }

    fn checkin(&self, authority: &Authority, conn: Box<Conn>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = match idle.get_mut(authority.as_str()) {
            Some(list) => list,
            None => idle.entry(authority.as_str().to_owned()).or_default(),
        };
        // The oldest are at the front; they are the first to go stale.
        while list.front().is_some_and(|(_, since)| since.elapsed() >= self.idle_timeout) {
            list.pop_front();
        }
        if list.len() < self.max_idle_per_host {
            list.push_back((conn, Instant::now()));
        }
    }

    fn sweep(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|_, list| {
            list.retain(|(_, since)| since.elapsed() < self.idle_timeout);
            !list.is_empty()
        });
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, #[source] std::io::Error),
    #[error("connecting to {0} took longer than {1} ms")]
    ConnectTimeout(String, u128),
    #[error("HTTP exchange failed: {0}")]
    Http(#[source] hyper::Error),
}

/// The upstream's response body. It drives its connection while it streams, and hands the
/// connection back to the pool once it has been read to the end; a body dropped early closes it.
pub struct UpstreamBody {
    body: Incoming,
    conn: Option<Box<Conn>>,
    pool: Weak<UpstreamPool>,
    authority: Authority,
}

impl UpstreamBody {
    fn release(&mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        // The connection reaches its idle state on its next poll; nothing needs waking for that.
        let mut cx = Context::from_waker(Waker::noop());
        if conn.reusable(&mut cx)
            && let Some(pool) = self.pool.upgrade()
        {
            pool.checkin(&self.authority, conn);
        }
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(conn) = &mut this.conn {
            conn.drive(cx);
        }
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || this.body.is_end_stream() {
            this.release();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A body without content (204, HEAD, Content-Length: 0) is never polled.
        if self.body.is_end_stream() {
            self.release();
        }
    }
}

/// Headers that describe one connection, not the message: never forwarded (RFC 9110 7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none: one pass over the names is cheaper than seven removals.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    // Names listed in Connection are hop-by-hop too.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_listed_headers_go_too() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-secret-hop".parse().expect("value"));
        h.insert("x-secret-hop", "1".parse().expect("value"));
        h.insert("keep-alive", "timeout=5".parse().expect("value"));
        h.insert("x-kept", "1".parse().expect("value"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
