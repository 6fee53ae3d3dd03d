//! The operator's API, typed: runs, dead letters, event definitions,
//! subscriptions, the event archive and replays. Lists page with a cursor
//! and come back as a [`futures::Stream`] (`.stream()`) or one page
//! (`.first(n)`); nothing here exposes generated protobuf types (for those,
//! [`crate::Client::raw`]).
//!
//! ```no_run
//! use fanout::{Client, RunStatus};
//! use futures::TryStreamExt;
//! # async fn demo(client: Client) -> fanout::Result<()> {
//! let dead: Vec<_> = client.runs().task("send-receipt").status(RunStatus::Dead).stream().try_collect().await?;
//! for run in &dead {
//!     println!("{} {}", run.id, run.last_error.as_deref().unwrap_or(""));
//! }
//! client.dead_letters().task("send-receipt").retry().await?;
//! # Ok(()) }
//! ```

mod query;
mod replay;
mod views;
mod webhooks;

pub use query::{DeadLetterQuery, RunQuery};
pub use replay::{ArchiveQuery, ReplaySpec};
pub use views::{
    ArchivedEvent, Attempt, Breaker, DlqState, Endpoint, EventDefinition, RateLimit, Replay,
    ReplayStatus, Run, RunDetail, RunLog, RunStatus, Subscription, SubscriptionState,
};
pub use webhooks::{CreatedSubscription, HttpSubscription, SubscriptionUpdate};
