//! One run of a job's tables: for each table, take its lease, read its mark, catch up on
//! rows that committed late, then extract → stage → load → advance the mark, chunk after
//! chunk, until it is caught up, its row limit is reached or the deadline is near.
//!
//! The parts: [`plan`] decides the passes (pure), [`chunk`] moves one chunk from the
//! source into Redshift, [`commit`] moves the mark with its snapshot (one DynamoDB
//! transaction, only while this run holds the lease), [`table`] drives them, [`full`]
//! swaps a FULL_DATA_SYNC copy in.
//!
//! The mark moves only after Redshift committed the chunk. A crash anywhere re-reads
//! rows the next run merges again: at-least-once delivery, exactly-once effect.

mod chunk;
mod commit;
mod full;
pub mod mark;
pub mod plan;
mod table;

use std::time::Instant;

use tracing::Instrument;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::config::{Job, Table, TableRef};
use crate::error::{Error, Result};
use crate::secrets::Role;
use crate::source::extract::ExtractError;
use crate::source::schema::SchemaError;
use crate::source::snapshot::SnapshotFns;
use crate::state::StateError;
use crate::warehouse::load::LoadError;

pub use mark::{Mark, Snapshot};

/// The `TABLE#` item attribute holding the mark.
pub const MARK: &str = "mark";
/// The `TABLE#` item attributes holding the last run's result, the last successful
/// one, and the last failure (cleared by the next success).
pub const LAST_RUN: &str = "last_run";
pub const LAST_SUCCESS: &str = "last_success";
pub const LAST_ERROR: &str = "last_error";
/// The `TABLE#` item's running total of rows loaded (a number, added to by each run).
pub const ROWS_TOTAL: &str = "rows_total";
/// How long run history items live (their TTL).
pub const RUN_HISTORY_DAYS: i64 = 30;

/// Timing rules for incremental loads (environment: `LOADER_CATCHUP_WINDOW`,
/// `LOADER_LOOKBACK_SECONDS`, `LOADER_LEASE_SECONDS`; durations as `90s`, `15m`, `2h`,
/// `1d` or seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How far behind the mark a catch-up looks for rows written by transactions the
    /// previous reads could not see: in the first key's time for time keys, else back to
    /// where the mark stood this long ago. A transaction open longer than this whose rows
    /// fall behind it is not caught.
    pub catchup_window_seconds: u64,
    /// Opt-in safety net (0 = off): each new run also re-reads this much of a time key
    /// behind the mark, whatever wrote it (for sources without `xmin`, such as views).
    pub lookback_seconds: u64,
    /// How long a table's lease lasts; each committed chunk renews it.
    pub lease_seconds: u64,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            catchup_window_seconds: 24 * 3600,
            lookback_seconds: 0,
            lease_seconds: 1200,
        }
    }
}

impl Timing {
    /// Reads the settings; a value that is not a duration is refused with its name.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<Timing, String> {
        let d = Timing::default();
        let get = |name: &str, default: u64, min: u64| -> std::result::Result<u64, String> {
            match lookup(name).as_deref().map(str::trim) {
                None | Some("") => Ok(default),
                Some(v) => {
                    let n = crate::status::parse_duration(v).map_err(|e| format!("{name}: {e}"))?;
                    if n < min {
                        return Err(format!("{name}: {v:?} is too short; at least {min} s"));
                    }
                    Ok(n)
                }
            }
        };
        if lookup("LOADER_SETTLE_SECONDS").is_some() {
            tracing::warn!("LOADER_SETTLE_SECONDS is no longer used: rows that commit late are caught by transaction id");
        }
        Ok(Timing {
            catchup_window_seconds: get("LOADER_CATCHUP_WINDOW", d.catchup_window_seconds, 1)?,
            lookback_seconds: get("LOADER_LOOKBACK_SECONDS", d.lookback_seconds, 0)?,
            lease_seconds: get("LOADER_LEASE_SECONDS", d.lease_seconds, 60)?,
        })
    }
}

