//! Replay: re-send a time range of archived events through today's
//! subscriptions and filters, as a durable job.
//!
//! A job is a row in the store. Any engine may lease it (replicas share
//! jobs; a lapsed lease is taken over) and works page by page in publish
//! order: read 500 archived events after the cursor, route each through the
//! current subscriptions (consumer-group choice is a hash of the ordering
//! key, or of the original event id, so it repeats the first choice), and
//! commit the page's new events and runs *with* the advanced cursor. Memory
//! is one page whatever the range; a restart resumes at the cursor; a
//! cancel is seen at the next page. Replays bypass the publish rate limiter
//! and obey their own `rate_per_sec`.

use crate::archive::{Archive, ArchiveQuery};
use crate::engine::Engine;
use crate::error::EntityKind;
use crate::error::{Error, Result};
use crate::model::*;
use crate::routing::filter::Filter;
use crate::routing::pattern::{is_pattern, matches as name_matches};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const PAGE: usize = 500;
const LEASE_MS: i64 = 10_000;

/// What a caller asks to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayRequest {
    pub event_pattern: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub tasks: Vec<String>,
    pub filter_json: String,
    pub dry_run: bool,
    pub rate_per_sec: f64,
    pub skip_already_replayed: bool,
}

fn archive_query(ns: &str, pattern: &str, from: i64, to: i64) -> ArchiveQuery {
    ArchiveQuery {
        namespace: ns.into(),
        events: if is_pattern(pattern) {
            vec![]
        } else {
            vec![pattern.to_string()]
        },
        from_ms: from.max(0) as u64,
        to_ms: to.max(0) as u64,
        after: None,
        limit: PAGE,
    }
}

impl Engine {
    /// Validate and store a replay job; a runner picks it up at once.
    pub async fn start_replay(&self, ns: &str, req: ReplayRequest) -> Result<ReplayJob> {
        crate::routing::pattern::check("event", &req.event_pattern)?;
        if req.from_ms >= req.to_ms {
            return Err(Error::InvalidArgument(format!(
                "from ({}) must be before to ({})",
                req.from_ms, req.to_ms
            )));
        }
        Filter::parse(&req.filter_json)
            .map_err(|e| Error::InvalidArgument(format!("filter: {e}")))?;
        if req.rate_per_sec < 0.0 || !req.rate_per_sec.is_finite() {
            return Err(Error::InvalidArgument(
                "rate must be a positive number of events per second".into(),
            ));
        }
        let subs = self.registry().subscriptions(ns).await?;
        for t in &req.tasks {
            if !subs.iter().any(|s| &s.sub.task_id == t) {
                return Err(Error::not_found(
                    EntityKind::Task,
                    t,
                    format!("task '{t}' has no subscription in namespace '{ns}'"),
                ));
            }
        }
        // Events published in the range but still in the outbox belong to
        // it: give the archiver a moment so the count includes them (the
        // runner waits for them in any case).
        if let Err(e) = self
            .archived_before(ns, req.to_ms.min(now_ms()), Duration::from_secs(5))
            .await
        {
            tracing::info!(namespace = ns, error = %e, "replay count may miss events not yet archived");
        }
        let total = self
            .archive()
            .count(&archive_query(
                ns,
                &req.event_pattern,
                req.from_ms,
                req.to_ms,
            ))
            .await?;
        let now = now_ms();
        let job = ReplayJob {
            id: new_id(),
            namespace: ns.into(),
            event_pattern: req.event_pattern,
            from_ms: req.from_ms,
            to_ms: req.to_ms,
            tasks: req.tasks,
            filter_json: req.filter_json,
            dry_run: req.dry_run,
            rate_per_sec: req.rate_per_sec,
            skip_already_replayed: req.skip_already_replayed,
            status: ReplayStatus::Running,
            cursor_ms: req.from_ms,
            cursor_id: String::new(),
            events_total: total as i64,
            events_scanned: 0,
            events_replayed: 0,
            runs_created: 0,
            by_task: Default::default(),
            error: String::new(),
            created_at_ms: now,
            updated_at_ms: now,
            finished_at_ms: 0,
        };
        self.store().create_replay(&job).await?;
        self.replay_wakeup().now();
        tracing::info!(replay = %job.id, namespace = ns, pattern = %job.event_pattern, total, dry_run = job.dry_run, "replay started");
        self.audit(
            ns,
            "replay.start",
            &job.id,
            serde_json::json!({"event": job.event_pattern, "from_ms": job.from_ms, "to_ms": job.to_ms,
                "tasks": job.tasks, "dry_run": job.dry_run}),
        )
        .await;
        Ok(job)
    }

