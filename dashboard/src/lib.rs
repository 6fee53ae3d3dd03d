//! Fanout's operator console: the pages an on-call engineer opens first.
//!
//! An axum [`Router`] over the engine's public API ([`Engine`]'s methods,
//! never its store), mounted by the engine's HTTP listener beside `/api/v1`
//! (see [`mount`]). Pages are rendered on the server with `maud` (checked at
//! compile time) and read fully without JavaScript; actions are HTML form
//! POSTs carrying a CSRF token, and each one calls the same engine method as
//! its documented API route (`docs/openapi.yaml`). A small script of ours
//! (`assets/app.js`) listens to `/live` (server-sent events) and refreshes
//! the page's content when something changed. Charts are SVG drawn here.
//!
//! When the engine requires API keys, the console does too: `session`
//! logs a browser in with a key (kept in an `HttpOnly`, `SameSite=Strict`
//! cookie and checked on every request), pages need `read` and actions
//! `admin`. With auth off it is as reachable as the HTTP listener and says
//! so on every page when the listener is bound beyond loopback.
//!
//! Map: [`pages`] (one module per top-level path), `layout` (the shell and
//! small renderers), `session`, `csrf`, `form`, `live`, `svg`.

mod assets;
mod cache;
mod csrf;
mod form;
mod layout;
mod live;
pub mod pages;
mod session;
mod svg;

use axum::Router;
use axum::routing::{get, post};
use fanout_engine::Engine;
use std::net::SocketAddr;
use std::sync::Arc;

/// How the console is served.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A prefix the console is served under behind a proxy (`/fanout`);
    /// empty: at `/`.
    pub base_path: String,
    /// The HTTP listener is reachable from other hosts (not loopback):
    /// with auth off every page says so.
    pub exposed: bool,
    /// Served over TLS: the session cookie is `Secure`.
    pub secure: bool,
}

impl Options {
    /// Options for a console at `base_path` on a listener bound to `listen`.
    pub fn new(base_path: &str, listen: SocketAddr) -> Self {
        Options {
            base_path: normalize_base(base_path),
            exposed: !listen.ip().is_loopback(),
            secure: false,
        }
    }
}

/// `""` or `/prefix` without a trailing slash.
fn normalize_base(base: &str) -> String {
    let trimmed = base.trim().trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

/// What every handler holds.
#[derive(Clone)]
pub(crate) struct App {
    pub engine: Engine,
    pub opts: Arc<Options>,
    /// The overview's numbers, shared by every open page.
    pub overviews: Arc<cache::Overviews>,
}

/// The console as a mount for [`fanout_engine::Listeners::mount`].
pub fn mount(opts: Options) -> fanout_engine::api::http::Mount {
    Box::new(move |engine| router(engine, opts))
}

/// The console's routes (paths are part of the contract; see the README).
pub fn router(engine: Engine, opts: Options) -> Router {
    let base = opts.base_path.clone();
    let refresh = std::time::Duration::from_millis(engine.config().metrics_refresh_ms.max(1_000));
    let app = App {
        engine,
        opts: Arc::new(opts),
        overviews: Arc::new(cache::Overviews::new(refresh)),
    };
    use pages::*;
    let pages = Router::new()
        .route("/", get(overview::page))
        .route("/events", get(events::list))
        .route("/events/{name}", get(events::one))
        .route("/log", get(log::page))
        .route("/log/{id}", get(log::event))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::one))
        .route("/dlq", get(dlq::page))
        .route("/dlq/retry", post(dlq::retry))
        .route("/dlq/discard", post(dlq::discard))
        .route("/replays", get(replays::page).post(replays::start))
        .route("/replays/{id}/cancel", post(replays::cancel))
        .route("/waitpoints", get(waitpoints::page))
        .route("/waitpoints/{id}/complete", post(waitpoints::complete))
        .route("/subscriptions/{task}/pause", post(events::pause))
        .route("/subscriptions/{task}/resume", post(events::resume))
        .route("/workers", get(workers::page))
        .route("/audit", get(audit::page))
        .route("/live", get(live::stream))
        .route("/assets/app.css", get(assets::css))
        .route("/assets/app.js", get(assets::js))
        .route("/login", get(session::page).post(session::submit))
        .route("/logout", post(session::logout))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            session::guard,
        ))
        .layer(axum::middleware::from_fn(csrf::cookie))
        .with_state(app);
    if base.is_empty() {
        pages
    } else {
        Router::new().nest(&base, pages)
    }
}
