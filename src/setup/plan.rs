//! PURE: what setup decides for one table — keys, copy mode, column mapping, the DDL to
//! run — from the job's table entry, the source catalog, what setup decided last time
//! and what already exists in Redshift.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::{CopyMode, Table, TableRef};
use crate::quote;
use crate::source::schema::{Column, SourceTable};
use crate::warehouse::sql::{self, ColumnDef};
use crate::warehouse::types::{self, Load};

/// Names an `updated_at`-like column usually has, best first (compared lowercased).
pub const UPDATED_KEY_NAMES: &[&str] = &[
    "updated_at",
    "modified_at",
    "last_modified_at",
    "last_updated_at",
    "updatedat",
    "modifiedat",
    "updated_on",
    "modified_on",
    "last_modified",
    "last_updated",
    "update_time",
    "updated_time",
    "modified_time",
    "date_updated",
    "date_modified",
    "updated",
    "modified",
];

/// A decision and why it was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice<T> {
    pub value: T,
    pub why: String,
}

impl<T> Choice<T> {
    fn new(value: T, why: impl Into<String>) -> Choice<T> {
        Choice {
            value,
            why: why.into(),
        }
    }
}

/// One column as setup mapped it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedColumn {
    /// The source column's name.
    pub source: String,
    /// Its name in Redshift (lowercased).
    pub name: String,
    /// The source type as declared (`character varying(20)`), or the cast's type.
    pub source_type: String,
    pub redshift_type: String,
    pub load: Load,
    /// The extract's SELECT expression for this column.
    pub select: String,
    pub not_null: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The column is gone from the source (or excluded): it stays in Redshift and new
    /// rows leave it NULL.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dropped: bool,
}

/// Setup's decisions for one table: stored in DynamoDB (`TABLE#` item, `setup`) and
/// read by every run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decisions {
    pub source: TableRef,
    pub destination: TableRef,
    pub copy_mode: Choice<CopyMode>,
    /// Source column names; empty when the table has none (FULL_DATA_SYNC).
    pub primary_key: Choice<Vec<String>>,
    pub updated_key: Choice<Option<String>>,
    pub dist_key: Option<String>,
    pub sort_key: Vec<String>,
    pub columns: Vec<PlannedColumn>,
    pub warnings: Vec<String>,
}

impl Decisions {
    /// The columns a run extracts and loads (not the dropped ones).
    pub fn live_columns(&self) -> impl Iterator<Item = &PlannedColumn> {
        self.columns.iter().filter(|c| !c.dropped)
    }
}

/// What setup will do to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePlan {
    pub decisions: Decisions,
    /// DDL in order; each statement runs on its own (Redshift refuses some of them in a
    /// transaction block).
    pub statements: Vec<String>,
    /// One line per change, for people: `create table`, `add column "x"`.
    pub changes: Vec<String>,
}

/// Everything wrong with one table, found in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub table: TableRef,
    pub problems: Vec<String>,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "table {}: ", self.table)?;
        if self.problems.len() == 1 {
            return f.write_str(&self.problems[0]);
        }
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanError {}

/// What Redshift already holds for the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    /// Not even the schema: setup creates it first (which takes CREATE on the database).
    NoSchema,
    /// The schema exists, the table does not.
    Absent,
    /// The table exists; its column names (lowercase, as Redshift reports them).
    Columns(Vec<String>),
}

