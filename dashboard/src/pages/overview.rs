//! `/`: the last hour at a glance — activity chart, runs by status, the
//! queue per task (due backlog, oldest due run), DLQ depth, archive
//! backlog, workers, replays.

use crate::layout::{Ctx, PageError, duration, raw, run_badge};
use crate::svg;
use axum::response::Response;
use fanout_engine::model::now_ms;
use maud::html;

pub(crate) async fn page(ctx: Ctx) -> Result<Response, PageError> {
    let now = now_ms();
    let (o, computed) = ctx.app.overviews.get(ctx.engine(), &ctx.ns).await?;
    let minutes = ctx.engine().activity().minutes(now);
    let hour = |f: fn(&fanout_engine::activity::Minute) -> u64| minutes.iter().map(f).sum::<u64>();
    let body = html! {
        section.cards {
            div.card { span.k { "Published (1 h)" } span.v { (hour(|m| m.published)) } }
            div.card { span.k { "Completed (1 h)" } span.v { (hour(|m| m.completed)) } }
            div.card { span.k { "Failed attempts (1 h)" } span.v { (hour(|m| m.failed)) } }
            div.card.alert[o.dlq_depth > 0] {
                span.k { "DLQ depth" }
                a.v href=(ctx.href("/dlq", &[])) { (o.dlq_depth) }
            }
            div.card { span.k { "Archive backlog" } span.v { (o.archive_backlog) }
                @if let Some(oldest) = o.oldest_unarchived_ms { span.sub { "oldest " (duration(now - oldest)) } } }
            div.card { span.k { "Workers" } a.v href=(ctx.href("/workers", &[])) { (o.workers) } }
            div.card { span.k { "Replays running" } a.v href=(ctx.href("/replays", &[])) { (o.replays_running) } }
        }
        section {
            h2 { "Per minute, last hour " span.muted { "(this replica)" } }
            div.legend { span.l-published { "published" } span.l-completed { "completed" } span.l-failed { "failed" } }
            (raw(svg::activity(&minutes)))
        }
        p.muted { "Runs, queue and DLQ as of " (age(computed.elapsed().as_millis() as i64)) " (recomputed at most every "
            (duration(ctx.engine().config().metrics_refresh_ms.max(1_000) as i64)) "); the chart and cards above are live." }
        section.split {
            div {
                h2 { "Runs by status" }
                @if o.runs_by_status.is_empty() {
                    p.empty { "No runs yet." }
                } @else {
                    table {
                        thead { tr { th { "status" } th.num { "runs" } } }
                        tbody {
                            @for (status, n) in &o.runs_by_status {
                                tr {
                                    td { a href=(ctx.href("/runs", &[("status", status.as_str())])) { (run_badge(*status)) } }
                                    td.num { (n) }
                                }
                            }
                        }
                    }
                }
            }
            div {
                h2 { "Queue per task" }
                @if o.tasks.is_empty() {
                    p.empty { "Nothing queued, waiting or dead." }
                } @else {
                    table {
                        thead { tr { th { "task" } th.num { "due" } th { "oldest due" } th.num { "waiting" } th.num { "dead letters" } } }
                        tbody {
                            @for t in &o.tasks {
                                tr {
                                    td { a href=(ctx.href("/runs", &[("task", &t.task_id)])) { (t.task_id) } }
                                    td.num { (t.due) }
                                    td { @match t.oldest_due_at_ms { Some(at) => (duration(now - at)), None => "—" } }
                                    td.num { (t.waiting) }
                                    td.num { @if t.dead_letters > 0 { a href=(ctx.href("/dlq", &[("task", &t.task_id)])) { (t.dead_letters) } } @else { "0" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(ctx.page("/", "Overview", body))
}

/// How old the cached numbers are: "just now" under a second.
fn age(ms: i64) -> String {
    if ms < 1_000 {
        "just now".into()
    } else {
        format!("{} ago", duration(ms))
    }
}
