//! Runs killed part-way. The proxy lets one mutating request reach the emulator and never answers
//! it, so the resource exists but ecsctl never learns its id — the worst moment to die. ecsctl is
//! killed right then; the next bootstrap must finish the stack without duplicating anything, and
//! destroy must then leave the account as it was.

use std::time::Duration;

use crate::support::pool;
use crate::support::stack::Stack;

#[tokio::test(flavor = "multi_thread")]
async fn a_bootstrap_killed_at_any_moment_is_finished_by_the_next_run() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;

    // How many mutating calls a whole bootstrap makes, to spread the kills over all of them.
    s.proxy.clear();
    s.bootstrap("killed-reference", &[]).assert_success();
    let total = s.stack_changes().len();
    assert!(
        total >= 20,
        "a fresh bootstrap makes {total} mutating calls"
    );
    s.destroy("killed-reference", &[]).assert_success();

    let kills = 20.min(total);
    for k in 0..kills {
        let at = k * total / kills;
        let name = format!("killed-{at}");
        s.hold(s.bootstrap_cmd(&name, &[]), at).kill();
        s.unlock(&name);

        s.bootstrap(&name, &[]).assert_success();
        let when = format!("after a kill at mutating call {at} and a re-run");
        // One of everything, and everything of the pool made it into the ledger, including
        // what the killed run's last call created.
        pool::assert_complete(&s.aws, &s.ecsctl.state_dir(), &name, &when).await;
        s.destroy_all_and_assert_unchanged(&[&name], &pristine)
            .await;
    }
}

/// SIGTERM, what CI sends to cancel a job, is handled like Ctrl-C: exit 143, the ledger saved,
/// the lock released (the next run takes it without waiting), the same guidance, and a re-run
/// finishes the stack.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_is_handled_like_ctrl_c() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    let pool = "sigterm";
    let held = s.hold(s.bootstrap_cmd(pool, &[]), 6);
    held.signal("TERM");
    let out = held.finish(Duration::from_secs(60));
    out.assert_code(143);
    let last = out.stderr.lines().last().unwrap_or_default();
    for needle in [
        "terminated (SIGTERM)",
        "what was created so far is in the ledger",
        &format!("run `ecsctl bootstrap --pool {pool}` again to finish"),
        &format!("`ecsctl destroy --pool {pool}`"),
    ] {
        assert!(
            last.contains(needle),
            "the last line lacks {needle:?}:\n{}",
            out.stderr
        );
    }
    let text = std::fs::read_to_string(s.ledger(pool)).expect("the ledger was saved");
    let ledger: serde_json::Value = serde_json::from_str(&text).expect("the ledger is JSON");
    assert!(
        !ledger["created"].as_array().unwrap().is_empty(),
        "the ledger records nothing:\n{text}"
    );

    // No --wait-lock: a lock left behind would fail this run at once.
    s.bootstrap(pool, &[]).assert_success();
    pool::assert_complete(
        &s.aws,
        &s.ecsctl.state_dir(),
        pool,
        "after SIGTERM and a re-run",
    )
    .await;

    // Destroy too, with its own guidance.
    let held = s.hold(s.destroy_cmd(pool, &[]), 2);
    held.signal("TERM");
    let out = held.finish(Duration::from_secs(60));
    out.assert_code(143);
    let wanted = format!("terminated (SIGTERM); what is left is still in the ledger: run `ecsctl destroy --pool {pool}` again to finish");
    assert!(out.stderr.contains(&wanted), "{}", out.stderr);
    s.destroy_all_and_assert_unchanged(&[pool], &pristine).await;
}
