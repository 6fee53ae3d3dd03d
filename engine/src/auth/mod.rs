//! Authentication and authorization: API keys (`key.rs`: their text,
//! checksum and hash), the in-memory [`Keyring`] that checks them without a
//! store read, the [`Principal`] a request acts as, and the [`rules`] saying
//! which scope each gRPC method and HTTP route needs. The API's gate
//! (`api/gate.rs`) applies them before any handler runs.
//!
//! The caller also travels with the request's task ([`acting_as`],
//! [`caller`]), so the engine's mutations record who made them in the audit
//! log without every method taking an actor argument; work the engine does
//! on its own (the breaker, a 410) has no caller and is recorded as `engine`.

pub mod key;
mod keyring;
mod principal;
pub mod rules;

pub use keyring::{Keyring, RELOAD};
pub use principal::Principal;

use std::sync::Arc;

tokio::task_local! {
    static CALLER: Arc<Principal>;
}

/// Run `f` as `who` (what [`caller`] returns inside it).
pub fn acting_as<F: std::future::Future>(
    who: Arc<Principal>,
    f: F,
) -> tokio::task::futures::TaskLocalFuture<Arc<Principal>, F> {
    CALLER.scope(who, f)
}

/// The caller of the request this task serves; `None` in the engine's own
/// background work.
pub fn caller() -> Option<Arc<Principal>> {
    CALLER.try_with(Arc::clone).ok()
}

/// Apply `check` to the current caller, if the task serves one.
pub fn check_caller(
    check: impl FnOnce(&Principal) -> crate::error::Result<()>,
) -> crate::error::Result<()> {
    CALLER.try_with(|p| check(p)).unwrap_or(Ok(()))
}
