//! The routes: the page and its assets, `/api/runs` (everything now, as JSON) and
//! `/api/events` (server-sent events: everything, then each change as it happens).

use std::convert::Infallible;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{middleware, Json, Router};
use tokio_stream::wrappers::ReceiverStream;

use crate::runs::{Message, Watcher};
use crate::{DashboardError, DashboardOptions};

const INDEX_HTML: &str = include_str!("../static/index.html");
const APP_JS: &str = include_str!("../static/app.js");
const STYLE_CSS: &str = include_str!("../static/style.css");
const UPLOT_JS: &str = include_str!("../static/uplot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../static/uplot.min.css");

#[derive(Clone)]
struct App {
    runs_dir: PathBuf,
    poll: Duration,
    lifetime: Duration,
}

/// Serves `listener` until the process ends.
pub async fn serve(
    listener: TcpListener,
    opts: DashboardOptions,
    key: Option<String>,
) -> Result<(), DashboardError> {
    let err = |e: std::io::Error| DashboardError::Serve(e.to_string());
    listener.set_nonblocking(true).map_err(err)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(err)?;
    let app = App {
        runs_dir: opts.runs_dir,
        poll: opts.poll,
        lifetime: opts.stream_lifetime,
    };
    let router = Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route("/app.js", get(|| asset("text/javascript", APP_JS)))
        .route("/style.css", get(|| asset("text/css", STYLE_CSS)))
        .route("/uplot.js", get(|| asset("text/javascript", UPLOT_JS)))
        .route("/uplot.css", get(|| asset("text/css", UPLOT_CSS)))
        .route("/api/runs", get(snapshot))
        .route("/api/events", get(events))
        .with_state(app)
        .layer(middleware::from_fn_with_state(
            key,
            crate::auth::require_key,
        ));
    axum::serve(listener, router).await.map_err(err)
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type)], body)
}

/// Everything now: the messages a new event stream starts with.
async fn snapshot(State(app): State<App>) -> Json<Vec<Message>> {
    let messages = tokio::task::spawn_blocking(move || Watcher::new(&app.runs_dir).poll())
        .await
        .unwrap_or_default();
    Json(messages)
}

/// Server-sent events: the snapshot, then every change, polled every `app.poll`; the
/// watcher stops when the client goes away or the stream's lifetime is over.
async fn events(State(app): State<App>) -> impl IntoResponse {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(async move {
        let end = tokio::time::Instant::now() + app.lifetime;
        let retry = Event::default()
            .retry(Duration::from_millis(1000))
            .comment("hello");
        if tx.send(Ok(retry)).await.is_err() {
            return;
        }
        let mut watcher = Watcher::new(&app.runs_dir);
        loop {
            let (back, messages) = match tokio::task::spawn_blocking(move || {
                let m = watcher.poll();
                (watcher, m)
            })
            .await
            {
                Ok(r) => r,
                Err(_) => return,
            };
            watcher = back;
            for m in messages {
                let event = Event::default()
                    .event(m.kind())
                    .json_data(&m)
                    .unwrap_or_else(|_| Event::default().comment("unencodable"));
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            if tokio::time::Instant::now() >= end {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(app.poll) => {}
                _ = tokio::time::sleep_until(end) => return,
                _ = tx.closed() => return,
            }
        }
    });
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default())
}
