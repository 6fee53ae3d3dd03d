//! Prometheus metrics, served as text at `GET /metrics` on the HTTP
//! listener.
//!
//! Counters and histograms are updated where things happen (publish,
//! results, reaped leases, rate limits, replay pages, worker streams).
//! Queue gauges (due runs, their age, waiting runs, DLQ depth, archive
//! backlog and lag) need a store query: it runs at most once per
//! `metrics_refresh_ms`, whatever the scrape rate, and a scrape in between
//! reads the last values. Labels are namespace, event and task — never ids
//! or keys — and at most [`MAX_SERIES`] label sets are kept per family;
//! beyond that, new ones are counted under `_other`.

use crate::storage::QueueStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

/// Label sets kept per family; more are folded into `_other`.
pub const MAX_SERIES: usize = 5_000;

/// `{namespace, event}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub namespace: String,
    pub event: String,
}

/// `{namespace, event, task}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub namespace: String,
    pub event: String,
    pub task: String,
}

/// `{namespace, task}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub namespace: String,
    pub task: String,
}

/// `{namespace}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    pub namespace: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Hashes of the label sets given a series, and how many per family.
#[derive(Default)]
struct Seen {
    keys: HashSet<u64>,
    per_family: std::collections::HashMap<&'static str, usize>,
}

