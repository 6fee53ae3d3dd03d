//! Who is using the console. With auth off (`fanout dev`) everyone is the
//! anonymous admin. With keys required, `/login` takes an API key (typed,
//! or from a login link made by `fanout dashboard login`) and keeps it in
//! an `HttpOnly`, `SameSite=Strict` cookie scoped to the console's path:
//! every request is checked against the engine's keyring like an API call,
//! so revoking or expiring the key ends the session within seconds.
//! Pages need `read`, actions (every POST but login/logout) need `admin`;
//! a key bound to a namespace sees only that namespace
//! (`layout::namespace` asks the caller). Requests run as the key
//! (`auth::acting_as`), so the audit log names it.

use crate::App;
use crate::layout::PageError;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fanout_engine::auth::{self, Principal};
use fanout_engine::model::Scope;
use std::sync::Arc;

const COOKIE: &str = "fanout_session";
/// How long the browser keeps the session cookie (the key's own expiry
/// ends it sooner).
const MAX_AGE_S: u64 = 12 * 3600;

/// The caller of a console request: anonymous with auth off, else the key
/// in the session cookie.
fn caller(app: &App, key: Option<&str>) -> Result<Arc<Principal>, fanout_engine::Error> {
    let keyring = app.engine.keyring();
    if !keyring.required() {
        return Ok(Principal::anonymous());
    }
    let header = key.map(|k| format!("Bearer {k}"));
    keyring.authenticate(header.as_deref().map(str::as_bytes))
}

/// Middleware over every console route.
pub(crate) async fn guard(State(app): State<App>, req: Request, next: Next) -> Response {
    let base = app.opts.base_path.clone();
    let path = req
        .uri()
        .path()
        .strip_prefix(base.as_str())
        .unwrap_or(req.uri().path())
        .to_string();
    if path.starts_with("/assets/") || path == "/login" || path == "/logout" {
        return next.run(req).await;
    }
    let who = match caller(&app, crate::csrf::read_cookie(&req, COOKIE).as_deref()) {
        Ok(p) => p,
        Err(_) if req.method() == Method::GET => {
            return crate::pages::see_other(&format!("{base}/login"));
        }
        Err(e) => return PageError::from(e).into_response(),
    };
    let (need, what) = if req.method() == Method::GET {
        (Scope::Read, "the console's pages")
    } else {
        (Scope::Admin, "console actions")
    };
    if let Err(e) = who.require(&[need], what) {
        return PageError::from(e).into_response();
    }
    auth::acting_as(who, next.run(req)).await
}

/// `GET /login`: the form, or a login link's `?key=` (set as the session,
/// then away from the URL).
pub(crate) async fn page(State(app): State<App>, req: Request) -> Response {
    let base = app.opts.base_path.clone();
    if let Some(key) = crate::pages::param(req.uri().query(), "key") {
        return start(&app, &key);
    }
    let token = req
        .extensions()
        .get::<crate::csrf::Token>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    let body = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Log in · Fanout" }
                link rel="stylesheet" href={ (base) "/assets/app.css" };
            }
            body {
                main.login {
                    h1 { "fanout" }
                    p { "This engine requires an API key. Paste one with scope "
                        code { "read" } " (and " code { "admin" } " to act), or open a link from "
                        code { "fanout dashboard login" } "." }
                    form method="post" action={ (base) "/login" } {
                        input type="hidden" name="csrf" value=(token);
                        label { "API key " input type="password" name="key" autocomplete="off" size="48" autofocus; }
                        button type="submit" { "Log in" }
                    }
                }
            }
        }
    };
    body.into_response()
}

/// `POST /login` with `key` (and the CSRF field).
pub(crate) async fn submit(State(app): State<App>, req: Request) -> Response {
    let token = req.extensions().get::<crate::csrf::Token>().cloned();
    let Ok(bytes) = axum::body::to_bytes(req.into_body(), 64 * 1024).await else {
        return PageError::from(fanout_engine::Error::BodyTooLarge { limit: 64 * 1024 })
            .into_response();
    };
    let Some(token) = token else {
        return PageError::forbidden("no CSRF token").into_response();
    };
    let fields = match crate::form::Fields::verified(&bytes, &token) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    match fields.text("key") {
        Some(key) => start(&app, &key),
        None => PageError::from(fanout_engine::Error::InvalidArgument(
            "key: an API key is required".into(),
        ))
        .into_response(),
    }
}

/// Check `key` and, if it may read, set it as the session.
fn start(app: &App, key: &str) -> Response {
    let who = match caller(app, Some(key.trim())) {
        Ok(p) => p,
        Err(e) => return PageError::from(e).into_response(),
    };
    if let Err(e) = who.require(&[Scope::Read], "the console") {
        return PageError::from(e).into_response();
    }
    let base = &app.opts.base_path;
    let mut resp = crate::pages::see_other(&format!("{base}/"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}={}; Path={}/; Max-Age={MAX_AGE_S}; HttpOnly; SameSite=Strict{}",
        key.trim(),
        base,
        if app.opts.secure { "; Secure" } else { "" }
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// `POST /logout`: forget the session.
pub(crate) async fn logout(State(app): State<App>) -> Response {
    let base = &app.opts.base_path;
    let mut resp = crate::pages::see_other(&format!("{base}/login"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}=; Path={base}/; Max-Age=0; HttpOnly; SameSite=Strict"
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}
