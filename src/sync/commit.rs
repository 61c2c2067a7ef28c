//! The commit protocol: after Redshift committed a chunk, the mark moves with the
//! snapshot it was read under, and the table's lease is renewed, in one DynamoDB
//! transaction that holds only while this run still owns the lease. A run that lost its
//! lease cannot move the mark; a crash before this write makes the next run read the
//! chunk again, which the merge makes harmless.

use chrono::Utc;

use super::mark::Mark;
use super::{Ctx, Step, SyncError, MARK};
use crate::config::Table;

impl Ctx<'_> {
    /// Stores `mark` (cursor, snapshot, catch-up progress, checkpoints) and renews the
    /// lease.
    pub(super) async fn commit_mark(
        &self,
        table: &Table,
        mark: &Mark,
        chunk: u64,
        rows: u64,
    ) -> Result<(), SyncError> {
        let doc = serde_json::to_value(mark).expect("marks serialize");
        self.commit_document(table, MARK, &doc, chunk, rows).await
    }

    /// Stores `doc` under `attribute` of the table's item and renews the lease, in one
    /// DynamoDB transaction that holds only while this invocation owns the lease.
    pub(super) async fn commit_document(
        &self,
        table: &Table,
        attribute: &str,
        doc: &serde_json::Value,
        chunk: u64,
        rows: u64,
    ) -> Result<(), SyncError> {
        let now = Utc::now();
        self.app
            .store
            .put_table_document_leased(
                &self.job.name,
                &table.source,
                &self.owner,
                attribute,
                doc,
                now,
                now + chrono::Duration::seconds(self.timing.lease_seconds as i64),
            )
            .await
            .map_err(super::state_error(table))?;
        if rows > 0 {
            self.observe(&table.source, Step::MarkMoved, chunk, rows)?;
        }
        Ok(())
    }

    /// Renews the lease, only while this invocation still holds it: before every
    /// Redshift COMMIT, and after a chunk that does not move the mark (a lookback re-read,
    /// a full copy's chunk), so a long run keeps it.
    pub(super) async fn fence(&self, table: &Table) -> Result<(), SyncError> {
        let now = Utc::now();
        self.app
            .store
            .renew_lease(
                &self.job.name,
                &table.source,
                &self.owner,
                now,
                now + chrono::Duration::seconds(self.timing.lease_seconds as i64),
            )
            .await
            .map_err(super::state_error(table))
    }
}