/// The points of a chunk's life, reported as they are passed. The CLI shows progress
/// with them; tests stop a run at an exact point with them (an observer that returns an
/// error ends the table's run there, as a crash would, leaving what was done).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The chunk is out of the source and in S3.
    Extracted,
    /// Its manifest is in S3.
    Staged,
    /// Redshift copied it into the stage (the transaction is still open).
    Copied,
    /// Redshift committed it.
    Committed,
    /// The mark moved past it.
    MarkMoved,
    /// FULL_DATA_SYNC: the old table is renamed away, the new one not yet in (the
    /// transaction is still open).
    Swapping,
}

pub trait Observer: Send + Sync {
    /// Called at each step with the chunk's number (from 1) and rows.
    fn step(
        &self,
        table: &TableRef,
        step: Step,
        chunk: u64,
        rows: u64,
    ) -> std::result::Result<(), String>;

    /// Before a first load or a full copy: about how many rows the source table holds
    /// (PostgreSQL's planner estimate, `pg_class.reltuples`; not called when the table
    /// was never analyzed). Incremental runs have no cheap estimate and do not call it.
    fn estimated(&self, _table: &TableRef, _rows: u64) {}

    /// A chunk is in S3: its bytes as CSV and as stored (gzip).
    fn staged(&self, _table: &TableRef, _chunk: u64, _csv_bytes: u64, _stored_bytes: u64) {}

    /// The table's run ended, loaded (`ok`) or failed.
    fn finished(&self, _table: &TableRef, _ok: bool) {}
}

#[derive(Clone, Default)]
pub struct Options {
    /// Only these tables; empty means every enabled table.
    pub tables: Vec<TableRef>,
    /// Forget the marks and load from the beginning.
    pub from_scratch: bool,
    /// Run even when the job's frequency says it is not due yet (manual runs,
    /// backfills, continuations).
    pub force: bool,
    /// Identifies this run in leases, staged keys and history.
    pub run_id: String,
    /// Stop starting chunks after this instant (Lambda's deadline minus a margin).
    pub deadline: Option<Instant>,
    /// This continues an earlier invocation of the same run: the opt-in lookback window
    /// was re-read then, and is not again (the catch-up runs in every invocation: it
    /// reads only what is late).
    pub continuation: bool,
    pub observer: Option<std::sync::Arc<dyn Observer>>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("tables", &self.tables)
            .field("from_scratch", &self.from_scratch)
            .field("force", &self.force)
            .field("continuation", &self.continuation)
            .field("run_id", &self.run_id)
            .field("deadline", &self.deadline)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// What one table's run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub rows: u64,
    /// Of `rows`, those a catch-up loaded: rows behind the mark that earlier reads could
    /// not see (they committed late).
    #[serde(default)]
    pub late_rows: u64,
    /// Of `rows`, those the opt-in lookback re-read.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reread_rows: u64,
    pub chunks: u64,
    pub bytes_staged: u64,
    /// The table has nothing left to read (as of this run).
    pub caught_up: bool,
    /// Text values cut to their column's size, JSON/binary values too large (NULL).
    pub values_truncated: u64,
    pub values_nulled: u64,
    /// Reads that found nothing new (the last of each pass).
    pub empty_reads: u64,
    /// How far behind the source the table is after this run, in seconds: 0 when caught
    /// up, the age of the last loaded updated key when not (only when the cursor is a
    /// time; absent when it cannot be told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<i64>,
    /// Why the table was not run (not due yet), when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("table {0} is not set up yet; run `redshift-loader setup JOB` first")]
    NotSetUp(TableRef),
    #[error(transparent)]
    Schema(Box<SchemaError>),
    #[error("table {table}: {source}")]
    State {
        table: TableRef,
        source: Box<StateError>,
    },
    #[error("table {table}: {source}")]
    Extract {
        table: TableRef,
        source: Box<ExtractError>,
    },
    #[error(transparent)]
    Load(Box<LoadError>),
    #[error("table {table}: {message}")]
    Other { table: TableRef, message: String },
    /// A query on one side failed; [`SyncError::located`] names the database.
    #[error("table {table}: {reason}")]
    Query {
        table: TableRef,
        side: Role,
        reason: String,
    },
    /// A database refused or failed: `at` names it (`source database host:port/db`).
    #[error("table {table}: {at}: {reason}")]
    Database {
        table: TableRef,
        at: String,
        reason: String,
    },
    #[error("table {table}: stopped at {step:?} of chunk {chunk}: {reason}")]
    Interrupted {
        table: TableRef,
        step: Step,
        chunk: u64,
        reason: String,
    },
}

