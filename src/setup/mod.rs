//! `setup`: read the source tables, decide keys, mode and column types, create or evolve
//! the Redshift tables, and store the decisions every run reads.
//!
//! Each table is planned and applied on its own: a bad table is reported (and its error
//! stored) while the others go ahead.

pub mod plan;

use chrono::{DateTime, Utc};

use crate::app::App;
use crate::config::{Job, TableRef};
use crate::error::Result;
use crate::secrets::Role;
use crate::source::schema::{self, SchemaError};
use crate::state::StateError;
use crate::warehouse::{self, StatementError};

pub use plan::{Decisions, Existing, PlanError, TablePlan};

/// The `TABLE#` item attribute holding [`Decisions`].
pub const DECISIONS: &str = "setup";
/// The `TABLE#` item attribute holding the last setup error, if the last setup failed.
pub const SETUP_ERROR: &str = "setup_error";

#[derive(Clone, Default)]
pub struct Options {
    /// Only these tables (by source name); empty means every table that is not disabled.
    pub tables: Vec<TableRef>,
    /// Print the DDL, change nothing.
    pub dry_run: bool,
    /// Drop and recreate the Redshift tables and forget their state (the next run
    /// reloads them). Only with `tables`.
    pub rebuild: bool,
    /// Told as each table starts and ends (the CLI's progress bar).
    pub observer: Option<std::sync::Arc<dyn Observer>>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("tables", &self.tables)
            .field("dry_run", &self.dry_run)
            .field("rebuild", &self.rebuild)
            .finish_non_exhaustive()
    }
}

/// Follows setup through the job's tables.
pub trait Observer: Send + Sync {
    /// Table `index` (from 0) of `of` is being read and planned.
    fn starting(&self, table: &TableRef, index: usize, of: usize);
    /// It is done (`ok`) or failed.
    fn finished(&self, table: &TableRef, ok: bool);
}

/// Why one table could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("table {table}: {source}")]
    Statement {
        table: TableRef,
        source: StatementError,
    },
    #[error("table {table}: {source}")]
    State { table: TableRef, source: StateError },
    /// A database refused or failed: `at` names it (`source database host:port/db`).
    #[error("table {table}: {at}: {reason}")]
    Database {
        table: TableRef,
        at: String,
        reason: String,
    },
    #[error("table {table}: its stored setup decisions are unreadable ({reason}); run `redshift-loader setup JOB --table {table} --rebuild`")]
    Decisions { table: TableRef, reason: String },
}

impl TableError {
    /// Names the database of a source or Redshift failure; other errors pass unchanged.
    fn located(self, source_at: &str, destination_at: &str) -> TableError {
        match self {
            TableError::Statement { table, source } => TableError::Database {
                table,
                at: destination_at.to_string(),
                reason: source.to_string(),
            },
            TableError::Schema(
                e @ (SchemaError::NoSuchTable { .. }
                | SchemaError::NoPrivilege { .. }
                | SchemaError::Catalog { .. }),
            ) => {
                let table = match &e {
                    SchemaError::NoSuchTable { table }
                    | SchemaError::NoPrivilege { table, .. }
                    | SchemaError::Catalog { table, .. } => table.clone(),
                    SchemaError::UnknownCastType { table, .. } => table.clone(),
                };
                TableError::Database {
                    table,
                    at: source_at.to_string(),
                    reason: e.to_string(),
                }
            }
            other => other,
        }
    }
}

/// What happened to one table.
#[derive(Debug)]
pub struct Outcome {
    pub table: TableRef,
    pub result: std::result::Result<TablePlan, TableError>,
}

/// Sets up the job's tables. Errors that stop everything (secrets, connections, unknown
/// table names) come back as `Err`; a table's own trouble is in its [`Outcome`].
pub async fn run(
    app: &App,
    job: &Job,
    options: &Options,
    now: DateTime<Utc>,
) -> Result<Vec<Outcome>> {
    let selected = select_tables(job, options)?;
    let source_db = app.source(job).await?;
    let source = crate::source::open(&source_db).await?;
    let destination_db = app.destination(job).await?;
    let redshift = warehouse::open(&destination_db).await?;
    let source_at = format!("{} database {}", Role::Source, source_db.describe());
    let destination_at = format!(
        "{} database {}",
        Role::Destination,
        destination_db.describe()
    );

    let mut outcomes = Vec::new();
    let of = selected.len();
    for (index, table) in selected.into_iter().enumerate() {
        if let Some(o) = &options.observer {
            o.starting(&table.source, index, of);
        }
        let result = setup_table(app, job, table, &source, &redshift, options, now)
            .await
            .map_err(|e| e.located(&source_at, &destination_at));
        if !options.dry_run {
            record(app, job, &table.source, &result, now).await?;
        }
        match &result {
            Ok(plan) if options.dry_run => {
                tracing::info!(table = %table.source, statements = plan.statements.len(), "table planned")
            }
            Ok(plan) => {
                tracing::info!(table = %table.source, changes = plan.changes.len(), "table set up")
            }
            Err(e) => tracing::warn!(table = %table.source, error = %e, "table not set up"),
        }
        if let Some(o) = &options.observer {
            o.finished(&table.source, result.is_ok());
        }
        outcomes.push(Outcome {
            table: table.source.clone(),
            result,
        });
    }
    Ok(outcomes)
}

