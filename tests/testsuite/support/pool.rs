//! Checks on one pool's resources, read with the SDK: how many of each kind exist (to catch
//! duplicates), what was created since an earlier inventory, and where the pool's ledger lives.

use std::path::{Path, PathBuf};

use aws_sdk_ec2::types::Filter;
use aws_sdk_ecs::types::TaskDefinitionStatus;

use super::aws::{Clients, REGION};

/// The emulator's account id, which names the ledger's directory.
pub const ACCOUNT: &str = "123456789012";

/// The pool's ledger file under an ecsctl state directory.
pub fn ledger_path(state_dir: &Path, pool: &str) -> PathBuf {
    state_dir.join(format!("{ACCOUNT}/{REGION}/{pool}.json"))
}

/// The name of the role the pool's flow runs run as, in [`REGION`] (IAM names are global, so it
/// carries the region's short code).
pub fn flow_run_role(pool: &str) -> String {
    assert_eq!(REGION, "us-east-1", "the short code below is us-east-1's");
    format!("ecsctl-{pool}-use1-flow-run")
}

/// An EC2 filter for the resources tagged as the pool's (`ecsctl:pool=<pool>`).
pub fn tag_filter(pool: &str) -> Filter {
    Filter::builder()
        .name("tag:ecsctl:pool")
        .values(pool)
        .build()
}

/// How many of each kind of the pool's resources exist: its tagged network resources, ACTIVE
/// task definition revisions and ACTIVE services. See [`EXPECTED_COUNTS`].
pub async fn resource_counts(aws: &Clients, pool: &str) -> Vec<(&'static str, usize)> {
    let tag = || tag_filter(pool);
    let ec2 = &aws.ec2;
    let (vpcs, subnets, gateways, tables, groups) = tokio::join!(
        ec2.describe_vpcs().filters(tag()).send(),
        ec2.describe_subnets().filters(tag()).send(),
        ec2.describe_internet_gateways().filters(tag()).send(),
        ec2.describe_route_tables().filters(tag()).send(),
        ec2.describe_security_groups().filters(tag()).send(),
    );
    let revisions = aws
        .ecs
        .list_task_definitions()
        .family_prefix(format!("ecsctl-{pool}-worker"))
        .status(TaskDefinitionStatus::Active)
        .send()
        .await
        .expect("list task definitions");
    let services = aws
        .ecs
        .describe_services()
        .cluster(format!("ecsctl-{pool}"))
        .services(format!("ecsctl-{pool}-worker"))
        .send()
        .await;
    let active_services = match services {
        Ok(out) => out
            .services()
            .iter()
            .filter(|s| s.status() == Some("ACTIVE"))
            .count(),
        // No cluster, no service.
        Err(e) if format!("{e:?}").contains("ClusterNotFoundException") => 0,
        Err(e) => panic!("describe services: {e:?}"),
    };
    vec![
        ("vpcs", vpcs.expect("describe vpcs").vpcs().len()),
        (
            "subnets",
            subnets.expect("describe subnets").subnets().len(),
        ),
        (
            "internet gateways",
            gateways
                .expect("describe internet gateways")
                .internet_gateways()
                .len(),
        ),
        (
            "route tables",
            tables.expect("describe route tables").route_tables().len(),
        ),
        (
            "security groups",
            groups
                .expect("describe security groups")
                .security_groups()
                .len(),
        ),
        (
            "active task definition revisions",
            revisions.task_definition_arns().len(),
        ),
        ("active services", active_services),
    ]
}

/// What [`resource_counts`] says for one complete pool.
pub const EXPECTED_COUNTS: [(&str, usize); 7] = [
    ("vpcs", 1),
    ("subnets", 2),
    ("internet gateways", 1),
    ("route tables", 1),
    ("security groups", 1),
    ("active task definition revisions", 1),
    ("active services", 1),
];

