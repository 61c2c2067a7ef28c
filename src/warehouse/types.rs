//! PostgreSQL type → Redshift type, with the reason for each choice that is not
//! obvious, and the source expression that renders each column as CSV text.
//!
//! Sizes follow Redshift's rules: VARCHAR and CHAR count bytes (a PostgreSQL character
//! is up to 4 bytes of UTF-8), VARCHAR holds at most 65535 bytes, DECIMAL at most 38
//! digits, CHAR single-byte characters only. JSON reaches SUPER as text through a
//! VARCHAR stage column and `JSON_PARSE`, so it is limited to 65535 bytes as well.
//!
//! Values these types cannot hold, which the loader must handle at load time (they are
//! not refused here, because most tables never contain them): `infinity`/`-infinity`
//! in `date`, `timestamp` and `timestamptz`; dates before 4713 BC or after 294276 AD;
//! `24:00:00` in `time`; `NaN` and `±Infinity` in `numeric`; text longer than 65535
//! bytes (cut on a character boundary and counted).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::TableRef;
use crate::quote;
use crate::source::schema::{Column, PgType};

/// The widest Redshift VARCHAR, in bytes.
pub const VARCHAR_MAX_BYTES: u32 = 65_535;
/// The widest Redshift CHAR, in bytes.
pub const CHAR_MAX_BYTES: u32 = 4_096;
/// JSON text goes through VARCHAR on its way into SUPER (`JSON_PARSE`).
pub const SUPER_TEXT_MAX_BYTES: u32 = VARCHAR_MAX_BYTES;
/// The widest VARBYTE the loader creates. Redshift allows more, but each value travels
/// as hex text (twice its size) in one CSV row, and COPY limits the size of a row.
pub const VARBYTE_MAX_BYTES: u32 = 1_024_000;
/// Redshift's VARBYTE without a length.
const VARBYTE_DEFAULT_BYTES: u32 = 64_000;
/// Redshift's VARCHAR without a length.
const VARCHAR_DEFAULT_BYTES: u32 = 256;
/// Redshift's largest DECIMAL precision.
pub const DECIMAL_MAX_PRECISION: i32 = 38;
/// Decimal places kept when a numeric is too wide (or unbounded) for DECIMAL.
const FALLBACK_SCALE: i32 = 10;
/// PostgreSQL names and enum labels are at most NAMEDATALEN - 1 bytes.
const NAME_MAX_BYTES: u32 = 63;
/// `interval` as text: up to 66 bytes with IntervalStyle `postgres`, 76 with
/// `postgres_verbose` (`-178956970 years -7 mons -2147483647 days -2562047788:00:54.775807`).
const INTERVAL_TEXT_BYTES: u32 = 80;

/// What a column becomes in Redshift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Normalised Redshift type: `BIGINT`, `VARCHAR(400)`, `DECIMAL(12,2)`.
    pub redshift_type: String,
    pub load: Load,
    /// Why a choice that is not obvious was made, for `setup` to print.
    pub reason: Option<String>,
    /// What may go wrong with this choice and how to change it.
    pub warnings: Vec<String>,
}

/// How the extract renders a value in the CSV, and how big it may be. Stored with
/// setup's decisions as `{"kind": "text", "max_bytes": 80}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Load {
    /// As PostgreSQL prints it, unquoted: numbers, booleans, dates and times.
    Plain,
    /// Text, quoted; a value over `max_bytes` must be cut on a UTF-8 character boundary
    /// and counted.
    Text { max_bytes: u32 },
    /// JSON text, parsed into SUPER by `JSON_PARSE`; a value over `max_bytes` cannot load.
    Json { max_bytes: u32 },
    /// Hex digits without `\x`, for VARBYTE; `max_bytes` counts binary bytes (the hex
    /// text is twice as long).
    Hex { max_bytes: u32 },
}

/// A column the loader cannot create in Redshift, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeError {
    pub table: TableRef,
    pub column: String,
    pub problem: TypeProblem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeProblem {
    /// The source type has no Redshift counterpart: `xml`, `tsvector`, `point`, ranges...
    Unsupported { pg_type: String },
    /// `column_types` names a type the loader cannot create or fill.
    BadOverride { written: String, why: String },
}

impl fmt::Display for TypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let column = quote::ident(&self.column);
        match &self.problem {
            TypeProblem::Unsupported { pg_type } => write!(
                f,
                "table {}: column {column} has type {pg_type}, which Redshift cannot store; add {column} to exclude_columns, or cast it with column_casts (e.g. {}: text)",
                self.table, self.column
            ),
            TypeProblem::BadOverride { written, why } => write!(
                f,
                "table {}: column_types.{}: {written:?}: {why}",
                self.table, self.column
            ),
        }
    }
}

impl std::error::Error for TypeError {}

/// The Redshift type for one source column. `override_type` is the table's
/// `column_types` entry, which wins when it is a type the loader can fill. A column
/// with a `column_casts` entry arrives with the cast's type already in `pg_type`.
pub fn map_column(
    table: &TableRef,
    column: &Column,
    override_type: Option<&str>,
) -> Result<Mapping, TypeError> {
    let t = &column.pg_type;
    let error = |problem| TypeError {
        table: table.clone(),
        column: column.name.clone(),
        problem,
    };
    let source = map_type(t, &column.name);
    let mut mapping = match override_type {
        None => source.ok_or_else(|| {
            error(TypeProblem::Unsupported {
                pg_type: type_label(t),
            })
        })?,
        Some(written) => {
            let bad = |why: String| {
                error(TypeProblem::BadOverride {
                    written: written.to_string(),
                    why,
                })
            };
            let (redshift_type, load) = parse_override(written).map_err(bad)?;
            let mut warnings = Vec::new();
            match (&source, load) {
                (Some(m), Load::Hex { .. }) if !matches!(m.load, Load::Hex { .. }) => {
                    return Err(bad(format!(
                        "VARBYTE is filled from binary data, and the column has type {}; cast it to bytea with column_casts",
                        type_label(t)
                    )));
                }
                (None, Load::Plain | Load::Json { .. } | Load::Hex { .. }) => {
                    return Err(bad(format!(
                        "the column has type {}, which loads only as its text form; use VARCHAR(n) or CHAR(n)",
                        type_label(t)
                    )));
                }
                (Some(m), Load::Json { .. }) if !matches!(m.load, Load::Json { .. }) => {
                    warnings.push(
                        "SUPER is filled through JSON_PARSE: every value must be JSON text".into(),
                    );
                }
                _ => {}
            }
            if redshift_type.starts_with("CHAR(") {
                warnings.push(
                    "Redshift CHAR holds single-byte characters only: a value with any other character fails the load; VARCHAR has no such limit".into(),
                );
            }
            let reason = match &source {
                Some(m) if m.redshift_type != redshift_type => format!(
                    "set by column_types (the mapping would be {})",
                    m.redshift_type
                ),
                _ => "set by column_types".to_string(),
            };
            Mapping {
                redshift_type,
                load,
                reason: Some(reason),
                warnings,
            }
        }
    };
    if let Some(domain) = &t.domain {
        let base = format!("domain {domain} over {}", t.name);
        mapping.reason = Some(match mapping.reason {
            Some(r) => format!("{base}; {r}"),
            None => base,
        });
    }
    Ok(mapping)
}

