//! A throw-away PostgreSQL cluster on 127.0.0.1.
//!
//! `initdb` and `postgres` run as the `postgres` user when we are root (PostgreSQL
//! refuses to run as root), in a scratch directory that user owns, with settings that
//! trade durability for speed. One cluster serves a whole test binary; each test makes
//! its own database with [`PgCluster::create_database`]. A cluster can feed a hot
//! standby ([`PgCluster::start_replica`]), as a read replica feeds a loader.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio_postgres::NoTls;

use crate::process::{self, Scratch};

/// The superuser every cluster is created with (trust authentication on loopback).
pub const SUPERUSER: &str = "postgres";

#[derive(Debug)]
pub struct PgCluster {
    port: u16,
    child: Mutex<Child>,
    // Declared after `child` so the directory outlives the server during drop.
    scratch: Scratch,
}

impl PgCluster {
    /// Starts a new cluster. `name` only labels its scratch directory (`source`, ...).
    pub async fn start(name: &str) -> Result<PgCluster> {
        let bin = find_bin_dir()?;
        let scratch = Scratch::new(&format!("pg-{name}"))?;
        let data = scratch.path().join("data");
        let owner = server_user()?;
        if let Some((uid, gid)) = owner {
            chown(scratch.path(), uid, gid)?;
        }

        let init_log = scratch.path().join("initdb.log");
        let status = as_server_user(Command::new(bin.join("initdb")), owner)
            .args([
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg("-D")
            .arg(&data)
            .stdout(std::fs::File::create(&init_log)?)
            .stderr(std::fs::File::create(scratch.path().join("initdb.err"))?)
            .status()
            .with_context(|| format!("running {}", bin.join("initdb").display()))?;
        if !status.success() {
            bail!(
                "initdb failed ({status}):\n{}",
                process::log_tail(&scratch.path().join("initdb.err"), 20)
            );
        }

        // The OS may hand the same free port to someone else before we bind it: retry.
        let mut last_error = None;
        for _ in 0..5 {
            let port = process::free_port()?;
            match start_server(&bin, &scratch, &data, port, owner, &[]).await {
                Ok(child) => {
                    return Ok(PgCluster {
                        port,
                        child: Mutex::new(child),
                        scratch,
                    })
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("postgres did not start")))
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn user(&self) -> &'static str {
        SUPERUSER
    }

    /// A libpq-style URL for a database of this cluster.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// Connects directly (no emulator) and drives the connection on the current runtime.
    pub async fn connect(&self, db: &str) -> Result<tokio_postgres::Client> {
        connect_url(&self.url(db)).await
    }

    /// Creates a database with a unique name (`t_<uuid>`) and returns the name.
    pub async fn create_database(&self) -> Result<String> {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = self.connect("postgres").await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("creating database {name}"))?;
        Ok(name)
    }

    /// Starts a hot standby of this cluster that streams from it: `pg_basebackup -R -X
    /// stream` as the server user, then a server on a free port with `hot_standby=on`.
    /// `name` labels its scratch directory. It serves reads at once; to read what was
    /// written on this cluster, wait with [`PgCluster::wait_for_replay`].
    pub async fn start_replica(&self, name: &str) -> Result<PgCluster> {
        let primary = self.connect("postgres").await?;
        let setting = |row: tokio_postgres::Row| -> String { row.get(0) };
        let wal_level = setting(primary.query_one("SHOW wal_level", &[]).await?);
        let senders = setting(primary.query_one("SHOW max_wal_senders", &[]).await?);
        if wal_level == "minimal" || senders == "0" {
            bail!(
                "cluster on port {} cannot feed a replica (wal_level={wal_level}, \
                 max_wal_senders={senders}): it needs wal_level=replica or logical and a \
                 wal sender",
                self.port
            );
        }
        let bin = find_bin_dir()?;
        let scratch = Scratch::new(&format!("pg-{name}"))?;
        let data = scratch.path().join("data");
        let owner = server_user()?;
        if let Some((uid, gid)) = owner {
            chown(scratch.path(), uid, gid)?;
        }
        let err = scratch.path().join("basebackup.err");
        let status = as_server_user(Command::new(bin.join("pg_basebackup")), owner)
            .arg("-D")
            .arg(&data)
            .args(["-R", "-X", "stream", "--checkpoint=fast", "--no-sync"])
            .args([
                "-h",
                self.host(),
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err)?)
            .status()
            .with_context(|| format!("running {}", bin.join("pg_basebackup").display()))?;
        if !status.success() {
            bail!(
                "pg_basebackup from port {} failed ({status}):\n{}",
                self.port,
                process::log_tail(&err, 20)
            );
        }

        let mut last_error = None;
        for _ in 0..5 {
            let port = process::free_port()?;
            let hot = ["-c", "hot_standby=on"];
            match start_server(&bin, &scratch, &data, port, owner, &hot).await {
                Ok(child) => {
                    return Ok(PgCluster {
                        port,
                        child: Mutex::new(child),
                        scratch,
                    })
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("the replica did not start")))
    }

    /// Waits until this replica has replayed every transaction `primary` had committed
    /// when called (30 s at most).
    ///
    /// The clusters commit asynchronously (`synchronous_commit=off`), so a commit may
    /// still sit in the primary's WAL buffers, past `pg_current_wal_lsn()` and unsent.
    /// One synchronous commit that writes WAL flushes everything before it; the primary
    /// then holds it at `pg_current_wal_lsn()`. That commit takes a transaction id of
    /// its own and writes no table.
    pub async fn wait_for_replay(&self, primary: &PgCluster) -> Result<()> {
        let replica = self.connect("postgres").await?;
        let standby: bool = replica
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await?
            .get(0);
        if !standby {
            bail!("cluster on port {} is not a standby", self.port);
        }
        let p = primary.connect("postgres").await?;
        p.batch_execute(
            "BEGIN;
             SET LOCAL synchronous_commit = on;
             SELECT pg_logical_emit_message(true, 'testkit', 'replay');
             COMMIT;",
        )
        .await
        .context("flushing the primary's WAL")?;
        let target: String = p
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await?
            .get(0);
        let started = Instant::now();
        loop {
            let row = replica
                .query_one(
                    "SELECT pg_last_wal_replay_lsn()::text,
                            coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)",
                    &[&target],
                )
                .await?;
            let (replayed, done): (Option<String>, bool) = (row.get(0), row.get(1));
            if done {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!(
                    "replica on port {} replayed up to {} within 30 s, short of the \
                     primary's {target}:\n{}",
                    self.port,
                    replayed.as_deref().unwrap_or("nothing"),
                    process::log_tail(&self.dir().join("postgres.log"), 20)
                );
            }
            // Polling the replica's replay position; nothing to wait on but the query.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Turns TLS on with `cert` (plain connections are still accepted, as on RDS unless
    /// `rds.force_ssl` is set), and returns once new sessions see it.
    pub async fn enable_tls(&self, cert: &crate::tls::ServerCert) -> Result<()> {
        let owner = server_user()?;
        let mut paths = Vec::new();
        for (from, name) in [(&cert.cert, "server.pem"), (&cert.key, "server.key")] {
            let to = self.dir().join(name);
            std::fs::copy(from, &to).with_context(|| format!("copying {}", from.display()))?;
            // The server reads its key only if nobody else can.
            std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            if let Some((uid, gid)) = owner {
                chown(&to, uid, gid)?;
            }
            paths.push(to);
        }
        let admin = self.connect("postgres").await?;
        // ALTER SYSTEM refuses to run in a multi-statement query: one at a time.
        for statement in [
            format!("ALTER SYSTEM SET ssl_cert_file = '{}'", paths[0].display()),
            format!("ALTER SYSTEM SET ssl_key_file = '{}'", paths[1].display()),
            "ALTER SYSTEM SET ssl = on".into(),
            "SELECT pg_reload_conf()".into(),
        ] {
            admin.batch_execute(&statement).await?;
        }
        let started = Instant::now();
        loop {
            let fresh = self.connect("postgres").await?;
            let on: String = fresh.query_one("SHOW ssl", &[]).await?.get(0);
            if on == "on" {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!(
                    "ssl is still off 10 s after the reload:\n{}",
                    process::log_tail(&self.dir().join("postgres.log"), 20)
                );
            }
            // Polling the postmaster's reload; nothing to wait on but a new session.
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Puts `lines` at the top of pg_hba.conf (first match wins) and reloads.
    pub async fn hba_prepend(&self, lines: &str) -> Result<()> {
        let path = self.dir().join("data").join("pg_hba.conf");
        let old = std::fs::read_to_string(&path)?;
        std::fs::write(&path, format!("{lines}\n{old}"))?;
        self.connect("postgres")
            .await?
            .batch_execute("SELECT pg_reload_conf()")
            .await?;
        Ok(())
    }

    /// The directory holding this cluster's data and server log.
    pub fn dir(&self) -> &Path {
        self.scratch.path()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            // Immediate shutdown: the data is throw-away.
            process::stop(&mut child, libc::SIGQUIT);
        }
    }
}

/// Connects to `url` without TLS and spawns the connection on the current runtime.
pub async fn connect_url(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn start_server(
    bin: &Path,
    scratch: &Scratch,
    data: &Path,
    port: u16,
    owner: Option<(u32, u32)>,
    extra: &[&str],
) -> Result<Child> {
    let log = scratch.path().join("postgres.log");
    let mut cmd = as_server_user(Command::new(bin.join("postgres")), owner);
    cmd.arg("-D")
        .arg(data)
        .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
        .arg(scratch.path())
        .args([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "wal_level=logical",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=128MB",
            "-c",
            "max_wal_size=4GB",
            "-c",
            "log_min_messages=warning",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::options().append(true).open(&log)?);
    let mut child = process::spawn_tied(cmd, libc::SIGQUIT).context("spawning postgres")?;

    let url = format!("postgres://{SUPERUSER}@127.0.0.1:{port}/postgres?sslmode=disable");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "postgres exited during start-up ({status}):\n{}",
                process::log_tail(&log, 20)
            );
        }
        if tokio_postgres::connect(&url, NoTls).await.is_ok() {
            return Ok(child);
        }
        if started.elapsed() > Duration::from_secs(30) {
            process::stop(&mut child, libc::SIGQUIT);
            bail!(
                "postgres did not accept connections on port {port} within 30 s:\n{}",
                process::log_tail(&log, 20)
            );
        }
        // Polling a server that is starting up; nothing to wait on but the socket.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Finds the PostgreSQL server binaries: `$PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn find_bin_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN") {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
        bail!("PG_BIN={} holds no initdb", dir.display());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        anyhow!(
            "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb and no \
             PG_BIN): install them with `apt-get install postgresql` (or run `make deps`)"
        )
    })
}

/// The uid/gid to run the server as: the `postgres` user when we are root, else none.
fn server_user() -> Result<Option<(u32, u32)>> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Ok(None);
    }
    let name = std::ffi::CString::new(SUPERUSER).expect("no NUL");
    // SAFETY: getpwnam returns a pointer to static storage or NULL; we copy out at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        bail!(
            "running as root, and PostgreSQL refuses to run as root, but there is no \
             `postgres` user to run it as: install the `postgresql` package (or run `make deps`)"
        );
    }
    // SAFETY: pw is non-null and points at a valid passwd struct.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}

fn as_server_user(mut cmd: Command, owner: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {} to the postgres user", path.display()))
}
