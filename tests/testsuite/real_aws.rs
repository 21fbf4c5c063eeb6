//! What real AWS does that the emulator does not, played by the proxy (`support/behaviours/`) or
//! arranged with the SDK as AWS would (side resources), and how ecsctl copes. Each test is named
//! after its item in issue 12.

use crate::support::aws::Clients;
use crate::support::behaviours::{
    CallerPartition, NotYetVisible, Refuse, RoleNotYetValid, SecretPurging, ZoneIdIs,
};
use crate::support::pool::{assert_complete, tag_filter};
use crate::support::proxy::Call;
use crate::support::stack::Stack;

/// The worker image bootstrap uses unless `--image` says otherwise.
const PINNED_IMAGE: &str = "prefecthq/prefect-aws:0.7.12-python3.12";

/// The calls a behaviour answered in place of the emulator.
fn played(calls: &[Call], behaviour: &str) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.played_by == Some(behaviour))
        .map(|c| c.action.clone())
        .collect()
}

/// The image of the pool's worker task definition, as registered.
async fn worker_image(aws: &Clients, pool: &str) -> String {
    let td = aws
        .ecs
        .describe_task_definition()
        .task_definition(format!("ecsctl-{pool}-worker"))
        .send()
        .await
        .unwrap();
    let td = td.task_definition().unwrap();
    td.container_definitions()[0].image().unwrap().to_owned()
}

#[tokio::test]
async fn item3_a_task_definition_naming_roles_not_yet_valid_is_registered_once_they_are() {
    let stack = Stack::start().await;
    stack.proxy.play(RoleNotYetValid::for_calls(2));
    stack.bootstrap("i12-rtd", &[]).assert_success();
    let calls = stack.proxy.calls();
    let refused = played(&calls, "role-not-yet-valid");
    assert!(
        !refused.is_empty() && refused.iter().all(|a| a == "RegisterTaskDefinition"),
        "ECS refused no registration: {refused:?}"
    );
    assert_complete(
        &stack.aws,
        &stack.ecsctl.state_dir(),
        "i12-rtd",
        "after IAM propagated",
    )
    .await;
}

#[tokio::test]
async fn item4_ids_created_in_this_run_are_waited_for_while_ec2_does_not_show_them() {
    let stack = Stack::start().await;
    stack.proxy.play(NotYetVisible::for_calls(2));
    stack.bootstrap("i12-rac", &[]).assert_success();
    let held_back = played(&stack.proxy.calls(), "not-yet-visible");
    assert!(
        held_back.len() >= 5,
        "EC2 hid too few new ids to show anything: {held_back:?}"
    );
    assert_complete(
        &stack.aws,
        &stack.ecsctl.state_dir(),
        "i12-rac",
        "after EC2 caught up",
    )
    .await;
}

#[tokio::test]
async fn item7_a_region_at_its_vpc_quota_is_named_with_the_way_around_it() {
    let stack = Stack::start().await;
    stack.proxy.play(Refuse::always(
        "CreateVpc",
        "VpcLimitExceeded",
        "The maximum number of VPCs has been reached.",
    ));
    let out = stack.bootstrap("i12-quota", &[]);
    out.assert_code(1);
    for words in ["VpcLimitExceeded", "quota", "--vpc-id", "--subnet-ids"] {
        assert!(
            out.stderr.contains(words),
            "no {words:?} in:\n{}",
            out.stderr
        );
    }
}

#[tokio::test]
async fn item8_the_worker_image_is_pinned_by_default_shown_in_the_plan_and_set_by_image() {
    let stack = Stack::start().await;
    let plan = stack.bootstrap("i12-img", &["--dry-run"]);
    plan.assert_success();
    let line = format!("create; image {PINNED_IMAGE}");
    assert!(
        plan.stdout.contains(&line),
        "no {line:?} in:\n{}",
        plan.stdout
    );
    stack.bootstrap("i12-img", &[]).assert_success();
    assert_eq!(worker_image(&stack.aws, "i12-img").await, PINNED_IMAGE);

    let mirror = "123456789012.dkr.ecr.us-east-1.amazonaws.com/prefect-aws:0.7.12-python3.12";
    let plan = stack.bootstrap("i12-img", &["--dry-run", "--image", mirror]);
    plan.assert_success();
    for words in ["image changed", &format!("image {mirror}")] {
        assert!(
            plan.stdout.contains(words),
            "no {words:?} in:\n{}",
            plan.stdout
        );
    }
    stack
        .bootstrap("i12-img", &["--image", mirror])
        .assert_success();
    assert_eq!(worker_image(&stack.aws, "i12-img").await, mirror);
}

