//! `runs list | show`.

use super::*;

#[derive(Subcommand)]
pub enum RunsCmd {
    /// List runs, newest first.
    List {
        #[arg(long)]
        event: Option<String>,
        /// Only the runs one event created (its fan-out).
        #[arg(long)]
        event_id: Option<String>,
        #[arg(long)]
        task: Option<String>,
        /// queued, running, retrying, completed or dead.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        ordering_key: Option<String>,
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
    /// What a run's handler logged, attempt by attempt.
    Logs {
        id: String,
        /// Only this attempt.
        #[arg(long)]
        attempt: Option<u32>,
        /// Keep printing new lines until the run is completed or dead.
        #[arg(long)]
        follow: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

pub async fn runs(ctx: &Ctx, cmd: RunsCmd) -> Result<ExitCode> {
    let client = ctx.client().await?;
    match cmd {
        RunsCmd::List {
            event,
            event_id,
            task,
            status,
            ordering_key,
            limit,
            json,
        } => {
            let raw = client.raw();
            let runs = raw
                .admin()
                .list_runs(raw.request(pb::ListRunsRequest {
                    event: event.unwrap_or_default(),
                    event_id: event_id.unwrap_or_default(),
                    task: task.unwrap_or_default(),
                    status: status.unwrap_or_default(),
                    ordering_key: ordering_key.unwrap_or_default(),
                    limit,
                    ..Default::default()
                }))
                .await
                .map_err(fanout::Error::from)?
                .into_inner()
                .runs;
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
        RunsCmd::Logs {
            id,
            attempt,
            follow,
            json,
        } => {
            let mut cursor = None;
            loop {
                // The run's state first: lines stored before it turned
                // final are all read below, so following stops complete.
                let done = !follow || client.run(&id).await?.run.status.is_final();
                let lines = client.run_logs(&id, attempt, cursor).await?;
                for l in &lines {
                    if json {
                        let v = json!({
                            "attempt": l.attempt, "seq": l.seq,
                            "at": humantime::format_rfc3339_millis(l.at).to_string(),
                            "level": l.level, "message": l.message, "fields": l.fields,
                        });
                        println!("{v}");
                    } else {
                        let fields = l
                            .fields
                            .as_ref()
                            .map(|f| format!(" {f}"))
                            .unwrap_or_default();
                        println!(
                            "#{} {} {:<5} {}{fields}",
                            l.attempt,
                            humantime::format_rfc3339_millis(l.at),
                            l.level,
                            l.message
                        );
                    }
                }
                if let Some(last) = lines.last() {
                    cursor = Some((last.attempt, last.seq));
                }
                if done && lines.len() < 10_000 {
                    break;
                }
                if lines.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        }
        RunsCmd::Show { id, json } => {
            let raw = client.raw();
            let d = raw
                .admin()
                .get_run(raw.request(pb::GetRunRequest { id }))
                .await
                .map_err(fanout::Error::from)?
                .into_inner();
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
