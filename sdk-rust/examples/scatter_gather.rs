//! Scatter-gather with durable suspension.
//!
//! `order.placed` has three subscribers; `notify-legacy` always fails
//! fatally. The parent task `checkout` (on `checkout.started`) memoizes a
//! side effect with `ctx.step`, then `ctx.publish_and_wait`s an
//! `order.placed`: the run is suspended (its worker slot freed) until all
//! three children are final, then re-invoked with its journal, and returns
//! the children's results. `main` triggers the parent with a client-side
//! publish-and-wait and prints the parent's output as one JSON line.
//! Needs a running engine (`fanout dev`).

use fanout::{Client, Event, Retry, Task, TaskError, TaskFailure, Worker};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Checkout {
    cart_id: String,
    amount: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct OrderPlaced {
    order_id: String,
    amount: f64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = connect().await?;
    let checkout_started = Event::<Checkout>::new("checkout.started");
    let order_placed = Event::<OrderPlaced>::new("order.placed");
    // Defining an event is deliberate: workers only check their types
    // against the defined schema.
    checkout_started.define(&client).await?;
    order_placed.define(&client).await?;

    let reserve = Task::new(
        "reserve-stock",
        &order_placed,
        |o: OrderPlaced, _| async move { Ok(json!({"reserved": o.order_id})) },
    );
    let charge = Task::new(
        "charge-card",
        &order_placed,
        |o: OrderPlaced, _| async move { Ok(json!({"charged": o.amount})) },
    );
    let legacy = Task::new(
        "notify-legacy",
        &order_placed,
        |_: OrderPlaced, _| async move {
            Err::<(), _>(TaskError::fatal("legacy system rejected the order"))
        },
    );
    let placed = order_placed.clone();
    let checkout = Task::new("checkout", &checkout_started, move |c: Checkout, ctx| {
        let placed = placed.clone();
        async move {
            // A side effect that must not repeat when the handler is re-invoked.
            let order_id: String = ctx
                .step("create-order", || async {
                    Ok(format!("ord-{}", c.cart_id))
                })
                .await?;
            let results = ctx
                .publish_and_wait(
                    &placed,
                    &OrderPlaced {
                        order_id,
                        amount: c.amount,
                    },
                )
                .await?;
            Ok(results)
        }
    })
    .retry(Retry::attempts(3));

    let worker = Worker::new(client.clone())
        .task(reserve)
        .task(charge)
        .task(legacy)
        .task(checkout.clone())
        .start()
        .await?;
    let done = checkout_started
        .publish_and_wait(
            &client,
            &Checkout {
                cart_id: "c-42".into(),
                amount: 99.5,
            },
        )
        .timeout(Duration::from_secs(60))
        .await?;
    // Read back through the task: typed as the handler returned it.
    let children: fanout::Results = done
        .results
        .get(&checkout)
        .ok_or("no result from the checkout task")?
        .map_err(|e: TaskFailure| format!("checkout failed: {e}"))?;
    println!("{}", serde_json::to_string(&children)?);
    worker.shutdown().await?;
    Ok(())
}

async fn connect() -> Result<Client, fanout::Error> {
    let mut tries = 0;
    loop {
        match Client::from_env().await {
            Ok(c) => return Ok(c),
            Err(e) if tries < 60 => {
                tries += 1;
                eprintln!("waiting for the engine: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
