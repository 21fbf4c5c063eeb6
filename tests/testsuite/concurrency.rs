//! Runs at the same time, and runs stopped with Ctrl-C.
//!
//! A run is held mid-way deterministically: the proxy lets its nth mutating request reach the
//! emulator and never answers it, so the run is alive, holds its pool's lock, and has created
//! something it has not heard back about.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::cli::{Invocation, Output};
use crate::support::pool::{assert_complete, ledger_path};
use crate::support::proxy::Proxy;
use crate::support::running::Running;
use crate::support::stack::Stack;

/// Generous bounds for one run on a loaded machine; runs normally take a second or two.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

impl Stack {
    /// A second way to the emulator through its own proxy, sharing this stack's state directory
    /// (and so its ledgers and locks): whatever a run through it does is recorded apart.
    fn other_door(&self) -> Proxy {
        Proxy::start(&self.emulator.endpoint())
    }

    fn through(&self, door: &Proxy, invocation: Invocation) -> Invocation {
        invocation
            .env("AWS_ENDPOINT_URL", door.url())
            .env("ECSCTL_STATE_DIR", self.ecsctl.state_dir())
    }

    /// Starts a bootstrap of `pool` and returns once its `nth` mutating request has reached the
    /// emulator, unanswered: from then on it holds the pool's lock until it is killed.
    fn held_bootstrap(&self, pool: &str, nth: usize) -> Running {
        self.hold(self.bootstrap_cmd(pool, &[]), nth)
    }

    /// The pool is complete with one of everything, all of it in the ledger.
    async fn assert_complete(&self, pool: &str, when: &str) {
        assert_complete(&self.aws, &self.ecsctl.state_dir(), pool, when).await;
    }
}

fn locked_message(pool: &str) -> String {
    format!("pool '{pool}' is locked by another ecsctl run")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_on_a_locked_pool_stops_at_once_naming_the_holder() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    let mut first = s.held_bootstrap("shared", 3);

    // The second run goes through its own proxy, so its calls are told apart from the first's.
    let door = s.other_door();
    for (what, run) in [
        ("bootstrap", s.bootstrap_cmd("shared", &[])),
        ("destroy", s.destroy_cmd("shared", &[])),
    ] {
        let out = s.through(&door, run).run();
        out.assert_code(1);
        for needle in [
            locked_message("shared"),
            format!("pid {}", first.pid()),
            "--wait-lock".to_string(),
        ] {
            assert!(
                out.stderr.contains(&needle),
                "{what}: stderr lacks {needle:?}:\n{}",
                out.stderr
            );
        }
        let changes: Vec<String> = door
            .mutating_calls()
            .into_iter()
            .map(|c| c.action)
            .collect();
        assert!(changes.is_empty(), "{what} changed things: {changes:?}");
    }
    assert!(!first.has_exited(), "the first run ended while held");

    // A different pool is not held up by it.
    let out = s.through(&door, s.bootstrap_cmd("unrelated", &[])).run();
    out.assert_success();

    // The first run dies (its lock in the account stays, and is broken as the error says); the
    // pool is finished by the next run, without duplicates.
    first.kill();
    s.unlock("shared");
    s.bootstrap("shared", &[]).assert_success();
    s.assert_complete("shared", "after the locked-out runs and a re-run")
        .await;
    s.assert_complete("unrelated", "beside a locked pool").await;
    s.destroy_all_and_assert_unchanged(&["shared", "unrelated"], &pristine)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstraps_of_one_pool_started_together_never_duplicate_anything() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    // Unheld, which run takes the lock first (and whether the others still find it taken) is up
    // to the scheduler; every outcome must be a success or a clean "locked".
    let runs: Vec<Running> = (0..3)
        .map(|_| Running::new(s.bootstrap_cmd("raced", &[]).spawn()))
        .collect();
    let outs: Vec<Output> = runs.into_iter().map(|r| r.finish(RUN_TIMEOUT)).collect();
    for out in &outs {
        assert!(
            out.success() || (out.code == Some(1) && out.stderr.contains(&locked_message("raced"))),
            "neither a success nor locked out:\n{}",
            out.stderr
        );
    }
    assert!(outs.iter().any(Output::success), "no run got through");
    s.assert_complete("raced", "after three bootstraps at once")
        .await;
    s.destroy_all_and_assert_unchanged(&["raced"], &pristine)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_wait_lock_the_second_run_waits_then_finishes_the_pool() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    // Held at its first change: whatever that created is known to nobody but its tags.
    let mut first = s.held_bootstrap("waited", 0);

    let door = s.other_door();
    let mut second = Running::new(
        s.through(&door, s.bootstrap_cmd("waited", &[]))
            .arg("--wait-lock")
            .spawn(),
    );
    assert!(
        second.wait_for_stderr(&locked_message("waited"), RUN_TIMEOUT),
        "the second run never said it waits for the lock:\n{}",
        second.stderr_so_far()
    );
    let waiting = second.stderr_so_far();
    assert!(
        waiting.contains(&format!("pid {}", first.pid())),
        "the wait does not name the holder:\n{waiting}"
    );
    // Waiting, it has changed nothing: it looks at the pool only once it holds the lock.
    assert!(
        !second.has_exited(),
        "the second run did not wait:\n{waiting}"
    );
    assert!(door.mutating_calls().is_empty());

    first.kill();
    s.unlock("waited");
    let out = second.finish(RUN_TIMEOUT);
    out.assert_success();
    assert!(
        !door.mutating_calls().is_empty(),
        "the second run changed nothing after the first was killed"
    );
    s.assert_complete("waited", "after waiting for a killed run")
        .await;
    s.destroy_all_and_assert_unchanged(&["waited"], &pristine)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstraps_and_destroys_of_different_pools_run_side_by_side() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    let pools = ["side-a", "side-b", "side-c"];
    let runs: Vec<Running> = pools
        .iter()
        .map(|pool| Running::new(s.bootstrap_cmd(pool, &[]).spawn()))
        .collect();
    for (pool, run) in pools.iter().zip(runs) {
        let out = run.finish(RUN_TIMEOUT);
        assert!(out.success(), "bootstrap of {pool}:\n{}", out.stderr);
    }
    for pool in pools {
        s.assert_complete(pool, "after bootstraps side by side")
            .await;
    }

    let runs: Vec<Running> = pools
        .iter()
        .map(|pool| Running::new(s.destroy_cmd(pool, &[]).spawn()))
        .collect();
    for (pool, run) in pools.iter().zip(runs) {
        let out = run.finish(RUN_TIMEOUT);
        assert!(out.success(), "destroy of {pool}:\n{}", out.stderr);
    }
    pristine.assert_unchanged(&s.inventory().await);
}

