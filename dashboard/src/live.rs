//! `GET /live`: server-sent events telling open pages to refresh.
//!
//! Every 250 ms the stream compares a fingerprint of this replica's recent
//! activity (the last two minutes' publish, completion, failure and death
//! counts, and the connected workers) with the last one it sent; a change
//! sends `change`, so a run that dies shows on `/dlq` well within a second.
//! Work done on other replicas is not in the fingerprint: a `change` is
//! also sent every 5 s. The stream ends when the engine shuts down, so it
//! never holds a graceful shutdown open.

use crate::App;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use fanout_engine::model::now_ms;
use futures::Stream;
use std::convert::Infallible;
use std::time::Duration;

const CHECK: Duration = Duration::from_millis(250);
const ANYWAY: Duration = Duration::from_secs(5);

fn fingerprint(app: &App) -> (u64, usize) {
    let minutes = app.engine.activity().minutes(now_ms());
    let recent = minutes.iter().rev().take(2).fold(0u64, |acc, m| {
        acc.wrapping_add(m.published)
            .wrapping_add(m.completed.wrapping_mul(3))
            .wrapping_add(m.failed.wrapping_mul(7))
            .wrapping_add(m.dead.wrapping_mul(13))
    });
    (recent, app.engine.workers().live())
}

pub(crate) async fn stream(
    State(app): State<App>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stop = app.engine.shutdown_token().clone();
    // The page was just rendered: only what happens from now on is news.
    let start = Some(fingerprint(&app));
    let s = futures::stream::unfold(
        (app, start, tokio::time::Instant::now()),
        move |(app, last, mut sent_at)| {
            let stop = stop.clone();
            async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(CHECK) => {}
                        _ = stop.cancelled() => return None,
                    }
                    let now = fingerprint(&app);
                    if Some(now) != last || sent_at.elapsed() >= ANYWAY {
                        sent_at = tokio::time::Instant::now();
                        let ev = Event::default().event("change").data("1");
                        return Some((Ok(ev), (app, Some(now), sent_at)));
                    }
                }
            }
        },
    );
    Sse::new(s).keep_alive(KeepAlive::default())
}