/// Every metric of one engine.
pub struct Metrics {
    registry: Registry,
    pub events_published: Family<EventLabels, Counter>,
    pub runs_created: Family<RunLabels, Counter>,
    pub runs_completed: Family<TaskLabels, Counter>,
    pub runs_failed: Family<TaskLabels, Counter>,
    pub runs_retried: Family<TaskLabels, Counter>,
    pub runs_dead: Family<TaskLabels, Counter>,
    pub rate_limited: Family<EventLabels, Counter>,
    pub replay_events: Family<NamespaceLabels, Counter>,
    pub publish_to_start: Family<TaskLabels, Histogram>,
    pub run_duration: Family<TaskLabels, Histogram>,
    pub workers_connected: Gauge,
    /// Waits answered by the safety poll instead of a completion notice:
    /// each is a lost wake-up (should stay 0).
    pub waits_answered_by_safety_poll: Counter,
    dlq_depth: Family<TaskLabels, Gauge>,
    runs_due: Family<TaskLabels, Gauge>,
    oldest_due_age: Family<TaskLabels, FloatGauge>,
    runs_waiting: Family<TaskLabels, Gauge>,
    archive_backlog: Gauge,
    archive_lag: FloatGauge,
    /// Label sets seen (the cardinality bound).
    seen: Mutex<Seen>,
    /// When the queue gauges were last read from the store.
    refreshed_at: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

fn seconds_histogram() -> Histogram {
    // 1 ms … ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fanout");
        let m = Metrics {
            events_published: Family::default(),
            runs_created: Family::default(),
            runs_completed: Family::default(),
            runs_failed: Family::default(),
            runs_retried: Family::default(),
            runs_dead: Family::default(),
            rate_limited: Family::default(),
            replay_events: Family::default(),
            publish_to_start: Family::new_with_constructor(seconds_histogram),
            run_duration: Family::new_with_constructor(seconds_histogram),
            workers_connected: Gauge::default(),
            waits_answered_by_safety_poll: Counter::default(),
            dlq_depth: Family::default(),
            runs_due: Family::default(),
            oldest_due_age: Family::default(),
            runs_waiting: Family::default(),
            archive_backlog: Gauge::default(),
            archive_lag: FloatGauge::default(),
            seen: Mutex::new(Seen::default()),
            refreshed_at: tokio::sync::Mutex::new(None),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "events_published",
            "Events published (deduplicated repeats not counted)",
            m.events_published.clone(),
        );
        r.register(
            "runs_created",
            "Runs created by publishes and replays",
            m.runs_created.clone(),
        );
        r.register(
            "runs_completed",
            "Runs completed with an output",
            m.runs_completed.clone(),
        );
        r.register(
            "runs_failed",
            "Failed attempts (errors, lapsed leases)",
            m.runs_failed.clone(),
        );
        r.register(
            "runs_retried",
            "Failed attempts scheduled for another try",
            m.runs_retried.clone(),
        );
        r.register(
            "runs_dead",
            "Runs that failed for good",
            m.runs_dead.clone(),
        );
        r.register(
            "rate_limited",
            "Publishes refused by a rate limit",
            m.rate_limited.clone(),
        );
        r.register(
            "replay_events",
            "Archived events re-sent by replays",
            m.replay_events.clone(),
        );
        r.register(
            "publish_to_start_seconds",
            "From publish to the start of an attempt",
            m.publish_to_start.clone(),
        );
        r.register(
            "run_duration_seconds",
            "From the start of an attempt to its result",
            m.run_duration.clone(),
        );
        r.register(
            "workers_connected",
            "Worker streams connected to this engine",
            m.workers_connected.clone(),
        );
        r.register(
            "waits_answered_by_safety_poll",
            "Waits answered by the 5 s safety poll, not a completion notice (lost wake-ups)",
            m.waits_answered_by_safety_poll.clone(),
        );
        r.register("dlq_depth", "Dead runs in the DLQ", m.dlq_depth.clone());
        r.register(
            "runs_due",
            "Queued or retrying runs whose time has come",
            m.runs_due.clone(),
        );
        r.register(
            "oldest_due_run_age_seconds",
            "How long the longest-waiting due run has waited",
            m.oldest_due_age.clone(),
        );
        r.register(
            "runs_waiting",
            "Runs suspended on a waitpoint",
            m.runs_waiting.clone(),
        );
        r.register(
            "archive_backlog",
            "Events committed but not yet in the archive",
            m.archive_backlog.clone(),
        );
        r.register(
            "archive_lag_seconds",
            "Age of the oldest event not yet in the archive",
            m.archive_lag.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Whether this label set may have a series of its own in `family`:
    /// yes if seen before or the family has fewer than [`MAX_SERIES`].
    fn bounded(&self, family: &'static str, a: &str, b: &str, c: &str) -> bool {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (family, a, b, c).hash(&mut h);
        let key = h.finish();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.keys.contains(&key) {
            return true;
        }
        let n = seen.per_family.entry(family).or_default();
        if *n >= MAX_SERIES {
            return false;
        }
        *n += 1;
        seen.keys.insert(key);
        true
    }

    /// Labels built by `make` from `(a, b, c)`, or from `_other` in each
    /// place once `family` holds [`MAX_SERIES`] other label sets.
    fn labels<L>(&self, family: &'static str, abc: [&str; 3], make: impl Fn([&str; 3]) -> L) -> L {
        if self.bounded(family, abc[0], abc[1], abc[2]) {
            make(abc)
        } else {
            make(["_other"; 3])
        }
    }

    /// `{namespace, event}`, bounded.
    pub fn event(&self, family: &'static str, ns: &str, event: &str) -> EventLabels {
        self.labels(family, [ns, event, ""], |[n, e, _]| EventLabels {
            namespace: n.into(),
            event: e.into(),
        })
    }

    /// `{namespace, event, task}`, bounded.
    pub fn run(&self, family: &'static str, ns: &str, event: &str, task: &str) -> RunLabels {
        self.labels(family, [ns, event, task], |[n, e, t]| RunLabels {
            namespace: n.into(),
            event: e.into(),
            task: t.into(),
        })
    }

    /// `{namespace, task}`, bounded.
    pub fn task(&self, family: &'static str, ns: &str, task: &str) -> TaskLabels {
        self.labels(family, [ns, "", task], |[n, _, t]| TaskLabels {
            namespace: n.into(),
            task: t.into(),
        })
    }

    /// Whether the queue gauges are older than `every` (and so due for a
    /// store read); marks them fresh when so.
    pub async fn stale(&self, every: std::time::Duration) -> bool {
        let mut at = self.refreshed_at.lock().await;
        let now = tokio::time::Instant::now();
        if at.is_some_and(|t| now.duration_since(t) < every) {
            return false;
        }
        *at = Some(now);
        true
    }

    /// Set the queue gauges from a store read at `now_ms`.
    pub fn set_queue(&self, stats: &QueueStats, now_ms: i64) {
        for f in [&self.dlq_depth, &self.runs_due, &self.runs_waiting] {
            f.clear();
        }
        self.oldest_due_age.clear();
        for t in &stats.tasks {
            let labels = TaskLabels {
                namespace: t.namespace.clone(),
                task: t.task_id.clone(),
            };
            let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            self.runs_due.get_or_create(&labels).set(gauge(t.due));
            self.runs_waiting
                .get_or_create(&labels)
                .set(gauge(t.waiting));
            self.dlq_depth
                .get_or_create(&labels)
                .set(gauge(t.dead_letters));
            let age = t
                .oldest_due_at_ms
                .map_or(0.0, |at| (now_ms - at).max(0) as f64 / 1000.0);
            self.oldest_due_age.get_or_create(&labels).set(age);
        }
        self.archive_backlog
            .set(i64::try_from(stats.outbox).unwrap_or(i64::MAX));
        self.archive_lag.set(
            stats
                .oldest_unarchived_ms
                .map_or(0.0, |at| (now_ms - at).max(0) as f64 / 1000.0),
        );
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
