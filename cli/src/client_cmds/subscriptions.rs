//! `subscriptions list | show | create | update | delete | rotate-secret |
//! pause | resume`: tasks' subscriptions and HTTP subscribers.

use super::*;
use fanout::{HttpSubscription, Retry, Subscription, SubscriptionUpdate};

#[derive(Subcommand)]
pub enum SubscriptionsCmd {
    /// Every subscription of the namespace, with its state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One subscription.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Subscribe a URL to an event: the engine POSTs each run, signed
    /// (Standard Webhooks). Prints the signing secret, once.
    Create {
        id: String,
        /// An event name or pattern (`order.*`).
        #[arg(long)]
        event: String,
        /// http:// or https://.
        #[arg(long)]
        url: String,
        #[command(flatten)]
        settings: Settings,
        /// Sign with this `whsec_` secret instead of a new one.
        #[arg(long)]
        secret: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Change an HTTP subscriber (unset flags keep their value); a task's
    /// subscription takes only --breaker/--probe-after.
    Update {
        id: String,
        #[arg(long)]
        event: Option<String>,
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        settings: Settings,
        #[arg(long)]
        json: bool,
    },
    /// Delete a subscription (its runs stay as they are).
    Delete { id: String },
    /// A new signing secret; the old one keeps signing beside it for
    /// --overlap (default 24h). Prints the new secret, once.
    RotateSecret {
        id: String,
        #[arg(long)]
        overlap: Option<humantime::Duration>,
    },
    /// Stop claiming a subscription's runs; they are still created at publish.
    Pause { id: String },
    /// Claim a paused, tripped or disabled subscription's runs again, in order.
    Resume { id: String },
}

/// Settings shared by create and update.
#[derive(Args)]
pub struct Settings {
    /// Content filter: JSON text or @file.
    #[arg(long)]
    filter: Option<String>,
    #[arg(long)]
    consumer_group: Option<String>,
    /// Total attempts (URLs default to 8, over ~15.6 h).
    #[arg(long)]
    retry: Option<u32>,
    /// First backoff (with --retry; default 5s for URLs).
    #[arg(long, requires = "retry")]
    backoff: Option<humantime::Duration>,
    /// Longest backoff (with --retry; default 10h).
    #[arg(long, requires = "retry")]
    max_backoff: Option<humantime::Duration>,
    /// Backoff growth per attempt (with --retry; default 5).
    #[arg(long, requires = "retry")]
    multiplier: Option<f64>,
    /// Per attempt (default 15s).
    #[arg(long)]
    timeout: Option<humantime::Duration>,
    /// Attempts in flight per engine replica (default 10).
    #[arg(long)]
    concurrency: Option<u32>,
    /// Deliveries per second across replicas: `50/s` or `50` (0: unlimited).
    #[arg(long)]
    rate: Option<String>,
    /// Pause after this many consecutive failed attempts (0: never).
    #[arg(long)]
    breaker: Option<u32>,
    /// Once tripped, try one run after this long (with --breaker; 0s: wait
    /// for an operator).
    #[arg(long, requires = "breaker")]
    probe_after: Option<humantime::Duration>,
}

/// Apply the settings with either builder (they share the setters).
macro_rules! apply {
    ($b:expr, $s:expr) => {{
        let s = $s;
        let mut b = $b;
        if let Some(f) = &s.filter {
            let text = read_arg(f)?;
            let v: Value = serde_json::from_str(&text)
                .with_context(|| format!("--filter: not JSON: {text}"))?;
            b = b.filter(v);
        }
        if let Some(g) = s.consumer_group {
            b = b.consumer_group(g);
        }
        if let Some(n) = s.retry {
            b = b.retry(Retry {
                max_attempts: n,
                initial_backoff: s.backoff.map_or(Duration::from_secs(5), Into::into),
                max_backoff: s
                    .max_backoff
                    .map_or(Duration::from_secs(36_000), Into::into),
                multiplier: s.multiplier.unwrap_or(5.0),
            });
        }
        if let Some(t) = s.timeout {
            b = b.timeout(t.into());
        }
        if let Some(c) = s.concurrency {
            b = b.concurrency(c);
        }
        if let Some(r) = &s.rate {
            b = b.rate_per_second(per_second(r)?);
        }
        if let Some(n) = s.breaker {
            b = b.breaker(
                n,
                s.probe_after.map_or(Duration::from_secs(300), Into::into),
            );
        }
        b
    }};
}

/// `50/s` or `50` → 50.
fn per_second(spec: &str) -> Result<u32> {
    spec.trim()
        .trim_end_matches("/s")
        .parse()
        .ok()
        .with_context(|| format!("--rate '{spec}': expected deliveries per second, e.g. 50/s"))
}

fn sub_json(s: &Subscription) -> Value {
    json!({
        "id": s.task_id, "event": s.event, "state": format!("{:?}", s.state).to_lowercase(),
        "paused": s.paused, "consumer_group": s.consumer_group, "filter": s.filter,
        "retry": {"max_attempts": s.retry.max_attempts,
                  "initial_backoff_ms": s.retry.initial_backoff.as_millis() as u64,
                  "max_backoff_ms": s.retry.max_backoff.as_millis() as u64,
                  "multiplier": s.retry.multiplier},
        "breaker": {"after_failures": s.breaker.after_failures,
                    "probe_after_ms": s.breaker.probe_after.as_millis() as u64},
        "endpoint": s.endpoint.as_ref().map(|e| json!({
            "url": e.url, "timeout_ms": e.timeout.as_millis() as u64,
            "concurrency": e.concurrency, "rate_per_s": e.rate_per_second,
            "previous_secret_until": e.previous_secret_until.map(|t| humantime::format_rfc3339_millis(t).to_string()),
        })),
        "lease_ms": s.lease.as_millis() as u64,
        "updated_at": humantime::format_rfc3339_millis(s.updated_at).to_string(),
    })
}

fn print_sub(s: &Subscription, json: bool) -> Result<()> {
    if json {
        return print_json(&sub_json(s));
    }
    let v = sub_json(s);
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

pub async fn subscriptions(ctx: &Ctx, cmd: SubscriptionsCmd) -> Result<ExitCode> {
    let client = ctx.client().await?;
    match cmd {
        SubscriptionsCmd::List { json } => {
            let subs = client.subscriptions().await?;
            if json {
                print_json(&Value::Array(subs.iter().map(sub_json).collect()))?;
            } else {
                for s in &subs {
                    println!(
                        "{:<24} {:<28} {:<9} {}{}",
                        s.task_id,
                        s.event,
                        format!("{:?}", s.state).to_lowercase(),
                        s.endpoint
                            .as_ref()
                            .map_or("task".to_string(), |e| e.url.clone()),
                        s.consumer_group
                            .as_ref()
                            .map_or(String::new(), |g| format!("  group {g}")),
                    );
                }
            }
        }
        SubscriptionsCmd::Show { id, json } => print_sub(&client.subscription(&id).await?, json)?,
        SubscriptionsCmd::Create {
            id,
            event,
            url,
            settings,
            secret,
            json,
        } => {
            let mut b = apply!(HttpSubscription::new(&id, event, url), settings);
            if let Some(s) = secret {
                b = b.secret(s);
            }
            let created = client.create_subscription(b).await?;
            if json {
                let mut v = sub_json(&created.subscription);
                v["secret"] = Value::String(created.secret);
                print_json(&v)?;
            } else {
                println!("{id}: created");
                println!("signing secret (shown once): {}", created.secret);
            }
        }
        SubscriptionsCmd::Update {
            id,
            event,
            url,
            settings,
            json,
        } => {
            let mut b = apply!(SubscriptionUpdate::new(&id), settings);
            if let Some(e) = event {
                b = b.event(e);
            }
            if let Some(u) = url {
                b = b.url(u);
            }
            print_sub(&client.update_subscription(b).await?, json)?;
        }
        SubscriptionsCmd::Delete { id } => {
            client.delete_subscription(&id).await?;
            println!("{id}: deleted (its runs are kept)");
        }
        SubscriptionsCmd::RotateSecret { id, overlap } => {
            let secret = client.rotate_secret(&id, overlap.map(Into::into)).await?;
            println!("{id}: new signing secret (shown once): {secret}");
            println!("the previous secret keeps signing beside it for the overlap");
        }
        SubscriptionsCmd::Pause { id } => {
            client.pause(&id).await?;
            println!("{id}: paused (runs are kept; none is claimed until resumed)");
        }
        SubscriptionsCmd::Resume { id } => {
            client.resume(&id).await?;
            println!("{id}: resumed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
