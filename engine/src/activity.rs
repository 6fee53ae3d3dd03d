//! What happened in each of the last 60 minutes on this replica: events
//! published, runs completed, attempts failed, runs dead. The console's
//! overview chart reads it; counting is a few relaxed atomic adds on paths
//! that already count metrics, and reading never touches the store.
//!
//! Per replica and in memory: a restart starts the hour empty, and a
//! deployment of several replicas shows each its own. Counts at a minute's
//! boundary may land in the minute before or after when a slot is being
//! recycled by another thread at that instant (no count is lost otherwise).

use serde::Serialize;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Minutes kept.
pub const MINUTES: usize = 60;

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Published = 0,
    Completed = 1,
    Failed = 2,
    Dead = 3,
}

const KINDS: usize = 4;

#[derive(Default)]
struct Slot {
    /// Minutes since the epoch this slot counts (0: never used).
    minute: AtomicI64,
    counts: [AtomicU64; KINDS],
}

/// The ring of the last [`MINUTES`] minutes.
pub struct Activity {
    slots: [Slot; MINUTES],
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            slots: std::array::from_fn(|_| Slot::default()),
        }
    }
}

/// One minute's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Minute {
    /// Start of the minute (epoch ms).
    pub at_ms: i64,
    pub published: u64,
    pub completed: u64,
    pub failed: u64,
    pub dead: u64,
}

impl Activity {
    /// Count `n` of `kind` at `now_ms`.
    pub fn add(&self, kind: Kind, n: u64, now_ms: i64) {
        let minute = now_ms.div_euclid(60_000);
        let slot = &self.slots[minute.rem_euclid(MINUTES as i64) as usize];
        let seen = slot.minute.load(Relaxed);
        if seen != minute
            && slot
                .minute
                .compare_exchange(seen, minute, Relaxed, Relaxed)
                .is_ok()
        {
            for c in &slot.counts {
                c.store(0, Relaxed);
            }
        }
        slot.counts[kind as usize].fetch_add(n, Relaxed);
    }

    /// The last [`MINUTES`] minutes up to `now_ms`, oldest first (minutes
    /// with nothing counted are zeros).
    pub fn minutes(&self, now_ms: i64) -> Vec<Minute> {
        let current = now_ms.div_euclid(60_000);
        (current - MINUTES as i64 + 1..=current)
            .map(|m| {
                let slot = &self.slots[m.rem_euclid(MINUTES as i64) as usize];
                let mut out = Minute {
                    at_ms: m * 60_000,
                    ..Minute::default()
                };
                if slot.minute.load(Relaxed) == m {
                    let c = |k: Kind| slot.counts[k as usize].load(Relaxed);
                    out.published = c(Kind::Published);
                    out.completed = c(Kind::Completed);
                    out.failed = c(Kind::Failed);
                    out.dead = c(Kind::Dead);
                }
                out
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_minute_and_old_minutes_fall_off() {
        let a = Activity::default();
        let t0 = 1_700_000_000_000 / 60_000 * 60_000;
        a.add(Kind::Published, 3, t0);
        a.add(Kind::Failed, 1, t0 + 59_999);
        a.add(Kind::Published, 2, t0 + 60_000);
        let m = a.minutes(t0 + 60_000);
        assert_eq!(m.len(), MINUTES);
        assert_eq!(m[MINUTES - 1].at_ms, t0 + 60_000);
        assert_eq!(m[MINUTES - 1].published, 2);
        assert_eq!((m[MINUTES - 2].published, m[MINUTES - 2].failed), (3, 1));
        // An hour later the slot of t0 is reused and starts from zero.
        let later = t0 + 60 * 60_000;
        a.add(Kind::Completed, 5, later);
        let m = a.minutes(later);
        assert_eq!((m[MINUTES - 1].published, m[MINUTES - 1].completed), (0, 5));
        assert!(m.iter().all(|x| x.at_ms > t0), "t0 is out of the window");
        assert_eq!(m[MINUTES - 60].published, 2, "t0 + 1 min is the oldest");
    }
}
