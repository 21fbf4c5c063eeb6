//! Faults injected by the proxy between ecsctl and the emulator.
//!
//! - Transient: every single request of a fresh bootstrap, in turn, fails once (throttled, a
//!   server error or a dropped connection, rotating by index); bootstrap must still succeed on
//!   its first run.
//! - Hard: from the nth mutating request on, AWS refuses every change (retries included), for
//!   every n of a fresh bootstrap and of a destroy. The run must fail saying which step, which
//!   resource and what AWS answered; the ledger must name everything that exists; a run without
//!   faults then finishes the job without duplicates, and destroy leaves the account as it was.
//! - A throttling storm: a third of all requests throttled, through a whole bootstrap and destroy.
//!
//! Each matrix shares one emulator and runs its cases in waves of [`LANES`] at once, each case
//! on its own pool and its own proxy (fault positions count that proxy's requests only). Where
//! every case destroys its pool, the account must match the snapshot taken before the first case
//! after each wave; the transient matrix leaves its pools and counts the account's resources.

use std::future::Future;

use crate::support::aws::Clients;
use crate::support::cli::{Ecsctl, Invocation, Output};
use crate::support::inventory::Inventory;
use crate::support::pool::{assert_one_of_each, assert_recorded, tag_filter};
use crate::support::proxy::{Call, Fault, Proxy};
use crate::support::stack::Stack;

/// What the proxy says in an injected server error.
const INJECTED: &str = "Injected server error";
/// SDK attempts per call in the hard-fault matrices (`ECSCTL_MAX_ATTEMPTS`, see src/aws.rs): a
/// call refused for good then fails after two quick attempts instead of eight slow ones.
const HARD_FAULT_ATTEMPTS: &str = "2";
/// Cases run at once against one emulator.
const LANES: usize = 4;

/// One case's way to the emulator: its own proxy (own call numbering and faults) and runner.
struct Lane {
    proxy: Proxy,
    ecsctl: Ecsctl,
}

impl Lane {
    fn to(stack: &Stack) -> Lane {
        let proxy = Proxy::start(&stack.emulator.endpoint());
        let ecsctl = Ecsctl::new(proxy.url()).with_prefect(stack.prefect_api_url());
        Lane { proxy, ecsctl }
    }

    /// The first request the proxy failed.
    fn first_faulted(&self) -> Option<Call> {
        self.proxy.calls().into_iter().find(|c| c.fault.is_some())
    }
}

/// A [`Stack`] (whose SDK clients go straight to the emulator, so checks are neither recorded
/// nor faulted) and [`LANES`] more lanes to its emulator, one per case running at once.
struct Matrix {
    stack: Stack,
    lanes: Vec<Lane>,
    /// The account before any case ran.
    pristine: Inventory,
}

impl Matrix {
    async fn start() -> Matrix {
        let stack = Stack::start().await;
        let lanes = (0..LANES).map(|_| Lane::to(&stack)).collect();
        let pristine = stack.inventory().await;
        Matrix {
            stack,
            lanes,
            pristine,
        }
    }

    /// How many requests, and how many mutating ones, a fault-free bootstrap and destroy of a
    /// fresh pool (named `pool`: pools are unique across tests) make.
    async fn reference_counts(&self, pool: &str) -> (Counts, Counts) {
        let lane = &self.lanes[0];
        lane.proxy.clear();
        run(lane.ecsctl.bootstrap(pool)).await.assert_success();
        let bootstrap = Counts {
            footprint: sizes(&self.stack.inventory().await)
                .into_iter()
                .zip(sizes(&self.pristine))
                .map(|((kind, after), (_, before))| (kind, after - before))
                .collect(),
            ..Counts::of(&lane.proxy.calls())
        };
        lane.proxy.clear();
        run(lane.ecsctl.destroy(pool)).await.assert_success();
        let destroy = Counts::of(&lane.proxy.calls());
        self.pristine
            .assert_unchanged(&self.stack.inventory().await);
        (bootstrap, destroy)
    }

    /// Runs `case(lane, n)` for every n in `cases`, [`LANES`] at a time. When every case
    /// destroys its pool, the account must be as it was before the first after each wave.
    async fn in_waves<'a, F, Fut>(&'a self, cases: std::ops::Range<usize>, destroyed: bool, case: F)
    where
        F: Fn(&'a Lane, usize) -> Fut,
        Fut: Future<Output = ()> + 'a,
    {
        let cases: Vec<usize> = cases.collect();
        for wave in cases.chunks(LANES) {
            futures::future::join_all(wave.iter().zip(&self.lanes).map(|(&n, lane)| case(lane, n)))
                .await;
            if !destroyed {
                continue;
            }
            let after = self.stack.inventory().await;
            assert!(
                self.pristine == after,
                "after cases {wave:?} were destroyed the account differs (- before, + after):\n{}",
                self.pristine.diff(&after)
            );
        }
    }
}

