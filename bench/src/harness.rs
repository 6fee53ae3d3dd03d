//! Start (or reach) an engine, and count work done by in-process workers.

use crate::{Args, Backend};
use fanout_engine::config::{Config, StoreConfig};
use fanout_engine::{Listeners, Running};
use std::time::Duration;

/// An engine for one scenario: in-process unless `--server`.
pub struct Bench {
    pub url: String,
    /// The in-process engine (`None` with `--server`).
    running: Option<Running>,
    _dir: Option<tempfile::TempDir>,
    /// Postgres `(url, schema)` made for this run, dropped at `stop`.
    schema: Option<(String, String)>,
    /// `--scrape-metrics-ms`: reads `/metrics` while the engine runs.
    _scraper: Option<crate::observe::Scraper>,
    /// `--auth`: the admin key every client sends (with `--server`:
    /// `FANOUT_API_KEY`).
    api_key: Option<String>,
}

impl Bench {
    pub async fn start(args: &Args, tweak: impl FnOnce(&mut Config)) -> anyhow::Result<Bench> {
        Self::start_with(args, tweak, false).await
    }

    /// [`Bench::start`] with the console mounted on the HTTP listener.
    pub async fn start_console(args: &Args) -> anyhow::Result<Bench> {
        Self::start_with(args, |_| {}, true).await
    }

    /// The Postgres `(url, schema)` this run made, if any.
    pub fn postgres_schema(&self) -> Option<(String, String)> {
        self.schema.clone()
    }

    /// The in-process engine (`None` with `--server`).
    pub fn engine(&self) -> Option<fanout_engine::Engine> {
        self.running.as_ref().map(|r| r.engine().clone())
    }

    /// The in-process engine's HTTP address (`None` with `--server`).
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.running.as_ref().map(Running::http_addr)
    }

    async fn start_with(
        args: &Args,
        tweak: impl FnOnce(&mut Config),
        console: bool,
    ) -> anyhow::Result<Bench> {
        if let Some(url) = &args.server {
            return Ok(Bench {
                url: url.clone(),
                running: None,
                _dir: None,
                schema: None,
                _scraper: None,
                api_key: std::env::var("FANOUT_API_KEY")
                    .ok()
                    .filter(|k| !k.is_empty()),
            });
        }
        let dir = tempfile::tempdir()?;
        let mut config = Config::embedded(dir.path());
        let mut made = None;
        if args.backend == Backend::Postgres {
            let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
            made = Some((args.database_url.clone(), schema.clone()));
            config.store = StoreConfig::Postgres {
                url: args.database_url.clone(),
                schema,
                max_connections: 16,
            };
        }
        if let Some(n) = args.publish_concurrency {
            config.publish_concurrency = n;
        }
        if let Some(n) = args.complete_concurrency {
            config.complete_concurrency = n;
        }
        if let Some(us) = args.claim_linger_us {
            config.claim_linger_us = us;
        }
        if args.auth {
            config.auth.mode = fanout_engine::config::AuthMode::Required;
        }
        tweak(&mut config);
        let mut listeners = Listeners::bind("127.0.0.1:0", "127.0.0.1:0").await?;
        if console {
            let opts = fanout_dashboard::Options::new("", listeners.http.local_addr()?);
            listeners = listeners.mount(fanout_dashboard::mount(opts));
        }
        let running = fanout_engine::spawn(config, listeners).await?;
        let api_key = if args.auth {
            running
                .engine()
                .bootstrap_key()
                .await
                .map_err(|e| anyhow::anyhow!("bootstrap key: {e}"))?
        } else {
            None
        };
        let scraper = args.scrape_metrics_ms.map(|ms| {
            crate::observe::Scraper::start(running.http_addr(), Duration::from_millis(ms.max(1)))
        });
        Ok(Bench {
            _scraper: scraper,
            url: format!("http://{}", running.grpc_addr()),
            running: Some(running),
            _dir: Some(dir),
            schema: made,
            api_key,
        })
    }

    pub async fn client(&self) -> anyhow::Result<fanout::Client> {
        let client = fanout::Client::connect(&self.url).await?;
        Ok(match &self.api_key {
            Some(k) => client.api_key(k)?,
            None => client,
        })
    }

    pub async fn stop(self) {
        if let Some(r) = self.running {
            match tokio::time::timeout(Duration::from_secs(30), r.shutdown()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("engine stopped with an error: {e}"),
                Err(_) => eprintln!("engine did not stop within 30 s"),
            }
        }
        // Each run starts on empty tables; leftovers would only pile up.
        // FANOUT_BENCH_KEEP_SCHEMA=1 keeps it, to look at plans afterwards.
        let keep = std::env::var("FANOUT_BENCH_KEEP_SCHEMA").is_ok_and(|v| v == "1");
        if let Some((url, schema)) = self.schema.filter(|_| !keep) {
            use sqlx::Executor;
            let dropped = async {
                let pool = sqlx::PgPool::connect(&url).await?;
                pool.execute(format!("DROP SCHEMA \"{schema}\" CASCADE").as_str())
                    .await?;
                pool.close().await;
                Ok::<_, sqlx::Error>(())
            };
            if let Err(e) = dropped.await {
                eprintln!("could not drop bench schema {schema}: {e}");
            }
        }
    }
}
