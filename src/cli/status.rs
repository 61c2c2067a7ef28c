//! `status [JOB] [--max-lag DURATION]`: one row per table — mode, last success, lag,
//! rows, last error, lease, disabled — from DynamoDB, with the lag measured against the
//! source. Exits 1 when a table is failing, 2 when one lags more than `--max-lag`.
//!
//! The rows are computed by [`crate::status`]; this file only reads (DynamoDB, one
//! query per table on the source) and prints.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::render::{table, Output};
use crate::app::App;
use crate::config::Job;
use crate::secrets::Role;
use crate::state::{Lease, TableItem};
use crate::status::{self, human_duration, LagBasis, Probe, Row, Stored};

/// How long the source may take to connect, and to answer each table's question.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(out: &Output, job: Option<&str>, max_lag: Option<u64>) -> crate::Result<ExitCode> {
    let app = App::from_env().await?;
    let jobs = match job {
        Some(name) => vec![app.store.require_job(name).await?],
        None => app.store.list_jobs().await?,
    };
    let now = Utc::now();
    let mut rows = Vec::new();
    for stored in &jobs {
        let job = &stored.job;
        let items = app.store.table_items(&job.name).await?;
        let leases = app.store.held_leases(&job.name, now).await?;
        let probes = probe(&app, job, &items, &leases).await;
        rows.extend(status::rows(job, &items, &leases, &probes, now, max_lag));
    }
    let code = status::exit_code(&rows);
    if out.json {
        out.print_json(&serde_json::json!({
            "tables": rows,
            "max_lag_seconds": max_lag,
            "exit_code": code,
        }));
    } else {
        print_table(&rows, now);
    }
    Ok(ExitCode::from(code))
}

/// Asks the source, for each enabled incremental table, for its newest key and whether
/// rows lie past the mark. A source that cannot be reached makes every answer unknown,
/// with the reason.
async fn probe(
    app: &App,
    job: &Job,
    items: &[TableItem],
    leases: &[Lease],
) -> BTreeMap<String, Probe> {
    let queries: Vec<(String, status::ProbeQuery)> = job
        .tables
        .iter()
        .filter(|t| !t.disabled)
        .filter_map(|t| {
            let key = t.source.to_string();
            let item = items.iter().find(|i| i.table == key);
            let stored = Stored::from_item(&t.source, item, leases);
            status::probe_query(&t.source, &stored).map(|q| (key, q))
        })
        .collect();
    if queries.is_empty() {
        return BTreeMap::new();
    }
    let unknown = |reason: String| -> BTreeMap<String, Probe> {
        queries
            .iter()
            .map(|(k, _)| (k.clone(), Probe::Unknown(reason.clone())))
            .collect()
    };
    let db = match app.source(job).await {
        Ok(db) => db,
        Err(e) => return unknown(e.to_string()),
    };
    let at = format!("{} database {}", Role::Source, db.describe());
    let client = match tokio::time::timeout(PROBE_TIMEOUT, crate::source::open(&db)).await {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => return unknown(e.to_string()),
        Err(_) => {
            return unknown(format!(
                "{at}: no answer within {} s — check the host and port, and that the server accepts connections from here",
                PROBE_TIMEOUT.as_secs()
            ))
        }
    };
    let mut probes = BTreeMap::new();
    for (key, q) in queries {
        let answer =
            tokio::time::timeout(PROBE_TIMEOUT, client.query_one(q.sql.as_str(), &[])).await;
        let probe = match answer {
            Ok(Ok(row)) => Probe::Read {
                newest: row.get(0),
                past_mark: row.get(1),
            },
            Ok(Err(e)) => Probe::Unknown(format!(
                "{at}: {}",
                crate::diagnose::explain_error(Role::Source, &e)
            )),
            Err(_) => Probe::Unknown(format!(
                "{at}: reading the newest {} took more than {} s",
                q.key,
                PROBE_TIMEOUT.as_secs()
            )),
        };
        probes.insert(key, probe);
    }
    probes
}

fn print_table(rows: &[Row], now: DateTime<Utc>) {
    let mut t = table([
        "job",
        "table",
        "mode",
        "last success",
        "lag",
        "rows last/total",
        "running",
        "state",
    ]);
    for r in rows {
        t.add_row(vec![
            r.job.clone(),
            r.table.clone(),
            r.mode.map_or_else(|| "-".to_string(), |m| m.to_string()),
            match r.last_success_at {
                Some(at) => format!(
                    "{} ({} ago)",
                    at.format("%Y-%m-%d %H:%M:%SZ"),
                    human_duration((now - at).num_seconds())
                ),
                None => "never".into(),
            },
            lag_cell(r),
            format!(
                "{} / {}",
                r.rows_last_run
                    .map_or_else(|| "-".to_string(), |n| n.to_string()),
                r.rows_total
            ),
            match (&r.lease_owner, r.lease_expires_at) {
                (Some(owner), Some(until)) => {
                    format!("{owner} (lease until {})", until.format("%H:%M:%SZ"))
                }
                _ => String::new(),
            },
            match r.error.as_ref().or(r.warning.as_ref()) {
                Some(e) => format!("{}: {e}", r.state.as_str()),
                None => r.state.as_str().to_string(),
            },
        ]);
    }
    println!("{t}");
}

fn lag_cell(r: &Row) -> String {
    let key = r.lag_key.as_deref().unwrap_or_default();
    let newest = r.source_newest.as_deref().unwrap_or("?");
    let mark = r.mark.as_deref().unwrap_or("nothing");
    match (r.lag_seconds, r.lag_basis, &r.lag_unknown) {
        (Some(l), Some(LagBasis::CaughtUp), _) => format!("{} (caught up)", human_duration(l)),
        (Some(l), Some(LagBasis::Key), _) => format!(
            "{} ({key} {newest} at the source, {mark} loaded)",
            human_duration(l)
        ),
        (Some(l), Some(LagBasis::SinceSuccess), _) => format!(
            "behind: {key} {newest} at the source, {mark} loaded (at most {} since the last success)",
            human_duration(l)
        ),
        (Some(l), _, _) => format!("{} (since the last full copy)", human_duration(l)),
        (None, _, Some(reason)) => format!("unknown: {reason}"),
        (None, _, None) => "-".into(),
    }
}