/// Asserts the pool is complete with exactly one of everything; `when` says after what.
pub async fn assert_one_of_each(aws: &Clients, pool: &str, when: &str) {
    let counts = resource_counts(aws, pool).await;
    assert_eq!(counts, EXPECTED_COUNTS.to_vec(), "{pool}: {when}");
}

/// Asserts the pool is complete with exactly one of everything ([`assert_one_of_each`]) and all
/// of it is in the pool's ledger under `state_dir` ([`assert_recorded`]); `when` says after what.
pub async fn assert_complete(aws: &Clients, state_dir: &Path, pool: &str, when: &str) {
    assert_one_of_each(aws, pool, when).await;
    assert_recorded(aws, state_dir, pool, when).await;
}

/// Asserts everything of the pool that exists ([`existing_ids`]) is in its ledger under
/// `state_dir`; without a ledger, nothing of the pool may exist. `when` says after what.
pub async fn assert_recorded(aws: &Clients, state_dir: &Path, pool: &str, when: &str) {
    let existing = existing_ids(aws, pool).await;
    if existing.is_empty() {
        return;
    }
    let ledger = std::fs::read_to_string(ledger_path(state_dir, pool))
        .unwrap_or_else(|e| panic!("{pool} {when}: {existing:?} exist but no ledger: {e}"));
    let unrecorded: Vec<&String> = existing
        .iter()
        .filter(|id| !ledger.contains(id.as_str()))
        .collect();
    assert!(
        unrecorded.is_empty(),
        "{pool} {when}: exists but not in the ledger: {unrecorded:?}\n--- ledger\n{ledger}"
    );
}

