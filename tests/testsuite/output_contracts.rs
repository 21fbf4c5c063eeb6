//! What ecsctl promises about its output, on every way a run can end: with `--output json`
//! exactly one JSON document on stdout (success, bad input, an AWS failure, a timeout, Ctrl-C,
//! SIGTERM) saying what was done so far; a closed stdout ends quietly with the run's own exit
//! status; a ledger that cannot be saved is said, never hidden behind "it is in the ledger".
//! Real processes and real signals, against the emulator through the proxy.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::cli::{Ecsctl, Invocation, Output};
use crate::support::pool;
use crate::support::prefect::API_KEY;
use crate::support::proxy::Fault;
use crate::support::running::Running;
use crate::support::stack::Stack;

/// How long a run may take to end once it has been signalled or released.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The one JSON document on stdout; fails if there is none, more than one, or anything else.
fn one_document(out: &Output, when: &str) -> Value {
    let mut documents = serde_json::Deserializer::from_str(&out.stdout).into_iter::<Value>();
    let first = match documents.next() {
        Some(Ok(doc)) => doc,
        other => panic!(
            "{when}: stdout is not a JSON document ({other:?})\n--- stdout\n{}\n--- stderr\n{}",
            out.stdout, out.stderr
        ),
    };
    assert!(
        documents.next().is_none(),
        "{when}: more than one JSON document on stdout:\n{}",
        out.stdout
    );
    first
}

/// A failure document: its exit code matches the process's, its ending and phase are these.
fn assert_failure(doc: &Value, out: &Output, ending: &str, phase: &str, when: &str) {
    assert_eq!(doc["ok"], false, "{when}: {doc:#}");
    assert_eq!(doc["exit_code"], out.code.unwrap(), "{when}: {doc:#}");
    assert_eq!(doc["ending"], ending, "{when}: {doc:#}");
    assert_eq!(doc["error"]["phase"], phase, "{when}: {doc:#}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{when}: no error message: {doc:#}"
    );
}

