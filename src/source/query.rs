//! PURE: the SQL text that reads one chunk from the source, by keyset pagination on the
//! composite cursor (never OFFSET).
//!
//! `COPY (SELECT ...) TO STDOUT` takes no bind parameters, so the cursor values are
//! written as literals: quoted by [`crate::quote::pg_literal`] and cast to the key
//! column's own type, so the comparison uses the column's index and ordering.

use super::snapshot::Unseen;
use crate::config::TableRef;
use crate::quote;

/// A cursor column: its name and declared type (`format_type`, e.g. `bigint`,
/// `timestamp with time zone`, or a domain's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    pub name: String,
    pub pg_type: String,
}

/// A lower bound on the first cursor key, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floor<'a> {
    /// `k >= value`.
    At(&'a str),
    /// `k >= value - seconds` (a time key), computed by the source in the key's type.
    Before { value: &'a str, seconds: u64 },
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
    /// the beginning (or at `floor`).
    pub after: Option<&'a [String]>,
    /// Lower bound on the first key: where a catch-up or a lookback starts.
    pub floor: Option<Floor<'a>>,
    /// Upper bound on the whole cursor, inclusive: a catch-up or a lookback reads only
    /// rows at or behind the mark.
    pub upto: Option<&'a [String]>,
    /// Only the rows a read under an earlier snapshot could not see.
    pub unseen: Option<Unseen<'a>>,
    /// Rows after this cursor value were read under a later snapshot: for them, only
    /// what that one could not see (`unseen` then holds for the rows at or before it).
    pub unseen_after: Option<(&'a [String], Unseen<'a>)>,
    /// Rows of the chunk; `None` reads everything (FULL_DATA_SYNC).
    pub limit: Option<u64>,
}

/// `SELECT ... FROM t WHERE (k1, k2) > (v1, v2) AND ... ORDER BY k1, k2 LIMIT n`.
pub fn chunk_select(c: &Chunk) -> String {
    let mut sql = format!(
        "SELECT {} FROM {}",
        c.select.join(", "),
        quote::qualified(&c.table.schema, &c.table.name)
    );
    let cols: Vec<String> = c.keys.iter().map(|k| quote::ident(&k.name)).collect();
    let tuple = |values: &[String]| -> String {
        debug_assert_eq!(values.len(), c.keys.len(), "cursor and keys disagree");
        c.keys
            .iter()
            .zip(values)
            .map(|(k, v)| typed_literal(v, &k.pg_type))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut conditions = Vec::new();
    if let Some(after) = c.after {
        conditions.push(format!("({}) > ({})", cols.join(", "), tuple(after)));
    }
    if let (Some(floor), Some(first)) = (c.floor, c.keys.first()) {
        let bound = match floor {
            Floor::At(value) => typed_literal(value, &first.pg_type),
            Floor::Before { value, seconds } => format!(
                "({} - make_interval(secs => {seconds}))::{}",
                typed_literal(value, &first.pg_type),
                first.pg_type
            ),
        };
        conditions.push(format!("{} >= {bound}", quote::ident(&first.name)));
    }
    if let Some(upto) = c.upto {
        conditions.push(format!("({}) <= ({})", cols.join(", "), tuple(upto)));
    }
    match (c.unseen, c.unseen_after) {
        (Some(behind), Some((split, ahead))) => {
            let split = tuple(split);
            let cols = cols.join(", ");
            conditions.push(format!(
                "((({cols}) <= ({split}) AND {}) OR (({cols}) > ({split}) AND {}))",
                behind.condition(),
                ahead.condition()
            ));
        }
        (Some(u), None) => conditions.push(u.condition()),
        (None, _) => {}
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    if !c.keys.is_empty() {
        sql.push_str(" ORDER BY ");
        sql.push_str(&cols.join(", "));
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
    use crate::source::snapshot::{Snapshot, SnapshotFns};

    fn key(name: &str, t: &str) -> KeyColumn {
        KeyColumn {
            name: name.into(),
            pg_type: t.into(),
        }
    }

    fn chunk<'a>(t: &'a TableRef, select: &'a [String], keys: &'a [KeyColumn]) -> Chunk<'a> {
        Chunk {
            table: t,
            select,
            keys,
            after: None,
            floor: None,
            upto: None,
            unseen: None,
            unseen_after: None,
            limit: None,
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
            limit: Some(7),
            ..chunk(&t, &select, &keys)
        });
        assert_eq!(
            sql,
            "SELECT \"id\", \"meta\"::text FROM \"public\".\"orders\" ORDER BY \"updated_at\", \"id\" LIMIT 7"
        );
    }

    #[test]
    fn next_chunks_continue_after_the_composite_cursor() {
        let t = TableRef::new("Sales", "Order \"Items\"");
        let select = vec!["\"a\"".to_string()];
        let keys = [key("a", "integer"), key("b", "text")];
        let after = ["5".to_string(), "it's".to_string()];
        let sql = chunk_select(&Chunk {
            after: Some(&after),
            limit: Some(100),
            ..chunk(&t, &select, &keys)
        });
        assert_eq!(
            sql,
            "SELECT \"a\" FROM \"Sales\".\"Order \"\"Items\"\"\" WHERE (\"a\", \"b\") > ('5'::integer, 'it''s'::text) ORDER BY \"a\", \"b\" LIMIT 100"
        );
    }

    #[test]
    fn a_catch_up_reads_rows_behind_the_mark_written_since_a_snapshot() {
        let t = TableRef::new("public", "orders");
        let select = vec!["\"id\"".to_string()];
        let keys = [
            key("updated_at", "timestamp with time zone"),
            key("id", "bigint"),
        ];
        let mark = ["2024-05-01 10:00:00+00".to_string(), "42".to_string()];
        let sql = chunk_select(&Chunk {
            floor: Some(Floor::Before {
                value: "2024-05-01 10:00:00+00",
                seconds: 86400,
            }),
            upto: Some(&mark),
            unseen: Some(Unseen {
                snapshot: &Snapshot::parse("4294967400:4294967410:").unwrap(),
                fns: SnapshotFns::Pg13,
            }),
            limit: Some(5),
            ..chunk(&t, &select, &keys)
        });
        assert_eq!(
            sql,
            "SELECT \"id\" FROM \"public\".\"orders\" WHERE \"updated_at\" >= ('2024-05-01 10:00:00+00'::timestamp with time zone - make_interval(secs => 86400))::timestamp with time zone \
             AND (\"updated_at\", \"id\") <= ('2024-05-01 10:00:00+00'::timestamp with time zone, '42'::bigint) \
             AND ((SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint) - ((((SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint) - xmin::text::bigint) % 4294967296) + 4294967296) % 4294967296) >= 4294967400 \
             ORDER BY \"updated_at\", \"id\" LIMIT 5"
        );
    }

    #[test]
    fn a_catch_up_over_two_reads_asks_each_part_what_its_read_could_not_see() {
        let t = TableRef::new("public", "events");
        let select = vec!["\"id\"".to_string()];
        let keys = [key("id", "bigint")];
        let mark = ["900".to_string()];
        let split = ["500".to_string()];
        let behind = Snapshot::parse("10:10:").unwrap();
        let ahead = Snapshot::parse("20:20:").unwrap();
        let sql = chunk_select(&Chunk {
            upto: Some(&mark),
            unseen: Some(Unseen {
                snapshot: &behind,
                fns: SnapshotFns::Pg13,
            }),
            unseen_after: Some((
                &split,
                Unseen {
                    snapshot: &ahead,
                    fns: SnapshotFns::Pg13,
                },
            )),
            limit: Some(5),
            ..chunk(&t, &select, &keys)
        });
        let writer = "((SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint) - ((((SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint) - xmin::text::bigint) % 4294967296) + 4294967296) % 4294967296)";
        assert_eq!(
            sql.replace(writer, "W"),
            "SELECT \"id\" FROM \"public\".\"events\" WHERE (\"id\") <= ('900'::bigint) \
             AND (((\"id\") <= ('500'::bigint) AND W >= 10) OR ((\"id\") > ('500'::bigint) AND W >= 20)) \
             ORDER BY \"id\" LIMIT 5"
        );
    }

    #[test]
    fn an_integer_catch_up_starts_at_a_value_and_old_servers_use_txid() {
        let t = TableRef::new("public", "events");
        let select = vec!["\"id\"".to_string()];
        let keys = [key("id", "integer")];
        let mark = ["900".to_string()];
        let after = ["120".to_string()];
        let sql = chunk_select(&Chunk {
            after: Some(&after),
            floor: Some(Floor::At("100")),
            upto: Some(&mark),
            unseen: Some(Unseen {
                snapshot: &Snapshot::parse("7:9:").unwrap(),
                fns: SnapshotFns::for_version(120015),
            }),
            limit: Some(5),
            ..chunk(&t, &select, &keys)
        });
        assert_eq!(
            sql,
            "SELECT \"id\" FROM \"public\".\"events\" WHERE (\"id\") > ('120'::integer) AND \"id\" >= '100'::integer AND (\"id\") <= ('900'::integer) \
             AND ((SELECT txid_snapshot_xmax(txid_current_snapshot())) - ((((SELECT txid_snapshot_xmax(txid_current_snapshot())) - xmin::text::bigint) % 4294967296) + 4294967296) % 4294967296) >= 7 \
             ORDER BY \"id\" LIMIT 5"
        );
    }

    #[test]
    fn a_full_copy_has_no_cursor() {
        let t = TableRef::new("public", "countries");
        let select = vec!["\"code\"".to_string()];
        let sql = chunk_select(&chunk(&t, &select, &[]));
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
