//! The cross-replica signal vocabulary: what one engine tells the others
//! after a commit (over Postgres `LISTEN/NOTIFY`, see `peers`). Written by
//! the store inside its transactions, so only committed work is announced;
//! one [`Display`](std::fmt::Display) / [`FromStr`] pair is the wire form.

use std::fmt;
use std::str::FromStr;

/// One signal. Namespaces and ids never contain `:` at the front of the
/// payload's tag, so `tag:rest` splits unambiguously.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// New runs exist in this namespace (`runs:<ns>`).
    Runs(String),
    /// Runs were resumed or requeued, namespace not said (`runs`).
    AnyRuns,
    /// A retry falls due at this time, epoch ms (`due:<ms>`).
    Due(i64),
    /// Event definitions of this namespace changed (`events:<ns>`).
    Events(String),
    /// Subscriptions of this namespace changed (`subs:<ns>`).
    Subscriptions(String),
    /// This waitpoint reached a final state (`wp:<id>`).
    WaitpointFinished(String),
    /// API keys were created or revoked (`keys`): reload the keyring.
    Keys,
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signal::Runs(ns) => write!(f, "runs:{ns}"),
            Signal::AnyRuns => f.write_str("runs"),
            Signal::Due(at) => write!(f, "due:{at}"),
            Signal::Events(ns) => write!(f, "events:{ns}"),
            Signal::Subscriptions(ns) => write!(f, "subs:{ns}"),
            Signal::WaitpointFinished(id) => write!(f, "wp:{id}"),
            Signal::Keys => f.write_str("keys"),
        }
    }
}

/// A payload that is not a [`Signal`] (from a newer engine, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSignal(pub String);

impl FromStr for Signal {
    type Err = UnknownSignal;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownSignal(s.to_string());
        Ok(match s.split_once(':') {
            None if s == "runs" => Signal::AnyRuns,
            None if s == "keys" => Signal::Keys,
            Some(("runs", ns)) => Signal::Runs(ns.to_string()),
            Some(("due", ms)) => Signal::Due(ms.parse().map_err(|_| unknown())?),
            Some(("events", ns)) => Signal::Events(ns.to_string()),
            Some(("subs", ns)) => Signal::Subscriptions(ns.to_string()),
            Some(("wp", id)) => Signal::WaitpointFinished(id.to_string()),
            _ => return Err(unknown()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_round_trips() {
        for s in [
            Signal::Runs("team-a".into()),
            Signal::AnyRuns,
            Signal::Due(1_700_000_000_123),
            Signal::Events("ns:with:colons".into()),
            Signal::Subscriptions("default".into()),
            Signal::WaitpointFinished("01J0000000".into()),
            Signal::Keys,
        ] {
            assert_eq!(s.to_string().parse::<Signal>(), Ok(s));
        }
        assert!("due:soon".parse::<Signal>().is_err());
        assert!("hello".parse::<Signal>().is_err());
    }
}
