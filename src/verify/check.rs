//! `verify`: one table compared between the source and Redshift, keys and content, at a
//! cost proportional to the drift ([`super::compare`]).
//!
//! Rows changed after the table's mark are not drift: the next run loads them. They are
//! told apart exactly, the way the next run would find them: a key whose row, in the
//! comparison's snapshot, is after the mark's cursor, or at or behind it but written by
//! a transaction the mark's snapshot could not see (a late commit), is *pending*. For
//! a full copy, a row written by a transaction the last complete copy's first read could
//! not see, or deleted at the source, is pending.
//!
//! It takes no lease: the mark is read first, then Redshift's snapshot is taken, then
//! the source's ([`Prepared`] says why that order), so a run committing meanwhile is
//! never drift.

use serde::Serialize;

use super::compare::{compare, KeyDiff, Tuning};
use super::content::{canonical, row_text, Canonical};
use super::sql::{Dialect, Key};
use super::{key_tables, Db};
use crate::config::{Job, Table, TableRef};
use crate::secrets::Role;
use crate::setup::Decisions;
use crate::source::query::typed_literal;
use crate::source::snapshot::{SnapshotFns, Unseen};
use crate::sync::{FullCopied, Mark};

/// Keys per query when telling pending rows apart.
const BATCH: usize = 500;

/// What `verify` found for one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub table: String,
    /// Rows at the source that Redshift lacks (lost, or never loaded), not pending.
    pub only_source: Drift,
    /// Rows in Redshift the source no longer has (deleted at the source).
    pub only_redshift: Drift,
    /// Rows on both sides whose content differs, not pending.
    pub differ: Drift,
    /// Keys Redshift holds more than once (a row loaded twice).
    pub duplicated: Drift,
    /// Rows changed after the mark (or committed late behind it): the next run loads
    /// them, so they are not drift.
    pub pending: u64,
    /// Columns whose content is not compared, and why.
    pub not_compared: Vec<String>,
    /// Key ranges compared, and keys shipped from both databases.
    pub ranges: u64,
    pub keys_transferred: u64,
    /// Stopped at its deadline (in Lambda) with ranges left: what it lists was found,
    /// but the table is not known to be equal.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unfinished: bool,
}

/// A count, and up to `examples` keys (`col=value, ...`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub count: u64,
    pub examples: Vec<String>,
}

/// One table's outcome as `verify --json` and the Lambda's result show it.
pub fn outcome_json(v: &Result<Verdict, VerifyError>) -> serde_json::Value {
    match v {
        Ok(v) => {
            serde_json::json!({"table": v.table, "ok": true, "drift": v.drift(), "verdict": v})
        }
        Err(e) => serde_json::json!({"table": e.table, "ok": false, "error": e.reason}),
    }
}

impl Verdict {
    pub fn drift(&self) -> bool {
        self.only_source.count
            + self.only_redshift.count
            + self.differ.count
            + self.duplicated.count
            > 0
    }
}

/// Why a table could not be verified.
#[derive(Debug, thiserror::Error)]
#[error("table {table}: {reason}")]
pub struct VerifyError {
    pub table: TableRef,
    pub reason: String,
}

