//! PURE: a row's content in one canonical text on both sides, so that `verify` can tell
//! a changed row from an equal one without moving it.
//!
//! The source side starts from the column's extract expression (the value exactly as
//! the loader reads it: casts applied, refused values replaced), the Redshift side from
//! the column. Each compared type is printed in a form both databases produce alike:
//!
//! | Redshift type | canonical text |
//! |---|---|
//! | SMALLINT, INTEGER, BIGINT | the number |
//! | DECIMAL(p,s) | the number with `s` decimals (the source value cast to `numeric(p,s)`, as COPY rounds it) |
//! | BOOLEAN | `t` / `f` |
//! | VARCHAR, CHAR | the text as loaded (the source's output form), trailing blanks not compared |
//! | DATE, TIMESTAMP | `TO_CHAR` to the microsecond, with the era |
//! | TIMESTAMPTZ | the same, in UTC |
//! | VARBYTE | lower-case hex (an empty value is NULL, as it loads) |
//!
//! REAL, DOUBLE PRECISION, TIME, TIMETZ and SUPER are not compared: their text forms
//! differ between the two databases (float digits, JSON spacing and key order), so a
//! comparison would report equal values as changed. They are named in the report.
//! A NULL is `~`, any value `len:text`, columns joined by `|`.

use super::sql::{tagged, Dialect};
use crate::quote;
use crate::setup::plan::PlannedColumn;
use crate::warehouse::types::Load;

/// A column's canonical text on each side, or why it is not compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canonical {
    Compared { source: String, redshift: String },
    NotCompared(&'static str),
}

const TIME_FORMAT: &str = "'YYYY-MM-DD HH24:MI:SS.US BC'";

/// The canonical text of one planned column.
pub fn canonical(c: &PlannedColumn) -> Canonical {
    let sel = format!("({})", c.select);
    let col = quote::ident(&c.name);
    let upper = c.redshift_type.to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or_default().trim();
    let both = |source: String, redshift: String| Canonical::Compared { source, redshift };
    match (base, c.load) {
        ("SMALLINT" | "INTEGER" | "BIGINT" | "INT2" | "INT4" | "INT8" | "INT", _) => {
            both(format!("{sel}::text"), format!("CAST({col} AS VARCHAR)"))
        }
        ("DECIMAL" | "NUMERIC", _) => match decimal(&upper) {
            Some((p, s)) => both(
                format!("({sel}::numeric({p},{s}))::text"),
                format!("CAST({col} AS VARCHAR)"),
            ),
            None => Canonical::NotCompared("DECIMAL without precision and scale"),
        },
        ("BOOLEAN" | "BOOL", _) => both(
            format!("CASE WHEN {sel} THEN 't' WHEN NOT {sel} THEN 'f' END"),
            format!("CASE WHEN {col} THEN 't' WHEN NOT {col} THEN 'f' END"),
        ),
        ("VARCHAR" | "CHAR" | "CHARACTER" | "NVARCHAR" | "BPCHAR" | "TEXT", Load::Text { .. }) => {
            // format('%s', v) prints v by its output function, as COPY did. Trailing
            // blanks are not compared (Redshift ignores them in comparisons).
            // (format prints NULL as an empty string: NULL stays NULL.)
            both(
                format!("CASE WHEN {sel} IS NULL THEN NULL ELSE RTRIM(format('%s', {sel})) END"),
                format!("RTRIM({col})"),
            )
        }
        ("DATE", _) => both(
            format!("TO_CHAR({sel}::date, {TIME_FORMAT})"),
            format!("TO_CHAR({col}, {TIME_FORMAT})"),
        ),
        ("TIMESTAMP", _) => both(
            format!("TO_CHAR({sel}::timestamp, {TIME_FORMAT})"),
            format!("TO_CHAR({col}, {TIME_FORMAT})"),
        ),
        ("TIMESTAMPTZ", _) => both(
            format!("TO_CHAR({sel}::timestamptz AT TIME ZONE 'UTC', {TIME_FORMAT})"),
            format!("TO_CHAR({col} AT TIME ZONE 'UTC', {TIME_FORMAT})"),
        ),
        ("VARBYTE" | "VARBINARY" | "BINARY VARYING", Load::Hex { .. }) => {
            // An empty value loads as NULL (an empty CSV field), as the loader counts.
            both(
                format!("NULLIF(LOWER({sel}), '')"),
                format!("LOWER(TO_HEX({col}))"),
            )
        }
        ("REAL" | "FLOAT4" | "DOUBLE PRECISION" | "FLOAT8" | "FLOAT", _) => {
            Canonical::NotCompared("floating point prints differently in each database")
        }
        ("TIME" | "TIMETZ", _) => {
            Canonical::NotCompared("time of day prints differently in each database")
        }
        ("SUPER", _) => {
            Canonical::NotCompared("JSON spacing and key order differ between the databases")
        }
        _ => Canonical::NotCompared("no canonical form for this type"),
    }
}