#[tokio::test]
async fn item10_a_secret_aws_is_still_purging_is_gone_to_destroy_and_free_to_bootstrap() {
    let stack = Stack::start().await;
    stack.bootstrap("i12-purge", &[]).assert_success();
    let purging = std::sync::Arc::new(SecretPurging::for_calls(5));
    stack.proxy.play(Shared(purging.clone()));
    stack.destroy("i12-purge", &[]).assert_success();
    let out = stack.bootstrap("i12-purge", &[]);
    out.assert_success();
    let calls = stack.proxy.calls();
    let secret_calls = played(&calls, "secret-purging");
    assert!(
        secret_calls.iter().any(|a| a == "CreateSecret"),
        "the name was never refused: {secret_calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.action == "RestoreSecret"),
        "bootstrap tried to restore a purged secret"
    );
    let secret = stack
        .aws
        .secrets
        .describe_secret()
        .secret_id("ecsctl/i12-purge/prefect-api-key")
        .send()
        .await
        .unwrap();
    assert!(secret.deleted_date().is_none(), "{secret:?}");
    assert_eq!(purging.purging_left(), 0, "the purge outlived the test");
    assert_complete(
        &stack.aws,
        &stack.ecsctl.state_dir(),
        "i12-purge",
        "after a bootstrap right after destroy",
    )
    .await;
}

#[tokio::test]
async fn item13_the_partition_comes_from_the_callers_arn_and_eusc_regions_are_valid() {
    let stack = Stack::start().await;
    stack.proxy.play(CallerPartition::new("aws-eusc"));
    // A region of the European Sovereign Cloud is a region name like any other.
    stack
        .bootstrap("i12-eusc", &["--dry-run", "--region", "eusc-de-east-1"])
        .assert_success();

    // In us-east-1 the region's prefix says `aws`; the caller's ARN says `aws-eusc`. (The
    // emulator knows no managed policy in that partition, so the run stops there: what counts
    // is what ecsctl asked for.)
    stack.proxy.clear();
    stack.bootstrap("i12-eusc", &[]);
    let calls = stack.proxy.calls();
    let registered = calls
        .iter()
        .find(|c| c.action == "RegisterTaskDefinition")
        .expect("a task definition was registered");
    assert!(
        registered
            .body
            .contains("arn:aws-eusc:iam::123456789012:role/ecsctl/"),
        "{}",
        registered.body
    );
    // The ARNs ecsctl builds itself (IAM's, and the queue's in the observer's policies); those
    // AWS returns (a secret's) are AWS's to name.
    let built_in_aws = |c: &&Call| {
        [
            "arn:aws:iam:",
            "arn%3Aaws%3Aiam%3A",
            "arn:aws:sqs:",
            "arn%3Aaws%3Asqs%3A",
        ]
        .iter()
        .any(|arn| c.body.contains(arn))
    };
    let wrong: Vec<_> = calls.iter().filter(built_in_aws).collect();
    assert!(wrong.is_empty(), "ARNs built in partition aws: {wrong:#?}");
    let attached = calls.iter().find(|c| c.action == "AttachRolePolicy");
    assert!(
        attached.is_some_and(|c| c.body.contains("arn%3Aaws-eusc%3Aiam%3A%3Aaws%3Apolicy")),
        "{attached:?}"
    );
}

/// Plays a behaviour the test keeps a handle on, to ask it afterwards what it saw.
struct Shared<B>(std::sync::Arc<B>);