#[derive(Debug, Clone)]
struct Counts {
    all: usize,
    mutating: usize,
    /// For a bootstrap: how many resources of each kind one pool adds to the account.
    footprint: Vec<(&'static str, usize)>,
}

impl Counts {
    /// Without ecsctl's writes of its lock and ledger copy (SSM), whose number varies with
    /// timing: every index and change ordinal below these counts exists in every run.
    fn of(calls: &[Call]) -> Counts {
        let steady = || calls.iter().filter(|c| !(c.mutating && c.service == "ssm"));
        Counts {
            all: steady().count(),
            mutating: steady().filter(|c| c.mutating).count(),
            footprint: Vec::new(),
        }
    }
}

/// How many resources of each kind the account holds.
fn sizes(inventory: &Inventory) -> Vec<(&'static str, usize)> {
    let services = inventory.clusters.iter().map(|c| c.services.len()).sum();
    vec![
        ("roles", inventory.roles.len()),
        ("secrets", inventory.secrets.len()),
        ("log groups", inventory.log_groups.len()),
        ("vpcs", inventory.vpcs.len()),
        ("subnets", inventory.subnets.len()),
        ("internet gateways", inventory.internet_gateways.len()),
        ("route tables", inventory.route_tables.len()),
        ("security groups", inventory.security_groups.len()),
        ("clusters", inventory.clusters.len()),
        ("services", services),
        ("task definitions", inventory.task_definitions.len()),
    ]
}

/// Runs ecsctl to completion off the async threads, so several runs can go at once.
async fn run(invocation: Invocation) -> Output {
    tokio::task::spawn_blocking(move || invocation.run())
        .await
        .expect("ecsctl runner thread")
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.code, out.stdout, out.stderr
    )
}

