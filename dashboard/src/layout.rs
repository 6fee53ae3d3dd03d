//! The page shell (navigation, namespace, live-update hook, exposure
//! warning) and the small renderers every page shares: times, statuses,
//! JSON, links that keep the namespace and the base path.

use crate::App;
use crate::csrf::Token;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use fanout_engine::Error;
use fanout_engine::model::{RunStatus, now_ms};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The namespace in a query or form, checked: when absent, the session
/// key's own (a key bound to one) or `default`; a bound key naming another
/// is refused.
pub(crate) fn namespace(given: Option<&str>) -> Result<String, PageError> {
    let given = given.map(str::trim).filter(|s| !s.is_empty());
    if let Some(ns) = given {
        fanout_engine::routing::schema::check_identifier("ns", ns)?;
    }
    let who = fanout_engine::auth::caller();
    let ns = match &who {
        Some(p) => p.namespace_for(given)?,
        None => given,
    };
    Ok(ns.unwrap_or(fanout_proto::DEFAULT_NAMESPACE).to_string())
}

/// What a page needs to render links, forms and the shell.
pub(crate) struct Ctx {
    pub app: App,
    pub ns: String,
    pub csrf: String,
}

impl<S> FromRequestParts<S> for Ctx
where
    App: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        let State(app) = State::<App>::from_request_parts(parts, state)
            .await
            .map_err(|_| PageError::from(Error::Internal("console state missing".into())))?;
        let ns_param = parts.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "ns")
                .map(|(_, v)| v.into_owned())
        });
        let ns = namespace(ns_param.as_deref())?;
        let csrf = parts
            .extensions
            .get::<Token>()
            .map(|t| t.0.clone())
            .unwrap_or_default();
        Ok(Ctx { app, ns, csrf })
    }
}

impl Ctx {
    pub fn engine(&self) -> &fanout_engine::Engine {
        &self.app.engine
    }

    /// `path` under the base path, with the namespace kept (when not
    /// `default`) and `query` pairs appended (empty values dropped).
    pub fn href(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if self.ns != fanout_proto::DEFAULT_NAMESPACE {
            s.append_pair("ns", &self.ns);
        }
        for (k, v) in query {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        let q = s.finish();
        let base = &self.app.opts.base_path;
        if q.is_empty() {
            format!("{base}{path}")
        } else {
            format!("{base}{path}?{q}")
        }
    }

    /// Where an action in `ns` sends the browser after it: `path` under
    /// the base path with the namespace and a `done` line to show.
    pub fn done_href(&self, ns: &str, path: &str, done: &str) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if ns != fanout_proto::DEFAULT_NAMESPACE {
            s.append_pair("ns", ns);
        }
        s.append_pair("done", done);
        format!("{}{path}?{}", self.app.opts.base_path, s.finish())
    }

    /// Hidden fields every form carries: the CSRF token and namespace.
    pub fn form_fields(&self) -> Markup {
        html! {
            input type="hidden" name="csrf" value=(self.csrf);
            input type="hidden" name="ns" value=(self.ns);
        }
    }

