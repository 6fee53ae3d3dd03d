//! `fanout replay …` and `fanout events log`: the archive and replay jobs.

use crate::ctx::Ctx;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use fanout::proto as pb;
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `fanout replay EVENT --from T --to T …`, or a subcommand.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReplayCmd {
    #[command(subcommand)]
    sub: Option<ReplaySub>,
    #[command(flatten)]
    start: Option<StartArgs>,
}

#[derive(Subcommand)]
enum ReplaySub {
    /// Progress of a replay job.
    Status {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop a replay job at its next page.
    Cancel { id: String },
}

#[derive(Args)]
struct StartArgs {
    /// Event name or pattern (order.*, order.#).
    event: String,
    /// Start of the range: RFC 3339 (2026-11-16T00:00:00Z) or relative (-2h).
    #[arg(long, allow_hyphen_values = true)]
    from: String,
    /// End of the range (exclusive); default now.
    #[arg(long, default_value = "now", allow_hyphen_values = true)]
    to: String,
    /// Only these subscribers (repeatable).
    #[arg(long = "task")]
    tasks: Vec<String>,
    /// Only archived events whose payload matches this filter (JSON).
    #[arg(long)]
    filter: Option<String>,
    /// Count what would be replayed; create nothing.
    #[arg(long)]
    dry_run: bool,
    /// At most this many events per second, e.g. 100/s or 100.
    #[arg(long)]
    rate: Option<String>,
    /// Skip (event, task) pairs an earlier replay already re-ran.
    #[arg(long)]
    skip_already_replayed: bool,
    /// Stay attached with a progress bar until the job ends.
    #[arg(long)]
    wait: bool,
    #[arg(long)]
    json: bool,
}

/// RFC 3339, `now`, or a relative offset like `-2h` / `-30m`.
pub fn parse_time(s: &str) -> Result<i64> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    if s == "now" {
        return Ok(now);
    }
    if let Some(rel) = s.strip_prefix('-') {
        let d = humantime::parse_duration(rel)
            .with_context(|| format!("'{s}': expected a duration like -2h"))?;
        return Ok(now - d.as_millis() as i64);
    }
    let t = humantime::parse_rfc3339_weak(s)
        .with_context(|| format!("'{s}': expected RFC 3339 (2026-11-16T00:00:00Z), now, or -2h"))?;
    Ok(t.duration_since(UNIX_EPOCH)?.as_millis() as i64)
}

fn parse_rate(s: &str) -> Result<f64> {
    let n = s.trim_end_matches("/s").trim();
    let r: f64 = n
        .parse()
        .with_context(|| format!("--rate '{s}': expected events per second, e.g. 100/s"))?;
    if r <= 0.0 || !r.is_finite() {
        anyhow::bail!("--rate '{s}' must be positive");
    }
    Ok(r)
}

fn job_json(j: &pb::ReplayJob) -> Value {
    json!({
        "id": j.id, "status": j.status, "event": j.event, "from_ms": j.from_ms, "to_ms": j.to_ms,
        "tasks": j.tasks, "dry_run": j.dry_run, "events_total": j.events_total,
        "events_scanned": j.events_scanned, "events": j.events_replayed, "runs": j.runs_created,
        "by_task": serde_json::from_str::<Value>(&j.by_task_json).unwrap_or(Value::Null), "error": j.error,
    })
}

