//! Domain types shared by the store, the dispatcher and the API layers.
//!
//! These are plain data: no I/O. Times are epoch milliseconds (`i64`), ids
//! are UUIDv7 strings (time ordered, so primary keys append to the index).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `as_str` / `parse` / `ALL` / `Display` / `FromStr` for an enum stored
/// and sent as text: one spelling per variant, written once.
macro_rules! wire_names {
    ($t:ident { $($v:ident = $s:literal),* $(,)? }) => {
        impl $t {
            /// Every value, in declaration order.
            pub const ALL: &'static [$t] = &[$($t::$v),*];

            /// The stored / wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($t::$v => $s),* }
            }

            /// Parse the stored / wire spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($t::$v),)* _ => None }
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $t {
            type Err = crate::error::Error;

            fn from_str(s: &str) -> crate::error::Result<Self> {
                $t::parse(s).ok_or_else(|| {
                    crate::error::Error::Internal(format!(
                        "unknown {} '{}' (expected one of: {})",
                        stringify!($t),
                        crate::error::clip(s, 64),
                        $t::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                    ))
                })
            }
        }
    };
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

mod auth;
mod endpoint;
mod event;
mod logs;
mod replay;
mod run;
mod waitpoint;

pub use auth::*;
pub use endpoint::*;
pub use event::*;
pub use logs::*;
pub use replay::*;
pub use run::*;
pub use waitpoint::*;
