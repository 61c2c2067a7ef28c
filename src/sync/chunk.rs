//! The chunk executor: one chunk from the source into Redshift. Extract (`COPY (SELECT
//! ...) TO STDOUT` under a recorded snapshot) → encode → compress into one S3 object
//! per slice of the cluster → manifest →
//! `COPY` into a stage → merge, in one Redshift transaction. The mark is not its
//! business: the caller moves it once this returns.

use super::mark::Snapshot;
use super::plan::{Pass, PassKind};
use super::table::TableRun;
use super::{Ctx, RedshiftMs, Report, Step, SyncError};
use crate::source::extract::extract_chunk;
use crate::source::query::{self, Chunk};
use crate::source::snapshot::Unseen;
use crate::stage::key;
use crate::stage::upload::ChunkUpload;
use crate::warehouse::load::{load_chunk, Landed, LoadError, Merge};
use crate::warehouse::sql::CopyFrom;

/// What one chunk did.
pub(super) struct Done {
    pub rows: u64,
    /// The cursor values of its last row (empty when it had none).
    pub last: Vec<String>,
    /// The snapshot it was read under (sources with `xmin`).
    pub snapshot: Option<Snapshot>,
}

impl Ctx<'_> {
    /// Reads at most `budget` rows of `pass` after `after`, and loads them.
    pub(super) async fn chunk(
        &self,
        run: &TableRun<'_>,
        pass: &Pass,
        after: Option<&[String]>,
        budget: u64,
        chunk_no: u64,
        report: &mut Report,
    ) -> Result<Done, SyncError> {
        let table = &run.table.source;
        let prefix = key::chunk_prefix(
            &self.app.settings.staging_prefix,
            &self.job.name,
            table,
            &self.owner,
            chunk_no,
        );
        let sql = query::copy_out(&query::chunk_select(&Chunk {
            table,
            select: &run.select,
            keys: &run.keys,
            after,
            floor: pass.floor.as_ref().map(|f| f.as_query()),
            upto: pass.upto.as_deref(),
            unseen: pass.unseen.as_ref().map(|snapshot| Unseen {
                snapshot,
                fns: self.fns,
            }),
            unseen_after: pass.unseen_after.as_ref().map(|(split, snapshot)| {
                (
                    split.as_slice(),
                    Unseen {
                        snapshot,
                        fns: self.fns,
                    },
                )
            }),
            limit: (!run.keys.is_empty()).then_some(budget),
        }));
        let codec = self.app.settings.staging_compression;
        let upload = ChunkUpload::to_s3(
            self.app.clients.s3.clone(),
            &self.bucket,
            &prefix,
            self.files_per_chunk,
            codec,
        );
        // Merged on the primary key whenever there is one, full copies too: a chunk read
        // again (a retried hop that died after Redshift committed it) merges instead of
        // landing twice; a new chunk is appended without a DELETE all the same.
        let upsert = !run.pk_redshift.is_empty() && !run.keys.is_empty();
        let extracted = extract_chunk(
            &self.source,
            run.has_xmin.then(|| self.fns.snapshot_sql()),
            &sql,
            run.loads.clone(),
            run.keep.clone(),
            run.flags.clone(),
            // The row's place in the chunk, for deduplication (ROW_ORDER).
            upsert,
            upload,
        )
        .await
        .map_err(|source| SyncError::Extract {
            table: table.clone(),
            source: Box::new(source),
        })?;
        let snapshot = match extracted.snapshot.as_deref() {
            None => None,
            Some(text) => Some(Snapshot::parse(text).ok_or_else(|| SyncError::Other {
                table: table.clone(),
                message: format!("the source's snapshot {text:?} is not xmin:xmax:xip"),
            })?),
        };
        let rows = extracted.stats.rows;
        let staged = &extracted.staged;
        let mut keys: Vec<String> = staged.objects.iter().map(|o| o.key.clone()).collect();
        if rows == 0 {
            // No rows, no object: nothing was staged.
            self.cleanup(&keys).await;
            report.empty_reads += 1;
            return Ok(Done {
                rows,
                last: Vec::new(),
                snapshot,
            });
        }
        if let Some(o) = &self.options.observer {
            o.staged(table, chunk_no, staged.raw_bytes(), staged.bytes());
        }
        self.observe(table, Step::Extracted, chunk_no, rows)?;
        let manifest_key = key::manifest_key(&prefix);
        let entries: Vec<(String, u64)> = staged
            .objects
            .iter()
            .map(|o| (o.key.clone(), o.bytes))
            .collect();
        let manifest = key::manifest(&self.bucket, &entries);
        keys.push(manifest_key.clone());
        self.app
            .clients
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(&manifest_key)
            .body(manifest.into_bytes().into())
            .send()
            .await
            .map_err(|e| SyncError::Other {
                table: table.clone(),
                message: format!(
                    "staging the manifest failed: {}",
                    crate::aws_error::AwsError::of(
                        "PutObject",
                        crate::aws_error::Resource::Object {
                            bucket: &self.bucket,
                            key: &manifest_key,
                        },
                        &e
                    )
                ),
            })?;
        self.observe(table, Step::Staged, chunk_no, rows)?;
        let manifest_url = format!("s3://{}/{manifest_key}", self.bucket);
        let from = CopyFrom {
            manifest_url: &manifest_url,
            iam_role: &self.iam_role,
            region: None,
            compression: codec,
        };
        let merge = if upsert {
            Merge::Upsert {
                key: &run.pk_redshift,
            }
        } else {
            Merge::Append
        };
        let staged = format!("s3://{}/{prefix}/", self.bucket);
        // Inside the transaction, right before COMMIT: an observer that says stop rolls
        // the chunk back (as a crash there would), and so does a lease that is no longer
        // ours (the fence: a run that lost its table cannot commit into it).
        let before_commit = async {
            let stop = |e: SyncError| -> crate::warehouse::load::BeforeCommitError { Box::new(e) };
            self.observe(table, Step::Copied, chunk_no, rows)
                .map_err(stop)?;
            self.fence(run.table).await.map_err(stop)
        };
        let loaded = load_chunk(
            &self.redshift,
            &run.target,
            &run.defs,
            merge,
            &from,
            &staged,
            rows,
            self.app.settings.show_rejected_values,
            before_commit,
        )
        .await;
        match loaded {
            Ok(loaded) => {
                if loaded.landed == Landed::Appended {
                    report.chunks_appended += 1;
                }
                let ms = |d: std::time::Duration| d.as_millis() as u64;
                report.redshift_ms.add(RedshiftMs {
                    copy: ms(loaded.copy),
                    merge: ms(loaded.merge),
                    commit: ms(loaded.commit),
                });
            }
            Err(LoadError::Interrupted(e)) => {
                return Err(match e.downcast::<SyncError>() {
                    Ok(e) => *e,
                    Err(e) => SyncError::Other {
                        table: table.clone(),
                        message: e.to_string(),
                    },
                })
            }
            Err(e) => {
                self.cleanup(&keys).await;
                return Err(SyncError::Load(Box::new(e)));
            }
        }
        self.observe(table, Step::Committed, chunk_no, rows)?;
        report.rows += rows;
        match pass.kind {
            PassKind::CatchUp => report.late_rows += rows,
            PassKind::Lookback => report.reread_rows += rows,
            PassKind::Forward => {}
        }
        report.chunks += 1;
        report.bytes_staged += extracted.staged.bytes();
        report.values_truncated += extracted.stats.truncated.values().sum::<u64>();
        report.values_nulled += extracted.stats.nulled.values().sum::<u64>();
        for (column, n) in &extracted.stats.replaced {
            report.values_replaced += n;
            if let Some(def) = run.defs.get(*column) {
                *report.replaced.entry(def.name.clone()).or_default() += n;
            }
        }
        self.cleanup(&keys).await;
        Ok(Done {
            rows,
            last: extracted
                .last
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect(),
            snapshot,
        })
    }
}
