//! Model ⇄ proto conversions, kept in one place.

use crate::engine::SubscriptionSpec;
use crate::model::*;
use fanout_proto::v1 as pb;

pub fn event_def(d: EventDef) -> pb::EventDefinition {
    pb::EventDefinition {
        namespace: d.namespace,
        name: d.name,
        version: d.version,
        schema_json: d.schema_json,
        description: d.description,
        created_at_ms: d.created_at_ms,
        dlq: d.options.dlq,
        rate_limit: d.options.rate_limit.map(|r| pb::RateLimit {
            limit: r.limit,
            window_ms: r.window_ms,
            key_field: r.key_field,
        }),
    }
}

pub fn options(disable_dlq: bool, rl: Option<pb::RateLimit>) -> EventOptions {
    EventOptions {
        dlq: !disable_dlq,
        rate_limit: rl.map(|r| RateLimit {
            limit: r.limit,
            window_ms: r.window_ms,
            key_field: r.key_field,
        }),
    }
}

pub fn published(p: Published) -> pb::PublishResponse {
    pb::PublishResponse {
        event_id: p.event_id,
        event_version: p.version,
        runs: p
            .runs
            .into_iter()
            .map(|(run_id, task_id, consumer_group)| pb::RunRef {
                run_id,
                task_id,
                consumer_group,
            })
            .collect(),
        deduplicated: p.deduplicated,
    }
}

pub fn retry_to_pb(r: RetryPolicy) -> pb::RetryPolicy {
    pb::RetryPolicy {
        max_attempts: r.max_attempts,
        initial_backoff_ms: r.initial_backoff_ms,
        max_backoff_ms: r.max_backoff_ms,
        multiplier: r.multiplier,
    }
}

/// Zero fields take the defaults (5 attempts, 1 s doubling to 60 s).
pub fn retry_from_pb(r: Option<pb::RetryPolicy>) -> RetryPolicy {
    let d = RetryPolicy::default();
    let Some(r) = r else { return d };
    RetryPolicy {
        max_attempts: if r.max_attempts == 0 {
            d.max_attempts
        } else {
            r.max_attempts
        },
        initial_backoff_ms: if r.initial_backoff_ms == 0 {
            d.initial_backoff_ms
        } else {
            r.initial_backoff_ms
        },
        max_backoff_ms: if r.max_backoff_ms == 0 {
            d.max_backoff_ms
        } else {
            r.max_backoff_ms
        },
        multiplier: if r.multiplier == 0.0 {
            d.multiplier
        } else {
            r.multiplier
        },
    }
}

pub fn run(r: Run) -> pb::Run {
    pb::Run {
        id: r.id,
        namespace: r.namespace,
        event: r.event,
        event_id: r.event_id,
        task: r.task_id,
        status: r.status.as_str().to_string(),
        status_code: run_status(r.status) as i32,
        dlq_state: match r.dlq {
            DlqState::None => pb::DlqState::None,
            DlqState::InDlq => pb::DlqState::InDlq,
            DlqState::Discarded => pb::DlqState::Discarded,
        } as i32,
        attempts: r.attempts,
        max_attempts: r.max_attempts,
        created_at_ms: r.created_at_ms,
        updated_at_ms: r.updated_at_ms,
        available_at_ms: r.available_at_ms,
        output_json: r.output_json,
        last_error: r.last_error,
        worker_id: r.worker_id,
        ordering_key: r.ordering_key,
        consumer_group: r.consumer_group,
        dlq: r.dlq.as_str().to_string(),
        replay_of: r.replay_of,
        waitpoint_id: r.waitpoint_id,
        started_at_ms: r.started_at_ms,
        lease_expires_at_ms: r.lease_expires_at_ms,
    }
}

/// A page of runs under `limits::MAX_RESPONSE_BYTES` (never empty when
/// `runs` is not): the caller pages on from the last id returned.
pub fn runs_page(runs: Vec<Run>) -> Vec<pb::Run> {
    let mut budget = crate::limits::MAX_RESPONSE_BYTES;
    let mut out = Vec::with_capacity(runs.len());
    for r in runs {
        let size = r.output_json.len() + r.last_error.len() + 512;
        if size > budget && !out.is_empty() {
            break;
        }
        budget = budget.saturating_sub(size);
        out.push(run(r));
    }
    out
}

pub fn attempt(a: Attempt) -> pb::Attempt {
    pb::Attempt {
        attempt: a.attempt,
        started_at_ms: a.started_at_ms,
        finished_at_ms: a.finished_at_ms,
        ok: a.ok,
        output_json: a.output_json,
        error: a.error,
        worker_id: a.worker_id,
    }
}

