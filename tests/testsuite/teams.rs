//! Runs from different machines on one pool meet in the account: its lock and its ledger copy
//! live there. "Machines" here are runs with different state directories (no shared local
//! ledger, no shared lock file).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::support::cli::{Invocation, Output};
use crate::support::pool::{assert_complete, assert_one_of_each, existing_ids, ledger_path};
use crate::support::running::Running;
use crate::support::stack::Stack;

const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// Another machine: a state directory of its own.
struct Machine(TempDir);

impl Machine {
    fn new() -> Machine {
        Machine(tempfile::tempdir().unwrap())
    }

    fn dir(&self) -> PathBuf {
        self.0.path().to_path_buf()
    }

    fn run(&self, invocation: Invocation) -> Invocation {
        invocation.env("ECSCTL_STATE_DIR", self.0.path())
    }
}

fn locked_out(out: &Output, pool: &str) -> bool {
    out.code == Some(1)
        && out
            .stderr
            .contains(&format!("pool '{pool}' is locked by another ecsctl run"))
}

/// Every run either did its work or stopped cleanly at the lock, naming the way out.
fn assert_clean(outs: &[Output], pool: &str) {
    for out in outs {
        assert!(
            out.success() || (locked_out(out, pool) && out.stderr.contains("ecsctl unlock")),
            "neither a success nor locked out:\n{}",
            out.stderr
        );
    }
}

impl Stack {
    fn start_on(&self, machine: &Machine, invocation: Invocation) -> Running {
        Running::new(machine.run(invocation).spawn())
    }

    async fn assert_complete_in(&self, dir: &Path, pool: &str, when: &str) {
        assert_complete(&self.aws, dir, pool, when).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_machines_bootstrapping_one_pool_at_once_build_one_stack() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    for round in 0..3 {
        let pool = format!("raced-{round}");
        let (a, b) = (Machine::new(), Machine::new());
        // Round 0 and 2: one may be locked out; round 1: the loser waits and then finds it done.
        let wait: &[&str] = if round == 1 { &["--wait-lock"] } else { &[] };
        let runs = [
            s.start_on(&a, s.bootstrap_cmd(&pool, wait)),
            s.start_on(&b, s.bootstrap_cmd(&pool, wait)),
        ];
        let outs: Vec<Output> = runs.into_iter().map(|r| r.finish(RUN_TIMEOUT)).collect();
        assert_clean(&outs, &pool);
        assert!(outs.iter().any(Output::success), "no run got through");
        if round == 1 {
            assert!(outs.iter().all(Output::success), "{outs:?}");
        }
        let when = format!("round {round}: after two machines bootstrapped at once");
        assert_one_of_each(&s.aws, &pool, &when).await;
        // The machine that built it has it all in its ledger (one that found it all in place,
        // after waiting, changed nothing: not even its own ledger file).
        let built = |m: &Machine| ledger_path(&m.dir(), &pool).exists();
        let (winner, other) = if built(&a) { (&a, &b) } else { (&b, &a) };
        s.assert_complete_in(&winner.dir(), &pool, &when).await;
        // The other machine, whatever it did, destroys it all.
        other.run(s.destroy_cmd(&pool, &[])).run().assert_success();
        assert_eq!(existing_ids(&s.aws, &pool).await, Vec::<String>::new());
    }
    pristine.assert_unchanged(&s.inventory().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bootstrap_racing_a_destroy_from_another_machine_never_interleaves() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    for round in 0..3 {
        let pool = format!("tug-{round}");
        let (a, b) = (Machine::new(), Machine::new());
        a.run(s.bootstrap_cmd(&pool, &[])).run().assert_success();
        let runs = [
            s.start_on(&a, s.destroy_cmd(&pool, &[])),
            s.start_on(&b, s.bootstrap_cmd(&pool, &["--desired-count", "2"])),
        ];
        let outs: Vec<Output> = runs.into_iter().map(|r| r.finish(RUN_TIMEOUT)).collect();
        assert_clean(&outs, &pool);
        // Whoever ran last decided: the whole stack, or nothing of it.
        let left = existing_ids(&s.aws, &pool).await;
        if !left.is_empty() {
            assert_one_of_each(&s.aws, &pool, &format!("round {round}")).await;
        }
        b.run(s.destroy_cmd(&pool, &[])).run().assert_success();
        assert_eq!(existing_ids(&s.aws, &pool).await, Vec::<String>::new());
    }
    pristine.assert_unchanged(&s.inventory().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_holder_is_named_its_records_are_seen_elsewhere_and_unlock_frees_the_pool() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    let (a, b) = (Machine::new(), Machine::new());
    // Killed half-way through, holding the lock.
    let mut killed = s.hold(a.run(s.bootstrap_cmd("orphan", &[])), 12);
    let pid = killed.pid();
    killed.kill();

    // Another machine, with no ledger of its own, sees what the killed run had recorded: its
    // inputs included (a ledger rebuilt from tags has none).
    let out = b
        .run(
            s.ecsctl
                .cmd(["status", "--pool", "orphan", "--output", "json"]),
        )
        .run();
    let report: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("status JSON does not parse ({e}):\n{out:?}"));
    assert_eq!(report["ledger"]["has_inputs"], true, "{report:#}");

    // It is told who holds the pool and how to free it, and changes nothing.
    s.clear_calls();
    let out = b.run(s.bootstrap_cmd("orphan", &[])).run();
    assert!(locked_out(&out, "orphan"), "{}", out.stderr);
    for needle in [format!("pid {pid}"), "ecsctl unlock --pool orphan".into()] {
        assert!(out.stderr.contains(&needle), "{needle:?}:\n{}", out.stderr);
    }
    assert!(
        s.mutating_actions().iter().all(|a| a == "PutParameter"),
        "{:?}",
        s.mutating_actions()
    );

    // unlock says whose lock it breaks; then the pool is finished without duplicates.
    let out = s.unlock("orphan");
    assert!(out.stdout.contains(&format!("pid {pid}")), "{}", out.stdout);
    let again = s.ecsctl.cmd(["unlock", "--pool", "orphan"]).run();
    assert!(again.stdout.contains("is not locked"), "{}", again.stdout);
    b.run(s.bootstrap_cmd("orphan", &[])).run().assert_success();
    s.assert_complete_in(
        &b.dir(),
        "orphan",
        "after a killed run elsewhere and unlock",
    )
    .await;
    // The account's copy of a whole stack's ledger fits a free standard parameter (4 KB).
    let copy = s
        .aws
        .ssm
        .get_parameter()
        .name("/ecsctl/orphan/ledger")
        .send()
        .await
        .expect("the ledger's copy in the account");
    let text = copy.parameter().and_then(|p| p.value()).unwrap_or_default();
    let ledger: Value = serde_json::from_str(text).expect("the copy is JSON");
    assert_eq!(ledger["pool"], "orphan");
    assert!(text.len() < 4096, "{} bytes:\n{text}", text.len());
    eprintln!(
        "the account's ledger copy of a whole stack: {} bytes",
        text.len()
    );
    a.run(s.destroy_cmd("orphan", &[])).run().assert_success();
    pristine.assert_unchanged(&s.inventory().await);
}
