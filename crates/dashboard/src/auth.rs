//! Who may connect: loopback binds are open; any other address needs `--api-key KEY`
//! (checked in constant time) or an explicit `--no-auth` (the same rule as `lmforge serve`).
//!
//! The key is accepted as `Authorization: Bearer KEY` or, because a browser's page and
//! `EventSource` cannot set headers, as `?key=KEY` in the URL (the page passes its own on).

use std::net::{IpAddr, ToSocketAddrs};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::DashboardError;

/// Checks the bind rule; returns the key to require (none: open).
pub fn key_for(
    host: &str,
    api_key: Option<&str>,
    no_auth: bool,
) -> Result<Option<String>, DashboardError> {
    if api_key.is_some_and(str::is_empty) {
        return Err(DashboardError::Usage("--api-key: the key is empty".into()));
    }
    if let Some(key) = api_key {
        return Ok(Some(key.to_string()));
    }
    if no_auth || is_loopback(host) {
        return Ok(None);
    }
    Err(DashboardError::Usage(format!(
        "--host {host}: serving on a non-loopback address needs --api-key KEY \
         (or --no-auth to let anyone who can reach it in)"
    )))
}

/// True when every address `host` names is a loopback one.
fn is_loopback(host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    match (host, 0).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// Middleware: 401 unless the request carries the key.
pub async fn require_key(State(key): State<Option<String>>, req: Request, next: Next) -> Response {
    let Some(key) = key else {
        return next.run(req).await;
    };
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let query = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("key=")));
    let given = bearer.or(query).unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(key.as_bytes())) {
        next.run(req).await
    } else {
        let body = "missing or wrong API key: send `Authorization: Bearer KEY` or open the page as /?key=KEY\n";
        (StatusCode::UNAUTHORIZED, body).into_response()
    }
}
