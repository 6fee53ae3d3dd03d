//! `dlq list | show | retry | discard`.

use super::*;

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
    /// Only dead letters whose error starts with this text (an error
    /// fingerprint, as the console groups them).
    #[arg(long, requires = "all")]
    error_prefix: Option<String>,
    /// Print how many would be touched and change nothing.
    #[arg(long)]
    dry_run: bool,
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
            error_prefix: self.error_prefix.unwrap_or_default(),
            dry_run: self.dry_run,
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
            let raw = client.raw();
            let runs = raw
                .admin()
                .list_dead_letters(raw.request(pb::ListDeadLettersRequest {
                    event: event.unwrap_or_default(),
                    task: task.unwrap_or_default(),
                    limit,
                    before: String::new(),
                }))
                .await
                .map_err(fanout::Error::from)?
                .into_inner()
                .runs;
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
            let dry_run = sel.dry_run;
            let raw = client.raw();
            let n = raw
                .admin()
                .retry_dead_letters(raw.request(sel.selector()?))
                .await
                .map_err(fanout::Error::from)?
                .into_inner()
                .count;
            if dry_run {
                println!("would retry {n} dead letter(s) (dry run: nothing changed)");
            } else {
                println!("retried {n} dead letter(s)");
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCmd::Discard(sel) => {
            let dry_run = sel.dry_run;
            let raw = client.raw();
            let n = raw
                .admin()
                .discard_dead_letters(raw.request(sel.selector()?))
                .await
                .map_err(fanout::Error::from)?
                .into_inner()
                .count;
            if dry_run {
                println!("would discard {n} dead letter(s) (dry run: nothing changed)");
            } else {
                println!("discarded {n} dead letter(s)");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
