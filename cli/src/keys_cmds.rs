//! `fanout keys create|list|revoke` and `fanout audit list`. Keys go
//! through a running engine (an admin key), or with `--database-url`
//! straight to the store, no engine needed: how the first key of a
//! deployment is made, or a lost admin key replaced.

use crate::ctx::Ctx;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use fanout::proto as pb;
use fanout_engine::api::grpc::keys::key_info;
use fanout_engine::engine::KeySpec;
use fanout_engine::storage::AuthStore as _;
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Make a key (printed once). `--namespace` binds it to one namespace;
    /// without it the key works in every namespace.
    Create(CreateArgs),
    /// Every key: id, name, scopes, namespace, expiry, last use, revoked.
    List(ListArgs),
    /// Revoke a key by id (fo_…) or name; every replica refuses it within
    /// seconds.
    Revoke(RevokeArgs),
}

/// Where key commands act: a running engine, or the store directly.
#[derive(Args)]
pub struct Direct {
    /// Work on the store directly (PostgreSQL URL or SQLite file), no
    /// engine needed (the bootstrap).
    #[arg(long)]
    database_url: Option<String>,
    /// Postgres schema with --database-url.
    #[arg(long, default_value = "fanout")]
    postgres_schema: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct CreateArgs {
    name: String,
    /// publish | worker | read | admin (repeatable; admin includes the others).
    #[arg(long = "scope", required = true)]
    scopes: Vec<String>,
    /// Limit a publish key to these event names or patterns (repeatable, or
    /// comma separated), e.g. 'order.*'.
    #[arg(long = "events", value_delimiter = ',')]
    events: Vec<String>,
    /// Lifetime, e.g. 90d, 12h (default: never expires).
    #[arg(long)]
    expires: Option<humantime::Duration>,
    #[command(flatten)]
    direct: Direct,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    direct: Direct,
}

#[derive(Args)]
pub struct RevokeArgs {
    /// The key's id (fo_…) or name.
    key: String,
    #[command(flatten)]
    direct: Direct,
}

fn time(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string()
}

fn key_json(k: &pb::ApiKeyInfo) -> Value {
    json!({
        "id": k.id, "name": k.name,
        "namespace": if k.namespace.is_empty() { Value::Null } else { k.namespace.clone().into() },
        "scopes": k.scopes, "events": k.events, "created_by": k.created_by,
        "created_at": time(k.created_at_ms), "expires_at": time(k.expires_at_ms),
        "revoked_at": time(k.revoked_at_ms), "last_used_at": time(k.last_used_at_ms),
    })
}

async fn store(d: &Direct) -> Result<fanout_engine::storage::sql::SqlStore> {
    let url = d.database_url.as_deref().unwrap_or_default();
    let config = if url.starts_with("postgres") {
        fanout_engine::config::StoreConfig::Postgres {
            url: url.to_string(),
            schema: d.postgres_schema.clone(),
            max_connections: 2,
        }
    } else {
        fanout_engine::config::StoreConfig::Sqlite {
            path: url.trim_start_matches("sqlite://").into(),
        }
    };
    fanout_engine::storage::sql::SqlStore::connect(&config)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| "cannot open the store (a SQLite file in use by `fanout dev` is locked: use the engine instead)")
}

