//! `lmforge dashboard [RUNS_DIR]`: the live training dashboard ([`lmforge_dashboard`]).

use std::path::PathBuf;

use clap::Args;
use lmforge_dashboard::{Dashboard, DashboardOptions};

/// Default port of `lmforge dashboard` and `lmforge train --dashboard`.
pub const DEFAULT_PORT: u16 = 8081;

/// `lmforge dashboard [RUNS_DIR] [--host H] [--port P] [--api-key KEY | --no-auth]`
#[derive(Args, Debug)]
pub struct DashboardArgs {
    /// The folder holding the runs (or one run folder).
    #[arg(default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Address to listen on. Anything but a loopback address needs --api-key or --no-auth.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Require this key (`Authorization: Bearer KEY`, or open the page as /?key=KEY).
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Serve a non-loopback address without a key.
    #[arg(long, conflicts_with = "api_key")]
    pub no_auth: bool,
}

/// Runs `lmforge dashboard` until interrupted.
pub fn run(a: DashboardArgs) -> anyhow::Result<()> {
    let opts = DashboardOptions {
        host: a.host,
        api_key: a.api_key,
        no_auth: a.no_auth,
        ..DashboardOptions::new(a.runs_dir.clone(), a.port)
    };
    let dash = Dashboard::bind(opts)?;
    eprintln!(
        "dashboard of {}: {}  (Ctrl-C to stop)",
        a.runs_dir.display(),
        dash.url()?
    );
    dash.run()?;
    Ok(())
}

/// `lmforge train --dashboard [PORT]`: serves the run's parent folder on loopback from a
/// background thread while the run trains; returns the page's URL.
pub fn beside_run(run_dir: &std::path::Path, port: u16) -> anyhow::Result<String> {
    let runs_dir = match run_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&runs_dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", runs_dir.display()))?;
    let dash = Dashboard::bind(DashboardOptions::new(runs_dir, port))
        .map_err(|e| anyhow::anyhow!("--dashboard: {e}"))?;
    Ok(dash.spawn()?)
}
