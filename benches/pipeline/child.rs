//! The CLI as an operator runs it, in a child process: how long it took, the CPU it used
//! and its peak resident memory.
//!
//! The peak is the child's own `VmHWM` (/proc/PID/status), read until it exits, not
//! `wait4`'s `ru_maxrss`: Rust spawns with vfork, and Linux folds the high-water mark
//! of the address space an `exec` replaces (here the parent's, this benchmark with
//! the whole emulator in it) into the child's `ru_maxrss`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// One finished CLI run.
#[derive(Debug, Clone, Copy)]
pub struct ChildRun {
    pub seconds: f64,
    /// User + system CPU of the child.
    pub cpu_seconds: f64,
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
    let status_file = format!("/proc/{pid}/status");
    let mut reaped = tokio::task::spawn_blocking(move || {
        let mut status = 0;
        // SAFETY: rusage is plain data; wait4 fills it for our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        (rc, status, usage)
    });
    // VmHWM only grows: the last value read before the child exits is its peak (to
    // within the last poll).
    let mut peak_kib = 0u64;
    let (rc, status, usage) = loop {
        if let Some(kib) = std::fs::read_to_string(&status_file)
            .ok()
            .as_deref()
            .and_then(vm_hwm_kib)
        {
            peak_kib = peak_kib.max(kib);
        }
        tokio::select! {
            done = &mut reaped => break done?,
            _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
        }
    };
    if rc != pid {
        return Err(std::io::Error::last_os_error()).context("waiting for redshift-loader");
    }
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
        cpu_seconds: cpu_seconds(&usage),
        peak_rss_mib: peak_kib as f64 / 1024.0,
    })
}

/// User + system time of a `rusage`.
pub fn cpu_seconds(usage: &libc::rusage) -> f64 {
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// `getrusage(who)`: RUSAGE_SELF for this process, RUSAGE_CHILDREN for the children it
/// has reaped.
pub fn usage(who: libc::c_int) -> libc::rusage {
    // SAFETY: rusage is plain data that getrusage fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    usage
}

/// `VmHWM:   12345 kB` → 12345.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
