//! The schema's migrations, embedded at build time, per dialect.

use super::dialect::Dialect;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use std::borrow::Cow;

/// `(version, description, sql)` per dialect, embedded at build time. The
/// schema is portable (`migrations/*.sql`, both dialects); Postgres adds its
/// storage tuning (`migrations/postgres/`).
macro_rules! migrations {
    ($(($v:literal, $name:literal, $file:literal)),* $(,)?) => {
        &[$(($v, $name, include_str!(concat!("../../../../migrations/", $file)))),*]
    };
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = migrations!(
    (1, "init", "0001_init.sql"),
    (2, "delivery", "0002_delivery.sql"),
    (3, "waitpoints", "0003_waitpoints.sql"),
    (4, "replay", "0004_replay.sql"),
    (6, "outbox", "0006_outbox.sql"),
    (7, "children by event", "0007_children_by_event.sql"),
    (8, "paused subscriptions", "0008_paused.sql"),
    (9, "trace context", "0009_trace_context.sql"),
    (10, "run logs", "0010_run_logs.sql"),
    (11, "console", "0011_console.sql"),
    (12, "endpoints", "0012_endpoints.sql"),
    (13, "auth", "0013_auth.sql"),
);
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = migrations!(
    (1, "init", "0001_init.sql"),
    (2, "delivery", "0002_delivery.sql"),
    (3, "waitpoints", "0003_waitpoints.sql"),
    (4, "replay", "0004_replay.sql"),
    (5, "queue tuning", "postgres/0005_queue_tuning.sql"),
    (6, "outbox", "0006_outbox.sql"),
    (7, "children by event", "0007_children_by_event.sql"),
    (8, "paused subscriptions", "0008_paused.sql"),
    (9, "trace context", "0009_trace_context.sql"),
    (10, "run logs", "0010_run_logs.sql"),
    (11, "console", "0011_console.sql"),
    (12, "endpoints", "0012_endpoints.sql"),
    (13, "auth", "0013_auth.sql"),
);

pub(super) fn migrator(dialect: Dialect) -> Migrator {
    let list = match dialect {
        Dialect::Sqlite => SQLITE_MIGRATIONS,
        Dialect::Postgres => POSTGRES_MIGRATIONS,
    };
    let migrations = list
        .iter()
        .map(|(v, d, sql)| {
            Migration::new(
                *v,
                Cow::Borrowed(*d),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: Cow::Owned(migrations),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}
