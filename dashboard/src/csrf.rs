//! CSRF protection by double submit: every browser gets a random token in
//! an `HttpOnly`, `SameSite=Strict` cookie; every form the console renders
//! carries the same token in a hidden field; an action whose field does not
//! equal the cookie is refused with 403. Another site can neither read the
//! token nor (SameSite=Strict) make the browser send the cookie.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

const COOKIE: &str = "fanout_csrf";

/// This request's token (from its cookie, or new).
#[derive(Clone)]
pub(crate) struct Token(pub String);

/// The value of the cookie `name` in `req`, if sent.
pub(crate) fn read_cookie(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Middleware: find or mint the token, and set the cookie when it is new.
pub(crate) async fn cookie(mut req: Request, next: Next) -> Response {
    let existing = read_cookie(&req, COOKIE)
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()));
    let fresh = existing.is_none();
    let token = existing.unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    req.extensions_mut().insert(Token(token.clone()));
    let mut resp = next.run(req).await;
    if fresh
        && let Ok(v) = HeaderValue::from_str(&format!(
            "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
        ))
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// `submitted` equals the cookie's token (compared in constant time).
pub(crate) fn verify(token: &Token, submitted: Option<&str>) -> bool {
    let Some(s) = submitted else { return false };
    let (a, b) = (token.0.as_bytes(), s.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
