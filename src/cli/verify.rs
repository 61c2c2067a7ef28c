//! `verify JOB [--table T]... [--examples N]`: compares each table between the source
//! and Redshift (keys and content, see [`crate::verify::check`]). Exits 0 when every
//! table is equal, 3 when drift was found, 1 when a table could not be verified (the
//! reason on stderr); drifted keys appear in the table and in `--json`.

use std::process::ExitCode;

use super::render::{table, Output};
use crate::app::App;
use crate::config::TableRef;
use crate::verify::check::{outcome_json, verify_job, Drift, Verdict};

/// Exit code when drift was found (0: equal; 1: could not verify).
pub const DRIFT: u8 = 3;

pub async fn run(
    out: &Output,
    job: &str,
    tables: &[TableRef],
    examples: usize,
) -> crate::Result<ExitCode> {
    let app = App::from_env().await?;
    let stored = app.store.require_job(job).await?;
    let verdicts = verify_job(&app, &stored.job, tables, examples).await?;
    let failed = verdicts.iter().filter(|v| v.is_err()).count();
    let drifted = verdicts
        .iter()
        .filter(|v| v.as_ref().is_ok_and(Verdict::drift))
        .count();
    let code = exit_code(failed, drifted);
    if out.json {
        let list: Vec<_> = verdicts.iter().map(outcome_json).collect();
        out.print_json(&serde_json::json!({"job": job, "tables": list, "exit_code": code}));
    } else {
        let mut t = table([
            "table",
            "only at the source",
            "only in Redshift",
            "differ",
            "twice in Redshift",
            "pending",
            "keys shipped",
            "state",
        ]);
        for v in &verdicts {
            match v {
                Ok(v) => t.add_row(vec![
                    v.table.clone(),
                    cell(&v.only_source),
                    cell(&v.only_redshift),
                    cell(&v.differ),
                    cell(&v.duplicated),
                    v.pending.to_string(),
                    v.keys_transferred.to_string(),
                    match (v.drift(), v.unfinished) {
                        (true, _) => "DRIFT",
                        (false, true) => "unfinished",
                        (false, false) => "equal",
                    }
                    .to_string(),
                ]),
                Err(e) => t.add_row(vec![
                    e.table.to_string(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    "could not verify".to_string(),
                ]),
            };
        }
        println!("{t}");
        for v in verdicts.iter().flatten() {
            if !v.not_compared.is_empty() {
                println!(
                    "{}: content not compared for {}",
                    v.table,
                    v.not_compared.join(", ")
                );
            }
        }
    }
    for e in verdicts.iter().filter_map(|v| v.as_ref().err()) {
        eprintln!("error: {e}");
    }
    Ok(ExitCode::from(code))
}

/// 1 when a table could not be verified, else 3 when one drifted, else 0.
pub fn exit_code(failed: usize, drifted: usize) -> u8 {
    if failed > 0 {
        1
    } else if drifted > 0 {
        DRIFT
    } else {
        0
    }
}

/// `3: id=5, id=9, …`
fn cell(d: &Drift) -> String {
    if d.count == 0 {
        return "0".into();
    }
    let more = if (d.examples.len() as u64) < d.count {
        ", …"
    } else {
        ""
    };
    format!("{}: {}{more}", d.count, d.examples.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_outranks_drift_and_drift_outranks_equal() {
        assert_eq!(exit_code(0, 0), 0);
        assert_eq!(exit_code(0, 2), 3);
        assert_eq!(exit_code(1, 2), 1);
        let d = Drift {
            count: 3,
            examples: vec!["id=5".into(), "id=9".into()],
        };
        assert_eq!(cell(&d), "3: id=5; id=9, …");
    }
}
