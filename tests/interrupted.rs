//! Runs killed part-way. The proxy lets one mutating request reach the emulator and never answers
//! it, so the resource exists but ecsctl never learns its id — the worst moment to die. ecsctl is
//! killed right then; the next bootstrap must finish the stack without duplicating anything, and
//! destroy must then leave the account as it was.

mod support;

use std::time::Duration;

use support::aws::Clients;
use support::cli::{Ecsctl, Output};
use support::emulator::Emulator;
use support::inventory::Inventory;
use support::pool;
use support::proxy::Proxy;

const API_URL: &str = "http://prefect.internal:4200/api";
const API_KEY: &str = "pnu_kill_test_key";

fn bootstrap(ecsctl: &Ecsctl, pool: &str) -> support::cli::Invocation {
    ecsctl
        .cmd(["bootstrap", "--pool", pool, "--yes", "--no-wait"])
        .env("PREFECT_API_URL", API_URL)
        .env("PREFECT_API_KEY", API_KEY)
}

fn destroy(ecsctl: &Ecsctl, pool: &str) -> Output {
    ecsctl.cmd(["destroy", "--pool", pool, "--yes"]).run()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bootstrap_killed_at_any_moment_is_finished_by_the_next_run() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint());
    let ecsctl = Ecsctl::new(proxy.url());
    let aws = Clients::new(&emulator.endpoint()).await;
    let pristine = Inventory::take(&aws).await;

    // How many mutating calls a whole bootstrap makes, to spread the kills over all of them.
    proxy.clear();
    bootstrap(&ecsctl, "reference").run().assert_success();
    let total = proxy.mutating_calls().len();
    assert!(
        total >= 20,
        "a fresh bootstrap makes {total} mutating calls"
    );
    destroy(&ecsctl, "reference").assert_success();

    let kills = 20.min(total);
    for k in 0..kills {
        let at = k * total / kills;
        let name = format!("killed-{at}");
        proxy.clear();
        proxy.stall_mutating(at);
        let mut child = bootstrap(&ecsctl, &name).spawn();
        assert!(
            proxy.wait_for_stall(Duration::from_secs(60)),
            "bootstrap of {name} never reached mutating call {at}"
        );
        child.kill().expect("kill ecsctl");
        child.wait().expect("reap ecsctl");

        let rerun = bootstrap(&ecsctl, &name).run();
        rerun.assert_success();
        let when = format!("after a kill at mutating call {at} and a re-run");
        pool::assert_one_of_each(&aws, &name, &when).await;
        // Everything of the pool made it into the ledger, including what the killed run's last
        // call created.
        let ledger =
            std::fs::read_to_string(pool::ledger_path(&ecsctl.state_dir(), &name)).expect("ledger");
        for id in pool::existing_ids(&aws, &name).await {
            assert!(ledger.contains(&id), "{id} missing from the ledger {when}");
        }

        destroy(&ecsctl, &name).assert_success();
        pristine.assert_unchanged(&Inventory::take(&aws).await);
    }
}
