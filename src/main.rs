//! One binary, two front doors: inside AWS Lambda (the runtime API is in the
//! environment) it serves events; anywhere else it is the operators' CLI.

use std::process::ExitCode;

fn main() -> ExitCode {
    redshift_loader::memory::settle_allocator();
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        redshift_loader::lambda::main()
    } else {
        redshift_loader::cli::main()
    }
}
