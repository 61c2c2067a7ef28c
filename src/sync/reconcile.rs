//! `deletes: reconcile`: after a table's incremental run, under its lease, the keys
//! Redshift holds that the source no longer has are deleted from Redshift, in one
//! transaction that commits only while the run still holds the lease.
//!
//! The keys are compared per key range ([`crate::verify`]), so the cost is one scan of
//! the key index on each side plus key lists in proportion to the difference.
//!
//! Why a row inserted, updated or deleted while the comparison runs is never wrongly
//! deleted:
//! 1. The source is read in one REPEATABLE READ snapshot `S`, taken after every chunk
//!    of this run committed in Redshift. Every row Redshift holds was read from the
//!    source under an earlier snapshot, so it was committed at the source before `S`
//!    began; if `S` does not see its key, a transaction that committed before `S`
//!    deleted it (or changed its key). Rows that commit at the source during the
//!    comparison are invisible to `S`, and they are not in Redshift either (no load runs
//!    while this run holds the lease), so they are on no side and nothing happens to
//!    them; the next run loads them.
//! 2. Redshift changes only under the table's lease. If the lease was lost while the
//!    comparison ran (this run too slow, another run took over and loaded rows that
//!    `S` cannot see), the keys found could include those rows: the lease check before
//!    COMMIT fails, the deletes roll back, and nothing is lost.
//! 3. A row deleted and inserted again with the same key before `S` is in `S` and kept;
//!    inserted again after `S`, it is deleted now and loaded again by a later run when
//!    its updated key (INSERT_AND_UPDATE) is past the mark. (INSERT_ONLY never reloads
//!    a key behind its mark, deleted or not.)

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::table::TableRun;
use super::{redshift_error, Ctx, Report, Step, SyncError};
use crate::config::Table;
use crate::secrets::Role;
use crate::verify::compare::{compare, Tuning};
use crate::verify::sql::{Key, KeyTable, Range};
use crate::verify::Db;

/// The `TABLE#` item attribute holding the last reconcile.
pub const RECONCILED: &str = "reconciled";

/// Keys per DELETE statement.
const DELETE_BATCH: usize = 1_000;

/// The last reconcile of a table, stored with the lease like a mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciled {
    pub at: DateTime<Utc>,
    pub deleted: u64,
}

/// What a reconcile did, in the run's report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileReport {
    /// Key ranges compared (counted once for both sides).
    pub ranges: u64,
    /// Keys shipped from both databases to compare them.
    pub keys_transferred: u64,
    /// Keys at the source not in Redshift after the run: rows committed while it ran
    /// (the next run loads them), or rows an INSERT_ONLY table cannot follow.
    pub missing: u64,
    /// The invocation's deadline came first: the keys found gone were deleted, the
    /// rest of the table was not compared, and the next run compares it all again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unfinished: bool,
}

/// Whether a table whose last reconcile was at `last` reconciles at `now`.
pub fn due(last: Option<DateTime<Utc>>, every: u64, now: DateTime<Utc>) -> bool {
    last.is_none_or(|at| (now - at).num_seconds() >= every as i64)
}

