//! `/runs` (filter by status, task, event, ordering key, time; cursor
//! pages) and `/runs/{id}` (attempt timeline, errors, output, journal,
//! waitpoints and their children, parent, the original of a replay, logs).

use super::param;
use crate::layout::{
    Ctx, PageError, duration, empty, flash, json_block, raw, run_badge, short_id, when,
};
use crate::svg::{self, Span};
use axum::extract::{Path, RawQuery};
use axum::response::Response;
use fanout_engine::Error;
use fanout_engine::model::{DlqState, LogQuery, Run, RunQuery, RunStatus, now_ms};
use maud::{Markup, html};

const PAGE: u32 = 50;

/// `since` choices of the filter form: label, window in ms.
const SINCE: [(&str, i64); 5] = [
    ("15m", 15 * 60_000),
    ("1h", 3_600_000),
    ("24h", 86_400_000),
    ("7d", 7 * 86_400_000),
    ("any", 0),
];

/// The runs table shared by `/runs`, `/dlq`, an event's fan-out and a
/// waitpoint's children. `select` adds a checkbox per row (DLQ bulk
/// actions).
pub(crate) fn table(ctx: &Ctx, runs: &[Run], select: bool) -> Markup {
    html! {
        table.runs {
            thead { tr {
                @if select { th { input type="checkbox" data-select-all="ids" aria-label="select all"; } }
                th { "run" } th { "status" } th { "event" } th { "task" } th.num { "attempts" } th { "key" } th { "created" } th { "last error" }
            } }
            tbody {
                @for r in runs {
                    tr {
                        @if select { td { input type="checkbox" name="ids" value=(r.id) aria-label={ "select " (r.id) }; } }
                        td { a href=(ctx.href(&format!("/runs/{}", r.id), &[])) { (short_id(&r.id)) } }
                        td { (run_badge(r.status))
                            @if r.dlq == DlqState::Discarded { " " span.badge.s-discarded { "discarded" } } }
                        td { a href=(ctx.href("/runs", &[("event", &r.event)])) { (r.event) } }
                        td { a href=(ctx.href("/runs", &[("task", &r.task_id)])) { (r.task_id) } }
                        td.num { (r.attempts) "/" (r.max_attempts) }
                        td { @if !r.ordering_key.is_empty() { code { (r.ordering_key) } } }
                        td { (crate::layout::when(r.created_at_ms)) }
                        td.err title=(r.last_error) { (clip(&r.last_error, 120)) }
                    }
                }
            }
        }
        @if runs.is_empty() { (empty("No runs match.")) }
    }
}

/// At most `n` characters of `s`, with an ellipsis when cut.
pub(crate) fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

pub(crate) async fn list(ctx: Ctx, RawQuery(q): RawQuery) -> Result<Response, PageError> {
    let q = q.as_deref();
    let status = match param(q, "status") {
        None => None,
        Some(s) => Some(RunStatus::parse(&s).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "status '{s}' is invalid: expected queued, running, retrying, waiting, completed or dead"
            ))
        })?),
    };
    let (since, window) = super::since(q, "any", &SINCE)?;
    let query = RunQuery {
        event: param(q, "event"),
        event_id: param(q, "event_id"),
        task: param(q, "task"),
        status,
        ordering_key: param(q, "key"),
        error_prefix: None,
        created_from_ms: (window > 0).then(|| now_ms() - window),
        created_to_ms: None,
        before: param(q, "before"),
        limit: PAGE,
    };
    let runs = ctx.engine().list_runs(&ctx.ns, &query).await?;
    let statuses = [
        "",
        "queued",
        "running",
        "retrying",
        "waiting",
        "completed",
        "dead",
    ];
    let current = |k: &str| param(q, k).unwrap_or_default();
    let next = (runs.len() as u32 == PAGE)
        .then(|| runs.last().map(|r| r.id.clone()))
        .flatten();
    let body = html! {
        form.filters method="get" {
            input type="hidden" name="ns" value=(ctx.ns);
            label { "status " select name="status" {
                @for s in statuses { option value=(s) selected[current("status") == s] { @if s.is_empty() { "any" } @else { (s) } } }
            } }
            label { "task " input name="task" value=(current("task")) size="14"; }
            label { "event " input name="event" value=(current("event")) size="14"; }
            label { "event id " input name="event_id" value=(current("event_id")) size="14"; }
            label { "ordering key " input name="key" value=(current("key")) size="10"; }
            label { "created " select name="since" {
                @for (l, _) in SINCE { option value=(l) selected[since == l] { "last " (l) } }
            } }
            button type="submit" { "Filter" }
        }
        @if !current("key").is_empty() && since == "any" {
            p.muted { "An ordering key over all time walks every run of the namespace (about 0.1 s per million on SQLite); pick a time window to bound it." }
        }
        (table(&ctx, &runs, false))
        @if let Some(before) = next {
            p.pager { a href=(ctx.href("/runs", &[
                ("status", &current("status")), ("task", &current("task")), ("event", &current("event")),
                ("event_id", &current("event_id")), ("key", &current("key")), ("since", &since), ("before", &before),
            ])) { "Older →" } }
        }
    };
    Ok(ctx.page("/runs", "Runs", body))
}

