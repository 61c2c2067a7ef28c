//! `run JOB [--table T] [--from-scratch]`.

use std::process::ExitCode;

use super::render::{table, Output};
use crate::app::App;
use crate::config::TableRef;
use crate::sync::{self, Options, Timing};

pub async fn run(
    out: &Output,
    job: &str,
    tables: Vec<TableRef>,
    from_scratch: bool,
    force: bool,
) -> crate::Result<ExitCode> {
    let app = App::from_env().await?;
    let stored = app.store.require_job(job).await?;
    let timing = Timing::from_lookup(|k| std::env::var(k).ok());
    // One run reads at most IMPORT_ROW_LIMIT rows per table; the command runs again
    // for the tables with more to load until each is caught up (or fails, or stops
    // moving).
    let mut options = Options {
        tables,
        from_scratch,
        force,
        run_id: sync::new_run_id("cli"),
        deadline: None,
        continuation: false,
        observer: progress(),
    };
    let mut outcomes: Vec<sync::Outcome> = Vec::new();
    loop {
        let round = sync::run(&app, &stored.job, &options, timing).await?;
        let again: Vec<TableRef> = round
            .iter()
            .filter(|o| matches!(&o.result, Ok(r) if !r.caught_up && r.rows > 0))
            .map(|o| o.table.clone())
            .collect();
        for o in round {
            match outcomes.iter_mut().find(|p| p.table == o.table) {
                Some(previous) => merge(previous, o),
                None => outcomes.push(o),
            }
        }
        if again.is_empty() {
            break;
        }
        tracing::info!(tables = again.len(), "row limit reached; running again");
        options.tables = again;
        options.from_scratch = false;
        // The same run, continued: the frequency guard does not apply, and the
        // lookback window was re-read already.
        options.force = true;
        options.continuation = true;
        options.run_id = sync::new_run_id("cli");
    }
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
                Ok(r) if r.skipped.is_some() => t.add_row(vec![
                    o.table.to_string(),
                    String::new(),
                    String::new(),
                    String::new(),
                    format!("skipped: {}", r.skipped.as_deref().unwrap_or_default()),
                ]),
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

/// Adds a later round's result for a table to its earlier ones.
fn merge(previous: &mut sync::Outcome, next: sync::Outcome) {
    previous.seconds += next.seconds;
    match (&mut previous.result, next.result) {
        (Ok(a), Ok(b)) => {
            a.rows += b.rows;
            a.chunks += b.chunks;
            a.bytes_staged += b.bytes_staged;
            a.values_truncated += b.values_truncated;
            a.values_nulled += b.values_nulled;
            a.empty_reads += b.empty_reads;
            a.caught_up = b.caught_up;
        }
        (_, failed) => previous.result = failed,
    }
}

/// Progress bars when standard error is a terminal; otherwise the engine's own
/// `chunk loaded` log lines say how a run moves.
fn progress() -> Option<std::sync::Arc<dyn sync::Observer>> {
    crate::logging::progress_bars().then(|| std::sync::Arc::new(Bars::default()) as _)
}

/// One bar per table: rows loaded, chunks, rate, elapsed time.
#[derive(Default)]
struct Bars {
    all: indicatif::MultiProgress,
    bars: std::sync::Mutex<Vec<(TableRef, indicatif::ProgressBar)>>,
}

impl Bars {
    fn bar(&self, table: &TableRef) -> indicatif::ProgressBar {
        let mut bars = self.bars.lock().expect("progress lock");
        if let Some((_, b)) = bars.iter().find(|(t, _)| t == table) {
            return b.clone();
        }
        let b = self.all.add(indicatif::ProgressBar::no_length());
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {prefix:30} {human_pos:>12} rows  {per_sec:>14}  {elapsed}  {msg}",
            )
            .expect("valid template"),
        );
        b.set_prefix(table.to_string());
        b.enable_steady_tick(std::time::Duration::from_millis(200));
        bars.push((table.clone(), b.clone()));
        b
    }
}

impl sync::Observer for Bars {
    fn step(
        &self,
        table: &TableRef,
        step: sync::Step,
        chunk: u64,
        rows: u64,
    ) -> Result<(), String> {
        let bar = self.bar(table);
        match step {
            sync::Step::Extracted => bar.set_message(format!("chunk {chunk}: staged")),
            sync::Step::Copied => bar.set_message(format!("chunk {chunk}: merging")),
            sync::Step::Committed => {
                bar.inc(rows);
                bar.set_message(format!("chunk {chunk}: committed"));
            }
            _ => {}
        }
        Ok(())
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        for (_, b) in self.bars.lock().expect("progress lock").iter() {
            b.finish_with_message("done");
        }
    }
}
