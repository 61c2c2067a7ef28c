//! Comparing a table's keys between the source and Redshift, at a cost proportional to
//! the difference (issue 16's mechanism for `verify` and `deletes: reconcile`):
//! [`sql`] writes the per-range queries for each dialect, [`compare`] descends into the
//! ranges that differ, and [`Db`] is a database as one side.
//!
//! Not wired into a command yet: the `verify` command, the content comparison and
//! the reconcile step build on this.

pub mod compare;
pub mod sql;

use tokio_postgres::SimpleQueryMessage;

use self::compare::KeySide;
use self::sql::{Key, KeyTable, Range};

/// A database as one side of the comparison.
pub struct Db<'a> {
    pub client: &'a tokio_postgres::Client,
    pub table: KeyTable,
}

impl Db<'_> {
    async fn rows(&self, query: &str) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
        Ok(self
            .client
            .simple_query(query)
            .await?
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect())
    }

    async fn key_rows(&self, query: &str) -> Result<Vec<Key>, tokio_postgres::Error> {
        Ok(self
            .rows(query)
            .await?
            .into_iter()
            // Key columns are never NULL (the loader refuses nullable keys).
            .map(|r| r.into_iter().map(Option::unwrap_or_default).collect())
            .collect())
    }
}

impl KeySide for Db<'_> {
    type Error = tokio_postgres::Error;

    async fn summaries(&self, ranges: &[Range]) -> Result<Vec<(i64, i64)>, Self::Error> {
        let number = |v: &Option<String>| v.as_deref().and_then(|t| t.parse().ok()).unwrap_or(0);
        Ok(self
            .rows(&self.table.summaries(ranges))
            .await?
            .iter()
            .map(|r| (number(&r[1]), number(&r[2])))
            .collect())
    }

    async fn boundaries(&self, range: &Range, every: u64) -> Result<Vec<Key>, Self::Error> {
        self.key_rows(&self.table.boundaries(range, every)).await
    }

    async fn keys(&self, range: &Range) -> Result<Vec<Key>, Self::Error> {
        self.key_rows(&self.table.keys(range)).await
    }
}