    /// Wait (up to `max`) until every event of `ns` published before
    /// `before_ms` is in the archive; UNAVAILABLE if it is not by then.
    pub async fn archived_before(&self, ns: &str, before_ms: i64, max: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let shipped = self.archive_shipped().clone();
            let notified = shipped.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.store().unarchived_before(ns, before_ms).await? {
                return Ok(());
            }
            self.archive_wakeup().now();
            tokio::select! {
                _ = &mut notified => {}
                // The archiver may run in another replica: look again.
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(Error::Unavailable(format!(
                        "events of namespace '{ns}' published in the range are not archived yet (is the archive reachable?)"
                    )));
                }
            }
        }
    }

    pub async fn replay_status(&self, ns: &str, id: &str) -> Result<ReplayJob> {
        self.store().get_replay(ns, id).await?.ok_or_else(|| {
            Error::not_found(
                EntityKind::Replay,
                id,
                format!("replay '{id}' not found in namespace '{ns}'"),
            )
        })
    }

    pub async fn cancel_replay(&self, ns: &str, id: &str) -> Result<ReplayJob> {
        let job = self
            .store()
            .cancel_replay(ns, id, now_ms())
            .await?
            .ok_or_else(|| {
                Error::not_found(
                    EntityKind::Replay,
                    id,
                    format!("replay '{id}' not found in namespace '{ns}'"),
                )
            })?;
        self.audit(ns, "replay.cancel", id, serde_json::json!({}))
            .await;
        Ok(job)
    }

    /// Archived events of a name or pattern in a range, one page.
    pub async fn archived(
        &self,
        ns: &str,
        pattern: &str,
        from: i64,
        to: i64,
        after: Option<(u64, String)>,
        limit: usize,
    ) -> Result<Vec<ArchivedEvent>> {
        crate::routing::pattern::check("event", pattern)?;
        let mut q = archive_query(ns, pattern, from, to);
        q.after = after;
        q.limit = limit.clamp(1, 10_000);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        loop {
            let page = self.archive().read(&q).await?;
            let n = page.len();
            if let Some(last) = page.last() {
                q.after = Some((last.published_at_ms, last.event_id.clone()));
            }
            for e in page
                .into_iter()
                .filter(|e| name_matches(pattern, &e.event_name))
            {
                // A page stays under a standard 4 MiB gRPC message: cut it
                // early (never empty) and let the caller's cursor go on.
                bytes += e.payload.len() + 256;
                if bytes > crate::limits::MAX_RESPONSE_BYTES && !out.is_empty() {
                    return Ok(out);
                }
                out.push(e);
            }
            if out.len() >= q.limit || n < q.limit {
                out.truncate(q.limit);
                return Ok(out);
            }
        }
    }
}

