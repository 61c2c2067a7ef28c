//! A child process's wall time, CPU time and peak resident memory, as the flat-memory
//! test and the benchmark measure the CLI.
//!
//! The peak is the child's own `VmHWM` (/proc/PID/status), read until it exits, not
//! `wait4`'s `ru_maxrss`: Rust spawns with vfork, and Linux folds the high-water mark of
//! the address space an `exec` replaces (the parent's: a test process, or a benchmark
//! with the whole emulator in it) into the child's `ru_maxrss`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How a measured child ended.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Whether it exited with status 0.
    pub success: bool,
    /// The raw wait status, for messages.
    pub status: i32,
    pub seconds: f64,
    /// User + system CPU of the child.
    pub cpu_seconds: f64,
    pub peak_rss_mib: f64,
}

/// Waits for `child` (spawned at `started`) and measures it. The child is reaped here:
/// do not wait for it elsewhere.
pub async fn wait(child: std::process::Child, started: Instant) -> Result<Measured> {
    let pid = child.id() as libc::pid_t;
    // `child` is reaped by wait4 below, not by its Drop (which would not wait).
    drop(child);
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
            done = &mut reaped => break done.context("waiting for the child")?,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    };
    if rc != pid {
        return Err(std::io::Error::last_os_error()).context("wait4");
    }
    let success = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if success && peak_kib == 0 {
        bail!("process {pid} ended before its memory could be read");
    }
    Ok(Measured {
        success,
        status,
        seconds: started.elapsed().as_secs_f64(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_water_mark_is_read_from_proc_status() {
        let status = "Name:\tx\nVmPeak:\t  9999 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(12345));
        assert_eq!(vm_hwm_kib("Name:\tx\n"), None);
    }

    #[tokio::test]
    async fn a_child_is_measured_and_its_exit_status_kept() {
        let started = Instant::now();
        let child = std::process::Command::new("sh")
            .args(["-c", "sleep 0.1; exit 3"])
            .spawn()
            .unwrap();
        let m = wait(child, started).await.unwrap();
        assert!(!m.success);
        assert_eq!(libc::WEXITSTATUS(m.status), 3);
        assert!(m.peak_rss_mib > 0.0 && m.seconds >= 0.1, "{m:?}");
    }
}