impl Ctx<'_> {
    /// The last reconcile's time, when one is stored.
    pub(super) async fn last_reconciled(
        &self,
        table: &Table,
    ) -> Result<Option<DateTime<Utc>>, SyncError> {
        Ok(self
            .app
            .store
            .get_table_document(&self.job.name, &table.source, RECONCILED)
            .await
            .map_err(super::state_error(table))?
            .and_then(|doc| serde_json::from_value::<Reconciled>(doc).ok())
            .map(|r| r.at))
    }

    /// Compares the keys and deletes from Redshift those the source no longer has.
    pub(super) async fn reconcile(
        &self,
        run: &TableRun<'_>,
        keys: (KeyTable, KeyTable),
        report: &mut Report,
    ) -> Result<(), SyncError> {
        let table = run.table;
        let source = &table.source;
        let (source_keys, redshift_keys) = keys;
        // A fresh lease for the comparison (a long one may still outlast it: then the
        // fence before COMMIT fails and nothing is deleted).
        self.fence(table).await?;
        // The snapshot: taken by the first query after BEGIN, after every chunk of this
        // run committed.
        self.source
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| {
                super::query_error(source, Role::Source, "starting the key comparison", &e)
            })?;
        let compared = async {
            let src = Db {
                client: &self.source,
                table: source_keys,
                role: Role::Source,
            };
            // Pins the snapshot before Redshift is read (the boundaries query would, too).
            src.client.batch_execute("SELECT 1").await.map_err(|e| {
                super::query_error(source, Role::Source, "starting the key comparison", &e)
            })?;
            self.observe(source, Step::KeysFixed, 0, 0)?;
            let rs = Db {
                client: &self.redshift,
                table: redshift_keys.clone(),
                role: Role::Destination,
            };
            // Past the invocation's deadline no batch of ranges starts: a comparison
            // longer than the time left stops with what it found, instead of Lambda
            // ending it with the lease held.
            let tuning = Tuning {
                stop_at: self.options.deadline,
                ..Tuning::default()
            };
            compare(&src, &rs, &Range::default(), tuning)
                .await
                .map_err(|e| super::query_error(source, e.role, "comparing the keys", &e.error))
        }
        .await;
        let _ = self.source.batch_execute("COMMIT").await;
        let diff = compared?;
        // Every key Redshift holds looks gone while the source has rows: the keys do not
        // compare (a key printed differently on one side), not a mass delete. Deleting
        // would empty the table.
        if diff.redshift_rows > 0
            && diff.source_rows > 0
            && diff.only_redshift.len() as u64 == diff.redshift_rows
        {
            return Err(SyncError::Other {
                table: source.clone(),
                message: format!(
                    "deletes: reconcile found none of Redshift's {} keys at the source, which holds {} rows: the keys do not compare between the databases, so nothing was deleted; check the key columns' types, or set deletes: keep",
                    diff.redshift_rows, diff.source_rows
                ),
            });
        }
        report.reconcile = Some(ReconcileReport {
            ranges: diff.ranges,
            keys_transferred: diff.keys_transferred,
            missing: diff.only_source.len() as u64,
            unfinished: diff.unfinished,
        });
        let deleted = self
            .delete_keys(table, &redshift_keys, &diff.only_redshift)
            .await?;
        report.rows_deleted = deleted;
        if diff.unfinished {
            // Not recorded as done: the next run (due at once) compares again.
            tracing::warn!(
                deleted,
                ranges = diff.ranges,
                keys_transferred = diff.keys_transferred,
                "reconcile stopped at the deadline, part of the table compared; the next run compares it again"
            );
            return Ok(());
        }
        tracing::info!(
            deleted,
            ranges = diff.ranges,
            keys_transferred = diff.keys_transferred,
            missing = diff.only_source.len(),
            "reconciled"
        );
        let doc = serde_json::to_value(Reconciled {
            at: Utc::now(),
            deleted,
        })
        .expect("reconciles serialize");
        self.commit_document(table, RECONCILED, &doc, 0, 0).await
    }

    /// Deletes `keys` from Redshift in one transaction, fenced by the lease; the rows
    /// deleted.
    async fn delete_keys(
        &self,
        table: &Table,
        redshift_keys: &KeyTable,
        keys: &[Key],
    ) -> Result<u64, SyncError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let source = &table.source;
        let doing = "deleting the rows gone from the source";
        let result = async {
            self.redshift
                .batch_execute("BEGIN")
                .await
                .map_err(|e| redshift_error(source, doing, &e))?;
            let mut deleted = 0;
            for batch in keys.chunks(DELETE_BATCH) {
                deleted += self
                    .redshift
                    .execute(redshift_keys.delete(batch).as_str(), &[])
                    .await
                    .map_err(|e| redshift_error(source, doing, &e))?;
            }
            self.observe(source, Step::Reconciling, 0, deleted)?;
            // The fence: only the lease's holder deletes.
            self.fence(table).await?;
            self.redshift
                .batch_execute("COMMIT")
                .await
                .map_err(|e| redshift_error(source, doing, &e))?;
            Ok(deleted)
        }
        .await;
        if result.is_err() {
            let _ = self.redshift.batch_execute("ROLLBACK").await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_reconciles_when_its_interval_has_passed() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let now = at("2026-12-04T12:00:00Z");
        assert!(due(None, 3600, now));
        assert!(due(Some(at("2026-12-04T11:00:00Z")), 3600, now));
        assert!(!due(Some(at("2026-12-04T11:00:01Z")), 3600, now));
        assert!(due(Some(now), 0, now), "0: every run");
    }
}