/// `DECIMAL(p,s)` → `(p, s)`.
fn decimal(t: &str) -> Option<(u32, u32)> {
    let inner = t.split_once('(')?.1.strip_suffix(')')?;
    let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// The row's content on one side: each compared column's text, tagged, joined.
pub fn row_text(dialect: Dialect, columns: &[String]) -> Option<String> {
    if columns.is_empty() {
        return None;
    }
    Some(
        columns
            .iter()
            .map(|c| format!("COALESCE({}, '~')", tagged(dialect, c)))
            .collect::<Vec<_>>()
            .join(" || '|' || "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, source_type: &str, redshift_type: &str, load: Load) -> PlannedColumn {
        PlannedColumn {
            source: name.into(),
            name: name.into(),
            source_type: source_type.into(),
            redshift_type: redshift_type.into(),
            load,
            select: quote::ident(name),
            not_null: false,
            reason: None,
            dropped: false,
            replaced: None,
        }
    }

    #[test]
    fn each_type_prints_alike_or_says_why_not() {
        let c = canonical(&column(
            "amount",
            "numeric(12,2)",
            "DECIMAL(12,2)",
            Load::Plain,
        ));
        assert_eq!(
            c,
            Canonical::Compared {
                source: "((\"amount\")::numeric(12,2))::text".into(),
                redshift: "CAST(\"amount\" AS VARCHAR)".into(),
            }
        );
        let c = canonical(&column(
            "code",
            "character(4)",
            "VARCHAR(16)",
            Load::Text { max_bytes: 16 },
        ));
        assert_eq!(
            c,
            Canonical::Compared {
                source: "CASE WHEN (\"code\") IS NULL THEN NULL ELSE RTRIM(format('%s', (\"code\"))) END".into(),
                redshift: "RTRIM(\"code\")".into(),
            }
        );
        let c = canonical(&column(
            "at",
            "timestamp with time zone",
            "TIMESTAMPTZ",
            Load::Plain,
        ));
        assert!(
            matches!(&c, Canonical::Compared { redshift, .. } if redshift.contains("AT TIME ZONE 'UTC'")),
            "{c:?}"
        );
        assert!(matches!(
            canonical(&column(
                "x",
                "double precision",
                "DOUBLE PRECISION",
                Load::Plain
            )),
            Canonical::NotCompared(_)
        ));
        assert!(matches!(
            canonical(&column("j", "jsonb", "SUPER", Load::Json { max_bytes: 10 })),
            Canonical::NotCompared(_)
        ));
        assert_eq!(decimal("DECIMAL(20,4)"), Some((20, 4)));
        assert_eq!(decimal("NUMERIC(9)"), Some((9, 0)));
    }

    #[test]
    fn a_row_is_its_columns_tagged_and_null_is_a_tilde() {
        assert_eq!(
            row_text(Dialect::Postgres, &["a".into(), "b".into()]).unwrap(),
            "COALESCE(LENGTH(a)::text || ':' || a, '~') || '|' || COALESCE(LENGTH(b)::text || ':' || b, '~')"
        );
        assert_eq!(row_text(Dialect::Redshift, &[]), None);
    }
}
