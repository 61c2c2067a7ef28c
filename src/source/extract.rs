//! One chunk out of the source: `COPY (SELECT ...) TO STDOUT` in a REPEATABLE READ READ
//! ONLY transaction, streamed through the encoder into a [`ChunkUpload`]. Bytes flow
//! through in blocks of whole rows, which the upload deals to its objects, compresses
//! and stores while the next block is read and encoded; nothing holds the chunk.

use futures_util::StreamExt;

use crate::encode::{EncodeError, EncodeStats, Encoder};
use crate::stage::upload::{ChunkUpload, Staged, UploadError};
use crate::warehouse::types::Load;

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("reading from the source failed: {0}")]
    Source(String),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Upload(#[from] UploadError),
}

/// What one chunk produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub stats: EncodeStats,
    /// The chunk's objects (none when it had no rows).
    pub staged: Staged,
    /// The cursor columns of the chunk's last row (`None` for NULL); empty when the
    /// chunk had no rows.
    pub last: Vec<Option<String>>,
    /// The snapshot the chunk was read under (`xmin:xmax:xip`), when asked for.
    pub snapshot: Option<String>,
}

/// Streams `copy_sql` (a `COPY (...) TO STDOUT (FORMAT csv, NULL '\N')`) into `upload`.
/// `loads` has one entry per column; `keep` names the cursor columns to remember;
/// `row_number` appends each row's position in the chunk as a last column. `flags`: the
/// SELECT ends with one flag column per entry, true where that column's value was
/// replaced ([`crate::encode::Encoder::with_flags`]).
/// `snapshot_sql` (a query returning the transaction's snapshot as text) runs first in
/// the transaction, so the COPY reads under exactly the snapshot it returns. On error the
/// upload is aborted.
#[allow(clippy::too_many_arguments)]
pub async fn extract_chunk(
    source: &tokio_postgres::Client,
    snapshot_sql: Option<&str>,
    copy_sql: &str,
    loads: Vec<Load>,
    keep: Vec<usize>,
    flags: Vec<usize>,
    row_number: bool,
    mut upload: ChunkUpload,
) -> Result<Extracted, ExtractError> {
    let source_error = |e: tokio_postgres::Error| {
        ExtractError::Source(crate::diagnose::explain_error(
            crate::secrets::Role::Source,
            &e,
        ))
    };
    let mut encoder = Encoder::new(loads, keep).with_flags(flags);
    if row_number {
        encoder = encoder.with_row_number();
    }
    let result: Result<Option<String>, ExtractError> = async {
        source
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(source_error)?;
        // The transaction's first statement takes its snapshot.
        let snapshot = match snapshot_sql {
            Some(sql) => source
                .simple_query(sql)
                .await
                .map_err(source_error)?
                .into_iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                    _ => None,
                }),
            None => None,
        };
        let stream = source.copy_out(copy_sql).await.map_err(source_error)?;
        futures_util::pin_mut!(stream);
        let block_bytes = upload.block_bytes();
        let mut block = upload.empty_block();
        while let Some(bytes) = stream.next().await {
            let bytes = bytes.map_err(source_error)?;
            encoder.feed(&bytes, &mut block)?;
            if block.len() >= block_bytes && encoder.at_row_start() {
                let next = upload.empty_block();
                upload
                    .write_rows(std::mem::replace(&mut block, next))
                    .await?;
            }
        }
        encoder.finish(&mut block)?;
        // An empty chunk stages no object at all.
        upload.write_rows(block).await?;
        source.batch_execute("COMMIT").await.map_err(source_error)?;
        Ok(snapshot)
    }
    .await;
    let snapshot = match result {
        Ok(snapshot) => snapshot,
        Err(e) => {
            let _ = source.batch_execute("ROLLBACK").await;
            upload.abort().await;
            return Err(e);
        }
    };
    let stats = encoder.stats().clone();
    let last = if stats.rows > 0 {
        encoder.last_kept()
    } else {
        Vec::new()
    };
    let staged = upload.finish().await?;
    Ok(Extracted {
        stats,
        staged,
        last,
        snapshot,
    })
}