/// What a table's rows are told pending by: an incremental table's mark, a full
/// table's last complete copy (each read before [`prepare`]).
#[derive(Debug, Clone, Copy)]
pub enum Since<'a> {
    Mark(Option<&'a Mark>),
    FullCopy(Option<&'a FullCopied>),
}

/// Compares `table` of `job`.
pub async fn verify_table(
    source_db: &crate::secrets::DbConfig,
    destination_db: &crate::secrets::DbConfig,
    table: &Table,
    decisions: &Decisions,
    since: Since<'_>,
    examples: usize,
    stop_at: Option<std::time::Instant>,
) -> Result<Verdict, VerifyError> {
    prepare(source_db, destination_db, table, decisions)
        .await?
        .finish(decisions, since, examples, stop_at)
        .await
}

/// A table's comparison with both snapshots taken: Redshift's first, then the
/// source's. With the mark read before both, every row Redshift holds was loaded from
/// a source snapshot no later than the comparison's, and every change the comparison
/// sees at the source that Redshift lacks is one the mark calls pending (a run that
/// commits after the mark was read only moves the mark forward, which shrinks what is
/// pending). Taken the other way round, a run committing between the two snapshots
/// would show its rows in Redshift newer than at the source: drift that is not there.
pub struct Prepared<'a> {
    table: &'a Table,
    /// The source is a table (its rows carry `xmin`), not a view.
    has_xmin: bool,
    source: tokio_postgres::Client,
    redshift: tokio_postgres::Client,
    pg: super::sql::KeyTable,
    rs: super::sql::KeyTable,
    verdict: Verdict,
}

/// Opens both sides of `table`'s comparison: connects, checks that the cluster prints
/// the probed types as the source's canonical form does, and takes the snapshots
/// (Redshift's, then the source's). Read the table's mark before calling it.
pub async fn prepare<'a>(
    source_db: &crate::secrets::DbConfig,
    destination_db: &crate::secrets::DbConfig,
    table: &'a Table,
    decisions: &Decisions,
) -> Result<Prepared<'a>, VerifyError> {
    let err = Errors(&table.source);
    let (fail, query) = (|r| err.fail(r), |role, doing| err.query(role, doing));
    let source = crate::source::open(source_db)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let redshift = crate::warehouse::open(destination_db)
        .await
        .map_err(|e| fail(e.to_string()))?;
    // Floats print to 6 / 15 significant digits on both sides.
    const FLOATS: &str = "SET extra_float_digits TO 0";
    source
        .batch_execute(FLOATS)
        .await
        .map_err(query(Role::Source, "setting the float format"))?;
    redshift
        .batch_execute(FLOATS)
        .await
        .map_err(query(Role::Destination, "setting the float format"))?;
    let schema = crate::source::schema::introspect(&source, &table.source, &table.column_casts)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let live: Vec<_> = decisions.live_columns().collect();
    let key = super::key_of(table, decisions, &schema);
    let (mut pg, mut rs) = key_tables(&table.source, &decisions.destination, &key).map_err(fail)?;
    let mut verdict = Verdict {
        table: table.source.to_string(),
        ..Verdict::default()
    };
    let mut compared = Vec::new();
    for c in &live {
        match canonical(c) {
            Canonical::Compared {
                source,
                redshift,
                probe,
            } => compared.push((c, source, redshift, probe)),
            Canonical::NotCompared(why) => verdict
                .not_compared
                .push(format!("{} ({why})", crate::quote::ident(&c.name))),
        }
    }
    let probes: Vec<(usize, &(String, String))> = compared
        .iter()
        .enumerate()
        .flat_map(|(i, (_, _, _, probe))| probe.iter().map(move |p| (i, p)))
        .collect();
    let mut differs = std::collections::BTreeMap::new();
    if !probes.is_empty() {
        let select = |side: fn(&(String, String)) -> &String| {
            format!(
                "SELECT {}",
                probes
                    .iter()
                    .map(|(_, p)| side(p).as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let at_source = one_row(&source, &select(|p| &p.0))
            .await
            .map_err(query(Role::Source, "printing the probe values"))?;
        let in_redshift = one_row(&redshift, &select(|p| &p.1))
            .await
            .map_err(query(Role::Destination, "printing the probe values"))?;
        for (((i, _), want), got) in probes.iter().zip(&at_source).zip(&in_redshift) {
            if want != got {
                differs.entry(*i).or_insert_with(|| {
                    format!(
                        "the cluster prints a probe value as {} where the source's canonical form is {}",
                        got.as_deref().unwrap_or("NULL"),
                        want.as_deref().unwrap_or("NULL")
                    )
                });
            }
        }
    }
    let (mut pg_content, mut rs_content) = (Vec::new(), Vec::new());
    for (i, (c, source, redshift, _)) in compared.into_iter().enumerate() {
        match differs.remove(&i) {
            Some(why) => verdict
                .not_compared
                .push(format!("{} ({why})", crate::quote::ident(&c.name))),
            None => {
                pg_content.push(source);
                rs_content.push(redshift);
            }
        }
    }
    pg.content = row_text(Dialect::Postgres, &pg_content);
    rs.content = row_text(Dialect::Redshift, &rs_content);

    // Redshift's snapshot first (a read-only transaction's snapshot is taken by its
    // first read of a table), then the source's.
    redshift
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY; SELECT 1 FROM {} LIMIT 1",
            rs.table
        ))
        .await
        .map_err(query(Role::Destination, "starting the comparison"))?;
    source
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1 FROM {} LIMIT 1",
            pg.table
        ))
        .await
        .map_err(query(Role::Source, "starting the comparison"))?;
    Ok(Prepared {
        table,
        has_xmin: matches!(schema.kind, 'r' | 'p'),
        source,
        redshift,
        pg,
        rs,
        verdict,
    })
}

