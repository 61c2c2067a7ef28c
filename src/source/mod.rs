//! The PostgreSQL side: the pinned session every read runs in, introspection,
//! extraction.

pub mod extract;
pub mod query;
pub mod schema;
pub mod snapshot;

use crate::connect::{self, ConnectError};
use crate::secrets::{DbConfig, Role};

/// Session settings that make the source's text output stable and Redshift-friendly:
/// timestamps in UTC and ISO, floats with every digit, reads that cannot write, and a
/// bound on how long one statement may hold the production database.
pub const SESSION_SETTINGS: &str = "SET TimeZone = 'UTC'; \
     SET DateStyle = 'ISO, YMD'; \
     SET IntervalStyle = 'postgres'; \
     SET extra_float_digits = 3; \
     SET bytea_output = 'hex'; \
     SET default_transaction_read_only = on; \
     SET application_name = 'redshift-loader'";

/// Opens a source session with [`SESSION_SETTINGS`] applied.
pub async fn open(db: &DbConfig) -> Result<tokio_postgres::Client, ConnectError> {
    let client = connect::connect(Role::Source, db).await?;
    client
        .batch_execute(SESSION_SETTINGS)
        .await
        .map_err(|e| connect::connect_error(Role::Source, &db.describe(), &e))?;
    Ok(client)
}

/// Which snapshot functions the source has (by its version); the reason when it does
/// not say.
pub async fn snapshot_fns(
    source: &tokio_postgres::Client,
) -> Result<snapshot::SnapshotFns, String> {
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
    Ok(snapshot::SnapshotFns::for_version(version))
}