impl<B: crate::support::proxy::Behaviour> crate::support::proxy::Behaviour for Shared<B> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn answer(
        &self,
        request: &crate::support::proxy::Exchange,
    ) -> Option<crate::support::proxy::Answer> {
        self.0.answer(request)
    }

    fn rewrite(
        &self,
        request: &crate::support::proxy::Exchange,
        answer: &mut crate::support::proxy::Answer,
    ) {
        self.0.rewrite(request, answer)
    }
}

/// What GuardDuty's runtime monitoring adds to a VPC whose Fargate tasks it watched: an interface
/// endpoint for `guardduty-data` in its subnets, behind a group named after the VPC. Returns the
/// endpoint's and the group's ids.
async fn add_guardduty(aws: &Clients, vpc: &str) -> (String, String) {
    let subnets = aws
        .ec2
        .describe_subnets()
        .filters(filter("vpc-id", vpc))
        .send()
        .await
        .unwrap();
    let subnets: Vec<String> = (subnets.subnets().iter())
        .filter_map(|s| s.subnet_id().map(str::to_owned))
        .collect();
    let group = aws
        .ec2
        .create_security_group()
        .group_name(format!("GuardDutyManagedSecurityGroup-{vpc}"))
        .description("Associated with VPC-vpc and tagged as GuardDutyManaged")
        .vpc_id(vpc)
        .send()
        .await
        .unwrap();
    let group = group.group_id().unwrap().to_owned();
    let endpoint = aws
        .ec2
        .create_vpc_endpoint()
        .vpc_id(vpc)
        .service_name("com.amazonaws.us-east-1.guardduty-data")
        .vpc_endpoint_type(aws_sdk_ec2::types::VpcEndpointType::Interface)
        .set_subnet_ids(Some(subnets))
        .security_group_ids(&group)
        .send()
        .await
        .unwrap();
    let endpoint = endpoint.vpc_endpoint().unwrap().vpc_endpoint_id().unwrap();
    (endpoint.to_owned(), group)
}

/// Which of GuardDuty's endpoint and group (by id) are still there.
async fn guardduty_left(aws: &Clients, (endpoint, group): &(String, String)) -> Vec<String> {
    let endpoints = aws.ec2.describe_vpc_endpoints().send().await.unwrap();
    let groups = aws.ec2.describe_security_groups().send().await.unwrap();
    // A deleted endpoint is listed for a while, in state `deleted` (lower case, as AWS says it).
    let endpoints = (endpoints.vpc_endpoints().iter())
        .filter(|e| e.state().map(|s| s.as_str()) != Some("deleted"))
        .filter_map(|e| e.vpc_endpoint_id());
    let groups = (groups.security_groups().iter()).filter_map(|g| g.group_id());
    endpoints
        .chain(groups)
        .filter(|id| id == endpoint || id == group)
        .map(str::to_owned)
        .collect()
}

fn filter(name: &str, value: &str) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(name)
        .values(value)
        .build()
}

/// The pool's own VPC, by its tag.
async fn own_vpc(aws: &Clients, pool: &str) -> String {
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .filters(tag_filter(pool))
        .send()
        .await
        .unwrap();
    vpcs.vpcs()[0].vpc_id().unwrap().to_owned()
}

#[tokio::test]
async fn item11_guardduty_endpoint_and_group_go_with_the_pools_own_vpc_and_stay_in_yours() {
    let stack = Stack::start().await;
    let aws = &stack.aws;
    stack.bootstrap("i12-gd", &[]).assert_success();
    let own = add_guardduty(aws, &own_vpc(aws, "i12-gd").await).await;

    // A VPC of the user's, with a way out, which ran the worker of another pool.
    let (vpc, subnets) = user_vpc(aws, "us-east-1", 8).await;
    let gateway = aws.attached_internet_gateway(&vpc).await;
    route_subnets(
        aws,
        &vpc,
        &subnets,
        aws.ec2.create_route().gateway_id(gateway),
    )
    .await;
    let theirs = add_guardduty(aws, &vpc).await;
    let reuse = ["--vpc-id", &vpc, "--subnet-ids", &subnets.join(",")];
    stack.bootstrap("i12-gdreuse", &reuse).assert_success();

    let plan = stack.destroy("i12-gd", &["--dry-run"]);
    plan.assert_success();
    for words in [
        format!("VPC endpoint guardduty-data ({})", own.0),
        "security group GuardDutyManagedSecurityGroup-vpc-".to_string(),
        own.1.clone(),
    ] {
        assert!(
            plan.stdout.contains(&words),
            "no {words:?} in:\n{}",
            plan.stdout
        );
    }
    let plan = stack.destroy("i12-gdreuse", &["--dry-run"]);
    assert!(!plan.stdout.contains("guardduty"), "{}", plan.stdout);

    stack.destroy("i12-gdreuse", &[]).assert_success();
    stack.destroy("i12-gd", &[]).assert_success();
    assert_eq!(guardduty_left(aws, &own).await, Vec::<String>::new());
    assert_eq!(
        guardduty_left(aws, &theirs).await,
        vec![theirs.0.clone(), theirs.1.clone()],
        "GuardDuty's resources in the user's VPC were touched"
    );
}

