//! ecsctl: stand up, check and tear down a Prefect worker on AWS ECS Fargate.
//!
//! This file only parses arguments, dispatches to a command and maps the outcome to an exit code:
//! 0 ok, 1 failed or unhealthy, 2 bad input, 130 interrupted.

mod aws;
mod cli;
mod commands;
mod config;
mod engine;
mod ledger;
mod progress;
mod prompt;
mod steps;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands::{CliError, Common};

fn main() {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            match &e {
                CliError::Interrupted => eprintln!(
                    "ecsctl: interrupted; what was created so far is in the ledger: run the same command again to finish, or `ecsctl destroy` to remove it"
                ),
                other => eprintln!("ecsctl: error: {other}"),
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<(), CliError> {
    let common = Common::from_args(cli.global)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(e.into()))?;
    runtime.block_on(async {
        let command = async {
            match cli.command {
                Command::Bootstrap(args) => commands::bootstrap::run(args, common).await,
                Command::Destroy(args) => commands::destroy::run(args, common).await,
                Command::Status(args) => commands::status::run(args, common).await,
            }
        };
        // Every creation is saved to the ledger before the next call, so stopping between
        // calls loses nothing; a re-run finds anything created but not yet recorded by its tags.
        tokio::select! {
            result = command => result,
            _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
        }
    })
}
