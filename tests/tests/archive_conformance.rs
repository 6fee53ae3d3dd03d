//! Every archive (local SQLite, ClickHouse) passes the same tests.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use fanout_engine::archive::ArchiveQuery;
use fanout_engine::model::ArchivedEvent;

fn ev(i: u64, name: &str) -> ArchivedEvent {
    ArchivedEvent {
        event_id: format!("01000000-0000-7000-8000-{i:012}"),
        namespace: "default".into(),
        event_name: name.into(),
        version: 1,
        payload: format!(r#"{{"i":{i}}}"#),
        tags: vec!["t1".into(), format!("n{i}")],
        ordering_key: format!("k{}", i % 3),
        idempotency_key: String::new(),
        fan_out_count: (i % 4) as u32,
        published_at_ms: 1_700_000_000_000 + i * 10,
        publisher_run_id: String::new(),
    }
}

fn query(from: u64, to: u64, limit: usize) -> ArchiveQuery {
    ArchiveQuery {
        namespace: "default".into(),
        events: vec![],
        from_ms: from,
        to_ms: to,
        after: None,
        limit,
    }
}

fanout_tests::per_backend! { fanout_tests::archive: local, clickhouse;
    async fn writes_are_idempotent_and_reads_are_ordered_pages((name, archive, _dir)) {
        let events: Vec<_> = (0..50)
            .map(|i| {
                ev(
                    i,
                    if i % 2 == 0 {
                        "order.created"
                    } else {
                        "order.paid"
                    },
                )
            })
            .collect();
        archive.write(&events[..30]).await.unwrap();
        // A batch shipped twice (crash between write and mark) overlaps.
        archive.write(&events[20..]).await.unwrap();
        archive.write(&events[20..]).await.unwrap();

        let all = archive.read(&query(0, u64::MAX, 1000)).await.unwrap();
        assert_eq!(all.len(), 50, "[{name}] no duplicates visible");
        assert_eq!(
            all, events,
            "[{name}] every field round-trips, in publish order"
        );

        // Paging by cursor visits everything once.
        let mut seen = Vec::new();
        let mut q = query(0, u64::MAX, 7);
        loop {
            let page = archive.read(&q).await.unwrap();
            if page.is_empty() {
                break;
            }
            let last = page.last().unwrap();
            q.after = Some((last.published_at_ms, last.event_id.clone()));
            seen.extend(page);
        }
        assert_eq!(seen, events, "[{name}] pages");

        // Time range [from, to) and name filter.
        let ranged = archive
            .read(&query(1_700_000_000_100, 1_700_000_000_200, 100))
            .await
            .unwrap();
        assert_eq!(
            ranged.iter().map(|e| e.published_at_ms).collect::<Vec<_>>(),
            (10..20)
                .map(|i| 1_700_000_000_000 + i * 10)
                .collect::<Vec<_>>()
        );
        let mut q = query(0, u64::MAX, 100);
        q.events = vec!["order.paid".into()];
        let paid = archive.read(&q).await.unwrap();
        assert_eq!(paid.len(), 25, "[{name}]");
        assert!(paid.iter().all(|e| e.event_name == "order.paid"));
        let mut q = query(0, u64::MAX, 100);
        q.namespace = "other".into();
        assert!(
            archive.read(&q).await.unwrap().is_empty(),
            "[{name}] namespaces are separate"
        );
    }
}
