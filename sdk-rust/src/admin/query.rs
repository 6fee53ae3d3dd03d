//! Query builders for runs and dead letters: set filters, then take one
//! page (`first`) or every match as a stream that fetches page by page.

use super::views::{Run, RunDetail, RunLog, RunStatus};
use crate::client::Client;
use crate::error::Result;
use fanout_proto::v1 as pb;
use futures::Stream;

/// Most runs one page holds (the engine's own cap is 10,000).
const PAGE: u32 = 500;

/// Runs matching filters, newest first. From [`Client::runs`].
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until `first` or `stream`"]
pub struct RunQuery {
    client: Client,
    req: pb::ListRunsRequest,
    page: u32,
}

impl RunQuery {
    /// Only runs of this event name.
    pub fn event(mut self, name: impl Into<String>) -> Self {
        self.req.event = name.into();
        self
    }
    /// Only the runs one event created (its fan-out).
    pub fn event_id(mut self, id: impl Into<String>) -> Self {
        self.req.event_id = id.into();
        self
    }
    /// Only runs of this task.
    pub fn task(mut self, task_id: impl Into<String>) -> Self {
        self.req.task = task_id.into();
        self
    }
    /// Only runs in this status.
    pub fn status(mut self, status: RunStatus) -> Self {
        self.req.status = status.as_str().into();
        self
    }
    /// Only runs older than this run id (a cursor from an earlier page).
    pub fn before(mut self, run_id: impl Into<String>) -> Self {
        self.req.before = run_id.into();
        self
    }
    /// Runs fetched per call when streaming (default 500).
    pub fn page_size(mut self, n: u32) -> Self {
        self.page = n.clamp(1, 10_000);
        self
    }

    /// The newest `n` matches (one call; `n` up to 10,000).
    pub async fn first(mut self, n: u32) -> Result<Vec<Run>> {
        self.req.limit = n.clamp(1, 10_000);
        list_runs(&self.client, self.req).await
    }

    /// Every match, newest first, fetched a page at a time as the stream is
    /// read.
    pub fn stream(self) -> impl Stream<Item = Result<Run>> + Send + 'static {
        let RunQuery {
            client,
            mut req,
            page,
        } = self;
        req.limit = page;
        pages(move |before| {
            let client = client.clone();
            let mut req = req.clone();
            if let Some(b) = before {
                req.before = b;
            }
            async move { list_runs(&client, req).await }
        })
    }
}

async fn list_runs(client: &Client, req: pb::ListRunsRequest) -> Result<Vec<Run>> {
    Ok(client
        .raw()
        .admin()
        .list_runs(client.request(req))
        .await?
        .into_inner()
        .runs
        .into_iter()
        .map(Run::from)
        .collect())
}

