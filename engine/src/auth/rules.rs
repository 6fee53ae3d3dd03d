//! Which scope each gRPC method and HTTP route needs: one table per
//! transport, read by the API's gate before any handler runs. A method or
//! route missing here is refused (fail closed), and the generated test
//! (`tests/tests/auth.rs`) walks the proto's service descriptors and the
//! OpenAPI route list, so a new one without a rule fails CI.

use crate::model::Scope::{self, Admin, Publish, Read, Worker};

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// No key (health, and `/metrics` unless `auth.protect_metrics`).
    Open,
    /// A key holding one of these scopes (`admin` always does).
    Any(&'static [Scope]),
}

/// What a method or route missing from the tables gets: closed to all but
/// admin keys (the tests fail on any missing entry).
pub const ADMIN_ONLY: Rule = Rule::Any(&[Admin]);
const READ: Rule = Rule::Any(&[Read]);
const ADMIN: Rule = Rule::Any(&[Admin]);
const PUBLISH: Rule = Rule::Any(&[Publish]);
const WORKER: Rule = Rule::Any(&[Worker]);
/// Reading definitions: operators, and workers checking their schemas.
const DEFINITIONS: Rule = Rule::Any(&[Read, Worker]);
/// Following a waitpoint: whoever can create one.
const WAITPOINT: Rule = Rule::Any(&[Read, Worker, Publish]);
/// Completing a token: an application's signal, a worker, an operator.
const COMPLETE_TOKEN: Rule = Rule::Any(&[Publish, Worker]);

/// The rule for a gRPC method path (`/fanout.v1.EventService/Publish`).
pub fn grpc(path: &str) -> Option<Rule> {
    let (service, method) = path.trim_start_matches('/').split_once('/')?;
    Some(match (service, method) {
        ("grpc.health.v1.Health", _) => Rule::Open,
        ("fanout.v1.EventService", m) => match m {
            "DefineEvent" => ADMIN,
            "GetEvent" | "ListEvents" => DEFINITIONS,
            "Publish" => PUBLISH,
            "TestFilter" => READ,
            _ => return None,
        },
        ("fanout.v1.WorkerService", "Session" | "RegisterTasks") => WORKER,
        ("fanout.v1.WaitpointService", m) => match m {
            "PublishAndWait" => PUBLISH,
            "Sleep" | "RecordStep" => WORKER,
            "CreateToken" => Rule::Any(&[Worker, Publish]),
            "CompleteToken" => COMPLETE_TOKEN,
            "GetWaitpoint" | "Wait" => WAITPOINT,
            _ => return None,
        },
        ("fanout.v1.ReplayService", m) => match m {
            "StartReplay" | "CancelReplay" => ADMIN,
            "GetReplay" | "ListArchived" => READ,
            _ => return None,
        },
        ("fanout.v1.AdminService", m) => match m {
            "ListRuns" | "GetRun" | "ListSubscriptions" | "ListDeadLetters" | "GetRunLogs"
            | "GetSubscription" => READ,
            "RetryDeadLetters"
            | "DiscardDeadLetters"
            | "SetSubscriptionPaused"
            | "CreateSubscription"
            | "UpdateSubscription"
            | "DeleteSubscription"
            | "RotateSubscriptionSecret"
            | "CreateApiKey"
            | "ListApiKeys"
            | "RevokeApiKey"
            | "ListAudit" => ADMIN,
            _ => return None,
        },
        _ => return None,
    })
}

/// The rule for an HTTP route, by method and the route's pattern as
/// registered (`/api/v1/runs/{id}/logs`). `protect_metrics`: `/metrics`
/// needs `read`.
pub fn http(method: &str, route: &str, protect_metrics: bool) -> Option<Rule> {
    Some(match (method, route) {
        (_, "/healthz" | "/readyz" | "/livez") => Rule::Open,
        (_, "/metrics") if protect_metrics => READ,
        (_, "/metrics") => Rule::Open,
        ("POST", "/api/v1/events/{name}/publish") => PUBLISH,
        ("POST", "/api/v1/waitpoints/{id}/complete") => COMPLETE_TOKEN,
        ("GET", "/api/v1/runs/{id}/logs") => READ,
        ("POST", "/api/v1/dead-letters/retry" | "/api/v1/dead-letters/discard") => ADMIN,
        ("POST", "/api/v1/replays" | "/api/v1/replays/{id}/cancel") => ADMIN,
        ("GET", "/api/v1/replays/{id}") => READ,
        ("POST", "/api/v1/filters/test") => READ,
        ("GET", "/api/v1/subscriptions" | "/api/v1/subscriptions/{id}") => READ,
        ("POST", "/api/v1/subscriptions") => ADMIN,
        ("PATCH" | "DELETE", "/api/v1/subscriptions/{id}") => ADMIN,
        (
            "POST",
            "/api/v1/subscriptions/{id}/rotate-secret"
            | "/api/v1/subscriptions/{id}/pause"
            | "/api/v1/subscriptions/{id}/resume",
        ) => ADMIN,
        ("GET", "/api/v1/audit") => ADMIN,
        _ => return None,
    })
}
