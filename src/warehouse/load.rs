//! Loading one staged chunk into Redshift: COPY into a temp stage, check the count,
//! merge into the target, all in one transaction. On a load error, the reason comes
//! from `stl_load_errors`.

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
    #[error("Redshift refused the load into {table}: column {column}, line {line} of {file}: {reason} (value: {value:?})")]
    Rejected {
        table: TableRef,
        file: String,
        line: i64,
        column: String,
        value: String,
        reason: String,
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

/// Why a caller's `before_commit` stopped the chunk.
pub type BeforeCommitError = Box<dyn std::error::Error + Send + Sync>;

/// How the chunk lands in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge<'a> {
    /// Replace rows with the same key, then insert (INSERT_ONLY, INSERT_AND_UPDATE).
    Upsert { key: &'a [String] },
    /// Append (FULL_DATA_SYNC into its new table).
    Append,
}

/// Loads one chunk. `target` receives the rows; `columns` are the loaded columns (in
/// the staged files' order; when merging, the files also end with [`ROW_ORDER`]).
/// `before_commit` is awaited after the COPY and the merge, right before COMMIT, inside
/// the transaction (the caller's fence: is the table still ours?); an error from it rolls
/// the chunk back.
#[allow(clippy::too_many_arguments)]
pub async fn load_chunk(
    rs: &tokio_postgres::Client,
    target: &TableRef,
    columns: &[ColumnDef],
    merge: Merge<'_>,
    from: &CopyFrom<'_>,
    staged_prefix: &str,
    rows_written: u64,
    before_commit: impl std::future::Future<Output = Result<(), BeforeCommitError>>,
) -> Result<(), LoadError> {
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
    let result = async {
        for s in &statements {
            run(rs, target, s).await?;
        }
        let loaded = last_copy_count(rs, target).await?;
        if loaded != rows_written {
            return Err(LoadError::CountMismatch {
                table: target.clone(),
                loaded,
                written: rows_written,
            });
        }
        statements.clear();
        if let Merge::Upsert { key } = merge {
            statements.push(sql::dedupe_stage(STAGE, key, ROW_ORDER));
            statements.push(sql::delete_matching(target, STAGE, key));
        }
        statements.push(sql::insert_from_stage(target, STAGE, columns));
        statements.push(format!("DROP TABLE {}", quote::ident(STAGE)));
        for s in &statements {
            run(rs, target, s).await?;
        }
        before_commit.await.map_err(LoadError::Interrupted)?;
        run(rs, target, "COMMIT").await?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        let _ = rs.batch_execute("ROLLBACK").await;
        if let LoadError::Statement { reason, .. } = &e {
            if reason.contains("stl_load_errors") {
                if let Some(detail) = load_error(rs, target, staged_prefix).await {
                    return Err(detail);
                }
            }
        }
        return Err(e);
    }
    Ok(())
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

/// The newest `stl_load_errors` row for our staged files, as our error.
async fn load_error(
    rs: &tokio_postgres::Client,
    table: &TableRef,
    staged_prefix: &str,
) -> Option<LoadError> {
    let sql = format!(
        "SELECT trim(filename), line_number, trim(colname), trim(raw_field_value), trim(err_reason) \
         FROM stl_load_errors WHERE filename LIKE {} ORDER BY starttime DESC LIMIT 1",
        quote::literal(&format!("{}%", staged_prefix.replace('%', "\\%").replace('_', "\\_")))
    );
    let rows = rs.simple_query(&sql).await.ok()?;
    rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(LoadError::Rejected {
            table: table.clone(),
            file: r.get(0).unwrap_or_default().to_string(),
            line: r.get(1).and_then(|v| v.parse().ok()).unwrap_or(0),
            column: r.get(2).unwrap_or_default().to_string(),
            value: r.get(3).unwrap_or_default().chars().take(100).collect(),
            reason: r.get(4).unwrap_or_default().to_string(),
        }),
        _ => None,
    })
}