/// The errors of one table's comparison.
#[derive(Clone, Copy)]
struct Errors<'a>(&'a TableRef);

impl<'a> Errors<'a> {
    fn fail(self, reason: String) -> VerifyError {
        VerifyError {
            table: self.0.clone(),
            reason,
        }
    }

    /// For a query that failed `doing` something on `role`'s database.
    fn query(
        self,
        role: Role,
        doing: &'static str,
    ) -> impl FnOnce(tokio_postgres::Error) -> VerifyError + 'a {
        move |e| VerifyError {
            table: self.0.clone(),
            reason: format!(
                "{doing} on the {role} failed: {}",
                crate::diagnose::explain_error(role, &e)
            ),
        }
    }
}

/// The one row of `sql`, each value as text.
async fn one_row(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<Vec<Option<String>>, tokio_postgres::Error> {
    for m in client.simple_query(sql).await? {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            return Ok((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
        }
    }
    Ok(Vec::new())
}

impl Prepared<'_> {
    /// Compares the two snapshots, and tells pending rows apart by `since` (read
    /// before [`prepare`]); past `stop_at` it starts no more ranges (`unfinished`).
    pub async fn finish(
        self,
        decisions: &Decisions,
        since: Since<'_>,
        examples: usize,
        stop_at: Option<std::time::Instant>,
    ) -> Result<Verdict, VerifyError> {
        let Prepared {
            table,
            has_xmin,
            source,
            redshift,
            pg,
            rs,
            mut verdict,
        } = self;
        let err = Errors(&table.source);
        let (fail, query) = (|r| err.fail(r), |role, doing| err.query(role, doing));
        let result = async {
            let src = Db {
                client: &source,
                table: pg.clone(),
                role: Role::Source,
            };
            let dst = Db {
                client: &redshift,
                table: rs,
                role: Role::Destination,
            };
            let diff: KeyDiff = compare(
                &src,
                &dst,
                &crate::verify::sql::Range::default(),
                Tuning {
                    stop_at,
                    ..Tuning::default()
                },
            )
            .await
            .map_err(|e| query(e.role, "comparing")(e.error))?;
            verdict.unfinished = diff.unfinished;
            verdict.ranges = diff.ranges;
            verdict.keys_transferred = diff.keys_transferred;
            let full = decisions.copy_mode.value == crate::config::CopyMode::FullDataSync;
            let pending_sql = match since {
                Since::Mark(Some(m)) if !full => {
                    let fns = crate::source::snapshot_fns(&source).await.map_err(fail)?;
                    pending_condition(decisions, m, fns)
                }
                // A full copy holds the rows as its first read saw them (later reads saw
                // more): a row written since by a transaction that read could not see is
                // the next copy's. A view has no xmin to tell, and a table never copied
                // completely has no such snapshot: then every difference is.
                Since::FullCopy(Some(FullCopied {
                    snapshot: Some(s), ..
                })) if full && has_xmin => {
                    let fns = crate::source::snapshot_fns(&source).await.map_err(fail)?;
                    Some(Unseen { snapshot: s, fns }.condition())
                }
                // Never loaded: every source row is for the first run.
                _ => Some("TRUE".to_string()),
            };
            let mut pending = 0;
            let mut keep = |keys: Vec<Key>, pending_keys: &std::collections::HashSet<Key>| {
                let mut d = Drift::default();
                for k in keys {
                    if pending_keys.contains(&k) {
                        pending += 1;
                    } else {
                        d.count += 1;
                        if d.examples.len() < examples {
                            d.examples.push(describe(&pg.columns, &k));
                        }
                    }
                }
                d
            };
            let mut changed: Vec<Key> = diff.only_source.clone();
            changed.extend(diff.differ.iter().cloned());
            let pending_keys = match &pending_sql {
                Some(condition) => pending_among(&source, &pg, condition, &changed)
                    .await
                    .map_err(query(Role::Source, "telling pending rows apart"))?,
                None => Default::default(),
            };
            verdict.only_source = keep(diff.only_source, &pending_keys);
            verdict.differ = keep(diff.differ, &pending_keys);
            let gone: std::collections::HashSet<Key> = if full {
                diff.only_redshift.iter().cloned().collect()
            } else {
                Default::default()
            };
            verdict.only_redshift = keep(diff.only_redshift, &gone);
            verdict.duplicated = keep(diff.duplicated, &Default::default());
            verdict.pending = pending;
            Ok(())
        }
        .await;
        let _ = source.batch_execute("COMMIT").await;
        let _ = redshift.batch_execute("COMMIT").await;
        result.map(|()| verdict)
    }
}

/// `col=value, col=value` for people.
fn describe(columns: &[String], key: &Key) -> String {
    columns
        .iter()
        .zip(key)
        .map(|(c, v)| format!("{c}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows the next run would load, as a condition on the source table: after the
/// mark's cursor, or at or behind it and written by a transaction the mark's snapshot
/// (the forward snapshot after its split) could not see. `None` when the mark has no
/// cursor to compare with (a full copy).
pub fn pending_condition(d: &Decisions, mark: &Mark, fns: SnapshotFns) -> Option<String> {
    if mark.cursor.is_empty() || mark.cursor.len() != mark.keys.len() {
        return None;
    }
    let typed = |names: &[String], values: &[String]| -> (String, String) {
        let cols: Vec<String> = names.iter().map(|n| crate::quote::ident(n)).collect();
        let vals: Vec<String> = names
            .iter()
            .zip(values)
            .map(|(n, v)| {
                let t = d
                    .columns
                    .iter()
                    .find(|c| &c.source == n)
                    .map_or("text", |c| c.source_type.as_str());
                typed_literal(v, t)
            })
            .collect();
        (cols.join(", "), vals.join(", "))
    };
    let (cols, cursor) = typed(&mark.keys, &mark.cursor);
    let mut alternatives = vec![format!("({cols}) > ({cursor})")];
    match (&mark.snapshot, &mark.split, &mark.forward_snapshot) {
        (Some(behind), Some(split), Some(ahead)) if split.len() == mark.keys.len() => {
            let (_, split) = typed(&mark.keys, split);
            alternatives.push(format!(
                "(({cols}) <= ({split}) AND {})",
                Unseen {
                    snapshot: behind,
                    fns
                }
                .condition()
            ));
            alternatives.push(format!(
                "(({cols}) > ({split}) AND ({cols}) <= ({cursor}) AND {})",
                Unseen {
                    snapshot: ahead,
                    fns
                }
                .condition()
            ));
        }
        (Some(s), _, _) => alternatives.push(format!(
            "(({cols}) <= ({cursor}) AND {})",
            Unseen { snapshot: s, fns }.condition()
        )),
        _ => {}
    }
    Some(format!("({})", alternatives.join(" OR ")))
}

/// Which of `keys` the source holds under `condition`.
async fn pending_among(
    source: &tokio_postgres::Client,
    table: &super::sql::KeyTable,
    condition: &str,
    keys: &[Key],
) -> Result<std::collections::HashSet<Key>, tokio_postgres::Error> {
    let mut found = std::collections::HashSet::new();
    for batch in keys.chunks(BATCH) {
        let select = table.select_matching(batch, condition);
        for m in source.simple_query(&select).await? {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                found.insert(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or_default().to_string())
                        .collect(),
                );
            }
        }
    }
    Ok(found)
}

/// The verdicts of a job's tables (all enabled ones, or `only`), each `Ok` or why not.
pub async fn verify_job(
    app: &crate::app::App,
    job: &Job,
    only: &[TableRef],
    examples: usize,
) -> crate::Result<Vec<Result<Verdict, VerifyError>>> {
    let tables = tables_of(job, only)?;
    let dbs = Databases::of(app, job).await?;
    let mut out = Vec::new();
    for table in tables {
        out.push(verify_one(app, job, table, &dbs, examples, None).await);
    }
    Ok(out)
}

/// The tables `verify` compares: `only`, else every enabled one.
pub fn tables_of<'a>(job: &'a Job, only: &[TableRef]) -> crate::Result<Vec<&'a Table>> {
    if only.is_empty() {
        return Ok(job.tables.iter().filter(|t| !t.disabled).collect());
    }
    only.iter()
        .map(|t| {
            job.table(t)
                .ok_or_else(|| crate::Error::Usage(format!("job {} has no table {t}", job.name)))
        })
        .collect()
}

