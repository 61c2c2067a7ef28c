//! Comparing a table's keys between the source and Redshift, at a cost proportional to
//! the difference (issue 16's mechanism for `verify` and `deletes: reconcile`):
//! [`sql`] writes the per-range queries for each dialect, [`compare`] descends into the
//! ranges that differ, and [`Db`] is a database as one side.
//!
//! The reconcile step (`deletes: reconcile`, in `sync::reconcile`) uses it.

pub mod check;
pub mod compare;
pub mod content;
pub mod sql;

use tokio_postgres::SimpleQueryMessage;

use self::compare::KeySide;
use self::sql::{Dialect, Key, KeyTable, Range};
use crate::config::TableRef;
use crate::secrets::Role;

/// One primary-key column, as the comparison needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn<'a> {
    /// Its name at the source.
    pub source: &'a str,
    /// Its base type at the source (`pg_type.typname`, domains resolved).
    pub pg_type: &'a str,
    /// Its name in Redshift.
    pub redshift: &'a str,
    /// The table's `column_casts` names it.
    pub cast: bool,
}

/// The table's primary key as the comparison needs it: from setup's decisions (the
/// columns and their Redshift names) and the source's catalog (their base types).
pub fn key_of<'a>(
    table: &'a crate::config::Table,
    d: &'a crate::setup::Decisions,
    source: &'a crate::source::schema::SourceTable,
) -> Vec<KeyColumn<'a>> {
    d.primary_key
        .value
        .iter()
        .map(|k| KeyColumn {
            source: k,
            pg_type: source.column(k).map_or("", |c| c.pg_type.name.as_str()),
            redshift: d
                .live_columns()
                .find(|c| &c.source == k)
                .map_or(k.as_str(), |c| c.name.as_str()),
            cast: table.column_casts.contains_key(k),
        })
        .collect()
}

/// The key as each side sees it. Only keys whose text is the same in both databases
/// and whose order is the same can be compared: integers, text and varchar (in byte
/// order), uuid (lower-case hex in both). Anything else is refused, naming the column.
pub fn key_tables(
    source: &TableRef,
    destination: &TableRef,
    key: &[KeyColumn],
) -> Result<(KeyTable, KeyTable), String> {
    if key.is_empty() {
        return Err(
            "the table has no primary key, so rows cannot be matched between the databases: name one with primary_key and run setup again (for deletes: reconcile, or set deletes: keep on this table)".into(),
        );
    }
    let (mut text, mut padded) = (Vec::new(), Vec::new());
    for c in key {
        if c.cast {
            return Err(format!(
                "key column {} is cast (column_casts), so its values differ between the databases; remove the cast (for deletes: reconcile, or set deletes: keep on this table)",
                crate::quote::ident(c.source)
            ));
        }
        let (is_text, is_padded) = match c.pg_type {
            "int2" | "int4" | "int8" | "uuid" => (false, false),
            "text" | "varchar" => (true, false),
            "bpchar" => (true, true),
            other => {
                return Err(format!(
                    "key column {} is of type {other}, whose text may differ between PostgreSQL and Redshift, so its keys cannot be compared (keys of integer, text, varchar, char and uuid columns can); for deletes: reconcile, set deletes: keep on this table",
                    crate::quote::ident(c.source)
                ))
            }
        };
        text.push(is_text);
        padded.push(is_padded);
    }
    let side = |dialect, table: &TableRef, columns: Vec<String>| KeyTable {
        dialect,
        table: crate::quote::qualified(&table.schema, &table.name),
        columns,
        text: text.clone(),
        padded: padded.clone(),
        content: None,
    };
    Ok((
        side(
            Dialect::Postgres,
            source,
            key.iter().map(|c| c.source.to_string()).collect(),
        ),
        side(
            Dialect::Redshift,
            destination,
            key.iter().map(|c| c.redshift.to_string()).collect(),
        ),
    ))
}

/// A database as one side of the comparison.
pub struct Db<'a> {
    pub client: &'a tokio_postgres::Client,
    pub table: KeyTable,
    /// Which database it is (for errors).
    pub role: Role,
}

/// A comparison query failed, on one side.
#[derive(Debug)]
pub struct DbError {
    pub role: Role,
    pub error: tokio_postgres::Error,
}

impl Db<'_> {
    async fn rows(&self, query: &str) -> Result<Vec<Vec<Option<String>>>, DbError> {
        Ok(self
            .client
            .simple_query(query)
            .await
            .map_err(|error| DbError {
                role: self.role,
                error,
            })?
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect())
    }

    async fn key_rows(&self, query: &str) -> Result<Vec<Key>, DbError> {
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
    type Error = DbError;

    async fn summaries(&self, ranges: &[Range]) -> Result<Vec<(i64, i64)>, Self::Error> {
        let number = |v: &Option<String>| v.as_deref().and_then(|t| t.parse().ok()).unwrap_or(0);
        // A range without rows has no row.
        let mut out = vec![(0, 0); ranges.len()];
        for r in self.rows(&self.table.summaries(ranges)).await? {
            if let Some(slot) = usize::try_from(number(&r[0]))
                .ok()
                .and_then(|i| out.get_mut(i))
            {
                *slot = (number(&r[1]), number(&r[2]));
            }
        }
        Ok(out)
    }

    async fn boundaries(&self, range: &Range, every: u64) -> Result<Vec<Key>, Self::Error> {
        self.key_rows(&self.table.boundaries(range, every)).await
    }

    async fn keys(&self, range: &Range) -> Result<Vec<Key>, Self::Error> {
        self.key_rows(&self.table.keys(range)).await
    }

    fn digests(&self) -> bool {
        self.table.content.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column<'a>(name: &'a str, pg_type: &'a str) -> KeyColumn<'a> {
        KeyColumn {
            source: name,
            pg_type,
            redshift: name,
            cast: false,
        }
    }

    #[test]
    fn keys_that_print_alike_are_compared_and_others_named() {
        let (src, dst) = (
            TableRef::new("public", "t"),
            TableRef::new("analytics", "t"),
        );
        let (pg, rs) = key_tables(
            &src,
            &dst,
            &[column("Region", "varchar"), column("n", "int8")],
        )
        .unwrap();
        assert_eq!(pg.table, "\"public\".\"t\"");
        assert_eq!(rs.table, "\"analytics\".\"t\"");
        assert_eq!(pg.text, vec![true, false]);
        assert_eq!(
            (pg.dialect, rs.dialect),
            (Dialect::Postgres, Dialect::Redshift)
        );
        let e = key_tables(&src, &dst, &[column("at", "timestamptz")]).unwrap_err();
        assert!(
            e.contains("\"at\" is of type timestamptz") && e.contains("deletes: keep"),
            "{e}"
        );
        let mut cast = column("id", "text");
        cast.cast = true;
        assert!(key_tables(&src, &dst, &[cast])
            .unwrap_err()
            .contains("column_casts"));
        assert!(key_tables(&src, &dst, &[])
            .unwrap_err()
            .contains("no primary key"));
    }
}
