//! `events define | list | show | log`.

use super::*;

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
                    Some(fanout::RateLimit {
                        limit,
                        window,
                        key_field: rate_limit_key,
                    })
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
            let raw = client.raw();
            let events = raw
                .events()
                .list_events(raw.request(pb::ListEventsRequest {}))
                .await
                .map_err(fanout::Error::from)?
                .into_inner()
                .events;
            if json {
                print_json(&Value::Array(events.iter().map(event_json).collect()))?;
            } else if events.is_empty() {
                match &ctx.namespace {
                    Some(ns) => println!("no events defined in namespace '{ns}'"),
                    None => {
                        println!("no events defined (in the API key's namespace, else 'default')")
                    }
                }
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
            let raw = client.raw();
            let e = raw
                .events()
                .get_event(raw.request(pb::GetEventRequest { name, version }))
                .await
                .map_err(fanout::Error::from)?
                .into_inner();
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
