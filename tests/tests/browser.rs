//! The console in a real browser (Debian's Chromium driven over WebDriver
//! by `fantoccini`): publish through the SDK, see the events on `/log` and
//! the runs on `/runs`, watch a dead run appear on `/dlq` without reloading,
//! open it, retry it from `/dlq` and see it queued, start a dry-run replay
//! and see its count. It takes the screenshots in `docs/images/`.
//!
//! Needs `FANOUT_TEST_CHROMEDRIVER` (the chromedriver binary; `.ci/run`
//! installs `chromium` and `chromium-driver` and sets it), so it is ignored
//! by a plain `cargo test`. `FANOUT_UPDATE_SCREENSHOTS=1` writes the
//! screenshots into `docs/images/` instead of a temporary directory.

use fanout::{Event, Retry, RunStatus, Task, TaskError, Worker};
use fanout_tests::{TestEngine, eventually, runs_with_status};
use fantoccini::{Client, ClientBuilder, Locator};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Order {
    id: String,
    amount: f64,
}

/// chromedriver on a free port, killed on drop.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn driver() -> Driver {
    let bin = std::env::var("FANOUT_TEST_CHROMEDRIVER")
        .expect("FANOUT_TEST_CHROMEDRIVER is not set: this test needs chromedriver (apt install chromium chromium-driver)");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let d = Driver(child, port);
    eventually(WAIT, "chromedriver listening", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    d
}

async fn browser(d: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    let mut opts = serde_json::json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,860"]
    });
    if std::path::Path::new("/usr/bin/chromium").exists() {
        opts["binary"] = "/usr/bin/chromium".into();
    }
    caps.insert("goog:chromeOptions".into(), opts);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", d.1))
        .await
        .expect("connect to chromedriver")
}

/// Find and click `css`; the page swaps its `<main>` when it refreshes
/// itself, so an element found just before a swap is stale: find it again.
async fn click(c: &Client, css: &str, what: &str) {
    for _ in 0..20 {
        let el = c.find(Locator::Css(css)).await.expect(what);
        match el.click().await {
            Ok(_) => return,
            Err(fantoccini::error::CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference => {}
            Err(e) => panic!("click {what}: {e:?}"),
        }
    }
    panic!("click {what}: the element went stale 20 times");
}

/// Wait until the page's text contains `want` (the page refreshes itself).
async fn until_text(c: &Client, want: &str) -> String {
    eventually(WAIT, &format!("the page shows '{want}'"), || async {
        let text = c.find(Locator::Css("main")).await.ok()?.text().await.ok()?;
        text.contains(want).then_some(text)
    })
    .await
}

fn shots_dir() -> PathBuf {
    if std::env::var("FANOUT_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/images")
    } else {
        std::env::temp_dir().join(format!("fanout-shots-{}", std::process::id()))
    }
}