/// Work on replay jobs until cancelled.
pub async fn runner(engine: Engine, cancel: CancellationToken) {
    let owner = new_id();
    loop {
        if cancel.is_cancelled() {
            if let Err(e) = engine.store().release_replays(&owner).await {
                tracing::warn!(error = %e, "could not release replay leases; they lapse in 10 s");
            }
            return;
        }
        let wake = engine.replay_wakeup().clone();
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match engine
            .store()
            .lease_replay(&owner, now_ms(), LEASE_MS)
            .await
        {
            Ok(Some(job)) => {
                let id = job.id.clone();
                if let Err(e) = process(&engine, engine.archive(), job, &owner, &cancel).await {
                    tracing::warn!(replay = %id, error = %e, "replay page failed; will resume from its cursor");
                    tokio::select! { _ = tokio::time::sleep(Duration::from_secs(1)) => {}, _ = cancel.cancelled() => {} }
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot lease replay jobs"),
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = cancel.cancelled() => {}
        }
    }
}

async fn process(
    engine: &Engine,
    archive: &Arc<dyn Archive>,
    mut job: ReplayJob,
    owner: &str,
    cancel: &CancellationToken,
) -> Result<()> {
    let ns = job.namespace.clone();
    let filter =
        Filter::parse(&job.filter_json).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let only: HashSet<&str> = job.tasks.iter().map(String::as_str).collect();
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let started = Instant::now();
        // A replay covers every event published in its range, including
        // those the archiver has not shipped yet: wait for them.
        engine
            .archived_before(&ns, job.to_ms.min(now_ms()), Duration::from_secs(2))
            .await?;
        let mut q = archive_query(&ns, &job.event_pattern, job.from_ms, job.to_ms);
        if !job.cursor_id.is_empty() {
            q.after = Some((job.cursor_ms.max(0) as u64, job.cursor_id.clone()));
        }
        let page = archive.read(&q).await?;
        if page.len() < PAGE {
            job.status = ReplayStatus::Completed;
        }
        let subs = engine.registry().subscriptions(&ns).await?;
        let skip: HashSet<(String, String)> = if job.skip_already_replayed && !job.dry_run {
            let ids: Vec<String> = page.iter().map(|e| e.event_id.clone()).collect();
            engine
                .store()
                .replayed_pairs(&ids)
                .await?
                .into_iter()
                .collect()
        } else {
            HashSet::new()
        };
        let mut events = Vec::new();
        for e in &page {
            job.events_scanned += 1;
            job.cursor_ms = e.published_at_ms as i64;
            job.cursor_id = e.event_id.clone();
            if !name_matches(&job.event_pattern, &e.event_name) {
                continue;
            }
            let Ok(payload) = serde_json::from_str::<serde_json::Value>(&e.payload) else {
                continue;
            };
            if let Some(f) = &filter
                && !f.matches(&payload)
            {
                continue;
            }
            let routed: Vec<_> = subs
                .route(&e.event_name, &payload, &e.ordering_key, &e.event_id)
                .into_iter()
                .filter(|s| only.is_empty() || only.contains(s.sub.task_id.as_str()))
                .filter(|s| !skip.contains(&(e.event_id.clone(), s.sub.task_id.clone())))
                .collect();
            job.events_replayed += 1;
            job.runs_created += routed.len() as i64;
            for s in &routed {
                *job.by_task.entry(s.sub.task_id.clone()).or_default() += 1;
            }
            if job.dry_run || routed.is_empty() {
                continue;
            }
            let dlq = engine
                .registry()
                .event(&ns, &e.event_name)
                .await
                .map(|l| l.def.options.dlq)
                .unwrap_or(true);
            events.push(NewEvent {
                id: new_id(),
                namespace: ns.clone(),
                name: e.event_name.clone(),
                version: e.version,
                payload_json: e.payload.clone(),
                ordering_key: e.ordering_key.clone(),
                idempotency_key: String::new(),
                tags: e.tags.clone(),
                published_at_ms: now_ms(),
                publisher_run_id: String::new(),
                dlq,
                runs: routed
                    .iter()
                    .map(|s| NewRun {
                        id: new_id(),
                        task_id: s.sub.task_id.clone(),
                        consumer_group: s.sub.consumer_group.clone(),
                        retry: s.sub.retry,
                        lease_ms: s.sub.lease_ms,
                    })
                    .collect(),
                waitpoint: None,
                replay_of: e.event_id.clone(),
                // The original publish's context: the replayed runs'
                // attempts link to the story they re-tell, and carry this
                // replay's id.
                trace: crate::telemetry::TraceContext {
                    traceparent: e.traceparent.clone(),
                    tracestate: e.tracestate.clone(),
                }
                .replayed_by(&job.id),
            });
        }
        if !engine
            .store()
            .replay_page(&job, owner, &events, now_ms(), LEASE_MS)
            .await?
        {
            tracing::info!(replay = %job.id, "replay stopped (cancelled or taken over)");
            return Ok(());
        }
        if !events.is_empty() {
            let m = engine.metrics();
            m.replay_events
                .get_or_create(&crate::metrics::NamespaceLabels {
                    namespace: job.namespace.clone(),
                })
                .inc_by(events.len() as u64);
            for e in &events {
                for r in &e.runs {
                    m.runs_created
                        .get_or_create(&m.run("runs_created", &e.namespace, &e.name, &r.task_id))
                        .inc();
                }
            }
            engine.wakeup().namespace(&job.namespace);
        }
        if job.status != ReplayStatus::Running {
            tracing::info!(replay = %job.id, events = job.events_replayed, runs = job.runs_created, "replay finished");
            return Ok(());
        }
        if job.rate_per_sec > 0.0 {
            let budget = Duration::from_secs_f64(page.len() as f64 / job.rate_per_sec);
            let spent = started.elapsed();
            if budget > spent {
                tokio::select! { _ = tokio::time::sleep(budget - spent) => {}, _ = cancel.cancelled() => return Ok(()) }
            }
        }
    }
}