/// A job's two databases, resolved once for all its tables.
pub struct Databases {
    source: crate::secrets::DbConfig,
    destination: crate::secrets::DbConfig,
}

impl Databases {
    pub async fn of(app: &crate::app::App, job: &Job) -> crate::Result<Databases> {
        Ok(Databases {
            source: app.source(job).await?,
            destination: app.destination(job).await?,
        })
    }
}

/// One table's verdict: its decisions and mark (or last full copy) read, then compared,
/// each comparison starting no range after `stop_at` (Lambda's).
pub async fn verify_one(
    app: &crate::app::App,
    job: &Job,
    table: &Table,
    dbs: &Databases,
    examples: usize,
    stop_at: Option<std::time::Instant>,
) -> Result<Verdict, VerifyError> {
    let err = Errors(&table.source);
    let fail = |r| err.fail(r);
    let doc = |attribute: &'static str| async move {
        app.store
            .get_table_document(&job.name, &table.source, attribute)
            .await
            .map_err(|e| fail(e.to_string()))
    };
    let decisions: Decisions = match doc(crate::setup::DECISIONS).await? {
        Some(d) => serde_json::from_value(d).map_err(|e| {
            fail(format!(
                "its setup decisions are unreadable ({e}); run setup again"
            ))
        })?,
        None => return Err(fail("not set up yet; run setup first".into())),
    };
    let mark: Option<Mark> = doc(crate::sync::MARK)
        .await?
        .and_then(|m| serde_json::from_value(m).ok());
    let copied: Option<FullCopied> = doc(crate::sync::FULL_COPIED)
        .await?
        .and_then(|m| serde_json::from_value(m).ok());
    let since = if decisions.copy_mode.value == crate::config::CopyMode::FullDataSync {
        Since::FullCopy(copied.as_ref())
    } else {
        Since::Mark(mark.as_ref())
    };
    verify_table(
        &dbs.source,
        &dbs.destination,
        table,
        &decisions,
        since,
        examples,
        stop_at,
    )
    .await
}