async fn poll(
    client: &fanout::Client,
    id: &str,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<pb::ReplayJob> {
    loop {
        let j = client
            .raw()
            .replay()
            .get_replay(client.raw().request(pb::GetReplayRequest { id: id.into() }))
            .await?
            .into_inner();
        if let Some(b) = bar {
            b.set_length(j.events_total.max(j.events_scanned));
            b.set_position(j.events_scanned);
            b.set_message(format!("{} runs", j.runs_created));
        }
        if j.status != "running" {
            return Ok(j);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn replay(ctx: &Ctx, cmd: ReplayCmd) -> Result<ExitCode> {
    let client = ctx.client().await?;
    let mut api = client.raw().replay();
    match (cmd.sub, cmd.start) {
        (Some(ReplaySub::Status { id, json }), _) => {
            let j = api
                .get_replay(client.raw().request(pb::GetReplayRequest { id }))
                .await?
                .into_inner();
            if json {
                println!("{}", job_json(&j));
            } else {
                println!(
                    "replay {} {}: {}/{} scanned, {} events, {} runs{}",
                    j.id,
                    j.status,
                    j.events_scanned,
                    j.events_total,
                    j.events_replayed,
                    j.runs_created,
                    if j.error.is_empty() {
                        String::new()
                    } else {
                        format!(" — {}", j.error)
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        (Some(ReplaySub::Cancel { id }), _) => {
            let j = api
                .cancel_replay(client.raw().request(pb::GetReplayRequest { id }))
                .await?
                .into_inner();
            println!("replay {} is {}", j.id, j.status);
            Ok(ExitCode::SUCCESS)
        }
        (None, Some(a)) => {
            let req = pb::StartReplayRequest {
                event: a.event,
                from_ms: parse_time(&a.from)?,
                to_ms: parse_time(&a.to)?,
                tasks: a.tasks,
                filter_json: a.filter.unwrap_or_default(),
                dry_run: a.dry_run,
                rate_per_sec: a
                    .rate
                    .as_deref()
                    .map(parse_rate)
                    .transpose()?
                    .unwrap_or(0.0),
                skip_already_replayed: a.skip_already_replayed,
            };
            let j = api
                .start_replay(client.raw().request(req))
                .await?
                .into_inner();
            if a.dry_run {
                let j = poll(&client, &j.id, None).await?;
                let by_task = serde_json::from_str::<Value>(&j.by_task_json).unwrap_or(Value::Null);
                if a.json {
                    println!(
                        "{}",
                        json!({"events": j.events_replayed, "runs": j.runs_created, "by_task": by_task})
                    );
                } else {
                    println!(
                        "dry run: {} events would create {} runs: {by_task}",
                        j.events_replayed, j.runs_created
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            if !a.wait {
                if a.json {
                    println!("{}", job_json(&j));
                } else {
                    println!(
                        "replay {} started ({} archived events in range); follow it with `fanout replay status {}`",
                        j.id, j.events_total, j.id
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let bar = (!a.json).then(|| {
                let b = indicatif::ProgressBar::new(j.events_total);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:40} {pos}/{len} events  {per_sec}  eta {eta}  {msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                b
            });
            let done = poll(&client, &j.id, bar.as_ref()).await?;
            if let Some(b) = bar {
                b.finish();
            }
            if a.json {
                println!("{}", job_json(&done));
            } else {
                println!(
                    "replay {} {}: {} events, {} runs",
                    done.id, done.status, done.events_replayed, done.runs_created
                );
            }
            Ok(if done.status == "completed" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        (None, None) => anyhow::bail!(
            "usage: fanout replay EVENT --from T [--to T] …, or fanout replay status|cancel ID"
        ),
    }
}

/// `fanout events log EVENT [--from] [--to] [--json]`.
#[derive(Args)]
pub struct LogArgs {
    /// Event name or pattern.
    event: String,
    /// Start: RFC 3339 or relative (-2h).
    #[arg(long, default_value = "-24h", allow_hyphen_values = true)]
    from: String,
    /// End (exclusive): RFC 3339, relative, or now.
    #[arg(long, default_value = "now", allow_hyphen_values = true)]
    to: String,
    #[arg(long, default_value_t = 100)]
    limit: u32,
    #[arg(long)]
    json: bool,
}

pub async fn log(ctx: &Ctx, a: LogArgs) -> Result<ExitCode> {
    let client = ctx.client().await?;
    let req = pb::ListArchivedRequest {
        event: a.event,
        from_ms: parse_time(&a.from)?,
        to_ms: parse_time(&a.to)?,
        limit: a.limit,
        after_ms: 0,
        after_id: String::new(),
    };
    let events = client
        .raw()
        .replay()
        .list_archived(client.raw().request(req))
        .await?
        .into_inner()
        .events;
    if a.json {
        let v: Vec<Value> = events
            .iter()
            .map(|e| {
                json!({"event_id": e.event_id, "event": e.event, "published_at_ms": e.published_at_ms,
                       "tags": e.tags, "ordering_key": e.ordering_key, "fan_out_count": e.fan_out_count,
                       "payload": serde_json::from_str::<Value>(&e.payload_json).unwrap_or(Value::Null)})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{:<36}  {:<24} {:<24} {:>7}  TAGS",
            "EVENT ID", "EVENT", "PUBLISHED", "FAN-OUT"
        );
        for e in &events {
            let at = humantime::format_rfc3339_millis(
                UNIX_EPOCH + Duration::from_millis(e.published_at_ms.max(0) as u64),
            );
            println!(
                "{:<36}  {:<24} {:<24} {:>7}  {}",
                e.event_id,
                e.event,
                at.to_string(),
                e.fan_out_count,
                e.tags.join(",")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
