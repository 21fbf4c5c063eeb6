//! The usual test setup: an emulator, a recording proxy in front of it, the shared Prefect server
//! with a recording proxy of this stack's own in front of it, an ecsctl runner that talks to both
//! proxies, and SDK and REST clients that go straight to the emulator and the server (so a test's
//! own checks are not recorded as ecsctl's calls). A test module may add helpers of its own with
//! `impl Stack`; their names must differ from every other module's (one crate, one namespace of
//! methods).

use std::path::PathBuf;
use std::time::Duration;

use super::aws::Clients;
use super::cli::{Ecsctl, Invocation, Output};
use super::emulator::Emulator;
use super::inventory::Inventory;
use super::pool;
use super::prefect::{self, PrefectApi};
use super::proxy::{Call, Proxy};
use super::running::Running;

/// How long a run held by [`Stack::hold`] may take to reach the call it is held at.
const HOLD_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Stack {
    pub emulator: Emulator,
    /// ecsctl's way to AWS: records and faults its AWS calls.
    pub proxy: Proxy,
    /// ecsctl's way to Prefect: records and faults its Prefect calls (this stack's only; the
    /// server behind it is shared by every test).
    pub prefect_proxy: Proxy,
    pub ecsctl: Ecsctl,
    pub aws: Clients,
    /// Work pools, read and arranged straight on the server.
    pub prefect: PrefectApi,
}

impl Stack {
    /// Starts the emulator, and the Prefect server if this is the process's first stack (about
    /// 15 s; it fails naming ./scripts/install-prefect when Prefect is not installed).
    pub async fn start() -> Stack {
        let emulator = Emulator::start();
        let proxy = Proxy::start(&emulator.endpoint());
        let server = prefect::server();
        let prefect_proxy = Proxy::start(server.url());
        let ecsctl = Ecsctl::new(proxy.url()).with_prefect(format!("{}/api", prefect_proxy.url()));
        let aws = Clients::new(&emulator.endpoint()).await;
        // The emulator's first answer takes seconds; take that hit here, not inside a timeout.
        aws.sts.get_caller_identity().send().await.unwrap();
        Stack {
            emulator,
            proxy,
            prefect_proxy,
            ecsctl,
            aws,
            prefect: server.api(),
        }
    }

    /// `ecsctl unlock --pool <pool>`, which must succeed: what a user runs after a run holding
    /// the pool's lock was killed (SIGKILL), as the locked error says.
    pub fn unlock(&self, pool: &str) -> Output {
        let out = self.ecsctl.cmd(["unlock", "--pool", pool]).run();
        out.assert_success();
        out
    }

    /// The `PREFECT_API_URL` ecsctl gets: this stack's Prefect proxy.
    pub fn prefect_api_url(&self) -> String {
        self.ecsctl.prefect_api_url().to_owned()
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

    /// Loses the pool's ledger for good, as with a stack made by an ecsctl that kept it only on
    /// the machine that ran it: the local file and the copy in the account.
    pub async fn lose_ledger(&self, pool: &str) {
        std::fs::remove_file(self.ledger(pool)).expect("delete the ledger");
        self.aws
            .ssm
            .delete_parameter()
            .name(format!("/ecsctl/{pool}/ledger"))
            .send()
            .await
            .expect("delete the ledger's copy in the account");
    }

    /// The pool's actions that changed the stack: [`Stack::mutating_actions`] without the
    /// account lock and ledger copy (SSM) that come with every run that changes something.
    pub fn stack_changes(&self) -> Vec<String> {
        self.proxy
            .mutating_calls()
            .into_iter()
            .filter(|c| c.service != "ssm")
            .map(|c| c.action)
            .collect()
    }

    /// Where the pool's ledger is (or would be) in this stack's state directory.
    pub fn ledger(&self, pool: &str) -> PathBuf {
        pool::ledger_path(&self.ecsctl.state_dir(), pool)
    }

    /// What [`super::text::assert_text`] should replace besides ids and times: this stack's
    /// state directory, by `[STATE]`, its Prefect API URL by `[PREFECT]`, and the AWS endpoint
    /// (in SQS queue URLs) by `[AWS]`: ports that differ from run to run.
    pub fn placeholders(&self) -> Vec<(String, &'static str)> {
        vec![
            (self.ecsctl.state_dir().display().to_string(), "[STATE]"),
            (self.prefect_api_url(), "[PREFECT]"),
            (self.proxy.url(), "[AWS]"),
            (self.emulator.endpoint(), "[AWS]"),
        ]
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

    /// The actions of the mutating AWS calls ecsctl made since the proxy was last cleared.
    pub fn mutating_actions(&self) -> Vec<String> {
        self.proxy
            .mutating_calls()
            .into_iter()
            .map(|c| c.action)
            .collect()
    }

    /// The writes ecsctl made to Prefect since the Prefect proxy was last cleared, as
    /// `METHOD /api/path` (a POST that only filters, like the workers list, is a read).
    pub fn prefect_writes(&self) -> Vec<String> {
        self.prefect_proxy
            .mutating_calls()
            .into_iter()
            .map(|c| c.action)
            .collect()
    }

    /// The Prefect writes that took effect (answered 2xx). The shared server can answer 503
    /// while another test holds its sqlite database, and ecsctl retries: an exact list of what
    /// was written counts these; "no write at all" checks use [`Stack::prefect_writes`].
    pub fn prefect_writes_done(&self) -> Vec<String> {
        self.prefect_proxy
            .mutating_calls()
            .into_iter()
            .filter(|c| c.status.is_some_and(|s| (200..300).contains(&s)))
            .map(|c| c.action)
            .collect()
    }

    /// Every Prefect call ecsctl made since the Prefect proxy was last cleared.
    pub fn prefect_calls(&self) -> Vec<Call> {
        self.prefect_proxy.calls()
    }

    /// Forgets the calls both proxies recorded.
    pub fn clear_calls(&self) {
        self.proxy.clear();
        self.prefect_proxy.clear();
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

    /// Gives the emulator's default VPC what AWS's has: an internet gateway and a default route to
    /// it in the main route table (ecsctl refuses subnets with no way out).
    pub async fn route_default_vpc_out(&self, vpc: &str) {
        let ec2 = &self.aws.ec2;
        let gateway = self.aws.attached_internet_gateway(vpc).await;
        let main = ec2
            .describe_route_tables()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("vpc-id")
                    .values(vpc)
                    .build(),
            )
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("association.main")
                    .values("true")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let main = main.route_tables()[0].route_table_id().unwrap();
        (ec2.create_route())
            .route_table_id(main)
            .destination_cidr_block("0.0.0.0/0")
            .gateway_id(&gateway)
            .send()
            .await
            .unwrap();
    }
}
