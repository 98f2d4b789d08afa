//! The lmforge live training dashboard (`lmforge dashboard [RUNS_DIR]`, `lmforge train
//! --dashboard`): one page listing the runs under a runs folder — config, live curves of
//! train/val loss, learning rate, grad norm and tokens/s (several runs overlaid, log-scale
//! toggle), the samples generated at evaluations, the checkpoints.
//!
//! - [`follow`]: following `metrics.jsonl` / `samples.jsonl` as a run appends to them;
//! - [`runs`]: finding the runs and turning their changes into messages;
//! - [`server`]: the HTTP routes (page, assets, `/api/runs`, `/api/events` as server-sent
//!   events that move the curves while a run trains);
//! - [`auth`]: loopback by default; other addresses need `--api-key` or `--no-auth`.
//!
//! The chart library is uPlot (MIT, vendored from npm under `static/` with its licence,
//! embedded with `include_str!`; `tools/vendor_uplot.sh` fetches it again).

#![warn(missing_docs)]

pub mod auth;
pub mod follow;
pub mod runs;
pub mod server;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

/// How to serve.
#[derive(Debug, Clone)]
pub struct DashboardOptions {
    /// The folder holding the runs (or one run folder).
    pub runs_dir: PathBuf,
    /// Address to bind.
    pub host: String,
    /// Port (0: any free one).
    pub port: u16,
    /// Key required from clients.
    pub api_key: Option<String>,
    /// Serve a non-loopback address without a key.
    pub no_auth: bool,
    /// How often the runs folder is looked at.
    pub poll: Duration,
    /// An event stream is closed after this long; the page's `EventSource` reconnects
    /// within a second and gets the whole state again (so no connection lives forever).
    pub stream_lifetime: Duration,
}

impl DashboardOptions {
    /// Loopback, the given port, polling every 500 ms.
    pub fn new(runs_dir: PathBuf, port: u16) -> DashboardOptions {
        DashboardOptions {
            runs_dir,
            host: "127.0.0.1".into(),
            port,
            api_key: None,
            no_auth: false,
            poll: Duration::from_millis(500),
            stream_lifetime: Duration::from_secs(600),
        }
    }
}

/// Why the dashboard cannot start (one line each).
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The runs folder is missing or not a folder.
    #[error("{path}: {reason}")]
    RunsDir {
        /// the folder
        path: String,
        /// what is wrong and what to do
        reason: String,
    },
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// host:port
        addr: String,
        /// why, and what to do
        reason: String,
    },
    /// A bad flag combination.
    #[error("{0}")]
    Usage(String),
    /// The server failed while running.
    #[error("dashboard server: {0}")]
    Serve(String),
}

/// A bound dashboard, ready to serve.
pub struct Dashboard {
    listener: TcpListener,
    opts: DashboardOptions,
    key: Option<String>,
}

impl Dashboard {
    /// Checks the runs folder and the auth rule and binds the address (so every mistake is
    /// reported before anything runs).
    pub fn bind(opts: DashboardOptions) -> Result<Dashboard, DashboardError> {
        let dir = &opts.runs_dir;
        if !dir.is_dir() {
            let reason = if dir.exists() {
                "is not a folder; pass the folder that holds your runs (default runs/)"
            } else {
                "runs folder does not exist; train a run first (`lmforge train --out runs/NAME`) \
                 or pass the folder that holds your runs"
            };
            return Err(DashboardError::RunsDir {
                path: dir.display().to_string(),
                reason: reason.into(),
            });
        }
        let key = auth::key_for(&opts.host, opts.api_key.as_deref(), opts.no_auth)?;
        let addr = format!("{}:{}", opts.host, opts.port);
        let listener = TcpListener::bind(&addr).map_err(|e| DashboardError::Bind {
            addr: addr.clone(),
            reason: match e.kind() {
                std::io::ErrorKind::AddrInUse => format!(
                    "port {} is in use by another program; pick another with --port",
                    opts.port
                ),
                _ => e.to_string(),
            },
        })?;
        Ok(Dashboard {
            listener,
            opts,
            key,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, DashboardError> {
        self.listener
            .local_addr()
            .map_err(|e| DashboardError::Serve(e.to_string()))
    }

    /// The page's URL (with `?key=` when a key is required).
    pub fn url(&self) -> Result<String, DashboardError> {
        let addr = self.local_addr()?;
        let key = self
            .key
            .as_ref()
            .map_or(String::new(), |k| format!("?key={k}"));
        Ok(format!("http://{addr}/{key}"))
    }

    /// Serves until the process ends (its own tokio runtime, on this thread).
    pub fn run(self) -> Result<(), DashboardError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| DashboardError::Serve(e.to_string()))?;
        rt.block_on(server::serve(self.listener, self.opts, self.key))
    }

    /// Serves from a background thread (beside a training run, or in tests); returns the URL.
    pub fn spawn(self) -> Result<String, DashboardError> {
        let url = self.url()?;
        std::thread::Builder::new()
            .name("dashboard".into())
            .spawn(move || {
                if let Err(e) = self.run() {
                    eprintln!("warning: {e}");
                }
            })
            .map_err(|e| DashboardError::Serve(e.to_string()))?;
        Ok(url)
    }
}
