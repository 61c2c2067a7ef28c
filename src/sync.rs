//! One run of a job's tables: for each table, take its lease, read its mark, then
//! extract → stage → load → advance the mark, chunk after chunk, until it is caught up,
//! its row limit is reached or the deadline is near.
//!
//! The mark moves only after Redshift committed the chunk, and only while this run
//! still holds the lease. A crash anywhere re-reads rows the next run merges again:
//! at-least-once delivery, exactly-once effect.

use std::time::Instant;

use tracing::Instrument;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::config::{CopyMode, Job, Limits, Table, TableRef};
use crate::error::{Error, Result};
use crate::secrets::Role;
use crate::setup::{Decisions, DECISIONS};
use crate::source::extract::{extract_chunk, ExtractError};
use crate::source::query::{self, Chunk, KeyColumn};
use crate::stage::key;
use crate::stage::upload::{GzipUpload, MIN_PART_BYTES};
use crate::state::StateError;
use crate::warehouse::load::{load_chunk, LoadError, Merge};
use crate::warehouse::sql::{ColumnDef, CopyFrom};

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

/// Timing rules for incremental loads (environment: `LOADER_SETTLE_SECONDS`,
/// `LOADER_LOOKBACK_SECONDS`, `LOADER_LEASE_SECONDS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// INSERT_AND_UPDATE reads rows whose updated key is at most `now() - settle` at the
    /// source, so rows being written right now wait for the next run.
    pub settle_seconds: u64,
    /// Each run re-reads this much before the mark, to catch transactions that
    /// committed late (the merge makes re-reads harmless).
    pub lookback_seconds: u64,
    /// How long a table's lease lasts; each committed chunk renews it.
    pub lease_seconds: u64,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            settle_seconds: 5,
            lookback_seconds: 600,
            lease_seconds: 1200,
        }
    }
}

impl Timing {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Timing {
        let d = Timing::default();
        let get = |k: &str, default: u64| {
            lookup(k)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        Timing {
            settle_seconds: get("LOADER_SETTLE_SECONDS", d.settle_seconds),
            lookback_seconds: get("LOADER_LOOKBACK_SECONDS", d.lookback_seconds),
            lease_seconds: get("LOADER_LEASE_SECONDS", d.lease_seconds),
        }
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
    /// This continues an earlier invocation of the same run: the lookback window was
    /// re-read then, and is not again.
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

/// Where a table stopped in the source, stored after each committed chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub mode: CopyMode,
    /// The cursor columns (source names), most significant first.
    pub keys: Vec<String>,
    /// Their values in the last loaded row, as the source prints them.
    pub cursor: Vec<String>,
    /// INSERT_AND_UPDATE: the primary key of the last row loaded whose updated key is
    /// NULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_cursor: Option<Vec<String>>,
}

/// One pass over the source: a cursor, its bounds, and whether it reads the rows whose
/// updated key is NULL.
struct PassDef {
    keys: Vec<KeyColumn>,
    keep: Vec<usize>,
    cursor: Option<Vec<String>>,
    floor: Option<String>,
    ceiling: Option<String>,
    null_key: Option<String>,
    /// The lookback re-read: runs to its end and leaves the mark alone.
    rereading: bool,
}

/// What one table's run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub rows: u64,
    pub chunks: u64,
    pub bytes_staged: u64,
    /// The table has nothing left to read (as of this run's ceiling).
    pub caught_up: bool,
    /// Text values cut to their column's size, JSON/binary values too large (NULL).
    pub values_truncated: u64,
    pub values_nulled: u64,
    /// Reads that found nothing new (the last of each pass).
    pub empty_reads: u64,
    /// How far behind the source the table is after this run, in seconds: the settle
    /// time when caught up, the age of the last loaded updated key when not (only when
    /// the cursor is a timestamp; absent when it cannot be told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<i64>,
    /// Why the table was not run (not due yet), when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("table {0} is not set up yet; run `redshift-loader setup JOB` first")]
    NotSetUp(TableRef),
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
        let decisions: Decisions = match store
            .get_table_document(job, &table.source, DECISIONS)
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

