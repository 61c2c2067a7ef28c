//! What the source says about its tables: columns, types, keys and indexes.

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
