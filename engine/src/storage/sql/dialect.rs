//! Every difference between SQLite and PostgreSQL that the SQL bodies need,
//! and nothing else: row locks and placeholder lists. The rest of the SQL
//! is written once in the subset both accept (`$n` parameters, `ON
//! CONFLICT`, `RETURNING`, `WITH … UPDATE … FROM`, partial indexes).

/// Which SQL engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Row-lock suffix for a claim subquery.
    pub(super) fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        }
    }
    pub(super) fn for_update(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }
}

impl Dialect {
    /// Placeholders for a statement whose parameters are *all* generated
    /// here and each used once, in text order: `$from…` on Postgres, plain
    /// `?` on SQLite. (sqlx resolves `$N` on SQLite through
    /// `sqlite3_bind_parameter_name`, a linear scan per parameter, which
    /// made 7,000-parameter inserts quadratic: 13% of CPU in a profile.)
    pub(super) fn list(self, from: usize, n: usize) -> String {
        match self {
            Dialect::Postgres => params(from, n),
            Dialect::Sqlite => vec!["?"; n].join(", "),
        }
    }

    /// The first column of `n` rows bound `stride` parameters apart from
    /// `$1`, named again (for an `id IN (…)` beside a `VALUES` list):
    /// Postgres reuses the placeholders; on SQLite the caller binds the
    /// values again, after all the others ([`Dialect::rebinds`]).
    pub(super) fn again(self, stride: usize, n: usize) -> String {
        match self {
            Dialect::Postgres => (0..n)
                .map(|i| format!("${}", i * stride + 1))
                .collect::<Vec<_>>()
                .join(", "),
            Dialect::Sqlite => self.list(0, n),
        }
    }

    /// Whether values named by [`Dialect::again`] must be bound again.
    pub(super) fn rebinds(self) -> bool {
        self == Dialect::Sqlite
    }
}

/// `$from, $from+1, …` for `n` parameters.
pub(super) fn params(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows per multi-row INSERT (keeps parameters well under both limits).
pub(super) const CHUNK: usize = 400;
