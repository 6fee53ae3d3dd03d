//! Commands that talk to a running engine over gRPC. Errors print the
//! server's message to stderr and exit non-zero.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use fanout::proto as pb;
use fanout::{Client, PublishOptions};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

/// Where client commands connect.
pub struct Ctx {
    pub server: String,
    pub namespace: String,
}

impl Ctx {
    async fn client(&self) -> Result<Client> {
        Ok(Client::connect(&self.server)
            .await?
            .with_namespace(&self.namespace))
    }
}

#[derive(Subcommand)]
pub enum EventsCmd {
    /// Define (or redefine) an event from a JSON Schema file.
    Define {
        name: String,
        #[arg(long)]
        schema: PathBuf,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List events (latest version of each).
    List {
        #[arg(long)]
        json: bool,
    },
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
        "consumer_group": r.consumer_group, "worker_id": r.worker_id,
        "output": json_or_text(&r.output_json), "last_error": r.last_error,
    })
}

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn events(ctx: &Ctx, cmd: EventsCmd) -> Result<ExitCode> {
    let client = ctx.client().await?;
    match cmd {
        EventsCmd::Define {
            name,
            schema,
            description,
        } => {
            let text = std::fs::read_to_string(&schema)
                .with_context(|| format!("cannot read {}", schema.display()))?;
            let value: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", schema.display()))?;
            let (version, created) = client.define_event(&name, &value, &description).await?;
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
                    "{:<36}  {:<24} {:<20} {:<10} {:>8}  CREATED",
                    "ID", "EVENT", "TASK", "STATUS", "ATTEMPTS"
                );
                for r in &runs {
                    println!(
                        "{:<36}  {:<24} {:<20} {:<10} {:>8}  {}",
                        r.id,
                        r.event,
                        r.task,
                        r.status,
                        format!("{}/{}", r.attempts, r.max_attempts),
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