impl SyncError {
    /// Names the database of a source or Redshift failure (`source database
    /// 127.0.0.1:5432/shop`); other errors pass unchanged.
    fn located(self, table: &TableRef, source_at: &str, destination_at: &str) -> SyncError {
        match self {
            SyncError::Extract { table, source } => match *source {
                ExtractError::Source(reason) => SyncError::Database {
                    table,
                    at: source_at.to_string(),
                    reason,
                },
                other => SyncError::Extract {
                    table,
                    source: Box::new(other),
                },
            },
            SyncError::Query {
                table,
                side,
                reason,
            } => SyncError::Database {
                table,
                at: match side {
                    Role::Source => source_at,
                    Role::Destination => destination_at,
                }
                .to_string(),
                reason,
            },
            // The catalog read at the start of a table's run: told like the same
            // failure of a query (the table is gone, or not readable by this user).
            SyncError::Schema(e) => {
                let facts = match &*e {
                    SchemaError::NoSuchTable { table } => crate::diagnose::Facts {
                        code: Some("42P01".into()),
                        message: format!(
                            "relation \"{}.{}\" does not exist",
                            table.schema, table.name
                        ),
                        ..Default::default()
                    },
                    SchemaError::NoPrivilege { what, .. } => crate::diagnose::Facts {
                        code: Some("42501".into()),
                        message: format!("permission denied for {what}"),
                        ..Default::default()
                    },
                    _ => return SyncError::Schema(e),
                };
                SyncError::Database {
                    table: table.clone(),
                    at: source_at.to_string(),
                    reason: crate::diagnose::explain(Role::Source, &facts),
                }
            }
            SyncError::Load(e) if matches!(*e, LoadError::Statement { .. }) => {
                SyncError::Database {
                    table: table.clone(),
                    at: destination_at.to_string(),
                    reason: e.to_string(),
                }
            }
            other => other,
        }
    }
}

/// A Redshift statement of a table's run failed while `doing` something.
fn redshift_error(table: &TableRef, doing: &str, e: &tokio_postgres::Error) -> SyncError {
    SyncError::Query {
        table: table.clone(),
        side: Role::Destination,
        reason: format!(
            "{doing} failed: {}",
            crate::diagnose::explain_error(Role::Destination, e)
        ),
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub table: TableRef,
    pub result: std::result::Result<Report, SyncError>,
    /// Wall time of the table's run.
    pub seconds: f64,
}

impl Outcome {
    /// The numbers of this run for logs and metrics.
    pub fn measured<'a>(&'a self, job: &'a str, run_id: &'a str) -> crate::metrics::TableRun<'a> {
        let report = self.result.as_ref().ok();
        crate::metrics::TableRun {
            job,
            table: self.table.to_string(),
            run_id,
            rows: report.map_or(0, |r| r.rows),
            bytes: report.map_or(0, |r| r.bytes_staged),
            seconds: self.seconds,
            lag_seconds: report.and_then(|r| r.lag_seconds),
            failed: self.result.is_err(),
        }
    }
}