    async fn load_table(
        &self,
        table: &Table,
        d: &Decisions,
    ) -> std::result::Result<Report, SyncError> {
        let store = &self.app.store;
        let job = &self.job.name;
        let state = Self::state_error(table);
        let other = |message: String| SyncError::Other {
            table: table.source.clone(),
            message,
        };
        let limits = Limits::resolve(
            table,
            self.app.settings.import_chunk_size.as_deref(),
            self.app.settings.import_row_limit.as_deref(),
        )
        .map_err(|e| other(e.to_string()))?;
        let mode = d.copy_mode.value;
        let columns: Vec<_> = d.live_columns().collect();
        let select: Vec<String> = columns.iter().map(|c| c.select.clone()).collect();
        let loads: Vec<crate::warehouse::types::Load> = columns.iter().map(|c| c.load).collect();
        let defs: Vec<ColumnDef> = columns
            .iter()
            .map(|c| ColumnDef {
                name: c.name.clone(),
                redshift_type: c.redshift_type.clone(),
                not_null: false,
            })
            .collect();
        // The cursor: (updated, pk...) or (pk...); a full copy pages by pk when it has one.
        let mut key_names: Vec<String> = Vec::new();
        if mode == CopyMode::InsertAndUpdate {
            key_names.extend(d.updated_key.value.clone());
        }
        key_names.extend(d.primary_key.value.iter().cloned());
        let keys: Vec<KeyColumn> = key_names
            .iter()
            .map(|k| {
                let c = columns.iter().find(|c| &c.source == k).ok_or_else(|| {
                    other(format!(
                        "key column {k} is not among the copied columns; run setup again"
                    ))
                })?;
                Ok(KeyColumn {
                    name: k.clone(),
                    pg_type: c.source_type.clone(),
                })
            })
            .collect::<std::result::Result<_, SyncError>>()?;
        let keep: Vec<usize> = key_names
            .iter()
            .filter_map(|k| columns.iter().position(|c| &c.source == k))
            .collect();
        let pk_redshift: Vec<String> = d
            .primary_key
            .value
            .iter()
            .filter_map(|k| {
                columns
                    .iter()
                    .find(|c| &c.source == k)
                    .map(|c| c.name.clone())
            })
            .collect();

        // Where to start.
        let mark: Option<Mark> = if self.options.from_scratch || mode == CopyMode::FullDataSync {
            None
        } else {
            store
                .get_table_document(job, &table.source, MARK)
                .await
                .map_err(&state)?
                .and_then(|m| serde_json::from_value::<Mark>(m).ok())
                .filter(|m| m.mode == mode && m.keys == key_names)
        };
        let first = keys.first();
        let is_time = |k: &KeyColumn| k.pg_type.starts_with("timestamp");
        let ceiling = match first {
            Some(k) if mode == CopyMode::InsertAndUpdate && is_time(k) => Some(
                self.source_text(
                    &table.source,
                    &format!(
                        "SELECT (now() - make_interval(secs => {}))::{}::text",
                        self.timing.settle_seconds, k.pg_type
                    ),
                )
                .await?,
            ),
            _ => None,
        };
        // A new run of INSERT_AND_UPDATE first re-reads the lookback window before its
        // mark (rows that committed late), without moving the mark; continuations of the
        // same run do not, so a chain of them always moves forward.
        let cursor: Option<Vec<String>> = mark.as_ref().map(|m| m.cursor.clone());
        let lookback: Option<(String, String)> = match (&mark, first) {
            (Some(m), Some(k))
                if mode == CopyMode::InsertAndUpdate
                    && is_time(k)
                    && !self.options.continuation =>
            {
                let floor = self
                    .source_text(
                        &table.source,
                        &format!(
                            "SELECT ({}::{} - make_interval(secs => {}))::{}::text",
                            crate::quote::pg_literal(&m.cursor[0]),
                            k.pg_type,
                            self.timing.lookback_seconds,
                            k.pg_type
                        ),
                    )
                    .await?;
                Some((floor, m.cursor[0].clone()))
            }
            _ => None,
        };

        if let Some(o) = &self.options.observer {
            if cursor.is_none() {
                if let Some(rows) = self.estimate_rows(&table.source).await {
                    o.estimated(&table.source, rows);
                }
            }
        }

        let destination = d.destination.clone();
        let target = if mode == CopyMode::FullDataSync {
            let new = TableRef::new(
                &destination.schema,
                format!("{}__rsl_new", destination.name),
            );
            let q = |t: &TableRef| crate::quote::qualified(&t.schema, &t.name);
            self.redshift
                .batch_execute(&format!("DROP TABLE IF EXISTS {}", q(&new)))
                .await
                .map_err(|e| redshift_error(&table.source, "preparing the new copy", &e))?;
            self.redshift
                .batch_execute(&format!(
                    "CREATE TABLE {} (LIKE {})",
                    q(&new),
                    q(&destination)
                ))
                .await
                .map_err(|e| redshift_error(&table.source, "preparing the new copy", &e))?;
            new
        } else {
            destination.clone()
        };

        let mut report = Report::default();
        let full = mode == CopyMode::FullDataSync;
        // The passes: the main one on the cursor; for INSERT_AND_UPDATE a second one, by
        // primary key, over rows whose updated key is NULL (they never compare greater
        // than a cursor, so without it they would be skipped).
        let upsert = !full && !pk_redshift.is_empty();
        let mut state_mark = Mark {
            mode,
            keys: key_names.clone(),
            cursor: mark.as_ref().map(|m| m.cursor.clone()).unwrap_or_default(),
            null_cursor: mark.as_ref().and_then(|m| m.null_cursor.clone()),
        };
        let mut passes = Vec::new();
        if let Some((floor, upto)) = lookback {
            passes.push(PassDef {
                keys: keys.clone(),
                keep: keep.clone(),
                cursor: None,
                floor: Some(floor),
                ceiling: Some(upto),
                null_key: None,
                rereading: true,
            });
        }
        passes.push(PassDef {
            keys: keys.clone(),
            keep: keep.clone(),
            cursor,
            floor: None,
            ceiling,
            null_key: None,
            rereading: false,
        });
        if mode == CopyMode::InsertAndUpdate && keys.len() > 1 {
            passes.push(PassDef {
                keys: keys[1..].to_vec(),
                keep: keep[1..].to_vec(),
                cursor: state_mark.null_cursor.clone(),
                floor: None,
                ceiling: None,
                null_key: Some(keys[0].name.clone()),
                rereading: false,
            });
        }
        let mut all_caught_up = true;
        for pass in passes {
            let PassDef {
                keys,
                keep,
                mut cursor,
                floor,
                ceiling,
                null_key,
                rereading,
            } = pass;
            let mut pass_caught_up = false;
            let mut pass_chunks = 0u64;
            loop {
                // The re-read of the lookback window is not cut short: the mark is
                // already past it.
                let remaining = if full || rereading {
                    limits.chunk_size
                } else {
                    limits
                        .row_limit
                        .saturating_sub(report.rows)
                        .min(limits.chunk_size)
                };
                if remaining == 0 {
                    break;
                }
                // Past the deadline no new chunk starts, but each pass reads at least
                // once, so a chain of continuations always moves.
                if !full
                    && !rereading
                    && pass_chunks > 0
                    && self.options.deadline.is_some_and(|d| Instant::now() >= d)
                {
                    break;
                }
                let chunk_no = report.chunks + 1 + report.empty_reads;
                let prefix = key::chunk_prefix(
                    &self.app.settings.staging_prefix,
                    job,
                    &table.source,
                    &self.options.run_id,
                    chunk_no,
                );
                let part = key::part_key(&prefix, 1, "csv.gz");
                let sql = query::copy_out(&query::chunk_select(&Chunk {
                    table: &table.source,
                    select: &select,
                    keys: &keys,
                    after: cursor.as_deref(),
                    floor: if cursor.is_none() {
                        floor.as_deref()
                    } else {
                        None
                    },
                    ceiling: ceiling.as_deref(),
                    null_key: null_key.as_deref(),
                    limit: if keys.is_empty() {
                        None
                    } else {
                        Some(remaining)
                    },
                }));
                // S3's smallest parts: memory holds up to three (filling, queued, storing).
                let upload = GzipUpload::new(
                    self.app.clients.s3.clone(),
                    &self.bucket,
                    &part,
                    MIN_PART_BYTES,
                );
                let extracted = extract_chunk(
                    &self.source,
                    &sql,
                    loads.clone(),
                    keep.clone(),
                    // The row's place in the chunk, for deduplication (ROW_ORDER).
                    upsert,
                    upload,
                )
                .await
                .map_err(|source| SyncError::Extract {
                    table: table.source.clone(),
                    source: Box::new(source),
                })?;
                let rows = extracted.stats.rows;
                pass_chunks += 1;
                if rows > 0 {
                    if let Some(o) = &self.options.observer {
                        o.staged(
                            &table.source,
                            chunk_no,
                            extracted.uploaded.raw_bytes,
                            extracted.uploaded.bytes,
                        );
                    }
                    self.observe(&table.source, Step::Extracted, chunk_no, rows)?;
                }
                if rows == 0 {
                    self.cleanup(&[part]).await;
                    report.empty_reads += 1;
                    pass_caught_up = true;
                    break;
                }
                let manifest_key = key::manifest_key(&prefix);
                let manifest =
                    key::manifest(&self.bucket, &[(part.clone(), extracted.uploaded.bytes)]);
                self.app
                    .clients
                    .s3
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&manifest_key)
                    .body(manifest.into_bytes().into())
                    .send()
                    .await
                    .map_err(|e| {
                        other(format!(
                            "staging the manifest failed: {}",
                            crate::connect::error_chain(&e)
                        ))
                    })?;
                self.observe(&table.source, Step::Staged, chunk_no, rows)?;
                let manifest_url = format!("s3://{}/{manifest_key}", self.bucket);
                let from = CopyFrom {
                    manifest_url: &manifest_url,
                    iam_role: &self.iam_role,
                    region: None,
                };
                let merge = if upsert {
                    Merge::Upsert { key: &pk_redshift }
                } else {
                    Merge::Append
                };
                let staged = format!("s3://{}/{prefix}/", self.bucket);
                let before_commit = || self.observe(&table.source, Step::Copied, chunk_no, rows);
                let loaded = load_chunk(
                    &self.redshift,
                    &target,
                    &defs,
                    merge,
                    &from,
                    &staged,
                    rows,
                    &before_commit,
                )
                .await;
                match loaded {
                    Ok(()) => {}
                    Err(LoadError::Interrupted(e)) => return Err(*e),
                    Err(e) => {
                        self.cleanup(&[part, manifest_key]).await;
                        return Err(SyncError::Load(Box::new(e)));
                    }
                }
                self.observe(&table.source, Step::Committed, chunk_no, rows)?;
                report.rows += rows;
                report.chunks += 1;
                report.bytes_staged += extracted.uploaded.bytes;
                report.values_truncated += extracted.stats.truncated.values().sum::<u64>();
                report.values_nulled += extracted.stats.nulled.values().sum::<u64>();
                let next: Vec<String> = extracted
                    .last
                    .iter()
                    .map(|v| v.clone().unwrap_or_default())
                    .collect();
                if !full && !keys.is_empty() && !rereading {
                    if null_key.is_some() {
                        state_mark.null_cursor = Some(next.clone());
                    } else {
                        state_mark.cursor = next.clone();
                    }
                    store
                        .put_table_document_leased(
                            job,
                            &table.source,
                            &self.options.run_id,
                            MARK,
                            &serde_json::to_value(&state_mark).expect("marks serialize"),
                            Utc::now(),
                        )
                        .await
                        .map_err(&state)?;
                    self.observe(&table.source, Step::MarkMoved, chunk_no, rows)?;
                }
                // Each chunk renews the lease, so a long run keeps it.
                let now = Utc::now();
                store
                    .acquire_lease(
                        job,
                        &table.source,
                        &self.options.run_id,
                        now,
                        now + chrono::Duration::seconds(self.timing.lease_seconds as i64),
                    )
                    .await
                    .map_err(&state)?;
                self.cleanup(&[part, manifest_key]).await;
                cursor = Some(next);
                if keys.is_empty() || rows < remaining {
                    pass_caught_up = true;
                    break;
                }
            }
            if !pass_caught_up {
                all_caught_up = false;
                break;
            }
        }
        report.caught_up = all_caught_up;
        report.lag_seconds = match (mode, all_caught_up) {
            (CopyMode::InsertAndUpdate, true) => Some(self.timing.settle_seconds as i64),
            (_, true) => Some(0),
            (CopyMode::InsertAndUpdate, false) => state_mark
                .cursor
                .first()
                .and_then(|t| parse_source_time(t))
                .map(|t| (Utc::now() - t).num_seconds().max(0)),
            (_, false) => None,
        };
        if full {
            if !report.caught_up {
                return Err(other(
                    "FULL_DATA_SYNC stopped before the end of the table; nothing was swapped in"
                        .into(),
                ));
            }
            self.swap(&table.source, &destination, &target, report.chunks)
                .await?;
        }
        Ok(report)
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

