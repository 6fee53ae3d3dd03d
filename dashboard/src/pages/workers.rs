//! `/workers`: the worker sessions connected to this replica, their tasks
//! and the slots they use.

use crate::layout::{Ctx, PageError, badge, empty, when};
use axum::response::Response;
use maud::html;

pub(crate) async fn page(ctx: Ctx) -> Result<Response, PageError> {
    let workers = ctx.engine().workers().list(Some(&ctx.ns));
    let body = html! {
        p.muted { "Sessions connected to this replica; each replica lists its own." }
        @if workers.is_empty() { (empty("No worker is connected.")) } @else {
            table.workers {
                thead { tr { th { "worker" } th { "name" } th { "tasks" } th { "slots in use" } th { "connected" } th { "state" } } }
                tbody { @for w in &workers { tr {
                    td { code { (w.worker_id) } }
                    td { (w.name) }
                    td { @for t in &w.tasks { a.tag href=(ctx.href("/runs", &[("task", t)])) { (t) } " " } }
                    td { meter min="0" max=(w.concurrency) value=(w.in_flight) {} " " (w.in_flight) " / " (w.concurrency) }
                    td { (when(w.connected_at_ms)) }
                    td { @if w.draining { (badge("draining")) } @else { (badge("active")) } }
                } } }
            }
        }
    };
    Ok(ctx.page("/workers", "Workers", body))
}
