//! `testkit up`: runs the local stack in the foreground and prints the environment that
//! points the loader at it.
//!
//! Usage:
//!   testkit up [--env-file PATH]
//!   testkit invoke EVENT.json [--timeout SECONDS] [--repeat N] -- BINARY
//!
//! `invoke` runs BINARY (the loader's `bootstrap`) as Lambda does: under a Lambda Runtime
//! API served here, with this shell's environment (the `export` lines of `testkit up`),
//! hands it the event and prints what it answered. It also times the cold start on
//! standard error: *init* from spawning the process to its first poll for an event (what
//! Lambda reports as `Init Duration`), and *first response* from spawning to the answer.
//! `--repeat N` starts a fresh process N times (each a cold start) and prints the
//! median and maximum of both.
//!
//! The `export` lines go to standard output (and to PATH when given, written once every
//! server answers, so a script can wait for the file); logs go to standard error. Stops
//! everything and removes its files on Ctrl-C or SIGTERM.

use std::io::Write;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use testkit::stack::{shell_quote, EnvNames, Stack};

#[derive(Parser)]
#[command(version, about = "The local stack for redshift-loader")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start PostgreSQL (source and warehouse), moto, the Redshift emulator and the
    /// Invoke recorder; print `export` lines; run until Ctrl-C.
    Up {
        /// Also write the `export` lines to this file once everything is ready.
        #[arg(long)]
        env_file: Option<std::path::PathBuf>,
    },
    /// Run a Lambda binary under a local Runtime API and hand it one event.
    Invoke {
        /// The event (JSON file), e.g. events/backfill.json.
        event: std::path::PathBuf,
        /// The invocation's time limit (the function sees its deadline).
        #[arg(long, default_value_t = 900)]
        timeout: u64,
        /// Cold starts to time: a fresh process, runtime API and invocation each.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        repeat: u32,
        /// The binary to run, e.g. target/debug/redshift-loader.
        #[arg(last = true, required = true)]
        binary: std::path::PathBuf,
    },
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up { env_file } => up(env_file).await,
        Command::Invoke {
            event,
            timeout,
            repeat,
            binary,
        } => invoke(&event, timeout, repeat, &binary).await,
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn invoke(
    event: &std::path::Path,
    timeout: u64,
    repeat: u32,
    binary: &std::path::Path,
) -> Result<()> {
    let payload: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(event).with_context(|| format!("reading {}", event.display()))?,
    )
    .with_context(|| format!("{} is not JSON", event.display()))?;
    let mut starts = Vec::new();
    for _ in 0..repeat {
        let (answer, start) = cold_start(&payload, timeout, binary).await?;
        if starts.is_empty() {
            println!("{}", serde_json::to_string_pretty(&answer)?);
        }
        eprintln!(
            "cold start: init {:.1} ms, first response {:.1} ms",
            ms(start.init),
            ms(start.first_response)
        );
        starts.push(start);
    }
    if repeat > 1 {
        let summary = |f: fn(&ColdStart) -> std::time::Duration| {
            let mut v: Vec<_> = starts.iter().map(f).collect();
            v.sort();
            format!(
                "median {:.1} ms, max {:.1} ms",
                ms(v[v.len() / 2]),
                ms(v[v.len() - 1])
            )
        };
        eprintln!(
            "over {repeat} cold starts: init {}; first response {}",
            summary(|s| s.init),
            summary(|s| s.first_response)
        );
    }
    Ok(())
}

/// How long one cold start took, from spawning the process.
struct ColdStart {
    /// To the first poll for an event: Lambda's `Init Duration`.
    init: std::time::Duration,
    /// To the answer of the first event.
    first_response: std::time::Duration,
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Starts `binary` under a fresh runtime API, hands it `payload` and stops it.
async fn cold_start(
    payload: &serde_json::Value,
    timeout: u64,
    binary: &std::path::Path,
) -> Result<(serde_json::Value, ColdStart)> {
    use testkit::runtime::{Outcome, RuntimeApi};
    let name = std::env::var("LOADER_FUNCTION_NAME").unwrap_or_else(|_| "redshift-loader".into());
    let api = RuntimeApi::start(&format!(
        "arn:aws:lambda:us-east-1:123456789012:function:{name}"
    ))
    .await?;
    let spawned = std::time::Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", &name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let outcome = tokio::select! {
        o = api.invoke(payload.clone(), std::time::Duration::from_secs(timeout)) => o?,
        status = child.wait() => anyhow::bail!("{} exited before answering: {}", binary.display(), status?),
    };
    let answered = std::time::Instant::now();
    child.kill().await.ok();
    let polled = api
        .first_poll()
        .context("the function answered without polling for an event")?;
    let start = ColdStart {
        init: polled.saturating_duration_since(spawned),
        first_response: answered.saturating_duration_since(spawned),
    };
    match outcome {
        Outcome::Response(v) => Ok((v, start)),
        Outcome::Error(v) => anyhow::bail!("the function failed: {v}"),
    }
}

async fn up(env_file: Option<std::path::PathBuf>) -> Result<()> {
    let stack = Stack::start().await?;
    let names = EnvNames {
        state_table: "redshift-loader-state".into(),
        bucket: "redshift-loader-staging".into(),
        source_db: "shop".into(),
        warehouse_db: "warehouse".into(),
    };
    for (cluster, db) in [
        (&stack.source, &names.source_db),
        (&stack.warehouse, &names.warehouse_db),
    ] {
        cluster
            .connect("postgres")
            .await?
            .batch_execute(&format!("CREATE DATABASE \"{db}\""))
            .await
            .with_context(|| format!("creating database {db}"))?;
    }
    testkit::stack::create_state_table(&stack.moto.dynamodb_client().await, &names.state_table)
        .await?;
    stack
        .moto
        .s3_client()
        .await
        .create_bucket()
        .bucket(&names.bucket)
        .send()
        .await
        .context("creating the staging bucket")?;

    let exports: String = stack
        .env(&names)
        .into_iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_quote(&v)))
        .collect();
    print!("{exports}");
    std::io::stdout().flush()?;
    if let Some(path) = env_file {
        // Write then rename, so a reader never sees half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &exports).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!("testkit: the stack is up; Ctrl-C stops it");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("testkit: stopping");
    drop(stack);
    Ok(())
}
