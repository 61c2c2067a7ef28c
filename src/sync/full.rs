//! FULL_DATA_SYNC: every chunk goes into a new copy of the table, staged first; once the
//! copy is complete the table's *contents* are replaced by it in one transaction
//! (`DELETE` + `INSERT ... SELECT`), so readers see the old rows or the new, and the table
//! keeps its identity: its grants and the views on it stay. A copy larger than one
//! invocation continues in the next (the copy and its cursor survive); the replace
//! happens once, when it is complete.

use serde::{Deserialize, Serialize};

use super::{redshift_error, Ctx, Snapshot, Step, SyncError};
use crate::config::{Table, TableRef};

/// The `TABLE#` item attribute holding a full copy in progress.
pub const FULL_COPY: &str = "full_copy";

/// The `TABLE#` item attribute naming the source snapshot of the last full copy that
/// replaced the table's rows (its first read's: every later read saw at least as much).
/// `verify` tells the rows changed since apart with it.
pub const FULL_COPIED: &str = "full_copied";

/// The last complete full copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullCopied {
    /// Its first read's snapshot; `None` when the source gave none (a view).
    pub snapshot: Option<Snapshot>,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// A full copy in progress, stored after each of its chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullCopy {
    /// The run filling it (its continuations go on with it).
    pub run_id: String,
    /// The new copy's name, in the destination's schema.
    pub table: String,
    /// The primary key of the last row copied.
    pub cursor: Vec<String>,
    /// The snapshot of the copy's first read (older progress has none).
    #[serde(default)]
    pub snapshot: Option<Snapshot>,
}

