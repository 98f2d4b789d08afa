//! `lmforge serve`: an OpenAI-compatible HTTP server for lmforge checkpoints, with a web
//! playground.
//!
//! - [`request`]: `POST /v1/completions` bodies, checked field by field.
//! - [`engine`]: the shared model (GPT, or encoder–decoder taking the prompt as its source)
//!   and the bounded worker pool (queue limit → 503).
//! - [`response`]: OpenAI's `text_completion` objects and stream chunks.
//! - [`server`]: routes, API-key check, body limit, timeouts; the playground page.
//! - [`error`]: OpenAI's error JSON.
//!
//! [`bind`] and [`run`] are what the CLI calls; tests call them too, on port 0.

#![warn(missing_docs)]

pub mod engine;
pub mod error;
pub mod request;
pub mod response;
pub mod server;

use std::net::{IpAddr, SocketAddr};

pub use engine::{Engine, PoolSize, ServedModel};
pub use request::Limits;
pub use server::{router, HttpOptions};

/// Errors starting the server, one line each naming the flag.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// the port is taken
    #[error("--port {port}: {addr} is already in use (stop the program using it, or pick another --port)")]
    PortInUse {
        /// the port asked for
        port: u16,
        /// the full address
        addr: SocketAddr,
    },
    /// binding failed for another reason
    #[error("--host {host} --port {port}: cannot listen: {source}")]
    Bind {
        /// the host asked for
        host: IpAddr,
        /// the port asked for
        port: u16,
        /// why
        source: std::io::Error,
    },
    /// a non-loopback address without an authentication decision
    #[error("--host {0} is reachable from other machines: pass --api-key KEY (clients then send `Authorization: Bearer KEY`) or --no-auth to serve without a key")]
    NeedsAuth(IpAddr),
    /// other I/O
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Refuses a non-loopback `host` unless a key is set or `no_auth` says so explicitly.
pub fn check_auth(host: IpAddr, api_key: Option<&str>, no_auth: bool) -> Result<(), ServeError> {
    if host.is_loopback() || api_key.is_some() || no_auth {
        Ok(())
    } else {
        Err(ServeError::NeedsAuth(host))
    }
}

/// Binds `host:port`, saying which port is in use when it is.
pub async fn bind(host: IpAddr, port: u16) -> Result<tokio::net::TcpListener, ServeError> {
    let addr = SocketAddr::new(host, port);
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => ServeError::PortInUse { port, addr },
            _ => ServeError::Bind {
                host,
                port,
                source: e,
            },
        })
}

/// Serves `router` on `listener` until `shutdown` resolves (in-flight requests finish).
///
/// Each connection is HTTP/1.1 with `header_timeout` to send a request's headers: a client
/// that connects and sends nothing, trickles a header, or idles on a kept-alive connection
/// past it is disconnected, so idle sockets cannot pin the server's file descriptors.
/// (`axum::serve` sets no such timer.)
pub async fn run(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    header_timeout: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: wait instead of spinning.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        let conn = graceful.watch(http1.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A connection's I/O error (a client gone, a timeout) ends only that connection.
            let _ = conn.await;
        });
    }
    graceful.shutdown().await;
    Ok(())
}

/// Serves `engine` on `host:port` until Ctrl-C, printing the address (and `note`) once
/// listening. Builds its own tokio runtime (the rest of lmforge is synchronous).
pub fn serve_blocking(
    host: IpAddr,
    port: u16,
    engine: std::sync::Arc<Engine>,
    http: &HttpOptions,
    note: &str,
) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let app = router(engine.clone(), http);
    rt.block_on(async move {
        let listener = bind(host, port).await?;
        let addr = listener.local_addr()?;
        let pool = engine.pool();
        eprintln!(
            "serving {} on http://{addr}/ (playground at /, OpenAI API at /v1; {note}; {} workers, queue {}{}); Ctrl-C stops",
            engine.model_id,
            pool.workers,
            pool.queue,
            if http.api_key.is_some() { ", API key required" } else { "" }
        );
        run(listener, app, http.header_timeout, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    })
}
