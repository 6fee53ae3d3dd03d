//! `publish`: JSON text or @file, optionally waiting for every subscriber.

use super::*;

#[derive(Args)]
pub struct PublishArgs {
    /// Event name, e.g. order.created.
    event: String,
    /// JSON text, or @path to read it from a file.
    payload: String,
    #[arg(long)]
    idempotency_key: Option<String>,
    #[arg(long)]
    ordering_key: Option<String>,
    /// A tag (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Wait for every subscriber's final outcome (scatter-gather).
    #[arg(long)]
    wait: bool,
    /// With --wait: give up waiting after this long (e.g. 30s); the runs go on.
    #[arg(long, requires = "wait")]
    timeout: Option<humantime::Duration>,
    #[arg(long)]
    json: bool,
}

pub async fn publish(ctx: &Ctx, a: PublishArgs) -> Result<ExitCode> {
    let text = match a.payload.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read payload file {path}"))?,
        None => a.payload.clone(),
    };
    let client = ctx.client().await?;
    if a.wait {
        let payload: Value = serde_json::from_str(&text).context("PAYLOAD is not valid JSON")?;
        let opts = PublishOptions {
            idempotency_key: a.idempotency_key,
            ordering_key: a.ordering_key,
            tags: a.tags,
        };
        let r = client
            .publish_and_wait_json(&a.event, &payload, opts, a.timeout.map(Into::into))
            .await?;
        let results = serde_json::to_value(&r.results)?;
        if a.json {
            println!(
                "{}",
                json!({"event_id": r.event_id, "waitpoint_id": r.waitpoint_id, "status": r.status, "results": results})
            );
        } else {
            println!(
                "event {} → {} ({} results)",
                r.event_id,
                r.status,
                r.results.len()
            );
            for (task, o) in r.results.iter() {
                let what = if o.ok {
                    o.output.to_string()
                } else {
                    format!("error: {}", o.error.clone().unwrap_or_default())
                };
                println!(
                    "  {task:<24} {}  {what}",
                    if o.ok { "ok    " } else { "failed" }
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let p = client
        .publish_text(
            &a.event,
            text,
            PublishOptions {
                idempotency_key: a.idempotency_key,
                ordering_key: a.ordering_key,
                tags: a.tags,
            },
        )
        .await?;
    if a.json {
        let runs: Vec<Value> = p
            .runs
            .iter()
            .map(|r| json!({"run_id": r.run_id, "task": r.task_id}))
            .collect();
        println!(
            "{}",
            json!({"event_id": p.event_id, "event_version": p.event_version, "runs": runs, "deduplicated": p.deduplicated})
        );
    } else {
        let dedup = if p.deduplicated {
            " (deduplicated: already published)"
        } else {
            ""
        };
        println!("published {} ({} runs){dedup}", p.event_id, p.runs.len());
    }
    Ok(ExitCode::SUCCESS)
}
