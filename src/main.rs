//! ecsctl: stand up, check and tear down a Prefect worker on AWS ECS Fargate.
//!
//! This file only parses arguments, dispatches to a command and maps the outcome to an exit code:
//! 0 ok, 1 failed or unhealthy, 2 bad input, 130 interrupted.

mod account;
mod aws;
mod cli;
mod commands;
mod config;
mod engine;
mod error;
mod health;
#[cfg(test)]
mod layering;
mod ledger;
mod prefect;
mod progress;
mod prompt;
mod steps;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands::Common;
use crate::error::CliError;

fn main() {
    let cli = Cli::parse();
    let after_interrupt = after_interrupt(&cli.command);
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            match &e {
                CliError::Interrupted => eprintln!("ecsctl: {after_interrupt}"),
                // The report on stdout says why; stderr gets its one-line summary, not an error.
                CliError::Unhealthy(summary) => eprintln!("ecsctl: {summary}"),
                other => eprintln!("ecsctl: error: {other}"),
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}

/// What to tell the user after Ctrl-C: how to go on from where the command stopped.
fn after_interrupt(command: &Command) -> String {
    let pool = |p: &Option<String>| p.as_ref().map_or(String::new(), |p| format!(" --pool {p}"));
    match command {
        Command::Bootstrap(args) => {
            let pool = pool(&args.pool.pool);
            format!(
                "interrupted; what was created so far is in the ledger (and tagged for the pool): run `ecsctl bootstrap{pool}` again to finish, or `ecsctl destroy{pool}` to remove it"
            )
        }
        Command::Destroy(args) => format!(
            "interrupted; what is left is still in the ledger: run `ecsctl destroy{}` again to finish",
            pool(&args.pool.pool)
        ),
        Command::Status(_) | Command::Unlock(_) => "interrupted".to_string(),
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let common = Common::from_args(cli.global)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(e.into()))?;
    let result = runtime.block_on(async {
        let command = async {
            match cli.command {
                Command::Bootstrap(args) => commands::bootstrap::run(*args, common).await,
                Command::Destroy(args) => commands::destroy::run(args, common).await,
                Command::Status(args) => commands::status::run(args, common).await,
                Command::Unlock(args) => commands::unlock::run(args, common).await,
            }
        };
        // Every creation is saved to the ledger before the next call, so stopping between
        // calls loses nothing; a re-run finds anything created but not yet recorded by its tags.
        tokio::select! {
            // The command first: its prompts block before its first await, and must meet Ctrl-C
            // with the default SIGINT action. A handler installed earlier swallows it, and the
            // hidden key prompt's read then just restarts: ecsctl would hang there.
            biased;
            result = command => result,
            _ = tokio::signal::ctrl_c() => {
                // The command stopped mid-way: free the pool for the next run.
                account::release_after_interrupt().await;
                Err(CliError::Interrupted)
            }
        }
    });
    // Don't wait for blocking work left behind by an interrupt (a wait for the pool's lock).
    runtime.shutdown_background();
    result
}