async fn shot(c: &Client, name: &str) {
    let dir = shots_dir();
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(dir.join(name), png).expect("write screenshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a browser: FANOUT_TEST_CHROMEDRIVER (.ci/run sets it)"]
async fn console_in_a_real_browser() {
    let t0 = std::time::Instant::now();
    let step = |what: &str| eprintln!("[{:>6.1?}] {what}", t0.elapsed());
    let d = driver().await;
    step("driver up");
    let dir = tempfile::tempdir().expect("tmp");
    let engine = TestEngine::start_console(
        fanout_tests::test_config(fanout_engine::Config::embedded(dir.path())),
        "",
    )
    .await;
    let base = engine.http_url.clone();
    let client = engine.client().await;
    let placed = Event::<Order>::new("order.placed").description("an order was placed");
    placed.define(&client).await.expect("define");
    let charge = Task::new("charge", &placed, |o: Order, _| async move {
        Ok(o.amount * 1.2)
    });
    let legacy = Task::new("notify-legacy", &placed, |o: Order, _| async move {
        if o.amount > 100.0 {
            Err(TaskError::retryable(
                "legacy system rejected the order: amount over its limit",
            ))
        } else {
            Ok(())
        }
    })
    .retry(Retry::attempts(1));
    let worker = Worker::new(client.clone())
        .name("shop-worker")
        .task(charge)
        .task(legacy)
        .start()
        .await
        .expect("worker");
    for i in 0..6 {
        placed
            .publish(
                &client,
                &Order {
                    id: format!("ord-{i}"),
                    amount: 20.0 * f64::from(i),
                },
            )
            .ordering_key(format!("cust-{}", i % 3))
            .await
            .expect("publish");
    }
    eventually(WAIT, "the first twelve runs final", || async {
        let n = runs_with_status(&client, RunStatus::Completed).await.len();
        (n == 12).then_some(())
    })
    .await;

    let c = browser(&d).await;
    step("browser up");
    // The log shows the published events (once archived; the page follows).
    c.goto(&format!("{base}/log?event=order.*"))
        .await
        .expect("goto log");
    until_text(&c, "ord-5").await;
    // The runs page lists them.
    c.goto(&format!("{base}/runs")).await.expect("goto runs");
    let runs = until_text(&c, "notify-legacy").await;
    step("/log and /runs");
    assert!(
        runs.contains("charge") && runs.contains("completed"),
        "{runs}"
    );

    // A run that dies appears on an open /dlq without a reload.
    c.goto(&format!("{base}/dlq")).await.expect("goto dlq");
    until_text(&c, "The dead-letter queue is empty").await;
    step("/dlq open");
    placed
        .publish(
            &client,
            &Order {
                id: "ord-big".into(),
                amount: 250.0,
            },
        )
        .ordering_key("cust-9")
        .await
        .expect("publish");
    let appeared = tokio::time::Instant::now();
    let dlq = eventually(
        Duration::from_secs(3),
        "the dead run shows on /dlq by itself",
        || async {
            let text = c.find(Locator::Css("main")).await.ok()?.text().await.ok()?;
            text.contains("legacy system rejected the order")
                .then_some(text)
        },
    )
    .await;
    let took = appeared.elapsed();
    assert!(dlq.contains("1 dead letter(s) match"), "{dlq}");
    eprintln!("dead run visible on /dlq {took:?} after publish");
    worker.shutdown().await.expect("worker stop");
    shot(&c, "dlq.png").await;
    step("dead run seen live");

    // Open the dead run from the DLQ table.
    let dead = runs_with_status(&client, RunStatus::Dead).await;
    assert_eq!(dead.len(), 1);
    let id = dead[0].id.clone();
    click(&c, &format!("a[href='/runs/{id}']"), "run link").await;
    let page = until_text(&c, "Last error").await;
    assert!(
        page.contains("amount over its limit") && page.contains("ord-big"),
        "{page}"
    );
    shot(&c, "run.png").await;
    step("run page");

    // Retry it from /dlq: select its row, press Retry selected.
    c.goto(&format!("{base}/dlq")).await.expect("goto dlq");
    click(&c, &format!("input[name=ids][value='{id}']"), "checkbox").await;
    click(&c, "#selection button.primary", "retry button").await;
    until_text(&c, "Retried 1 dead letter(s)").await;
    c.goto(&format!("{base}/runs/{id}"))
        .await
        .expect("goto run");
    until_text(&c, "queued").await;
    assert_eq!(
        client.run(&id).await.expect("run").run.status,
        RunStatus::Queued
    );
    step("retried from /dlq");

    // A dry-run replay from /replays shows its count.
    c.goto(&format!("{base}/replays"))
        .await
        .expect("goto replays");
    step("replays page");
    click(&c, "button[name=dry_run][value='1']", "dry run button").await;
    step("clicked");
    until_text(&c, "Dry run").await;
    step("flash");
    let replays = until_text(&c, "charge: 7").await;
    step("dry-run count shown");
    assert!(replays.contains("notify-legacy: 7"), "{replays}");

    c.goto(&format!("{base}/")).await.expect("goto overview");
    until_text(&c, "Queue per task").await;
    shot(&c, "overview.png").await;
    step("overview");
    c.close().await.expect("close browser");
    step("closed");
    engine.stop().await;
}
