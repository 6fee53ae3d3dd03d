//! The operator's reads and actions: runs, dead letters, subscriptions and
//! event definitions, as [`Engine`] methods. The gRPC admin service, the
//! HTTP API and the dashboard all go through these, so a missing entity is
//! the same `NotFound` (naming it) everywhere and a retry wakes the
//! sessions the same way.

use crate::engine::Engine;
use crate::error::{Entity, EntityKind, Error, Result};
use crate::model::*;

impl Engine {
    /// Runs of `ns` matching `q`, newest first.
    pub async fn list_runs(&self, ns: &str, q: &RunQuery) -> Result<Vec<Run>> {
        self.store().list_runs(ns, q).await
    }

    /// One run with its attempts and its event's payload.
    pub async fn get_run(&self, ns: &str, id: &str) -> Result<RunDetail> {
        self.store().get_run(ns, id).await?.ok_or_else(|| {
            Error::not_found(
                EntityKind::Run,
                id,
                format!("run '{id}' not found in namespace '{ns}'"),
            )
        })
    }

    /// What `id`'s handlers logged (NOT_FOUND when the run is not in
    /// `ns`).
    pub async fn run_logs(&self, ns: &str, id: &str, query: &LogQuery) -> Result<Vec<RunLogLine>> {
        self.store().run_logs(ns, id, query).await?.ok_or_else(|| {
            Error::not_found(
                EntityKind::Run,
                id,
                format!("run '{id}' not found in namespace '{ns}'"),
            )
        })
    }

    /// The subscriptions of `ns`.
    pub async fn list_subscriptions(&self, ns: &str) -> Result<Vec<Subscription>> {
        self.store().list_subscriptions(Some(ns)).await
    }

    /// Dead letters of `ns`, newest first.
    pub async fn list_dead_letters(&self, ns: &str, q: &RunQuery) -> Result<Vec<Run>> {
        self.store().list_dead_letters(ns, q).await
    }

    /// Queue the selected dead letters again with a fresh attempt budget,
    /// and wake the namespace's sessions.
    pub async fn retry_dead_letters(&self, ns: &str, sel: &DeadLetterSelector) -> Result<u64> {
        sel.validate()?;
        let count = self.store().retry_dead_letters(ns, sel, now_ms()).await?;
        if count > 0 {
            self.wakeup().namespace(ns);
        }
        tracing::info!(namespace = %ns, count, "dead letters retried");
        self.audit(
            ns,
            "dlq.retry",
            &sel.describe(),
            serde_json::json!({"count": count}),
        )
        .await;
        Ok(count)
    }

    /// Retry or discard the dead letters `sel` selects, or with `dry_run`
    /// only count them: what every API's dead-letter action calls.
    pub async fn act_on_dead_letters(
        &self,
        ns: &str,
        sel: &DeadLetterSelector,
        action: DeadLetterAction,
        dry_run: bool,
    ) -> Result<u64> {
        match (dry_run, action) {
            (true, _) => self.count_dead_letters(ns, sel).await,
            (false, DeadLetterAction::Retry) => self.retry_dead_letters(ns, sel).await,
            (false, DeadLetterAction::Discard) => self.discard_dead_letters(ns, sel).await,
        }
    }

    /// How many dead letters `sel` selects (a retry or discard's dry run).
    pub async fn count_dead_letters(&self, ns: &str, sel: &DeadLetterSelector) -> Result<u64> {
        sel.validate()?;
        self.store().count_dead_letters(ns, sel, None).await
    }

    /// [`Engine::count_dead_letters`], stopping past `cap` (an answer over
    /// `cap` means "more than `cap`").
    pub async fn count_dead_letters_upto(
        &self,
        ns: &str,
        sel: &DeadLetterSelector,
        cap: u64,
    ) -> Result<u64> {
        sel.validate()?;
        self.store().count_dead_letters(ns, sel, Some(cap)).await
    }

    /// Drop the selected dead letters from the DLQ (the runs stay).
    pub async fn discard_dead_letters(&self, ns: &str, sel: &DeadLetterSelector) -> Result<u64> {
        sel.validate()?;
        let count = self.store().discard_dead_letters(ns, sel, now_ms()).await?;
        tracing::info!(namespace = %ns, count, "dead letters discarded");
        self.audit(
            ns,
            "dlq.discard",
            &sel.describe(),
            serde_json::json!({"count": count}),
        )
        .await;
        Ok(count)
    }

