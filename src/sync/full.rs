//! FULL_DATA_SYNC: every chunk goes into a new copy of the table, which replaces the old
//! one in one transaction once complete.

use super::{redshift_error, Ctx, Step, SyncError};
use crate::config::TableRef;

impl Ctx<'_> {
    /// Creates the empty new copy, named for this invocation (`<table>__rsl_new_<id>`),
    /// after dropping the new copies earlier runs left (a crash, a lost lease): this run
    /// holds the table's lease, so no other run may still be filling one.
    pub(super) async fn prepare_new_copy(
        &self,
        source: &TableRef,
        destination: &TableRef,
    ) -> Result<TableRef, SyncError> {
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
            new_copy_name(&destination.name, &self.owner),
        );
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
        table: &crate::config::Table,
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
            "ALTER TABLE {new} RENAME TO {dest_ident}; DROP TABLE {old}",
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
                .map_err(|e| redshift_error(source, "swapping in the new table", &e))?;
            // The fence: only the lease's holder swaps.
            self.fence(table).await?;
            self.redshift
                .batch_execute("COMMIT")
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

/// This invocation's new copy: the prefix and 8 hex digits of the owner.
fn new_copy_name(table: &str, owner: &str) -> String {
    let digest = owner.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!("{}{:08x}", new_copy_prefix(table), digest as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_copies_are_named_per_invocation_and_fit_127_bytes() {
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
