//! PURE: the queries that compare a table's keys between the source and Redshift
//! without moving them: per key range, a row count and an order-independent hash,
//! each computed inside its own database.
//!
//! - A key's text is the same on both sides: each column's text form (integers, text
//!   and uuid print alike in PostgreSQL and Redshift), prefixed by its length so that
//!   `("a|b","c")` and `("a","b|c")` differ.
//! - A row's hash is the first 32 bits of the md5 of that text, as a BIGINT (PostgreSQL:
//!   through `bit(32)`; Redshift: `STRTOL(..., 16)`), and a range's hash is their SUM:
//!   order-independent, and within BIGINT for up to 2^31 rows.
//! - Ranges are lexicographic on the key columns, written out column by column
//!   (Redshift has no row comparison). Text keys compare in byte order on both sides
//!   (`COLLATE "C"` at the source; Redshift compares UTF-8 bytes), so a range holds the
//!   same keys in both databases.

use crate::quote;

/// Which database a query is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Redshift,
}

/// A table's key as one side sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTable {
    pub dialect: Dialect,
    /// Quoted, schema-qualified.
    pub table: String,
    /// The key columns (unquoted names), in key order.
    pub columns: Vec<String>,
    /// Per column: compared as text (byte order), else as a number.
    pub text: Vec<bool>,
}

/// A key: one text value per column.
pub type Key = Vec<String>;

/// Keys from `lo` (inclusive) to `hi` (exclusive); `None` is unbounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Range {
    pub lo: Option<Key>,
    pub hi: Option<Key>,
}

impl KeyTable {
    fn column(&self, i: usize) -> String {
        let c = quote::ident(&self.columns[i]);
        match (self.dialect, self.text[i]) {
            (Dialect::Postgres, true) => format!("{c} COLLATE \"C\""),
            _ => c,
        }
    }

    fn literal(&self, value: &str) -> String {
        match self.dialect {
            Dialect::Postgres => quote::pg_literal(value),
            Dialect::Redshift => quote::literal(value),
        }
    }

    fn as_text(&self, i: usize) -> String {
        let c = quote::ident(&self.columns[i]);
        match self.dialect {
            Dialect::Postgres => format!("{c}::text"),
            Dialect::Redshift => format!("CAST({c} AS VARCHAR)"),
        }
    }

    /// The key's text: `len:value|len:value...`.
    fn key_text(&self) -> String {
        (0..self.columns.len())
            .map(|i| {
                let t = self.as_text(i);
                format!("LENGTH({t}) || ':' || {t}")
            })
            .collect::<Vec<_>>()
            .join(" || '|' || ")
    }

    /// A row's 32-bit hash as a BIGINT.
    fn row_hash(&self) -> String {
        let md5 = format!("MD5({})", self.key_text());
        match self.dialect {
            Dialect::Postgres => format!("('x' || SUBSTR({md5}, 1, 8))::bit(32)::bigint"),
            Dialect::Redshift => format!("STRTOL(SUBSTRING({md5}, 1, 8), 16)"),
        }
    }

    /// `key >= bound` (or `key < bound`), column by column.
    fn compare(&self, bound: &[String], at_least: bool) -> String {
        let n = self.columns.len().min(bound.len());
        let mut alternatives = Vec::new();
        for i in 0..n {
            let mut terms: Vec<String> = (0..i)
                .map(|j| format!("{} = {}", self.column(j), self.literal(&bound[j])))
                .collect();
            let last = i + 1 == n;
            let op = match (at_least, last) {
                (true, true) => ">=",
                (true, false) => ">",
                (false, true) => "<",
                (false, false) => "<",
            };
            terms.push(format!(
                "{} {op} {}",
                self.column(i),
                self.literal(&bound[i])
            ));
            alternatives.push(format!("({})", terms.join(" AND ")));
        }
        format!("({})", alternatives.join(" OR "))
    }

    /// The WHERE condition of `range` (`TRUE` when unbounded).
    pub fn predicate(&self, range: &Range) -> String {
        let mut parts = Vec::new();
        if let Some(lo) = &range.lo {
            parts.push(self.compare(lo, true));
        }
        if let Some(hi) = &range.hi {
            parts.push(self.compare(hi, false));
        }
        if parts.is_empty() {
            "TRUE".into()
        } else {
            parts.join(" AND ")
        }
    }