/// Plans one table. `schema` is the job's destination schema; `previous` what setup
/// decided last time, if it ran before.
pub fn plan_table(
    schema: &str,
    table: &Table,
    source: &SourceTable,
    previous: Option<&Decisions>,
    existing: &Existing,
) -> Result<TablePlan, PlanError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();

    let destination = match destination_of(schema, table) {
        Ok(d) => d,
        Err(p) => {
            return Err(PlanError {
                table: table.source.clone(),
                problems: vec![p],
            })
        }
    };

    check_named_columns(table, source, &mut problems, &mut warnings);
    let keys = choose_keys(table, source, &mut problems, &mut warnings);

    // Map every column that is not excluded.
    let mut columns: Vec<PlannedColumn> = Vec::new();
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for column in &source.columns {
        if table.exclude_columns.contains(&column.name) {
            continue;
        }
        let name = match quote::redshift_column_name(&column.name) {
            Ok(n) => n,
            Err(e) => {
                problems.push(format!("column {}: {e}", quote::ident(&column.name)));
                continue;
            }
        };
        if let Some(other) = by_name.insert(name.clone(), column.name.clone()) {
            problems.push(format!(
                "columns {} and {} both become {} in Redshift, which folds names to lowercase; exclude one with exclude_columns",
                quote::ident(&other),
                quote::ident(&column.name),
                quote::ident(&name)
            ));
            continue;
        }
        let mapping = match types::map_column(
            &table.source,
            column,
            table.column_types.get(&column.name).map(String::as_str),
        ) {
            Ok(m) => m,
            Err(e) => {
                problems.push(strip_table_prefix(&e.to_string(), &table.source));
                continue;
            }
        };
        for w in &mapping.warnings {
            warnings.push(format!("column {}: {w}", quote::ident(&column.name)));
        }
        let in_pk = keys.primary_key.value.contains(&column.name);
        columns.push(PlannedColumn {
            source: column.name.clone(),
            name,
            source_type: column.pg_type.display.clone(),
            redshift_type: mapping.redshift_type,
            load: mapping.load,
            select: types::select_expr(
                column,
                table.column_casts.get(&column.name).map(String::as_str),
            ),
            not_null: in_pk && column.not_null,
            reason: mapping.reason,
            dropped: false,
        });
    }
    if columns.is_empty() && problems.is_empty() {
        problems.push("no column is left to copy; check exclude_columns".into());
    }

    let redshift_name_of = |source_name: &str| -> Option<String> {
        columns
            .iter()
            .find(|c| c.source == source_name)
            .map(|c| c.name.clone())
    };
    let dist_key = match keys.primary_key.value.as_slice() {
        [one] => redshift_name_of(one),
        _ => None,
    };
    let sort_key: Vec<String> = match &keys.updated_key.value {
        Some(u) => redshift_name_of(u).into_iter().collect(),
        None => keys
            .primary_key
            .value
            .iter()
            .filter_map(|c| redshift_name_of(c))
            .collect(),
    };

    // Compare with what exists and what was decided before.
    let mut statements = Vec::new();
    let mut changes = Vec::new();
    match existing {
        Existing::NoSchema | Existing::Absent => {
            let defs: Vec<ColumnDef> = columns
                .iter()
                .map(|c| ColumnDef {
                    name: c.name.clone(),
                    redshift_type: c.redshift_type.clone(),
                    not_null: c.not_null,
                })
                .collect();
            let pk: Vec<String> = keys
                .primary_key
                .value
                .iter()
                .filter_map(|c| redshift_name_of(c))
                .collect();
            // Only when missing: even `IF NOT EXISTS` needs CREATE on the database, which
            // a loader user given only its (existing) schema does not have.
            if matches!(existing, Existing::NoSchema) {
                statements.push(sql::create_schema(&destination.schema));
            }
            statements.push(sql::create_table(
                &destination,
                &defs,
                &pk,
                &sort_key,
                dist_key.as_deref(),
            ));
            changes.push(format!("create table {destination}"));
        }
        Existing::Columns(present) => {
            let present: BTreeSet<&str> = present.iter().map(String::as_str).collect();
            if previous.is_none() {
                warnings.push(
                    "the Redshift table existed before setup ran; the types of its columns were not checked"
                        .into(),
                );
            }
            for c in &columns {
                if !present.contains(c.name.as_str()) {
                    // Redshift adds a NOT NULL column only with a default, so a
                    // column added to an existing table is always nullable.
                    let def = ColumnDef {
                        name: c.name.clone(),
                        redshift_type: c.redshift_type.clone(),
                        not_null: false,
                    };
                    statements.push(sql::add_column(&destination, &def));
                    changes.push(format!(
                        "add column {} {}",
                        quote::ident(&c.name),
                        c.redshift_type
                    ));
                    continue;
                }
                let Some(before) =
                    previous.and_then(|p| p.columns.iter().find(|b| b.name == c.name))
                else {
                    continue;
                };
                if before.redshift_type == c.redshift_type {
                    continue;
                }
                match widened_varchar(&before.redshift_type, &c.redshift_type) {
                    Some(_) => {
                        statements.push(sql::alter_column_type(
                            &destination,
                            &c.name,
                            &c.redshift_type,
                        ));
                        changes.push(format!(
                            "widen column {} from {} to {}",
                            quote::ident(&c.name),
                            before.redshift_type,
                            c.redshift_type
                        ));
                    }
                    None => problems.push(format!(
                        "column {} changed type at the source: it was {} ({} in Redshift) and is now {} ({}); Redshift cannot change a column's type in place. Cast it back with column_casts ({}: {}), or rebuild the table with `redshift-loader setup JOB --table {} --rebuild` (drops the Redshift table; the next run reloads it)",
                        quote::ident(&c.source),
                        before.source_type,
                        before.redshift_type,
                        c.source_type,
                        c.redshift_type,
                        c.source,
                        before.source_type,
                        table.source,
                    )),
                }
            }
            // Columns Redshift has that the source no longer sends.
            let live: BTreeSet<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            let mut gone: Vec<PlannedColumn> = Vec::new();
            for name in &present {
                if live.contains(name) {
                    continue;
                }
                let before = previous.and_then(|p| p.columns.iter().find(|b| b.name == *name));
                let source_name = before.map(|b| b.source.as_str()).unwrap_or(name);
                let why = if table.exclude_columns.iter().any(|e| e == source_name) {
                    "is excluded"
                } else {
                    "no longer exists at the source"
                };
                if before.is_some_and(|b| b.not_null) {
                    problems.push(format!(
                        "column {} {why} but is NOT NULL in Redshift (it was part of the primary key); rebuild the table with `redshift-loader setup JOB --table {} --rebuild`",
                        quote::ident(name),
                        table.source
                    ));
                }
                if before.is_none_or(|b| !b.dropped) {
                    warnings.push(format!(
                        "column {} {why}; it stays in Redshift and new rows leave it NULL",
                        quote::ident(name)
                    ));
                }
                gone.push(match before {
                    Some(b) => PlannedColumn {
                        dropped: true,
                        ..b.clone()
                    },
                    None => PlannedColumn {
                        source: name.to_string(),
                        name: name.to_string(),
                        source_type: String::new(),
                        redshift_type: String::new(),
                        load: Load::Plain,
                        select: String::new(),
                        not_null: false,
                        reason: None,
                        dropped: true,
                    },
                });
            }
            columns.extend(gone);
        }
    }

    if let Some(prev) = previous {
        if prev.copy_mode.value != keys.copy_mode.value {
            warnings.push(format!(
                "copy mode changed from {} to {}: the next run reloads the table from scratch",
                prev.copy_mode.value, keys.copy_mode.value
            ));
        }
        if prev.destination != destination {
            warnings.push(format!(
                "the destination changed from {} to {}; the old table is left alone",
                prev.destination, destination
            ));
        }
    }

    if !problems.is_empty() {
        return Err(PlanError {
            table: table.source.clone(),
            problems,
        });
    }
    Ok(TablePlan {
        decisions: Decisions {
            source: table.source.clone(),
            destination,
            copy_mode: keys.copy_mode,
            primary_key: keys.primary_key,
            updated_key: keys.updated_key,
            dist_key,
            sort_key,
            columns,
            warnings,
        },
        statements,
        changes,
    })
}

