//! What the source says about its tables: columns, types, keys and indexes.

use crate::config::TableRef;

/// One column of a source table, as the catalog describes it. Domains are resolved to
/// their base type; the declared type is kept for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `pg_attribute.attnum`: the column's position.
    pub position: i16,
    pub not_null: bool,
    pub pg_type: PgType,
    /// `serial`-style default (`nextval(...)`) or an identity column.
    pub generated_key: bool,
}

/// A column's type, resolved through domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgType {
    /// `pg_type.typname` of the base type: `int4`, `varchar`, `numeric`, `timestamptz`,
    /// `_int4` for an array of int4, the enum's own name for an enum.
    pub name: String,
    /// `pg_type.typcategory` of the base type: `A` array, `B` boolean, `D` date/time,
    /// `E` enum, `I` network address, `N` numeric, `S` string, `T` timespan,
    /// `U` user-defined (json, jsonb, uuid, bytea...), `X` unknown, ...
    pub category: char,
    /// `format_type()` of the declared type, for messages: `character varying(20)`,
    /// `numeric(12,2)`, `integer[]`, `public.mood`, `my_domain`.
    pub display: String,
    /// Declared length of `char(n)`/`varchar(n)` (characters), when bounded.
    pub char_length: Option<i32>,
    /// Declared precision and scale of `numeric(p,s)`, when constrained.
    pub numeric_precision: Option<i32>,
    pub numeric_scale: Option<i32>,
    /// The domain's name when the declared type is a domain.
    pub domain: Option<String>,
}

/// An index of a source table, as far as key choice cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub name: String,
    /// Key columns in order; empty when the index has an expression.
    pub columns: Vec<String>,
    pub unique: bool,
    pub primary: bool,
    /// A partial index (`WHERE ...`) cannot prove uniqueness of the whole table.
    pub partial: bool,
}

/// What the catalog says about one source table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    pub table: TableRef,
    /// `pg_class.relkind`: `r` table, `p` partitioned table, `v` view, `m` materialized
    /// view, `f` foreign table.
    pub kind: char,
    pub columns: Vec<Column>,
    pub indexes: Vec<Index>,
}

impl SourceTable {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The primary key constraint's columns.
    pub fn primary_key(&self) -> Option<&[String]> {
        self.indexes
            .iter()
            .find(|i| i.primary)
            .map(|i| i.columns.as_slice())
    }

    /// Whether some index has `column` as its leading key column (so a range scan on it
    /// is cheap).
    pub fn is_indexed(&self, column: &str) -> bool {
        self.indexes
            .iter()
            .any(|i| i.columns.first().is_some_and(|c| c == column))
    }

    /// Whether a unique, non-partial index covers exactly these columns (in any order).
    pub fn is_unique(&self, columns: &[String]) -> bool {
        self.indexes.iter().any(|i| {
            i.unique
                && !i.partial
                && !i.columns.is_empty()
                && i.columns.len() == columns.len()
                && i.columns.iter().all(|c| columns.contains(c))
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("source table {table} does not exist — check the table's `source` in the job (schema and name, case included)")]
    NoSuchTable { table: TableRef },
    #[error("source table {table}: permission denied for {what} — grant SELECT on the table and USAGE on its schema to the loader's user (see README: source user)")]
    NoPrivilege { table: TableRef, what: String },
    #[error(
        "source table {table}: column_casts.{column}: PostgreSQL does not know the type {cast:?}"
    )]
    UnknownCastType {
        table: TableRef,
        column: String,
        cast: String,
    },
    #[error("source table {table}: reading the catalog failed: {reason}")]
    Catalog { table: TableRef, reason: String },
}

