//! The usual test setup: an emulator, a recording proxy in front of it, an ecsctl runner that
//! talks to the proxy, and SDK clients that go straight to the emulator (so a test's own checks
//! are not recorded as ecsctl's calls). A test module may add helpers of its own with `impl Stack`;
//! their names must differ from every other module's (one crate, one namespace of methods).

use std::path::PathBuf;
use std::time::Duration;

use super::aws::Clients;
use super::cli::{Ecsctl, Invocation, Output};
use super::emulator::Emulator;
use super::inventory::Inventory;
use super::pool;
use super::proxy::Proxy;
use super::running::Running;

/// How long a run held by [`Stack::hold`] may take to reach the call it is held at.
const HOLD_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Stack {
    pub emulator: Emulator,
    pub proxy: Proxy,
    pub ecsctl: Ecsctl,
    pub aws: Clients,
}

impl Stack {
    pub async fn start() -> Stack {
        let emulator = Emulator::start();
        let proxy = Proxy::start(&emulator.endpoint());
        let ecsctl = Ecsctl::new(proxy.url());
        let aws = Clients::new(&emulator.endpoint()).await;
        // The emulator's first answer takes seconds; take that hit here, not inside a timeout.
        aws.sts.get_caller_identity().send().await.unwrap();
        Stack {
            emulator,
            proxy,
            ecsctl,
            aws,
        }
    }

    /// `ecsctl bootstrap --pool <pool> --yes --no-wait <extra>` with the usual Prefect settings
    /// (see [`Ecsctl::bootstrap`]), to be refined or started.
    pub fn bootstrap_cmd(&self, pool: &str, extra: &[&str]) -> Invocation {
        self.ecsctl.bootstrap(pool).args(extra)
    }

    /// [`Stack::bootstrap_cmd`], run to completion.
    pub fn bootstrap(&self, pool: &str, extra: &[&str]) -> Output {
        self.bootstrap_cmd(pool, extra).run()
    }

    /// `ecsctl destroy --pool <pool> --yes <extra>`, to be refined or started.
    pub fn destroy_cmd(&self, pool: &str, extra: &[&str]) -> Invocation {
        self.ecsctl.destroy(pool).args(extra)
    }

    /// [`Stack::destroy_cmd`], run to completion.
    pub fn destroy(&self, pool: &str, extra: &[&str]) -> Output {
        self.destroy_cmd(pool, extra).run()
    }

    /// Where the pool's ledger is (or would be) in this stack's state directory.
    pub fn ledger(&self, pool: &str) -> PathBuf {
        pool::ledger_path(&self.ecsctl.state_dir(), pool)
    }

    /// What [`super::text::assert_text`] should replace besides ids and times: this stack's
    /// state directory, by `[STATE]`.
    pub fn placeholders(&self) -> Vec<(String, &'static str)> {
        vec![(self.ecsctl.state_dir().display().to_string(), "[STATE]")]
    }

    /// Everything of the kinds ecsctl manages in the emulator's account now.
    pub async fn inventory(&self) -> Inventory {
        Inventory::take(&self.aws).await
    }

    /// Destroys each pool (each destroy must succeed), then asserts the account is as `before`.
    pub async fn destroy_all_and_assert_unchanged(&self, pools: &[&str], before: &Inventory) {
        for pool in pools {
            self.destroy(pool, &[]).assert_success();
        }
        before.assert_unchanged(&self.inventory().await);
    }

    /// The actions of the mutating calls ecsctl made since the proxy was last cleared.
    pub fn mutating_actions(&self) -> Vec<String> {
        self.proxy
            .mutating_calls()
            .into_iter()
            .map(|c| c.action)
            .collect()
    }

    /// Starts `run` and returns once its `n`th mutating request (counted from 0, after clearing
    /// the proxy) has reached the emulator and is left unanswered: from then on the run is alive,
    /// holds its pool's lock, and has changed something it has not heard back about. Panics, with
    /// what the run did and said, if it does not get there within a minute.
    pub fn hold(&self, run: Invocation, n: usize) -> Running {
        self.proxy.clear();
        self.proxy.stall_mutating(n);
        let running = Running::new(run.spawn());
        assert!(
            self.proxy.wait_for_stall(HOLD_TIMEOUT),
            "ecsctl never made mutating call #{n}; it made {:?}\n--- stderr\n{}",
            self.mutating_actions(),
            running.stderr_so_far()
        );
        running
    }
}
