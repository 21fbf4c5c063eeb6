//! ecsctl: stand up, check and tear down a Prefect worker on AWS ECS Fargate.
//!
//! This file only parses arguments, dispatches to a command and maps the outcome to an exit code:
//! 0 ok, 1 failed or unhealthy, 2 bad input, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).

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

use std::io::Write;
use std::sync::Arc;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands::Common;
use crate::error::CliError;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => commands::outcome::usage_error(&e),
    };
    let journal = commands::outcome::Journal::new(
        command_name(&cli.command),
        cli.global.output,
        pool_arg(&cli.command),
    );
    let after_stop = after_stop(&cli.command);
    let code = match run(cli, journal.clone()) {
        // A result that could not be written (stdout on a full disk) is not a success.
        Ok(()) if journal.result_lost() => 1,
        Ok(()) => 0,
        Err(e) => {
            journal.print_failure(&e);
            // stderr may be closed too (`2>&-`): nothing to say then, and nothing to panic about.
            let mut err = std::io::stderr();
            let _ = match &e {
                CliError::Interrupted | CliError::Terminated => {
                    writeln!(err, "ecsctl: {e}; {}", after_stop(&journal))
                }
                // The report on stdout says why; stderr gets its one-line summary, not an error.
                CliError::Unhealthy(summary) => writeln!(err, "ecsctl: {summary}"),
                other => writeln!(err, "ecsctl: error: {other}"),
            };
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Bootstrap(_) => "bootstrap",
        Command::Destroy(_) => "destroy",
        Command::Status(_) => "status",
    }
}

fn pool_arg(command: &Command) -> Option<String> {
    match command {
        Command::Bootstrap(args) => args.pool.pool.clone(),
        Command::Destroy(args) => args.pool.pool.clone(),
        Command::Status(args) => args.pool.pool.clone(),
    }
}

/// What to tell the user after Ctrl-C or SIGTERM: how to go on from where the command stopped.
fn after_stop(command: &Command) -> impl Fn(&commands::outcome::Journal) -> String {
    let pool = |p: &Option<String>| p.as_ref().map_or(String::new(), |p| format!(" --pool {p}"));
    let (command, pool) = match command {
        Command::Bootstrap(args) => ("bootstrap", pool(&args.pool.pool)),
        Command::Destroy(args) => ("destroy", pool(&args.pool.pool)),
        Command::Status(_) => ("status", String::new()),
    };
    move |journal| {
        match (command, journal.ledger_unsaved()) {
        ("status", _) => "nothing was changed".to_string(),
        (_, Some((path, reason))) => format!(
            "the ledger {path} could not be saved ({reason}), so what this run did since is not in it; run `ecsctl {command}{pool}` again once the state directory is writable (resources are found by their ecsctl:pool tag), or `ecsctl destroy{pool}` to remove them"
        ),
        ("bootstrap", None) => format!(
            "what was created so far is in the ledger (and tagged for the pool): run `ecsctl bootstrap{pool}` again to finish, or `ecsctl destroy{pool}` to remove it"
        ),
        _ => format!(
            "what is left is still in the ledger: run `ecsctl destroy{pool}` again to finish"
        ),
    }
    }
}

fn run(cli: Cli, journal: Arc<commands::outcome::Journal>) -> Result<(), CliError> {
    let common = Common::from_args(cli.global, journal)?;
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
            _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
            _ = terminate() => Err(CliError::Terminated),
        }
    });
    // Don't wait for blocking work left behind by an interrupt (a wait for the pool's lock).
    runtime.shutdown_background();
    result
}

/// Resolves at SIGTERM (what CI sends to cancel a job); the handler is installed on first poll,
/// like Ctrl-C's, so it is never in place before the command's prompts.
async fn terminate() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        // Without a handler SIGTERM keeps its default action: the process ends at once.
        Err(_) => std::future::pending().await,
    }
}
