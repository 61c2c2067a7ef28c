//! The Redshift side: the session every statement runs in, type mapping, SQL text.

pub mod load;
pub mod slices;
pub mod sql;
pub mod types;

use crate::config::TableRef;
use crate::connect::{self, ConnectError};
use crate::secrets::{DbConfig, Role};

/// Opens a Redshift session with timestamps in UTC.
pub async fn open(db: &DbConfig) -> Result<tokio_postgres::Client, ConnectError> {
    let client = connect::connect(Role::Destination, db).await?;
    client
        .batch_execute("SET timezone TO 'UTC'")
        .await
        .map_err(|e| connect::connect_error(Role::Destination, &db.describe(), &e))?;
    Ok(client)
}

/// A statement Redshift refused, with the statement's first line for context.
#[derive(Debug, thiserror::Error)]
#[error("Redshift refused `{statement}`: {reason}")]
pub struct StatementError {
    pub statement: String,
    pub reason: String,
    pub code: Option<String>,
}

impl StatementError {
    pub fn new(statement: &str, e: &tokio_postgres::Error) -> StatementError {
        let first = statement.lines().next().unwrap_or_default();
        let statement = if first.len() < statement.len() {
            format!("{first} ...")
        } else {
            first.to_string()
        };
        StatementError {
            statement,
            reason: crate::diagnose::explain_error(Role::Destination, e),
            code: e.code().map(|c| c.code().to_string()),
        }
    }
}

/// Runs one statement on its own (autocommit).
pub async fn execute(
    client: &tokio_postgres::Client,
    statement: &str,
) -> Result<(), StatementError> {
    client
        .batch_execute(statement)
        .await
        .map_err(|e| StatementError::new(statement, &e))
}

/// Whether `schema` exists (whoever owns it).
pub async fn schema_exists(
    client: &tokio_postgres::Client,
    schema: &str,
) -> Result<bool, StatementError> {
    const SQL: &str = "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1";
    let rows = client
        .query(SQL, &[&schema])
        .await
        .map_err(|e| StatementError::new(SQL, &e))?;
    Ok(!rows.is_empty())
}

/// The table's column names in Redshift, or `None` when it does not exist.
pub async fn table_columns(
    client: &tokio_postgres::Client,
    table: &TableRef,
) -> Result<Option<Vec<String>>, StatementError> {
    const SQL: &str = "SELECT column_name::varchar FROM information_schema.columns \
                       WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position";
    let rows = client
        .query(SQL, &[&table.schema, &table.name])
        .await
        .map_err(|e| StatementError::new(SQL, &e))?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
}
