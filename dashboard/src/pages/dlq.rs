//! `/dlq`: dead letters grouped by task and error fingerprint, filtered
//! by event, task and error prefix; retry or discard one, a selection, or
//! everything matching the filter (the count is shown, from a dry run,
//! before confirming). A bulk action works in committed batches of 500, so
//! the DLQ depth on this page falls while it runs (the page is live).

use super::{param, see_other};
use crate::csrf::Token;
use crate::form::Fields;
use crate::layout::{Ctx, PageError, empty, flash, short_id, when};
use crate::pages::runs::{clip, table};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::response::Response;
use fanout_engine::Error;
use fanout_engine::admin::DeadLetterAction;
use fanout_engine::model::{DeadLetterSelector, RunQuery};
use maud::html;

const PAGE: u32 = 100;

/// The page counts matching dead letters up to this many (the
/// confirmation page of a bulk action counts them all).
const COUNT_CAP: u64 = 10_000;

pub(crate) async fn page(ctx: Ctx, RawQuery(q): RawQuery) -> Result<Response, PageError> {
    let q = q.as_deref();
    let (event, task, error) = (param(q, "event"), param(q, "task"), param(q, "error"));
    let engine = ctx.engine();
    let groups = engine.dead_letter_groups(&ctx.ns, 20).await?;
    let query = RunQuery {
        event: event.clone(),
        task: task.clone(),
        error_prefix: error.clone(),
        before: param(q, "before"),
        limit: PAGE,
        ..Default::default()
    };
    let runs = engine.list_dead_letters(&ctx.ns, &query).await?;
    let sel = DeadLetterSelector {
        all: true,
        event: event.clone(),
        task: task.clone(),
        error_prefix: error.clone(),
        ..Default::default()
    };
    let matching = engine
        .count_dead_letters_upto(&ctx.ns, &sel, COUNT_CAP)
        .await?;
    let shown = if matching > COUNT_CAP {
        format!("more than {COUNT_CAP}")
    } else {
        matching.to_string()
    };
    let (ev, tk, er) = (
        event.unwrap_or_default(),
        task.unwrap_or_default(),
        error.unwrap_or_default(),
    );
    let next = (runs.len() as u32 == PAGE)
        .then(|| runs.last().map(|r| r.id.clone()))
        .flatten();
    let body = html! {
        (flash(param(q, "done").as_deref()))
        @if !groups.is_empty() {
            h2 { "By task and error " span.muted { "(newest " (fanout_engine::storage::GROUPED) " dead letters)" } }
            table.groups {
                thead { tr { th { "task" } th { "error" } th.num { "dead letters" } th { "newest" } } }
                tbody { @for g in &groups { tr {
                    td { (g.task_id) }
                    td.err { a href=(ctx.href("/dlq", &[("task", &g.task_id), ("error", &g.fingerprint)])) { (clip(&g.fingerprint, 100)) } }
                    td.num { (g.count) }
                    td { a href=(ctx.href(&format!("/runs/{}", g.newest_run_id), &[])) { (short_id(&g.newest_run_id)) } " " (when(g.newest_at_ms)) }
                } } }
            }
        }
        h2 { "Dead letters" }
        form.filters method="get" {
            input type="hidden" name="ns" value=(ctx.ns);
            label { "event " input name="event" value=(ev) size="14"; }
            label { "task " input name="task" value=(tk) size="14"; }
            label { "error starts with " input name="error" value=(er) size="24"; }
            button type="submit" { "Filter" }
            @if !ev.is_empty() || !tk.is_empty() || !er.is_empty() { " " a href=(ctx.href("/dlq", &[])) { "clear" } }
        }
        p.count { strong #matching { (shown) } " dead letter(s) match this filter." }
        @if matching > 0 {
            div.actions {
                @for (label, verb, _, class) in [words(DeadLetterAction::Retry), words(DeadLetterAction::Discard)] {
                    form method="post" action=(ctx.href(&format!("/dlq/{verb}"), &[])) {
                        (ctx.form_fields())
                        input type="hidden" name="all" value="1";
                        input type="hidden" name="event" value=(ev);
                        input type="hidden" name="task" value=(tk);
                        input type="hidden" name="error_prefix" value=(er);
                        button class=(class) type="submit" { (label) " all " (shown) " matching…" }
                    }
                }
            }
        }
        @if runs.is_empty() { (empty("The dead-letter queue is empty for this filter.")) } @else {
            form #selection method="post" action=(ctx.href("/dlq/retry", &[])) {
                (ctx.form_fields())
                (table(&ctx, &runs, true))
                div.actions {
                    button.primary type="submit" { "Retry selected" }
                    button.danger type="submit" formaction=(ctx.href("/dlq/discard", &[])) data-confirm="Discard the selected dead letters?" { "Discard selected" }
                }
            }
            @if let Some(before) = next {
                p.pager { a href=(ctx.href("/dlq", &[("event", &ev), ("task", &tk), ("error", &er), ("before", &before)])) { "Older →" } }
            }
        }
    };
    Ok(ctx.page("/dlq", "Dead letters", body))
}