/// Runs the job's tables, one after the other; a table's failure is recorded and the
/// others go on. Errors that stop everything (settings, connections) come back as `Err`.
pub async fn run(app: &App, job: &Job, options: &Options, timing: Timing) -> Result<Vec<Outcome>> {
    let bucket = app
        .settings
        .staging_bucket
        .clone()
        .ok_or(crate::aws::MissingSetting {
            name: "LOADER_STAGING_BUCKET",
            what: "name the S3 bucket chunks are staged in (the SAM stack's StagingBucket output)",
        })?;
    let iam_role = job
        .destination
        .iam_role
        .clone()
        .or_else(|| app.settings.copy_role_arn.clone())
        .ok_or(crate::aws::MissingSetting {
            name: "LOADER_COPY_ROLE_ARN",
            what: "name the IAM role Redshift assumes to read staged files (or set destination.iam_role in the job)",
        })?;
    let tables: Vec<&Table> = if options.tables.is_empty() {
        job.tables.iter().filter(|t| !t.disabled).collect()
    } else {
        options
            .tables
            .iter()
            .map(|t| {
                job.table(t)
                    .ok_or_else(|| Error::Usage(format!("job {} has no table {t}", job.name)))
            })
            .collect::<Result<_>>()?
    };
    let source_db = app.source(job).await?;
    let source = crate::source::open(&source_db).await?;
    let destination_db = app.destination(job).await?;
    let redshift = crate::warehouse::open(&destination_db).await?;
    let source_at = format!("{} database {}", Role::Source, source_db.describe());
    let fns = snapshot_fns(&source)
        .await
        .map_err(|e| Error::Failed(format!("{source_at}: {e}")))?;
    let destination_at = format!(
        "{} database {}",
        Role::Destination,
        destination_db.describe()
    );
    let ctx = Ctx {
        app,
        job,
        options,
        timing,
        bucket,
        iam_role,
        source,
        redshift,
        fns,
    };
    let mut outcomes = Vec::new();
    for table in tables {
        let now = Utc::now();
        let started = Instant::now();
        // Every log line of the table's run carries job, table and run id.
        let span = tracing::info_span!("table_run", job = %job.name, table = %table.source, run_id = %options.run_id);
        let result = ctx
            .run_table(table, now)
            .instrument(span)
            .await
            .map_err(|e| e.located(&table.source, &source_at, &destination_at));
        ctx.record(table, now, &result).await;
        if let Some(o) = &options.observer {
            o.finished(&table.source, result.is_ok());
        }
        outcomes.push(Outcome {
            table: table.source.clone(),
            result,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(outcomes)
}

struct Ctx<'a> {
    app: &'a App,
    job: &'a Job,
    options: &'a Options,
    timing: Timing,
    bucket: String,
    iam_role: String,
    source: tokio_postgres::Client,
    redshift: tokio_postgres::Client,
    /// The source's snapshot functions (by its version).
    fns: SnapshotFns,
}

/// Which snapshot functions the source has.
async fn snapshot_fns(source: &tokio_postgres::Client) -> std::result::Result<SnapshotFns, String> {
    let rows = source
        .simple_query("SHOW server_version_num")
        .await
        .map_err(|e| crate::diagnose::explain_error(Role::Source, &e))?;
    let version = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
            _ => None,
        })
        .ok_or("the source did not tell its version (SHOW server_version_num)")?;
    Ok(SnapshotFns::for_version(version))
}

