//! Schema changes at the source, picked up by the run: at the start of a table's run the
//! source's columns (already read from the catalog) are planned against the stored
//! decisions exactly as `setup` plans them. Safe changes (a column added, a `varchar`
//! widened) are applied and recorded; unsafe ones stop the table with setup's remedy.
//! Decisions about keys and mode are setup's alone: when setup would now decide them
//! differently, the run says so and keeps the stored ones.

use super::{Ctx, SyncError};
use crate::config::Table;
use crate::secrets::Role;
use crate::setup::plan::{self, Decisions, Existing};
use crate::source::schema::SourceTable;

impl Ctx<'_> {
    /// The decisions to load with: `None` when the stored ones still hold, else the new
    /// ones (stored) and the changes applied.
    pub(super) async fn evolve(
        &self,
        table: &Table,
        stored: &Decisions,
        source: &SourceTable,
    ) -> Result<Option<(Decisions, Vec<String>)>, SyncError> {
        let other = |message: String| SyncError::Other {
            table: table.source.clone(),
            message,
        };
        let redshift = |reason: String| SyncError::Query {
            table: table.source.clone(),
            side: Role::Destination,
            reason,
        };
        let present = crate::warehouse::table_columns(&self.redshift, &stored.destination)
            .await
            .map_err(|e| redshift(format!("reading the table's columns failed: {}", e.reason)))?
            .ok_or_else(|| {
                // Told as the same failure of a query would be (dropped behind our back).
                redshift(crate::diagnose::explain(
                    Role::Destination,
                    &crate::diagnose::Facts {
                        code: Some("42P01".into()),
                        message: format!(
                            "relation \"{}.{}\" does not exist",
                            stored.destination.schema, stored.destination.name
                        ),
                        ..Default::default()
                    },
                ))
            })?;
        let planned = plan::plan_table(
            &self.job.destination.schema,
            table,
            source,
            Some(stored),
            &Existing::Columns(present),
        )
        .map_err(|e| SyncError::Plan(Box::new(e)))?;
        let d = &planned.decisions;
        if d.copy_mode.value != stored.copy_mode.value
            || d.primary_key.value != stored.primary_key.value
            || d.updated_key.value != stored.updated_key.value
            || d.destination != stored.destination
        {
            tracing::warn!(
                copy_mode = %d.copy_mode.value,
                primary_key = ?d.primary_key.value,
                updated_key = ?d.updated_key.value,
                "setup would now decide this table's keys or mode differently; the run keeps the stored ones: run `redshift-loader setup` to review"
            );
            return Ok(None);
        }
        if planned.statements.is_empty() && d == stored {
            return Ok(None);
        }
        // One statement at a time, outside a transaction block, as setup does.
        for statement in &planned.statements {
            crate::warehouse::execute(&self.redshift, statement)
                .await
                .map_err(|e| other(format!("applying a schema change failed: {e}")))?;
        }
        let doc = serde_json::to_value(d).expect("decisions always serialize");
        self.app
            .store
            .put_table_document(
                &self.job.name,
                &table.source,
                crate::setup::DECISIONS,
                &doc,
                chrono::Utc::now(),
            )
            .await
            .map_err(super::state_error(table))?;
        if !planned.changes.is_empty() {
            tracing::info!(changes = ?planned.changes, "schema changes at the source applied");
        }
        Ok(Some((planned.decisions, planned.changes)))
    }
}
