//! Commands that talk to a running engine over gRPC. Errors print the
//! server's message to stderr and exit non-zero.

use crate::ctx::Ctx;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use fanout::PublishOptions;
use fanout::proto as pb;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

#[derive(Subcommand)]
pub enum EventsCmd {
    /// Define (or redefine) an event from a JSON Schema file.
    Define {
        name: String,
        #[arg(long)]
        schema: PathBuf,
        #[arg(long, default_value = "")]
        description: String,
        /// Rate limit as LIMIT/WINDOW, e.g. 100/1m, 10/1s, 5000/1h.
        #[arg(long)]
        rate_limit: Option<String>,
        /// Count the rate limit per value of this top-level payload field.
        #[arg(long, requires = "rate_limit")]
        rate_limit_key: Option<String>,
        /// Do not keep dead runs in the dead-letter queue.
        #[arg(long)]
        no_dlq: bool,
    },
    /// List events (latest version of each).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Archived events (id, time, tags, fan-out), oldest first.
    Log(crate::replay_cmds::LogArgs),
    /// Show one event definition.
    Show {
        name: String,
        /// A specific version (default: the latest).
        #[arg(long, default_value_t = 0)]
        version: u32,
        #[arg(long)]
        json: bool,
    },
}

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

#[derive(Subcommand)]
pub enum RunsCmd {
    /// List runs, newest first.
    List {
        #[arg(long)]
        event: Option<String>,
        #[arg(long)]
        task: Option<String>,
        /// queued, running, retrying, completed or dead.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Show one run with every attempt.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

fn time(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string()
}

fn json_or_text(s: &str) -> Value {
    if s.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

fn event_json(e: &pb::EventDefinition) -> Value {
    json!({
        "name": e.name, "version": e.version, "namespace": e.namespace,
        "description": e.description, "created_at": time(e.created_at_ms),
        "schema": json_or_text(&e.schema_json),
    })
}

fn run_json(r: &pb::Run) -> Value {
    json!({
        "id": r.id, "event": r.event, "event_id": r.event_id, "task": r.task, "status": r.status,
        "attempts": r.attempts, "max_attempts": r.max_attempts, "created_at": time(r.created_at_ms),
        "updated_at": time(r.updated_at_ms), "ordering_key": r.ordering_key,
        "consumer_group": r.consumer_group, "worker_id": r.worker_id, "dlq": r.dlq,
        "output": json_or_text(&r.output_json), "last_error": r.last_error,
        "available_at": time(r.available_at_ms), "started_at": time(r.started_at_ms),
        "lease_expires_at": time(r.lease_expires_at_ms),
        "replay_of": r.replay_of, "waitpoint_id": r.waitpoint_id, "namespace": r.namespace,
    })
}

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn events(ctx: &Ctx, cmd: EventsCmd) -> Result<ExitCode> {
    if let EventsCmd::Log(a) = cmd {
        return crate::replay_cmds::log(ctx, a).await;
    }
    let client = ctx.client().await?;
    match cmd {
        EventsCmd::Define {
            name,
            schema,
            description,
            rate_limit,
            rate_limit_key,
            no_dlq,
        } => {
            let text = std::fs::read_to_string(&schema)
                .with_context(|| format!("cannot read {}", schema.display()))?;
            let value: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", schema.display()))?;
            let rate_limit = match rate_limit {
                Some(spec) => {
                    let (limit, window) = parse_rate(&spec)?;
                    Some((limit, window, rate_limit_key))
                }
                None => None,
            };
            let opts = fanout::EventOptions {
                dlq: !no_dlq,
                rate_limit,
                description,
            };
            let (version, created) = client.define_event_with(&name, &value, &opts).await?;
            if created {
                println!("defined {name} version {version}");
            } else {
                println!("{name} is unchanged (version {version})");
            }
        }
        EventsCmd::List { json } => {
            let events = client.list_events().await?;
            if json {
                print_json(&Value::Array(events.iter().map(event_json).collect()))?;
            } else if events.is_empty() {
                println!("no events defined in namespace '{}'", ctx.namespace);
            } else {
                println!("{:<40} {:>7}  CREATED", "NAME", "VERSION");
                for e in &events {
                    println!("{:<40} {:>7}  {}", e.name, e.version, time(e.created_at_ms));
                }
            }
        }
        EventsCmd::Show {
            name,
            version,
            json,
        } => {
            let e = client.get_event(&name, version).await?;
            if json {
                print_json(&event_json(&e))?;
            } else {
                println!(
                    "{} (version {}, namespace {})",
                    e.name, e.version, e.namespace
                );
                println!("created: {}", time(e.created_at_ms));
                println!(
                    "schema:\n{}",
                    serde_json::to_string_pretty(&json_or_text(&e.schema_json))?
                );
            }
        }
        EventsCmd::Log(_) => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
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
            for (task, o) in &r.results {
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

pub async fn runs(ctx: &Ctx, cmd: RunsCmd) -> Result<ExitCode> {
    let client = ctx.client().await?;
    match cmd {
        RunsCmd::List {
            event,
            task,
            status,
            limit,
            json,
        } => {
            let runs = client
                .list_runs(pb::ListRunsRequest {
                    event: event.unwrap_or_default(),
                    task: task.unwrap_or_default(),
                    status: status.unwrap_or_default(),
                    limit,
                    before: String::new(),
                })
                .await?;
            if json {
                print_json(&Value::Array(runs.iter().map(run_json).collect()))?;
            } else {
                println!(
                    "{:<36}  {:<24} {:<20} {:<10} {:>8}  {:<16} CREATED",
                    "ID", "EVENT", "TASK", "STATUS", "ATTEMPTS", "GROUP"
                );
                for r in &runs {
                    println!(
                        "{:<36}  {:<24} {:<20} {:<10} {:>8}  {:<16} {}",
                        r.id,
                        r.event,
                        r.task,
                        r.status,
                        format!("{}/{}", r.attempts, r.max_attempts),
                        if r.consumer_group.is_empty() {
                            "-"
                        } else {
                            &r.consumer_group
                        },
                        time(r.created_at_ms)
                    );
                }
            }
        }
        RunsCmd::Show { id, json } => {
            let d = client.get_run(&id).await?;
            let run = d.run.unwrap_or_default();
            let attempts: Vec<Value> = d
                .attempts
                .iter()
                .map(|a| {
                    json!({"attempt": a.attempt, "ok": a.ok, "started_at": time(a.started_at_ms),
                           "finished_at": time(a.finished_at_ms), "output": json_or_text(&a.output_json),
                           "error": a.error, "worker_id": a.worker_id})
                })
                .collect();
            if json {
                let mut v = run_json(&run);
                v["payload"] = json_or_text(&d.payload_json);
                v["tags"] = json!(d.tags);
                v["publisher_run_id"] = json!(d.publisher_run_id);
                v["attempt_history"] = Value::Array(attempts);
                print_json(&v)?;
            } else {
                println!("run {}  {} → {}", run.id, run.event, run.task);
                println!(
                    "status: {}  attempts: {}/{}",
                    run.status, run.attempts, run.max_attempts
                );
                println!(
                    "created: {}  updated: {}",
                    time(run.created_at_ms),
                    time(run.updated_at_ms)
                );
                println!("payload: {}", d.payload_json);
                if !run.output_json.is_empty() {
                    println!("output: {}", run.output_json);
                }
                if !run.last_error.is_empty() {
                    println!("last error: {}", run.last_error);
                }
                for a in &d.attempts {
                    let what = if a.ok {
                        format!("ok {}", a.output_json)
                    } else {
                        format!("failed: {}", a.error)
                    };
                    println!(
                        "  #{} {} .. {}  {what}",
                        a.attempt,
                        time(a.started_at_ms),
                        time(a.finished_at_ms)
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `100/1m` → (100, 60 s).
fn parse_rate(spec: &str) -> Result<(u32, Duration)> {
    let (limit, window) = spec
        .split_once('/')
        .with_context(|| format!("--rate-limit '{spec}': expected LIMIT/WINDOW, e.g. 100/1m"))?;
    let limit: u32 = limit
        .trim()
        .parse()
        .ok()
        .filter(|l| *l > 0)
        .with_context(|| format!("--rate-limit '{spec}': limit must be a positive integer"))?;
    let window = humantime::parse_duration(window.trim()).with_context(|| {
        format!("--rate-limit '{spec}': window must be a duration like 1s, 1m, 1h")
    })?;
    if window.is_zero() {
        anyhow::bail!("--rate-limit '{spec}': window must be greater than 0");
    }
    Ok((limit, window))
}

#[derive(Subcommand)]
pub enum FilterCmd {
    /// Does PAYLOAD match PATTERN? Prints `match` (exit 0) or `no match`
    /// (exit 1); an invalid pattern prints why (exit 2).
    Test {
        #[arg(long)]
        pattern: String,
        #[arg(long)]
        payload: String,
    },
}

pub fn filter(cmd: FilterCmd) -> Result<ExitCode> {
    let FilterCmd::Test { pattern, payload } = cmd;
    match fanout_engine::Engine::test_filter(&read_arg(&pattern)?, &read_arg(&payload)?) {
        Ok(true) => {
            println!("match");
            Ok(ExitCode::SUCCESS)
        }
        Ok(false) => {
            println!("no match");
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

/// JSON text, or `@path` to read it from a file.
fn read_arg(s: &str) -> Result<String> {
    match s.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {path}")),
        None => Ok(s.to_string()),
    }
}

#[derive(Subcommand)]
pub enum DlqCmd {
    /// Dead letters, newest first.
    List {
        #[arg(long)]
        event: Option<String>,
        #[arg(long)]
        task: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// One dead letter with payload, last error and every attempt.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Re-queue dead letters with a fresh attempt budget (history kept).
    Retry(DlqSelect),
    /// Remove dead letters from the DLQ.
    Discard(DlqSelect),
}

#[derive(Args)]
pub struct DlqSelect {
    /// Run ids.
    ids: Vec<String>,
    /// Every dead letter (narrow with --event / --task).
    #[arg(long, conflicts_with = "ids")]
    all: bool,
    #[arg(long, requires = "all")]
    event: Option<String>,
    #[arg(long, requires = "all")]
    task: Option<String>,
}

impl DlqSelect {
    fn selector(self) -> Result<pb::DeadLetterSelector> {
        if !self.all && self.ids.is_empty() {
            anyhow::bail!("name dead letters by id, or pass --all [--event E] [--task T]");
        }
        Ok(pb::DeadLetterSelector {
            ids: self.ids,
            all: self.all,
            event: self.event.unwrap_or_default(),
            task: self.task.unwrap_or_default(),
        })
    }
}

pub async fn dlq(ctx: &Ctx, cmd: DlqCmd) -> Result<ExitCode> {
    let client = ctx.client().await?;
    match cmd {
        DlqCmd::List {
            event,
            task,
            limit,
            json,
        } => {
            let runs = client
                .list_dead_letters(pb::ListDeadLettersRequest {
                    event: event.unwrap_or_default(),
                    task: task.unwrap_or_default(),
                    limit,
                    before: String::new(),
                })
                .await?;
            if json {
                print_json(&Value::Array(runs.iter().map(run_json).collect()))?;
            } else if runs.is_empty() {
                println!("the dead-letter queue is empty");
            } else {
                println!(
                    "{:<36}  {:<24} {:<20} {:>8}  LAST ERROR",
                    "ID", "EVENT", "TASK", "ATTEMPTS"
                );
                for r in &runs {
                    println!(
                        "{:<36}  {:<24} {:<20} {:>8}  {}",
                        r.id, r.event, r.task, r.attempts, r.last_error
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCmd::Show { id, json } => runs(ctx, RunsCmd::Show { id, json }).await,
        DlqCmd::Retry(sel) => {
            let n = client.retry_dead_letters(sel.selector()?).await?;
            println!("retried {n} dead letter(s)");
            Ok(ExitCode::SUCCESS)
        }
        DlqCmd::Discard(sel) => {
            let n = client.discard_dead_letters(sel.selector()?).await?;
            println!("discarded {n} dead letter(s)");
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(Args)]
pub struct WaitArgs {
    /// Waitpoint id.
    id: String,
    #[arg(long)]
    json: bool,
}

fn waitpoint_json(w: &fanout::WaitpointState) -> Result<Value> {
    Ok(json!({
        "waitpoint_id": w.id, "kind": w.kind, "status": w.status, "event_id": w.event_id,
        "results": serde_json::to_value(&w.results)?, "data": w.data,
    }))
}

pub async fn wait(ctx: &Ctx, a: WaitArgs) -> Result<ExitCode> {
    let client = ctx.client().await?;
    let w = client.wait(&a.id).await?;
    if a.json {
        println!("{}", waitpoint_json(&w)?);
    } else {
        println!("{} {} ({})", w.kind, w.id, w.status);
        println!("{}", serde_json::to_string_pretty(&waitpoint_json(&w)?)?);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum WaitpointCmd {
    /// Show a waitpoint and, for scatter-gather, every result so far.
    Show { id: String },
    /// Create a token waitpoint, completed later with `waitpoint complete`.
    CreateToken {
        #[arg(long)]
        timeout: Option<humantime::Duration>,
    },
    /// Complete a token waitpoint with data (JSON text or @file).
    Complete {
        id: String,
        #[arg(long, default_value = "null")]
        data: String,
    },
}

pub async fn waitpoint(ctx: &Ctx, cmd: WaitpointCmd) -> Result<ExitCode> {
    let client = ctx.client().await?;
    let w = match cmd {
        WaitpointCmd::Show { id } => client.get_waitpoint(&id).await?,
        WaitpointCmd::CreateToken { timeout } => {
            client.create_token(timeout.map(Into::into)).await?
        }
        WaitpointCmd::Complete { id, data } => {
            let data: Value =
                serde_json::from_str(&read_arg(&data)?).context("--data is not valid JSON")?;
            client.complete_token(&id, &data).await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&waitpoint_json(&w)?)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field a run has is in its JSON (replay_of was missing).
    #[test]
    fn run_json_has_every_field() {
        let r = pb::Run {
            id: "r1".into(),
            replay_of: "e0".into(),
            waitpoint_id: "w1".into(),
            started_at_ms: 1_700_000_000_000,
            ..Default::default()
        };
        let v = run_json(&r);
        assert_eq!(v["replay_of"], "e0");
        assert_eq!(v["waitpoint_id"], "w1");
        assert!(
            v["started_at"]
                .as_str()
                .is_some_and(|s| s.starts_with("2023-"))
        );
        for key in [
            "lease_expires_at",
            "available_at",
            "namespace",
            "consumer_group",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
    }
}
