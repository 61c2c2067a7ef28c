//! `moto_server` on 127.0.0.1: one server for S3, DynamoDB, Lambda, Scheduler, Secrets
//! Manager and SSM.

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::process::{self, Scratch};

/// The moto version the tests are written against. 5.2.1 returns a
/// CompleteMultipartUpload response the Rust SDK cannot parse.
pub const MOTO_VERSION: &str = "5.2.5";
pub const REGION: &str = "us-east-1";

#[derive(Debug)]
pub struct Moto {
    port: u16,
    child: Mutex<Child>,
    scratch: Scratch,
}

impl Moto {
    /// Starts `python3 -m moto.server` (`$MOTO_PYTHON` overrides the interpreter) after
    /// checking that the pinned version is installed.
    pub async fn start() -> Result<Moto> {
        let python = std::env::var("MOTO_PYTHON").unwrap_or_else(|_| "python3".into());
        check_version(&python)?;
        let scratch = Scratch::new("moto")?;
        let log = scratch.path().join("moto.log");
        let mut last_error = None;
        for _ in 0..5 {
            let port = process::free_port()?;
            let mut cmd = Command::new(&python);
            cmd.args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::options().append(true).open(&log)?);
            let mut child = process::spawn_tied(cmd, libc::SIGTERM)
                .with_context(|| format!("spawning {python} -m moto.server"))?;
            match wait_ready(&mut child, port, &log).await {
                Ok(()) => {
                    return Ok(Moto {
                        port,
                        child: Mutex::new(child),
                        scratch,
                    })
                }
                Err(e) => {
                    process::stop(&mut child, libc::SIGTERM);
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SDK configuration for every service, pointed at this server.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("test", "test", None, None, "testkit"))
            .load()
            .await
    }

    /// An S3 client with path-style addressing (moto has no virtual-host DNS here).
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    pub async fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk_config().await)
    }

    /// Creates a bucket with a unique name and returns the name.
    pub async fn create_bucket(&self) -> Result<String> {
        let name = unique_name("tk");
        self.s3_client()
            .await
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .with_context(|| format!("creating bucket {name} in moto"))?;
        Ok(name)
    }

    /// The environment a process needs to use this server through the standard SDK
    /// variables.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// moto's own log, for diagnosing a failing test.
    pub fn log_tail(&self, lines: usize) -> String {
        process::log_tail(&self.scratch.path().join("moto.log"), lines)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            process::stop(&mut child, libc::SIGTERM);
        }
    }
}

/// A name unique to this call, valid as an S3 bucket and a DynamoDB table name.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn check_version(python: &str) -> Result<()> {
    let out = Command::new(python)
        .args(["-c", "import moto; print(moto.__version__)"])
        .output()
        .with_context(|| format!("running {python} to find moto"))?;
    let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || found != MOTO_VERSION {
        let found = if found.is_empty() {
            "none".to_string()
        } else {
            found
        };
        bail!(
            "moto {MOTO_VERSION} is required (found {found} for {python}): run `make deps` or \
             `pip install 'moto[server]=={MOTO_VERSION}'`"
        );
    }
    Ok(())
}

async fn wait_ready(child: &mut Child, port: u16, log: &std::path::Path) -> Result<()> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "moto_server exited during start-up ({status}):\n{}",
                process::log_tail(log, 20)
            );
        }
        if http_get_ok(port).await {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!(
                "moto_server did not answer on port {port} within 60 s:\n{}",
                process::log_tail(log, 20)
            );
        }
        // Polling a server that is starting up; nothing to wait on but the socket.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /` answered with any 2xx status.
async fn http_get_ok(port: u16) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = format!("GET / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    match stream.read_exact(&mut head).await {
        Ok(_) => head.starts_with(b"HTTP/1.") && head[9] == b'2',
        Err(_) => false,
    }
}
