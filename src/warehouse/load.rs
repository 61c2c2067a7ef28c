//! Loading one staged chunk into Redshift: COPY into a temp stage, check the count,
//! merge into the target, all in one transaction. On a load error, the reason comes
//! from `stl_load_errors` (provisioned clusters) or `sys_load_error_detail` (Redshift
//! Serverless, which has no STL tables): the catalog says which one exists. The refused
//! value is redacted unless `LOADER_SHOW_REJECTED_VALUES` says otherwise.

use std::time::{Duration, Instant};

use tokio_postgres::SimpleQueryMessage;

use super::sql::{self, ColumnDef, CopyFrom};
use crate::config::TableRef;
use crate::quote;

pub const STAGE: &str = "rsl_stage";
/// The staged files' last column when merging: the row's position in its chunk, so
/// duplicate keys (a source key without a unique index) keep only the newest row.
pub const ROW_ORDER: &str = "rsl_row";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("Redshift refused the load into {table}: column {column}, line {line} of {file}: {reason} (error code {code}); {value}")]
    Rejected {
        table: TableRef,
        file: String,
        line: i64,
        column: String,
        value: RejectedValue,
        /// Redshift's reason, with the value cut out of it unless it is shown.
        reason: String,
        code: i64,
    },
    #[error("Redshift loaded {loaded} rows into {table}'s stage, but {written} were staged; nothing was committed")]
    CountMismatch {
        table: TableRef,
        loaded: u64,
        written: u64,
    },
    /// The caller's `before_commit` said stop (its error): the transaction was rolled
    /// back.
    #[error("{0}")]
    Interrupted(BeforeCommitError),
    #[error("Redshift: loading {table} failed at `{statement}`: {reason}")]
    Statement {
        table: TableRef,
        statement: String,
        reason: String,
    },
}

/// What a load error says of the value Redshift refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectedValue {
    /// `LOADER_SHOW_REJECTED_VALUES=true`: the value as Redshift recorded it (at most
    /// 100 characters).
    Shown(String),
    /// The default: only its length in characters, as Redshift recorded it.
    Hidden { chars: usize },
    /// `sys_load_error_detail` does not record the value.
    NotRecorded,
}

impl std::fmt::Display for RejectedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectedValue::Shown(v) => write!(f, "value: {v:?}"),
            RejectedValue::Hidden { chars } => write!(
                f,
                "the value ({chars} characters) is not shown; LOADER_SHOW_REJECTED_VALUES=true shows it"
            ),
            RejectedValue::NotRecorded => {
                f.write_str("Redshift Serverless does not record the value")
            }
        }
    }
}

/// Where this Redshift keeps the details of a failed COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadErrorTable {
    /// `stl_load_errors`: provisioned clusters; records the raw value.
    Stl,
    /// `sys_load_error_detail`: Redshift Serverless (no STL tables); no value.
    Sys,
}

impl LoadErrorTable {
    /// PURE: the catalog query that tells which tables exist (one row per name found).
    pub const CATALOG_QUERY: &'static str = "SELECT trim(relname) FROM pg_catalog.pg_class \
         WHERE relname IN ('stl_load_errors', 'sys_load_error_detail')";

    /// PURE: the table to read, from the names [`Self::CATALOG_QUERY`] found:
    /// `stl_load_errors` when present (it keeps the value), else `sys_load_error_detail`.
    pub fn choose<'a>(found: impl IntoIterator<Item = &'a str>) -> Option<LoadErrorTable> {
        let mut sys = false;
        for name in found {
            match name {
                "stl_load_errors" => return Some(LoadErrorTable::Stl),
                "sys_load_error_detail" => sys = true,
                _ => {}
            }
        }
        sys.then_some(LoadErrorTable::Sys)
    }

    /// PURE: the newest error row for files under `staged_prefix`, as (file, line,
    /// column, value, reason, code).
    pub fn query(self, staged_prefix: &str) -> String {
        let like = quote::literal(&format!(
            "{}%",
            staged_prefix.replace('%', "\\%").replace('_', "\\_")
        ));
        match self {
            LoadErrorTable::Stl => format!(
                "SELECT trim(filename), line_number, trim(colname), trim(raw_field_value), trim(err_reason), err_code \
                 FROM stl_load_errors WHERE filename LIKE {like} ORDER BY starttime DESC LIMIT 1"
            ),
            LoadErrorTable::Sys => format!(
                "SELECT trim(file_name), line_number, trim(column_name), NULL, trim(error_message), error_code \
                 FROM sys_load_error_detail WHERE file_name LIKE {like} ORDER BY start_time DESC LIMIT 1"
            ),
        }
    }
}

