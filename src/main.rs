//! ecsctl: stand up, check and tear down a Prefect worker on AWS ECS Fargate.
//!
//! This file only parses arguments, dispatches to a command and maps the outcome to an exit code:
//! 0 ok, 1 failed or unhealthy, 2 bad input, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).

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
        Command::Unlock(_) => "unlock",
    }
}

fn pool_arg(command: &Command) -> Option<String> {
    match command {
        Command::Bootstrap(args) => args.pool.pool.clone(),
        Command::Destroy(args) => args.pool.pool.clone(),
        Command::Status(args) => args.pool.pool.clone(),
        Command::Unlock(args) => args.pool.clone(),
    }
}

/// What to tell the user after Ctrl-C or SIGTERM: how to go on from where the command stopped.
fn after_stop(journal: &commands::outcome::Journal) -> String {
    let pool = journal
        .pool()
        .map_or(String::new(), |p| format!(" --pool {p}"));
    match (journal.command(), journal.ledger_unsaved()) {
        ("status" | "unlock", _) => "nothing was changed".to_string(),
        ("bootstrap", Some((path, reason))) => format!(
            "the ledger {path} could not be saved ({reason}), so what this run created since is not in it; it is tagged for the pool: run `ecsctl bootstrap{pool}` again once the state directory is writable (it finds and records it), or `ecsctl destroy{pool}` to remove it (it finds it by its tags)"
        ),
        (_, Some((path, reason))) => format!(
            "the ledger {path} could not be updated ({reason}) and may still list what was deleted: run `ecsctl destroy{pool}` again to finish (what is gone counts as done)"
        ),
        ("bootstrap", None) => format!(
            "what was created so far is in the ledger (and tagged for the pool): run `ecsctl bootstrap{pool}` again to finish, or `ecsctl destroy{pool}` to remove it"
        ),
        _ => format!("what is left is still in the ledger: run `ecsctl destroy{pool}` again to finish"),
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
            _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
            _ = terminate() => Err(CliError::Terminated),
        }
    });
    if matches!(result, Err(CliError::Interrupted | CliError::Terminated)) {
        // The command stopped mid-way: free the pool for the next run.
        runtime.block_on(account::release_after_interrupt());
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::OutputFormat;
    use crate::commands::outcome::Journal;
    use crate::ledger::{Ledger, LedgerHandle, LedgerPaths, ResourceKind};

    /// A journal of `command` on pool `p` whose ledger could not be saved (a file stands where
    /// the state directory should be).
    fn journal_with_unsaved_ledger(command: &'static str) -> (Arc<Journal>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("state");
        std::fs::write(&blocked, "").unwrap();
        let paths = LedgerPaths::new(&blocked, "123456789012", "us-east-1", "p");
        let ledger = LedgerHandle::new(Ledger::new("p", "123456789012", "us-east-1"), paths, true);
        let journal = Journal::new(command, OutputFormat::Text, Some("p".into()));
        journal.attach("p", &ledger);
        let _ = ledger.created("cluster", ResourceKind::Cluster, "arn");
        (journal, dir)
    }

    #[test]
    fn after_a_stop_an_unsaved_ledger_is_never_called_complete() {
        let (journal, _dir) = journal_with_unsaved_ledger("bootstrap");
        let said = after_stop(&journal);
        assert!(said.contains("could not be saved"), "{said}");
        assert!(said.contains("`ecsctl destroy --pool p`"), "{said}");
        assert!(!said.contains("is in the ledger"), "{said}");
        let (journal, _dir) = journal_with_unsaved_ledger("destroy");
        let said = after_stop(&journal);
        assert!(said.contains("could not be updated"), "{said}");
        assert!(!said.contains("still in the ledger"), "{said}");
    }
}
