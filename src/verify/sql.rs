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
    /// Per column: a `char(n)` at the source, whose padding PostgreSQL drops from its
    /// text and Redshift keeps in the VARCHAR it was loaded into (so Redshift trims it).
    pub padded: Vec<bool>,
    /// The row's content in canonical text (see [`super::content`]), when content is
    /// compared too: it joins the key in each row's hash, and leaf lists carry its md5.
    pub content: Option<String>,
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
    /// Column `i` as ranges compare it: text in byte order at the source; a padded
    /// `char(n)` value trimmed in Redshift (whose comparisons ignore trailing blanks;
    /// trimming says so to any engine).
    fn column(&self, i: usize) -> String {
        let c = quote::ident(&self.columns[i]);
        let padded = self.padded.get(i).copied().unwrap_or(false);
        match (self.dialect, self.text[i]) {
            (Dialect::Postgres, true) => format!("{c} COLLATE \"C\""),
            (Dialect::Redshift, _) if padded => format!("RTRIM({c})"),
            _ => c,
        }
    }

    /// Column `i` as key lists match it (equality: no collation needed).
    fn matched(&self, i: usize) -> String {
        let c = quote::ident(&self.columns[i]);
        match self.dialect {
            Dialect::Redshift if self.padded.get(i).copied().unwrap_or(false) => {
                format!("RTRIM({c})")
            }
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
        let padded = self.padded.get(i).copied().unwrap_or(false);
        match self.dialect {
            Dialect::Postgres => format!("{c}::text"),
            Dialect::Redshift if padded => format!("RTRIM(CAST({c} AS VARCHAR))"),
            Dialect::Redshift => format!("CAST({c} AS VARCHAR)"),
        }
    }

    /// The key's text: `len:value|len:value...`.
    fn key_text(&self) -> String {
        (0..self.columns.len())
            .map(|i| tagged(self.dialect, &self.as_text(i)))
            .collect::<Vec<_>>()
            .join(" || '|' || ")
    }

    /// A row's 32-bit hash as a BIGINT: of its key, and of its content when compared.
    fn row_hash(&self) -> String {
        let text = match &self.content {
            Some(content) => format!("{} || '#' || MD5({content})", self.key_text()),
            None => self.key_text(),
        };
        let md5 = format!("MD5({text})");
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

    /// `(i, count, hash sum)` for the ranges (`i` their position; a range without rows
    /// has no row). Adjacent ranges (the parts of one cut) are summarized in one scan
    /// of their union, each row bucketed by the bounds between them.
    pub fn summaries(&self, ranges: &[Range]) -> String {
        let mut runs = Vec::new();
        let mut start = 0;
        for i in 1..=ranges.len() {
            let adjacent =
                i < ranges.len() && ranges[i].lo.is_some() && ranges[i].lo == ranges[i - 1].hi;
            if !adjacent {
                runs.push((start, i));
                start = i;
            }
        }
        runs.iter()
            .map(|&(a, b)| {
                let whole = Range {
                    lo: ranges[a].lo.clone(),
                    hi: ranges[b - 1].hi.clone(),
                };
                let bucket = if b - a == 1 {
                    a.to_string()
                } else {
                    let whens: Vec<String> = (a..b - 1)
                        .map(|i| {
                            let hi = ranges[i].hi.as_deref().unwrap_or_default();
                            format!("WHEN {} THEN {i}", self.compare(hi, false))
                        })
                        .collect();
                    format!("CASE {} ELSE {} END", whens.join(" "), b - 1)
                };
                format!(
                    "SELECT i, COUNT(*) AS n, COALESCE(SUM(h), 0) AS h FROM (SELECT {bucket} AS i, {} AS h FROM {} WHERE {}) s GROUP BY i",
                    self.row_hash(),
                    self.table,
                    self.predicate(&whole)
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

    /// The keys of `range`, in key order; with content, each key ends with the md5 of
    /// the row's content.
    pub fn keys(&self, range: &Range) -> String {
        let select = match &self.content {
            Some(content) => format!("{}, MD5({content})", self.select_keys()),
            None => self.select_keys(),
        };
        format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {}",
            select,
            self.table,
            self.predicate(range),
            self.order()
        )
    }
}

impl KeyTable {
    /// Deletes the rows with these keys (at most a few thousand per statement: the
    /// caller batches).
    pub fn delete(&self, keys: &[Key]) -> String {
        format!("DELETE FROM {} WHERE {}", self.table, self.matching(keys))
    }

    /// The keys among `keys` whose rows also meet `condition`.
    pub fn select_matching(&self, keys: &[Key], condition: &str) -> String {
        format!(
            "SELECT {} FROM {} WHERE ({}) AND {condition}",
            self.select_keys(),
            self.table,
            self.matching(keys)
        )
    }

    /// The rows with these keys.
    fn matching(&self, keys: &[Key]) -> String {
        if keys.is_empty() {
            return "FALSE".into();
        }
        if self.columns.len() == 1 {
            let values: Vec<String> = keys.iter().map(|k| self.literal(&k[0])).collect();
            format!("{} IN ({})", self.matched(0), values.join(", "))
        } else {
            keys.iter()
                .map(|k| {
                    let terms: Vec<String> = k
                        .iter()
                        .take(self.columns.len())
                        .enumerate()
                        .map(|(i, v)| format!("{} = {}", self.matched(i), self.literal(v)))
                        .collect();
                    format!("({})", terms.join(" AND "))
                })
                .collect::<Vec<_>>()
                .join(" OR ")
        }
    }
}

/// `len:value` of a text expression (`NULL` stays NULL): lengths make the joined
/// text unambiguous. The length is cast to text explicitly for Redshift.
pub fn tagged(dialect: Dialect, text: &str) -> String {
    match dialect {
        Dialect::Postgres => format!("LENGTH({text})::text || ':' || {text}"),
        Dialect::Redshift => format!("CAST(LENGTH({text}) AS VARCHAR) || ':' || {text}"),
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
            padded: Vec::new(),
            content: None,
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
            "SELECT i, COUNT(*) AS n, COALESCE(SUM(h), 0) AS h FROM (SELECT 0 AS i, ('x' || SUBSTR(MD5(LENGTH(\"id\"::text)::text || ':' || \"id\"::text), 1, 8))::bit(32)::bigint AS h FROM \"s\".\"t\" WHERE TRUE) s GROUP BY i ORDER BY i"
        );
        let rs = table(Dialect::Redshift, &["id"], &[false]).summaries(&[Range::default()]);
        assert!(
            rs.contains("STRTOL(SUBSTRING(MD5(CAST(LENGTH(CAST(\"id\" AS VARCHAR)) AS VARCHAR) || ':' || CAST(\"id\" AS VARCHAR)), 1, 8), 16)"),
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

    #[test]
    fn deletes_name_each_key_as_a_literal() {
        let one = table(Dialect::Redshift, &["id"], &[false]);
        assert_eq!(
            one.delete(&[vec!["3".into()], vec!["15001".into()]]),
            "DELETE FROM \"s\".\"t\" WHERE \"id\" IN ('3', '15001')"
        );
        let two = table(Dialect::Redshift, &["a", "b"], &[true, false]);
        assert_eq!(
            two.delete(&[vec!["x'y".into(), "1".into()], vec!["z".into(), "2".into()]]),
            "DELETE FROM \"s\".\"t\" WHERE (\"a\" = 'x''y' AND \"b\" = '1') OR (\"a\" = 'z' AND \"b\" = '2')"
        );
    }

    #[test]
    fn adjacent_ranges_are_summarized_in_one_scan_bucketed_by_their_bounds() {
        let t = table(Dialect::Redshift, &["id"], &[false]);
        let r = |lo: Option<&str>, hi: Option<&str>| Range {
            lo: lo.map(|v| vec![v.to_string()]),
            hi: hi.map(|v| vec![v.to_string()]),
        };
        let sql = t.summaries(&[
            r(None, Some("10")),
            r(Some("10"), Some("20")),
            r(Some("20"), None),
            r(Some("50"), Some("60")),
        ]);
        assert_eq!(sql.matches("FROM \"s\".\"t\"").count(), 2, "{sql}");
        assert!(
            sql.contains(
                "CASE WHEN ((\"id\" < '10')) THEN 0 WHEN ((\"id\" < '20')) THEN 1 ELSE 2 END AS i"
            ),
            "{sql}"
        );
        assert!(sql.contains("SELECT 3 AS i"), "{sql}");
    }
}