impl Ctx<'_> {
    fn state_error(table: &Table) -> impl Fn(StateError) -> SyncError + '_ {
        move |source| SyncError::State {
            table: table.source.clone(),
            source: Box::new(source),
        }
    }

    async fn run_table(
        &self,
        table: &Table,
        now: DateTime<Utc>,
    ) -> std::result::Result<Report, SyncError> {
        let store = &self.app.store;
        let job = &self.job.name;
        let state = Self::state_error(table);
        let decisions: crate::setup::Decisions = match store
            .get_table_document(job, &table.source, crate::setup::DECISIONS)
            .await
            .map_err(&state)?
        {
            Some(doc) => serde_json::from_value(doc).map_err(|e| SyncError::Other {
                table: table.source.clone(),
                message: format!("its setup decisions are unreadable ({e}); run setup again"),
            })?,
            None => return Err(SyncError::NotSetUp(table.source.clone())),
        };
        if !self.options.force {
            if let Some(reason) = self.not_due(table, now).await.map_err(&state)? {
                tracing::info!(table = %table.source, %reason, "skipped");
                return Ok(Report {
                    caught_up: true,
                    skipped: Some(reason),
                    ..Report::default()
                });
            }
        }
        let owner = self.options.run_id.clone();
        let lease_until = now + chrono::Duration::seconds(self.timing.lease_seconds as i64);
        store
            .acquire_lease(job, &table.source, &owner, now, lease_until)
            .await
            .map_err(&state)?;
        let result = self.load_table(table, &decisions).await;
        store
            .release_lease(job, &table.source, &owner)
            .await
            .map_err(&state)?;
        result
    }

    /// The frequency guard: a table runs at most once per `frequency` seconds after its
    /// last successful run that caught up.
    async fn not_due(
        &self,
        table: &Table,
        now: DateTime<Utc>,
    ) -> std::result::Result<Option<String>, StateError> {
        let Some(last) = self
            .app
            .store
            .get_table_document(&self.job.name, &table.source, LAST_SUCCESS)
            .await?
        else {
            return Ok(None);
        };
        if last["report"]["caught_up"] != true {
            return Ok(None);
        }
        let Some(at) = last["at"]
            .as_str()
            .and_then(|a| DateTime::parse_from_rfc3339(a).ok())
        else {
            return Ok(None);
        };
        let due = at.with_timezone(&Utc) + chrono::Duration::seconds(self.job.frequency as i64);
        Ok((now < due).then(|| {
            format!(
                "not due until {} (last success {}, frequency {} s); force to run now",
                due.format("%Y-%m-%d %H:%M:%SZ"),
                at.with_timezone(&Utc).format("%Y-%m-%d %H:%M:%SZ"),
                self.job.frequency
            )
        }))
    }

    fn observe(
        &self,
        table: &TableRef,
        step: Step,
        chunk: u64,
        rows: u64,
    ) -> std::result::Result<(), SyncError> {
        if step == Step::Committed {
            // Inside the table's span: the line names job, table and run.
            tracing::info!(chunk, rows, "chunk loaded");
        }
        match &self.options.observer {
            None => Ok(()),
            Some(o) => o
                .step(table, step, chunk, rows)
                .map_err(|reason| SyncError::Interrupted {
                    table: table.clone(),
                    step,
                    chunk,
                    reason,
                }),
        }
    }

    /// The planner's row estimate for a source table, when it has one (the table was
    /// analyzed, by autovacuum or by hand). Only for progress: a failure is no estimate.
    async fn estimate_rows(&self, table: &TableRef) -> Option<u64> {
        let name = crate::quote::qualified(&table.schema, &table.name);
        let row = self
            .source
            .query_opt(
                "SELECT reltuples::float8 FROM pg_catalog.pg_class WHERE oid = to_regclass($1)",
                &[&name],
            )
            .await
            .map_err(
                |e| tracing::debug!(error = %crate::connect::error_chain(&e), "no row estimate"),
            )
            .ok()??;
        let rows: f64 = row.get(0);
        (rows > 0.0).then_some(rows as u64)
    }

    /// Deletes staged objects; a failure only leaves work for the bucket's lifecycle rule.
    async fn cleanup(&self, keys: &[String]) {
        for k in keys {
            if let Err(e) = self
                .app
                .clients
                .s3
                .delete_object()
                .bucket(&self.bucket)
                .key(k)
                .send()
                .await
            {
                tracing::warn!(key = %k, error = %crate::connect::error_chain(&e), "deleting a staged object failed");
            }
        }
    }

    /// Stores the table's last result (and error) for `status`.
    async fn record(
        &self,
        table: &Table,
        started: DateTime<Utc>,
        result: &std::result::Result<Report, SyncError>,
    ) {
        let now = Utc::now();
        let seconds = (now - started).num_milliseconds().max(0) as f64 / 1000.0;
        let mut doc = match result {
            Ok(r) => serde_json::json!({
                "table": table.source, "run_id": self.options.run_id, "at": now.to_rfc3339(),
                "ok": true, "report": r,
            }),
            Err(e) => serde_json::json!({
                "table": table.source, "run_id": self.options.run_id, "at": now.to_rfc3339(),
                "ok": false, "error": e.to_string(),
            }),
        };
        doc["started_at"] = started.to_rfc3339().into();
        doc["seconds"] = seconds.into();
        let rows = result.as_ref().map_or(0, |r| r.rows);
        let store = &self.app.store;
        let job = &self.job.name;
        let written = async {
            store
                .put_table_document_counting(
                    job,
                    &table.source,
                    LAST_RUN,
                    &doc,
                    (ROWS_TOTAL, rows),
                    now,
                )
                .await?;
            match result {
                Ok(_) => {
                    store
                        .put_table_document(job, &table.source, LAST_SUCCESS, &doc, now)
                        .await?;
                    store
                        .remove_table_attributes(job, &table.source, &[LAST_ERROR])
                        .await?;
                }
                Err(_) => {
                    store
                        .put_table_document(job, &table.source, LAST_ERROR, &doc, now)
                        .await?
                }
            }
            store
                .put_run(
                    job,
                    &table.source,
                    &self.options.run_id,
                    now,
                    &doc,
                    chrono::Duration::days(RUN_HISTORY_DAYS),
                )
                .await
        }
        .await;
        if let Err(e) = written {
            tracing::warn!(table = %table.source, error = %e, "recording the run result failed");
        }
    }
}

