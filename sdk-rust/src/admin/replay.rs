//! The event archive and replays: read what was published in a time range,
//! and re-send it through today's subscribers.

use super::views::{ArchivedEvent, Replay};
use crate::client::Client;
use crate::error::Result;
use fanout_proto::v1 as pb;
use futures::Stream;
use std::time::{SystemTime, UNIX_EPOCH};

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Archived events of a name or pattern in a time range, oldest first.
/// From [`Client::archive`].
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until `first` or `stream`"]
pub struct ArchiveQuery {
    client: Client,
    req: pb::ListArchivedRequest,
}

impl ArchiveQuery {
    /// From this time (inclusive; default: the beginning).
    pub fn from(mut self, t: SystemTime) -> Self {
        self.req.from_ms = ms(t);
        self
    }
    /// Up to this time (exclusive; default: now).
    pub fn to(mut self, t: SystemTime) -> Self {
        self.req.to_ms = ms(t);
        self
    }
    /// Events fetched per call when streaming (default 500).
    pub fn page_size(mut self, n: u32) -> Self {
        self.req.limit = n.clamp(1, 10_000);
        self
    }

    /// The oldest `n` events in range (one call).
    pub async fn first(mut self, n: u32) -> Result<Vec<ArchivedEvent>> {
        self.req.limit = n.clamp(1, 10_000);
        list(&self.client, self.req).await
    }

    /// Every event in range, oldest first, page by page.
    pub fn stream(self) -> impl Stream<Item = Result<ArchivedEvent>> + Send + 'static {
        use futures::{StreamExt, TryStreamExt};
        futures::stream::try_unfold((self, false), |(mut q, done)| async move {
            if done {
                return Ok::<_, crate::Error>(None);
            }
            let page = list(&q.client, q.req.clone()).await?;
            let done = match page.last() {
                Some(last) => {
                    q.req.after_ms = ms(last.published_at);
                    q.req.after_id = last.event_id.clone();
                    false
                }
                None => true,
            };
            Ok(Some((
                futures::stream::iter(page.into_iter().map(Ok)),
                (q, done),
            )))
        })
        .try_flatten()
        .boxed()
    }
}

async fn list(client: &Client, req: pb::ListArchivedRequest) -> Result<Vec<ArchivedEvent>> {
    Ok(client
        .raw()
        .replay()
        .list_archived(client.request(req))
        .await?
        .into_inner()
        .events
        .into_iter()
        .map(ArchivedEvent::from)
        .collect())
}

/// What to replay: [`Client::start_replay`].
///
/// ```
/// use fanout::ReplaySpec;
/// use std::time::{Duration, SystemTime};
/// let now = SystemTime::now();
/// let spec = ReplaySpec::new("order.*", now - Duration::from_secs(3600), now)
///     .tasks(["send-receipt"])
///     .skip_already_replayed();
/// # let _ = spec;
/// ```
#[derive(Debug, Clone)]
pub struct ReplaySpec {
    req: pb::StartReplayRequest,
}

impl ReplaySpec {
    /// Events named `event` (or matching the pattern `order.*`, `#`)
    /// published in `[from, to)`.
    pub fn new(event: impl Into<String>, from: SystemTime, to: SystemTime) -> Self {
        ReplaySpec {
            req: pb::StartReplayRequest {
                event: event.into(),
                from_ms: ms(from),
                to_ms: ms(to),
                ..Default::default()
            },
        }
    }
    /// Only these subscribers (default: every current one).
    pub fn tasks(mut self, tasks: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.req.tasks = tasks.into_iter().map(Into::into).collect();
        self
    }
    /// Only archived events whose payload matches this filter.
    pub fn filter(mut self, filter: &serde_json::Value) -> Self {
        self.req.filter_json = filter.to_string();
        self
    }
    /// Count what would be replayed; create nothing.
    pub fn dry_run(mut self) -> Self {
        self.req.dry_run = true;
        self
    }
    /// At most this many events per second.
    pub fn rate_per_sec(mut self, rate: f64) -> Self {
        self.req.rate_per_sec = rate;
        self
    }
    /// Skip (event, task) pairs an earlier replay already re-ran.
    pub fn skip_already_replayed(mut self) -> Self {
        self.req.skip_already_replayed = true;
        self
    }
}

impl Client {
    /// Archived events of `event` (a name or pattern): `.from(t).to(t)`,
    /// then `.first(n)` or `.stream()`.
    pub fn archive(&self, event: impl Into<String>) -> ArchiveQuery {
        ArchiveQuery {
            client: self.clone(),
            req: pb::ListArchivedRequest {
                event: event.into(),
                limit: 500,
                ..Default::default()
            },
        }
    }

    /// Start a replay (runs in the engine; poll it with [`Client::replay`]).
    pub async fn start_replay(&self, spec: ReplaySpec) -> Result<Replay> {
        Ok(self
            .raw()
            .replay()
            .start_replay(self.request(spec.req))
            .await?
            .into_inner()
            .into())
    }

    /// A replay's progress.
    pub async fn replay(&self, id: &str) -> Result<Replay> {
        Ok(self
            .raw()
            .replay()
            .get_replay(self.request(pb::GetReplayRequest { id: id.into() }))
            .await?
            .into_inner()
            .into())
    }

    /// Stop a running replay; what it created stays.
    pub async fn cancel_replay(&self, id: &str) -> Result<Replay> {
        Ok(self
            .raw()
            .replay()
            .cancel_replay(self.request(pb::GetReplayRequest { id: id.into() }))
            .await?
            .into_inner()
            .into())
    }
}
