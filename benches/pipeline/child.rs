//! The CLI as an operator runs it, in a child process: how long it took and its peak
//! resident memory (`wait4`'s `ru_maxrss`, as the flat-memory test measures it).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// One finished CLI run.
#[derive(Debug, Clone, Copy)]
pub struct ChildRun {
    pub seconds: f64,
    pub peak_rss_mib: f64,
}

/// Runs `loader <args>` with exactly `env` (plus PATH); its stderr goes to `log`, shown
/// when it fails.
pub async fn run_cli(
    loader: &Path,
    args: &[&str],
    env: &[(String, String)],
    log: &Path,
) -> Result<ChildRun> {
    let stderr = std::fs::File::create(log).with_context(|| format!("creating {log:?}"))?;
    let started = Instant::now();
    // Reaped by wait4 below, which also reports its peak memory.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(loader)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .context("starting redshift-loader")?;
    let pid = child.id() as libc::pid_t;
    let (status, usage) = tokio::task::spawn_blocking(move || {
        let mut status = 0;
        // SAFETY: rusage is plain data; wait4 fills it for our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        (rc, status, usage)
    })
    .await
    .map(|(rc, status, usage)| {
        if rc == pid {
            Ok((status, usage))
        } else {
            Err(std::io::Error::last_os_error())
        }
    })?
    .context("waiting for redshift-loader")?;
    let seconds = started.elapsed().as_secs_f64();
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "redshift-loader {} failed (status {status}):\n{}",
            args.join(" "),
            tail.join("\n")
        );
    }
    Ok(ChildRun {
        seconds,
        // Linux reports kilobytes.
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
    })
}