/// PURE: `reason` with every copy of `value` replaced, and what follows Redshift's
/// `Value '` up to its closing quote (the reason may hold a cut copy of the value).
pub fn redact_reason(reason: &str, value: &str) -> String {
    const MARK: &str = "…";
    let mut out = if value.is_empty() {
        reason.to_string()
    } else {
        reason.replace(value, MARK)
    };
    let mut from = 0;
    while let Some(at) = out[from..].find("Value '") {
        let start = from + at + "Value '".len();
        let rest = &out[start..];
        // The value ends at the quote before the next `, ` field, or at a last quote;
        // without either, the reason was cut inside it.
        let end = rest
            .find("', ")
            .or_else(|| rest.strip_suffix('\'').map(str::len))
            .unwrap_or(rest.len());
        out.replace_range(start..start + end, MARK);
        from = start + MARK.len();
    }
    out
}

/// Why a caller's `before_commit` stopped the chunk.
pub type BeforeCommitError = Box<dyn std::error::Error + Send + Sync>;

/// How the chunk lands in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge<'a> {
    /// Replace rows with the same key, then insert (INSERT_ONLY, INSERT_AND_UPDATE);
    /// appended without the DELETE when the target provably holds none of the staged
    /// keys ([`sql::stage_keys_are_new`], asked inside the transaction).
    Upsert { key: &'a [String] },
    /// Append (a full copy without a key: one chunk, into a new table of its own).
    Append,
}

/// Loads one chunk. `target` receives the rows; `columns` are the loaded columns (in
/// the staged files' order; when merging, the files also end with [`ROW_ORDER`]).
/// `before_commit` is awaited after the COPY and the merge, right before COMMIT, inside
/// the transaction (the caller's fence: is the table still ours?); an error from it rolls
/// the chunk back. `show_values`: whether a load error shows the refused value.
/// Returns how the chunk landed and where its time went.
#[allow(clippy::too_many_arguments)]
pub async fn load_chunk(
    rs: &tokio_postgres::Client,
    target: &TableRef,
    columns: &[ColumnDef],
    merge: Merge<'_>,
    from: &CopyFrom<'_>,
    staged_prefix: &str,
    rows_written: u64,
    show_values: bool,
    before_commit: impl std::future::Future<Output = Result<(), BeforeCommitError>>,
) -> Result<Loaded, LoadError> {
    let mut staged: Vec<ColumnDef> = columns.to_vec();
    if let Merge::Upsert { .. } = merge {
        staged.push(ColumnDef {
            name: ROW_ORDER.into(),
            redshift_type: "BIGINT".into(),
            not_null: false,
        });
    }
    let names: Vec<String> = staged.iter().map(|c| c.name.clone()).collect();
    let mut statements = vec![
        "BEGIN".to_string(),
        sql::create_stage(STAGE, &staged),
        sql::copy_from_manifest(&quote::ident(STAGE), &names, from),
    ];
    let started = Instant::now();
    let result = async {
        for s in &statements {
            run(rs, target, s).await?;
        }
        let loaded = last_copy_count(rs, target).await?;
        let copied = Instant::now();
        if loaded != rows_written {
            return Err(LoadError::CountMismatch {
                table: target.clone(),
                loaded,
                written: rows_written,
            });
        }
        statements.clear();
        let mut landed = Landed::Appended;
        if let Merge::Upsert { key } = merge {
            run(rs, target, &sql::dedupe_stage(STAGE, key, ROW_ORDER)).await?;
            // Asked inside the transaction, after the COPY: what a re-read chunk (a crash
            // between COMMIT and the mark) finds is the rows it committed, so it merges.
            let check = sql::stage_keys_are_new(target, STAGE, key);
            if !query_bool(rs, target, &check).await? {
                statements.push(sql::delete_matching(target, STAGE, key));
                landed = Landed::Merged;
            }
        }
        statements.push(sql::insert_from_stage(target, STAGE, columns));
        statements.push(format!("DROP TABLE {}", quote::ident(STAGE)));
        for s in &statements {
            run(rs, target, s).await?;
        }
        let merged = Instant::now();
        before_commit.await.map_err(LoadError::Interrupted)?;
        let fenced = Instant::now();
        run(rs, target, "COMMIT").await?;
        Ok(Loaded {
            landed,
            copy: copied - started,
            merge: merged - copied,
            commit: fenced.elapsed(),
        })
    }
    .await;
    let e = match result {
        Ok(loaded) => return Ok(loaded),
        Err(e) => e,
    };
    let _ = rs.batch_execute("ROLLBACK").await;
    if let LoadError::Statement { reason, .. } = &e {
        if reason.contains("stl_load_errors") || reason.contains("sys_load_error_detail") {
            if let Some(detail) = load_error(rs, target, staged_prefix, show_values).await {
                return Err(detail);
            }
        }
    }
    Err(e)
}

