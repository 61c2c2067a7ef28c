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
    let timing = Timing::from_lookup(|k| std::env::var(k).ok()).map_err(crate::Error::Usage)?;
    // One run reads at most IMPORT_ROW_LIMIT rows per table; the command runs again
    // for the tables with more to load until each is caught up (or fails, or stops
    // moving).
    let mut options = Options {
        tables,
        from_scratch,
        force,
        run_id: sync::new_run_id("cli"),
        observer: progress(),
        ..Options::default()
    };
    let mut outcomes: Vec<sync::Outcome> = Vec::new();
    loop {
        let round = sync::run(&app, &stored.job, &options, timing).await?;
        let again: Vec<TableRef> = round
            .iter()
            .filter(|o| matches!(&o.result, Ok(r) if r.behind()))
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
        // The same run, continued: the frequency guard does not apply, and the opt-in
        // lookback window was re-read already.
        options.force = true;
        options.continuation = true;
        options.run_id = sync::new_run_id("cli");
    }
    // The bars stop before the summary is printed.
    drop(options.observer.take());
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
                    indicatif::HumanBytes(r.bytes_staged).to_string(),
                    {
                        let mut state = match (r.caught_up, r.rows_deleted) {
                            (true, 0) => "caught up".to_string(),
                            (true, n) => format!("caught up; {n} deleted (gone from the source)"),
                            (false, _) => "more to load".to_string(),
                        };
                        if r.reconcile.as_ref().is_some_and(|c| c.unfinished) {
                            state.push_str("; reconcile unfinished (deadline), again next run");
                        }
                        state
                    },
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
            a.late_rows += b.late_rows;
            a.reread_rows += b.reread_rows;
            a.chunks += b.chunks;
            a.chunks_appended += b.chunks_appended;
            a.redshift_ms.add(b.redshift_ms);
            a.bytes_staged += b.bytes_staged;
            a.values_truncated += b.values_truncated;
            a.values_nulled += b.values_nulled;
            a.values_replaced += b.values_replaced;
            for (column, n) in &b.replaced {
                *a.replaced.entry(column.clone()).or_default() += n;
            }
            a.empty_reads += b.empty_reads;
            a.rows_deleted += b.rows_deleted;
            if b.reconcile.is_some() {
                a.reconcile = b.reconcile;
            }
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

/// One bar per table: rows loaded (of the source's estimate, with an ETA, on a first
/// load or a full copy), bytes staged, rate, elapsed time, the chunk's state.
#[derive(Default)]
struct Bars {
    all: indicatif::MultiProgress,
    bars: std::sync::Mutex<Vec<(TableRef, Bar)>>,
}

struct Bar {
    bar: indicatif::ProgressBar,
    /// Compressed bytes staged in S3 so far.
    stored: u64,
    /// The same as CSV.
    csv: u64,
    /// The last round's table run failed.
    failed: bool,
}

/// Without a row count: a spinner with the count so far.
const OPEN_ENDED: &str =
    "{spinner} {prefix:30} {human_pos:>12} rows  {rate:>12}  {elapsed:>4}  {msg}";
/// With one (an estimate): a bar, the estimate and the time left.
const ESTIMATED: &str = "{spinner} {prefix:30} [{bar:20}] {human_pos:>12}/~{human_len} rows  {rate:>12}  {elapsed:>4}  ETA {eta:>4}  {msg}";

fn style(template: &str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(template)
        .expect("valid template")
        .progress_chars("=> ")
        // Whole rows per second (indicatif's `per_sec` prints every decimal).
        .with_key(
            "rate",
            |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} rows/s", s.per_sec());
            },
        )
}

impl Bars {
    fn with_bar<T>(&self, table: &TableRef, f: impl FnOnce(&mut Bar) -> T) -> T {
        let mut bars = self.bars.lock().expect("progress lock");
        let at = match bars.iter().position(|(t, _)| t == table) {
            Some(at) => at,
            None => {
                let bar = self.all.add(indicatif::ProgressBar::no_length());
                bar.set_style(style(OPEN_ENDED));
                bar.set_prefix(table.to_string());
                bar.enable_steady_tick(std::time::Duration::from_millis(200));
                bars.push((
                    table.clone(),
                    Bar {
                        bar,
                        stored: 0,
                        csv: 0,
                        failed: false,
                    },
                ));
                bars.len() - 1
            }
        };
        f(&mut bars[at].1)
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
        self.with_bar(table, |b| {
            let staged = format!(
                "{} staged ({} as CSV)",
                indicatif::HumanBytes(b.stored),
                indicatif::HumanBytes(b.csv)
            );
            match step {
                sync::Step::Extracted => {
                    b.bar.set_message(format!("{staged}; chunk {chunk}: in S3"))
                }
                sync::Step::Copied => b
                    .bar
                    .set_message(format!("{staged}; chunk {chunk}: merging")),
                sync::Step::Committed => {
                    b.bar.inc(rows);
                    // An estimate can be low: the bar never runs past its end.
                    if b.bar.length().is_some_and(|len| b.bar.position() > len) {
                        b.bar.set_length(b.bar.position());
                    }
                    b.bar
                        .set_message(format!("{staged}; chunk {chunk}: committed"));
                }
                _ => {}
            }
        });
        Ok(())
    }

    fn estimated(&self, table: &TableRef, rows: u64) {
        self.with_bar(table, |b| {
            // A later round of the same run continues from where the bar is.
            if b.bar.length().is_none() {
                b.bar.set_length(rows.max(b.bar.position()));
                b.bar.set_style(style(ESTIMATED));
            }
        });
    }

    fn staged(&self, table: &TableRef, _chunk: u64, csv_bytes: u64, stored_bytes: u64) {
        self.with_bar(table, |b| {
            b.csv += csv_bytes;
            b.stored += stored_bytes;
        });
    }

    fn finished(&self, table: &TableRef, ok: bool) {
        self.with_bar(table, |b| b.failed = !ok);
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        let bars = self.bars.lock().expect("progress lock");
        if bars.is_empty() {
            return;
        }
        for (_, b) in bars.iter() {
            let done = format!(
                "{}: {} staged ({} as CSV)",
                if b.failed { "FAILED" } else { "done" },
                indicatif::HumanBytes(b.stored),
                indicatif::HumanBytes(b.csv)
            );
            // The bar ends at what was loaded, not at the estimate.
            b.bar.set_length(b.bar.position());
            b.bar.finish_with_message(done);
        }
        // indicatif leaves the cursor after the last bar: what is printed next starts
        // on a line of its own.
        eprintln!();
    }
}
