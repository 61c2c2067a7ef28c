//! `setup JOB [--table T] [--dry-run] [--rebuild]`.

use std::process::ExitCode;

use chrono::Utc;

use super::render::{table, Output};
use crate::app::App;
use crate::setup::{self, Options, Outcome};

pub async fn run(out: &Output, job: &str, mut options: Options) -> crate::Result<ExitCode> {
    let app = App::from_env().await?;
    let stored = app.store.require_job(job).await?;
    let outcomes = setup::run(&app, &stored.job, &options, Utc::now()).await?;
    // The bar stops before the report is printed.
    drop(options.observer.take());
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    if out.json {
        let list: Vec<_> = outcomes.iter().map(outcome_json).collect();
        out.print_json(
            &serde_json::json!({"job": job, "dry_run": options.dry_run, "tables": list}),
        );
    } else if options.dry_run {
        for o in &outcomes {
            match &o.result {
                Ok(plan) if plan.statements.is_empty() => {
                    println!("-- {}: nothing to change", o.table)
                }
                Ok(plan) => {
                    println!("-- {}", o.table);
                    for s in &plan.statements {
                        println!("{s};");
                    }
                }
                Err(e) => println!("-- {}: error: {e}", o.table),
            }
            println!();
        }
    } else {
        print_report(&outcomes);
    }
    if failed > 0 {
        eprintln!(
            "error: {failed} of {} table(s) could not be set up; see above",
            outcomes.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(outcomes: &[Outcome]) {
    let mut t = table([
        "table",
        "redshift table",
        "mode",
        "primary key",
        "updated key",
        "changes",
    ]);
    let mut details = Vec::new();
    for o in outcomes {
        match &o.result {
            Ok(plan) => {
                let d = &plan.decisions;
                t.add_row(vec![
                    o.table.to_string(),
                    d.destination.to_string(),
                    format!("{}\n({})", d.copy_mode.value, d.copy_mode.why),
                    format!(
                        "{}\n({})",
                        d.primary_key.value.join(", "),
                        d.primary_key.why
                    ),
                    format!(
                        "{}\n({})",
                        d.updated_key.value.clone().unwrap_or_else(|| "-".into()),
                        d.updated_key.why
                    ),
                    if plan.changes.is_empty() {
                        "up to date".into()
                    } else {
                        plan.changes.join("\n")
                    },
                ]);
                let mut cols = table(["column", "source type", "redshift type", "note"]);
                for c in &d.columns {
                    cols.add_row(vec![
                        c.name.clone(),
                        c.source_type.clone(),
                        c.redshift_type.clone(),
                        if c.dropped {
                            "gone from the source".into()
                        } else {
                            c.reason
                                .iter()
                                .chain(c.replaced.as_ref().map(|r| &r.note))
                                .cloned()
                                .collect::<Vec<_>>()
                                .join("\n")
                        },
                    ]);
                }
                let mut lines: Vec<String> = d
                    .late_commits
                    .iter()
                    .map(|l| format!("late commits: {} ({})", l.value, l.why))
                    .collect();
                lines.extend(d.warnings.iter().map(|w| format!("warning: {w}")));
                details.push((o.table.to_string(), cols, lines));
            }
            Err(e) => {
                t.add_row(vec![
                    o.table.to_string(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    format!("FAILED: {e}"),
                ]);
            }
        }
    }
    println!("{t}");
    for (name, cols, lines) in details {
        println!("\n{name}\n{cols}");
        for line in lines {
            println!("{line}");
        }
    }
}

fn outcome_json(o: &Outcome) -> serde_json::Value {
    match &o.result {
        Ok(plan) => serde_json::json!({
            "table": o.table, "ok": true, "decisions": plan.decisions,
            "statements": plan.statements, "changes": plan.changes,
        }),
        Err(e) => serde_json::json!({"table": o.table, "ok": false, "error": e.to_string()}),
    }
}

/// A bar over the job's tables when standard error is a terminal; otherwise setup's
/// own `table set up` log lines.
pub fn progress() -> Option<std::sync::Arc<dyn setup::Observer>> {
    crate::logging::progress_bars().then(|| std::sync::Arc::new(Bar::default()) as _)
}

/// Tables done of the job's, the one being set up, failures so far.
#[derive(Default)]
struct Bar {
    bar: std::sync::OnceLock<indicatif::ProgressBar>,
    failed: std::sync::atomic::AtomicUsize,
}

impl setup::Observer for Bar {
    fn starting(&self, table: &crate::config::TableRef, _index: usize, of: usize) {
        let bar = self.bar.get_or_init(|| {
            let bar = indicatif::ProgressBar::new(of as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} setup [{bar:20}] {pos}/{len} tables  {elapsed:>4}  {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        });
        bar.set_message(format!("reading {table}"));
    }

    fn finished(&self, table: &crate::config::TableRef, ok: bool) {
        if let Some(bar) = self.bar.get() {
            if !ok {
                self.failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            bar.inc(1);
            bar.set_message(format!("{table}: {}", if ok { "done" } else { "FAILED" }));
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.get() {
            let failed = self.failed.load(std::sync::atomic::Ordering::Relaxed);
            bar.finish_with_message(if failed == 0 {
                "done".to_string()
            } else {
                format!("{failed} failed; see below")
            });
            // indicatif leaves the cursor after the bar: the report starts on a new line.
            eprintln!();
        }
    }
}