pub(crate) async fn one(
    ctx: Ctx,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, PageError> {
    let engine = ctx.engine();
    let d = engine.get_run(&ctx.ns, &id).await?;
    let r = &d.run;
    let now = now_ms();
    let steps = engine.run_steps(r).await?;
    let waitpoints = engine.waitpoints_of_run(r).await?;
    let logs = engine
        .run_logs(
            &ctx.ns,
            &r.id,
            &LogQuery {
                limit: 500,
                ..Default::default()
            },
        )
        .await?;
    let mut children = Vec::new();
    for w in &waitpoints {
        if !w.event_id.is_empty() {
            let q = RunQuery {
                event_id: Some(w.event_id.clone()),
                limit: 100,
                ..Default::default()
            };
            children.push(engine.list_runs(&ctx.ns, &q).await?);
        } else {
            children.push(Vec::new());
        }
    }
    let original = if r.replay_of.is_empty() {
        Vec::new()
    } else {
        let q = RunQuery {
            event_id: Some(r.replay_of.clone()),
            task: Some(r.task_id.clone()),
            limit: 10,
            ..Default::default()
        };
        engine.list_runs(&ctx.ns, &q).await?
    };
    let mut spans: Vec<Span> = d
        .attempts
        .iter()
        .map(|a| Span {
            label: format!("attempt {}", a.attempt),
            start_ms: a.started_at_ms,
            end_ms: a.finished_at_ms,
            class: if a.ok { "ok" } else { "failed" },
        })
        .collect();
    if r.status == RunStatus::Running && d.attempts.iter().all(|a| a.attempt < r.attempts) {
        spans.push(Span {
            label: format!("attempt {}", r.attempts),
            start_ms: r.started_at_ms,
            end_ms: 0,
            class: "running",
        });
    }
    let body = html! {
        (flash(super::param(q.as_deref(), "done").as_deref()))
        dl.facts {
            dt { "status" } dd { (run_badge(r.status)) " " @if r.dlq != DlqState::None { span.muted { "dlq: " (r.dlq.as_str()) } } }
            dt { "task" } dd { a href=(ctx.href("/runs", &[("task", &r.task_id)])) { (r.task_id) } }
            dt { "event" } dd { a href=(ctx.href(&format!("/events/{}", r.event), &[])) { (r.event) } " · "
                a href=(ctx.href(&format!("/log/{}", r.event_id), &[])) { "event " (short_id(&r.event_id)) } }
            dt { "attempts" } dd { (r.attempts) " of " (r.max_attempts) }
            dt { "created" } dd { (when(r.created_at_ms)) }
            dt { "updated" } dd { (when(r.updated_at_ms)) }
            @if matches!(r.status, RunStatus::Queued | RunStatus::Retrying) {
                dt { "next attempt" } dd { (when(r.available_at_ms)) }
            }
            @if !r.ordering_key.is_empty() { dt { "ordering key" } dd { code { (r.ordering_key) } } }
            @if !r.consumer_group.is_empty() { dt { "consumer group" } dd { (r.consumer_group) } }
            @if !r.worker_id.is_empty() { dt { "worker" } dd { code { (r.worker_id) } } }
            @if !d.publisher_run_id.is_empty() {
                dt { "parent run" } dd { a href=(ctx.href(&format!("/runs/{}", d.publisher_run_id), &[])) { (short_id(&d.publisher_run_id)) } " (published this event)" }
            }
            @if !r.waitpoint_id.is_empty() { dt { "child of waitpoint" } dd { code { (r.waitpoint_id) } } }
            @if !r.replay_of.is_empty() {
                dt { "replay of" } dd {
                    a href=(ctx.href(&format!("/log/{}", r.replay_of), &[])) { "event " (short_id(&r.replay_of)) }
                    @for o in &original { " · original run " a href=(ctx.href(&format!("/runs/{}", o.id), &[])) { (short_id(&o.id)) } }
                }
            }
            @if !d.traceparent.is_empty() { dt { "trace" } dd { (crate::layout::trace_link(&ctx, &d.traceparent)) } }
            @if !d.tags.is_empty() { dt { "tags" } dd { @for t in &d.tags { span.tag { (t) } " " } } }
        }
        @if r.dlq == DlqState::InDlq {
            div.actions {
                form method="post" action=(ctx.href("/dlq/retry", &[])) {
                    (ctx.form_fields()) input type="hidden" name="ids" value=(r.id); input type="hidden" name="back" value=(ctx.href(&format!("/runs/{}", r.id), &[]));
                    button.primary type="submit" { "Retry" }
                }
                form method="post" action=(ctx.href("/dlq/discard", &[])) {
                    (ctx.form_fields()) input type="hidden" name="ids" value=(r.id); input type="hidden" name="back" value=(ctx.href(&format!("/runs/{}", r.id), &[]));
                    button.danger type="submit" data-confirm="Discard this dead letter?" { "Discard" }
                }
            }
        }
        h2 { "Attempts" }
        @if spans.is_empty() { (empty("Not attempted yet.")) } @else { (raw(svg::timeline(r.created_at_ms, &spans, now))) }
        @if !d.attempts.is_empty() {
            table {
                thead { tr { th { "#" } th { "outcome" } th { "started" } th { "duration" } th { "worker" } th { "error / output" } } }
                tbody { @for a in &d.attempts { tr {
                    td.num { (a.attempt) }
                    td { @if a.ok { (crate::layout::badge("ok")) } @else { (crate::layout::badge("failed")) } }
                    td { (when(a.started_at_ms)) }
                    td { (duration(a.finished_at_ms - a.started_at_ms)) }
                    td { code { (a.worker_id) } }
                    td { @if a.ok { code { (clip(&a.output_json, 200)) } } @else { pre.err { (a.error) } } }
                } } }
            }
        }
        @if !r.last_error.is_empty() { h2 { "Last error" } pre.err { (r.last_error) } }
        @if r.status == RunStatus::Completed { h2 { "Output" } (json_block("output", &r.output_json)) }
        h2 { "Payload" }
        (json_block("payload", &d.payload_json))
        @if !steps.is_empty() {
            h2 { "Journal" }
            table { thead { tr { th { "step" } th { "recorded" } th { "value" } } }
                tbody { @for s in &steps { tr { td { code { (s.key) } } td { (when(s.created_at_ms)) } td { code { (clip(&s.value_json, 200)) } } } } } }
        }
        @for (w, kids) in waitpoints.iter().zip(&children) {
            h2 { "Waitpoint " code { (w.id) } }
            p { (crate::layout::badge(w.status.as_str())) " " (w.kind.as_str())
                " · " (w.total - w.pending) " of " (w.total) " done · created " (when(w.created_at_ms)) }
            @if !kids.is_empty() { (table(&ctx, kids, false)) }
        }
        h2 { "Logs" }
        @if logs.is_empty() { (empty("The handler logged nothing.")) } @else {
            pre.logs { @for l in &logs {
                span class={ "lvl-" (l.line.level.as_str()) } { "#" (l.attempt) " " (crate::layout::iso(l.line.at_ms)) " " (l.line.level.as_str()) " " (l.line.message)
                    @if !l.line.fields_json.is_empty() { " " span.muted { (l.line.fields_json) } } }
                "\n"
            } }
        }
    };
    Ok(ctx.page("/runs", &format!("Run {}", r.id), body))
}