fn select_tables<'a>(job: &'a Job, options: &Options) -> Result<Vec<&'a crate::config::Table>> {
    if options.tables.is_empty() {
        if options.rebuild {
            return Err(crate::error::Error::Usage(
                "--rebuild drops Redshift tables: name them with --table".into(),
            ));
        }
        return Ok(job.tables.iter().filter(|t| !t.disabled).collect());
    }
    options
        .tables
        .iter()
        .map(|name| {
            job.table(name).ok_or_else(|| {
                crate::error::Error::Usage(format!(
                    "job {} has no table {name}; its tables are: {}",
                    job.name,
                    job.tables
                        .iter()
                        .map(|t| t.source.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        })
        .collect()
}

async fn setup_table(
    app: &App,
    job: &Job,
    table: &crate::config::Table,
    source: &tokio_postgres::Client,
    redshift: &tokio_postgres::Client,
    options: &Options,
    now: DateTime<Utc>,
) -> std::result::Result<TablePlan, TableError> {
    let state = |source: StateError| TableError::State {
        table: table.source.clone(),
        source,
    };
    let statement = |source: StatementError| TableError::Statement {
        table: table.source.clone(),
        source,
    };
    let columns = schema::introspect(source, &table.source, &table.column_casts).await?;
    let destination =
        plan::destination_of(&job.destination.schema, table).map_err(|p| PlanError {
            table: table.source.clone(),
            problems: vec![p],
        })?;

    let mut rebuild_statements = Vec::new();
    let previous = if options.rebuild {
        let drop = format!(
            "DROP TABLE IF EXISTS {}",
            crate::quote::qualified(&destination.schema, &destination.name)
        );
        if options.dry_run {
            rebuild_statements.push(drop);
        } else {
            app.store
                .reset_table(&job.name, &table.source, now)
                .await
                .map_err(state)?;
            warehouse::execute(redshift, &drop)
                .await
                .map_err(statement)?;
        }
        None
    } else {
        match app
            .store
            .get_table_document(&job.name, &table.source, DECISIONS)
            .await
            .map_err(state)?
        {
            None => None,
            Some(doc) => Some(serde_json::from_value::<Decisions>(doc).map_err(|e| {
                TableError::Decisions {
                    table: table.source.clone(),
                    reason: e.to_string(),
                }
            })?),
        }
    };
    let columns_now = if options.rebuild {
        None
    } else {
        warehouse::table_columns(redshift, &destination)
            .await
            .map_err(statement)?
    };
    let existing = match columns_now {
        Some(cols) => Existing::Columns(cols),
        None if warehouse::schema_exists(redshift, &destination.schema)
            .await
            .map_err(statement)? =>
        {
            Existing::Absent
        }
        None => Existing::NoSchema,
    };

    let mut plan = plan::plan_table(
        &job.destination.schema,
        table,
        &columns,
        previous.as_ref(),
        &existing,
    )?;
    if options.dry_run {
        rebuild_statements.append(&mut plan.statements);
        plan.statements = rebuild_statements;
        return Ok(plan);
    }
    // One statement at a time, outside a transaction block: Redshift refuses ALTER
    // TABLE ADD COLUMN next to other DDL in one.
    for s in &plan.statements {
        warehouse::execute(redshift, s).await.map_err(statement)?;
    }
    let doc = serde_json::to_value(&plan.decisions).expect("decisions always serialize");
    app.store
        .put_table_document(&job.name, &table.source, DECISIONS, &doc, now)
        .await
        .map_err(state)?;
    Ok(plan)
}

/// Stores a table's setup error (so `status` shows it) or clears the last one.
async fn record(
    app: &App,
    job: &Job,
    table: &TableRef,
    result: &std::result::Result<TablePlan, TableError>,
    now: DateTime<Utc>,
) -> Result<()> {
    match result {
        Ok(_) => {
            app.store
                .remove_table_attributes(&job.name, table, &[SETUP_ERROR])
                .await?
        }
        Err(e) => {
            let doc = serde_json::json!({ "at": now.to_rfc3339(), "message": e.to_string() });
            app.store
                .put_table_document(&job.name, table, SETUP_ERROR, &doc, now)
                .await?
        }
    }
    Ok(())
}
