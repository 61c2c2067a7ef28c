//! `run JOB [--table T] [--from-scratch]`.

use std::process::ExitCode;

use chrono::Utc;

use super::render::{table, Output};
use crate::app::App;
use crate::config::TableRef;
use crate::sync::{self, Options, Timing};

pub async fn run(
    out: &Output,
    job: &str,
    tables: Vec<TableRef>,
    from_scratch: bool,
) -> crate::Result<ExitCode> {
    let app = App::from_env().await?;
    let stored = app.store.require_job(job).await?;
    let options = Options {
        tables,
        from_scratch,
        run_id: new_run_id("cli"),
        deadline: None,
        observer: Some(std::sync::Arc::new(LogProgress)),
    };
    let timing = Timing::from_lookup(|k| std::env::var(k).ok());
    let outcomes = sync::run(&app, &stored.job, &options, timing).await?;
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    if out.json {
        let list: Vec<_> = outcomes
            .iter()
            .map(|o| match &o.result {
                Ok(r) => serde_json::json!({"table": o.table, "ok": true, "report": r}),
                Err(e) => {
                    serde_json::json!({"table": o.table, "ok": false, "error": e.to_string()})
                }
            })
            .collect();
        out.print_json(&serde_json::json!({"job": job, "run_id": options.run_id, "tables": list}));
    } else {
        let mut t = table(["table", "rows", "chunks", "staged", "state"]);
        for o in &outcomes {
            match &o.result {
                Ok(r) => t.add_row(vec![
                    o.table.to_string(),
                    r.rows.to_string(),
                    r.chunks.to_string(),
                    format!("{:.1} MiB", r.bytes_staged as f64 / (1 << 20) as f64),
                    if r.caught_up {
                        "caught up"
                    } else {
                        "more to load"
                    }
                    .to_string(),
                ]),
                Err(e) => t.add_row(vec![
                    o.table.to_string(),
                    String::new(),
                    String::new(),
                    String::new(),
                    format!("FAILED: {e}"),
                ]),
            };
        }
        println!("{t}");
    }
    if failed > 0 {
        eprintln!(
            "error: {failed} of {} table(s) failed; see above",
            outcomes.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// One log line per committed chunk, so a long run shows it is moving.
struct LogProgress;

impl sync::Observer for LogProgress {
    fn step(
        &self,
        table: &TableRef,
        step: sync::Step,
        chunk: u64,
        rows: u64,
    ) -> Result<(), String> {
        if step == sync::Step::Committed {
            tracing::info!(%table, chunk, rows, "chunk loaded");
        }
        Ok(())
    }
}

/// `cli-20261125T071500-1a2b3c4d`: sortable, unique, says where it came from.
pub fn new_run_id(origin: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{origin}-{}-{}",
        Utc::now().format("%Y%m%dT%H%M%S"),
        &id[..8]
    )
}
