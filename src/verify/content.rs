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
//! | REAL, DOUBLE PRECISION | the number to 6 / 15 significant digits: both print `%.6g` / `%.15g` with `extra_float_digits` 0, which verify sets on both sessions |
//! | BOOLEAN | `t` / `f` |
//! | VARCHAR, CHAR | the text as loaded (the source's output form), trailing blanks not compared |
//! | DATE, TIMESTAMP | `TO_CHAR` to the microsecond, with the era |
//! | TIMESTAMPTZ | the same, in UTC |
//! | TIME, TIMETZ | `TO_CHAR` of `DATE '2000-01-01' + value` (both databases' date + time operator) to the microsecond; TIMETZ in UTC |
//! | SUPER | the JSON text, compact: the source's text with the blanks between tokens removed, `JSON_SERIALIZE` in Redshift; JSON `null` and NULL alike |
//! | VARBYTE | lower-case hex (an empty value is NULL, as it loads) |
//!
//! Floats and SUPER depend on how the cluster prints them, which the Redshift docs do
//! not pin down to the character (JSON key order and number spelling). So each such
//! column comes with a probe: the same canonical expressions applied to fixed
//! values on both sides before the comparison. A column whose probe comes back
//! different is not compared, and the report names it with both texts, instead of
//! reporting every row as changed.
//! A NULL is `~`, any value `len:text`, columns joined by `|`.

use super::sql::{tagged, Dialect};
use crate::quote;
use crate::setup::plan::PlannedColumn;
use crate::warehouse::types::Load;

/// A column's canonical text on each side, or why it is not compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canonical {
    Compared {
        source: String,
        redshift: String,
        /// Fixed values to print on both sides first, for types the cluster prints its
        /// own way: `(source expression, Redshift expression)` per value.
        probe: Vec<(String, String)>,
    },
    NotCompared(&'static str),
}

const TIME_FORMAT: &str = "'YYYY-MM-DD HH24:MI:SS.US BC'";
const TIME_OF_DAY: &str = "'HH24:MI:SS.US'";

/// JSON as `jsonb` prints it (keys sorted, `, ` and `: `): what the loader sends for a
/// jsonb column. A test checks PostgreSQL prints it back unchanged.
pub const PROBE_JSONB: &str =
    r#"{"a": [1, -0.001, 1.50, 100, true, null, "x \"y\" \\ é\n\t"], "b": {"c": []}}"#;
/// JSON as `to_json` prints an array.
pub const PROBE_ARRAY: &str = r#"[1,null,"x \"y\" é",[2,3]]"#;
/// JSON as a `json` column may hold it: keys unsorted, irregular blanks.
pub const PROBE_JSON: &str = r#"{"b":2, "a" : [1.0, 2E1, "é"]}"#;
const PROBE_DOUBLE: &[&str] = &[
    "0.1",
    "-2.5e-07",
    "1e+300",
    "123456789.123456789",
    "0.3333333333333333",
];
const PROBE_REAL: &[&str] = &["0.1", "-2.5e-07", "3.4e+38", "123456.7"];

/// The canonical text of one planned column.
pub fn canonical(c: &PlannedColumn) -> Canonical {
    let Some((source, redshift)) = forms(c, &format!("({})", c.select), &quote::ident(&c.name))
    else {
        return Canonical::NotCompared(not_compared(c));
    };
    let values: Vec<(String, String)> = match family(c) {
        Some(Family::Real) => PROBE_REAL
            .iter()
            .map(|v| {
                (
                    format!("{}::float4", quote::pg_literal(v)),
                    format!("CAST({} AS REAL)", quote::literal(v)),
                )
            })
            .collect(),
        Some(Family::Double) => PROBE_DOUBLE
            .iter()
            .map(|v| {
                (
                    format!("{}::float8", quote::pg_literal(v)),
                    format!("CAST({} AS DOUBLE PRECISION)", quote::literal(v)),
                )
            })
            .collect(),
        Some(Family::Super) => {
            let json = if c.source_type.eq_ignore_ascii_case("jsonb") {
                PROBE_JSONB
            } else if c.source_type.ends_with(']') {
                PROBE_ARRAY
            } else {
                PROBE_JSON
            };
            vec![(
                quote::pg_literal(json),
                format!("JSON_PARSE({})", quote::literal(json)),
            )]
        }
        _ => Vec::new(),
    };
    let probe = values
        .iter()
        .filter_map(|(sel, col)| forms(c, &format!("({sel})"), col))
        .collect();
    Canonical::Compared {
        source,
        redshift,
        probe,
    }
}

/// The types printed by the cluster's own rules, probed before comparing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Real,
    Double,
    Super,
}

fn base(c: &PlannedColumn) -> String {
    let upper = c.redshift_type.to_ascii_uppercase();
    upper
        .split('(')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn family(c: &PlannedColumn) -> Option<Family> {
    match base(c).as_str() {
        "REAL" | "FLOAT4" => Some(Family::Real),
        "DOUBLE PRECISION" | "FLOAT8" | "FLOAT" => Some(Family::Double),
        "SUPER" => Some(Family::Super),
        _ => None,
    }
}

fn not_compared(c: &PlannedColumn) -> &'static str {
    match base(c).as_str() {
        "DECIMAL" | "NUMERIC" => "DECIMAL without precision and scale",
        _ => "no canonical form for this type",
    }
}