    /// Replaces `destination` by `new` in one transaction: readers see the old table or
    /// the new one, never a half-loaded one.
    async fn swap(
        &self,
        source: &TableRef,
        destination: &TableRef,
        new: &TableRef,
        chunks: u64,
    ) -> std::result::Result<(), SyncError> {
        let q = |t: &TableRef| crate::quote::qualified(&t.schema, &t.name);
        let old_name = format!("{}__rsl_old", destination.name);
        let old = TableRef::new(&destination.schema, &old_name);
        let first = format!(
            "BEGIN; DROP TABLE IF EXISTS {old}; ALTER TABLE {dest} RENAME TO {old_ident}",
            old = q(&old),
            dest = q(destination),
            old_ident = crate::quote::ident(&old_name),
        );
        let second = format!(
            "ALTER TABLE {new} RENAME TO {dest_ident}; DROP TABLE {old}; COMMIT",
            new = q(new),
            dest_ident = crate::quote::ident(&destination.name),
            old = q(&old),
        );
        let result = async {
            self.redshift
                .batch_execute(&first)
                .await
                .map_err(|e| redshift_error(source, "swapping in the new table", &e))?;
            self.observe(source, Step::Swapping, chunks, 0)?;
            self.redshift
                .batch_execute(&second)
                .await
                .map_err(|e| redshift_error(source, "swapping in the new table", &e))
        }
        .await;
        if result.is_err() {
            let _ = self.redshift.batch_execute("ROLLBACK").await;
        }
        result
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

    /// The one value `sql` returns at the source.
    async fn source_text(
        &self,
        table: &TableRef,
        sql: &str,
    ) -> std::result::Result<String, SyncError> {
        let rows = self
            .source
            .simple_query(sql)
            .await
            .map_err(|e| SyncError::Query {
                table: table.clone(),
                side: Role::Source,
                reason: crate::diagnose::explain_error(Role::Source, &e),
            })?;
        rows.iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .ok_or_else(|| SyncError::Other {
                table: table.clone(),
                message: format!("`{sql}` returned nothing"),
            })
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
        let t = Timing::from_lookup(|k| (k == "LOADER_SETTLE_SECONDS").then(|| "0".to_string()));
        assert_eq!(
            t,
            Timing {
                settle_seconds: 0,
                ..Timing::default()
            }
        );
    }
}