/// A loaded chunk: how it landed, and the time of each step in Redshift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    pub landed: Landed,
    /// BEGIN, the stage table and the COPY, with its count check.
    pub copy: Duration,
    /// The dedupe, the key check, the DELETE (when merged) and the INSERT.
    pub merge: Duration,
    /// The COMMIT (the fence before it is the caller's and not counted).
    pub commit: Duration,
}

/// How a chunk landed in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landed {
    /// Inserted only: the target held none of its keys (or the merge is [`Merge::Append`]).
    Appended,
    /// Rows with its keys deleted first, then inserted.
    Merged,
}

/// The first column of the first row of `query`, read as a boolean.
async fn query_bool(
    rs: &tokio_postgres::Client,
    table: &TableRef,
    query: &str,
) -> Result<bool, LoadError> {
    let rows = rs
        .simple_query(query)
        .await
        .map_err(|e| LoadError::Statement {
            table: table.clone(),
            statement: query.chars().take(80).collect(),
            reason: crate::diagnose::explain_error(crate::secrets::Role::Destination, &e),
        })?;
    Ok(rows.iter().any(|m| match m {
        SimpleQueryMessage::Row(r) => matches!(r.get(0), Some("t" | "true")),
        _ => false,
    }))
}

async fn run(
    rs: &tokio_postgres::Client,
    table: &TableRef,
    statement: &str,
) -> Result<(), LoadError> {
    rs.batch_execute(statement)
        .await
        .map_err(|e| LoadError::Statement {
            table: table.clone(),
            statement: statement
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(80)
                .collect(),
            reason: crate::diagnose::explain_error(crate::secrets::Role::Destination, &e),
        })
}

async fn last_copy_count(rs: &tokio_postgres::Client, table: &TableRef) -> Result<u64, LoadError> {
    let rows = rs
        .simple_query("SELECT pg_last_copy_count()")
        .await
        .map_err(|e| LoadError::Statement {
            table: table.clone(),
            statement: "SELECT pg_last_copy_count()".into(),
            reason: crate::connect::error_chain(&e),
        })?;
    Ok(rows
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
            _ => None,
        })
        .unwrap_or(0))
}

/// The newest load error row for our staged files, as our error; the catalog is asked
/// once which table holds it.
async fn load_error(
    rs: &tokio_postgres::Client,
    table: &TableRef,
    staged_prefix: &str,
    show_values: bool,
) -> Option<LoadError> {
    let found = rs.simple_query(LoadErrorTable::CATALOG_QUERY).await.ok()?;
    let names: Vec<&str> = found
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0),
            _ => None,
        })
        .collect();
    let source = LoadErrorTable::choose(names)?;
    let rows = rs.simple_query(&source.query(staged_prefix)).await.ok()?;
    rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(rejected(
            table,
            [r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)],
            show_values,
        )),
        _ => None,
    })
}

