//! Every run store (SQLite, Postgres) passes the same tests, straight
//! against the `Store` trait.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout_engine::model::*;
use std::collections::HashSet;

use fanout_tests::new_event;

const DAY: i64 = 86_400_000;

fanout_tests::per_backend! { fanout_tests::store: sqlite, postgres;
    async fn publish_batch_commits_events_runs_and_outbox((name, store, _d)) {
        let evs: Vec<_> = (0..3)
            .map(|_| new_event("default", "order.created", &["a", "b"], ""))
            .collect();
        let out = store.publish(&evs, DAY).await.unwrap();
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|p| p.runs.len() == 2 && !p.deduplicated));
        let runs = store
            .list_runs(
                "default",
                &RunQuery {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(runs.len(), 6, "[{name}]");
        assert!(
            runs.iter()
                .all(|r| r.status == RunStatus::Queued && r.attempts == 0)
        );
        let one_event = store
            .list_runs(
                "default",
                &RunQuery {
                    event_id: Some(out[1].event_id.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(one_event.len(), 2, "[{name}] an event's fan-out by event id");
        assert!(one_event.iter().all(|r| r.event_id == out[1].event_id));
        let outbox = store.outbox(100).await.unwrap();
        assert_eq!(outbox.len(), 3);
        assert_eq!(outbox[0].fan_out_count, 2);
        assert_eq!(outbox[0].tags, vec!["x".to_string()]);
        store
            .mark_archived(&[outbox[0].event_id.clone()])
            .await
            .unwrap();
        assert_eq!(
            store.outbox(100).await.unwrap().len(),
            2,
            "[{name}] shipped rows leave the outbox"
        );
        // Other namespaces see nothing.
        assert!(
            store
                .list_runs("other", &RunQuery::default())
                .await
                .unwrap()
                .is_empty()
        );
    }
}

fanout_tests::per_backend! { fanout_tests::store: sqlite, postgres;
    /// Postgres publishes small keyless batches as one statement and the rest
    /// in a chunked transaction; both store the same rows.
    async fn every_publish_path_stores_events_runs_and_outbox_alike((name, store, _d)) {
        let tasks: Vec<String> = (0..450).map(|i| format!("t{i}")).collect();
        let wide: Vec<&str> = tasks.iter().map(String::as_str).collect();
        let batches = [
            // One statement on Postgres: an event without subscribers too.
            vec![
                new_event("default", "e.none", &[], ""),
                new_event("default", "e.two", &["a", "b"], ""),
            ],
            // More runs than one chunk: the transaction.
            vec![new_event("default", "e.wide", &wide, "")],
            // An idempotency key: the transaction.
            vec![new_event("default", "e.keyed", &["a"], "k")],
            // Publish-and-wait without a parent: one statement on Postgres.
            vec![waiting(new_event("default", "e.wait", &["a", "b"], ""))],
            // One on no runs, finished on the spot: the transaction.
            vec![waiting(new_event("default", "e.wait0", &[], ""))],
        ];
        let mut runs = 0;
        for batch in &batches {
            let out = store.publish(batch, DAY).await.unwrap();
            for (p, ev) in out.iter().zip(batch) {
                assert_eq!(p.event_id, ev.id, "[{name}]");
                assert_eq!(p.runs.len(), ev.runs.len(), "[{name}]");
                runs += ev.runs.len();
            }
        }
        let stored = store
            .list_runs(
                "default",
                &RunQuery {
                    limit: 1_000,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(stored.len(), runs, "[{name}] every run stored");
        assert_eq!(
            store.outbox(100).await.unwrap().len(),
            6,
            "[{name}] every event is in the outbox"
        );
        for (ev, pending, status) in [
            (&batches[3][0], 2, "waiting"),
            (&batches[4][0], 0, "completed"),
        ] {
            let wp_id = &ev.waitpoint.as_ref().unwrap().id;
            let (wp, children) = store
                .get_waitpoint("default", wp_id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("[{name}] waitpoint {wp_id} stored"));
            assert_eq!(
                (
                    wp.pending,
                    wp.total,
                    wp.status.as_str(),
                    wp.event_id.as_str()
                ),
                (pending, pending, status, ev.id.as_str()),
                "[{name}]"
            );
            assert_eq!(children.len(), ev.runs.len(), "[{name}] children");
        }
    }
}

fn waiting(mut ev: NewEvent) -> NewEvent {
    ev.waitpoint = Some(NewWaitpoint {
        id: new_id(),
        namespace: ev.namespace.clone(),
        kind: WaitpointKind::Runs,
        timeout_at_ms: 0,
        parent: None,
        trace: Default::default(),
    });
    ev
}

fanout_tests::per_backend! { fanout_tests::store: sqlite, postgres;
    async fn idempotency_keys_dedupe_within_the_window_only((name, store, _d)) {
        let first = store
            .publish(&[new_event("default", "e.x", &["a"], "k1")], DAY)
            .await
            .unwrap()
            .remove(0);
        // Same key twice inside one batch, and again in a later batch.
        let batch = vec![
            new_event("default", "e.x", &["a"], "k1"),
            new_event("default", "e.x", &["a"], "k2"),
            new_event("default", "e.x", &["a"], "k2"),
        ];
        let out = store.publish(&batch, DAY).await.unwrap();
        assert!(
            out[0].deduplicated && out[0].event_id == first.event_id && out[0].runs == first.runs,
            "[{name}]"
        );
        assert!(!out[1].deduplicated);
        assert!(out[2].deduplicated && out[2].event_id == out[1].event_id);
        // Same key for another event name is a different key.
        let other = store
            .publish(&[new_event("default", "e.y", &["a"], "k1")], DAY)
            .await
            .unwrap()
            .remove(0);
        assert!(!other.deduplicated);
        // An expired key may be reused.
        let short = store
            .publish(&[new_event("default", "e.z", &["a"], "k9")], -1)
            .await
            .unwrap()
            .remove(0);
        let again = store
            .publish(&[new_event("default", "e.z", &["a"], "k9")], -1)
            .await
            .unwrap()
            .remove(0);
        assert!(
            !short.deduplicated && !again.deduplicated && short.event_id != again.event_id,
            "[{name}]"
        );
        let runs = store
            .list_runs(
                "default",
                &RunQuery {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            runs.len(),
            5,
            "[{name}] deduplicated publishes created no runs"
        );
    }
}

fanout_tests::per_backend! { fanout_tests::store: sqlite, postgres;
    async fn concurrent_claims_never_hand_out_a_run_twice((name, store, _d)) {
        let evs: Vec<_> = (0..100)
            .map(|_| new_event("default", "e.x", &["a", "b"], ""))
            .collect();
        store.publish(&evs, DAY).await.unwrap();
        let tasks = vec!["a".to_string(), "b".to_string()];
        let mut handles = Vec::new();
        for w in 0..4 {
            let store = store.clone();
            let tasks = tasks.clone();
            handles.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let c = store
                        .claim("default", &tasks, &format!("w{w}"), 7, now_ms())
                        .await
                        .unwrap();
                    if c.is_empty() {
                        break;
                    }
                    assert!(c.len() <= 7);
                    got.extend(c.into_iter().map(|r| r.run_id));
                }
                got
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), 200, "[{name}] every run claimed");
        assert_eq!(unique.len(), 200, "[{name}] none twice");
        // Claims carry the payload and tags.
        let runs = store
            .list_runs(
                "default",
                &RunQuery {
                    limit: 1,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(runs[0].status, RunStatus::Running);
        assert_eq!(runs[0].attempts, 1);
    }
}

fanout_tests::per_backend! { fanout_tests::store: sqlite, postgres;
    async fn failures_retry_after_backoff_then_die_and_stale_reports_are_ignored((name, store, _d)) {
        store
            .publish(&[new_event("default", "e.x", &["a"], "")], DAY)
            .await
            .unwrap();
        let tasks = vec!["a".to_string()];
        let t0 = now_ms();
        let c = store
            .claim("default", &tasks, "w1", 10, t0)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(
            (c.attempt, c.payload_json.as_str(), c.tags.clone()),
            (1, r#"{"a":1}"#, vec!["x".to_string()])
        );
        let fail = |attempt, worker: &str, fatal| Completion {
            run_id: c.run_id.clone(),
            attempt,
            worker_id: worker.into(),
            outcome: Outcome::Failed {
                message: format!("fail {attempt}"),
                fatal,
                retry_after_ms: 0,
            },
        };
        // A report from a worker that does not hold the run changes nothing.
        assert_eq!(
            store
                .complete(&[fail(1, "intruder", false)], t0)
                .await
                .unwrap(),
            vec![CompletionEffect::Stale]
        );
        let eff = store.complete(&[fail(1, "w1", false)], t0).await.unwrap();
        let CompletionEffect::Retrying { at_ms } = eff[0] else {
            panic!("[{name}] {eff:?}")
        };
        assert!(
            at_ms >= t0 + 500 && at_ms <= t0 + 1_000,
            "[{name}] backoff with jitter in [base/2, base]: {}",
            at_ms - t0
        );
        assert!(
            store
                .claim("default", &tasks, "w1", 10, at_ms - 1)
                .await
                .unwrap()
                .is_empty(),
            "[{name}] not before due"
        );
        assert_eq!(
            store.next_due("default", &tasks).await.unwrap(),
            Some(at_ms)
        );
        let c2 = store
            .claim("default", &tasks, "w2", 10, at_ms)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(c2.attempt, 2);
        // The lease expires (no heartbeat): a failed attempt, retried.
        let reaped = store.reap_expired(at_ms + 1_001).await.unwrap();
        assert!(
            matches!(&reaped[..], [Reaped { effect: CompletionEffect::Retrying { .. }, task_id, namespace, run_id, event }]
                if task_id == &tasks[0] && namespace == "default" && run_id == &c2.run_id && event == &c2.event),
            "[{name}] {reaped:?}"
        );
        // The late report for attempt 2 is stale.
        assert_eq!(
            store
                .complete(&[fail(2, "w2", false)], at_ms + 1_002)
                .await
                .unwrap(),
            vec![CompletionEffect::Stale]
        );
        let c3 = store
            .claim("default", &tasks, "w3", 10, at_ms + 10_000)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(c3.attempt, 3);
        let eff = store
            .complete(&[fail(3, "w3", false)], at_ms + 10_001)
            .await
            .unwrap();
        assert_eq!(
            eff,
            vec![CompletionEffect::Dead],
            "[{name}] attempts exhausted"
        );
        let d = store.get_run("default", &c.run_id).await.unwrap().unwrap();
        let (run, attempts, payload) = (d.run, d.attempts, d.payload_json);
        assert_eq!(run.status, RunStatus::Dead);
        assert_eq!(run.last_error, "fail 3");
        assert_eq!(attempts.len(), 3);
        assert!(attempts[1].error.contains("lease expired"), "{attempts:?}");
        assert_eq!(payload, r#"{"a":1}"#);
    }
}

fanout_tests::per_backend! { fanout_tests::store: sqlite, postgres;
    async fn heartbeats_extend_leases_and_successes_complete_in_batches((name, store, _d)) {
        let evs: Vec<_> = (0..5)
            .map(|_| new_event("default", "e.x", &["a"], ""))
            .collect();
        store.publish(&evs, DAY).await.unwrap();
        let tasks = vec!["a".to_string()];
        let t0 = now_ms();
        let claimed = store.claim("default", &tasks, "w1", 10, t0).await.unwrap();
        assert_eq!(claimed.len(), 5);
        let ids: Vec<String> = claimed.iter().map(|c| c.run_id.clone()).collect();
        assert_eq!(store.heartbeat("w1", &ids, t0 + 900).await.unwrap(), 5);
        assert_eq!(
            store.heartbeat("w2", &ids, t0 + 900).await.unwrap(),
            0,
            "[{name}] only the holder extends"
        );
        assert!(
            store.reap_expired(t0 + 1_500).await.unwrap().is_empty(),
            "[{name}] extended to t0+1900"
        );
        let done: Vec<Completion> = claimed
            .iter()
            .map(|c| Completion {
                run_id: c.run_id.clone(),
                attempt: 1,
                worker_id: "w1".into(),
                outcome: Outcome::Ok(format!("{{\"id\":\"{}\"}}", c.run_id)),
            })
            .collect();
        let eff = store.complete(&done, t0 + 1_600).await.unwrap();
        assert!(
            eff.iter().all(|e| *e == CompletionEffect::Completed),
            "[{name}] {eff:?}"
        );
        // Completing again is stale, not a second completion.
        assert!(
            store
                .complete(&done, t0 + 1_700)
                .await
                .unwrap()
                .iter()
                .all(|e| *e == CompletionEffect::Stale)
        );
        let d = store.get_run("default", &ids[0]).await.unwrap().unwrap();
        let (run, attempts) = (d.run, d.attempts);
        assert_eq!(run.status, RunStatus::Completed);
        assert_eq!(run.output_json, format!("{{\"id\":\"{}\"}}", ids[0]));
        assert_eq!(attempts.len(), 1);
        assert!(attempts[0].ok);
    }
}

fanout_tests::per_backend! { fanout_tests::store: sqlite, postgres;
    async fn definitions_version_and_subscriptions_upsert((name, store, _d)) {
        let (d1, c1) = store
            .define_event("ns", "e.x", "{}", "{}", "", &EventOptions::default())
            .await
            .unwrap();
        let (d1b, c1b) = store
            .define_event("ns", "e.x", "{ }", "{}", "", &EventOptions::default())
            .await
            .unwrap();
        let (d2, c2) = store
            .define_event(
                "ns",
                "e.x",
                r#"{"type":"object"}"#,
                r#"{"type":"object"}"#,
                "",
                &EventOptions {
                    dlq: false,
                    rate_limit: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (d1.version, c1, d1b.version, c1b, d2.version, c2),
            (1, true, 1, false, 2, true),
            "[{name}]"
        );
        assert_eq!(
            store
                .get_event("ns", "e.x", None)
                .await
                .unwrap()
                .unwrap()
                .version,
            2
        );
        assert_eq!(
            store
                .get_event("ns", "e.x", Some(1))
                .await
                .unwrap()
                .unwrap()
                .schema_json,
            "{}"
        );
        assert_eq!(store.list_events("ns").await.unwrap().len(), 1);
        let sub = Subscription {
            namespace: "ns".into(),
            task_id: "t".into(),
            event: "e.x".into(),
            filter_json: String::new(),
            consumer_group: String::new(),
            retry: RetryPolicy::default(),
            lease_ms: 5_000,
            updated_at_ms: now_ms(),
            state: Default::default(),
            breaker: Default::default(),
            endpoint: None,
        };
        store
            .upsert_subscriptions(std::slice::from_ref(&sub))
            .await
            .unwrap();
        store
            .upsert_subscriptions(&[Subscription {
                lease_ms: 9_000,
                ..sub.clone()
            }])
            .await
            .unwrap();
        let subs = store.list_subscriptions(Some("ns")).await.unwrap();
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].lease_ms, 9_000, "[{name}] upsert replaces");
        // State: set by set_state only, kept across re-registration.
        use SubscriptionState::*;
        assert!(store.set_state("ns", "t", Paused, &[]).await.unwrap());
        store
            .upsert_subscriptions(std::slice::from_ref(&sub))
            .await
            .unwrap();
        let got = &store.list_subscriptions(Some("ns")).await.unwrap()[0];
        assert!(got.paused() && got.state == Paused, "[{name}]");
        // Compare-and-set: only from the states given.
        assert!(!store.set_state("ns", "t", Probing, &[Tripped]).await.unwrap(), "[{name}]");
        assert!(store.set_state("ns", "t", Tripped, &[Active, Paused]).await.unwrap());
        assert!(store.set_state("ns", "t", Probing, &[Tripped]).await.unwrap());
        let got = &store.list_subscriptions(Some("ns")).await.unwrap()[0];
        assert!(!got.paused() && got.state == Probing, "[{name}] probing claims");
        assert!(store.set_state("ns", "t", Active, &[]).await.unwrap());
        assert!(!store.list_subscriptions(Some("ns")).await.unwrap()[0].paused());
        assert!(!store.set_state("ns", "nobody", Paused, &[]).await.unwrap());
        assert!(!store.set_state("other-ns", "t", Paused, &[]).await.unwrap());

        // An HTTP subscriber: created once with every field, its endpoint
        // and breaker read back; a worker registering the same id does not
        // overwrite it; update keeps the state; delete removes it.
        let hook = Subscription {
            task_id: "hook".into(),
            endpoint: Some(Endpoint {
                url: "https://example.com/h".into(),
                timeout_ms: 5_000,
                concurrency: 3,
                rate_per_s: 7,
                secrets: Secrets {
                    current: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into(),
                    previous: String::new(),
                    previous_until_ms: 0,
                },
            }),
            breaker: Breaker {
                after_failures: 4,
                probe_after_ms: 60_000,
            },
            ..sub.clone()
        };
        assert!(store.save_subscription(&hook, SaveMode::Create).await.unwrap());
        assert!(
            !store.save_subscription(&hook, SaveMode::Create).await.unwrap(),
            "[{name}] the id is taken"
        );
        store
            .upsert_subscriptions(&[Subscription {
                task_id: "hook".into(),
                lease_ms: 1_234,
                ..sub.clone()
            }])
            .await
            .unwrap();
        let read = |subs: Vec<Subscription>| subs.into_iter().find(|s| s.task_id == "hook").unwrap();
        let got = read(store.list_subscriptions(Some("ns")).await.unwrap());
        assert_eq!(got.endpoint, hook.endpoint, "[{name}] a task registration left it alone");
        assert_eq!(got.breaker, hook.breaker);
        assert_eq!(got.lease_ms, hook.lease_ms);
        assert!(store.set_state("ns", "hook", Disabled, &[Active]).await.unwrap());
        let mut changed = hook.clone();
        changed.endpoint.as_mut().unwrap().url = "https://example.com/other".into();
        changed.state = Active;
        assert!(store.save_subscription(&changed, SaveMode::Update).await.unwrap());
        let got = read(store.list_subscriptions(Some("ns")).await.unwrap());
        assert_eq!(got.endpoint.unwrap().url, "https://example.com/other");
        assert_eq!(got.state, Disabled, "[{name}] update keeps the state");
        assert!(!store
            .save_subscription(&Subscription { task_id: "nobody".into(), ..changed.clone() }, SaveMode::Update)
            .await
            .unwrap());
        let watched: Vec<String> = store
            .list_watched_subscriptions()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.task_id)
            .collect();
        assert_eq!(watched, vec!["hook".to_string()], "[{name}] endpoints and tripped only");
        assert!(store.delete_subscription("ns", "hook").await.unwrap());
        assert!(!store.delete_subscription("ns", "hook").await.unwrap());
        assert_eq!(store.list_subscriptions(Some("ns")).await.unwrap().len(), 1);
    }
}

fanout_tests::per_backend! { fanout_tests::store: sqlite, postgres;
    /// A handler that asks for a later retry (an upstream's `Retry-After`)
    /// gets it when it is longer than the backoff; the backoff still
    /// applies when it is shorter.
    async fn a_failure_may_ask_for_a_later_retry((name, store, _d)) {
        store
            .publish(
                &[
                    new_event("default", "e.later", &["slow"], ""),
                    new_event("default", "e.later", &["slow"], ""),
                ],
                DAY,
            )
            .await
            .unwrap();
        let tasks = vec!["slow".to_string()];
        let t0 = now_ms();
        let claimed = store.claim("default", &tasks, "w1", 10, t0).await.unwrap();
        assert_eq!(claimed.len(), 2, "[{name}]");
        let fail = |c: &ClaimedRun, retry_after_ms| Completion {
            run_id: c.run_id.clone(),
            attempt: c.attempt,
            worker_id: "w1".into(),
            outcome: Outcome::Failed {
                message: "upstream said wait".into(),
                fatal: false,
                retry_after_ms,
            },
        };
        let eff = store
            .complete(&[fail(&claimed[0], 60_000), fail(&claimed[1], 1)], t0)
            .await
            .unwrap();
        let [CompletionEffect::Retrying { at_ms: later }, CompletionEffect::Retrying { at_ms: backoff }] =
            eff[..]
        else {
            panic!("[{name}] {eff:?}")
        };
        assert_eq!(later, t0 + 60_000, "[{name}] the asked-for delay");
        assert!(
            (t0 + 500..=t0 + 1_000).contains(&backoff),
            "[{name}] a shorter ask keeps the backoff: {}",
            backoff - t0
        );
        let due = store
            .claim("default", &tasks, "w2", 10, t0 + 59_999)
            .await
            .unwrap();
        assert_eq!(due.len(), 1, "[{name}] only the backoff one is due");
        assert_eq!(due[0].run_id, claimed[1].run_id);
    }
}

fanout_tests::per_backend! { fanout_tests::store: sqlite, postgres;
    /// The queue gauges `/metrics` reads: due runs per task and the oldest
    /// one's due time, waiting runs, dead letters, and the archive backlog.
    async fn queue_stats_count_due_runs_dead_letters_and_backlog((name, store, _d)) {
        store
            .publish(
                &[
                    new_event("default", "e.s", &["a", "b"], ""),
                    new_event("default", "e.s", &["a"], ""),
                ],
                DAY,
            )
            .await
            .unwrap();
        let t0 = now_ms();
        // One run of `b` dies at once (fatal): a dead letter.
        let c = store
            .claim("default", &["b".to_string()], "w", 10, t0)
            .await
            .unwrap()
            .remove(0);
        store
            .complete(
                &[Completion {
                    run_id: c.run_id,
                    attempt: c.attempt,
                    worker_id: "w".into(),
                    outcome: Outcome::Failed {
                        message: "no".into(),
                        fatal: true,
                        retry_after_ms: 0,
                    },
                }],
                t0,
            )
            .await
            .unwrap();
        let s = store.queue_stats(t0 + 1, 100).await.unwrap();
        let a = s.tasks.iter().find(|t| t.task_id == "a").expect("task a");
        assert_eq!((a.due, a.waiting, a.dead_letters), (2, 0, 0), "[{name}] {s:?}");
        assert!(a.oldest_due_at_ms.is_some_and(|at| at <= t0 + 1), "[{name}]");
        let b = s.tasks.iter().find(|t| t.task_id == "b").expect("task b");
        assert_eq!((b.due, b.dead_letters), (0, 1), "[{name}] {s:?}");
        assert_eq!(s.outbox, 2, "[{name}] two events not yet archived");
        assert!(s.oldest_unarchived_ms.is_some());
        // Nothing is due before its time.
        let early = store.queue_stats(0, 100).await.unwrap();
        assert!(early.tasks.iter().all(|t| t.due == 0), "[{name}] {early:?}");
    }
}

fn line(seq: u32, message: &str) -> LogLine {
    LogLine {
        seq,
        at_ms: now_ms(),
        level: LogLevel::Info,
        message: message.into(),
        fields_json: String::new(),
    }
}

fanout_tests::per_backend! { fanout_tests::store: sqlite, postgres;
    /// Handler logs: only the lease holder of the running attempt adds
    /// lines, a repeated seq is stored once, the attempt's total is capped
    /// with one truncation line, and another namespace sees no run.
    async fn run_logs_are_the_lease_holders_bounded_and_namespaced((name, store, _d)) {
        store
            .publish(&[new_event("default", "e.logs", &["t"], "")], DAY)
            .await
            .unwrap();
        let tasks = vec!["t".to_string()];
        let c = store.claim("default", &tasks, "w1", 1, now_ms()).await.unwrap().remove(0);
        let n = store
            .append_logs("w1", &c.run_id, 1, &[line(0, "start"), line(1, "charging")], 100)
            .await
            .unwrap();
        assert_eq!(n, 2, "[{name}]");
        // A flush sent twice, a stranger, a stale attempt: nothing new.
        assert_eq!(store.append_logs("w1", &c.run_id, 1, &[line(1, "charging")], 100).await.unwrap(), 0);
        assert_eq!(store.append_logs("w2", &c.run_id, 1, &[line(2, "evil")], 100).await.unwrap(), 0);
        assert_eq!(store.append_logs("w1", &c.run_id, 2, &[line(0, "future")], 100).await.unwrap(), 0);
        // 100 bytes per attempt: 13 used, the next 90 do not fit.
        let n = store
            .append_logs("w1", &c.run_id, 1, &[line(2, &"x".repeat(80)), line(3, &"y".repeat(10))], 100)
            .await
            .unwrap();
        assert_eq!(n, 2, "[{name}] the 80-byte line, then the truncation line");
        assert_eq!(store.append_logs("w1", &c.run_id, 1, &[line(4, "late")], 100).await.unwrap(), 0);
        let got = store
            .run_logs("default", &c.run_id, &LogQuery::default())
            .await
            .unwrap()
            .unwrap();
        let msgs: Vec<&str> = got.iter().map(|l| l.line.message.as_str()).collect();
        assert_eq!(msgs.len(), 4, "[{name}] {msgs:?}");
        assert_eq!(&msgs[..2], &["start", "charging"]);
        assert!(msgs[3].starts_with("log truncated"), "{msgs:?}");
        assert!(got.iter().all(|l| l.attempt == 1));
        // Following: after the cursor only.
        let after = store
            .run_logs("default", &c.run_id, &LogQuery { after: Some((1, 1)), ..Default::default() })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.len(), 2);
        assert!(store.run_logs("other", &c.run_id, &LogQuery::default()).await.unwrap().is_none());
    }
}

fn api_key(id: &str, name: &str, ns: Option<&str>) -> ApiKey {
    ApiKey {
        id: id.into(),
        name: name.into(),
        hash: format!("{:0>64}", id.trim_start_matches("fo_")),
        namespace: ns.map(String::from),
        scopes: vec![Scope::Publish, Scope::Read],
        events: vec!["order.*".into()],
        created_by: "test".into(),
        created_at_ms: 1_000,
        expires_at_ms: 0,
        revoked_at_ms: 0,
        last_used_at_ms: 0,
    }
}

fanout_tests::per_backend! { fanout_tests::store: sqlite, postgres;
    async fn api_keys_are_stored_listed_revoked_and_touched((name, store, _d)) {
        // The bootstrap insert happens only on a store without keys.
        let a = api_key("fo_aaaaaaaa", "a", Some("shop"));
        assert!(store.insert_key(&a, true).await.unwrap(), "[{name}]");
        assert!(!store.insert_key(&api_key("fo_bbbbbbbb", "b", None), true).await.unwrap());
        let mut b = api_key("fo_bbbbbbbb", "b", None);
        b.expires_at_ms = 5_000;
        b.created_at_ms = 2_000;
        assert!(store.insert_key(&b, false).await.unwrap());
        // Names are unique.
        let dup = store.insert_key(&api_key("fo_cccccccc", "a", None), false).await;
        assert!(matches!(dup, Err(fanout_engine::Error::AlreadyExists(_))), "[{name}] {dup:?}");

        let all = store.list_keys(None).await.unwrap();
        assert_eq!(all.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(all[1], a, "[{name}] every field round-trips");
        let shop = store.list_keys(Some("shop")).await.unwrap();
        assert_eq!(shop.len(), 1);
        // Live: not revoked, not expired.
        assert_eq!(store.live_keys(4_999).await.unwrap().len(), 2);
        assert_eq!(store.live_keys(5_000).await.unwrap().len(), 1);

        // Revoking in another namespace finds nothing; by name works; twice
        // keeps the first time.
        assert!(store.revoke_key("a", Some("bank"), 7_000).await.unwrap().is_none());
        let r = store.revoke_key("a", Some("shop"), 7_000).await.unwrap().unwrap();
        assert_eq!(r.revoked_at_ms, 7_000);
        let again = store.revoke_key("fo_aaaaaaaa", None, 8_000).await.unwrap().unwrap();
        assert_eq!(again.revoked_at_ms, 7_000, "[{name}]");
        assert!(store.live_keys(0).await.unwrap().iter().all(|k| k.name != "a"));
        assert!(store.revoke_key("nobody", None, 1).await.unwrap().is_none());

        // Last use only moves forward.
        store.touch_keys(&[("fo_bbbbbbbb".into(), 9_000)]).await.unwrap();
        store.touch_keys(&[("fo_bbbbbbbb".into(), 8_000)]).await.unwrap();
        let b = store.list_keys(None).await.unwrap().into_iter().find(|k| k.name == "b").unwrap();
        assert_eq!(b.last_used_at_ms, 9_000, "[{name}]");
    }

    async fn audit_entries_list_newest_first_by_namespace_and_time((name, store, _d)) {
        for (i, ns) in ["shop", "bank", "shop"].iter().enumerate() {
            store
                .record_audit(&AuditEntry {
                    id: new_id(),
                    at_ms: 1_000 * (i as i64 + 1),
                    namespace: ns.to_string(),
                    actor: "ops".into(),
                    action: "dlq.retry".into(),
                    target: format!("t{i}"),
                    detail: "{\"count\":1}".into(),
                })
                .await
                .unwrap();
        }
        let all = store.list_audit(&AuditQuery { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(all.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(), ["t2", "t1", "t0"], "[{name}]");
        let shop = store
            .list_audit(&AuditQuery { namespace: Some("shop".into()), limit: 10, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(shop.len(), 2);
        let recent = store
            .list_audit(&AuditQuery { since_ms: 2_000, limit: 10, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(recent.len(), 2);
        let page = store
            .list_audit(&AuditQuery { before_id: all[0].id.clone(), limit: 1, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(page[0].target, "t1", "[{name}]");
    }
}