    /// One event definition (`None`: the latest version).
    pub async fn get_event(&self, ns: &str, name: &str, version: Option<u32>) -> Result<EventDef> {
        self.store()
            .get_event(ns, name, version)
            .await?
            .ok_or_else(|| Error::NotFound {
                entity: Entity {
                    kind: EntityKind::Event,
                    id: name.to_string(),
                    version,
                },
                message: match version {
                    Some(v) => format!("event '{name}' has no version {v} in namespace '{ns}'"),
                    None => format!("event '{name}' is not defined in namespace '{ns}'"),
                },
            })
    }

    /// The latest version of every event of `ns`.
    pub async fn list_events(&self, ns: &str) -> Result<Vec<EventDef>> {
        self.store().list_events(ns).await
    }
}

/// What to do with selected dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterAction {
    /// Queue again with a fresh attempt budget.
    Retry,
    /// Drop from the DLQ (the runs stay).
    Discard,
}

/// The console's overview numbers for one namespace.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Overview {
    /// Runs per status.
    pub runs_by_status: Vec<(RunStatus, u64)>,
    /// Per task: due backlog, age of its oldest due run, waiting, DLQ.
    pub tasks: Vec<crate::storage::TaskStats>,
    pub dlq_depth: u64,
    /// Events not yet in the archive (all namespaces).
    pub archive_backlog: u64,
    pub oldest_unarchived_ms: Option<i64>,
    pub workers: usize,
    pub replays_running: usize,
}

impl Engine {
    /// Runs per status, the queue per task, DLQ depth, archive backlog,
    /// connected workers and running replays of `ns`.
    pub async fn overview(&self, ns: &str) -> Result<Overview> {
        let store = self.store();
        let stats = store.queue_stats(now_ms(), 1_000).await?;
        let tasks: Vec<_> = stats
            .tasks
            .into_iter()
            .filter(|t| t.namespace == ns)
            .collect();
        let replays = store.list_replays(ns, 100).await?;
        Ok(Overview {
            runs_by_status: store.run_counts(ns).await?,
            dlq_depth: tasks.iter().map(|t| t.dead_letters).sum(),
            tasks,
            archive_backlog: stats.outbox,
            oldest_unarchived_ms: stats.oldest_unarchived_ms,
            workers: self.workers().list(Some(ns)).len(),
            replays_running: replays
                .iter()
                .filter(|r| r.status == ReplayStatus::Running)
                .count(),
        })
    }

    /// The newest [`crate::storage::GROUPED`] dead letters grouped by task
    /// and error fingerprint, largest first.
    pub async fn dead_letter_groups(&self, ns: &str, limit: u32) -> Result<Vec<DeadLetterGroup>> {
        self.store().dead_letter_groups(ns, limit).await
    }

    /// Replay jobs of `ns`, newest first.
    pub async fn list_replays(&self, ns: &str, limit: u32) -> Result<Vec<ReplayJob>> {
        self.store().list_replays(ns, limit).await
    }

    /// Waitpoints of `ns`, newest first.
    pub async fn list_waitpoints(
        &self,
        ns: &str,
        q: &crate::storage::WaitpointQuery,
    ) -> Result<Vec<Waitpoint>> {
        self.store().list_waitpoints(ns, q).await
    }

    /// The waitpoints `run` made (publish-and-wait, sleeps, tokens),
    /// oldest first; a `runs` waitpoint's children are the runs of its
    /// `event_id`.
    pub async fn waitpoints_of_run(&self, run: &Run) -> Result<Vec<Waitpoint>> {
        self.store()
            .waitpoints_of_run(&run.namespace, &run.id)
            .await
    }

    /// One stored event (NOT_FOUND when it is not in `ns`).
    pub async fn event_record(&self, ns: &str, id: &str) -> Result<ArchivedEvent> {
        self.store().get_event_record(ns, id).await?.ok_or_else(|| {
            Error::not_found(
                EntityKind::Event,
                id,
                format!("event '{id}' not found in namespace '{ns}'"),
            )
        })
    }

    /// Stored events of `ns`, newest first.
    pub async fn event_records(
        &self,
        ns: &str,
        q: &crate::storage::EventQuery,
    ) -> Result<Vec<ArchivedEvent>> {
        self.store().list_event_records(ns, q).await
    }

    /// `run`'s journal (its recorded steps).
    pub async fn run_steps(&self, run: &Run) -> Result<Vec<Step>> {
        self.store().run_steps(&run.id).await
    }
}