/// Removes the blanks between JSON tokens (not those inside strings), in PostgreSQL.
fn compact_json(text: &str) -> String {
    format!(r#"regexp_replace({text}, E'("(?:[^"\\\\]|\\\\.)*")|[ \\t\\n\\r]+', E'\\1', 'g')"#)
}

/// The canonical expressions of column `c` with its source value `sel` and its Redshift
/// value `col`; `None` when the type has none.
fn forms(c: &PlannedColumn, sel: &str, col: &str) -> Option<(String, String)> {
    let upper = c.redshift_type.to_ascii_uppercase();
    let both = |source: String, redshift: String| Some((source, redshift));
    match (base(c).as_str(), c.load) {
        ("SMALLINT" | "INTEGER" | "BIGINT" | "INT2" | "INT4" | "INT8" | "INT", _) => {
            both(format!("{sel}::text"), format!("CAST({col} AS VARCHAR)"))
        }
        ("DECIMAL" | "NUMERIC", _) => {
            let (p, s) = decimal(&upper)?;
            both(
                format!("({sel}::numeric({p},{s}))::text"),
                format!("CAST({col} AS VARCHAR)"),
            )
        }
        // Both print with extra_float_digits 0 (set by verify on each session).
        ("REAL" | "FLOAT4", _) => both(
            format!("({sel}::float4)::text"),
            format!("CAST({col} AS VARCHAR)"),
        ),
        ("DOUBLE PRECISION" | "FLOAT8" | "FLOAT", _) => both(
            format!("({sel}::float8)::text"),
            format!("CAST({col} AS VARCHAR)"),
        ),
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
        ("TIME", _) => both(
            format!("TO_CHAR(DATE '2000-01-01' + {sel}::time, {TIME_OF_DAY})"),
            format!("TO_CHAR(DATE '2000-01-01' + {col}, {TIME_OF_DAY})"),
        ),
        ("TIMETZ", _) => both(
            format!(
                "TO_CHAR((DATE '2000-01-01' + {sel}::timetz) AT TIME ZONE 'UTC', {TIME_OF_DAY})"
            ),
            format!("TO_CHAR((DATE '2000-01-01' + {col}) AT TIME ZONE 'UTC', {TIME_OF_DAY})"),
        ),
        ("SUPER", Load::Json { .. }) => both(
            // The extract sends the JSON as text; JSON null and NULL compare alike
            // (JSON_SERIALIZE prints both as `null`).
            format!("NULLIF({}, 'null')", compact_json(&format!("{sel}::text"))),
            format!("NULLIF(JSON_SERIALIZE({col}), 'null')"),
        ),
        ("VARBYTE" | "VARBINARY" | "BINARY VARYING", Load::Hex { .. }) => {
            // An empty value loads as NULL (an empty CSV field), as the loader counts.
            both(
                format!("NULLIF(LOWER({sel}), '')"),
                format!("LOWER(TO_HEX({col}))"),
            )
        }
        _ => None,
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
                probe: Vec::new(),
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
                probe: Vec::new(),
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
        // Floats and SUPER come with probe values printed the same way on both sides.
        let Canonical::Compared {
            source,
            redshift,
            probe,
        } = canonical(&column(
            "x",
            "double precision",
            "DOUBLE PRECISION",
            Load::Plain,
        ))
        else {
            panic!("doubles are compared")
        };
        assert_eq!(source, "((\"x\")::float8)::text");
        assert_eq!(redshift, "CAST(\"x\" AS VARCHAR)");
        assert_eq!(
            probe[0],
            (
                "(('0.1'::float8)::float8)::text".to_string(),
                "CAST(CAST('0.1' AS DOUBLE PRECISION) AS VARCHAR)".to_string()
            )
        );
        let Canonical::Compared {
            redshift, probe, ..
        } = canonical(&column("j", "jsonb", "SUPER", Load::Json { max_bytes: 10 }))
        else {
            panic!("SUPER is compared")
        };
        assert_eq!(redshift, "NULLIF(JSON_SERIALIZE(\"j\"), 'null')");
        assert_eq!(probe.len(), 1);
        assert!(
            probe[0].1.contains("JSON_PARSE('{\"a\": [1, -0.001"),
            "{probe:?}"
        );
        let Canonical::Compared { source, .. } =
            canonical(&column("t", "time with time zone", "TIMETZ", Load::Plain))
        else {
            panic!("TIMETZ is compared")
        };
        assert!(
            source.contains("DATE '2000-01-01' + (\"t\")::timetz"),
            "{source}"
        );
        assert_eq!(
            canonical(&column("n", "numeric", "DECIMAL", Load::Plain)),
            Canonical::NotCompared("DECIMAL without precision and scale")
        );
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
