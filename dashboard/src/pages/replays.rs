//! `/replays`: start a replay (range, pattern, tasks, filter) — a dry run
//! counts what it would create first —, follow progress live, cancel.

use super::{param, see_other};
use crate::csrf::Token;
use crate::form::Fields;
use crate::layout::{Ctx, PageError, badge, empty, flash, iso, when};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::response::Response;
use fanout_engine::Error;
use fanout_engine::model::{ReplayStatus, now_ms};
use fanout_engine::replay::ReplayRequest;
use maud::html;

/// An instant typed by a person: `now`, `-15m` / `-2h` / `-7d` (before
/// now), RFC 3339, or `YYYY-MM-DDTHH:MM` (UTC, as a datetime-local input
/// sends it).
pub(crate) fn parse_instant(field: &str, text: &str, now: i64) -> Result<i64, Error> {
    let t = text.trim();
    let bad = || {
        Error::InvalidArgument(format!(
            "{field}: '{t}' is not a time: expected now, -15m, -2h, -7d, 2026-11-30T09:30 (UTC) or RFC 3339"
        ))
    };
    if t == "now" {
        return Ok(now);
    }
    if let Some(rel) = t.strip_prefix('-') {
        let (n, unit) = rel.split_at(rel.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
        let n: i64 = n.parse().map_err(|_| bad())?;
        let ms = match unit {
            "s" => 1_000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        return Ok(now - n.saturating_mul(ms));
    }
    let full = if t.len() == 16 {
        format!("{t}:00Z")
    } else {
        t.to_string()
    };
    time::OffsetDateTime::parse(&full, &time::format_description::well_known::Rfc3339)
        .map(|d| (d.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| bad())
}

pub(crate) async fn page(ctx: Ctx, RawQuery(q): RawQuery) -> Result<Response, PageError> {
    let jobs = ctx.engine().list_replays(&ctx.ns, 50).await?;
    let body = html! {
        (flash(param(q.as_deref(), "done").as_deref()))
        h2 { "Start a replay" }
        form.stack method="post" action=(ctx.href("/replays", &[])) {
            (ctx.form_fields())
            div.row {
                label { "event or pattern " input name="event" value="#" size="16" required; }
                label { "from " input name="from" value="-1h" size="18"; }
                label { "to " input name="to" value="now" size="18"; }
            }
            label { "only these tasks (comma-separated; empty: every subscriber) " input name="tasks" size="40"; }
            label { "payload filter (optional) " textarea name="filter" rows="2" {} }
            label.check { input type="checkbox" name="skip_already_replayed" value="1"; " skip events already replayed to a task" }
            div.actions {
                button type="submit" name="dry_run" value="1" { "Dry run (count only)" }
                button.primary type="submit" name="dry_run" value="0" data-confirm="Start the replay? Runs will be created for today's subscribers." { "Start replay" }
            }
        }
        h2 { "Jobs" }
        @if jobs.is_empty() { (empty("No replays yet.")) } @else {
            table.replays {
                thead { tr { th { "job" } th { "state" } th { "events" } th { "range" } th { "progress" } th.num { "replayed" } th.num { "runs" } th { "started" } th {} } }
                tbody { @for j in &jobs { tr id={ "replay-" (j.id) } {
                    td { code title=(j.id) { (crate::layout::short_id(&j.id)) } @if j.dry_run { " " (badge("dry-run")) } }
                    td { (badge(j.status.as_str())) @if !j.error.is_empty() { " " span.err { (j.error) } } }
                    td { code { (j.event_pattern) } @if !j.tasks.is_empty() { " → " (j.tasks.join(", ")) } }
                    td { (iso(j.from_ms)) " → " (iso(j.to_ms)) }
                    td { @let total = j.events_total.max(j.events_scanned).max(1);
                        progress max=(total) value=(j.events_scanned) {} " " (j.events_scanned) " / " (j.events_total) }
                    td.num.replayed { (j.events_replayed) }
                    td.num.runs-created { (j.runs_created)
                        @if j.dry_run && !j.by_task.is_empty() { br; span.muted { @for (t, n) in &j.by_task { (t) ": " (n) " " } } } }
                    td { (when(j.created_at_ms)) }
                    td { @if j.status == ReplayStatus::Running {
                        form method="post" action=(ctx.href(&format!("/replays/{}/cancel", j.id), &[])) {
                            (ctx.form_fields()) button.danger type="submit" { "Cancel" }
                        }
                    } }
                } } }
            }
        }
    };
    Ok(ctx.page("/replays", "Replays", body))
}

pub(crate) async fn start(
    ctx: Ctx,
    Extension(t): Extension<Token>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = Fields::verified(&body, &t)?;
    let ns = f.namespace()?;
    let now = now_ms();
    let req = ReplayRequest {
        event_pattern: f.required("event", "an event name or pattern")?,
        from_ms: parse_instant("from", &f.required("from", "a start time")?, now)?,
        to_ms: parse_instant("to", &f.text("to").unwrap_or_else(|| "now".into()), now)?,
        tasks: f
            .text("tasks")
            .map(|t| {
                t.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        filter_json: f.text("filter").unwrap_or_default(),
        dry_run: f.flag("dry_run"),
        rate_per_sec: 0.0,
        skip_already_replayed: f.flag("skip_already_replayed"),
    };
    let job = ctx.engine().start_replay(&ns, req).await?;
    let done = format!(
        "{} {} started",
        if job.dry_run { "Dry run" } else { "Replay" },
        job.id
    );
    Ok(see_other(&ctx.done_href(&ns, "/replays", &done)))
}

pub(crate) async fn cancel(
    ctx: Ctx,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = Fields::verified(&body, &t)?;
    let ns = f.namespace()?;
    let job = ctx.engine().cancel_replay(&ns, &id).await?;
    let done = format!("Replay {} is {}", job.id, job.status.as_str());
    Ok(see_other(&ctx.done_href(&ns, "/replays", &done)))
}