/// The type as a message names it: `xml`, `my_domain (a domain over xml)`.
fn type_label(t: &PgType) -> String {
    match &t.domain {
        Some(_) => format!("{} (a domain over {})", t.display, t.name),
        None => t.display.clone(),
    }
}

fn is_array(t: &PgType) -> bool {
    t.category == 'A' || t.name.starts_with('_')
}

fn mapping(redshift_type: impl Into<String>, load: Load) -> Mapping {
    Mapping {
        redshift_type: redshift_type.into(),
        load,
        reason: None,
        warnings: Vec::new(),
    }
}

fn because(mut m: Mapping, reason: impl Into<String>) -> Mapping {
    m.reason = Some(reason.into());
    m
}

fn text(max_bytes: u32) -> Mapping {
    mapping(format!("VARCHAR({max_bytes})"), Load::Text { max_bytes })
}

/// The mapping of a source type without overrides; `None` when Redshift cannot hold it.
fn map_type(t: &PgType, column: &str) -> Option<Mapping> {
    if is_array(t) {
        return Some(because(
            mapping(
                "SUPER",
                Load::Json {
                    max_bytes: SUPER_TEXT_MAX_BYTES,
                },
            ),
            "array as a JSON array (to_json); at most 65535 bytes of JSON per value",
        ));
    }
    if t.category == 'E' {
        return Some(because(
            text(NAME_MAX_BYTES),
            "enum label as text; PostgreSQL labels are at most 63 bytes",
        ));
    }
    let m = match t.name.as_str() {
        "int2" => mapping("SMALLINT", Load::Plain),
        "int4" => mapping("INTEGER", Load::Plain),
        "int8" => mapping("BIGINT", Load::Plain),
        "oid" => because(
            mapping("BIGINT", Load::Plain),
            "oid is an unsigned 32-bit number, beyond INTEGER",
        ),
        "numeric" => numeric(t, column),
        "float4" => mapping("REAL", Load::Plain),
        "float8" => mapping("DOUBLE PRECISION", Load::Plain),
        "money" => because(
            mapping("DECIMAL(19,2)", Load::Plain),
            "money is read as numeric (its text form depends on lc_monetary); 2 decimal places",
        ),
        "bool" => mapping("BOOLEAN", Load::Plain),
        "bpchar" | "varchar" => {
            let kind = if t.name == "bpchar" {
                "Redshift CHAR holds single-byte characters only, so VARCHAR; "
            } else {
                ""
            };
            match t.char_length {
                Some(n) => {
                    let bytes = char_bytes(n);
                    let cut = if bytes == VARCHAR_MAX_BYTES {
                        "; longer values are cut and counted"
                    } else {
                        ""
                    };
                    because(
                        text(bytes),
                        format!("{kind}VARCHAR counts bytes: 4 per character{cut}"),
                    )
                }
                None => because(
                    text(VARCHAR_MAX_BYTES),
                    format!("{kind}unbounded: the widest VARCHAR; longer values are cut and counted"),
                ),
            }
        }
        "text" => because(
            text(VARCHAR_MAX_BYTES),
            "unbounded: the widest VARCHAR (Redshift's TEXT is only VARCHAR(256)); longer values are cut and counted",
        ),
        "citext" => because(
            text(VARCHAR_MAX_BYTES),
            "unbounded: the widest VARCHAR; Redshift compares it case-sensitively",
        ),
        "name" => because(
            text(NAME_MAX_BYTES),
            "PostgreSQL names are at most 63 bytes",
        ),
        "date" => mapping("DATE", Load::Plain),
        "time" => mapping("TIME", Load::Plain),
        "timetz" => mapping("TIMETZ", Load::Plain),
        "timestamp" => mapping("TIMESTAMP", Load::Plain),
        "timestamptz" => mapping("TIMESTAMPTZ", Load::Plain),
        "interval" => because(
            text(INTERVAL_TEXT_BYTES),
            "Redshift cannot store an interval column: its text form",
        ),
        "uuid" => because(text(36), "uuid as its 36-character text form"),
        "json" | "jsonb" => because(
            mapping(
                "SUPER",
                Load::Json {
                    max_bytes: SUPER_TEXT_MAX_BYTES,
                },
            ),
            "JSON through JSON_PARSE: at most 65535 bytes of JSON per value",
        ),
        "bytea" => because(
            mapping(
                format!("VARBYTE({VARBYTE_MAX_BYTES})"),
                Load::Hex {
                    max_bytes: VARBYTE_MAX_BYTES,
                },
            ),
            "binary as hex; the widest VARBYTE the loader creates",
        ),
        "inet" | "cidr" => because(text(43), "address as text (IPv6 with prefix: 43 bytes)"),
        "macaddr" => because(text(17), "address as text"),
        "macaddr8" => because(text(23), "address as text"),
        "bit" | "varbit" => match bit_length(t) {
            Some(n) => because(text(n), "bit string as text of 0s and 1s"),
            None => because(
                text(VARCHAR_MAX_BYTES),
                "bit string as text of 0s and 1s; its length is unknown, so the widest VARCHAR",
            ),
        },
        _ => return None,
    };
    Some(m)
}

/// VARCHAR bytes for `n` characters: 4 each, at most 65535.
fn char_bytes(n: i32) -> u32 {
    let n = u64::try_from(n.max(1)).unwrap_or(1);
    (n * 4).min(u64::from(VARCHAR_MAX_BYTES)) as u32
}

/// The length of `bit(n)`/`bit varying(n)`: from the catalog when known, else from the
/// declared type (`display`); at most 65535.
fn bit_length(t: &PgType) -> Option<u32> {
    let n = t.char_length.or_else(|| {
        let args = t
            .display
            .strip_prefix("bit varying(")
            .or_else(|| t.display.strip_prefix("bit("))?;
        args.strip_suffix(')')?.trim().parse().ok()
    })?;
    let n = u32::try_from(n).ok().filter(|n| *n > 0)?;
    Some(n.min(VARCHAR_MAX_BYTES))
}