/// A VPC of the user's with two subnets (in zones `a` and `b` of `region`), each routed by
/// `route` (given the SDK clients, the VPC and the subnets' table); returns the VPC and subnets.
async fn user_vpc(aws: &Clients, region: &str, cidr: u8) -> (String, Vec<String>) {
    let vpc = (aws.ec2.create_vpc())
        .cidr_block(format!("10.{cidr}.0.0/16"))
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_owned();
    let mut subnets = Vec::new();
    for (block, zone) in [(0, "a"), (16, "b")] {
        let subnet = (aws.ec2.create_subnet())
            .vpc_id(&vpc)
            .cidr_block(format!("10.{cidr}.{block}.0/20"))
            .availability_zone(format!("{region}{zone}"))
            .send()
            .await
            .unwrap();
        subnets.push(subnet.subnet().unwrap().subnet_id().unwrap().to_owned());
    }
    (vpc, subnets)
}

/// A route table sending the subnets' 0.0.0.0/0 through `route`, associated with each of them.
async fn route_subnets(
    aws: &Clients,
    vpc: &str,
    subnets: &[String],
    route: aws_sdk_ec2::operation::create_route::builders::CreateRouteFluentBuilder,
) {
    let table = aws
        .ec2
        .create_route_table()
        .vpc_id(vpc)
        .send()
        .await
        .unwrap();
    let table = table.route_table().unwrap().route_table_id().unwrap();
    route
        .route_table_id(table)
        .destination_cidr_block("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    for subnet in subnets {
        (aws.ec2.associate_route_table())
            .route_table_id(table)
            .subnet_id(subnet)
            .send()
            .await
            .unwrap();
    }
}

/// The service's assignPublicIp (`ENABLED` / `DISABLED`).
async fn public_ip(aws: &Clients, pool: &str) -> String {
    let services = (aws.ecs.describe_services())
        .cluster(format!("ecsctl-{pool}"))
        .services(format!("ecsctl-{pool}-worker"))
        .send()
        .await
        .unwrap();
    let service = &services.services()[0];
    let vpc = service
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
        .unwrap();
    vpc.assign_public_ip().unwrap().as_str().to_owned()
}

fn reuse_args(vpc: &str, subnets: &[String]) -> Vec<String> {
    vec![
        "--vpc-id".into(),
        vpc.into(),
        "--subnet-ids".into(),
        subnets.join(","),
    ]
}