/// PURE: a load error row (file, line, column, value or NULL, reason, code) as our
/// error, the value redacted unless `show_values`.
pub fn rejected(table: &TableRef, row: [Option<&str>; 6], show_values: bool) -> LoadError {
    let [file, line, column, value, reason, code] = row;
    let reason = reason.unwrap_or_default();
    let (value, reason) = match value {
        None if show_values => (RejectedValue::NotRecorded, reason.to_string()),
        None => (RejectedValue::NotRecorded, redact_reason(reason, "")),
        Some(v) if show_values => (
            RejectedValue::Shown(v.chars().take(100).collect()),
            reason.to_string(),
        ),
        Some(v) => (
            RejectedValue::Hidden {
                chars: v.chars().count(),
            },
            redact_reason(reason, v),
        ),
    };
    LoadError::Rejected {
        table: table.clone(),
        file: file.unwrap_or_default().to_string(),
        line: line.and_then(|v| v.parse().ok()).unwrap_or(0),
        column: column.unwrap_or_default().to_string(),
        value,
        reason,
        code: code.and_then(|v| v.parse().ok()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_error_table_is_the_one_the_catalog_has() {
        assert_eq!(
            LoadErrorTable::choose(["sys_load_error_detail", "stl_load_errors"]),
            Some(LoadErrorTable::Stl)
        );
        assert_eq!(
            LoadErrorTable::choose(["sys_load_error_detail"]),
            Some(LoadErrorTable::Sys)
        );
        assert_eq!(LoadErrorTable::choose([]), None);
        assert_eq!(
            LoadErrorTable::Sys.query("s3://b/staging/j/public.t_x/"),
            "SELECT trim(file_name), line_number, trim(column_name), NULL, trim(error_message), error_code \
             FROM sys_load_error_detail WHERE file_name LIKE 's3://b/staging/j/public.t\\\\_x/%' ORDER BY start_time DESC LIMIT 1"
        );
        assert_eq!(
            LoadErrorTable::Stl.query("s3://b/p/"),
            "SELECT trim(filename), line_number, trim(colname), trim(raw_field_value), trim(err_reason), err_code \
             FROM stl_load_errors WHERE filename LIKE 's3://b/p/%' ORDER BY starttime DESC LIMIT 1"
        );
    }

    #[test]
    fn reasons_lose_the_value_they_quote() {
        let cases = [
            (
                "String length exceeds DDL length",
                "abc",
                "String length exceeds DDL length",
            ),
            (
                "Numeric data overflow (result precision), Value '424242.17', Type: DECIMAL(5,2)",
                "424242.17",
                "Numeric data overflow (result precision), Value '…', Type: DECIMAL(5,2)",
            ),
            // Cut short by the reason's 100 characters, or unknown (Serverless).
            (
                "Invalid digit, Value 'it's a secr",
                "",
                "Invalid digit, Value '…",
            ),
            (
                "Invalid digit, Value 'x', Pos 0, Type: Integer",
                "",
                "Invalid digit, Value '…', Pos 0, Type: Integer",
            ),
            ("secret in secret", "secret", "… in …"),
        ];
        for (reason, value, expected) in cases {
            assert_eq!(redact_reason(reason, value), expected, "{reason}");
        }
    }

    #[test]
    fn a_rejected_value_is_hidden_unless_asked_for() {
        let t = TableRef::new("public", "items");
        let row = [
            Some("s3://b/p/part-00001.csv.gz"),
            Some("2"),
            Some("price"),
            Some("424242.17"),
            Some("Numeric data overflow (result precision), Value '424242.17', Type: DECIMAL(5,2)"),
            Some("1216"),
        ];
        assert_eq!(
            rejected(&t, row, false).to_string(),
            "Redshift refused the load into public.items: column price, line 2 of s3://b/p/part-00001.csv.gz: \
             Numeric data overflow (result precision), Value '…', Type: DECIMAL(5,2) (error code 1216); \
             the value (9 characters) is not shown; LOADER_SHOW_REJECTED_VALUES=true shows it"
        );
        assert_eq!(
            rejected(&t, row, true).to_string(),
            "Redshift refused the load into public.items: column price, line 2 of s3://b/p/part-00001.csv.gz: \
             Numeric data overflow (result precision), Value '424242.17', Type: DECIMAL(5,2) (error code 1216); \
             value: \"424242.17\""
        );
        let serverless = [
            row[0],
            row[1],
            row[2],
            None,
            Some("Invalid digit, Value 'x', Pos 0, Type: Integer"),
            Some("1207"),
        ];
        assert_eq!(
            rejected(&t, serverless, false).to_string(),
            "Redshift refused the load into public.items: column price, line 2 of s3://b/p/part-00001.csv.gz: \
             Invalid digit, Value '…', Pos 0, Type: Integer (error code 1207); Redshift Serverless does not record the value"
        );
    }
}