/// The Redshift table a job's table entry lands in.
pub fn destination_of(schema: &str, table: &Table) -> Result<TableRef, String> {
    let schema = quote::redshift_name(schema).map_err(|e| format!("destination schema: {e}"))?;
    let name = quote::redshift_name(table.destination_name())
        .map_err(|e| format!("destination table name: {e}"))?;
    Ok(TableRef::new(schema, name))
}

/// Columns the table entry names must exist (casts, type overrides), or are worth a
/// warning when they do not (exclusions of columns that are already gone).
fn check_named_columns(
    table: &Table,
    source: &SourceTable,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    for (field, names) in [
        (
            "column_casts",
            table.column_casts.keys().collect::<Vec<_>>(),
        ),
        ("column_types", table.column_types.keys().collect()),
    ] {
        for name in names {
            if source.column(name).is_none() {
                problems.push(format!(
                    "{field}.{name}: the source table has no column {}",
                    quote::ident(name)
                ));
            } else if table.exclude_columns.contains(name) {
                problems.push(format!(
                    "{field}.{name}: the column is also in exclude_columns"
                ));
            }
        }
    }
    for name in &table.exclude_columns {
        if source.column(name).is_none() {
            warnings.push(format!(
                "exclude_columns names {}, which the source table does not have",
                quote::ident(name)
            ));
        }
    }
}

