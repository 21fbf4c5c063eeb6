//! What a run has done so far, kept outside the command's future so that every way it ends —
//! success, bad input, an AWS failure, a timeout, Ctrl-C or SIGTERM — can say so: with
//! `--output json` as exactly one JSON document on stdout, and in the guidance on stderr.
//!
//! The document of a run that did not succeed (a successful run prints its own result):
//!
//! ```json
//! { "command": "bootstrap", "pool": "p", "account": "123456789012", "region": "us-east-1",
//!   "ok": false, "exit_code": 1, "ending": "failed",  // or "bad-input", "interrupted", "terminated"
//!   "error": { "message": "…", "phase": "apply", "steps": [{ "step": "service", "error": "…" }] },
//!   "steps_done": [{ "step": "cluster", "summary": "created …" }], "steps_running": ["service"],
//!   "created": [{ "step": "cluster", "kind": "cluster", "id": "arn:…" }], "deleted": [],
//!   "ledger": { "path": "…", "saved": true, "error": null } }
//! ```
//!
//! `created` and `deleted` are what this run added to or removed from the ledger; `phase` is
//! where the run was: `validate`, `connect`, `look`, `confirm`, `apply`, `wait`, `delete`, `verify`.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::OutputFormat;
use crate::error::CliError;
use crate::ledger::{Ledger, LedgerHandle, Record};
use crate::progress::Progress;

/// The run's record; shared by `main`, the command and its progress.
pub struct Journal {
    command: &'static str,
    output: OutputFormat,
    printed: AtomicBool,
    /// The result could not be written (other than to a reader that went away).
    lost: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    pool: Option<String>,
    account: Option<String>,
    region: Option<String>,
    phase: &'static str,
    ledger: Option<(LedgerHandle, Ledger)>,
    running: BTreeSet<String>,
    done: Vec<Value>,
    failed: Vec<Value>,
}

impl Journal {
    pub fn new(command: &'static str, output: OutputFormat, pool: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            command,
            output,
            printed: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            state: Mutex::new(State {
                pool,
                phase: "validate",
                ..State::default()
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn command(&self) -> &'static str {
        self.command
    }

    /// The pool as given, or as validated once the run got that far.
    pub fn pool(&self) -> Option<String> {
        self.state().pool.clone()
    }

    pub fn phase(&self, phase: &'static str) {
        self.state().phase = phase;
    }

    /// The pool, account and region are known, and this run's ledger: what it holds now is
    /// the baseline of `created` and `deleted`.
    pub fn attach(&self, pool: &str, ledger: &LedgerHandle) {
        let mut state = self.state();
        let snapshot = ledger.snapshot();
        state.pool = Some(pool.to_string());
        state.account = Some(snapshot.account.clone());
        state.region = Some(snapshot.region.clone());
        state.ledger = Some((ledger.clone(), snapshot));
    }

    /// Why the ledger on disk misses what this run did, if it does.
    pub fn ledger_unsaved(&self) -> Option<(String, String)> {
        let state = self.state();
        let (handle, _) = state.ledger.as_ref()?;
        let reason = handle.unsaved()?;
        Some((handle.paths().file.display().to_string(), reason))
    }

    /// Prints the command's result on stdout, once. A reader that went away (`| head -1`) is
    /// not an error: the run's exit status stays what the run decided.
    pub fn print(&self, text: &str, json: &Value) {
        if self.printed.swap(true, Ordering::SeqCst) {
            return;
        }
        let out = match self.output {
            OutputFormat::Text => text.to_string(),
            OutputFormat::Json => format!(
                "{}\n",
                serde_json::to_string_pretty(json).unwrap_or_else(|_| json.to_string())
            ),
        };
        let mut stdout = std::io::stdout().lock();
        let written = stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush());
        if let Err(e) = written {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                self.lost.store(true, Ordering::SeqCst);
                let _ = writeln!(std::io::stderr(), "ecsctl: cannot write the result: {e}");
            }
        }
    }

    /// Whether the result was lost to a failed write (a full disk): the run cannot count as done.
    pub fn result_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// With `--output json`, the document of a run that ended with `error`, unless the command
    /// printed its own (status's report of an unhealthy pool).
    pub fn print_failure(&self, error: &CliError) {
        if self.output != OutputFormat::Json || self.printed.load(Ordering::SeqCst) {
            return;
        }
        let document = self.failure_document(error);
        self.print("", &document);
    }

