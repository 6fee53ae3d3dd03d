//! `/log`: the event archive by time range and name pattern, searched by
//! payload with the filter language; `/log/{id}`: one event — payload,
//! tags, keys, trace — and its fan-out: the runs it created, their status,
//! and the waitpoints and children hanging off them.
//!
//! A search reads the archive in pages of 200 in publish order and stops
//! at 50 matches or 5,000 events scanned, whichever comes first, with a
//! cursor to go on: its cost is bounded whatever the archive holds.

use super::param;
use crate::layout::{Ctx, PageError, empty, json_block, short_id, when};
use crate::pages::runs::{clip, table};
use axum::extract::{Path, RawQuery};
use axum::response::Response;
use fanout_engine::Error;
use fanout_engine::model::{RunQuery, now_ms};
use fanout_engine::routing::filter::Filter;
use maud::html;

const SHOW: usize = 50;
const SCAN: usize = 5_000;
const READ: usize = 200;

const SINCE: [(&str, i64); 5] = [
    ("15m", 15 * 60_000),
    ("1h", 3_600_000),
    ("24h", 86_400_000),
    ("7d", 7 * 86_400_000),
    ("30d", 30 * 86_400_000),
];

pub(crate) async fn page(ctx: Ctx, RawQuery(q): RawQuery) -> Result<Response, PageError> {
    let q = q.as_deref();
    let pattern = param(q, "event").unwrap_or_else(|| "#".into());
    let (since, window) = super::since(q, "1h", &SINCE)?;
    let filter_text = param(q, "filter").unwrap_or_default();
    let filter = match filter_text.as_str() {
        "" => None,
        t => Filter::parse(t)
            .map_err(|e| Error::InvalidArgument(format!("filter is invalid: {e}")))?,
    };
    let mut after = match param(q, "after") {
        None => None,
        Some(a) => {
            let (ms, id) = a
                .split_once('_')
                .ok_or_else(|| Error::InvalidArgument("after: expected <ms>_<event id>".into()))?;
            let ms = ms
                .parse::<u64>()
                .map_err(|_| Error::InvalidArgument("after: expected <ms>_<event id>".into()))?;
            Some((ms, id.to_string()))
        }
    };
    let now = now_ms();
    let (from, to) = (now - window, now + 1);
    let mut shown = Vec::new();
    let mut scanned = 0usize;
    let mut exhausted = false;
    while shown.len() < SHOW && scanned < SCAN {
        let page = ctx
            .engine()
            .archived(&ctx.ns, &pattern, from, to, after.clone(), READ)
            .await?;
        if let Some(last) = page.last() {
            after = Some((last.published_at_ms, last.event_id.clone()));
        }
        let n = page.len();
        scanned += n;
        for e in page {
            let keep = match &filter {
                None => true,
                Some(f) => serde_json::from_str(&e.payload).is_ok_and(|v| f.matches(&v)),
            };
            if keep && shown.len() < SHOW {
                shown.push(e);
            }
        }
        if n < READ {
            exhausted = true;
            break;
        }
    }
    let cursor = (!exhausted)
        .then(|| after.map(|(ms, id)| format!("{ms}_{id}")))
        .flatten();
    let body = html! {
        form.filters method="get" {
            input type="hidden" name="ns" value=(ctx.ns);
            label { "event " input name="event" value=(pattern) size="16" title="a name or a pattern: order.*, #"; }
            label { "published " select name="since" { @for (l, _) in SINCE { option value=(l) selected[since == l] { "last " (l) } } } }
            label.grow { "payload filter " input name="filter" value=(filter_text) placeholder=r#"{"amount": [{"numeric": [">", 100]}]}"#; }
            button type="submit" { "Search" }
        }
        p.muted { "Oldest first from the start of the range. Scanned " (scanned) " archived event(s)"
            @if filter.is_some() { ", " (shown.len()) " matched" } "." }
        @if shown.is_empty() { (empty("No archived events in this range match.")) } @else {
            table.log {
                thead { tr { th { "event" } th { "name" } th { "published" } th.num { "runs" } th { "key" } th { "payload" } } }
                tbody { @for e in &shown { tr {
                    td { a href=(ctx.href(&format!("/log/{}", e.event_id), &[])) { (short_id(&e.event_id)) } }
                    td { a href=(ctx.href(&format!("/events/{}", e.event_name), &[])) { (e.event_name) } }
                    td { (when(e.published_at_ms as i64)) }
                    td.num { (e.fan_out_count) }
                    td { code { (e.ordering_key) } }
                    td { code { (clip(&e.payload, 120)) } }
                } } }
            }
        }
        @if let Some(c) = cursor {
            p.pager { a href=(ctx.href("/log", &[("event", &pattern), ("since", &since), ("filter", &filter_text), ("after", &c)])) { "Newer →" } }
        }
    };
    Ok(ctx.page("/log", "Event log", body))
}

pub(crate) async fn event(ctx: Ctx, Path(id): Path<String>) -> Result<Response, PageError> {
    let engine = ctx.engine();
    let e = engine.event_record(&ctx.ns, &id).await?;
    let runs = engine
        .list_runs(
            &ctx.ns,
            &RunQuery {
                event_id: Some(id.clone()),
                limit: 200,
                ..Default::default()
            },
        )
        .await?;
    let mut hanging = Vec::new();
    for r in runs.iter().take(20) {
        for w in engine.waitpoints_of_run(r).await? {
            let kids = if w.event_id.is_empty() {
                Vec::new()
            } else {
                engine
                    .list_runs(
                        &ctx.ns,
                        &RunQuery {
                            event_id: Some(w.event_id.clone()),
                            limit: 100,
                            ..Default::default()
                        },
                    )
                    .await?
            };
            hanging.push((r.id.clone(), w, kids));
        }
    }
    let body = html! {
        dl.facts {
            dt { "name" } dd { a href=(ctx.href(&format!("/events/{}", e.event_name), &[])) { (e.event_name) } " v" (e.version) }
            dt { "published" } dd { (when(e.published_at_ms as i64)) " · " (crate::layout::iso(e.published_at_ms as i64)) }
            dt { "ordering key" } dd { @if e.ordering_key.is_empty() { span.muted { "none" } } @else { code { (e.ordering_key) } } }
            dt { "idempotency key" } dd { @if e.idempotency_key.is_empty() { span.muted { "none" } } @else { code { (e.idempotency_key) } } }
            dt { "tags" } dd { @if e.tags.is_empty() { span.muted { "none" } } @for t in &e.tags { span.tag { (t) } " " } }
            @if !e.publisher_run_id.is_empty() {
                dt { "published by run" } dd { a href=(ctx.href(&format!("/runs/{}", e.publisher_run_id), &[])) { (short_id(&e.publisher_run_id)) } }
            }
            @if !e.traceparent.is_empty() { dt { "trace" } dd { (crate::layout::trace_link(&ctx, &e.traceparent)) } }
        }
        (json_block("payload", &e.payload))
        h2 { "Fan-out: " (runs.len()) " run(s)" }
        (table(&ctx, &runs, false))
        @for (parent, w, kids) in &hanging {
            h2 { "Waitpoint of run " (short_id(parent)) }
            p { (crate::layout::badge(w.status.as_str())) " " (w.kind.as_str()) " · "
                (w.total - w.pending) " of " (w.total) " done" }
            @if !kids.is_empty() { (table(&ctx, kids, false)) }
        }
    };
    Ok(ctx.page("/log", &format!("Event {id}"), body))
}
