//! `subscriptions list | pause | resume`.

use super::*;

#[derive(Subcommand)]
pub enum SubscriptionsCmd {
    /// Every subscription of the namespace, with whether it is paused.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop claiming a task's runs; they are still created at publish.
    Pause { task: String },
    /// Claim a paused task's runs again, in order.
    Resume { task: String },
}

pub async fn subscriptions(ctx: &Ctx, cmd: SubscriptionsCmd) -> Result<ExitCode> {
    let client = ctx.client().await?;
    match cmd {
        SubscriptionsCmd::List { json } => {
            let subs = client
                .raw()
                .admin()
                .list_subscriptions(client.raw().request(pb::ListSubscriptionsRequest {}))
                .await
                .map_err(fanout::Error::from)?
                .into_inner()
                .subscriptions;
            if json {
                let v: Vec<Value> = subs
                    .iter()
                    .map(|s| {
                        json!({"task": s.task_id, "event": s.event, "consumer_group": s.consumer_group,
                               "filter": json_or_text(&s.filter_json), "paused": s.paused,
                               "lease_ms": s.lease_ms, "updated_at": time(s.updated_at_ms)})
                    })
                    .collect();
                print_json(&Value::Array(v))?;
            } else {
                for s in &subs {
                    println!(
                        "{:<24} {:<28} {}{}",
                        s.task_id,
                        s.event,
                        if s.paused { "paused" } else { "active" },
                        if s.consumer_group.is_empty() {
                            String::new()
                        } else {
                            format!("  group {}", s.consumer_group)
                        }
                    );
                }
            }
        }
        SubscriptionsCmd::Pause { task } => {
            client.pause(&task).await?;
            println!("{task}: paused (runs are kept; none is claimed until resumed)");
        }
        SubscriptionsCmd::Resume { task } => {
            client.resume(&task).await?;
            println!("{task}: resumed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