    fn order(&self) -> String {
        (0..self.columns.len())
            .map(|i| self.column(i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn select_keys(&self) -> String {
        (0..self.columns.len())
            .map(|i| self.as_text(i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One row per range, in order: `(count, hash sum)`.
    pub fn summaries(&self, ranges: &[Range]) -> String {
        ranges
            .iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "SELECT {i} AS i, COUNT(*) AS n, COALESCE(SUM({}), 0) AS h FROM {} WHERE {}",
                    self.row_hash(),
                    self.table,
                    self.predicate(r)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
            + " ORDER BY i"
    }

    /// Every `every`-th key of `range`, in key order: the bounds that cut it into
    /// parts of `every` keys (one scan of the range).
    pub fn boundaries(&self, range: &Range, every: u64) -> String {
        let names: Vec<String> = (0..self.columns.len()).map(|i| format!("k{i}")).collect();
        let keys: Vec<String> = (0..self.columns.len())
            .map(|i| format!("{} AS k{i}", self.as_text(i)))
            .collect();
        format!(
            "SELECT {} FROM (SELECT {}, ROW_NUMBER() OVER (ORDER BY {}) AS rn FROM {} WHERE {}) s \
             WHERE rn % {every} = 1 AND rn > 1 ORDER BY rn",
            names.join(", "),
            keys.join(", "),
            self.order(),
            self.table,
            self.predicate(range)
        )
    }

    /// The keys of `range`, in key order.
    pub fn keys(&self, range: &Range) -> String {
        format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {}",
            self.select_keys(),
            self.table,
            self.predicate(range),
            self.order()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(dialect: Dialect, columns: &[&str], text: &[bool]) -> KeyTable {
        KeyTable {
            dialect,
            table: "\"s\".\"t\"".into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            text: text.to_vec(),
        }
    }

    fn key(values: &[&str]) -> Option<Key> {
        Some(values.iter().map(|v| v.to_string()).collect())
    }

    #[test]
    fn a_single_column_range_is_two_comparisons() {
        let t = table(Dialect::Postgres, &["id"], &[false]);
        let r = Range {
            lo: key(&["10"]),
            hi: key(&["20"]),
        };
        assert_eq!(t.predicate(&r), "((\"id\" >= '10')) AND ((\"id\" < '20'))");
        assert_eq!(t.predicate(&Range::default()), "TRUE");
    }

    #[test]
    fn a_composite_range_is_lexicographic_and_text_compares_in_byte_order() {
        let t = table(Dialect::Postgres, &["a", "b"], &[true, false]);
        let r = Range {
            lo: key(&["x'y", "5"]),
            hi: None,
        };
        assert_eq!(
            t.predicate(&r),
            "((\"a\" COLLATE \"C\" > 'x''y') OR (\"a\" COLLATE \"C\" = 'x''y' AND \"b\" >= '5'))"
        );
        let rs = table(Dialect::Redshift, &["a", "b"], &[true, false]);
        let r = Range {
            lo: None,
            hi: key(&["a\\b", "5"]),
        };
        assert_eq!(
            rs.predicate(&r),
            "((\"a\" < 'a\\\\b') OR (\"a\" = 'a\\\\b' AND \"b\" < '5'))"
        );
    }

    #[test]
    fn summaries_hash_the_same_text_in_each_dialect() {
        let pg = table(Dialect::Postgres, &["id"], &[false]).summaries(&[Range::default()]);
        assert_eq!(
            pg,
            "SELECT 0 AS i, COUNT(*) AS n, COALESCE(SUM(('x' || SUBSTR(MD5(LENGTH(\"id\"::text) || ':' || \"id\"::text), 1, 8))::bit(32)::bigint), 0) AS h FROM \"s\".\"t\" WHERE TRUE ORDER BY i"
        );
        let rs = table(Dialect::Redshift, &["id"], &[false]).summaries(&[Range::default()]);
        assert!(
            rs.contains("STRTOL(SUBSTRING(MD5(LENGTH(CAST(\"id\" AS VARCHAR)) || ':' || CAST(\"id\" AS VARCHAR)), 1, 8), 16)"),
            "{rs}"
        );
    }

    #[test]
    fn boundaries_take_every_nth_key_after_the_first() {
        let t = table(Dialect::Postgres, &["id"], &[false]);
        assert_eq!(
            t.boundaries(&Range::default(), 1000),
            "SELECT k0 FROM (SELECT \"id\"::text AS k0, ROW_NUMBER() OVER (ORDER BY \"id\") AS rn FROM \"s\".\"t\" WHERE TRUE) s WHERE rn % 1000 = 1 AND rn > 1 ORDER BY rn"
        );
    }
}
