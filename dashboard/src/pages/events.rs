//! `/events` (every definition, its subscribers and settings, a filter
//! test box) and `/events/{name}` (every version's schema, the diff
//! between two versions, subscribers, recent events). Pausing and resuming
//! a subscription are POSTs here.

use super::{param, see_other};
use crate::csrf::Token;
use crate::form::Fields;
use crate::layout::{Ctx, PageError, badge, duration, empty, flash, json_block, short_id, when};
use crate::pages::runs::clip;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::response::Response;
use fanout_engine::Engine;
use fanout_engine::model::{EventDef, Subscription};
use fanout_engine::routing::pattern;
use fanout_engine::storage::EventQuery;
use maud::{Markup, html};

/// Subscriptions whose event (a name or a pattern) covers `name`.
fn subscribers<'a>(subs: &'a [Subscription], name: &str) -> Vec<&'a Subscription> {
    subs.iter()
        .filter(|s| s.event == name || pattern::matches(&s.event, name))
        .collect()
}

fn subs_table(ctx: &Ctx, subs: &[&Subscription]) -> Markup {
    html! {
        @if subs.is_empty() { (empty("No subscribers: publishes are stored and archived, and create no runs.")) } @else {
            table.subs {
                thead { tr { th { "subscriber" } th { "on" } th { "filter" } th { "group" } th { "retry" } th { "state" } th {} } }
                tbody { @for s in subs { tr {
                    td {
                        a href=(ctx.href("/runs", &[("task", &s.task_id)])) { (s.task_id) }
                        @if let Some(ep) = &s.endpoint { br; span.muted { "POST " (clip(&ep.url, 80)) } }
                    }
                    td { code { (s.event) } }
                    td { @if s.filter_json.is_empty() { span.muted { "all" } } @else { code { (clip(&s.filter_json, 120)) } } }
                    td { (s.consumer_group) }
                    td { (s.retry.max_attempts) " attempts, " (duration(s.retry.initial_backoff_ms as i64)) "…" (duration(s.retry.max_backoff_ms as i64)) " ×" (s.retry.multiplier) }
                    td { (badge(s.state.as_str())) }
                    td {
                        form method="post" action=(ctx.href(&format!("/subscriptions/{}/{}", s.task_id, if s.paused() { "resume" } else { "pause" }), &[])) {
                            (ctx.form_fields())
                            input type="hidden" name="back" value=(ctx.href("/events", &[]));
                            button type="submit" { @if s.paused() { "Resume" } @else { "Pause" } }
                        }
                    }
                } } }
            }
        }
    }
}

fn options(def: &EventDef) -> Markup {
    html! {
        span { "DLQ " @if def.options.dlq { "on" } @else { "off" } }
        @if let Some(rl) = &def.options.rate_limit {
            " · rate limit " (rl.limit) " per " (duration(rl.window_ms as i64))
            @if !rl.key_field.is_empty() { " per " code { (rl.key_field) } }
        }
    }
}

pub(crate) async fn list(ctx: Ctx, RawQuery(q): RawQuery) -> Result<Response, PageError> {
    let q = q.as_deref();
    let engine = ctx.engine();
    let defs = engine.list_events(&ctx.ns).await?;
    let subs = engine.list_subscriptions(&ctx.ns).await?;
    let (pat, payload) = (
        param(q, "pattern").unwrap_or_default(),
        param(q, "payload").unwrap_or_default(),
    );
    let tested =
        (!pat.is_empty() && !payload.is_empty()).then(|| Engine::test_filter(&pat, &payload));
    let body = html! {
        (flash(param(q, "done").as_deref()))
        @if defs.is_empty() { (empty("No events defined in this namespace yet (fanout events define, or Event::define in the SDK).")) }
        @for d in &defs {
            section.event {
                h2 { a href=(ctx.href(&format!("/events/{}", d.name), &[])) { (d.name) } " " span.muted { "v" (d.version) } }
                @if !d.description.is_empty() { p { (d.description) } }
                p.muted { (options(d)) " · defined " (when(d.created_at_ms)) }
                (subs_table(&ctx, &subscribers(&subs, &d.name)))
            }
        }
        h2 #filter-test { "Test a filter" }
        form.stack method="get" action=(ctx.href("/events", &[])) {
            input type="hidden" name="ns" value=(ctx.ns);
            label { "pattern (EventBridge or $ operators) " textarea name="pattern" rows="4" { (pat) } }
            label { "payload " textarea name="payload" rows="4" { (payload) } }
            button type="submit" { "Test" }
        }
        @match tested {
            Some(Ok(true)) => p.result.ok #filter-result { "matches" },
            Some(Ok(false)) => p.result.no #filter-result { "does not match" },
            Some(Err(e)) => p.result.error #filter-result { (e.to_string()) },
            None => {},
        }
    };
    Ok(ctx.page("/events", "Events", body))
}

