//! The `tokengate` binary: parse the command line and hand over to `cli::run`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    tokengate::cli::run(tokengate::cli::Cli::parse())
}