    /// The whole page: `title`, the navigation with `current` marked, and
    /// `body` inside `<main>`.
    pub fn page(&self, current: &str, title: &str, body: Markup) -> Response {
        let base = &self.app.opts.base_path;
        let keys = self.app.engine.keyring().required();
        let who = fanout_engine::auth::caller();
        let who_name = who.as_ref().map(|p| p.name.clone()).unwrap_or_default();
        // A read-only key sees no action forms (they would be refused).
        let can_act = who.is_none_or(|p| p.has(fanout_engine::model::Scope::Admin));
        let nav = [
            ("/", "Overview"),
            ("/events", "Events"),
            ("/log", "Log"),
            ("/runs", "Runs"),
            ("/dlq", "DLQ"),
            ("/replays", "Replays"),
            ("/waitpoints", "Waitpoints"),
            ("/workers", "Workers"),
            ("/audit", "Audit"),
        ];
        let markup = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · Fanout" }
                    link rel="stylesheet" href={ (base) "/assets/app.css" };
                    script src={ (base) "/assets/app.js" } defer {}
                }
                body data-live={ (base) "/live?ns=" (self.ns) } class=[(!can_act).then_some("readonly")] {
                    header.top {
                        a.brand href=(self.href("/", &[])) { "fanout" }
                        nav {
                            @for (path, label) in nav {
                                a href=(self.href(path, &[]))
                                  class=[(path == current).then_some("current")]
                                  accesskey=(label.chars().next().unwrap_or('x').to_ascii_lowercase()) { (label) }
                            }
                        }
                        form.ns method="get" action="" {
                            label { "namespace " input name="ns" value=(self.ns) size="12"; }
                        }
                        span.live-dot title="live updates" {}
                        @if keys {
                            form.logout method="post" action={ (base) "/logout" } {
                                span.who { (who_name) }
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                    @if self.app.opts.exposed && !keys {
                        p.warning role="alert" {
                            "Auth is disabled and this console is reachable from other hosts: anyone who can reach this port can retry, discard and replay. Start the engine with API keys required (fanout serve does by default) or bind the HTTP listener to 127.0.0.1."
                        }
                    }
                    main #content {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        };
        ([(axum::http::header::CACHE_CONTROL, "no-store")], markup).into_response()
    }
}

/// An error as a page: the engine error's HTTP status and message.
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    pub fn forbidden(message: &str) -> Self {
        PageError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
}

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        PageError {
            status: e.http_status(),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = html! {
            (DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { "Error · Fanout" } }
                body {
                    main {
                        h1 { (self.status.as_u16()) " " (self.status.canonical_reason().unwrap_or("")) }
                        p.error { (self.message) }
                        p { a href="javascript:history.back()" { "Back" } }
                    }
                }
            }
        };
        (self.status, body).into_response()
    }
}

/// An instant as "3 min ago" with the absolute UTC time on hover (and in
/// `datetime`). 0 renders as a dash.
pub(crate) fn when(ms: i64) -> Markup {
    if ms <= 0 {
        return html! { span.muted { "—" } };
    }
    html! { time datetime=(iso(ms)) title=(iso(ms)) { (relative(ms, now_ms())) } }
}

/// RFC 3339 in UTC, to the millisecond.
pub(crate) fn iso(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// `ms` relative to `now`: "12 s ago", "in 3 min".
pub(crate) fn relative(ms: i64, now: i64) -> String {
    let d = now - ms;
    let (ahead, d) = (d < 0, d.unsigned_abs() / 1000);
    let text = match d {
        0 => return "just now".into(),
        1..=59 => format!("{d} s"),
        60..=3599 => format!("{} min", d / 60),
        3600..=86_399 => format!("{} h", d / 3600),
        _ => format!("{} d", d / 86_400),
    };
    if ahead {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// A duration in ms as "850 ms", "3.2 s", "4 min".
pub(crate) fn duration(ms: i64) -> String {
    match ms.max(0) {
        ms @ 0..=999 => format!("{ms} ms"),
        ms @ 1000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        ms @ 60_000..=3_599_999 => format!("{:.1} min", ms as f64 / 60_000.0),
        ms => format!("{:.1} h", ms as f64 / 3_600_000.0),
    }
}

/// A status as a coloured badge.
pub(crate) fn badge(status: &str) -> Markup {
    html! { span class={ "badge s-" (status) } { (status) } }
}

/// A run status badge.
pub(crate) fn run_badge(s: RunStatus) -> Markup {
    badge(s.as_str())
}

/// JSON text pretty-printed in a collapsible block (`open` when short).
pub(crate) fn json_block(label: &str, text: &str) -> Markup {
    if text.is_empty() {
        return html! { p.muted { (label) ": none" } };
    }
    let pretty = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_string());
    let open = pretty.lines().count() <= 30;
    html! {
        details.json open[open] {
            summary { (label) " " span.muted { "(" (text.len()) " bytes)" } }
            pre { code { (pretty) } }
        }
    }
}

/// A short id for tables (the full id on hover).
pub(crate) fn short_id(id: &str) -> Markup {
    let tail = id.get(id.len().saturating_sub(12)..).unwrap_or(id);
    html! { code title=(id) { "…" (tail) } }
}

/// The trace UI's address for a W3C `traceparent`: `template` with
/// `{trace_id}` replaced; `None` without a template or a valid trace id.
pub(crate) fn trace_href(template: &str, traceparent: &str) -> Option<String> {
    let id = traceparent
        .split('-')
        .nth(1)
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))?;
    (!template.is_empty()).then(|| template.replace("{trace_id}", id))
}

/// A `traceparent` (stored when the engine traces) as a link to the trace
/// (`dashboard.trace_url`), or as text when no trace UI is configured.
pub(crate) fn trace_link(ctx: &Ctx, traceparent: &str) -> Markup {
    match trace_href(&ctx.engine().config().dashboard.trace_url, traceparent) {
        Some(href) => {
            html! { a href=(href) target="_blank" rel="noopener" { "open trace" } " " code { (traceparent) } }
        }
        None => html! { code { (traceparent) } },
    }
}

/// A message when a list is empty.
pub(crate) fn empty(text: &str) -> Markup {
    html! { p.empty { (text) } }
}

/// A flash line from a `done` query parameter (after an action redirect).
pub(crate) fn flash(done: Option<&str>) -> Markup {
    match done {
        Some(text) if !text.is_empty() => html! { p.flash role="status" { (text) } },
        _ => html! {},
    }
}

/// Raw HTML known to be safe (our own SVG).
pub(crate) fn raw(s: String) -> PreEscaped<String> {
    PreEscaped(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_links_need_a_template_and_a_trace_id() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_href("http://jaeger:16686/trace/{trace_id}", tp).as_deref(),
            Some("http://jaeger:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_href("", tp), None);
        assert_eq!(trace_href("http://x/{trace_id}", "00-nothex-01"), None);
    }

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative(1_000, 1_000), "just now");
        assert_eq!(relative(0, 90_000), "1 min ago");
        assert_eq!(relative(7_200_000, 0), "in 2 h");
        assert_eq!(duration(1_500), "1.5 s");
    }
}