/// The words and button style of an action.
fn words(action: DeadLetterAction) -> (&'static str, &'static str, &'static str, &'static str) {
    match action {
        DeadLetterAction::Retry => ("Retry", "retry", "Retried", "primary"),
        DeadLetterAction::Discard => ("Discard", "discard", "Discarded", "danger"),
    }
}

pub(crate) async fn retry(
    ctx: Ctx,
    Extension(t): Extension<Token>,
    body: Bytes,
) -> Result<Response, PageError> {
    act(ctx, t, body, DeadLetterAction::Retry).await
}

pub(crate) async fn discard(
    ctx: Ctx,
    Extension(t): Extension<Token>,
    body: Bytes,
) -> Result<Response, PageError> {
    act(ctx, t, body, DeadLetterAction::Discard).await
}

/// Retry or discard. Ids act at once; `all` (a filter) first answers a
/// confirmation page with the count, and acts when posted with `confirm`.
async fn act(
    ctx: Ctx,
    token: Token,
    body: Bytes,
    action: DeadLetterAction,
) -> Result<Response, PageError> {
    let (label, verb, past, class) = words(action);
    let f = Fields::verified(&body, &token)?;
    let ns = f.namespace()?;
    let sel = DeadLetterSelector {
        ids: f.all("ids"),
        all: f.flag("all"),
        event: f.text("event"),
        task: f.text("task"),
        error_prefix: f.text("error_prefix"),
    };
    if !sel.all && sel.ids.is_empty() {
        return Err(Error::InvalidArgument("ids: select at least one dead letter".into()).into());
    }
    let engine = ctx.engine();
    if sel.all && !f.flag("confirm") {
        let n = engine.count_dead_letters(&ns, &sel).await?;
        let body = html! {
            p.confirm { (label) " " strong #confirm-count { (n) } " dead letter(s) matching "
                "event " code { (sel.event.as_deref().unwrap_or("any")) } ", task " code { (sel.task.as_deref().unwrap_or("any")) }
                ", error starting with " code { (sel.error_prefix.as_deref().unwrap_or("anything")) } "?" }
            p.muted { "The count is of now; dead letters that arrive before you confirm are included." }
            form method="post" data-busy="Working… the DLQ depth falls as batches of 500 commit." {
                (ctx.form_fields())
                input type="hidden" name="all" value="1";
                input type="hidden" name="event" value=(sel.event.clone().unwrap_or_default());
                input type="hidden" name="task" value=(sel.task.clone().unwrap_or_default());
                input type="hidden" name="error_prefix" value=(sel.error_prefix.clone().unwrap_or_default());
                input type="hidden" name="confirm" value="1";
                button class=(class) type="submit" { "Yes, " (verb) " " (n) }
                " " a href=(ctx.href("/dlq", &[])) { "Cancel" }
            }
        };
        return Ok(ctx.page("/dlq", &format!("{label} dead letters"), body));
    }
    let n = engine.act_on_dead_letters(&ns, &sel, action, false).await?;
    let done = format!("{past} {n} dead letter(s)");
    // Only a path on this host: not `//host`, nor `/\host`, which
    // browsers also read as another host.
    let back = f
        .text("back")
        .filter(|b| b.starts_with('/') && !b[1..].starts_with(['/', '\\']));
    let to = match back {
        Some(b) => format!(
            "{b}{}done={}",
            if b.contains('?') { "&" } else { "?" },
            form_urlencoded::byte_serialize(done.as_bytes()).collect::<String>()
        ),
        None => ctx.done_href(&ns, "/dlq", &done),
    };
    Ok(see_other(&to))
}