pub(crate) async fn one(
    ctx: Ctx,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let q = q.as_deref();
    let engine = ctx.engine();
    let latest = engine.get_event(&ctx.ns, &name, None).await?;
    let mut versions = Vec::new();
    // Newest first; at most 50 versions are shown.
    for v in (latest.version.saturating_sub(49).max(1)..=latest.version).rev() {
        if let Ok(d) = engine.get_event(&ctx.ns, &name, Some(v)).await {
            versions.push(d);
        }
    }
    let subs = engine.list_subscriptions(&ctx.ns).await?;
    let recent = engine
        .event_records(
            &ctx.ns,
            &EventQuery {
                name: Some(name.clone()),
                before: param(q, "before"),
                limit: 25,
            },
        )
        .await?;
    let pick = |k: &str, default: u32| {
        param(q, k)
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(default)
    };
    let to = pick("to", latest.version);
    let from = pick("from", to.saturating_sub(1));
    let schema = |v: u32| {
        versions
            .iter()
            .find(|d| d.version == v)
            .map(|d| pretty(&d.schema_json))
    };
    let body = html! {
        p.muted { (options(&latest)) }
        @if !latest.description.is_empty() { p { (latest.description) } }
        h2 { "Subscribers" }
        (subs_table(&ctx, &subscribers(&subs, &name)))
        h2 { "Schema versions" }
        @for d in &versions {
            (json_block(&format!("v{} · {}", d.version, crate::layout::iso(d.created_at_ms)), &d.schema_json))
        }
        @if versions.len() > 1 {
            h2 #diff { "Diff" }
            form.filters method="get" {
                input type="hidden" name="ns" value=(ctx.ns);
                label { "from v" input name="from" value=(from) size="3"; }
                label { "to v" input name="to" value=(to) size="3"; }
                button type="submit" { "Compare" }
            }
            @match (schema(from), schema(to)) {
                (Some(a), Some(b)) => (diff(&a, &b)),
                _ => p.muted { "Pick two versions between 1 and " (latest.version) "." },
            }
        }
        h2 { "Recent events" }
        @if recent.is_empty() { (empty("None stored.")) } @else {
            table { thead { tr { th { "event" } th { "published" } th.num { "runs" } th { "key" } th { "payload" } } }
                tbody { @for e in &recent { tr {
                    td { a href=(ctx.href(&format!("/log/{}", e.event_id), &[])) { (short_id(&e.event_id)) } }
                    td { (when(e.published_at_ms as i64)) }
                    td.num { (e.fan_out_count) }
                    td { code { (e.ordering_key) } }
                    td { code { (clip(&e.payload, 100)) } }
                } } } }
            @if recent.len() == 25 { @if let Some(last) = recent.last() {
                p.pager { a href=(ctx.href(&format!("/events/{name}"), &[("before", &last.event_id)])) { "Older →" } }
            } }
        }
    };
    Ok(ctx.page("/events", &format!("Event {name}"), body))
}

fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_string())
}

/// A line diff of two pretty-printed schemas.
fn diff(a: &str, b: &str) -> Markup {
    let d = similar::TextDiff::from_lines(a, b);
    html! {
        pre.diff { @for c in d.iter_all_changes() {
            @match c.tag() {
                similar::ChangeTag::Delete => del { "- " (c.value()) },
                similar::ChangeTag::Insert => ins { "+ " (c.value()) },
                similar::ChangeTag::Equal => span { "  " (c.value()) },
            }
        } }
    }
}

pub(crate) async fn pause(
    ctx: Ctx,
    Extension(t): Extension<Token>,
    Path(task): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    set_paused(ctx, t, task, body, true).await
}

pub(crate) async fn resume(
    ctx: Ctx,
    Extension(t): Extension<Token>,
    Path(task): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    set_paused(ctx, t, task, body, false).await
}

async fn set_paused(
    ctx: Ctx,
    token: Token,
    task: String,
    body: Bytes,
    paused: bool,
) -> Result<Response, PageError> {
    let f = Fields::verified(&body, &token)?;
    let ns = f.namespace()?;
    ctx.engine().set_paused(&ns, &task, paused).await?;
    let done = format!("{task} {}", if paused { "paused" } else { "resumed" });
    Ok(see_other(&ctx.done_href(&ns, "/events", &done)))
}
