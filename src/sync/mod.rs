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
mod evolve;
mod full;
pub mod mark;
pub mod plan;
pub mod reconcile;
mod table;

use std::time::Instant;

use futures_util::StreamExt;
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

pub use full::{FullCopied, FULL_COPIED};
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
    /// How many of a job's tables load at once (`LOADER_TABLE_CONCURRENCY`), each on
    /// connections of its own.
    pub table_concurrency: usize,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            catchup_window_seconds: 24 * 3600,
            lookback_seconds: 0,
            lease_seconds: 1200,
            table_concurrency: 4,
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
            table_concurrency: match lookup("LOADER_TABLE_CONCURRENCY").as_deref().map(str::trim) {
                None | Some("") => d.table_concurrency,
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| format!("LOADER_TABLE_CONCURRENCY: {v:?} is not a number of tables from 1 to 64"))?,
            },
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
    /// FULL_DATA_SYNC: the table's rows are replaced by the complete copy's, not yet
    /// committed (the transaction is still open).
    Swapping,
    /// `deletes: reconcile`: the source's keys are fixed (its snapshot taken); Redshift's
    /// are not read yet.
    KeysFixed,
    /// `deletes: reconcile`: the rows gone from the source are deleted from Redshift
    /// (`rows` of them), not yet committed (the transaction is still open).
    Reconciling,
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

    /// A chunk is in S3: its bytes as CSV and as stored (compressed, all its files).
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
    /// Identifies this run in history; continuations of a run share it.
    pub run_id: String,
    /// This invocation's lease owner (and staged-object prefix): unique per invocation.
    /// `None` makes one from the run id.
    pub owner: Option<String>,
    /// Take over the leases this owner holds (the invocation this one continues).
    pub take_over: Option<String>,
    /// Keep the leases of tables left behind (the caller hands them to a continuation
    /// with [`Options::owner`]), instead of releasing them.
    pub hand_over: bool,
    /// The schedule's time for this run (EventBridge Scheduler's `scheduled-time`): the
    /// frequency guard measures from it, so a late delivery counts as its fire.
    pub scheduled_time: Option<DateTime<Utc>>,
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
            .field("owner", &self.owner)
            .field("take_over", &self.take_over)
            .field("hand_over", &self.hand_over)
            .field("scheduled_time", &self.scheduled_time)
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
    /// Of `chunks`, those inserted without deleting first: the target provably held none
    /// of their keys (a first load, rows past everything loaded).
    #[serde(default)]
    pub chunks_appended: u64,
    pub bytes_staged: u64,
    /// The table has nothing left to read (as of this run).
    pub caught_up: bool,
    /// Text values cut to their column's size, JSON/binary values too large (NULL).
    pub values_truncated: u64,
    pub values_nulled: u64,
    /// Values Redshift cannot hold (infinity, NaN, years after 294276) that the extract
    /// replaced as setup's decisions say, in all and by Redshift column.
    #[serde(default)]
    pub values_replaced: u64,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub replaced: std::collections::BTreeMap<String, u64>,
    /// Reads that found nothing new (the last of each pass).
    pub empty_reads: u64,
    /// How far behind the source the table is after this run, in seconds: 0 when caught
    /// up, the age of the last loaded updated key when not (only when the cursor is a
    /// time; absent when it cannot be told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<i64>,
    /// Why the table was not run (not due yet, another run holds it), when it was not:
    /// a skip, neither a success nor a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Not started: the invocation's deadline came first. The continuation takes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deferred: bool,
    /// Objects earlier runs staged for the table and left (killed mid-chunk), removed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub leftovers_removed: u64,
    /// Schema changes at the source applied before loading (`add column "x" ...`,
    /// `widen column ...`), as setup would.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_changes: Vec<String>,
    /// Where the chunks' time in Redshift went, in milliseconds over all chunks (the
    /// rest of a run is reading, encoding and staging).
    #[serde(default)]
    pub redshift_ms: RedshiftMs,
    /// `deletes: reconcile`: rows deleted from Redshift because the source no longer
    /// has their keys.
    #[serde(default)]
    pub rows_deleted: u64,
    /// `deletes: reconcile`: what the key comparison cost and found, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<reconcile::ReconcileReport>,
}