#[tokio::test]
async fn item5_subnets_behind_a_nat_run_the_worker_without_a_public_ip_and_public_ones_with() {
    let stack = Stack::start().await;
    let aws = &stack.aws;
    let (vpc, subnets) = user_vpc(aws, "us-east-1", 5).await;
    let address = aws.ec2.allocate_address().send().await.unwrap();
    let nat = (aws.ec2.create_nat_gateway())
        .subnet_id(&subnets[0])
        .allocation_id(address.allocation_id().unwrap())
        .send()
        .await
        .unwrap();
    let nat = nat.nat_gateway().unwrap().nat_gateway_id().unwrap();
    route_subnets(
        aws,
        &vpc,
        &subnets,
        aws.ec2.create_route().nat_gateway_id(nat),
    )
    .await;
    let args = reuse_args(&vpc, &subnets);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let plan = stack.bootstrap("i12-nat", &[&args[..], &["--dry-run"]].concat());
    plan.assert_success();
    assert!(
        plan.stdout
            .contains("routes through a NAT: tasks get no public IP"),
        "{}",
        plan.stdout
    );
    stack.bootstrap("i12-nat", &args).assert_success();
    assert_eq!(public_ip(aws, "i12-nat").await, "DISABLED");

    let (vpc, subnets) = user_vpc(aws, "us-east-1", 6).await;
    let gateway = aws.attached_internet_gateway(&vpc).await;
    route_subnets(
        aws,
        &vpc,
        &subnets,
        aws.ec2.create_route().gateway_id(gateway),
    )
    .await;
    let args = reuse_args(&vpc, &subnets);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    stack.bootstrap("i12-igw", &args).assert_success();
    assert_eq!(public_ip(aws, "i12-igw").await, "ENABLED");
}

#[tokio::test]
async fn item5_subnets_with_no_way_out_are_refused_before_anything_is_created_unless_endpoints() {
    let stack = Stack::start().await;
    let aws = &stack.aws;
    let (vpc, subnets) = user_vpc(aws, "us-east-1", 7).await;
    let args = reuse_args(&vpc, &subnets);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    stack.clear_calls();
    let out = stack.bootstrap("i12-closed", &args);
    out.assert_code(1);
    for words in [
        format!("subnet {} has no route to the internet", subnets[0]),
        "could neither pull its image nor reach Prefect".to_owned(),
        "ecr.api, ecr.dkr, logs, secretsmanager, s3".to_owned(),
    ] {
        assert!(
            out.stderr.contains(&words),
            "no {words:?} in:\n{}",
            out.stderr
        );
    }
    assert_eq!(stack.stack_changes(), Vec::<String>::new());
    assert_eq!(stack.prefect_writes(), Vec::<String>::new());

    // With endpoints for everything the worker needs from AWS, the subnets will do.
    for service in ["ecr.api", "ecr.dkr", "logs", "secretsmanager", "s3"] {
        (aws.ec2.create_vpc_endpoint())
            .vpc_id(&vpc)
            .service_name(format!("com.amazonaws.us-east-1.{service}"))
            .send()
            .await
            .unwrap();
    }
    stack.bootstrap("i12-closed", &args).assert_success();
    assert_eq!(public_ip(aws, "i12-closed").await, "DISABLED");
}

#[tokio::test]
async fn item5_subnets_in_a_zone_without_fargate_are_refused() {
    let stack = Stack::start().await;
    let aws = Clients::with_region(&stack.emulator.endpoint(), "us-west-1").await;
    let (vpc, subnets) = user_vpc(&aws, "us-west-1", 9).await;
    let gateway = aws.attached_internet_gateway(&vpc).await;
    route_subnets(
        &aws,
        &vpc,
        &subnets,
        aws.ec2.create_route().gateway_id(gateway),
    )
    .await;
    let zones = aws
        .ec2
        .describe_subnets()
        .subnet_ids(&subnets[0])
        .send()
        .await
        .unwrap();
    let zone = zones.subnets()[0]
        .availability_zone_id()
        .unwrap()
        .to_owned();
    assert!(zone.starts_with("usw1-"), "{zone}");
    // In this account the first subnet's zone is the one Fargate lacks in us-west-1.
    let zone: &'static str = Box::leak(zone.into_boxed_str());
    stack.proxy.play(ZoneIdIs::instead_of("usw1-az2", zone));
    let args = reuse_args(&vpc, &subnets);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--region", "us-west-1"]);
    stack.clear_calls();
    let out = stack.bootstrap("i12-nofargate", &args);
    out.assert_code(1);
    let words = format!(
        "subnet {} is in zone us-west-1a (usw1-az2), where Fargate does not run",
        subnets[0]
    );
    assert!(
        out.stderr.contains(&words),
        "no {words:?} in:\n{}",
        out.stderr
    );
    assert_eq!(stack.stack_changes(), Vec::<String>::new());
}
