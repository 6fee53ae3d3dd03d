//! The store's `Console` reads (what the operator console shows), on every
//! run store, straight against the trait: the conformance suite's
//! companion for the console.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout_engine::model::*;
use fanout_tests::new_event;

const DAY: i64 = 86_400_000;

fanout_tests::per_backend! { fanout_tests::store: sqlite, postgres;
    /// The console's reads: runs per status, dead letters counted (capped
    /// and not), grouped by task and error and selected by an error prefix,
    /// runs by ordering key and creation time, stored events by id and by
    /// name, waitpoints, replays and a run's journal — each within its
    /// namespace.
    async fn console_reads_count_group_and_list((name, store, _d)) {
        let mut keyed = new_event("default", "e.c", &["a", "b"], "");
        keyed.ordering_key = "cust-1".into();
        let plain = new_event("default", "e.c", &["a", "b"], "");
        let other_ns = new_event("other", "e.c", &["a"], "");
        store.publish(&[keyed.clone(), plain, other_ns], DAY).await.unwrap();
        let t0 = now_ms();
        // Both runs of `b` die, with errors that share a prefix.
        let claimed = store.claim("default", &["b".to_string()], "w", 10, t0).await.unwrap();
        assert_eq!(claimed.len(), 2, "[{name}]");
        let done: Vec<_> = claimed
            .iter()
            .enumerate()
            .map(|(i, c)| Completion {
                run_id: c.run_id.clone(),
                attempt: c.attempt,
                worker_id: "w".into(),
                outcome: Outcome::Failed { message: format!("HTTP 503 from inventory #{i}"), fatal: true, retry_after_ms: 0 },
            })
            .collect();
        store.complete(&done, t0).await.unwrap();

        let counts: std::collections::HashMap<_, _> = store.run_counts("default").await.unwrap().into_iter().collect();
        assert_eq!((counts.get(&RunStatus::Queued), counts.get(&RunStatus::Dead)), (Some(&2), Some(&2)), "[{name}] {counts:?}");
        assert_eq!(store.run_counts("other").await.unwrap(), vec![(RunStatus::Queued, 1)], "[{name}]");

        let all = DeadLetterSelector { all: true, ..Default::default() };
        assert_eq!(store.count_dead_letters("default", &all, None).await.unwrap(), 2, "[{name}]");
        assert_eq!(store.count_dead_letters("default", &all, Some(1)).await.unwrap(), 2, "[{name}] a cap of 1 stops at 2 (more than 1)");
        assert_eq!(store.count_dead_letters("other", &all, None).await.unwrap(), 0, "[{name}]");
        let by_prefix = DeadLetterSelector { all: true, error_prefix: Some("HTTP 503 from inventory #1".into()), ..Default::default() };
        assert_eq!(store.count_dead_letters("default", &by_prefix, None).await.unwrap(), 1, "[{name}]");
        let ids = DeadLetterSelector { ids: vec![claimed[0].run_id.clone(), "nope".into()], ..Default::default() };
        assert_eq!(store.count_dead_letters("default", &ids, None).await.unwrap(), 1, "[{name}]");

        let groups = store.dead_letter_groups("default", 10).await.unwrap();
        assert_eq!(groups.len(), 2, "[{name}] two fingerprints: {groups:?}");
        assert!(groups.iter().all(|g| g.task_id == "b" && g.count == 1 && g.fingerprint.starts_with("HTTP 503")), "[{name}] {groups:?}");
        // Retrying by prefix moves only that group.
        assert_eq!(store.retry_dead_letters("default", &by_prefix, t0).await.unwrap(), 1, "[{name}]");
        assert_eq!(store.count_dead_letters("default", &all, None).await.unwrap(), 1, "[{name}]");
        let listed = store
            .list_dead_letters("default", &RunQuery { error_prefix: Some("HTTP 503 from inventory #0".into()), limit: 10, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(listed.len(), 1, "[{name}]");

        let by_key = store
            .list_runs("default", &RunQuery { ordering_key: Some("cust-1".into()), limit: 10, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(by_key.len(), 2, "[{name}] both runs of the keyed event");
        assert!(by_key.iter().all(|r| r.event_id == keyed.id), "[{name}]");
        let future = store
            .list_runs("default", &RunQuery { created_from_ms: Some(now_ms() + DAY), limit: 10, ..Default::default() })
            .await
            .unwrap();
        assert!(future.is_empty(), "[{name}]");
        let past = store
            .list_runs("default", &RunQuery { created_to_ms: Some(now_ms() + DAY), limit: 10, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(past.len(), 4, "[{name}]");

        let ev = store.get_event_record("default", &keyed.id).await.unwrap().expect("stored");
        assert_eq!((ev.event_name.as_str(), ev.ordering_key.as_str(), ev.fan_out_count), ("e.c", "cust-1", 2), "[{name}]");
        assert!(store.get_event_record("other", &keyed.id).await.unwrap().is_none(), "[{name}] not in another namespace");
        let named = store
            .list_event_records("default", &fanout_engine::storage::EventQuery { name: Some("e.c".into()), before: None, limit: 1 })
            .await
            .unwrap();
        assert_eq!(named.len(), 1, "[{name}] the limit holds");

        // A token waitpoint, a step on a running run, a replay job.
        let wp = store
            .create_waitpoint(&NewWaitpoint { id: new_id(), namespace: "default".into(), kind: WaitpointKind::Token, timeout_at_ms: 0, parent: None, trace: Default::default() }, t0)
            .await
            .unwrap();
        let waiting = store
            .list_waitpoints("default", &fanout_engine::storage::WaitpointQuery { status: Some(WaitpointStatus::Waiting), limit: 10, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(waiting.iter().map(|w| w.id.clone()).collect::<Vec<_>>(), vec![wp.id.clone()], "[{name}]");
        assert!(store.list_waitpoints("other", &Default::default()).await.unwrap().is_empty(), "[{name}]");
        let a = store.claim("default", &["a".to_string()], "w2", 1, t0).await.unwrap().remove(0);
        let step = ParentRef { run_id: a.run_id.clone(), attempt: a.attempt, step_key: "charge".into(), worker_id: "w2".into() };
        store.record_step("default", &step, r#"{"ok":1}"#, t0).await.unwrap();
        let steps = store.run_steps(&a.run_id).await.unwrap();
        assert_eq!(steps.len(), 1, "[{name}]");
        assert_eq!((steps[0].key.as_str(), steps[0].value_json.as_str()), ("charge", r#"{"ok":1}"#), "[{name}]");
        assert!(store.waitpoints_of_run("default", &a.run_id).await.unwrap().is_empty(), "[{name}] a step that is no waitpoint");
        let parent = ParentRef { run_id: a.run_id.clone(), attempt: a.attempt, step_key: "approval".into(), worker_id: "w2".into() };
        let token = store
            .create_waitpoint(&NewWaitpoint { id: new_id(), namespace: "default".into(), kind: WaitpointKind::Token, timeout_at_ms: 0, parent: Some(parent), trace: Default::default() }, t0)
            .await
            .unwrap();
        let of_run = store.waitpoints_of_run("default", &a.run_id).await.unwrap();
        assert_eq!(of_run.iter().map(|w| w.id.clone()).collect::<Vec<_>>(), vec![token.id.clone()], "[{name}] found through the journal");
        assert!(store.waitpoints_of_run("other", &a.run_id).await.unwrap().is_empty(), "[{name}]");
        assert!(store.list_replays("default", 10).await.unwrap().is_empty(), "[{name}]");
    }
}
