//! `testkit up`: runs the local stack in the foreground and prints the environment that
//! points the loader at it.
//!
//! Usage:
//!   testkit up [--env-file PATH]
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
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
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