/// Destroys the pool without faults; the wave's inventory compare then checks nothing is left.
async fn clean_up(lane: &Lane, pool: &str, case: &str) {
    lane.proxy.clear_faults();
    let out = run(lane.ecsctl.destroy(pool)).await;
    assert!(out.success(), "{case}: destroy failed\n{}", show(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_of_a_bootstrap_may_fail_once() {
    let matrix = Matrix::start().await;
    let s = &matrix;
    let (reference, _) = s.reference_counts("transient-reference").await;
    assert!(
        reference.all >= 40,
        "a fresh bootstrap makes only {} requests",
        reference.all
    );
    let faults = &[Fault::Throttle, Fault::ServerError, Fault::Drop];

    // The pools are left standing: counting the account's resources at the end catches any
    // duplicate or stray more cheaply than destroying each pool would.
    s.in_waves(0..reference.all, false, |lane, index| async move {
        let fault = faults[index % faults.len()];
        let pool = format!("transient-{index}");
        let case = format!("{fault:?} at request {index} of {}", reference.all);
        lane.proxy.clear();
        lane.proxy.fail_nth(index, fault);
        let out = run(lane.ecsctl.bootstrap(&pool)).await;
        let calls = lane.proxy.calls();
        let hit = calls.iter().find(|c| c.index == index);
        assert_eq!(
            hit.and_then(|c| c.fault),
            Some(fault),
            "{case}: the fault was not injected; calls: {calls:?}"
        );
        assert!(
            out.success(),
            "{case} ({}) made bootstrap fail:\n{}",
            hit.map_or("?", |c| c.action.as_str()),
            show(&out)
        );
        assert_one_of_each(&s.stack.aws, &pool, &case).await;
    })
    .await;

    let expected: Vec<(&str, usize)> = (sizes(&s.pristine).into_iter())
        .zip(&reference.footprint)
        .map(|((kind, before), (_, one))| (kind, before + reference.all * one))
        .collect();
    assert_eq!(
        sizes(&s.stack.inventory().await),
        expected,
        "the account after {} bootstraps, each of one pool",
        reference.all
    );
}

/// The step whose call this is, and words of its error message that name the resource. IAM
/// calls are made by all three role steps, so any may be the one that failed; log groups and
/// queues come in pairs.
fn culprits(action: &str, pool: &str) -> Vec<(&'static str, String)> {
    let one = |step, resource: String| vec![(step, resource)];
    match action {
        "CreateSecret" => one("secret", format!("secret ecsctl/{pool}/prefect-api-key")),
        "CreateLogGroup" | "PutRetentionPolicy" => {
            one("log-group", format!("log group /ecsctl/{pool}/"))
        }
        "CreateRole" | "AttachRolePolicy" | "PutRolePolicy" | "UpdateAssumeRolePolicy" => vec![
            (
                "execution-role",
                format!("IAM role ecsctl-{pool}-use1-execution"),
            ),
            ("worker-role", format!("IAM role ecsctl-{pool}-use1-worker")),
            (
                "flow-run-role",
                format!("IAM role ecsctl-{pool}-use1-flow-run"),
            ),
        ],
        "CreateQueue" | "SetQueueAttributes" => {
            one("observer", format!("SQS queue ecsctl-{pool}-task-events"))
        }
        "PutRule" | "PutTargets" => one(
            "observer",
            format!("EventBridge rule ecsctl-{pool}-task-state"),
        ),
        "CreateVpc" => one("network", format!("VPC ecsctl-{pool}")),
        "ModifyVpcAttribute" => one("network", "VPC vpc-".into()),
        "CreateInternetGateway" => one("network", format!("internet gateway ecsctl-{pool}")),
        "AttachInternetGateway" => one("network", "internet gateway igw-".into()),
        "CreateSubnet" => one("network", format!("subnet ecsctl-{pool}-")),
        "CreateRouteTable" => one("network", format!("route table ecsctl-{pool}")),
        "CreateRoute" | "AssociateRouteTable" => one("network", "route table rtb-".into()),
        "CreateSecurityGroup" => one("network", format!("security group ecsctl-{pool}-worker")),
        "CreateCluster" => one("cluster", format!("ECS cluster ecsctl-{pool}")),
        "RegisterTaskDefinition" => one(
            "task-definition",
            format!("task definition ecsctl-{pool}-worker"),
        ),
        "CreateService" => one("service", format!("ECS service ecsctl-{pool}-worker")),
        other => panic!("no expected error message for a failing {other}: add it here"),
    }
}

/// The pool's VPC resolves names (tasks reach ECR and Prefect by name), however it was finished.
async fn assert_dns_hostnames_on(aws: &Clients, pool: &str, case: &str) {
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .filters(tag_filter(pool))
        .send()
        .await
        .unwrap();
    let vpc = vpcs.vpcs()[0].vpc_id().unwrap();
    let attribute = aws
        .ec2
        .describe_vpc_attribute()
        .vpc_id(vpc)
        .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attribute.enable_dns_hostnames().and_then(|a| a.value()),
        Some(true),
        "{case}: DNS hostnames are off in {vpc}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bootstrap_refused_from_any_mutating_call_on_fails_clearly_and_is_finished_later() {
    let matrix = Matrix::start().await;
    let s = &matrix;
    let (reference, _) = s.reference_counts("hard-reference").await;
    assert!(
        reference.mutating >= 20,
        "a fresh bootstrap makes only {} mutating calls",
        reference.mutating
    );

    s.in_waves(0..reference.mutating, true, |lane, n| async move {
        let pool = format!("hard-{n}");
        let case = format!(
            "changes refused from mutating call {n} of {}",
            reference.mutating
        );
        lane.proxy.clear();
        lane.proxy.fail_mutating_from(n, Fault::ServerError);
        let out = run(lane
            .ecsctl
            .bootstrap(&pool)
            .env("ECSCTL_MAX_ATTEMPTS", HARD_FAULT_ATTEMPTS))
        .await;
        let faulted = lane
            .first_faulted()
            .unwrap_or_else(|| panic!("{case}: nothing was faulted\n{}", show(&out)));
        let case = format!("{case} ({})", faulted.action);
        assert_eq!(
            out.code,
            Some(1),
            "{case}: bootstrap should fail\n{}",
            show(&out)
        );

        // A line names the step of the first refused call, a resource of that step whose call
        // was refused (a step reports one of its concurrent failures), and what AWS answered.
        let refused: Vec<(&str, String)> = (lane.proxy.calls().iter())
            .filter(|c| c.fault.is_some())
            .flat_map(|c| culprits(&c.action, &pool))
            .collect();
        let named = culprits(&faulted.action, &pool).iter().any(|(step, _)| {
            let line = format!("step {step}: ");
            out.stderr.lines().any(|l| {
                l.contains(&line)
                    && l.contains(INJECTED)
                    && (refused.iter())
                        .any(|(s, resource)| s == step && l.contains(resource.as_str()))
            })
        });
        assert!(
            named,
            "{case}: no error line names the step, the resource and the error\n{}",
            show(&out)
        );
        assert!(
            out.stderr.contains("ecsctl bootstrap") && out.stderr.contains("ecsctl destroy"),
            "{case}: the error does not say how to go on\n{}",
            show(&out)
        );

        // Whatever of the pool exists now is in the ledger.
        assert_recorded(&s.stack.aws, &lane.ecsctl.state_dir(), &pool, &case).await;

        lane.proxy.clear_faults();
        let rerun = run(lane.ecsctl.bootstrap(&pool)).await;
        assert!(
            rerun.success(),
            "{case}: the re-run failed\n{}",
            show(&rerun)
        );
        assert_one_of_each(&s.stack.aws, &pool, &format!("{case}, then a re-run")).await;
        assert_dns_hostnames_on(&s.stack.aws, &pool, &case).await;
        clean_up(lane, &pool, &case).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destroy_refused_from_any_mutating_call_on_is_finished_by_the_next_destroy() {
    let matrix = Matrix::start().await;
    let s = &matrix;
    let (_, reference) = s.reference_counts("hard-destroy-reference").await;
    assert!(
        reference.mutating >= 15,
        "a destroy makes only {} mutating calls",
        reference.mutating
    );

    s.in_waves(0..reference.mutating, true, |lane, n| async move {
        let pool = format!("hard-destroy-{n}");
        let case = format!(
            "changes refused from mutating call {n} of {} of destroy",
            reference.mutating
        );
        run(lane.ecsctl.bootstrap(&pool)).await.assert_success();
        lane.proxy.clear();
        lane.proxy.fail_mutating_from(n, Fault::ServerError);
        let out = run(lane
            .ecsctl
            .destroy(&pool)
            .env("ECSCTL_MAX_ATTEMPTS", HARD_FAULT_ATTEMPTS))
        .await;
        let faulted = lane
            .first_faulted()
            .unwrap_or_else(|| panic!("{case}: nothing was faulted\n{}", show(&out)));
        let case = format!("{case} ({})", faulted.action);
        assert_eq!(
            out.code,
            Some(1),
            "{case}: destroy should fail\n{}",
            show(&out)
        );
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains("step ") && l.contains(INJECTED)),
            "{case}: no error line names the step and the error\n{}",
            show(&out)
        );
        clean_up(lane, &pool, &case).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_and_destroy_get_through_a_throttling_storm() {
    let matrix = Matrix::start().await;
    let s = &matrix;
    // (seed, how many of each run's first requests are throttled on top: a storm already
    // raging when ecsctl starts, which its very first call, sts:GetCallerIdentity, must ride out)
    let storms = &[(7_u64, 0), (1009, 4)];
    s.in_waves(0..storms.len(), true, |lane, i| async move {
        let (seed, burst) = storms[i];
        let pool = format!("storm-{seed}");
        let storm = |what: &str| {
            lane.proxy.clear();
            lane.proxy.clear_faults();
            lane.proxy.fail_fraction(1.0 / 3.0, seed, Fault::Throttle);
            for index in 0..burst {
                lane.proxy.fail_nth(index, Fault::Throttle);
            }
            format!("{what} in a storm (seed {seed}, first {burst} requests throttled)")
        };

        let case = storm("bootstrap");
        let out = run(lane.ecsctl.bootstrap(&pool)).await;
        assert!(out.success(), "{case} failed\n{}", show(&out));
        let bootstrap_calls = lane.proxy.calls();
        assert_one_of_each(&s.stack.aws, &pool, &case).await;

        let case = storm("destroy");
        let out = run(lane.ecsctl.destroy(&pool)).await;
        assert!(out.success(), "{case} failed\n{}", show(&out));
        let destroy_calls = lane.proxy.calls();
        lane.proxy.clear_faults();

        for (what, calls) in [("bootstrap", &bootstrap_calls), ("destroy", &destroy_calls)] {
            let throttled = calls.iter().filter(|c| c.fault.is_some()).count();
            let share = throttled as f64 / calls.len() as f64;
            assert!(
                (0.2..0.5).contains(&share),
                "seed {seed}: {throttled} of {} {what} requests throttled",
                calls.len()
            );
            let opening = calls
                .iter()
                .take(burst)
                .filter(|c| c.fault.is_some())
                .count();
            assert_eq!(opening, burst, "seed {seed}: the opening burst of {what}");
        }
    })
    .await;
}