pub async fn keys(ctx: &Ctx, cmd: KeysCmd) -> Result<ExitCode> {
    match cmd {
        KeysCmd::Create(a) => {
            let (key, secret) = if a.direct.database_url.is_some() {
                let spec = KeySpec {
                    name: a.name.clone(),
                    scopes: fanout_engine::api::grpc::keys::parse_scopes(&a.scopes)
                        .map_err(|e| anyhow::anyhow!("{e}"))?,
                    namespace: ctx.namespace.clone(),
                    events: a.events.clone(),
                    expires_in_ms: a.expires.map_or(0, |d| d.as_millis() as i64),
                };
                let s = store(&a.direct).await?;
                let made = fanout_engine::engine::create_key(&s, spec, "cli".into(), false).await;
                s.close().await;
                let (key, secret) = made
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .context("key not stored")?;
                (key_info(key), secret)
            } else {
                let client = ctx.client().await?;
                let r = client
                    .raw()
                    .admin()
                    .create_api_key(client.raw().request(pb::CreateApiKeyRequest {
                        name: a.name.clone(),
                        scopes: a.scopes.clone(),
                        namespace: ctx.namespace.clone().unwrap_or_default(),
                        events: a.events.clone(),
                        expires_in_ms: a.expires.map_or(0, |d| d.as_millis() as u64),
                    }))
                    .await
                    .map_err(fanout::Error::from)?
                    .into_inner();
                (r.key.unwrap_or_default(), r.secret)
            };
            if a.direct.json {
                let mut v = key_json(&key);
                v["secret"] = secret.into();
                println!("{v}");
            } else {
                println!("{secret}");
                eprintln!(
                    "key {} ('{}'): scopes {}, namespace {} — shown once; store it now",
                    key.id,
                    key.name,
                    key.scopes.join(", "),
                    if key.namespace.is_empty() {
                        "every"
                    } else {
                        &key.namespace
                    }
                );
            }
        }
        KeysCmd::List(a) => {
            let keys: Vec<pb::ApiKeyInfo> = if a.direct.database_url.is_some() {
                let s = store(&a.direct).await?;
                let list = s.list_keys(None).await;
                s.close().await;
                list.map_err(|e| anyhow::anyhow!("{e}"))?
                    .into_iter()
                    .map(key_info)
                    .collect()
            } else {
                let client = ctx.client().await?;
                client
                    .raw()
                    .admin()
                    .list_api_keys(client.raw().request(pb::ListApiKeysRequest {}))
                    .await
                    .map_err(fanout::Error::from)?
                    .into_inner()
                    .keys
            };
            if a.direct.json {
                for k in &keys {
                    println!("{}", key_json(k));
                }
            } else {
                println!(
                    "{:<12} {:<24} {:<22} {:<12} {:<20} {:<20} STATE",
                    "ID", "NAME", "SCOPES", "NAMESPACE", "EXPIRES", "LAST USED"
                );
                for k in &keys {
                    let state = if k.revoked_at_ms > 0 {
                        "revoked"
                    } else {
                        "live"
                    };
                    println!(
                        "{:<12} {:<24} {:<22} {:<12} {:<20} {:<20} {state}",
                        k.id,
                        k.name,
                        k.scopes.join(","),
                        if k.namespace.is_empty() {
                            "*"
                        } else {
                            &k.namespace
                        },
                        time(k.expires_at_ms),
                        time(k.last_used_at_ms),
                    );
                }
            }
        }
        KeysCmd::Revoke(a) => {
            let key = if a.direct.database_url.is_some() {
                let s = store(&a.direct).await?;
                let r = s
                    .revoke_key(&a.key, None, fanout_engine::model::now_ms())
                    .await;
                s.close().await;
                key_info(
                    r.map_err(|e| anyhow::anyhow!("{e}"))?
                        .with_context(|| format!("no API key '{}'", a.key))?,
                )
            } else {
                let client = ctx.client().await?;
                client
                    .raw()
                    .admin()
                    .revoke_api_key(client.raw().request(pb::RevokeApiKeyRequest { key: a.key }))
                    .await
                    .map_err(fanout::Error::from)?
                    .into_inner()
            };
            if a.direct.json {
                println!("{}", key_json(&key));
            } else {
                println!("revoked {} ('{}')", key.id, key.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Mutations (definitions, DLQ actions, replays, subscriptions, keys,
    /// tokens) and who made them, newest first.
    List(AuditArgs),
}

#[derive(Args)]
pub struct AuditArgs {
    /// Only entries newer than this, e.g. 1h, 7d.
    #[arg(long)]
    since: Option<humantime::Duration>,
    /// Every namespace (an unbound admin key).
    #[arg(long)]
    all_namespaces: bool,
    #[arg(long, default_value_t = 100)]
    limit: u32,
    #[arg(long)]
    json: bool,
}

pub async fn audit(ctx: &Ctx, cmd: AuditCmd) -> Result<ExitCode> {
    let AuditCmd::List(a) = cmd;
    let client = ctx.client().await?;
    let since_ms = a
        .since
        .map_or(0, |d| fanout_engine::model::now_ms() - d.as_millis() as i64);
    let entries = client
        .raw()
        .admin()
        .list_audit(client.raw().request(pb::ListAuditRequest {
            since_ms,
            before_id: String::new(),
            limit: a.limit,
            all_namespaces: a.all_namespaces,
        }))
        .await
        .map_err(fanout::Error::from)?
        .into_inner()
        .entries;
    for e in &entries {
        if a.json {
            let detail: Value = serde_json::from_str(&e.detail_json).unwrap_or(Value::Null);
            println!(
                "{}",
                json!({"id": e.id, "at": time(e.at_ms), "namespace": e.namespace, "actor": e.actor,
                       "action": e.action, "target": e.target, "detail": detail})
            );
        } else {
            println!(
                "{}  {:<12} {:<20} {:<24} {}  {}",
                time(e.at_ms),
                e.namespace,
                e.actor,
                e.action,
                e.target,
                e.detail_json
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum DashboardCmd {
    /// Print a login link for the console: a new key (default scopes read
    /// and admin, 12 h) the link logs the browser in with. Revoke it with
    /// `fanout keys revoke NAME` to end that session.
    Login(LoginArgs),
}

#[derive(Args)]
pub struct LoginArgs {
    /// The console's address (the engine's HTTP listener and base path).
    #[arg(
        long,
        env = "FANOUT_CONSOLE_URL",
        default_value = "http://127.0.0.1:7071"
    )]
    console_url: String,
    /// Scopes of the session's key (repeatable).
    #[arg(long = "scope", default_values_t = ["read".to_string(), "admin".to_string()])]
    scopes: Vec<String>,
    /// How long the link and its session last.
    #[arg(long, default_value = "12h")]
    expires: humantime::Duration,
}

pub async fn dashboard(ctx: &Ctx, cmd: DashboardCmd) -> Result<ExitCode> {
    let DashboardCmd::Login(a) = cmd;
    let client = ctx.client().await?;
    let name = format!("console-{:08x}", rand_suffix());
    let r = client
        .raw()
        .admin()
        .create_api_key(client.raw().request(pb::CreateApiKeyRequest {
            name: name.clone(),
            scopes: a.scopes,
            namespace: ctx.namespace.clone().unwrap_or_default(),
            events: vec![],
            expires_in_ms: a.expires.as_millis() as u64,
        }))
        .await
        .map_err(fanout::Error::from)?
        .into_inner();
    println!(
        "{}/login?key={}",
        a.console_url.trim_end_matches('/'),
        r.secret
    );
    eprintln!(
        "a login link for key '{name}', valid for {}; it works until then or until `fanout keys revoke {name}`",
        a.expires
    );
    Ok(ExitCode::SUCCESS)
}

/// A few random bits for a session key's name.
fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}
