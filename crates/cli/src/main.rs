//! The `vae-cli` binary: parses the command line and reports any error in one line.

use std::process::ExitCode;

use clap::Parser;

/// Every failure the user can cause ends here: one line on stderr, exit code 1.
fn main() -> ExitCode {
    let cli = vae_cli::commands::Cli::parse();
    match vae_cli::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Never a panic, even with nobody reading standard error.
            vae_cli::say::err_line(format_args!("error: {e}"));
            ExitCode::FAILURE
        }
    }
}
