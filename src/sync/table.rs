//! One table's run: its keys from setup's decisions checked against the source's
//! catalog, the planner's passes, then chunk after chunk until caught up, the row limit
//! or the deadline.

use std::time::Instant;

use chrono::Utc;

use super::mark::{CatchUp, Mark, Snapshot};
use super::plan::{self, Pass, PassKind};
use super::{parse_source_time, Ctx, Report, SyncError};
use crate::config::{CopyMode, Deletes, Limits, Table, TableRef};
use crate::setup::Decisions;
use crate::source::query::KeyColumn;
use crate::warehouse::sql::ColumnDef;
use crate::warehouse::types::Load;

/// What every chunk of a table's run shares.
pub(super) struct TableRun<'a> {
    pub table: &'a Table,
    pub mode: CopyMode,
    pub select: Vec<String>,
    pub loads: Vec<Load>,
    pub defs: Vec<ColumnDef>,
    /// The cursor: `(updated, pk...)`, `(pk...)`, or empty (a full copy without a key).
    pub keys: Vec<KeyColumn>,
    /// The cursor columns' positions among the extracted columns.
    pub keep: Vec<usize>,
    /// The columns whose refused values the SELECT replaces: it ends with one flag
    /// column for each, which the encoder counts and drops.
    pub flags: Vec<usize>,
    /// The primary key's Redshift names (the merge key).
    pub pk_redshift: Vec<String>,
    /// The rows carry `xmin`, so reads record their snapshot and runs catch up exactly.
    pub has_xmin: bool,
    /// Where chunks land: the destination, or a full copy's new table.
    pub target: TableRef,
    /// A full copy this run begins: its first read's snapshot is the copy's. (One a
    /// previous hop began keeps that hop's, or none if its progress recorded none.)
    pub new_full_copy: bool,
}

impl TableRun<'_> {
    pub fn full(&self) -> bool {
        self.mode == CopyMode::FullDataSync
    }
}

