//! Quickstart: define `order.created`, run two tasks, publish two orders,
//! wait for every run, print a summary. Needs a running engine
//! (`fanout dev`); set FANOUT_SERVER to point elsewhere.

use fanout::{Client, Event, RunStatus, Task, Worker};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct OrderCreated {
    order_id: String,
    amount: f64,
    customer_id: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The engine may still be starting: retry the connection for a while.
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        match Client::from_env().await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for the engine: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let order_created = Event::<OrderCreated>::new("order.created");
    // Defining is deliberate (workers check their types against it).
    order_created.define(&client).await?;

    let send_receipt = Task::new(
        "send-receipt",
        &order_created,
        |o: OrderCreated, _ctx| async move {
            Ok(json!({"receipt": format!("receipt for {} sent to {}", o.order_id, o.customer_id)}))
        },
    );
    // A server-side filter: the engine creates a run only for big orders.
    let alert_vip = Task::new(
        "alert-vip",
        &order_created,
        |o: OrderCreated, _ctx| async move { Ok(json!({"alerted": true, "orderId": o.order_id})) },
    )
    .filter(json!({"amount": [{"$gte": 1000}]}));
    let worker = Worker::new(client.clone())
        .task(send_receipt)
        .task(alert_vip)
        .start()
        .await?;

    let mut runs = Vec::new();
    for (id, amount) in [("order-1", 500.0), ("order-2", 1500.0)] {
        let order = OrderCreated {
            order_id: id.into(),
            amount,
            customer_id: "cust-1".into(),
        };
        let published = order_created.publish(&client, &order).await?;
        println!(
            "published {id} (amount {amount}) → event {} with {} runs",
            published.event_id,
            published.runs.len()
        );
        runs.extend(published.runs);
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut done = Vec::new();
    for r in &runs {
        loop {
            let detail = client.run(&r.run_id).await?;
            let run = detail.run;
            if run.status.is_final() {
                done.push(run);
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "run {} still {} after 30s — is a worker connected?",
                    r.run_id, run.status
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let completed = done
        .iter()
        .filter(|r| r.status == RunStatus::Completed)
        .count();
    let alerts = done
        .iter()
        .filter(|r| r.task_id == "alert-vip")
        .filter(|r| r.output.as_ref().is_some_and(|o| o["alerted"] == true))
        .count();
    println!(
        "{completed}/{} runs completed; VIP alerts sent: {alerts}",
        done.len()
    );
    for r in &done {
        let output = r.output.as_ref().map(|o| o.to_string()).unwrap_or_default();
        println!("  {:<13} {:<10} {output}", r.task_id, r.status.as_str());
    }
    worker.shutdown().await?;
    if completed != done.len() {
        return Err("some runs did not complete".into());
    }
    Ok(())
}