/// Ctrl-C is told apart from a crash: exit 130, a word on how to go on, the ledger saved.
fn assert_interrupted(out: &Output, pool: &str, when: &str) {
    out.assert_code(130);
    let last = out.stderr.lines().last().unwrap_or_default();
    for needle in [
        "interrupted".to_string(),
        format!("ecsctl bootstrap --pool {pool}"),
        format!("ecsctl destroy --pool {pool}"),
    ] {
        assert!(
            last.contains(&needle),
            "{when}: the last line of stderr lacks {needle:?}:\n{}",
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_bootstrap_stops_cleanly_and_a_re_run_finishes() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    s.proxy.clear();
    s.bootstrap("ctrl-c-reference", &[]).assert_success();
    // The stack's own changes: the copies of the ledger in the account come and go with timing.
    let total = s.stack_changes().len();
    s.destroy("ctrl-c-reference", &[]).assert_success();

    // At the first change after taking the account lock (call 0), one in the middle, and the
    // last.
    let points: BTreeSet<usize> = [1, total / 2, total - 1].into();
    for at in points {
        let pool = format!("sigint-{at}");
        let when = format!("Ctrl-C at mutating call {at} of {total}");
        let held = s.held_bootstrap(&pool, at);
        held.signal("INT");
        let out = held.finish(RUN_TIMEOUT);
        assert_interrupted(&out, &pool, &when);

        let path = ledger_path(&s.ecsctl.state_dir(), &pool);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{when}: no ledger at {}: {e}", path.display()));
        let ledger: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{when}: the ledger is not JSON ({e}):\n{text}"));
        assert_eq!(ledger["pool"], pool.as_str(), "{when}: {text}");

        s.bootstrap(&pool, &[]).assert_success();
        s.assert_complete(&pool, &format!("after {when} and a re-run"))
            .await;
        s.destroy_all_and_assert_unchanged(&[&pool], &pristine)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_ends_a_wait_for_the_lock() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    let mut first = s.held_bootstrap("contended", 2);
    let door = s.other_door();
    let mut second = Running::new(
        s.through(&door, s.bootstrap_cmd("contended", &[]))
            .arg("--wait-lock")
            .spawn(),
    );
    assert!(
        second.wait_for_stderr(&locked_message("contended"), RUN_TIMEOUT),
        "the second run never said it waits for the lock:\n{}",
        second.stderr_so_far()
    );
    second.signal("INT");
    // It must end while the first still holds the lock, not once the lock is free.
    let out = second.finish(Duration::from_secs(20));
    assert_interrupted(&out, "contended", "Ctrl-C while waiting for the lock");
    assert!(!first.has_exited(), "the first run ended while held");
    assert!(door.mutating_calls().is_empty());

    first.kill();
    s.unlock("contended");
    s.bootstrap("contended", &[]).assert_success();
    s.assert_complete("contended", "after the interrupted wait and a re-run")
        .await;
    s.destroy_all_and_assert_unchanged(&["contended"], &pristine)
        .await;
}