impl Ctx<'_> {
    pub(super) async fn load_table(
        &self,
        table: &Table,
        d: &Decisions,
    ) -> Result<Report, SyncError> {
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
        let source =
            crate::source::schema::introspect(&self.source, &table.source, &table.column_casts)
                .await
                .map_err(|e| SyncError::Schema(Box::new(e)))?;
        let leftovers_removed = self.clear_leftovers(&table.source).await;
        let evolved = self.evolve(table, d, &source).await?;
        let (d, schema_changes) = match &evolved {
            Some((d, changes)) => (d, changes.clone()),
            None => (d, Vec::new()),
        };
        let mode = d.copy_mode.value;
        let columns: Vec<_> = d.live_columns().collect();

        // The cursor: (updated, pk...) or (pk...); a full copy pages by pk when it has
        // one whose columns cannot be NULL.
        let mut key_names: Vec<String> = Vec::new();
        if mode == CopyMode::InsertAndUpdate {
            key_names.extend(d.updated_key.value.clone());
        }
        key_names.extend(d.primary_key.value.iter().cloned());
        // Views never mark a column NOT NULL: there setup warned, and nothing is proven.
        let records_not_null = !matches!(source.kind, 'v' | 'm');
        let nullable: Vec<&String> = key_names
            .iter()
            .filter(|k| records_not_null && source.column(k).is_some_and(|c| !c.not_null))
            .collect();
        if mode == CopyMode::FullDataSync && !nullable.is_empty() {
            key_names.clear();
        } else if let Some(k) = nullable.first() {
            return Err(other(format!(
                "key column {col} allows NULL at the source, and a NULL key can be neither followed nor merged: add NOT NULL (ALTER TABLE {t} ALTER COLUMN {col} SET NOT NULL), or choose other columns with primary_key/updated_key, then run setup again",
                col = crate::quote::ident(k),
                t = crate::quote::qualified(&table.source.schema, &table.source.name),
            )));
        }
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
            .collect::<Result<_, SyncError>>()?;
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
        // Windows on the first key are measured in time when its base type (domains
        // resolved, casts applied) is one.
        let first_key_is_time = key_names
            .first()
            .and_then(|k| source.column(k))
            .is_some_and(|c| plan::is_time_type(&c.pg_type.name));
        let has_xmin = matches!(source.kind, 'r' | 'p');
        // `deletes: reconcile` needs keys both databases print alike: checked before
        // loading, so a table that cannot reconcile says so at once.
        let reconcile_keys =
            if mode != CopyMode::FullDataSync && table.deletes(self.job) == Deletes::Reconcile {
                let key = crate::verify::key_of(table, d, &source);
                Some(
                    crate::verify::key_tables(&table.source, &d.destination, &key)
                        .map_err(|m| other(format!("deletes: reconcile: {m}")))?,
                )
            } else {
                None
            };

        let store = &self.app.store;
        let job = &self.job.name;
        let mark: Option<Mark> = if self.options.from_scratch || mode == CopyMode::FullDataSync {
            None
        } else {
            store
                .get_table_document(job, &table.source, super::MARK)
                .await
                .map_err(super::state_error(table))?
                .and_then(|m| serde_json::from_value::<Mark>(m).ok())
                .filter(|m| m.mode == mode && m.keys == key_names)
        };
        let now = Utc::now();
        let passes = plan::passes(&plan::Inputs {
            mode,
            keys: keys.len(),
            first_key_is_time,
            has_xmin,
            mark: mark.as_ref(),
            continuation: self.options.continuation,
            catchup_window_seconds: self.timing.catchup_window_seconds,
            lookback_seconds: self.timing.lookback_seconds,
            now,
        });

        if let Some(o) = &self.options.observer {
            if mark.is_none() {
                if let Some(rows) = self.estimate_rows(&table.source).await {
                    o.estimated(&table.source, rows);
                }
            }
        }

        let mut passes = passes;
        let (mut full_snapshot, mut new_full_copy) = (None, false);
        let target = if mode == CopyMode::FullDataSync {
            let (copy, progress) = self.full_copy_target(table, &d.destination).await?;
            // A full copy a previous hop of this run began goes on after its cursor.
            if let Some(first) = passes.first_mut() {
                first.after = progress
                    .as_ref()
                    .map(|p| p.cursor.clone())
                    .filter(|c| c.len() == keys.len() && !c.is_empty());
            }
            new_full_copy = progress.is_none();
            full_snapshot = progress.and_then(|p| p.snapshot);
            copy
        } else {
            d.destination.clone()
        };
        let run = TableRun {
            table,
            mode,
            select: columns
                .iter()
                .map(|c| c.select.clone())
                .chain(
                    columns
                        .iter()
                        .filter_map(|c| c.replaced.as_ref().map(|r| r.when.clone())),
                )
                .collect(),
            flags: columns
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.replaced.is_some().then_some(i))
                .collect(),
            loads: columns.iter().map(|c| c.load).collect(),
            defs: columns
                .iter()
                .map(|c| ColumnDef {
                    name: c.name.clone(),
                    redshift_type: c.redshift_type.clone(),
                    not_null: false,
                })
                .collect(),
            keys,
            keep,
            pk_redshift,
            has_xmin,
            target,
            new_full_copy,
        };
        let mut stored = mark.unwrap_or(Mark {
            mode,
            keys: key_names,
            cursor: Vec::new(),
            snapshot: None,
            split: None,
            forward_snapshot: None,
            catchup: None,
            checkpoints: Vec::new(),
        });
        if mode == CopyMode::FullDataSync {
            // A full copy stores no mark: between its chunks `stored.snapshot` carries
            // the copy's first read's snapshot (a previous hop's, or this run's first).
            stored.snapshot = full_snapshot;
        }
        let mut report = Report {
            leftovers_removed,
            schema_changes,
            ..Report::default()
        };
        report.caught_up = self
            .make_passes(&run, &passes, limits, &mut stored, &mut report)
            .await?;
        report.lag_seconds = if report.caught_up {
            Some(0)
        } else if first_key_is_time {
            stored
                .cursor
                .first()
                .and_then(|t| parse_source_time(t))
                .map(|t| (Utc::now() - t).num_seconds().max(0))
        } else {
            None
        };
        // Deletes follow a run that caught up (a table still loading reconciles when its
        // continuation catches up), at most every `reconcile_every` seconds.
        if let Some(keys) = reconcile_keys.filter(|_| report.caught_up) {
            let every = table.reconcile_every(self.job);
            if super::reconcile::due(self.last_reconciled(table).await?, every, Utc::now()) {
                self.reconcile(&run, keys, &mut report).await?;
            }
        }
        // A complete full copy replaces the table's rows; an incomplete one waits for
        // the continuation.
        if run.full() && report.caught_up {
            self.replace_contents(
                table,
                &d.destination,
                &run.target,
                stored.snapshot.as_ref(),
                report.chunks,
            )
            .await?;
        }
        Ok(report)
    }

    /// Makes the passes in order; true when every one reached its end.
    async fn make_passes(
        &self,
        run: &TableRun<'_>,
        passes: &[Pass],
        limits: Limits,
        stored: &mut Mark,
        report: &mut Report,
    ) -> Result<bool, SyncError> {
        // Whether a read after the mark has loaded rows yet in this run: the first one's
        // snapshot sees least of all the reads after it, so it answers for their rows.
        let mut forward_read = false;
        let mut loaded_a_chunk = false;
        for pass in passes {
            let mut after = pass.after.clone();
            // A catch-up that goes on keeps the snapshot of its first read.
            let mut catchup_first: Option<Snapshot> = match pass.kind {
                PassKind::CatchUp => stored.catchup.as_ref().map(|c| c.snapshot.clone()),
                _ => None,
            };
            loop {
                // The lookback re-read and a full copy are not cut short by the row limit.
                let budget = if run.full() || pass.kind == PassKind::Lookback {
                    limits.chunk_size
                } else {
                    limits
                        .row_limit
                        .saturating_sub(report.rows)
                        .min(limits.chunk_size)
                };
                if budget == 0 {
                    return Ok(false);
                }
                // Past the deadline no new chunk starts, but one chunk with rows always
                // does (an empty catch-up does not count), so a chain of continuations
                // always moves. A full copy without a key is one chunk, never cut.
                if loaded_a_chunk
                    && !run.keys.is_empty()
                    && self.options.deadline.is_some_and(|d| Instant::now() >= d)
                {
                    return Ok(false);
                }
                let chunk_no = report.chunks + 1 + report.empty_reads;
                let done = self
                    .chunk(run, pass, after.as_deref(), budget, chunk_no, report)
                    .await?;
                loaded_a_chunk |= done.rows > 0;
                let finished = run.keys.is_empty() || done.rows < budget;
                match pass.kind {
                    PassKind::CatchUp => {
                        let snapshot = done.snapshot.clone().ok_or_else(|| SyncError::Other {
                            table: run.table.source.clone(),
                            message: "the source did not return its snapshot".into(),
                        })?;
                        let first = catchup_first.get_or_insert(snapshot).clone();
                        if finished {
                            // Everything behind the mark the stored snapshot could not see
                            // has now been read under `first` or later.
                            stored.snapshot = Some(first);
                            stored.split = None;
                            stored.forward_snapshot = None;
                            stored.catchup = None;
                        } else {
                            stored.catchup = Some(CatchUp {
                                snapshot: first,
                                after: done.last.clone(),
                            });
                        }
                        self.commit_mark(run.table, stored, chunk_no, done.rows)
                            .await?;
                    }
                    PassKind::Lookback => {
                        if done.rows > 0 {
                            self.fence(run.table).await?;
                        }
                    }
                    PassKind::Forward => {
                        if run.new_full_copy && done.rows > 0 && stored.snapshot.is_none() {
                            stored.snapshot = done.snapshot.clone();
                        }
                        if done.rows > 0 && !run.full() && !run.keys.is_empty() {
                            if !forward_read {
                                forward_read = true;
                                if stored.cursor.is_empty() {
                                    // A first load: its first read answers for every row.
                                    stored.snapshot = done.snapshot.clone();
                                    stored.split = None;
                                    stored.forward_snapshot = None;
                                } else {
                                    // Behind the mark the catch-up's snapshot answers; after
                                    // it, this read's (later, so it saw more).
                                    stored.split = Some(stored.cursor.clone());
                                    stored.forward_snapshot = done.snapshot.clone();
                                }
                            }
                            stored.cursor = done.last.clone();
                            stored.checkpoint(Utc::now(), self.timing.catchup_window_seconds);
                            self.commit_mark(run.table, stored, chunk_no, done.rows)
                                .await?;
                        } else if done.rows > 0 && run.full() && !run.keys.is_empty() {
                            self.commit_full_progress(
                                run.table,
                                &run.target,
                                &done.last,
                                stored.snapshot.as_ref(),
                                chunk_no,
                                done.rows,
                            )
                            .await?;
                        } else if done.rows > 0 {
                            self.fence(run.table).await?;
                        }
                    }
                }
                if finished {
                    break;
                }
                after = Some(done.last);
            }
        }
        Ok(true)
    }
}
