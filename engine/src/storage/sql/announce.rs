//! Telling other replicas what committed: Postgres `NOTIFY`, sent inside
//! the transaction so it is delivered at commit (nothing on SQLite, whose
//! one process hears it through [`SqlStore::subscribe`]).

use super::SqlStore;
use crate::error::Result;
use crate::model::*;
use crate::signal::Signal;
use sqlx::{Any, Transaction};

impl SqlStore {
    /// Tell other replicas (Postgres only), delivered at commit.
    pub(super) async fn notify(
        &self,
        tx: &mut Transaction<'static, Any>,
        signal: Signal,
    ) -> Result<()> {
        self.notify_all(tx, &[signal]).await
    }

    /// Several notifications in one statement (Postgres; nothing on SQLite),
    /// delivered at commit.
    pub(super) async fn notify_all(
        &self,
        tx: &mut Transaction<'static, Any>,
        signals: &[Signal],
    ) -> Result<()> {
        let Some(channel) = &self.channel else {
            return Ok(());
        };
        if signals.is_empty() {
            return Ok(());
        }
        let calls = (0..signals.len())
            .map(|i| format!("pg_notify($1, ${})", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {calls}");
        let mut q = sqlx::query(&sql).bind(channel);
        for s in signals {
            q = q.bind(s.to_string());
        }
        q.execute(&mut **tx).await?;
        Ok(())
    }

    /// Announce the earliest retry among `effects`.
    pub(super) async fn notify_due(
        &self,
        tx: &mut Transaction<'static, Any>,
        effects: &[CompletionEffect],
    ) -> Result<()> {
        let due = effects
            .iter()
            .filter_map(|e| match e {
                CompletionEffect::Retrying { at_ms } => Some(*at_ms),
                _ => None,
            })
            .min();
        match due {
            Some(at) => self.notify(tx, Signal::Due(at)).await,
            None => Ok(()),
        }
    }
}
