//! `/waitpoints`: waiting parents (publish-and-wait, sleeps) and open
//! tokens; an operator completes a token with JSON data.

use super::{param, see_other};
use crate::csrf::Token;
use crate::form::Fields;
use crate::layout::{Ctx, PageError, badge, empty, flash, short_id, when};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::response::Response;
use fanout_engine::Error;
use fanout_engine::model::{WaitpointKind, WaitpointStatus};
use fanout_engine::storage::WaitpointQuery;
use maud::html;

pub(crate) async fn page(ctx: Ctx, RawQuery(q): RawQuery) -> Result<Response, PageError> {
    let q = q.as_deref();
    let status = param(q, "status").unwrap_or_else(|| "waiting".into());
    let status_filter = match status.as_str() {
        "any" => None,
        s => Some(WaitpointStatus::parse(s).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "status '{s}' is invalid: expected waiting, completed, timed_out or any"
            ))
        })?),
    };
    let kind = match param(q, "kind") {
        None => None,
        Some(k) => Some(WaitpointKind::parse(&k).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "kind '{k}' is invalid: expected runs, time or token"
            ))
        })?),
    };
    let list = ctx
        .engine()
        .list_waitpoints(
            &ctx.ns,
            &WaitpointQuery {
                status: status_filter,
                kind,
                before: param(q, "before"),
                limit: 100,
            },
        )
        .await?;
    let body = html! {
        (flash(param(q, "done").as_deref()))
        form.filters method="get" {
            input type="hidden" name="ns" value=(ctx.ns);
            label { "status " select name="status" { @for s in ["waiting", "completed", "timed_out", "any"] { option value=(s) selected[status == s] { (s) } } } }
            label { "kind " select name="kind" { @for k in ["", "runs", "time", "token"] { option value=(k) selected[param(q, "kind").unwrap_or_default() == k] { @if k.is_empty() { "any" } @else { (k) } } } } }
            button type="submit" { "Filter" }
        }
        @if list.is_empty() { (empty("No waitpoints match.")) } @else {
            table.waitpoints {
                thead { tr { th { "waitpoint" } th { "kind" } th { "status" } th { "parent run" } th { "progress" } th { "created" } th { "deadline" } th {} } }
                tbody { @for w in &list { tr {
                    td { code title=(w.id) { (short_id(&w.id)) } }
                    td { (w.kind.as_str()) }
                    td { (badge(w.status.as_str())) }
                    td { @if w.parent_run_id.is_empty() { span.muted { "none" } } @else {
                        a href=(ctx.href(&format!("/runs/{}", w.parent_run_id), &[])) { (short_id(&w.parent_run_id)) } } }
                    td { @if w.kind == WaitpointKind::Runs { (w.total - w.pending) " / " (w.total) } }
                    td { (when(w.created_at_ms)) }
                    td { (when(w.timeout_at_ms)) }
                    td { @if w.kind == WaitpointKind::Token && w.status == WaitpointStatus::Waiting {
                        form.inline method="post" action=(ctx.href(&format!("/waitpoints/{}/complete", w.id), &[])) {
                            (ctx.form_fields())
                            input name="data" placeholder=r#"{"approved": true}"# size="22" aria-label="data (JSON)";
                            button.primary type="submit" { "Complete" }
                        }
                    } }
                } } }
            }
        }
    };
    Ok(ctx.page("/waitpoints", "Waitpoints", body))
}

pub(crate) async fn complete(
    ctx: Ctx,
    Extension(t): Extension<Token>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = Fields::verified(&body, &t)?;
    let ns = f.namespace()?;
    let data = f.text("data").unwrap_or_else(|| "null".into());
    serde_json::from_str::<serde_json::Value>(&data).map_err(|e| {
        Error::InvalidArgument(format!(
            "data: not JSON ({e}); write e.g. {{\"approved\": true}} or leave it empty for null"
        ))
    })?;
    ctx.engine()
        .complete_token(&ns, &id, &data, &Default::default())
        .await?;
    Ok(see_other(&ctx.done_href(
        &ns,
        "/waitpoints",
        &format!("Completed {id}"),
    )))
}