struct Keys {
    primary_key: Choice<Vec<String>>,
    updated_key: Choice<Option<String>>,
    copy_mode: Choice<CopyMode>,
}

/// Primary key, updated key and copy mode: the job's, else what the catalog suggests.
fn choose_keys(
    table: &Table,
    source: &SourceTable,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Keys {
    let excluded = |c: &str| table.exclude_columns.iter().any(|e| e == c);

    // Primary key.
    let primary_key = match &table.primary_key {
        Some(key) => {
            for c in &key.0 {
                match source.column(c) {
                    None => problems.push(format!(
                        "primary_key: the source table has no column {}",
                        quote::ident(c)
                    )),
                    Some(col) if !col.not_null => warnings.push(format!(
                        "primary key column {} allows NULL; rows with a NULL key cannot be merged",
                        quote::ident(c)
                    )),
                    Some(_) => {}
                }
                if excluded(c) {
                    problems.push(format!(
                        "primary key column {} is in exclude_columns",
                        quote::ident(c)
                    ));
                }
            }
            if !key.0.is_empty()
                && key.0.iter().all(|c| source.column(c).is_some())
                && !source.is_unique(&key.0)
            {
                warnings.push(format!(
                    "no unique index at the source covers the primary key ({}); duplicate keys would be merged into one row",
                    key.0.join(", ")
                ));
            }
            Choice::new(key.0.clone(), "set in the job")
        }
        None => match source.primary_key() {
            Some(pk) => Choice::new(pk.to_vec(), "the source's primary key constraint"),
            None => match best_unique_index(source) {
                Some((name, cols)) => Choice::new(
                    cols,
                    format!(
                        "unique index {name} on NOT NULL columns (the table has no primary key)"
                    ),
                ),
                None => Choice::new(
                    Vec::new(),
                    "the source has no primary key or unique index on NOT NULL columns",
                ),
            },
        },
    };
    if table.primary_key.is_none() {
        for c in primary_key.value.iter().filter(|c| excluded(c)) {
            problems.push(format!(
                "primary key column {} is in exclude_columns; the loader needs it to find rows in Redshift",
                quote::ident(c)
            ));
        }
    }
    let pk = &primary_key.value;

    // Updated key.
    let updated_key = match &table.updated_key {
        Some(u) => {
            match source.column(u) {
                None => problems.push(format!(
                    "updated_key: the source table has no column {}",
                    quote::ident(u)
                )),
                Some(col) => {
                    if !is_updated_key_type(col) {
                        problems.push(format!(
                            "updated_key {} has type {}; choose a timestamp, date or integer column that increases whenever a row changes",
                            quote::ident(u),
                            col.pg_type.display
                        ));
                    }
                    check_updated_key(source, col, warnings);
                }
            }
            if excluded(u) {
                problems.push(format!(
                    "updated key {} is in exclude_columns",
                    quote::ident(u)
                ));
            }
            Choice::new(Some(u.clone()), "set in the job")
        }
        None if table
            .copy_mode
            .is_some_and(|m| m != CopyMode::InsertAndUpdate) =>
        {
            Choice::new(None, format!("not used by {}", table.copy_mode.unwrap()))
        }
        None => match guess_updated_key(source, &table.exclude_columns) {
            Guess::Found(col) => {
                check_updated_key(source, col, warnings);
                Choice::new(
                    Some(col.name.clone()),
                    format!("indexed {} column with a usual name", col.pg_type.display),
                )
            }
            Guess::Unindexed(col) => {
                warnings.push(format!(
                    "column {} looks like an updated key but has no index, so it was not chosen (every run would scan the whole table); add an index on it, or set updated_key to use it anyway",
                    quote::ident(&col.name)
                ));
                Choice::new(None, "no indexed updated_at-like column")
            }
            Guess::None => Choice::new(None, "no updated_at-like timestamp column"),
        },
    };

    // Copy mode.
    let copy_mode = match table.copy_mode {
        Some(mode) => {
            match mode {
                CopyMode::InsertAndUpdate => {
                    if pk.is_empty() {
                        problems.push("INSERT_AND_UPDATE merges on the primary key, and the table has none; set primary_key, or use FULL_DATA_SYNC".into());
                    }
                    if updated_key.value.is_none() {
                        problems.push("INSERT_AND_UPDATE needs an updated key, and none was found; set updated_key, or use FULL_DATA_SYNC".into());
                    }
                }
                CopyMode::InsertOnly => {
                    if pk.is_empty() {
                        problems.push("INSERT_ONLY follows the primary key, and the table has none; set primary_key, or use FULL_DATA_SYNC".into());
                    } else if !is_sequential(source, pk) {
                        warnings.push(format!(
                            "INSERT_ONLY follows the primary key ({}), which does not look sequential; rows whose key is lower than the last one loaded would be missed",
                            pk.join(", ")
                        ));
                    }
                }
                CopyMode::FullDataSync => {}
            }
            Choice::new(mode, "set in the job")
        }
        None => {
            if updated_key.value.is_some() && !pk.is_empty() {
                Choice::new(
                    CopyMode::InsertAndUpdate,
                    "the table has a primary key and an updated key",
                )
            } else if !pk.is_empty() && is_sequential(source, pk) {
                Choice::new(
                    CopyMode::InsertOnly,
                    "sequential primary key, no updated key",
                )
            } else if !pk.is_empty() {
                Choice::new(
                    CopyMode::FullDataSync,
                    format!(
                        "the primary key ({}) is not sequential and there is no updated key, so only a full copy finds every change",
                        pk.join(", ")
                    ),
                )
            } else {
                if updated_key.value.is_some() {
                    warnings.push("an updated key without a primary key cannot merge changes; copying the whole table".into());
                }
                Choice::new(CopyMode::FullDataSync, "no primary key")
            }
        }
    };
    // An updated key guessed for a mode that does not use it is dropped again.
    let updated_key = if copy_mode.value == CopyMode::InsertAndUpdate {
        updated_key
    } else if table.updated_key.is_none() {
        Choice::new(None, format!("not used by {}", copy_mode.value))
    } else {
        updated_key
    };
    Keys {
        primary_key,
        updated_key,
        copy_mode,
    }
}

/// The smallest unique, non-partial index on plain NOT NULL columns.
fn best_unique_index(source: &SourceTable) -> Option<(String, Vec<String>)> {
    source
        .indexes
        .iter()
        .filter(|i| i.unique && !i.partial && !i.columns.is_empty())
        .filter(|i| {
            i.columns
                .iter()
                .all(|c| source.column(c).is_some_and(|col| col.not_null))
        })
        .min_by_key(|i| i.columns.len())
        .map(|i| (i.name.clone(), i.columns.clone()))
}

enum Guess<'a> {
    Found(&'a Column),
    Unindexed(&'a Column),
    None,
}

fn guess_updated_key<'a>(source: &'a SourceTable, excluded: &[String]) -> Guess<'a> {
    let candidates: Vec<&Column> = UPDATED_KEY_NAMES
        .iter()
        .flat_map(|usual| {
            source
                .columns
                .iter()
                .filter(move |c| c.name.to_lowercase() == *usual)
        })
        .filter(|c| matches!(c.pg_type.name.as_str(), "timestamp" | "timestamptz"))
        .filter(|c| !excluded.contains(&c.name))
        .collect();
    if let Some(c) = candidates.iter().find(|c| source.is_indexed(&c.name)) {
        return Guess::Found(c);
    }
    match candidates.first() {
        Some(c) => Guess::Unindexed(c),
        None => Guess::None,
    }
}