/// Milliseconds in Redshift by step, summed over a run's chunks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedshiftMs {
    /// BEGIN, the stage table, the COPY and its count check.
    pub copy: u64,
    /// The dedupe, the key check, the DELETE (when merged) and the INSERT.
    pub merge: u64,
    pub commit: u64,
}

impl RedshiftMs {
    pub fn add(&mut self, other: RedshiftMs) {
        self.copy += other.copy;
        self.merge += other.merge;
        self.commit += other.commit;
    }
}

impl Report {
    fn skip(reason: String) -> Report {
        Report {
            skipped: Some(reason),
            ..Report::default()
        }
    }

    /// Left behind: it has more to load in a continuation.
    pub fn behind(&self) -> bool {
        self.deferred || (!self.caught_up && self.rows > 0)
    }
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
    /// A schema change at the source that the run cannot apply (setup's own message and
    /// remedy).
    #[error(transparent)]
    Plan(Box<crate::setup::PlanError>),
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
    query_error(table, Role::Destination, doing, e)
}

/// A statement on `side` failed while `doing` something.
fn query_error(table: &TableRef, side: Role, doing: &str, e: &tokio_postgres::Error) -> SyncError {
    SyncError::Query {
        table: table.clone(),
        side,
        reason: format!(
            "{doing} failed: {}",
            crate::diagnose::explain_error(side, e)
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
            values_cut: report.map_or(0, |r| {
                r.values_truncated + r.values_nulled + r.values_replaced
            }),
            rows_deleted: report.map_or(0, |r| r.rows_deleted),
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
    let destination_db = app.destination(job).await?;
    let source_at = format!("{} database {}", Role::Source, source_db.describe());
    let destination_at = format!(
        "{} database {}",
        Role::Destination,
        destination_db.describe()
    );
    // Both databases answer before any table starts (a wrong URL fails the run once,
    // not every table); the source tells its version.
    let (fns, files_per_chunk) = {
        let source = crate::source::open(&source_db).await?;
        let redshift = crate::warehouse::open(&destination_db).await?;
        let fns = crate::source::snapshot_fns(&source)
            .await
            .map_err(|e| Error::Failed(format!("{source_at}: {e}")))?;
        // Once per run: every chunk of every table is staged as this many files.
        let files =
            crate::warehouse::slices::files_per_chunk(&redshift, app.settings.files_per_chunk)
                .await;
        (fns, files)
    };
    let owner = options
        .owner
        .clone()
        .unwrap_or_else(|| new_owner(&options.run_id));
    let shared = Shared {
        app,
        job,
        options,
        timing,
        bucket,
        iam_role,
        fns,
        files_per_chunk,
        owner,
        source_db,
        destination_db,
    };
    // Least recently run first, so a job that cannot finish in one invocation does not
    // starve its last tables.
    let order = rotate(tables, &app.store.table_items(&job.name).await?);
    // Set once a table has run (not skipped): from then on, the deadline defers the rest.
    let progressed = std::sync::atomic::AtomicBool::new(false);
    let runs = order.into_iter().map(|table| {
        let shared = &shared;
        let progressed = &progressed;
        let (source_at, destination_at) = (&source_at, &destination_at);
        async move {
            let started = Instant::now();
            let now = Utc::now();
            // The deadline is checked before each table; until one has run, tables start
            // anyway (as many as run at once), so a chain of continuations always moves.
            if progressed.load(std::sync::atomic::Ordering::SeqCst)
                && options.deadline.is_some_and(|d| started >= d)
            {
                return Outcome {
                    table: table.source.clone(),
                    result: Ok(Report {
                        deferred: true,
                        ..Report::default()
                    }),
                    seconds: 0.0,
                };
            }
            // Every log line of the table's run carries job, table and run id.
            let span = tracing::info_span!("table_run", job = %job.name, table = %table.source, run_id = %options.run_id);
            let result = shared
                .run_table(table, now)
                .instrument(span)
                .await
                .map_err(|e| e.located(&table.source, source_at, destination_at));
            if !matches!(&result, Ok(r) if r.skipped.is_some()) {
                progressed.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            shared.record(table, now, &result).await;
            if let Some(o) = &options.observer {
                o.finished(&table.source, result.is_ok());
            }
            Outcome {
                table: table.source.clone(),
                result,
                seconds: started.elapsed().as_secs_f64(),
            }
        }
    });
    let mut outcomes: Vec<Outcome> = futures_util::stream::iter(runs)
        .buffer_unordered(timing.table_concurrency.max(1))
        .collect()
        .await;
    // In the job's order, whatever order they finished in.
    outcomes.sort_by_key(|o| job.tables.iter().position(|t| t.source == o.table));
    Ok(outcomes)
}

/// The job's enabled tables, least recently run first: the order a run takes them in,
/// and the order a fan-out deals them into parts.
pub async fn table_order(app: &App, job: &Job) -> Result<Vec<TableRef>> {
    let enabled: Vec<&Table> = job.tables.iter().filter(|t| !t.disabled).collect();
    Ok(rotate(enabled, &app.store.table_items(&job.name).await?)
        .into_iter()
        .map(|t| t.source.clone())
        .collect())
}

/// The tables in the order they ran least recently (never first), from their items'
/// last run; ties keep the job's order.
fn rotate<'t>(tables: Vec<&'t Table>, items: &[crate::state::TableItem]) -> Vec<&'t Table> {
    let last_started = |t: &Table| -> Option<String> {
        items
            .iter()
            .find(|i| i.table == t.source.to_string())
            .and_then(|i| i.documents.get(LAST_RUN))
            .and_then(|d| d["started_at"].as_str().map(str::to_string))
    };
    let mut keyed: Vec<(Option<DateTime<Utc>>, &Table)> = tables
        .into_iter()
        .map(|t| {
            let at = last_started(t)
                .and_then(|a| DateTime::parse_from_rfc3339(&a).ok())
                .map(|a| a.with_timezone(&Utc));
            (at, t)
        })
        .collect();
    keyed.sort_by_key(|(at, _)| *at);
    keyed.into_iter().map(|(_, t)| t).collect()
}

/// `<run id>.<8 hex>`: one invocation's lease owner and staging prefix.
pub fn new_owner(run_id: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{run_id}.{}", &id[..8])
}

/// What every table of one invocation shares.
struct Shared<'a> {
    app: &'a App,
    job: &'a Job,
    options: &'a Options,
    timing: Timing,
    bucket: String,
    iam_role: String,
    /// The source's snapshot functions (by its version).
    fns: SnapshotFns,
    /// How many files each chunk is staged as ([`crate::warehouse::slices`]).
    files_per_chunk: usize,
    /// This invocation's lease owner.
    owner: String,
    source_db: crate::secrets::DbConfig,
    destination_db: crate::secrets::DbConfig,
}