    fn failure_document(&self, error: &CliError) -> Value {
        let state = self.state();
        let ending = match error {
            CliError::BadInput(_) => "bad-input",
            CliError::Interrupted => "interrupted",
            CliError::Terminated => "terminated",
            CliError::Failed(_) | CliError::Unhealthy(_) => "failed",
        };
        let (created, deleted, ledger) = match &state.ledger {
            Some((handle, before)) => {
                let now = handle.snapshot();
                let unsaved = handle.unsaved();
                (
                    records(&now.created, &before.created),
                    records(&before.created, &now.created),
                    json!({
                        "path": handle.paths().file,
                        "saved": unsaved.is_none(),
                        "error": unsaved,
                    }),
                )
            }
            None => (Vec::new(), Vec::new(), Value::Null),
        };
        json!({
            "command": self.command,
            "pool": state.pool,
            "account": state.account,
            "region": state.region,
            "ok": false,
            "exit_code": error.exit_code(),
            "ending": ending,
            "error": {
                "message": error.to_string(),
                "phase": state.phase,
                "steps": state.failed,
            },
            "steps_done": state.done,
            "steps_running": state.running,
            "created": created,
            "deleted": deleted,
            "ledger": ledger,
        })
    }
}

/// A command line clap refused: with `--output json` anywhere in it, the failure document first
/// (the command and pool are unknown), then clap's own message on stderr and its exit code (2).
pub fn usage_error(e: &clap::Error) -> ! {
    use clap::error::ErrorKind;
    let informational = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if !informational && wants_json(std::env::args().skip(1)) {
        let document = json!({
            "command": null, "pool": null, "account": null, "region": null,
            "ok": false,
            "exit_code": e.exit_code(),
            "ending": "bad-input",
            "error": { "message": e.to_string().trim_end(), "phase": "validate", "steps": [] },
            "steps_done": [], "steps_running": [], "created": [], "deleted": [], "ledger": null,
        });
        Journal::new("", OutputFormat::Json, None).print("", &document);
    }
    e.exit()
}

/// Whether a raw command line asks for `--output json` (`-o json`, `--output=json`, `-ojson`).
fn wants_json(args: impl Iterator<Item = String>) -> bool {
    let mut previous_was_flag = false;
    for arg in args {
        if arg == "--" {
            return false;
        }
        if (previous_was_flag && arg == "json")
            || ["--output=json", "-ojson", "-o=json"].contains(&arg.as_str())
        {
            return true;
        }
        previous_was_flag = arg == "--output" || arg == "-o";
    }
    false
}

/// The records of `these` not in `but_not`, as `{step, kind, id}`.
fn records(these: &[Record], but_not: &[Record]) -> Vec<Value> {
    these
        .iter()
        .filter(|r| !but_not.iter().any(|o| o.kind == r.kind && o.id == r.id))
        .map(|r| json!({ "step": r.step, "kind": r.kind, "id": r.id }))
        .collect()
}

/// Progress that also notes which steps ran, finished and failed, for the journal.
pub struct Tracking {
    pub inner: Arc<dyn Progress>,
    pub journal: Arc<Journal>,
}

impl Progress for Tracking {
    fn started(&self, step: &str, what: &str) {
        self.journal.state().running.insert(step.to_string());
        self.inner.started(step, what);
    }
    fn note(&self, step: &str, msg: &str) {
        self.inner.note(step, msg);
    }
    fn finished(&self, step: &str, summary: &str, elapsed: Duration) {
        let mut state = self.journal.state();
        state.running.remove(step);
        state.done.push(json!({ "step": step, "summary": summary }));
        drop(state);
        self.inner.finished(step, summary, elapsed);
    }
    fn failed(&self, step: &str, error: &str) {
        let mut state = self.journal.state();
        state.running.remove(step);
        state.failed.push(json!({ "step": step, "error": error }));
        drop(state);
        self.inner.failed(step, error);
    }
    fn message(&self, msg: &str) {
        self.inner.message(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_wanted_however_it_is_spelled() {
        let wants = |line: &str| wants_json(line.split(' ').map(String::from));
        for yes in [
            "status --output json",
            "-o json status",
            "--output=json x",
            "x -ojson",
        ] {
            assert!(wants(yes), "{yes}");
        }
        for no in [
            "status",
            "status --output text",
            "status json",
            "x -- --output json",
        ] {
            assert!(!wants(no), "{no}");
        }
    }
}