fn check_updated_key(source: &SourceTable, col: &Column, warnings: &mut Vec<String>) {
    if !col.not_null {
        warnings.push(format!(
            "updated key {} allows NULL; rows where it is NULL cannot be found incrementally (each run counts and reports them)",
            quote::ident(&col.name)
        ));
    }
    if !source.is_indexed(&col.name) {
        warnings.push(format!(
            "updated key {} has no index; every run scans the whole source table (CREATE INDEX CONCURRENTLY ON {} ({}))",
            quote::ident(&col.name),
            quote::qualified(&source.table.schema, &source.table.name),
            quote::ident(&col.name)
        ));
    }
}

fn is_updated_key_type(col: &Column) -> bool {
    matches!(
        col.pg_type.name.as_str(),
        "timestamp" | "timestamptz" | "date" | "int2" | "int4" | "int8" | "numeric"
    )
}

/// A single integer (or timestamp) key that grows as rows are inserted.
fn is_sequential(source: &SourceTable, pk: &[String]) -> bool {
    match pk {
        [one] => source.column(one).is_some_and(|c| {
            matches!(
                c.pg_type.name.as_str(),
                "int2" | "int4" | "int8" | "numeric" | "timestamp" | "timestamptz"
            )
        }),
        _ => false,
    }
}