impl Ctx<'_> {
    /// Where this run's full copy goes, and where it starts: the copy a previous hop of
    /// the same run left (its cursor, and its first read's snapshot), else a new empty
    /// one, made after dropping the copies earlier runs left (a crash, a lost lease):
    /// this run holds the table's lease, so no other run may still be filling one.
    pub(super) async fn full_copy_target(
        &self,
        table: &Table,
        destination: &TableRef,
    ) -> Result<(TableRef, Option<FullCopy>), SyncError> {
        let stored: Option<FullCopy> = self
            .app
            .store
            .get_table_document(&self.job.name, &table.source, FULL_COPY)
            .await
            .map_err(super::state_error(table))?
            .and_then(|doc| serde_json::from_value(doc).ok());
        if let Some(progress) = stored.filter(|p| p.run_id == self.options.run_id) {
            let copy = TableRef::new(&destination.schema, &progress.table);
            let exists = crate::warehouse::table_columns(&self.redshift, &copy)
                .await
                .map_err(|e| SyncError::Other {
                    table: table.source.clone(),
                    message: format!("looking for the full copy in progress failed: {e}"),
                })?
                .is_some();
            if exists {
                tracing::info!(copy = %copy, "going on with the full copy in progress");
                return Ok((copy, Some(progress)));
            }
        }
        let source = &table.source;
        let q = |t: &TableRef| crate::quote::qualified(&t.schema, &t.name);
        let prefix = new_copy_prefix(&destination.name);
        let leftovers = self
            .redshift
            .query(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 AND position($2 in tablename) = 1",
                &[&destination.schema, &prefix],
            )
            .await
            .map_err(|e| redshift_error(source, "looking for earlier new copies", &e))?;
        for row in leftovers {
            let name: String = row.get(0);
            self.redshift
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS {}",
                    q(&TableRef::new(&destination.schema, &name))
                ))
                .await
                .map_err(|e| redshift_error(source, "dropping an earlier new copy", &e))?;
        }
        let new = TableRef::new(
            &destination.schema,
            new_copy_name(&destination.name, &self.options.run_id),
        );
        self.redshift
            .batch_execute(&format!(
                "CREATE TABLE {} (LIKE {})",
                q(&new),
                q(destination)
            ))
            .await
            .map_err(|e| redshift_error(source, "preparing the new copy", &e))?;
        Ok((new, None))
    }

    /// Stores how far the full copy got (with the lease, like a mark), and its first
    /// read's snapshot.
    pub(super) async fn commit_full_progress(
        &self,
        table: &Table,
        copy: &TableRef,
        cursor: &[String],
        snapshot: Option<&Snapshot>,
        chunk: u64,
        rows: u64,
    ) -> Result<(), SyncError> {
        let progress = FullCopy {
            run_id: self.options.run_id.clone(),
            table: copy.name.clone(),
            cursor: cursor.to_vec(),
            snapshot: snapshot.cloned(),
        };
        let doc = serde_json::to_value(&progress).expect("progress serializes");
        self.commit_document(table, FULL_COPY, &doc, chunk, rows)
            .await
    }

    /// Replaces the destination's rows by the complete copy's, in one transaction that
    /// commits only while this run holds the lease; then records the copy's snapshot
    /// (`snapshot`, its first read's), drops the copy and forgets its progress. Should
    /// it stop between the two, the snapshot recorded is an earlier copy's: older, it
    /// only calls more rows changed since.
    pub(super) async fn replace_contents(
        &self,
        table: &Table,
        destination: &TableRef,
        copy: &TableRef,
        snapshot: Option<&Snapshot>,
        chunks: u64,
    ) -> Result<(), SyncError> {
        let source = &table.source;
        let q = |t: &TableRef| crate::quote::qualified(&t.schema, &t.name);
        let replace = format!(
            "BEGIN; DELETE FROM {dest}; INSERT INTO {dest} SELECT * FROM {copy}",
            dest = q(destination),
            copy = q(copy),
        );
        let result = async {
            self.redshift
                .batch_execute(&replace)
                .await
                .map_err(|e| redshift_error(source, "replacing the table's rows", &e))?;
            self.observe(source, Step::Swapping, chunks, 0)?;
            // The fence: only the lease's holder replaces.
            self.fence(table).await?;
            self.redshift
                .batch_execute("COMMIT")
                .await
                .map_err(|e| redshift_error(source, "replacing the table's rows", &e))
        }
        .await;
        if result.is_err() {
            let _ = self.redshift.batch_execute("ROLLBACK").await;
            return result;
        }
        let copied = FullCopied {
            snapshot: snapshot.cloned(),
            at: chrono::Utc::now(),
        };
        let doc = serde_json::to_value(&copied).expect("full copies serialize");
        self.commit_document(table, FULL_COPIED, &doc, chunks, 0)
            .await?;
        if let Err(e) = self
            .redshift
            .batch_execute(&format!("DROP TABLE IF EXISTS {}", q(copy)))
            .await
        {
            // The next run drops it.
            tracing::warn!(copy = %copy, error = %crate::diagnose::explain_error(crate::secrets::Role::Destination, &e), "dropping the full copy failed");
        }
        self.app
            .store
            .remove_table_attributes(&self.job.name, source, &[FULL_COPY])
            .await
            .map_err(super::state_error(table))
    }
}

/// The start of every new copy's name: `<table>__rsl_new_`, with the table's name cut
/// (on a character boundary) so that a whole name fits Redshift's 127 bytes.
fn new_copy_prefix(table: &str) -> String {
    const SUFFIX: &str = "__rsl_new_";
    const ID: usize = 8;
    let mut end = table.len().min(127 - SUFFIX.len() - ID);
    while !table.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{SUFFIX}", &table[..end])
}

/// A run's new copy: the prefix and 8 hex digits of the run id (the hops of one run
/// fill the same copy).
fn new_copy_name(table: &str, run_id: &str) -> String {
    let digest = run_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!("{}{:08x}", new_copy_prefix(table), digest as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_copies_are_named_per_run_and_fit_127_bytes() {
        let a = new_copy_name("orders", "lambda-1.0a1b2c3d");
        let b = new_copy_name("orders", "lambda-1.0a1b2c3e");
        assert!(a.starts_with("orders__rsl_new_") && a.len() == 24, "{a}");
        assert_ne!(a, b);
        assert_eq!(a, new_copy_name("orders", "lambda-1.0a1b2c3d"));
        let long = "é".repeat(100);
        let name = new_copy_name(&long, "x");
        assert!(name.len() <= 127, "{}", name.len());
        assert!(name.starts_with(&new_copy_prefix(&long)));
    }
}
