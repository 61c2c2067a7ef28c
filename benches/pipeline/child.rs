//! The CLI as an operator runs it, in a child process: how long it took, the CPU it used
//! and its peak resident memory (measured by [`testkit::measure`]).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

pub use testkit::measure::{cpu_seconds, usage, Measured as ChildRun};

/// Runs `loader <args>` with exactly `env` (plus PATH); its stderr goes to `log`, shown
/// when it fails, and its stdout to `out` (discarded when `None`).
pub async fn run_cli(
    loader: &Path,
    args: &[&str],
    env: &[(String, String)],
    log: &Path,
    out: Option<&Path>,
) -> Result<ChildRun> {
    run_cli_exiting(loader, args, env, log, out, &[]).await
}

/// [`run_cli`], where exit codes `also_ok` (besides 0) are outcomes, not failures
/// (`verify` exits 3 when it finds drift).
pub async fn run_cli_exiting(
    loader: &Path,
    args: &[&str],
    env: &[(String, String)],
    log: &Path,
    out: Option<&Path>,
    also_ok: &[i32],
) -> Result<ChildRun> {
    let stderr = std::fs::File::create(log).with_context(|| format!("creating {log:?}"))?;
    let stdout = match out {
        Some(out) => {
            Stdio::from(std::fs::File::create(out).with_context(|| format!("creating {out:?}"))?)
        }
        None => Stdio::null(),
    };
    let started = Instant::now();
    let child = Command::new(loader)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .context("starting redshift-loader")?;
    let run = testkit::measure::wait(child, started).await?;
    let exited = |code: i32| libc_exit_status(run.status) == Some(code);
    if !run.success && !also_ok.iter().any(|c| exited(*c)) {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "redshift-loader {} failed (status {}):\n{}",
            args.join(" "),
            run.status,
            tail.join("\n")
        );
    }
    Ok(run)
}

/// The exit code in a raw wait status, when the process exited (not killed).
fn libc_exit_status(status: i32) -> Option<i32> {
    (status & 0x7f == 0).then_some((status >> 8) & 0xff)
}
