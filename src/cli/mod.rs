//! The operators' command line. Output for people goes to stdout as tables (or JSON
//! with `--json`); logs go to stderr; errors print as `error: <what>` and exit 1.

mod jobs;
mod render;
mod run;
mod runs;
mod schedules;
mod setup;
mod status;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::TableRef;

#[derive(Debug, Parser)]
#[command(
    name = "redshift-loader",
    version,
    about = "Keeps an analytics replica of PostgreSQL tables in Amazon Redshift",
    long_about = "Keeps an analytics replica of PostgreSQL tables in Amazon Redshift.\n\n\
                  The same binary runs as the AWS Lambda function (when AWS_LAMBDA_RUNTIME_API \
                  is set) and as this command line for operators. It reads LOADER_STATE_TABLE \
                  and the standard AWS variables (region, credentials, AWS_ENDPOINT_URL*).",
    arg_required_else_help = true
)]
pub struct Cli {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, inspect and delete jobs (stored in DynamoDB).
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Read the source tables, create or evolve them in Redshift, and store the keys
    /// and copy mode every run uses.
    Setup(SetupArgs),
    /// Load new and changed rows now, table by table, until caught up (exactly what the
    /// Lambda function does on a schedule).
    Run(RunArgs),
    /// EventBridge schedules: one per enabled job.
    #[command(subcommand)]
    Schedules(SchedulesCommand),
    /// Each table's health: mode, last success, lag against the source, rows, last
    /// error, lease. Exits 1 when a table is failing, 2 when one lags more than
    /// --max-lag.
    Status(StatusArgs),
    /// Recent runs of a job's tables, newest first (kept 30 days).
    Runs(RunsArgs),
    /// Compare each table between the source and Redshift, keys and content, at a
    /// cost proportional to the drift. Exits 0 when equal, 3 when drift was found, 1
    /// when a table could not be verified.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The job's name.
    job: String,
    /// Only this table (`schema.table`); repeat for more. Default: every enabled table.
    #[arg(long = "table", value_name = "TABLE")]
    tables: Vec<TableRef>,
    /// Drifted keys shown per kind and table.
    #[arg(long, default_value_t = 10)]
    examples: usize,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Only this job's tables. Default: every job.
    job: Option<String>,
    /// Exit 2 when a table's lag exceeds this: `90s`, `15m`, `2h`, `1d` or seconds.
    #[arg(long, value_name = "DURATION", value_parser = crate::status::parse_duration)]
    max_lag: Option<u64>,
}

#[derive(Debug, Args)]
struct RunsArgs {
    /// The job's name.
    job: String,
    /// Only this table's runs (`schema.table`).
    #[arg(long, value_name = "TABLE")]
    table: Option<TableRef>,
    /// At most this many runs.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
}

#[derive(Debug, Subcommand)]
enum SchedulesCommand {
    /// Create, update and delete schedules so the group holds one per enabled job.
    Sync,
    /// The schedules in the group, with each job's expression and time zone.
    List,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The job's name.
    job: String,
    /// Only this table (`schema.table`); repeat for more. Default: every enabled table.
    #[arg(long = "table", value_name = "TABLE")]
    tables: Vec<TableRef>,
    /// Forget where the tables stopped and load them from the beginning (a backfill).
    #[arg(long)]
    from_scratch: bool,
    /// Run tables even if the job's frequency says they are not due yet.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Create or update a job from a YAML or JSON file; prints what changed.
    Apply {
        /// The job file (`.json` is JSON, anything else YAML).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Show the change without storing it.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the jobs.
    List,
    /// Show one job as stored, with setup's decisions for each table.
    Show { name: String },
    /// Delete a job and all its state (refused while one of its tables is loading).
    Delete { name: String },
}

#[derive(Debug, Args)]
struct SetupArgs {
    /// The job's name.
    job: String,
    /// Only this table (`schema.table`); repeat for more. Default: every enabled table.
    #[arg(long = "table", value_name = "TABLE")]
    tables: Vec<TableRef>,
    /// Print the DDL it would run; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Drop and recreate the named tables in Redshift and forget their state, so the
    /// next run reloads them from scratch. Needs --table.
    #[arg(long, requires = "tables")]
    rebuild: bool,
}

/// Parses the command line and runs it; the exit code says whether it worked.
pub fn main() -> ExitCode {
    crate::logging::init(false);
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> crate::Result<ExitCode> {
    let out = render::Output { json: cli.json };
    match cli.command {
        Command::Jobs(JobsCommand::Apply { file, dry_run }) => {
            jobs::apply(&out, &file, dry_run).await
        }
        Command::Jobs(JobsCommand::List) => jobs::list(&out).await,
        Command::Jobs(JobsCommand::Show { name }) => jobs::show(&out, &name).await,
        Command::Jobs(JobsCommand::Delete { name }) => jobs::delete(&out, &name).await,
        Command::Setup(args) => {
            let options = crate::setup::Options {
                tables: args.tables,
                dry_run: args.dry_run,
                rebuild: args.rebuild,
                observer: setup::progress(),
            };
            setup::run(&out, &args.job, options).await
        }
        Command::Schedules(SchedulesCommand::Sync) => schedules::sync(&out).await,
        Command::Schedules(SchedulesCommand::List) => schedules::list(&out).await,
        Command::Status(args) => status::run(&out, args.job.as_deref(), args.max_lag).await,
        Command::Verify(args) => verify::run(&out, &args.job, &args.tables, args.examples).await,
        Command::Runs(args) => {
            runs::run(&out, &args.job, args.table.as_ref(), args.limit as usize).await
        }
        Command::Run(args) => {
            run::run(&out, &args.job, args.tables, args.from_scratch, args.force).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