/// One table's run: the shared parts, and connections of its own on each side.
struct Ctx<'a> {
    shared: &'a Shared<'a>,
    source: tokio_postgres::Client,
    redshift: tokio_postgres::Client,
}

impl<'a> std::ops::Deref for Ctx<'a> {
    type Target = Shared<'a>;
    fn deref(&self) -> &Shared<'a> {
        self.shared
    }
}

fn state_error(table: &Table) -> impl Fn(StateError) -> SyncError + '_ {
    move |source| SyncError::State {
        table: table.source.clone(),
        source: Box::new(source),
    }
}

impl Shared<'_> {
    async fn run_table(
        &self,
        table: &Table,
        now: DateTime<Utc>,
    ) -> std::result::Result<Report, SyncError> {
        let store = &self.app.store;
        let job = &self.job.name;
        let state = state_error(table);
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
                return Ok(Report::skip(reason));
            }
        }
        let owner = &self.owner;
        let lease_until = now + chrono::Duration::seconds(self.timing.lease_seconds as i64);
        match store
            .take_lease(
                job,
                &table.source,
                owner,
                self.options.take_over.as_deref(),
                now,
                lease_until,
            )
            .await
        {
            Ok(()) => {}
            // Another run is loading it: a skip, not a failure.
            Err(StateError::LeaseHeld {
                owner, expires_at, ..
            }) => {
                let reason = format!(
                    "being loaded by run {owner} (lease until {})",
                    expires_at.format("%Y-%m-%d %H:%M:%SZ")
                );
                tracing::info!(table = %table.source, %reason, "skipped");
                return Ok(Report::skip(reason));
            }
            Err(e) => return Err(state(e)),
        }
        let result = async {
            let ctx = Ctx {
                shared: self,
                source: crate::source::open(&self.source_db).await.map_err(|e| {
                    SyncError::Other {
                        table: table.source.clone(),
                        message: e.to_string(),
                    }
                })?,
                redshift: crate::warehouse::open(&self.destination_db)
                    .await
                    .map_err(|e| SyncError::Other {
                        table: table.source.clone(),
                        message: e.to_string(),
                    })?,
            };
            ctx.load_table(table, &decisions).await
        }
        .await;
        // A table left behind keeps its lease when a continuation will take it over.
        let handing_over = self.options.hand_over && matches!(&result, Ok(r) if r.behind());
        if !handing_over {
            store
                .release_lease(job, &table.source, owner)
                .await
                .map_err(&state)?;
        }
        result
    }

    /// The frequency guard: a table runs at most once per `frequency` seconds, measured
    /// from when its last successful run that caught up was scheduled (or, for runs
    /// without a schedule, started): so `frequency` equal to the schedule's period runs
    /// on every fire, however long each run took.
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
        let time = |field: &str| {
            last[field]
                .as_str()
                .and_then(|a| DateTime::parse_from_rfc3339(a).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let last_scheduled = time("scheduled_time");
        let Some(last_start) = last_scheduled
            .or_else(|| time("started_at"))
            .or_else(|| time("at"))
        else {
            return Ok(None);
        };
        let this = self.options.scheduled_time.unwrap_or(now);
        Ok(guard(
            last_start,
            last_scheduled.is_some() && self.options.scheduled_time.is_some(),
            this,
            self.job.frequency,
        ))
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
                let e = crate::aws_error::AwsError::of(
                    "DeleteObject",
                    crate::aws_error::Resource::Object {
                        bucket: &self.bucket,
                        key: k,
                    },
                    &e,
                );
                tracing::warn!(key = %k, error = %e, "deleting a staged object failed");
            }
        }
    }

    /// Deletes what earlier invocations staged for `table` and left behind (killed
    /// mid-chunk, or fenced out): everything under the table's prefix but this
    /// invocation's. Safe under the table's lease: no other run may be loading it. A
    /// failure only leaves work for the bucket's lifecycle rule. Returns how many objects
    /// went.
    async fn clear_leftovers(&self, table: &TableRef) -> u64 {
        let prefix = crate::stage::key::table_prefix(
            &self.app.settings.staging_prefix,
            &self.job.name,
            table,
        );
        let mine = crate::stage::key::invocation_prefix(
            &self.app.settings.staging_prefix,
            &self.job.name,
            table,
            &self.owner,
        );
        let s3 = &self.app.clients.s3;
        let mut removed = 0u64;
        let mut token: Option<String> = None;
        loop {
            let page = match s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    let e = crate::aws_error::AwsError::of(
                        "ListObjectsV2",
                        crate::aws_error::Resource::Bucket(&self.bucket),
                        &e,
                    );
                    tracing::warn!(prefix, error = %e, "listing staged leftovers failed");
                    return removed;
                }
            };
            let stale: Vec<aws_sdk_s3::types::ObjectIdentifier> = page
                .contents()
                .iter()
                .filter_map(|o| o.key())
                .filter(|k| !k.starts_with(&mine))
                .filter_map(|k| {
                    aws_sdk_s3::types::ObjectIdentifier::builder()
                        .key(k)
                        .build()
                        .ok()
                })
                .collect();
            if !stale.is_empty() {
                let n = stale.len() as u64;
                let delete = aws_sdk_s3::types::Delete::builder()
                    .set_objects(Some(stale))
                    .quiet(true)
                    .build();
                match delete {
                    Ok(delete) => match s3
                        .delete_objects()
                        .bucket(&self.bucket)
                        .delete(delete)
                        .send()
                        .await
                    {
                        Ok(_) => removed += n,
                        Err(e) => {
                            let e = crate::aws_error::AwsError::of(
                                "DeleteObjects",
                                crate::aws_error::Resource::Bucket(&self.bucket),
                                &e,
                            );
                            tracing::warn!(prefix, error = %e, "deleting staged leftovers failed");
                            return removed;
                        }
                    },
                    Err(e) => {
                        tracing::warn!(prefix, error = %e, "deleting staged leftovers failed");
                        return removed;
                    }
                }
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        if removed > 0 {
            tracing::info!(
                objects = removed,
                prefix,
                "removed what earlier runs staged and left"
            );
        }
        removed
    }

    /// Stores the table's last result (and error) for `status`, and the run history. A
    /// skip goes to the history only: it is neither the last success nor a failure.
    async fn record(
        &self,
        table: &Table,
        started: DateTime<Utc>,
        result: &std::result::Result<Report, SyncError>,
    ) {
        if matches!(result, Ok(r) if r.deferred) {
            return;
        }
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
        doc["owner"] = self.owner.clone().into();
        if let Some(t) = self.options.scheduled_time {
            doc["scheduled_time"] = t.to_rfc3339().into();
        }
        let rows = result.as_ref().map_or(0, |r| r.rows);
        let skipped = matches!(result, Ok(r) if r.skipped.is_some());
        let store = &self.app.store;
        let job = &self.job.name;
        let written = async {
            if !skipped {
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

impl Ctx<'_> {
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
}

/// PURE: `None` when a run at `this` is due after one at `last`, else why not. Two
/// scheduled times compare exactly; otherwise a start time's jitter is forgiven by a
/// twentieth of the frequency (at most 30 s), so runs started by a schedule of the same
/// period are not skipped for a few seconds of delay.
pub fn guard(
    last: DateTime<Utc>,
    both_scheduled: bool,
    this: DateTime<Utc>,
    frequency: u64,
) -> Option<String> {
    let tolerance = if both_scheduled {
        0
    } else {
        (frequency / 20).min(30) as i64
    };
    let due = last + chrono::Duration::seconds(frequency as i64 - tolerance);
    (this < due).then(|| {
        format!(
            "not due until {} (last run {}, frequency {} s); force to run now",
            due.format("%Y-%m-%d %H:%M:%SZ"),
            last.format("%Y-%m-%d %H:%M:%SZ"),
            frequency
        )
    })
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

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_guard_measures_from_the_last_scheduled_time() {
        let last = at("2026-01-01T12:00:00Z");
        // Every fire of a schedule whose period is the frequency is due, however late
        // the previous run finished.
        assert_eq!(guard(last, true, at("2026-01-01T12:05:00Z"), 300), None);
        assert!(guard(last, true, at("2026-01-01T12:04:59Z"), 300).is_some());
        // Start times forgive a twentieth of the frequency (at most 30 s)...
        assert_eq!(guard(last, false, at("2026-01-01T12:04:46Z"), 300), None);
        let skipped = guard(last, false, at("2026-01-01T12:04:44Z"), 300).unwrap();
        assert_eq!(
            skipped,
            "not due until 2026-01-01 12:04:45Z (last run 2026-01-01 12:00:00Z, frequency 300 s); force to run now"
        );
        assert!(guard(last, false, at("2026-01-01T12:59:29Z"), 3600).is_some());
        assert_eq!(guard(last, false, at("2026-01-01T12:59:30Z"), 3600), None);
    }

    #[test]
    fn tables_run_least_recently_run_first() {
        let job = crate::config::Job::parse(
            "name: j\nsource: {url_env: S}\ndestination: {url_env: D}\nfrequency: 60\ntables: [{source: public.a}, {source: public.b}, {source: public.c}, {source: public.d}]\n",
            crate::config::Format::Yaml,
        )
        .unwrap();
        let item = |table: &str, started: &str| crate::state::TableItem {
            table: table.into(),
            documents: [(
                LAST_RUN.to_string(),
                serde_json::json!({ "started_at": started }),
            )]
            .into(),
            counters: Default::default(),
        };
        let items = [
            item("public.a", "2026-01-01T12:03:00Z"),
            item("public.b", "2026-01-01T12:01:00Z"),
            item("public.d", "2026-01-01T12:02:00Z"),
        ];
        let order: Vec<String> = rotate(job.tables.iter().collect(), &items)
            .iter()
            .map(|t| t.source.name.clone())
            .collect();
        assert_eq!(order, ["c", "b", "d", "a"]);
    }
}
