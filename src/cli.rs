//! The operators' command line. Each subcommand arrives with the part it drives
//! (jobs and setup, run, schedules, status); errors print as `error: <what>: <why>`.

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "redshift-loader",
    version,
    about = "Keeps an analytics replica of PostgreSQL tables in Amazon Redshift",
    long_about = "Keeps an analytics replica of PostgreSQL tables in Amazon Redshift.\n\n\
                  The same binary runs as the AWS Lambda function (when AWS_LAMBDA_RUNTIME_API \
                  is set) and as this command line for operators.",
    arg_required_else_help = true
)]
pub struct Cli {}

/// Parses the command line and runs it; the exit code says whether it worked.
pub fn main() -> ExitCode {
    crate::logging::init(false);
    let _cli = Cli::parse();
    ExitCode::SUCCESS
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
