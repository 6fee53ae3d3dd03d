//! The storage seam: everything durable about events, runs and subscriptions.
//!
//! [`Store`] is the trait the rest of the engine talks to; [`sql::SqlStore`]
//! implements it for SQLite (embedded default) and PostgreSQL (production)
//! with one body of SQL and a small dialect switch. Every implementation must
//! pass the conformance suite in `tests/tests/store_conformance.rs`.
//!
//! Batching is part of the contract: `publish` and `complete` take many items
//! and commit them in one transaction, because on this hardware a commit
//! (fsync) costs more than the rows in it.

pub mod sql;

use crate::error::Result;
use crate::model::*;
use async_trait::async_trait;

/// Durable state of the engine. All methods are safe to call from many
/// engine replicas at once.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Create version 1, or a new version when the schema differs from the
    /// latest; the same schema returns the latest with `created = false`.
    async fn define_event(
        &self,
        namespace: &str,
        name: &str,
        schema_json: &str,
        schema_canonical: &str,
        description: &str,
        options: &EventOptions,
    ) -> Result<(EventDef, bool)>;

    /// One version (`None`: the latest).
    async fn get_event(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<EventDef>>;

    /// The latest version of every event in the namespace, by name.
    async fn list_events(&self, namespace: &str) -> Result<Vec<EventDef>>;

    /// Create or replace subscriptions (keyed by namespace + task id).
    async fn upsert_subscriptions(&self, subs: &[Subscription]) -> Result<()>;

    /// All subscriptions of a namespace (`None`: of every namespace).
    async fn list_subscriptions(&self, namespace: Option<&str>) -> Result<Vec<Subscription>>;

    /// Store events and their runs in **one** transaction. Per event the
    /// answer is what was created, or — when its idempotency key was seen
    /// within the window — the original event and runs, `deduplicated`.
    async fn publish(
        &self,
        events: &[NewEvent],
        idempotency_window_ms: i64,
    ) -> Result<Vec<Published>>;

    /// Lease up to `limit` due runs of these tasks to `worker_id`, each
    /// task's in due order; earlier tasks in `task_ids` are served first
    /// when there are more due runs than `limit` (callers rotate it).
    async fn claim(
        &self,
        namespace: &str,
        task_ids: &[String],
        worker_id: &str,
        limit: u32,
        now_ms: i64,
    ) -> Result<Vec<ClaimedRun>>;

    /// Record attempt outcomes in one transaction; failures are scheduled for
    /// retry (backoff with jitter) or go dead.
    async fn complete(
        &self,
        completions: &[Completion],
        now_ms: i64,
    ) -> Result<Vec<CompletionEffect>>;

    /// Extend the leases of these runs, if `worker_id` still holds them.
    async fn heartbeat(&self, worker_id: &str, run_ids: &[String], now_ms: i64) -> Result<u64>;

    /// Expire now every lease held by `worker_id` (its stream ended).
    async fn release_worker(&self, worker_id: &str, now_ms: i64) -> Result<u64>;

    /// Queue again, uncharged, every running run whose worker id starts
    /// with `worker_prefix`: leases granted by a previous incarnation of
    /// this engine instance (worker ids are `<instance>/<session>`), which
    /// no live session can hold.
    async fn requeue_leases_of(&self, worker_prefix: &str, now_ms: i64) -> Result<u64>;

    /// Queue again, at once and without charging the attempt, runs that
    /// `worker_id` holds and gives back unfinished (graceful shutdown).
    async fn give_back(&self, worker_id: &str, run_ids: &[String], now_ms: i64) -> Result<u64>;

    /// Fail every run whose lease expired (a failed attempt: retry or dead).
    async fn reap_expired(&self, now_ms: i64) -> Result<Vec<CompletionEffect>>;

    /// Earliest time a not-yet-due run of these tasks becomes claimable.
    async fn next_due(&self, namespace: &str, task_ids: &[String]) -> Result<Option<i64>>;

    /// Runs, newest first.
    async fn list_runs(&self, namespace: &str, query: &RunQuery) -> Result<Vec<Run>>;

    /// One run with its attempts and its event's payload.
    async fn get_run(&self, namespace: &str, id: &str) -> Result<Option<RunDetail>>;

    /// Dead letters (dead runs in the DLQ), newest first.
    async fn list_dead_letters(&self, namespace: &str, query: &RunQuery) -> Result<Vec<Run>>;

    /// Re-queue dead letters with a fresh attempt budget; returns how many.
    /// Works in batches, so there is no cap on how many one call moves.
    async fn retry_dead_letters(
        &self,
        namespace: &str,
        sel: &DeadLetterSelector,
        now_ms: i64,
    ) -> Result<u64>;

    /// Mark dead letters discarded; returns how many.
    async fn discard_dead_letters(
        &self,
        namespace: &str,
        sel: &DeadLetterSelector,
        now_ms: i64,
    ) -> Result<u64>;

    /// A waitpoint and, for `runs` waitpoints, the state of every child.
    async fn get_waitpoint(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<(Waitpoint, Vec<ChildResult>)>>;

    /// Create a `time` or `token` waitpoint; with a parent, suspend it in
    /// the same transaction (and journal the waitpoint under its step key).
    async fn create_waitpoint(&self, wp: &NewWaitpoint, now_ms: i64) -> Result<Waitpoint>;

    /// Complete a token waitpoint with data (resuming its parent).
    async fn complete_token(
        &self,
        namespace: &str,
        id: &str,
        data_json: &str,
        now_ms: i64,
    ) -> Result<Waitpoint>;

    /// Finish waitpoints whose time has come: `time` ones complete, others
    /// time out. Returns the ids finished.
    async fn expire_waitpoints(&self, now_ms: i64) -> Result<Vec<String>>;

    /// Memoize a step result for a running attempt; the first value
    /// recorded under a key wins and is returned.
    /// Refused (FailedPrecondition) unless `step.run_id` is in `namespace`
    /// and running `step.attempt` under `step.worker_id`'s lease.
    async fn record_step(
        &self,
        namespace: &str,
        step: &ParentRef,
        value_json: &str,
        now_ms: i64,
    ) -> Result<String>;

    /// Post-commit events of this process's writes (waitpoints finished,
    /// runs resumed). Other replicas hear of them through `notify`.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StoreEvent>;

    /// Store a new replay job.
    async fn create_replay(&self, job: &ReplayJob) -> Result<()>;

    /// One replay job.
    async fn get_replay(&self, namespace: &str, id: &str) -> Result<Option<ReplayJob>>;

    /// Cancel a running replay; returns the job as it is now.
    async fn cancel_replay(
        &self,
        namespace: &str,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<ReplayJob>>;

    /// Take a running replay whose lease lapsed (or is ours) for `owner`.
    async fn lease_replay(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<ReplayJob>>;

    /// One page of a replay, atomically: the events and runs it creates
    /// (none on a dry run) and the job's new cursor and counters. Returns
    /// false, writing nothing, when `owner` no longer holds a running job.
    async fn replay_page(
        &self,
        job: &ReplayJob,
        owner: &str,
        events: &[NewEvent],
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool>;

    /// Give up `owner`'s replay leases (graceful shutdown) so another engine
    /// resumes them at once.
    async fn release_replays(&self, owner: &str) -> Result<()>;

    /// `(original event id, task id)` pairs that already have replay runs.
    async fn replayed_pairs(&self, original_ids: &[String]) -> Result<Vec<(String, String)>>;

    /// Close connections (engine shutdown), so an engine restarted in the
    /// same process never contends with a lingering pool.
    async fn close(&self) {}

    /// Up to `limit` events not yet shipped to the archive, oldest first.
    async fn outbox(&self, limit: usize) -> Result<Vec<ArchivedEvent>>;

    /// Mark events as shipped to the archive.
    async fn mark_archived(&self, event_ids: &[String]) -> Result<()>;

    /// Is an event of `namespace` published before `before_ms` still
    /// waiting in the outbox (not yet in the archive)?
    async fn unarchived_before(&self, namespace: &str, before_ms: i64) -> Result<bool>;
}
