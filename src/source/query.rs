//! PURE: the SQL text that reads one chunk from the source, by keyset pagination on the
//! composite cursor (never OFFSET).
//!
//! `COPY (SELECT ...) TO STDOUT` takes no bind parameters, so the cursor values are
//! written as literals: quoted by [`crate::quote::pg_literal`] and cast to the key
//! column's own type, so the comparison uses the column's index and ordering.

use crate::config::TableRef;
use crate::quote;

/// A cursor column: its name and declared type (`format_type`, e.g. `bigint`,
/// `timestamp with time zone`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    pub name: String,
    pub pg_type: String,
}

/// What one chunk reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub table: &'a TableRef,
    /// SELECT expressions, in the extract's column order.
    pub select: &'a [String],
    /// The cursor, most significant first: `(updated, pk...)` or `(pk...)`. Empty for
    /// a full copy.
    pub keys: &'a [KeyColumn],
    /// The last cursor value loaded (text, as the extract printed it); `None` starts at
    /// the beginning.
    pub after: Option<&'a [String]>,
    /// Lower bound on the first key, inclusive (the lookback window's start); used
    /// when there is no cursor yet in this run.
    pub floor: Option<&'a str>,
    /// Upper bound on the first key (INSERT_AND_UPDATE's settle ceiling), inclusive.
    pub ceiling: Option<&'a str>,
    /// Read only rows where this column is NULL (the pass over rows whose updated key
    /// is NULL, keyed by the primary key).
    pub null_key: Option<&'a str>,
    /// Rows of the chunk; `None` reads everything (FULL_DATA_SYNC).
    pub limit: Option<u64>,
}