/// `VARCHAR(a)` → `VARCHAR(b)` with `b > a`: Redshift widens such a column in place.
fn widened_varchar(before: &str, after: &str) -> Option<(u32, u32)> {
    let len =
        |t: &str| -> Option<u32> { t.strip_prefix("VARCHAR(")?.strip_suffix(')')?.parse().ok() };
    let (a, b) = (len(before)?, len(after)?);
    (b > a).then_some((a, b))
}

/// Type errors name the table; inside a [`PlanError`] the table is named once.
fn strip_table_prefix(message: &str, table: &TableRef) -> String {
    let prefix = format!("table {table}: ");
    message.strip_prefix(&prefix).unwrap_or(message).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Format, Job};
    use crate::source::schema::{Index, PgType};

    fn col(name: &str, typname: &str, not_null: bool) -> Column {
        Column {
            name: name.into(),
            position: 0,
            not_null,
            pg_type: PgType {
                name: typname.into(),
                category: match typname {
                    "int4" | "int8" | "numeric" => 'N',
                    "timestamptz" | "timestamp" => 'D',
                    _ => 'S',
                },
                display: typname.into(),
                char_length: None,
                numeric_precision: None,
                numeric_scale: None,
                domain: None,
            },
            generated_key: false,
        }
    }

    fn idx(name: &str, cols: &[&str], unique: bool, primary: bool) -> Index {
        Index {
            name: name.into(),
            columns: cols.iter().map(|c| c.to_string()).collect(),
            unique,
            primary,
            partial: false,
        }
    }

    fn source(columns: Vec<Column>, indexes: Vec<Index>) -> SourceTable {
        SourceTable {
            table: TableRef::new("public", "t"),
            kind: 'r',
            columns,
            indexes,
        }
    }

    fn table(extra: &str) -> Table {
        let yaml = format!(
            "name: j\nsource: {{url_env: S}}\ndestination: {{url_env: D}}\nfrequency: 60\ntables:\n  - source: public.t\n{extra}"
        );
        Job::parse(&yaml, Format::Yaml).unwrap().tables.remove(0)
    }

    fn orders() -> SourceTable {
        source(
            vec![
                col("id", "int8", true),
                col("note", "text", false),
                col("updated_at", "timestamptz", true),
            ],
            vec![
                idx("pk", &["id"], true, true),
                idx("u", &["updated_at"], false, false),
            ],
        )
    }

    #[test]
    fn the_schema_is_created_only_when_it_is_missing() {
        let plan = plan_table("analytics", &table(""), &orders(), None, &Existing::Absent).unwrap();
        assert_eq!(plan.statements.len(), 1, "{:?}", plan.statements);
        assert!(plan.statements[0].starts_with("CREATE TABLE"));
    }

    #[test]
    fn new_table_is_created_with_keys_chosen_from_the_catalog() {
        let plan = plan_table(
            "analytics",
            &table(""),
            &orders(),
            None,
            &Existing::NoSchema,
        )
        .unwrap();
        let d = &plan.decisions;
        assert_eq!(d.copy_mode.value, CopyMode::InsertAndUpdate);
        assert_eq!(d.primary_key.value, vec!["id"]);
        assert_eq!(d.updated_key.value.as_deref(), Some("updated_at"));
        assert_eq!(d.dist_key.as_deref(), Some("id"));
        assert_eq!(d.sort_key, vec!["updated_at"]);
        assert_eq!(plan.statements.len(), 2);
        assert_eq!(plan.statements[0], sql::create_schema("analytics"));
        assert!(
            plan.statements[1].contains("\"id\" BIGINT NOT NULL"),
            "{}",
            plan.statements[1]
        );
        assert!(
            plan.statements[1].contains("\"note\" VARCHAR(65535),"),
            "{}",
            plan.statements[1]
        );
        assert_eq!(plan.changes, vec!["create table analytics.t"]);
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn configured_mode_without_its_keys_is_refused_with_every_problem() {
        let heap = source(vec![col("a", "text", false)], vec![]);
        let e = plan_table(
            "s",
            &table("    copy_mode: INSERT_AND_UPDATE\n"),
            &heap,
            None,
            &Existing::Absent,
        )
        .unwrap_err();
        assert_eq!(e.problems.len(), 2, "{e}");
        assert!(
            e.to_string()
                .starts_with("table public.t: \n  - INSERT_AND_UPDATE merges"),
            "{e}"
        );
        let e = plan_table(
            "s",
            &table("    copy_mode: INSERT_ONLY\n"),
            &heap,
            None,
            &Existing::Absent,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "table public.t: INSERT_ONLY follows the primary key, and the table has none; set primary_key, or use FULL_DATA_SYNC"
        );
    }

    #[test]
    fn guessed_primary_key_may_not_be_excluded() {
        let e = plan_table(
            "s",
            &table("    exclude_columns: [id]\n    copy_mode: FULL_DATA_SYNC\n"),
            &orders(),
            None,
            &Existing::Absent,
        );
        // Config validation cannot see a guessed key; the plan does.
        let e = e.unwrap_err();
        assert!(
            e.to_string()
                .contains("primary key column \"id\" is in exclude_columns"),
            "{e}"
        );
    }

    #[test]
    fn existing_table_gets_new_columns_and_keeps_gone_ones() {
        let first = plan_table("s", &table(""), &orders(), None, &Existing::Absent).unwrap();
        let mut grown = orders();
        grown.columns.retain(|c| c.name != "note");
        grown.columns.push(col("Extra", "int4", false));
        let existing = Existing::Columns(vec!["id".into(), "note".into(), "updated_at".into()]);
        let plan = plan_table("s", &table(""), &grown, Some(&first.decisions), &existing).unwrap();
        assert_eq!(
            plan.statements,
            vec![sql::add_column(
                &TableRef::new("s", "t"),
                &ColumnDef {
                    name: "extra".into(),
                    redshift_type: "INTEGER".into(),
                    not_null: false
                },
            )]
        );
        assert_eq!(plan.changes, vec!["add column \"extra\" INTEGER"]);
        let note = plan
            .decisions
            .columns
            .iter()
            .find(|c| c.name == "note")
            .unwrap();
        assert!(note.dropped);
        assert_eq!(
            note.redshift_type, "VARCHAR(65535)",
            "what it was is remembered"
        );
        assert_eq!(
            plan.decisions.warnings.len(),
            1,
            "{:?}",
            plan.decisions.warnings
        );

        // Planned again from there: nothing to do, no repeated warning.
        let again = plan_table(
            "s",
            &table(""),
            &grown,
            Some(&plan.decisions),
            &Existing::Columns(vec![
                "id".into(),
                "note".into(),
                "updated_at".into(),
                "extra".into(),
            ]),
        )
        .unwrap();
        assert!(again.statements.is_empty());
        assert!(
            again.decisions.warnings.is_empty(),
            "{:?}",
            again.decisions.warnings
        );
    }

    #[test]
    fn varchar_widening_is_the_only_type_change_done_in_place() {
        assert_eq!(
            widened_varchar("VARCHAR(40)", "VARCHAR(120)"),
            Some((40, 120))
        );
        assert_eq!(widened_varchar("VARCHAR(120)", "VARCHAR(40)"), None);
        assert_eq!(widened_varchar("INTEGER", "BIGINT"), None);
        assert_eq!(widened_varchar("VARCHAR(40)", "VARCHAR(40)"), None);
    }

    #[test]
    fn redshift_name_collisions_are_refused() {
        let clash = source(
            vec![col("Name", "text", false), col("name", "text", false)],
            vec![],
        );
        let e = plan_table("s", &table(""), &clash, None, &Existing::Absent).unwrap_err();
        assert_eq!(
            e.problems,
            vec!["columns \"Name\" and \"name\" both become \"name\" in Redshift, which folds names to lowercase; exclude one with exclude_columns"]
        );
    }
}