/// Pages of a list keyed by run id (newest first), flattened into one
/// stream: `fetch(None)` first, then `fetch(Some(last id))` until a page
/// comes back empty.
fn pages<F, Fut>(fetch: F) -> impl Stream<Item = Result<Run>> + Send + 'static
where
    F: Fn(Option<String>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Vec<Run>>> + Send + 'static,
{
    use futures::{StreamExt, TryStreamExt};
    futures::stream::try_unfold(
        (fetch, None::<String>, false),
        |(fetch, cursor, done)| async move {
            if done {
                return Ok::<_, crate::Error>(None);
            }
            let page = fetch(cursor).await?;
            let next = page.last().map(|r| r.id.clone());
            let done = next.is_none();
            Ok(Some((
                futures::stream::iter(page.into_iter().map(Ok)),
                (fetch, next, done),
            )))
        },
    )
    .try_flatten()
    .boxed()
}

/// Dead runs in the DLQ, newest first, and what to do with them. From
/// [`Client::dead_letters`]; without filters it selects every dead letter.
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until listed, retried or discarded"]
pub struct DeadLetterQuery {
    client: Client,
    event: String,
    task: String,
    error_prefix: String,
    ids: Vec<String>,
    page: u32,
}

impl DeadLetterQuery {
    /// Only dead letters of this event.
    pub fn event(mut self, name: impl Into<String>) -> Self {
        self.event = name.into();
        self
    }
    /// Only dead letters of this task.
    pub fn task(mut self, task_id: impl Into<String>) -> Self {
        self.task = task_id.into();
        self
    }
    /// Only dead letters whose error starts with this text (for `retry`,
    /// `discard` and `count`: an error fingerprint from the console).
    pub fn error_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.error_prefix = prefix.into();
        self
    }
    /// Only these runs (for `retry` / `discard`; the event and task
    /// filters then do not apply).
    pub fn ids(mut self, run_ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.ids = run_ids.into_iter().map(Into::into).collect();
        self
    }
    /// Runs fetched per call when streaming (default 500).
    pub fn page_size(mut self, n: u32) -> Self {
        self.page = n.clamp(1, 10_000);
        self
    }

    fn list_request(&self, limit: u32, before: Option<String>) -> pb::ListDeadLettersRequest {
        pb::ListDeadLettersRequest {
            event: self.event.clone(),
            task: self.task.clone(),
            limit,
            before: before.unwrap_or_default(),
        }
    }

    /// The newest `n` dead letters (one call).
    pub async fn first(self, n: u32) -> Result<Vec<Run>> {
        let req = self.list_request(n.clamp(1, 10_000), None);
        list_dead(&self.client, req).await
    }

    /// Every dead letter selected, newest first, page by page.
    pub fn stream(self) -> impl Stream<Item = Result<Run>> + Send + 'static {
        pages(move |before| {
            let req = self.list_request(self.page, before);
            let client = self.client.clone();
            async move { list_dead(&client, req).await }
        })
    }

    /// Ids when given (filters then do not apply), otherwise every dead
    /// letter the filters select.
    fn selector(&self) -> pb::DeadLetterSelector {
        if self.ids.is_empty() {
            pb::DeadLetterSelector {
                all: true,
                ids: Vec::new(),
                event: self.event.clone(),
                task: self.task.clone(),
                error_prefix: self.error_prefix.clone(),
                dry_run: false,
            }
        } else {
            pb::DeadLetterSelector {
                ids: self.ids.clone(),
                ..Default::default()
            }
        }
    }

    /// Queue the selected dead letters again with a fresh attempt budget
    /// (history kept); returns how many.
    pub async fn retry(self) -> Result<u64> {
        self.act(false, false).await
    }

    /// How many dead letters `retry` or `discard` would touch now (a dry
    /// run: nothing changes).
    pub async fn count(self) -> Result<u64> {
        self.act(false, true).await
    }

    /// Mark the selected dead letters discarded; returns how many.
    pub async fn discard(self) -> Result<u64> {
        self.act(true, false).await
    }

    /// Retry (or `discard`) the selection, or only count it (`dry_run`).
    async fn act(self, discard: bool, dry_run: bool) -> Result<u64> {
        let mut sel = self.selector();
        sel.dry_run = dry_run;
        let sel = self.client.request(sel);
        let mut admin = self.client.raw().admin();
        let answer = if discard {
            admin.discard_dead_letters(sel).await?
        } else {
            admin.retry_dead_letters(sel).await?
        };
        Ok(answer.into_inner().count)
    }
}

async fn list_dead(client: &Client, req: pb::ListDeadLettersRequest) -> Result<Vec<Run>> {
    Ok(client
        .raw()
        .admin()
        .list_dead_letters(client.request(req))
        .await?
        .into_inner()
        .runs
        .into_iter()
        .map(Run::from)
        .collect())
}

impl Client {
    /// Runs, filtered: `client.runs().task("t").status(RunStatus::Dead).first(20)`.
    pub fn runs(&self) -> RunQuery {
        RunQuery {
            client: self.clone(),
            req: pb::ListRunsRequest::default(),
            page: PAGE,
        }
    }

    /// One run with its attempts and its event's payload.
    pub async fn run(&self, id: &str) -> Result<RunDetail> {
        Ok(self
            .raw()
            .admin()
            .get_run(self.request(pb::GetRunRequest { id: id.into() }))
            .await?
            .into_inner()
            .into())
    }

    /// What run `id`'s handlers logged, attempt by attempt (`attempt`:
    /// only that one), at most 10,000 lines after the cursor
    /// `(attempt, seq)` of the last line already read.
    pub async fn run_logs(
        &self,
        id: &str,
        attempt: Option<u32>,
        after: Option<(u32, u32)>,
    ) -> Result<Vec<RunLog>> {
        let (after_attempt, after_seq) = after.unwrap_or((0, 0));
        let req = pb::GetRunLogsRequest {
            run_id: id.into(),
            attempt: attempt.unwrap_or(0),
            after_attempt,
            after_seq,
            limit: 10_000,
        };
        Ok(self
            .raw()
            .admin()
            .get_run_logs(self.request(req))
            .await?
            .into_inner()
            .lines
            .into_iter()
            .map(RunLog::from)
            .collect())
    }

    /// Dead letters: list them, or `retry()` / `discard()` the selection.
    pub fn dead_letters(&self) -> DeadLetterQuery {
        DeadLetterQuery {
            client: self.clone(),
            event: String::new(),
            task: String::new(),
            error_prefix: String::new(),
            ids: Vec::new(),
            page: PAGE,
        }
    }
}
