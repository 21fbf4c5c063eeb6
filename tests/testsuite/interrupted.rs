//! Runs killed part-way. The proxy lets one mutating request reach the emulator and never answers
//! it, so the resource exists but ecsctl never learns its id — the worst moment to die. ecsctl is
//! killed right then; the next bootstrap must finish the stack without duplicating anything, and
//! destroy must then leave the account as it was.

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
