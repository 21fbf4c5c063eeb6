//! Runs killed part-way. The proxy lets one mutating request reach the emulator and never answers
//! it, so the resource exists but ecsctl never learns its id — the worst moment to die. ecsctl is
//! killed right then; the next bootstrap must finish the stack without duplicating anything, and
//! destroy must then leave the account as it was.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::aws::Clients;
use support::cli::{Ecsctl, Output};
use support::emulator::Emulator;
use support::inventory::Inventory;
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

/// Counts of the pool's tagged network resources and of its other resources, to catch duplicates.
async fn resource_counts(aws: &Clients, pool: &str) -> Vec<(&'static str, usize)> {
    let tag = || {
        aws_sdk_ec2::types::Filter::builder()
            .name("tag:ecsctl:pool")
            .values(pool)
            .build()
    };
    let ec2 = &aws.ec2;
    let vpcs = ec2
        .describe_vpcs()
        .filters(tag())
        .send()
        .await
        .unwrap()
        .vpcs()
        .len();
    let subnets = ec2
        .describe_subnets()
        .filters(tag())
        .send()
        .await
        .unwrap()
        .subnets()
        .len();
    let igws = ec2
        .describe_internet_gateways()
        .filters(tag())
        .send()
        .await
        .unwrap()
        .internet_gateways()
        .len();
    let rts = ec2
        .describe_route_tables()
        .filters(tag())
        .send()
        .await
        .unwrap()
        .route_tables()
        .len();
    let sgs = ec2
        .describe_security_groups()
        .filters(tag())
        .send()
        .await
        .unwrap()
        .security_groups()
        .len();
    let revisions = aws
        .ecs
        .list_task_definitions()
        .family_prefix(format!("ecsctl-{pool}-worker"))
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap()
        .task_definition_arns()
        .len();
    let services = aws
        .ecs
        .describe_services()
        .cluster(format!("ecsctl-{pool}"))
        .services(format!("ecsctl-{pool}-worker"))
        .send()
        .await
        .unwrap()
        .services()
        .iter()
        .filter(|s| s.status() == Some("ACTIVE"))
        .count();
    vec![
        ("vpcs", vpcs),
        ("subnets", subnets),
        ("internet gateways", igws),
        ("route tables", rts),
        ("security groups", sgs),
        ("active task definition revisions", revisions),
        ("active services", services),
    ]
}

fn expected_counts() -> Vec<(&'static str, usize)> {
    vec![
        ("vpcs", 1),
        ("subnets", 2),
        ("internet gateways", 1),
        ("route tables", 1),
        ("security groups", 1),
        ("active task definition revisions", 1),
        ("active services", 1),
    ]
}

/// The ids of every network resource tagged for the pool.
async fn tagged_network_ids(aws: &Clients, pool: &str) -> BTreeSet<String> {
    let tag = aws_sdk_ec2::types::Filter::builder()
        .name("tag:ecsctl:pool")
        .values(pool)
        .build();
    let mut ids = BTreeSet::new();
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .filters(tag.clone())
        .send()
        .await
        .unwrap();
    ids.extend(
        vpcs.vpcs()
            .iter()
            .filter_map(|v| v.vpc_id().map(String::from)),
    );
    let subnets = aws
        .ec2
        .describe_subnets()
        .filters(tag.clone())
        .send()
        .await
        .unwrap();
    ids.extend(
        subnets
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_id().map(String::from)),
    );
    let sgs = aws
        .ec2
        .describe_security_groups()
        .filters(tag)
        .send()
        .await
        .unwrap();
    ids.extend(
        sgs.security_groups()
            .iter()
            .filter_map(|g| g.group_id().map(String::from)),
    );
    ids
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
        let pool = format!("killed-{at}");
        proxy.clear();
        proxy.stall_mutating(at);
        let mut child = bootstrap(&ecsctl, &pool).spawn();
        assert!(
            proxy.wait_for_stall(Duration::from_secs(60)),
            "bootstrap of {pool} never reached mutating call {at}"
        );
        child.kill().expect("kill ecsctl");
        child.wait().expect("reap ecsctl");

        let rerun = bootstrap(&ecsctl, &pool).run();
        rerun.assert_success();
        assert_eq!(
            resource_counts(&aws, &pool).await,
            expected_counts(),
            "after a kill at mutating call {at} and a re-run"
        );
        // Every tagged network resource made it into the ledger, including the one created
        // by the killed run's last call.
        let ledger = std::fs::read_to_string(
            ecsctl
                .state_dir()
                .join(format!("123456789012/us-east-1/{pool}.json")),
        )
        .expect("ledger");
        for id in tagged_network_ids(&aws, &pool).await {
            assert!(
                ledger.contains(&id),
                "{id} missing from the ledger after kill at {at}"
            );
        }

        destroy(&ecsctl, &pool).assert_success();
        pristine.assert_unchanged(&Inventory::take(&aws).await);
    }
}