fn numeric(t: &PgType, column: &str) -> Mapping {
    let Some(p) = t.numeric_precision else {
        let ty = format!("DECIMAL({DECIMAL_MAX_PRECISION},{FALLBACK_SCALE})");
        return Mapping {
            warnings: vec![format!(
                "numeric without precision is unbounded in PostgreSQL and became {ty}: values with more than {} digits before the decimal point fail to load, and digits after the {FALLBACK_SCALE}th decimal place are rounded; set column_types.{column} to the DECIMAL(p,s) that fits the data",
                DECIMAL_MAX_PRECISION - FALLBACK_SCALE
            )],
            ..because(
                mapping(ty, Load::Plain),
                "Redshift's DECIMAL needs a precision (bare DECIMAL means DECIMAL(18,0))",
            )
        };
    };
    let s = t.numeric_scale.unwrap_or(0);
    // PostgreSQL 15 allows a negative scale (rounds to tens, hundreds...) and a scale
    // above the precision (only small fractions); DECIMAL needs 0 <= s <= p.
    let (need_p, need_s) = if s < 0 {
        (p - s, 0)
    } else if s > p {
        (s, s)
    } else {
        (p, s)
    };
    if need_p <= DECIMAL_MAX_PRECISION {
        let m = mapping(format!("DECIMAL({need_p},{need_s})"), Load::Plain);
        return if (need_p, need_s) == (p, s) {
            m
        } else {
            because(
                m,
                format!("DECIMAL needs 0 <= scale <= precision; numeric({p},{s}) fits in DECIMAL({need_p},{need_s})"),
            )
        };
    }
    let scale = need_s.min(FALLBACK_SCALE);
    let ty = format!("DECIMAL({DECIMAL_MAX_PRECISION},{scale})");
    let mut risks = Vec::new();
    if need_p - need_s > DECIMAL_MAX_PRECISION - scale {
        risks.push(format!(
            "values with more than {} digits before the decimal point fail to load",
            DECIMAL_MAX_PRECISION - scale
        ));
    }
    if need_s > scale {
        risks.push(format!(
            "digits after the {scale}th decimal place are rounded"
        ));
    }
    Mapping {
        warnings: vec![format!(
            "numeric({p},{s}) is wider than Redshift's DECIMAL (at most 38 digits) and became {ty}: {}; set column_types.{column} to the DECIMAL(p,s) that fits the data",
            risks.join(", and ")
        )],
        ..because(mapping(ty, Load::Plain), "DECIMAL has at most 38 digits")
    }
}

/// Parses a `column_types` entry into the normalised Redshift type and its Load.
fn parse_override(written: &str) -> Result<(String, Load), String> {
    let s = written.trim();
    let (base, args) = match s.split_once('(') {
        Some((base, rest)) => {
            let inner = rest.strip_suffix(')').filter(|i| !i.contains([')', '(']));
            let inner = inner.ok_or("expected one pair of parentheses at the end")?;
            let args: Vec<String> = inner.split(',').map(|a| a.trim().to_string()).collect();
            (base, Some(args))
        }
        None => (s, None),
    };
    let base = base
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    let no_args = |ty: &str, load: Load| match &args {
        None => Ok((ty.to_string(), load)),
        Some(_) => Err(format!("{ty} takes no length or precision")),
    };
    let number = |a: &str, what: &str| -> Result<u32, String> {
        a.parse::<u32>()
            .map_err(|_| format!("expected a number for the {what}, got {a:?}"))
    };
    // One optional length between 1 and `max`; `MAX` where Redshift accepts it.
    let length = |ty: &str, default: u32, max: u32, allow_max: bool| -> Result<u32, String> {
        match args.as_deref() {
            None => Ok(default),
            Some([a]) if allow_max && a.eq_ignore_ascii_case("MAX") => Ok(max),
            Some([a]) => match number(a, "length")? {
                n @ 1.. if n <= max => Ok(n),
                n => Err(format!("{ty} length must be between 1 and {max}, got {n}")),
            },
            Some(_) => Err(format!("{ty} takes one length")),
        }
    };
    match base.as_str() {
        "SMALLINT" | "INT2" => no_args("SMALLINT", Load::Plain),
        "INTEGER" | "INT" | "INT4" => no_args("INTEGER", Load::Plain),
        "BIGINT" | "INT8" => no_args("BIGINT", Load::Plain),
        "REAL" | "FLOAT4" => no_args("REAL", Load::Plain),
        "DOUBLE PRECISION" | "FLOAT8" | "FLOAT" => no_args("DOUBLE PRECISION", Load::Plain),
        "BOOLEAN" | "BOOL" => no_args("BOOLEAN", Load::Plain),
        "DATE" => no_args("DATE", Load::Plain),
        "TIME" | "TIME WITHOUT TIME ZONE" => no_args("TIME", Load::Plain),
        "TIMETZ" | "TIME WITH TIME ZONE" => no_args("TIMETZ", Load::Plain),
        "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" => no_args("TIMESTAMP", Load::Plain),
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => no_args("TIMESTAMPTZ", Load::Plain),
        "SUPER" => no_args(
            "SUPER",
            Load::Json {
                max_bytes: SUPER_TEXT_MAX_BYTES,
            },
        ),
        "DECIMAL" | "NUMERIC" => {
            let (p, s) = match args.as_deref() {
                None => {
                    return Err(
                        "write DECIMAL(p,s): a bare DECIMAL is DECIMAL(18,0) in Redshift and drops the fraction"
                            .to_string(),
                    )
                }
                Some([p]) => (number(p, "precision")?, 0),
                Some([p, s]) => (number(p, "precision")?, number(s, "scale")?),
                Some(_) => return Err("DECIMAL takes a precision and a scale".to_string()),
            };
            if !(1..=DECIMAL_MAX_PRECISION as u32).contains(&p) {
                return Err(format!(
                    "DECIMAL precision must be between 1 and 38, got {p}"
                ));
            }
            if s > p {
                return Err(format!(
                    "DECIMAL scale must be at most the precision ({p}), got {s}"
                ));
            }
            Ok((format!("DECIMAL({p},{s})"), Load::Plain))
        }
        "CHAR" | "CHARACTER" | "NCHAR" | "BPCHAR" => {
            let n = length("CHAR", 1, CHAR_MAX_BYTES, false)?;
            Ok((format!("CHAR({n})"), Load::Text { max_bytes: n }))
        }
        "VARCHAR" | "CHARACTER VARYING" | "NVARCHAR" => {
            let n = length("VARCHAR", VARCHAR_DEFAULT_BYTES, VARCHAR_MAX_BYTES, true)?;
            Ok((format!("VARCHAR({n})"), Load::Text { max_bytes: n }))
        }
        "TEXT" => Err(
            "Redshift's TEXT is VARCHAR(256); write VARCHAR(256), or VARCHAR(MAX) for the widest"
                .to_string(),
        ),
        "VARBYTE" | "VARBINARY" | "BINARY VARYING" => {
            let n = length("VARBYTE", VARBYTE_DEFAULT_BYTES, VARBYTE_MAX_BYTES, false)?;
            Ok((format!("VARBYTE({n})"), Load::Hex { max_bytes: n }))
        }
        "GEOMETRY" | "GEOGRAPHY" | "HLLSKETCH" => Err(format!(
            "the loader cannot fill {base} columns; cast the column to text with column_casts and use VARCHAR(n)"
        )),
        _ => Err(
            "not a Redshift type the loader knows; use one of SMALLINT, INTEGER, BIGINT, DECIMAL(p,s), REAL, DOUBLE PRECISION, BOOLEAN, CHAR(n), VARCHAR(n), VARCHAR(MAX), DATE, TIME, TIMETZ, TIMESTAMP, TIMESTAMPTZ, SUPER, VARBYTE(n)"
                .to_string(),
        ),
    }
}