/// `SELECT ... FROM t WHERE (k1, k2) > (v1, v2) AND k1 <= ceiling ORDER BY k1, k2 LIMIT n`.
pub fn chunk_select(c: &Chunk) -> String {
    let mut sql = format!(
        "SELECT {} FROM {}",
        c.select.join(", "),
        quote::qualified(&c.table.schema, &c.table.name)
    );
    let mut conditions = Vec::new();
    if let Some(column) = c.null_key {
        conditions.push(format!("{} IS NULL", quote::ident(column)));
    }
    if let Some(first) = c.keys.first() {
        // NULL keys never compare greater: they are read by their own pass.
        conditions.push(format!("{} IS NOT NULL", quote::ident(&first.name)));
    }
    if let Some(after) = c.after {
        debug_assert_eq!(after.len(), c.keys.len(), "cursor and keys disagree");
        let cols: Vec<String> = c.keys.iter().map(|k| quote::ident(&k.name)).collect();
        let vals: Vec<String> = c
            .keys
            .iter()
            .zip(after)
            .map(|(k, v)| typed_literal(v, &k.pg_type))
            .collect();
        conditions.push(format!("({}) > ({})", cols.join(", "), vals.join(", ")));
    }
    if let (Some(floor), Some(first)) = (c.floor, c.keys.first()) {
        conditions.push(format!(
            "{} >= {}",
            quote::ident(&first.name),
            typed_literal(floor, &first.pg_type)
        ));
    }
    if let (Some(ceiling), Some(first)) = (c.ceiling, c.keys.first()) {
        conditions.push(format!(
            "{} <= {}",
            quote::ident(&first.name),
            typed_literal(ceiling, &first.pg_type)
        ));
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    if !c.keys.is_empty() {
        let order: Vec<String> = c.keys.iter().map(|k| quote::ident(&k.name)).collect();
        sql.push_str(" ORDER BY ");
        sql.push_str(&order.join(", "));
    }
    if let Some(n) = c.limit {
        sql.push_str(&format!(" LIMIT {n}"));
    }
    sql
}

/// `COPY (select) TO STDOUT` in the CSV dialect [`crate::encode`] reads.
pub fn copy_out(select: &str) -> String {
    format!("COPY ({select}) TO STDOUT WITH (FORMAT csv, NULL '\\N')")
}

/// `'value'::type`.
pub fn typed_literal(value: &str, pg_type: &str) -> String {
    format!("{}::{pg_type}", quote::pg_literal(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, t: &str) -> KeyColumn {
        KeyColumn {
            name: name.into(),
            pg_type: t.into(),
        }
    }

    #[test]
    fn first_chunk_of_an_incremental_table() {
        let t = TableRef::new("public", "orders");
        let select = vec!["\"id\"".to_string(), "\"meta\"::text".to_string()];
        let keys = [
            key("updated_at", "timestamp with time zone"),
            key("id", "bigint"),
        ];
        let sql = chunk_select(&Chunk {
            table: &t,
            select: &select,
            keys: &keys,
            after: None,
            floor: Some("2024-05-01 09:00:00+00"),
            ceiling: Some("2024-05-01 10:00:00+00"),
            null_key: None,
            limit: Some(7),
        });
        assert_eq!(
            sql,
            "SELECT \"id\", \"meta\"::text FROM \"public\".\"orders\" WHERE \"updated_at\" IS NOT NULL AND \"updated_at\" >= '2024-05-01 09:00:00+00'::timestamp with time zone AND \"updated_at\" <= '2024-05-01 10:00:00+00'::timestamp with time zone ORDER BY \"updated_at\", \"id\" LIMIT 7"
        );
    }

    #[test]
    fn next_chunks_continue_after_the_composite_cursor() {
        let t = TableRef::new("Sales", "Order \"Items\"");
        let select = vec!["\"a\"".to_string()];
        let keys = [key("a", "integer"), key("b", "text")];
        let after = ["5".to_string(), "it's".to_string()];
        let sql = chunk_select(&Chunk {
            table: &t,
            select: &select,
            keys: &keys,
            after: Some(&after),
            floor: None,
            ceiling: None,
            null_key: None,
            limit: Some(100),
        });
        assert_eq!(
            sql,
            "SELECT \"a\" FROM \"Sales\".\"Order \"\"Items\"\"\" WHERE \"a\" IS NOT NULL AND (\"a\", \"b\") > ('5'::integer, 'it''s'::text) ORDER BY \"a\", \"b\" LIMIT 100"
        );
    }

    #[test]
    fn the_null_pass_reads_rows_without_an_updated_key_by_primary_key() {
        let t = TableRef::new("public", "orders");
        let select = vec!["\"id\"".to_string()];
        let keys = [key("id", "bigint")];
        let sql = chunk_select(&Chunk {
            table: &t,
            select: &select,
            keys: &keys,
            after: None,
            floor: None,
            ceiling: None,
            null_key: Some("updated_at"),
            limit: Some(5),
        });
        assert_eq!(
            sql,
            "SELECT \"id\" FROM \"public\".\"orders\" WHERE \"updated_at\" IS NULL AND \"id\" IS NOT NULL ORDER BY \"id\" LIMIT 5"
        );
    }

    #[test]
    fn a_full_copy_has_no_cursor() {
        let t = TableRef::new("public", "countries");
        let select = vec!["\"code\"".to_string()];
        let sql = chunk_select(&Chunk {
            table: &t,
            select: &select,
            keys: &[],
            after: None,
            floor: None,
            ceiling: None,
            null_key: None,
            limit: None,
        });
        assert_eq!(sql, "SELECT \"code\" FROM \"public\".\"countries\"");
        assert_eq!(
            copy_out(&sql),
            "COPY (SELECT \"code\" FROM \"public\".\"countries\") TO STDOUT WITH (FORMAT csv, NULL '\\N')"
        );
    }

    #[test]
    fn cursor_values_cannot_break_out_of_their_literal() {
        assert_eq!(
            typed_literal("x'); DROP TABLE t; --", "text"),
            "'x''); DROP TABLE t; --'::text"
        );
        assert_eq!(typed_literal("a\\b", "text"), "E'a\\\\b'::text");
    }
}