/// `cli-20261125T071500-1a2b3c4d`: sortable, unique, says where the run came from.
pub fn new_run_id(origin: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{origin}-{}-{}",
        Utc::now().format("%Y%m%dT%H%M%S"),
        &id[..8]
    )
}

/// A timestamp as the source prints it in the pinned session (`2024-01-01
/// 00:00:20.5+00`, or without zone for `timestamp` columns, read as UTC).
pub fn parse_source_time(text: &str) -> Option<DateTime<Utc>> {
    let with_zone = format!("{text}:00");
    DateTime::parse_from_str(&with_zone, "%Y-%m-%d %H:%M:%S%.f%:z")
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_times_parse_in_both_forms() {
        let t = parse_source_time("2024-01-01 00:00:20.5+00").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-01-01T00:00:20.500+00:00");
        let t = parse_source_time("2024-01-01 00:00:20").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-01-01T00:00:20+00:00");
        assert_eq!(parse_source_time("42"), None);
    }

    #[test]
    fn timing_reads_the_environment_with_defaults() {
        let t = Timing::from_lookup(|k| (k == "LOADER_CATCHUP_WINDOW").then(|| "6h".to_string()));
        assert_eq!(
            t,
            Ok(Timing {
                catchup_window_seconds: 6 * 3600,
                ..Timing::default()
            })
        );
        assert_eq!(Timing::from_lookup(|_| None), Ok(Timing::default()));
        assert_eq!(
            Timing::default().lookback_seconds,
            0,
            "the lookback is opt-in"
        );
    }

    #[test]
    fn timing_refuses_a_bad_value_by_name() {
        for (name, value, expect) in [
            (
                "LOADER_LEASE_SECONDS",
                "20 minutes",
                "LOADER_LEASE_SECONDS: ",
            ),
            (
                "LOADER_LEASE_SECONDS",
                "5",
                "LOADER_LEASE_SECONDS: \"5\" is too short",
            ),
            ("LOADER_LOOKBACK_SECONDS", "-5", "LOADER_LOOKBACK_SECONDS: "),
            (
                "LOADER_CATCHUP_WINDOW",
                "0",
                "LOADER_CATCHUP_WINDOW: \"0\" is too short",
            ),
        ] {
            let e = Timing::from_lookup(|k| (k == name).then(|| value.to_string())).unwrap_err();
            assert!(e.starts_with(expect), "{name}={value}: {e}");
        }
        assert_eq!(
            Timing::from_lookup(|k| (k == "LOADER_LOOKBACK_SECONDS").then(|| "10m".to_string()))
                .unwrap()
                .lookback_seconds,
            600
        );
    }
}