/// The ids of the document's `created` (or `deleted`) records.
fn ids(doc: &Value, field: &str) -> Vec<String> {
    doc[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} list: {doc:#}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// The ids the pool's ledger on disk records as created.
fn ledger_ids(s: &Stack, pool: &str) -> Vec<String> {
    let text = std::fs::read_to_string(s.ledger(pool)).expect("the ledger");
    let ledger: Value = serde_json::from_str(&text).expect("the ledger is JSON");
    ids(&ledger, "created")
}

impl Stack {
    /// `bootstrap --pool <pool> --yes --wait-timeout <timeout> --output json`: a run that waits.
    fn waiting_bootstrap(&self, pool: &str, timeout: &str) -> Invocation {
        self.ecsctl
            .cmd(["bootstrap", "--pool", pool, "--yes", "--output", "json"])
            .args(["--wait-timeout", timeout])
            .env("PREFECT_API_URL", self.prefect_api_url())
            .env("PREFECT_API_KEY", API_KEY)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_prints_one_json_document_on_every_exit_path() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    let json = ["--output", "json"];

    // Bad input, found by ecsctl and by the argument parser: exit 2, no AWS call.
    let out = s.bootstrap_cmd("bad pool", &json).run();
    out.assert_code(2);
    let doc = one_document(&out, "a bad pool name");
    assert_failure(&doc, &out, "bad-input", "validate", "a bad pool name");
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("pool name 'bad pool'"));
    let out = s
        .bootstrap_cmd("ok", &["--cpu", "lots", "-o", "json"])
        .run();
    out.assert_code(2);
    let doc = one_document(&out, "a --cpu clap refuses");
    assert_failure(&doc, &out, "bad-input", "validate", "a --cpu clap refuses");
    assert!(
        out.stderr.contains("invalid value 'lots'"),
        "{}",
        out.stderr
    );
    assert!(s.proxy.calls().is_empty(), "{:?}", s.proxy.calls());

    // An AWS failure: the service cannot be created; everything before it was.
    s.proxy.fail_action("CreateService", Fault::ServerError);
    let out = s.bootstrap("contracts", &json);
    out.assert_code(1);
    s.proxy.clear_faults();
    let doc = one_document(&out, "CreateService failing");
    assert_failure(&doc, &out, "failed", "apply", "CreateService failing");
    let failed: Vec<&str> = doc["error"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["step"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["service"], "{doc:#}");
    assert_eq!(doc["pool"], "contracts");
    assert_eq!(doc["ledger"]["saved"], true, "{doc:#}");
    let created = ids(&doc, "created");
    assert!(created.len() >= 10, "{doc:#}");
    assert_eq!(
        created,
        ledger_ids(&s, "contracts"),
        "created = the ledger's records"
    );
    assert!(doc["steps_done"].as_array().unwrap().len() >= 5, "{doc:#}");

    // Success: the result document, and only it.
    let out = s.bootstrap("contracts", &json);
    out.assert_success();
    let doc = one_document(&out, "the finishing run");
    assert_eq!(doc["changed"], true, "{doc:#}");

    // A timeout waiting for the service (the emulator never runs its tasks).
    let out = s.waiting_bootstrap("contracts", "1s").run();
    out.assert_code(1);
    let doc = one_document(&out, "a timed-out wait");
    assert_failure(&doc, &out, "failed", "wait", "a timed-out wait");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not become steady within 1s"),
        "{doc:#}"
    );

    s.destroy_all_and_assert_unchanged(&["contracts"], &pristine)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_bootstrap_that_times_out_lists_everything_it_created() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    let out = s.waiting_bootstrap("timed-out", "1s").run();
    out.assert_code(1);
    let doc = one_document(&out, "a fresh bootstrap timing out");
    assert_failure(&doc, &out, "failed", "wait", "a fresh bootstrap timing out");
    let created = ids(&doc, "created");
    assert_eq!(created, ledger_ids(&s, "timed-out"));
    pool::assert_complete(
        &s.aws,
        &s.ecsctl.state_dir(),
        "timed-out",
        "after the timeout",
    )
    .await;
    let steps: Vec<&str> = doc["steps_done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["step"].as_str().unwrap())
        .collect();
    assert!(
        steps.contains(&"service") && steps.contains(&"work-pool"),
        "{doc:#}"
    );
    s.destroy_all_and_assert_unchanged(&["timed-out"], &pristine)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_destroy_print_one_json_document_on_every_exit_path() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    let status = |pool: &str| s.ecsctl.cmd(["status", "--pool", pool, "--output", "json"]);

    // Status: bad input, its report (unhealthy: the emulator runs no task), an AWS failure.
    let out = status("").run();
    out.assert_code(2);
    assert_failure(
        &one_document(&out, "status, empty pool"),
        &out,
        "bad-input",
        "validate",
        "",
    );
    s.bootstrap("contract-st", &[]).assert_success();
    let out = status("contract-st").run();
    out.assert_code(1);
    let report = one_document(&out, "status of an unhealthy pool");
    assert_eq!(report["verdict"], "unhealthy", "{report:#}");
    s.proxy.fail_action("DescribeClusters", Fault::ServerError);
    let out = status("contract-st").run();
    s.proxy.clear_faults();
    out.assert_code(1);
    let doc = one_document(&out, "status with DescribeClusters failing");
    assert_failure(
        &doc,
        &out,
        "failed",
        "look",
        "status with DescribeClusters failing",
    );
    assert_eq!(doc["command"], "status");

    // Destroy: an AWS failure part-way says what it deleted; then success.
    let before = ledger_ids(&s, "contract-st");
    s.proxy.fail_action("DeleteCluster", Fault::ServerError);
    let out = s.destroy("contract-st", &["--output", "json"]);
    s.proxy.clear_faults();
    out.assert_code(1);
    let doc = one_document(&out, "destroy with DeleteCluster failing");
    assert_failure(
        &doc,
        &out,
        "failed",
        "verify",
        "destroy with DeleteCluster failing",
    );
    let deleted = ids(&doc, "deleted");
    assert!(!deleted.is_empty(), "{doc:#}");
    let left = ledger_ids(&s, "contract-st");
    for id in &deleted {
        assert!(before.contains(id) && !left.contains(id), "{id}: {doc:#}");
    }
    assert!(left.iter().any(|id| id.contains(":cluster/")), "{left:?}");
    let out = s.destroy("contract-st", &["--output", "json"]);
    out.assert_success();
    assert_eq!(
        one_document(&out, "the finishing destroy")["left"],
        serde_json::json!([])
    );
    pristine.assert_unchanged(&s.inventory().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_and_sigterm_end_with_one_json_document_of_what_was_done() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    for (signal, code, ending) in [("INT", 130, "interrupted"), ("TERM", 143, "terminated")] {
        let pool = format!("json-{}", signal.to_lowercase());
        let when = format!("bootstrap --output json, SIG{signal} at mutating call 8");
        let held = s.hold(s.bootstrap_cmd(&pool, &["--output", "json"]), 8);
        held.signal(signal);
        let out = held.finish(RUN_TIMEOUT);
        out.assert_code(code);
        let doc = one_document(&out, &when);
        assert_failure(&doc, &out, ending, "apply", &when);
        let created = ids(&doc, "created");
        assert!(!created.is_empty(), "{when}: {doc:#}");
        assert_eq!(created, ledger_ids(&s, &pool), "{when}");
        assert!(
            !doc["steps_running"].as_array().unwrap().is_empty(),
            "{when}: the held step is not running: {doc:#}"
        );
        s.bootstrap(&pool, &[]).assert_success();
    }

    // Destroy held part-way and terminated: what it deleted so far.
    let held = s.hold(s.destroy_cmd("json-int", &["--output", "json"]), 3);
    held.signal("TERM");
    let out = held.finish(RUN_TIMEOUT);
    out.assert_code(143);
    let doc = one_document(&out, "destroy, SIGTERM at mutating call 3");
    assert_failure(&doc, &out, "terminated", "delete", "destroy, SIGTERM");
    assert_eq!(doc["command"], "destroy");

    // Status makes no change to hold it at: it is held by a slow AWS instead, and signalled
    // once it said it looks by tags (after its first call).
    s.lose_ledger("json-term").await;
    s.proxy.set_latency(Duration::from_secs(2));
    let mut running = Running::new(
        s.ecsctl
            .cmd(["status", "--pool", "json-term", "--output", "json"])
            .spawn(),
    );
    assert!(running.wait_for_stderr("no ledger for pool", RUN_TIMEOUT));
    running.signal("INT");
    let out = running.finish(RUN_TIMEOUT);
    s.proxy.set_latency(Duration::ZERO);
    out.assert_code(130);
    let doc = one_document(&out, "status, Ctrl-C");
    assert_failure(&doc, &out, "interrupted", "look", "status, Ctrl-C");

    s.destroy_all_and_assert_unchanged(&["json-int", "json-term"], &pristine)
        .await;
}

/// Runs `invocation` with its stdout a pipe nobody reads: closed before ecsctl writes.
fn with_closed_stdout(invocation: Invocation) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let mut command = invocation.into_command();
    let child = command
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ecsctl");
    let out = child.wait_with_output().expect("wait for ecsctl");
    Output {
        code: out.status.code(),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_quiet(out: &Output, code: i32, when: &str) {
    out.assert_code(code);
    for noise in ["panicked", "Broken pipe", "ecsctl: error"] {
        assert!(
            !out.stderr.contains(noise),
            "{when}: stderr says {noise:?}:\n{}",
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_quietly_with_the_runs_own_exit_status() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    let out = with_closed_stdout(s.bootstrap_cmd("piped", &["--output", "json"]));
    assert_quiet(&out, 0, "bootstrap --output json | (closed)");
    pool::assert_complete(
        &s.aws,
        &s.ecsctl.state_dir(),
        "piped",
        "after a closed stdout",
    )
    .await;
    // Unhealthy (the emulator runs no task): 1, as with an open stdout.
    let status = || s.ecsctl.cmd(["status", "--pool", "piped"]);
    status().run().assert_code(1);
    let out = with_closed_stdout(status());
    assert_quiet(&out, 1, "status | (closed)");
    assert!(
        out.stderr.contains("ecsctl: "),
        "no summary line:\n{}",
        out.stderr
    );

    // A result that cannot be written at all (a full disk) is no success, and says why.
    let mut dry_run = s.bootstrap_cmd("piped", &["--dry-run"]).into_command();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out: Output = dry_run.stdout(full).output().unwrap().into();
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("ecsctl: cannot write the result: No space left on device"),
        "{}",
        out.stderr
    );

    // As people type it: `| head -1` and `| head -c1`, the status of ecsctl kept by pipefail.
    let binary = env!("CARGO_BIN_EXE_ecsctl");
    for head in ["head -1", "head -c1"] {
        let mut command = status().into_command();
        let script = format!(
            "set -o pipefail; \"$0\" status --pool piped --output json | {head} >/dev/null"
        );
        let out: Output = command_in_bash(&mut command, binary, &script);
        assert_quiet(&out, 1, head);
    }
    s.destroy_all_and_assert_unchanged(&["piped"], &pristine)
        .await;
}

/// Runs `script` in bash with `command`'s environment, `$0` being the ecsctl binary.
fn command_in_bash(command: &mut std::process::Command, binary: &str, script: &str) -> Output {
    let mut bash = std::process::Command::new("bash");
    bash.env_clear()
        .envs(command.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(["-c", script, binary])
        .stdin(Stdio::null());
    bash.output().expect("run bash").into()
}

/// An ecsctl that cannot write where its file permissions say it may not: as root, started
/// without CAP_DAC_OVERRIDE (setpriv), so that a read-only directory is read-only to it too.
fn ecsctl_bound_by_permissions(s: &Stack, dir: &std::path::Path) -> Ecsctl {
    let binary = env!("CARGO_BIN_EXE_ecsctl");
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0");
    if !root {
        return Ecsctl::with_binary(s.proxy.url(), binary).with_prefect(s.prefect_api_url());
    }
    let wrapper = dir.join("ecsctl-without-dac-override");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec setpriv --bounding-set -dac_override,-dac_read_search -- {binary} \"$@\"\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    Ecsctl::with_binary(s.proxy.url(), wrapper).with_prefect(s.prefect_api_url())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_that_cannot_be_saved_is_said_and_destroy_still_finds_everything() {
    use std::os::unix::fs::PermissionsExt;
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    let dir = tempfile::tempdir().unwrap();
    let ecsctl = ecsctl_bound_by_permissions(&s, dir.path());
    let pool = "unsaved";
    ecsctl.bootstrap(pool).run().assert_success();
    let ledger = pool::ledger_path(&ecsctl.state_dir(), pool);
    let ledger_dir = ledger.parent().unwrap().to_path_buf();

    // The secret deleted behind ecsctl's back: the next run creates it anew, under a new ARN
    // the ledger must record, in a state directory that has become read-only.
    let secret = format!("ecsctl/{pool}/prefect-api-key");
    s.aws
        .secrets
        .delete_secret()
        .secret_id(&secret)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let on_disk_before = std::fs::read_to_string(&ledger).unwrap();
    std::fs::set_permissions(&ledger_dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let out = ecsctl.bootstrap(pool).args(["--output", "json"]).run();
    std::fs::set_permissions(&ledger_dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    out.assert_code(1);
    for needle in [
        "could not be saved",
        "Permission denied",
        "is NOT recorded in it",
        &format!("ecsctl:pool={pool}"),
        &format!("`ecsctl destroy --pool {pool}` finds it by its tags"),
    ] {
        assert!(
            out.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            out.stderr
        );
    }
    assert!(
        !out.stderr.contains("what was created is recorded in"),
        "claims the ledger has it:\n{}",
        out.stderr
    );
    let doc = one_document(&out, "a bootstrap with a read-only state dir");
    assert_failure(&doc, &out, "failed", "apply", "a read-only state dir");
    assert_eq!(doc["ledger"]["saved"], false, "{doc:#}");
    assert!(doc["ledger"]["error"]
        .as_str()
        .unwrap()
        .contains("Permission denied"));
    let created = ids(&doc, "created");
    assert_eq!(created.len(), 1, "{doc:#}");
    assert!(created[0].contains(":secret:ecsctl/unsaved/"), "{doc:#}");
    assert_eq!(
        std::fs::read_to_string(&ledger).unwrap(),
        on_disk_before,
        "the ledger on disk changed"
    );
    assert!(!on_disk_before.contains(&created[0]));

    // What the message promises: destroy finds the unrecorded secret by its tags.
    ecsctl.destroy(pool).run().assert_success();
    pristine.assert_unchanged(&s.inventory().await);
}