pub fn subscription(s: Subscription) -> pb::Subscription {
    let paused = s.paused();
    pb::Subscription {
        task_id: s.task_id,
        event: s.event,
        filter_json: s.filter_json,
        consumer_group: s.consumer_group,
        retry: Some(retry_to_pb(s.retry)),
        lease_ms: s.lease_ms,
        updated_at_ms: s.updated_at_ms,
        paused,
        state: s.state.as_str().to_string(),
        breaker: Some(pb::Breaker {
            after_failures: s.breaker.after_failures,
            probe_after_ms: s.breaker.probe_after_ms,
        }),
        endpoint: s.endpoint.map(|e| pb::Endpoint {
            url: e.url,
            timeout_ms: e.timeout_ms,
            concurrency: e.concurrency,
            rate_per_s: e.rate_per_s,
            previous_secret_until_ms: if e.secrets.previous.is_empty() {
                0
            } else {
                e.secrets.previous_until_ms
            },
        }),
    }
}

/// A create / update request as the engine takes it.
pub fn subscription_spec(s: pb::SubscriptionSpec) -> SubscriptionSpec {
    SubscriptionSpec {
        id: s.id,
        event: s.event,
        url: s.url,
        filter_json: s.filter_json,
        consumer_group: s.consumer_group,
        retry: s.retry.map(|r| retry_from_pb(Some(r))),
        timeout_ms: s.timeout_ms,
        concurrency: s.concurrency,
        rate_per_s: s.rate_per_s,
        breaker: s.breaker.map(|b| Breaker {
            after_failures: b.after_failures,
            probe_after_ms: b.probe_after_ms,
        }),
        secret: s.secret,
    }
}

pub fn assignment(c: ClaimedRun) -> pb::RunAssignment {
    pb::RunAssignment {
        run_id: c.run_id,
        attempt: c.attempt,
        task_id: c.task_id,
        event: c.event,
        event_id: c.event_id,
        payload_json: c.payload_json,
        lease_ms: c.lease_ms,
        ordering_key: c.ordering_key,
        tags: c.tags,
        published_at_ms: c.published_at_ms,
        journal: c
            .journal
            .into_iter()
            .map(|(key, value_json)| pb::JournalEntry { key, value_json })
            .collect(),
        // Set by the session that sends it.
        worker_id: String::new(),
        replay_of: c.replay_of.unwrap_or_default(),
        event_version: c.event_version,
        traceparent: c.trace.traceparent,
        tracestate: c.trace.tracestate,
    }
}

pub fn waitpoint(v: crate::waitpoint::WaitpointView) -> pb::WaitpointInfo {
    let w = v.waitpoint;
    pb::WaitpointInfo {
        id: w.id,
        kind: w.kind.as_str().into(),
        status: w.status.to_string(),
        status_code: match w.status {
            WaitpointStatus::Waiting => pb::WaitpointStatus::Waiting,
            WaitpointStatus::Completed => pb::WaitpointStatus::Completed,
            WaitpointStatus::TimedOut => pb::WaitpointStatus::TimedOut,
        } as i32,
        results_json: v.results.to_string(),
        data_json: w.data_json,
        event_id: w.event_id,
        created_at_ms: w.created_at_ms,
        completed_at_ms: w.completed_at_ms,
        pending: w.pending.max(0) as u64,
        total: w.total.max(0) as u64,
    }
}

pub fn parent(p: Option<pb::ParentRun>) -> Option<ParentRef> {
    p.filter(|p| !p.run_id.is_empty()).map(|p| ParentRef {
        run_id: p.run_id,
        attempt: p.attempt,
        step_key: p.step_key,
        worker_id: p.worker_id,
    })
}

/// The proto enum of a run status.
pub fn run_status(s: RunStatus) -> pb::RunStatus {
    match s {
        RunStatus::Queued => pb::RunStatus::Queued,
        RunStatus::Running => pb::RunStatus::Running,
        RunStatus::Waiting => pb::RunStatus::Waiting,
        RunStatus::Retrying => pb::RunStatus::Retrying,
        RunStatus::Completed => pb::RunStatus::Completed,
        RunStatus::Dead => pb::RunStatus::Dead,
    }
}

/// A log line as the worker sent it (an unknown level reads as info).
pub fn log_line_from_pb(l: pb::LogLine) -> LogLine {
    LogLine {
        seq: l.seq,
        at_ms: l.at_ms,
        level: LogLevel::parse(&l.level).unwrap_or(LogLevel::Info),
        message: l.message,
        fields_json: l.fields_json,
    }
}

pub fn run_log_line(l: RunLogLine) -> pb::RunLogLine {
    pb::RunLogLine {
        attempt: l.attempt,
        line: Some(pb::LogLine {
            seq: l.line.seq,
            at_ms: l.line.at_ms,
            level: l.line.level.as_str().into(),
            message: l.line.message,
            fields_json: l.line.fields_json,
        }),
    }
}
