//! Never taking over what belongs to someone else: another pool's VPC passed with --vpc-id, a
//! recorded name now held by someone else's resource, a pool resource whose tag was removed.
//! Each case checks the other stack's inventory before and after.

use aws_sdk_ecs::types::{AssignPublicIp, AwsVpcConfiguration, LaunchType, NetworkConfiguration};

use crate::support::pool::stack_ids;
use crate::support::stack::Stack;

#[tokio::test(flavor = "multi_thread")]
async fn another_pools_vpc_is_refused_for_vpc_id() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    s.bootstrap("owner", &[]).assert_success();
    let owner = stack_ids(&s.aws, "owner").await;
    let before = s.inventory().await;

    s.clear_calls();
    let subnets = owner.subnet_ids.join(",");
    let out = s.bootstrap(
        "guest",
        &["--vpc-id", &owner.vpc_id, "--subnet-ids", &subnets],
    );
    out.assert_code(1);
    assert!(
        out.stderr.contains(&format!(
            "{}, the network of ecsctl pool 'owner'",
            owner.vpc_id
        )),
        "{}",
        out.stderr
    );
    assert_eq!(s.stack_changes(), Vec::<String>::new());
    before.assert_unchanged(&s.inventory().await);

    s.destroy_all_and_assert_unchanged(&["guest", "owner"], &pristine)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_taken_over_by_an_untagged_one_is_left_alone_by_destroy() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    s.bootstrap("svc", &[]).assert_success();
    let ids = stack_ids(&s.aws, "svc").await;
    let (cluster, name) = ("ecsctl-svc", "ecsctl-svc-worker");

    // The user replaces ecsctl's service with one of their own, same name, no tags.
    s.aws
        .ecs
        .delete_service()
        .cluster(cluster)
        .service(name)
        .force(true)
        .send()
        .await
        .unwrap();
    let network = AwsVpcConfiguration::builder()
        .set_subnets(Some(ids.subnet_ids.clone()))
        .security_groups(&ids.security_group_id)
        .assign_public_ip(AssignPublicIp::Enabled)
        .build()
        .unwrap();
    s.aws
        .ecs
        .create_service()
        .cluster(cluster)
        .service_name(name)
        .task_definition("ecsctl-svc-worker")
        .desired_count(0)
        .launch_type(LaunchType::Fargate)
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(network)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let theirs = service_status(&s, cluster, name).await;
    assert_eq!(theirs.as_deref(), Some("ACTIVE"));

    // Destroy leaves their service, and the cluster it sits in, and says so.
    let out = s.destroy("svc", &[]);
    out.assert_code(1);
    assert!(
        out.stderr.contains(name) && out.stderr.contains(cluster),
        "{}",
        out.stderr
    );
    assert_eq!(service_status(&s, cluster, name).await, theirs);

    // Once they delete it, destroy finishes.
    s.aws
        .ecs
        .delete_service()
        .cluster(cluster)
        .service(name)
        .force(true)
        .send()
        .await
        .unwrap();
    s.destroy_all_and_assert_unchanged(&["svc"], &pristine)
        .await;
}

/// The service's status (ACTIVE, DRAINING, INACTIVE), `None` when ECS does not know it.
async fn service_status(s: &Stack, cluster: &str, name: &str) -> Option<String> {
    let described = s
        .aws
        .ecs
        .describe_services()
        .cluster(cluster)
        .services(name)
        .send()
        .await
        .unwrap();
    described
        .services()
        .first()
        .and_then(|svc| svc.status().map(str::to_string))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_vpc_whose_tag_was_removed_is_reported_and_never_built_twice() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    s.bootstrap("untag", &[]).assert_success();
    let ids = stack_ids(&s.aws, "untag").await;
    s.aws
        .ec2
        .delete_tags()
        .resources(&ids.vpc_id)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("ecsctl:pool")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let before = s.inventory().await;

    let out = s
        .ecsctl
        .cmd(["status", "--pool", "untag", "--output", "json"])
        .run();
    out.assert_code(1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let vpc = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "vpc")
        .unwrap_or_else(|| panic!("no VPC in {report:#}"));
    assert_eq!(vpc["state"], "foreign", "{report:#}");

    s.clear_calls();
    let out = s.bootstrap("untag", &[]);
    out.assert_code(1);
    assert!(out.stderr.contains(&ids.vpc_id), "{}", out.stderr);
    assert_eq!(s.mutating_actions(), Vec::<String>::new());
    before.assert_unchanged(&s.inventory().await);

    // Tagged again by hand, it is the pool's again and destroy removes it all.
    s.aws
        .ec2
        .create_tags()
        .resources(&ids.vpc_id)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("ecsctl:pool")
                .value("untag")
                .build(),
        )
        .send()
        .await
        .unwrap();
    s.destroy_all_and_assert_unchanged(&["untag"], &pristine)
        .await;
}