/// The source `SELECT` expression that renders this column as CSV text for Redshift.
/// `cast` is the column's `column_casts` entry (already checked by
/// [`crate::config::is_cast_type`]); `column.pg_type` is then the cast's type.
///
/// The extract session is assumed pinned as `source/` does: `TimeZone` UTC (so
/// `timestamptz` prints in UTC, which TIMESTAMPTZ stores), `DateStyle` ISO,
/// `IntervalStyle` postgres, `extra_float_digits` 3 (floats print exactly). Types
/// printed by their output function need no cast; `inet`/`cidr` in particular must not
/// be cast to text, which would add `/32` to every host address.
pub fn select_expr(column: &Column, cast: Option<&str>) -> String {
    let col = quote::ident(&column.name);
    let value = match cast {
        Some(c) => {
            debug_assert!(crate::config::is_cast_type(c), "unchecked cast {c:?}");
            format!("({col})::{}", c.trim())
        }
        None => col,
    };
    let t = &column.pg_type;
    if is_array(t) {
        return format!("to_json({value})::text");
    }
    match t.name.as_str() {
        "bytea" => format!("encode({value}, 'hex')"),
        "money" => format!("{value}::numeric"),
        "json" | "jsonb" | "interval" | "uuid" | "macaddr" | "macaddr8" | "bit" | "varbit" => {
            format!("{value}::text")
        }
        _ if t.category == 'E' => format!("{value}::text"),
        _ => value,
    }
}

/// Values of a column's type that Redshift cannot hold, and what the extract puts in
/// their place: stored with setup's decisions, shown by `setup`, counted by each run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replaced {
    pub with: crate::config::Replace,
    /// For people: `infinity → 294276-12-31 23:59:59.999999+00, NaN → NULL`.
    pub note: String,
    /// SQL, true for a row whose value is replaced: the extract's count column.
    pub when: String,
}

/// Redshift's DATE and TIMESTAMP range: 4713 BC to 294276 AD.
const MAX_DATE: &str = "294276-12-31";
const MIN_DATE: &str = "4713-01-01 BC";

/// One kind of refused value: its condition (`{v}` is the value), its extreme (a SQL
/// literal) where the type has one, and its name for people.
struct Refused {
    when: &'static str,
    extreme: Option<String>,
    label: &'static str,
}

fn refused_values(type_name: &str) -> Vec<Refused> {
    let r = |when: &'static str, extreme: Option<String>, label: &'static str| Refused {
        when,
        extreme,
        label,
    };
    match type_name {
        "date" => vec![
            r(
                "{v} > '294276-12-31'::date",
                Some(format!("'{MAX_DATE}'::date")),
                "infinity and dates after 294276-12-31",
            ),
            r(
                "{v} = '-infinity'::date",
                Some(format!("'{MIN_DATE}'::date")),
                "-infinity",
            ),
        ],
        "timestamp" => vec![
            r(
                "{v} = 'infinity'::timestamp",
                Some(format!("'{MAX_DATE} 23:59:59.999999'::timestamp")),
                "infinity",
            ),
            r(
                "{v} = '-infinity'::timestamp",
                Some(format!("'{MIN_DATE}'::timestamp")),
                "-infinity",
            ),
        ],
        "timestamptz" => vec![
            r(
                "{v} = 'infinity'::timestamptz",
                Some(format!("'{MAX_DATE} 23:59:59.999999+00'::timestamptz")),
                "infinity",
            ),
            r(
                "{v} = '-infinity'::timestamptz",
                Some("'4713-01-01 00:00:00+00 BC'::timestamptz".to_string()),
                "-infinity",
            ),
        ],
        // PostgreSQL 14 added numeric infinities; the text form works on every version.
        "numeric" => vec![r(
            "{v}::text IN ('NaN', 'Infinity', '-Infinity')",
            None,
            "NaN, Infinity and -Infinity",
        )],
        "float4" => vec![
            r(
                "{v} = 'Infinity'::real",
                Some("'3.4028235e38'::real".into()),
                "Infinity",
            ),
            r(
                "{v} = '-Infinity'::real",
                Some("'-3.4028235e38'::real".into()),
                "-Infinity",
            ),
            r("{v} = 'NaN'::real", None, "NaN"),
        ],
        "float8" => vec![
            r(
                "{v} = 'Infinity'::double precision",
                Some("'1.7976931348623157e308'::double precision".into()),
                "Infinity",
            ),
            r(
                "{v} = '-Infinity'::double precision",
                Some("'-1.7976931348623157e308'::double precision".into()),
                "-Infinity",
            ),
            r("{v} = 'NaN'::double precision", None, "NaN"),
        ],
        _ => Vec::new(),
    }
}

