//! `runs JOB [--table T] [--limit N]`: the job's recent runs, newest first, from the
//! `RUN#` items (kept 30 days).

use std::process::ExitCode;

use super::render::{table, Output};
use crate::app::App;
use crate::config::TableRef;
use crate::status::RunRecord;

pub async fn run(
    out: &Output,
    job: &str,
    table_filter: Option<&TableRef>,
    limit: usize,
) -> crate::Result<ExitCode> {
    let app = App::from_env().await?;
    let stored = app.store.require_job(job).await?;
    if let Some(t) = table_filter {
        if stored.job.table(t).is_none() {
            return Err(crate::Error::Usage(format!("job {job} has no table {t}")));
        }
    }
    let runs: Vec<RunRecord> = app
        .store
        .runs_of(job, table_filter, limit)
        .await?
        .iter()
        .filter_map(RunRecord::from_json)
        .collect();
    if out.json {
        out.print_json(&serde_json::json!({"job": job, "runs": runs}));
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table([
        "run id", "table", "started", "seconds", "rows", "deleted", "bytes", "outcome", "error",
    ]);
    let dash = || "-".to_string();
    for r in &runs {
        t.add_row(vec![
            r.run_id.clone(),
            r.table.clone(),
            r.started_at
                .or(r.finished_at)
                .map_or_else(dash, |at| at.format("%Y-%m-%d %H:%M:%SZ").to_string()),
            r.seconds.map_or_else(dash, |s| format!("{s:.1}")),
            r.rows.map_or_else(dash, |n| n.to_string()),
            r.rows_deleted.to_string(),
            r.bytes.map_or_else(dash, |n| n.to_string()),
            r.outcome.to_string(),
            r.error.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}
