//! Child processes that cannot outlive the process that started them.
//!
//! Test binaries never run destructors of statics, and a killed test run runs none at
//! all. So every server is spawned from one thread that lives as long as the process,
//! with `PR_SET_PDEATHSIG`: when the process ends, however it ends, the kernel signals
//! the children. (The parent-death signal fires when the *thread* that forked exits,
//! which is why spawning happens on a dedicated thread and not on a test's thread.)
//!
//! Scratch directories are named after the owning pid, so a later run removes what a
//! killed run left behind.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

type SpawnRequest = (Command, i32, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` so that it receives `death_signal` when this process ends.
pub fn spawn_tied(cmd: Command, death_signal: i32) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                // Lives until the process exits: the receiver is never closed because
                // the sender sits in a static.
                for (mut cmd, signal, reply) in rx {
                    let parent = std::process::id() as libc::pid_t;
                    // SAFETY: the closure only calls async-signal-safe libc functions.
                    unsafe {
                        cmd.pre_exec(move || {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) != 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            // The parent may have died between fork and prctl.
                            if libc::getppid() != parent {
                                libc::_exit(1);
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("start the testkit spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    sender
        .lock()
        .expect("spawner lock")
        .send((cmd, death_signal, reply_tx))
        .map_err(|_| std::io::Error::other("testkit spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("testkit spawner thread is gone"))?
}

/// Sends `signal` to a child and reaps it.
pub fn stop(child: &mut Child, signal: i32) {
    if let Ok(None) = child.try_wait() {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, signal);
        }
    }
    let _ = child.wait();
}

/// A scratch directory under the system temp dir, removed on drop, named after this
/// process so that [`remove_stale_scratch`] can clean up after killed runs.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

const SCRATCH_PREFIX: &str = "testkit-";

impl Scratch {
    pub fn new(kind: &str) -> std::io::Result<Scratch> {
        remove_stale_scratch();
        let path = std::env::temp_dir().join(format!(
            "{SCRATCH_PREFIX}{}-{kind}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(Scratch { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes scratch directories whose owning process no longer exists.
pub fn remove_stale_scratch() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(SCRATCH_PREFIX)) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
}

/// A free TCP port on 127.0.0.1 (the OS picks it; the listener is closed before return).
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// The last `n` lines of a log file, for error messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