/// PURE: the SELECT expression of a column whose type has values Redshift cannot hold
/// (infinite dates and timestamps, years after 294276, NaN and infinite numbers), with
/// those values replaced by NULL or, with [`crate::config::Replace::Extreme`], the
/// type's extreme where it has one; `None` for other types (and arrays, which travel
/// as JSON text), and for a column with a `column_casts` entry (`cast`): the cast
/// decides the type the value travels as, so it is the user's to make loadable.
pub fn replacing_select(
    column: &Column,
    cast: Option<&str>,
    with: crate::config::Replace,
) -> Option<(String, Replaced)> {
    if is_array(&column.pg_type) || cast.is_some() {
        return None;
    }
    let refused = refused_values(&column.pg_type.name);
    if refused.is_empty() {
        return None;
    }
    let value = select_expr(column, cast);
    let mut cases = Vec::new();
    let mut whens = Vec::new();
    let mut notes = Vec::new();
    for r in &refused {
        let when = r.when.replace("{v}", &value);
        let (then, shown) = match (&r.extreme, with) {
            (Some(e), crate::config::Replace::Extreme) => (
                e.clone(),
                e.split("'").nth(1).unwrap_or_default().to_string(),
            ),
            _ => ("NULL".to_string(), "NULL".to_string()),
        };
        cases.push(format!("WHEN {when} THEN {then}"));
        notes.push(format!("{} → {shown}", r.label));
        whens.push(format!("({when})"));
    }
    Some((
        format!("CASE {} ELSE {value} END", cases.join(" ")),
        Replaced {
            with,
            note: format!(
                "Redshift cannot hold {}: replaced ({}), and counted",
                refused
                    .iter()
                    .map(|r| r.label)
                    .collect::<Vec<_>>()
                    .join(", "),
                notes.join(", ")
            ),
            when: whens.join(" OR "),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(name: &str, category: char, display: &str) -> PgType {
        PgType {
            name: name.into(),
            category,
            display: display.into(),
            char_length: None,
            numeric_precision: None,
            numeric_scale: None,
            domain: None,
        }
    }

    fn chars(name: &str, display: &str, n: Option<i32>) -> PgType {
        PgType {
            char_length: n,
            ..pg(name, 'S', display)
        }
    }

    fn num(p: Option<i32>, s: Option<i32>) -> PgType {
        PgType {
            numeric_precision: p,
            numeric_scale: s,
            ..pg("numeric", 'N', "numeric")
        }
    }

    fn col(name: &str, pg_type: PgType) -> Column {
        Column {
            name: name.into(),
            position: 1,
            not_null: false,
            pg_type,
            generated_key: false,
        }
    }

    fn orders() -> TableRef {
        TableRef::new("public", "orders")
    }

    fn map(t: PgType) -> Result<Mapping, TypeError> {
        map_column(&orders(), &col("c", t), None)
    }

    const fn text_load(max_bytes: u32) -> Load {
        Load::Text { max_bytes }
    }

    #[test]
    fn every_supported_type_has_its_redshift_type_and_load() {
        let json = Load::Json { max_bytes: 65535 };
        let cases: Vec<(PgType, &str, Load)> = vec![
            (pg("int2", 'N', "smallint"), "SMALLINT", Load::Plain),
            (pg("int4", 'N', "integer"), "INTEGER", Load::Plain),
            (pg("int8", 'N', "bigint"), "BIGINT", Load::Plain),
            (pg("oid", 'N', "oid"), "BIGINT", Load::Plain),
            (num(Some(12), Some(2)), "DECIMAL(12,2)", Load::Plain),
            (num(Some(38), Some(0)), "DECIMAL(38,0)", Load::Plain),
            (num(Some(5), None), "DECIMAL(5,0)", Load::Plain),
            (num(Some(3), Some(-2)), "DECIMAL(5,0)", Load::Plain),
            (num(Some(2), Some(4)), "DECIMAL(4,4)", Load::Plain),
            (num(None, None), "DECIMAL(38,10)", Load::Plain),
            (num(Some(50), Some(2)), "DECIMAL(38,2)", Load::Plain),
            (num(Some(60), Some(20)), "DECIMAL(38,10)", Load::Plain),
            (num(Some(40), Some(-5)), "DECIMAL(38,0)", Load::Plain),
            (pg("float4", 'N', "real"), "REAL", Load::Plain),
            (
                pg("float8", 'N', "double precision"),
                "DOUBLE PRECISION",
                Load::Plain,
            ),
            (pg("money", 'N', "money"), "DECIMAL(19,2)", Load::Plain),
            (pg("bool", 'B', "boolean"), "BOOLEAN", Load::Plain),
            (
                chars("bpchar", "character(10)", Some(10)),
                "VARCHAR(40)",
                text_load(40),
            ),
            (
                chars("bpchar", "character(1)", Some(1)),
                "VARCHAR(4)",
                text_load(4),
            ),
            (
                chars("bpchar", "bpchar", None),
                "VARCHAR(65535)",
                text_load(65535),
            ),
            (
                chars("varchar", "character varying(20)", Some(20)),
                "VARCHAR(80)",
                text_load(80),
            ),
            (
                chars("varchar", "character varying(16383)", Some(16383)),
                "VARCHAR(65532)",
                text_load(65532),
            ),
            (
                chars("varchar", "character varying(16384)", Some(16384)),
                "VARCHAR(65535)",
                text_load(65535),
            ),
            (
                chars("varchar", "character varying(10485760)", Some(10_485_760)),
                "VARCHAR(65535)",
                text_load(65535),
            ),
            (
                chars("varchar", "character varying", None),
                "VARCHAR(65535)",
                text_load(65535),
            ),
            (pg("text", 'S', "text"), "VARCHAR(65535)", text_load(65535)),
            (
                pg("citext", 'S', "citext"),
                "VARCHAR(65535)",
                text_load(65535),
            ),
            (pg("name", 'S', "name"), "VARCHAR(63)", text_load(63)),
            (pg("date", 'D', "date"), "DATE", Load::Plain),
            (
                pg("time", 'D', "time without time zone"),
                "TIME",
                Load::Plain,
            ),
            (
                pg("timetz", 'D', "time with time zone"),
                "TIMETZ",
                Load::Plain,
            ),
            (
                pg("timestamp", 'D', "timestamp without time zone"),
                "TIMESTAMP",
                Load::Plain,
            ),
            (
                pg("timestamptz", 'D', "timestamp with time zone"),
                "TIMESTAMPTZ",
                Load::Plain,
            ),
            (
                pg("interval", 'T', "interval"),
                "VARCHAR(80)",
                text_load(80),
            ),
            (pg("uuid", 'U', "uuid"), "VARCHAR(36)", text_load(36)),
            (pg("json", 'U', "json"), "SUPER", json),
            (pg("jsonb", 'U', "jsonb"), "SUPER", json),
            (pg("_int4", 'A', "integer[]"), "SUPER", json),
            (pg("_text", 'A', "text[]"), "SUPER", json),
            (pg("_xml", 'X', "xml[]"), "SUPER", json),
            (
                pg("bytea", 'U', "bytea"),
                "VARBYTE(1024000)",
                Load::Hex {
                    max_bytes: 1_024_000,
                },
            ),
            (pg("inet", 'I', "inet"), "VARCHAR(43)", text_load(43)),
            (pg("cidr", 'I', "cidr"), "VARCHAR(43)", text_load(43)),
            (pg("macaddr", 'U', "macaddr"), "VARCHAR(17)", text_load(17)),
            (
                pg("macaddr8", 'U', "macaddr8"),
                "VARCHAR(23)",
                text_load(23),
            ),
            (pg("mood", 'E', "public.mood"), "VARCHAR(63)", text_load(63)),
            (pg("bit", 'V', "bit(8)"), "VARCHAR(8)", text_load(8)),
            (
                pg("varbit", 'V', "bit varying(100)"),
                "VARCHAR(100)",
                text_load(100),
            ),
            (
                pg("varbit", 'V', "bit varying"),
                "VARCHAR(65535)",
                text_load(65535),
            ),
            (
                pg("varbit", 'V', "bit varying(1000000)"),
                "VARCHAR(65535)",
                text_load(65535),
            ),
            (chars("bit", "flags", Some(3)), "VARCHAR(3)", text_load(3)),
        ];
        for (t, redshift_type, load) in cases {
            let what = t.display.clone();
            let m = map(t).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                (m.redshift_type.as_str(), m.load),
                (redshift_type, load),
                "{what}"
            );
        }
    }

    #[test]
    fn obvious_mappings_have_no_reason_and_no_warning() {
        for t in [
            pg("int4", 'N', "integer"),
            num(Some(12), Some(2)),
            pg("timestamptz", 'D', "timestamp with time zone"),
            pg("bool", 'B', "boolean"),
        ] {
            let m = map(t).unwrap();
            assert_eq!(
                (m.reason, m.warnings.len()),
                (None, 0),
                "{}",
                m.redshift_type
            );
        }
    }

    #[test]
    fn surprising_mappings_say_why() {
        let reason = |t| map(t).unwrap().reason.unwrap();
        assert_eq!(
            reason(chars("bpchar", "character(10)", Some(10))),
            "Redshift CHAR holds single-byte characters only, so VARCHAR; VARCHAR counts bytes: 4 per character"
        );
        assert_eq!(
            reason(chars("varchar", "character varying(20)", Some(20))),
            "VARCHAR counts bytes: 4 per character"
        );
        assert_eq!(
            reason(pg("text", 'S', "text")),
            "unbounded: the widest VARCHAR (Redshift's TEXT is only VARCHAR(256)); longer values are cut and counted"
        );
        assert_eq!(
            reason(num(Some(3), Some(-2))),
            "DECIMAL needs 0 <= scale <= precision; numeric(3,-2) fits in DECIMAL(5,0)"
        );
        assert!(reason(pg("money", 'N', "money")).contains("lc_monetary"));
    }

    #[test]
    fn unconstrained_numeric_warns_and_names_the_override() {
        let m = map_column(&orders(), &col("amount", num(None, None)), None).unwrap();
        assert_eq!(
            m.warnings,
            vec!["numeric without precision is unbounded in PostgreSQL and became DECIMAL(38,10): values with more than 28 digits before the decimal point fail to load, and digits after the 10th decimal place are rounded; set column_types.amount to the DECIMAL(p,s) that fits the data".to_string()]
        );
    }

    #[test]
    fn too_wide_numeric_warns_about_what_it_loses() {
        let warn = |p, s| map(num(Some(p), Some(s))).unwrap().warnings;
        assert_eq!(
            warn(50, 2),
            vec!["numeric(50,2) is wider than Redshift's DECIMAL (at most 38 digits) and became DECIMAL(38,2): values with more than 36 digits before the decimal point fail to load; set column_types.c to the DECIMAL(p,s) that fits the data".to_string()]
        );
        assert_eq!(
            warn(60, 20),
            vec!["numeric(60,20) is wider than Redshift's DECIMAL (at most 38 digits) and became DECIMAL(38,10): values with more than 28 digits before the decimal point fail to load, and digits after the 10th decimal place are rounded; set column_types.c to the DECIMAL(p,s) that fits the data".to_string()]
        );
        assert_eq!(
            map(num(Some(38), Some(38))).unwrap().warnings,
            Vec::<String>::new()
        );
    }

    #[test]
    fn domains_map_as_their_base_type_and_keep_the_name_in_the_reason() {
        let t = PgType {
            domain: Some("price".into()),
            ..PgType {
                display: "price".into(),
                ..num(Some(12), Some(2))
            }
        };
        let m = map(t).unwrap();
        assert_eq!(m.redshift_type, "DECIMAL(12,2)");
        assert_eq!(m.reason.as_deref(), Some("domain price over numeric"));

        let t = PgType {
            domain: Some("email".into()),
            ..chars("varchar", "email", Some(100))
        };
        let m = map(t).unwrap();
        assert_eq!(m.redshift_type, "VARCHAR(400)");
        assert_eq!(
            m.reason.as_deref(),
            Some("domain email over varchar; VARCHAR counts bytes: 4 per character")
        );
    }

    #[test]
    fn unsupported_types_are_refused_with_a_remedy() {
        let refused = [
            pg("xml", 'U', "xml"),
            pg("tsvector", 'U', "tsvector"),
            pg("point", 'G', "point"),
            pg("geometry", 'U', "geometry(Point,4326)"),
            pg("int4range", 'R', "int4range"),
            pg("address", 'C', "public.address"),
            pg("pg_lsn", 'U', "pg_lsn"),
            pg("char", 'Z', "\"char\""),
        ];
        for t in refused {
            let display = t.display.clone();
            let err = map(t).unwrap_err();
            assert_eq!(
                err.problem,
                TypeProblem::Unsupported {
                    pg_type: display.clone()
                }
            );
        }
        let err = map_column(&orders(), &col("meta", pg("xml", 'U', "xml")), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"table public.orders: column "meta" has type xml, which Redshift cannot store; add "meta" to exclude_columns, or cast it with column_casts (e.g. meta: text)"#
        );
        let t = PgType {
            domain: Some("doc".into()),
            ..pg("xml", 'U', "doc")
        };
        let err = map_column(
            &TableRef::new("Sales", "Order \"x\""),
            &col("Body", t),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"table Sales."Order ""x""": column "Body" has type doc (a domain over xml), which Redshift cannot store; add "Body" to exclude_columns, or cast it with column_casts (e.g. Body: text)"#
        );
    }

    fn with_override(t: PgType, written: &str) -> Result<Mapping, TypeError> {
        map_column(&orders(), &col("c", t), Some(written))
    }

    #[test]
    fn overrides_are_normalised_and_win() {
        let int = || pg("int4", 'N', "integer");
        let txt = || pg("text", 'S', "text");
        let cases: Vec<(PgType, &str, &str, Load)> = vec![
            (int(), "smallint", "SMALLINT", Load::Plain),
            (int(), "int2", "SMALLINT", Load::Plain),
            (int(), " int ", "INTEGER", Load::Plain),
            (int(), "int8", "BIGINT", Load::Plain),
            (int(), "Bigint", "BIGINT", Load::Plain),
            (
                num(None, None),
                "decimal(20, 4)",
                "DECIMAL(20,4)",
                Load::Plain,
            ),
            (num(None, None), "NUMERIC(38)", "DECIMAL(38,0)", Load::Plain),
            (
                num(None, None),
                "numeric(38,38)",
                "DECIMAL(38,38)",
                Load::Plain,
            ),
            (int(), "float4", "REAL", Load::Plain),
            (int(), "float", "DOUBLE PRECISION", Load::Plain),
            (int(), "double   precision", "DOUBLE PRECISION", Load::Plain),
            (int(), "bool", "BOOLEAN", Load::Plain),
            (txt(), "char(2)", "CHAR(2)", text_load(2)),
            (txt(), "character", "CHAR(1)", text_load(1)),
            (txt(), "varchar", "VARCHAR(256)", text_load(256)),
            (txt(), "varchar(max)", "VARCHAR(65535)", text_load(65535)),
            (
                txt(),
                "character varying(100)",
                "VARCHAR(100)",
                text_load(100),
            ),
            (txt(), "nvarchar(65535)", "VARCHAR(65535)", text_load(65535)),
            (txt(), "date", "DATE", Load::Plain),
            (txt(), "time without time zone", "TIME", Load::Plain),
            (txt(), "time with time zone", "TIMETZ", Load::Plain),
            (txt(), "timestamp", "TIMESTAMP", Load::Plain),
            (txt(), "timestamptz", "TIMESTAMPTZ", Load::Plain),
            (
                txt(),
                "timestamp with time zone",
                "TIMESTAMPTZ",
                Load::Plain,
            ),
            (
                pg("jsonb", 'U', "jsonb"),
                "varchar(max)",
                "VARCHAR(65535)",
                text_load(65535),
            ),
            (
                pg("jsonb", 'U', "jsonb"),
                "super",
                "SUPER",
                Load::Json { max_bytes: 65535 },
            ),
            (
                pg("bytea", 'U', "bytea"),
                "varbyte(16)",
                "VARBYTE(16)",
                Load::Hex { max_bytes: 16 },
            ),
            (
                pg("bytea", 'U', "bytea"),
                "varbinary",
                "VARBYTE(64000)",
                Load::Hex { max_bytes: 64000 },
            ),
            (
                pg("bytea", 'U', "bytea"),
                "VARCHAR(100)",
                "VARCHAR(100)",
                text_load(100),
            ),
            (
                pg("xml", 'U', "xml"),
                "varchar(max)",
                "VARCHAR(65535)",
                text_load(65535),
            ),
        ];
        for (t, written, redshift_type, load) in cases {
            let m = with_override(t, written).unwrap_or_else(|e| panic!("{written}: {e}"));
            assert_eq!(
                (m.redshift_type.as_str(), m.load),
                (redshift_type, load),
                "{written}"
            );
        }
    }

    #[test]
    fn overrides_say_what_they_replaced_and_warn_where_it_matters() {
        let m = with_override(num(None, None), "DECIMAL(20,4)").unwrap();
        assert_eq!(
            m.reason.as_deref(),
            Some("set by column_types (the mapping would be DECIMAL(38,10))")
        );
        assert!(
            m.warnings.is_empty(),
            "the override replaces the numeric warning"
        );
        let m = with_override(pg("int4", 'N', "integer"), "integer").unwrap();
        assert_eq!(m.reason.as_deref(), Some("set by column_types"));
        let m = with_override(pg("text", 'S', "text"), "CHAR(3)").unwrap();
        assert_eq!(m.warnings, vec!["Redshift CHAR holds single-byte characters only: a value with any other character fails the load; VARCHAR has no such limit".to_string()]);
        let m = with_override(pg("text", 'S', "text"), "SUPER").unwrap();
        assert_eq!(
            m.warnings,
            vec!["SUPER is filled through JSON_PARSE: every value must be JSON text".to_string()]
        );
    }

    #[test]
    fn bad_overrides_are_refused_with_the_reason() {
        let int = || pg("int4", 'N', "integer");
        let cases: Vec<(PgType, &str, &str)> = vec![
            (int(), "DECIMAL(40,2)", "DECIMAL precision must be between 1 and 38, got 40"),
            (int(), "DECIMAL(0)", "DECIMAL precision must be between 1 and 38, got 0"),
            (int(), "decimal(5,6)", "DECIMAL scale must be at most the precision (5), got 6"),
            (int(), "DECIMAL", "write DECIMAL(p,s): a bare DECIMAL is DECIMAL(18,0) in Redshift and drops the fraction"),
            (int(), "decimal(a,b)", "expected a number for the precision, got \"a\""),
            (int(), "decimal(1,2,3)", "DECIMAL takes a precision and a scale"),
            (int(), "VARCHAR(65536)", "VARCHAR length must be between 1 and 65535, got 65536"),
            (int(), "VARCHAR(0)", "VARCHAR length must be between 1 and 65535, got 0"),
            (int(), "varchar(-1)", "expected a number for the length, got \"-1\""),
            (int(), "CHAR(4097)", "CHAR length must be between 1 and 4096, got 4097"),
            (int(), "CHAR(MAX)", "expected a number for the length, got \"MAX\""),
            (int(), "TEXT", "Redshift's TEXT is VARCHAR(256); write VARCHAR(256), or VARCHAR(MAX) for the widest"),
            (int(), "INTEGER(4)", "INTEGER takes no length or precision"),
            (int(), "varchar(10) x", "expected one pair of parentheses at the end"),
            (int(), "varchar((10))", "expected one pair of parentheses at the end"),
            (pg("bytea", 'U', "bytea"), "VARBYTE(1024001)", "VARBYTE length must be between 1 and 1024000, got 1024001"),
            (int(), "GEOMETRY", "the loader cannot fill GEOMETRY columns; cast the column to text with column_casts and use VARCHAR(n)"),
            (int(), "VARBYTE(10)", "VARBYTE is filled from binary data, and the column has type integer; cast it to bytea with column_casts"),
            (pg("xml", 'U', "xml"), "INTEGER", "the column has type xml, which loads only as its text form; use VARCHAR(n) or CHAR(n)"),
            (pg("xml", 'U', "xml"), "SUPER", "the column has type xml, which loads only as its text form; use VARCHAR(n) or CHAR(n)"),
            (int(), "", "not a Redshift type the loader knows; use one of SMALLINT, INTEGER, BIGINT, DECIMAL(p,s), REAL, DOUBLE PRECISION, BOOLEAN, CHAR(n), VARCHAR(n), VARCHAR(MAX), DATE, TIME, TIMETZ, TIMESTAMP, TIMESTAMPTZ, SUPER, VARBYTE(n)"),
            (int(), "int; drop table x", "not a Redshift type the loader knows; use one of SMALLINT, INTEGER, BIGINT, DECIMAL(p,s), REAL, DOUBLE PRECISION, BOOLEAN, CHAR(n), VARCHAR(n), VARCHAR(MAX), DATE, TIME, TIMETZ, TIMESTAMP, TIMESTAMPTZ, SUPER, VARBYTE(n)"),
        ];
        for (t, written, why) in cases {
            let err = with_override(t, written).unwrap_err();
            assert_eq!(
                err.problem,
                TypeProblem::BadOverride {
                    written: written.into(),
                    why: why.into()
                },
                "{written}"
            );
        }
        let err = map_column(
            &orders(),
            &col("amount", num(None, None)),
            Some("DECIMAL(40,2)"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"table public.orders: column_types.amount: "DECIMAL(40,2)": DECIMAL precision must be between 1 and 38, got 40"#
        );
    }

    #[test]
    fn loads_serialise_with_a_kind_tag() {
        let cases = [
            (Load::Plain, r#"{"kind":"plain"}"#),
            (
                Load::Text { max_bytes: 80 },
                r#"{"kind":"text","max_bytes":80}"#,
            ),
            (
                Load::Json { max_bytes: 65535 },
                r#"{"kind":"json","max_bytes":65535}"#,
            ),
            (
                Load::Hex { max_bytes: 16 },
                r#"{"kind":"hex","max_bytes":16}"#,
            ),
        ];
        for (load, json) in cases {
            assert_eq!(serde_json::to_string(&load).unwrap(), json);
            assert_eq!(serde_json::from_str::<Load>(json).unwrap(), load);
        }
    }

    #[test]
    fn select_expressions_render_redshift_friendly_text() {
        let cases: Vec<(PgType, &str)> = vec![
            (pg("int4", 'N', "integer"), r#""c""#),
            (num(Some(12), Some(2)), r#""c""#),
            (pg("text", 'S', "text"), r#""c""#),
            (pg("timestamptz", 'D', "timestamp with time zone"), r#""c""#),
            (pg("inet", 'I', "inet"), r#""c""#),
            (pg("cidr", 'I', "cidr"), r#""c""#),
            (pg("json", 'U', "json"), r#""c"::text"#),
            (pg("jsonb", 'U', "jsonb"), r#""c"::text"#),
            (pg("_int4", 'A', "integer[]"), r#"to_json("c")::text"#),
            (pg("_jsonb", 'A', "jsonb[]"), r#"to_json("c")::text"#),
            (pg("bytea", 'U', "bytea"), r#"encode("c", 'hex')"#),
            (pg("money", 'N', "money"), r#""c"::numeric"#),
            (pg("interval", 'T', "interval"), r#""c"::text"#),
            (pg("uuid", 'U', "uuid"), r#""c"::text"#),
            (pg("macaddr", 'U', "macaddr"), r#""c"::text"#),
            (pg("macaddr8", 'U', "macaddr8"), r#""c"::text"#),
            (pg("mood", 'E', "mood"), r#""c"::text"#),
            (pg("bit", 'V', "bit(3)"), r#""c"::text"#),
            (pg("varbit", 'V', "bit varying"), r#""c"::text"#),
        ];
        for (t, expected) in cases {
            let what = t.display.clone();
            assert_eq!(select_expr(&col("c", t), None), expected, "{what}");
        }
    }

    #[test]
    fn select_expressions_quote_names_and_apply_casts_first() {
        let cases: Vec<(&str, PgType, Option<&str>, &str)> = vec![
            (
                "Order \"Id\"",
                pg("int8", 'N', "bigint"),
                None,
                r#""Order ""Id""""#,
            ),
            ("größe", pg("text", 'S', "text"), None, "\"größe\""),
            (
                "meta",
                pg("text", 'S', "text"),
                Some("text"),
                r#"("meta")::text"#,
            ),
            (
                "meta",
                pg("jsonb", 'U', "jsonb"),
                Some(" jsonb "),
                r#"("meta")::jsonb::text"#,
            ),
            (
                "tags",
                pg("_text", 'A', "text[]"),
                Some("text[]"),
                r#"to_json(("tags")::text[])::text"#,
            ),
            (
                "amount",
                num(Some(20), Some(4)),
                Some("numeric(20,4)"),
                r#"("amount")::numeric(20,4)"#,
            ),
            (
                "blob",
                pg("bytea", 'U', "bytea"),
                Some("bytea"),
                r#"encode(("blob")::bytea, 'hex')"#,
            ),
        ];
        for (name, t, cast, expected) in cases {
            assert_eq!(select_expr(&col(name, t), cast), expected, "{name}");
        }
    }

    #[test]
    fn values_redshift_cannot_hold_are_replaced_in_the_select() {
        use crate::config::Replace;
        let tz = pg("timestamptz", 'D', "timestamp with time zone");
        let (select, r) =
            replacing_select(&col("Valid \"until\"", tz.clone()), None, Replace::Null).unwrap();
        assert_eq!(
            select,
            r#"CASE WHEN "Valid ""until""" = 'infinity'::timestamptz THEN NULL WHEN "Valid ""until""" = '-infinity'::timestamptz THEN NULL ELSE "Valid ""until""" END"#
        );
        assert_eq!(
            r.when,
            r#"("Valid ""until""" = 'infinity'::timestamptz) OR ("Valid ""until""" = '-infinity'::timestamptz)"#
        );
        assert_eq!(
            r.note,
            "Redshift cannot hold infinity, -infinity: replaced (infinity → NULL, -infinity → NULL), and counted"
        );
        let (select, r) = replacing_select(&col("v", tz), None, Replace::Extreme).unwrap();
        assert_eq!(
            select,
            r#"CASE WHEN "v" = 'infinity'::timestamptz THEN '294276-12-31 23:59:59.999999+00'::timestamptz WHEN "v" = '-infinity'::timestamptz THEN '4713-01-01 00:00:00+00 BC'::timestamptz ELSE "v" END"#
        );
        assert_eq!(r.with, Replace::Extreme);
        let cases: Vec<(PgType, Option<&str>, Replace, &str)> = vec![
            (
                pg("date", 'D', "date"),
                None,
                Replace::Extreme,
                r#"CASE WHEN "c" > '294276-12-31'::date THEN '294276-12-31'::date WHEN "c" = '-infinity'::date THEN '4713-01-01 BC'::date ELSE "c" END"#,
            ),
            (
                num(Some(12), Some(2)),
                None,
                Replace::Extreme,
                r#"CASE WHEN "c"::text IN ('NaN', 'Infinity', '-Infinity') THEN NULL ELSE "c" END"#,
            ),
            (
                pg("float8", 'N', "double precision"),
                None,
                Replace::Null,
                r#"CASE WHEN "c" = 'Infinity'::double precision THEN NULL WHEN "c" = '-Infinity'::double precision THEN NULL WHEN "c" = 'NaN'::double precision THEN NULL ELSE "c" END"#,
            ),
            (
                pg("float4", 'N', "real"),
                None,
                Replace::Extreme,
                r#"CASE WHEN "c" = 'Infinity'::real THEN '3.4028235e38'::real WHEN "c" = '-Infinity'::real THEN '-3.4028235e38'::real WHEN "c" = 'NaN'::real THEN NULL ELSE "c" END"#,
            ),
        ];
        for (t, cast, with, expected) in cases {
            let what = t.display.clone();
            assert_eq!(
                replacing_select(&col("c", t), cast, with).unwrap().0,
                expected,
                "{what}"
            );
        }
        for t in [
            pg("int4", 'N', "integer"),
            pg("text", 'S', "text"),
            pg("_date", 'A', "date[]"),
        ] {
            assert_eq!(replacing_select(&col("c", t), None, Replace::Null), None);
        }
        // A cast decides the type the value travels as: the user's to make loadable.
        let ts = pg("timestamp", 'D', "timestamp without time zone");
        assert_eq!(
            replacing_select(&col("c", ts), Some("text"), Replace::Null),
            None
        );
    }
}