/// Everything of the pool that exists, by the id its ledger records it under: the network
/// resources tagged for it, its roles (execution, worker, flow-run), secret, log groups (worker,
/// flow runs), ACTIVE cluster and service, and ACTIVE task definition revisions. Untagged strays
/// are not found here; a full inventory compare after destroy catches those.
pub async fn existing_ids(aws: &Clients, pool: &str) -> Vec<String> {
    let tag = || tag_filter(pool);
    let ec2 = &aws.ec2;
    let (vpcs, subnets, gateways, tables, groups) = tokio::join!(
        ec2.describe_vpcs().filters(tag()).send(),
        ec2.describe_subnets().filters(tag()).send(),
        ec2.describe_internet_gateways().filters(tag()).send(),
        ec2.describe_route_tables().filters(tag()).send(),
        ec2.describe_security_groups().filters(tag()).send(),
    );
    let mut ids: Vec<String> = Vec::new();
    let owned = |id: Option<&str>| id.map(str::to_owned);
    ids.extend(
        vpcs.unwrap()
            .vpcs()
            .iter()
            .filter_map(|v| owned(v.vpc_id())),
    );
    ids.extend(
        subnets
            .unwrap()
            .subnets()
            .iter()
            .filter_map(|s| owned(s.subnet_id())),
    );
    ids.extend(
        gateways
            .unwrap()
            .internet_gateways()
            .iter()
            .filter_map(|g| owned(g.internet_gateway_id())),
    );
    ids.extend(
        tables
            .unwrap()
            .route_tables()
            .iter()
            .filter_map(|t| owned(t.route_table_id())),
    );
    ids.extend(
        groups
            .unwrap()
            .security_groups()
            .iter()
            .filter_map(|g| owned(g.group_id())),
    );
    for role in [
        format!("ecsctl-{pool}-use1-execution"),
        format!("ecsctl-{pool}-use1-worker"),
        flow_run_role(pool),
    ] {
        if aws.iam.get_role().role_name(&role).send().await.is_ok() {
            ids.push(role);
        }
    }
    if let Ok(secret) = aws
        .secrets
        .describe_secret()
        .secret_id(format!("ecsctl/{pool}/prefect-api-key"))
        .send()
        .await
    {
        ids.extend(owned(secret.arn()));
    }
    let groups = aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(format!("/ecsctl/{pool}/"))
        .send()
        .await
        .unwrap();
    for log_group in [
        format!("/ecsctl/{pool}/worker"),
        format!("/ecsctl/{pool}/flow-runs"),
    ] {
        if groups
            .log_groups()
            .iter()
            .any(|g| g.log_group_name() == Some(log_group.as_str()))
        {
            ids.push(log_group);
        }
    }
    let clusters = aws
        .ecs
        .describe_clusters()
        .clusters(format!("ecsctl-{pool}"))
        .send()
        .await
        .unwrap();
    ids.extend(
        clusters
            .clusters()
            .iter()
            .filter(|c| c.status() == Some("ACTIVE"))
            .filter_map(|c| owned(c.cluster_arn())),
    );
    if let Ok(services) = aws
        .ecs
        .describe_services()
        .cluster(format!("ecsctl-{pool}"))
        .services(format!("ecsctl-{pool}-worker"))
        .send()
        .await
    {
        ids.extend(
            services
                .services()
                .iter()
                .filter(|s| s.status() == Some("ACTIVE"))
                .filter_map(|s| owned(s.service_arn())),
        );
    }
    let revisions = aws
        .ecs
        .list_task_definitions()
        .family_prefix(format!("ecsctl-{pool}-worker"))
        .status(TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    ids.extend(revisions.task_definition_arns().iter().cloned());
    ids
}

/// What ecsctl's stack is, read with the SDK: what the pool's defaults and the worker's calls must
/// name.
pub struct StackIds {
    pub cluster_arn: String,
    pub vpc_id: String,
    /// Sorted.
    pub subnet_ids: Vec<String>,
    pub security_group_id: String,
    pub execution_role_arn: String,
    pub flow_run_role_arn: String,
    pub secret_arn: String,
}

pub async fn stack_ids(aws: &Clients, pool: &str) -> StackIds {
    let (clusters, vpcs, subnets, groups) = tokio::join!(
        aws.ecs
            .describe_clusters()
            .clusters(format!("ecsctl-{pool}"))
            .send(),
        aws.ec2.describe_vpcs().filters(tag_filter(pool)).send(),
        aws.ec2.describe_subnets().filters(tag_filter(pool)).send(),
        aws.ec2
            .describe_security_groups()
            .filters(tag_filter(pool))
            .send(),
    );
    let (execution, flow_run, secret) = tokio::join!(
        aws.iam
            .get_role()
            .role_name(format!("ecsctl-{pool}-use1-execution"))
            .send(),
        aws.iam.get_role().role_name(flow_run_role(pool)).send(),
        aws.secrets
            .describe_secret()
            .secret_id(format!("ecsctl/{pool}/prefect-api-key"))
            .send(),
    );
    let mut subnet_ids: Vec<String> = subnets
        .unwrap()
        .subnets()
        .iter()
        .map(|s| s.subnet_id().unwrap().to_owned())
        .collect();
    subnet_ids.sort();
    assert_eq!(subnet_ids.len(), 2, "{pool}'s subnets");
    let groups = groups.unwrap();
    assert_eq!(groups.security_groups().len(), 1, "{pool}'s security group");
    StackIds {
        cluster_arn: clusters.unwrap().clusters()[0]
            .cluster_arn()
            .unwrap()
            .to_owned(),
        vpc_id: vpcs.unwrap().vpcs()[0].vpc_id().unwrap().to_owned(),
        subnet_ids,
        security_group_id: groups.security_groups()[0].group_id().unwrap().to_owned(),
        execution_role_arn: execution.unwrap().role().unwrap().arn().to_owned(),
        flow_run_role_arn: flow_run.unwrap().role().unwrap().arn().to_owned(),
        secret_arn: secret.unwrap().arn().unwrap().to_owned(),
    }
}

/// The URL of the SQS queue named `name`; panics when there is none.
pub async fn queue_url(aws: &Clients, name: &str) -> String {
    aws.sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("queue {name}: {e:?}"))
        .queue_url()
        .unwrap()
        .to_owned()
}