/// Columns in order, with domains resolved to their base type (through any depth).
const COLUMNS_SQL: &str = "\
WITH RECURSIVE base(attnum, typid, typmod, domain, depth) AS (
    SELECT a.attnum, a.atttypid, a.atttypmod, NULL::name, 0
    FROM pg_attribute a
    WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
    SELECT b.attnum, t.typbasetype, t.typtypmod, COALESCE(b.domain, t.typname), b.depth + 1
    FROM base b JOIN pg_type t ON t.oid = b.typid
    WHERE t.typtype = 'd'
)
SELECT a.attname::text,
       a.attnum,
       a.attnotnull,
       t.typname::text,
       t.typcategory::text,
       format_type(a.atttypid, a.atttypmod),
       b.typmod,
       b.domain::text,
       (a.attidentity <> '' OR COALESCE(pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%', false))
FROM pg_attribute a
JOIN base b ON b.attnum = a.attnum
  AND b.depth = (SELECT max(depth) FROM base b2 WHERE b2.attnum = a.attnum)
JOIN pg_type t ON t.oid = b.typid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum";

/// Indexes with their plain key columns (expression keys leave `columns` empty).
const INDEXES_SQL: &str = "\
SELECT ic.relname::text,
       i.indisunique,
       i.indisprimary,
       i.indpred IS NOT NULL,
       i.indexprs IS NOT NULL,
       ARRAY(SELECT a.attname::text
             FROM unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             ORDER BY k.ord)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = $1 AND i.indisvalid
ORDER BY i.indisprimary DESC, ic.relname";

/// Reads one table's columns and indexes. `casts` (column → PostgreSQL type) replace
/// the catalog type of those columns with the cast's, as the extract will see them.
pub async fn introspect(
    client: &tokio_postgres::Client,
    table: &TableRef,
    casts: &std::collections::BTreeMap<String, String>,
) -> Result<SourceTable, SchemaError> {
    let catalog = |e: tokio_postgres::Error| SchemaError::Catalog {
        table: table.clone(),
        reason: crate::diagnose::explain_error(crate::secrets::Role::Source, &e),
    };
    let rel = client
        .query_opt(
            "SELECT c.oid, c.relkind::text, has_schema_privilege(n.oid, 'USAGE'), \
                    has_table_privilege(c.oid, 'SELECT') FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','p','v','m','f')",
            &[&table.schema, &table.name],
        )
        .await
        .map_err(catalog)?
        .ok_or_else(|| SchemaError::NoSuchTable {
            table: table.clone(),
        })?;
    let oid: u32 = rel.get(0);
    let kind: String = rel.get(1);
    // The catalog shows tables the user may not read; say so now rather than at the
    // first run.
    let denied = match (rel.get::<_, bool>(2), rel.get::<_, bool>(3)) {
        (false, _) => Some(format!("schema {}", table.schema)),
        (true, false) => Some(format!("table {table}")),
        (true, true) => None,
    };
    if let Some(what) = denied {
        return Err(SchemaError::NoPrivilege {
            table: table.clone(),
            what,
        });
    }

    let mut columns = Vec::new();
    for row in client.query(COLUMNS_SQL, &[&oid]).await.map_err(catalog)? {
        let name: String = row.get(0);
        let typname: String = row.get(3);
        let category: String = row.get(4);
        let typmod: i32 = row.get(6);
        let (char_length, numeric_precision, numeric_scale) = modifiers(&typname, typmod);
        columns.push(Column {
            name,
            position: row.get(1),
            not_null: row.get(2),
            pg_type: PgType {
                name: typname,
                category: category.chars().next().unwrap_or('X'),
                display: row.get(5),
                char_length,
                numeric_precision,
                numeric_scale,
                domain: row.get(7),
            },
            generated_key: row.get(8),
        });
    }
    for (column, cast) in casts {
        let Some(col) = columns.iter_mut().find(|c| &c.name == column) else {
            continue; // config validation against the catalog reports unknown columns
        };
        col.pg_type = cast_type(client, table, column, cast).await?;
    }

    let indexes = client
        .query(INDEXES_SQL, &[&oid])
        .await
        .map_err(catalog)?
        .into_iter()
        .map(|row| {
            let expression: bool = row.get(4);
            Index {
                name: row.get(0),
                unique: row.get(1),
                primary: row.get(2),
                partial: row.get(3),
                columns: if expression { Vec::new() } else { row.get(5) },
            }
        })
        .collect();
    Ok(SourceTable {
        table: table.clone(),
        kind: kind.chars().next().unwrap_or('r'),
        columns,
        indexes,
    })
}

/// The type a `column_casts` entry produces, resolved by the source itself.
async fn cast_type(
    client: &tokio_postgres::Client,
    table: &TableRef,
    column: &str,
    cast: &str,
) -> Result<PgType, SchemaError> {
    let parsed = ParsedCast::parse(cast);
    let unknown = || SchemaError::UnknownCastType {
        table: table.clone(),
        column: column.to_string(),
        cast: cast.to_string(),
    };
    let lookup = if parsed.array {
        format!("{}[]", parsed.base)
    } else {
        parsed.base.clone()
    };
    let row = client
        .query_opt(
            "SELECT t.typname::text, t.typcategory::text, format_type(t.oid, NULL) \
             FROM pg_type t WHERE t.oid = to_regtype($1)",
            &[&lookup],
        )
        .await
        .map_err(|e| SchemaError::Catalog {
            table: table.clone(),
            reason: crate::diagnose::explain_error(crate::secrets::Role::Source, &e),
        })?
        .ok_or_else(unknown)?;
    let name: String = row.get(0);
    let (char_length, numeric_precision, numeric_scale) = match name.as_str() {
        "varchar" | "bpchar" => (parsed.args.first().copied(), None, None),
        "numeric" => (
            None,
            parsed.args.first().copied(),
            parsed.args.get(1).copied(),
        ),
        _ => (None, None, None),
    };
    Ok(PgType {
        name,
        category: row.get::<_, String>(1).chars().next().unwrap_or('X'),
        display: cast.trim().to_string(),
        char_length,
        numeric_precision,
        numeric_scale,
        domain: None,
    })
}

/// A `column_casts` type split into base name, modifiers and array marker (its grammar
/// is checked by config validation).
#[derive(Debug, PartialEq, Eq)]
struct ParsedCast {
    base: String,
    args: Vec<i32>,
    array: bool,
}

impl ParsedCast {
    fn parse(cast: &str) -> ParsedCast {
        let s = cast.trim();
        let (s, array) = match s.strip_suffix("[]") {
            Some(rest) => (rest.trim_end(), true),
            None => (s, false),
        };
        let (base, args) = match s.split_once('(') {
            Some((base, args)) => (
                base.trim_end(),
                args.trim_end_matches(')')
                    .split(',')
                    .filter_map(|a| a.trim().parse().ok())
                    .collect(),
            ),
            None => (s, Vec::new()),
        };
        ParsedCast {
            base: base.to_string(),
            args,
            array,
        }
    }
}

/// Declared length, precision and scale from a type modifier (`atttypmod`), following
/// PostgreSQL's encoding: `n + 4` for character types, `((p << 16) | s) + 4` for numeric
/// (the scale is an 11-bit signed number since PostgreSQL 15).
pub fn modifiers(typname: &str, typmod: i32) -> (Option<i32>, Option<i32>, Option<i32>) {
    const VARHDRSZ: i32 = 4;
    if typmod < VARHDRSZ {
        return (None, None, None);
    }
    match typname {
        "varchar" | "bpchar" => (Some(typmod - VARHDRSZ), None, None),
        "numeric" => {
            let m = typmod - VARHDRSZ;
            let precision = (m >> 16) & 0xffff;
            let scale = ((m & 0x7ff) ^ 1024) - 1024;
            (None, Some(precision), Some(scale))
        }
        _ => (None, None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modifiers_decode_postgres_typmods() {
        assert_eq!(modifiers("varchar", 24), (Some(20), None, None));
        assert_eq!(modifiers("bpchar", 5), (Some(1), None, None));
        assert_eq!(modifiers("varchar", -1), (None, None, None));
        // numeric(12,2) is ((12 << 16) | 2) + 4
        assert_eq!(
            modifiers("numeric", (12 << 16 | 2) + 4),
            (None, Some(12), Some(2))
        );
        assert_eq!(
            modifiers("numeric", (5 << 16) + 4),
            (None, Some(5), Some(0))
        );
        // numeric(3,-2), allowed since PostgreSQL 15: scale stored as 11-bit two's complement
        assert_eq!(
            modifiers("numeric", ((3 << 16) | (0x7ff & -2i32)) + 4),
            (None, Some(3), Some(-2))
        );
        assert_eq!(modifiers("numeric", -1), (None, None, None));
        assert_eq!(modifiers("int4", -1), (None, None, None));
    }

    #[test]
    fn casts_split_into_base_modifiers_and_array() {
        assert_eq!(
            ParsedCast::parse(" numeric(12, 2) "),
            ParsedCast {
                base: "numeric".into(),
                args: vec![12, 2],
                array: false
            }
        );
        assert_eq!(
            ParsedCast::parse("character varying(40)[]"),
            ParsedCast {
                base: "character varying".into(),
                args: vec![40],
                array: true
            }
        );
        assert_eq!(
            ParsedCast::parse("text"),
            ParsedCast {
                base: "text".into(),
                args: vec![],
                array: false
            }
        );
    }

    fn table(indexes: Vec<Index>) -> SourceTable {
        SourceTable {
            table: TableRef::new("public", "t"),
            kind: 'r',
            columns: vec![],
            indexes,
        }
    }

    fn index(columns: &[&str], unique: bool, primary: bool, partial: bool) -> Index {
        Index {
            name: "i".into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            unique,
            primary,
            partial,
        }
    }

    #[test]
    fn keys_and_indexes_are_read_from_the_index_list() {
        let t = table(vec![
            index(&["id"], true, true, false),
            index(&["updated_at", "id"], false, false, false),
            index(&["email"], true, false, true),
            index(&["a", "b"], true, false, false),
        ]);
        assert_eq!(t.primary_key(), Some(&["id".to_string()][..]));
        assert!(t.is_indexed("updated_at"));
        assert!(!t.is_indexed("id2"));
        assert!(t.is_unique(&["b".into(), "a".into()]));
        assert!(
            !t.is_unique(&["email".into()]),
            "a partial index proves nothing"
        );
        assert!(!t.is_unique(&["a".into()]));
        assert_eq!(table(vec![]).primary_key(), None);
    }
}
