//! FULL_DATA_SYNC: every chunk goes into a new copy of the table, which replaces the old
//! one in one transaction once complete.

use super::{redshift_error, Ctx, Step, SyncError};
use crate::config::TableRef;

impl Ctx<'_> {
    /// Creates the empty new copy (`<table>__rsl_new`, like the destination).
    pub(super) async fn prepare_new_copy(
        &self,
        source: &TableRef,
        destination: &TableRef,
    ) -> Result<TableRef, SyncError> {
        let new = TableRef::new(
            &destination.schema,
            format!("{}__rsl_new", destination.name),
        );
        let q = |t: &TableRef| crate::quote::qualified(&t.schema, &t.name);
        self.redshift
            .batch_execute(&format!("DROP TABLE IF EXISTS {}", q(&new)))
            .await
            .map_err(|e| redshift_error(source, "preparing the new copy", &e))?;
        self.redshift
            .batch_execute(&format!(
                "CREATE TABLE {} (LIKE {})",
                q(&new),
                q(destination)
            ))
            .await
            .map_err(|e| redshift_error(source, "preparing the new copy", &e))?;
        Ok(new)
    }

    /// Replaces `destination` by `new` in one transaction: readers see the old table or
    /// the new one, never a half-loaded one.
    pub(super) async fn swap(
        &self,
        source: &TableRef,
        destination: &TableRef,
        new: &TableRef,
        chunks: u64,
    ) -> Result<(), SyncError> {
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
}
