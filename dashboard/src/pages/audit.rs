//! `/audit`: every mutation of this namespace and the key that made it,
//! newest first (needs `admin`, like `fanout audit list`).

use crate::layout::{Ctx, PageError, empty, when};
use axum::response::Response;
use fanout_engine::model::AuditQuery;
use maud::html;

pub(crate) async fn page(ctx: Ctx) -> Result<Response, PageError> {
    fanout_engine::auth::check_caller(|p| {
        p.require(&[fanout_engine::model::Scope::Admin], "the audit log")
    })?;
    let entries = ctx
        .engine()
        .list_audit(AuditQuery {
            namespace: Some(ctx.ns.clone()),
            limit: 200,
            ..Default::default()
        })
        .await?;
    let body = html! {
        p.muted { "Definitions, dead-letter actions, replays, subscription changes, keys and token completions, with the key that made them (the last 200)." }
        @if entries.is_empty() { (empty("Nothing recorded in this namespace yet.")) } @else {
            table.audit {
                thead { tr { th { "when" } th { "who" } th { "action" } th { "target" } th { "detail" } } }
                tbody { @for e in &entries { tr {
                    td { (when(e.at_ms)) }
                    td { (e.actor) }
                    td { code { (e.action) } }
                    td { code { (e.target) } }
                    td { code { (e.detail) } }
                } } }
            }
        }
    };
    Ok(ctx.page("/audit", "Audit", body))
}
