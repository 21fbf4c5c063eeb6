//! What real AWS does that the emulator does not, played by the proxy (`support/behaviours/`) or
//! arranged with the SDK as AWS would (side resources), and how ecsctl copes. Each test is named
//! after its item in issue 12.

use crate::support::aws::Clients;
use crate::support::behaviours::{
    CallerPartition, NotYetVisible, Refuse, RoleNotYetValid, SecretPurging,
};
use crate::support::pool::assert_complete;
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
    stack.bootstrap("rtd", &[]).assert_success();
    let calls = stack.proxy.calls();
    let refused = played(&calls, "role-not-yet-valid");
    assert!(
        !refused.is_empty() && refused.iter().all(|a| a == "RegisterTaskDefinition"),
        "ECS refused no registration: {refused:?}"
    );
    assert_complete(
        &stack.aws,
        &stack.ecsctl.state_dir(),
        "rtd",
        "after IAM propagated",
    )
    .await;
}

#[tokio::test]
async fn item4_ids_created_in_this_run_are_waited_for_while_ec2_does_not_show_them() {
    let stack = Stack::start().await;
    stack.proxy.play(NotYetVisible::for_calls(2));
    stack.bootstrap("rac", &[]).assert_success();
    let held_back = played(&stack.proxy.calls(), "not-yet-visible");
    assert!(
        held_back.len() >= 5,
        "EC2 hid too few new ids to show anything: {held_back:?}"
    );
    assert_complete(
        &stack.aws,
        &stack.ecsctl.state_dir(),
        "rac",
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
    let out = stack.bootstrap("quota", &[]);
    out.assert_code(1);
    for words in ["VpcLimitExceeded", "quota", "--vpc-id", "--subnet-ids"] {
        assert!(out.stderr.contains(words), "no {words:?} in:\n{}", out.stderr);
    }
}

#[tokio::test]
async fn item8_the_worker_image_is_pinned_by_default_shown_in_the_plan_and_set_by_image() {
    let stack = Stack::start().await;
    let plan = stack.bootstrap("img", &["--dry-run"]);
    plan.assert_success();
    let line = format!("create; image {PINNED_IMAGE}");
    assert!(plan.stdout.contains(&line), "no {line:?} in:\n{}", plan.stdout);
    stack.bootstrap("img", &[]).assert_success();
    assert_eq!(worker_image(&stack.aws, "img").await, PINNED_IMAGE);

    let mirror = "123456789012.dkr.ecr.us-east-1.amazonaws.com/prefect-aws:0.7.12-python3.12";
    let plan = stack.bootstrap("img", &["--dry-run", "--image", mirror]);
    plan.assert_success();
    for words in ["image changed", &format!("image {mirror}")] {
        assert!(plan.stdout.contains(words), "no {words:?} in:\n{}", plan.stdout);
    }
    stack.bootstrap("img", &["--image", mirror]).assert_success();
    assert_eq!(worker_image(&stack.aws, "img").await, mirror);
}

#[tokio::test]
async fn item10_a_secret_aws_is_still_purging_is_gone_to_destroy_and_free_to_bootstrap() {
    let stack = Stack::start().await;
    stack.bootstrap("purge", &[]).assert_success();
    let purging = std::sync::Arc::new(SecretPurging::for_calls(5));
    stack.proxy.play(Shared(purging.clone()));
    stack.destroy("purge", &[]).assert_success();
    let out = stack.bootstrap("purge", &[]);
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
        .secret_id("ecsctl/purge/prefect-api-key")
        .send()
        .await
        .unwrap();
    assert!(secret.deleted_date().is_none(), "{secret:?}");
    assert_eq!(purging.purging_left(), 0, "the purge outlived the test");
    assert_complete(
        &stack.aws,
        &stack.ecsctl.state_dir(),
        "purge",
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
        .bootstrap("eusc", &["--dry-run", "--region", "eusc-de-east-1"])
        .assert_success();

    // In us-east-1 the region's prefix says `aws`; the caller's ARN says `aws-eusc`. (The
    // emulator knows no managed policy in that partition, so the run stops there: what counts
    // is what ecsctl asked for.)
    stack.proxy.clear();
    stack.bootstrap("eusc", &[]);
    let calls = stack.proxy.calls();
    let registered = calls
        .iter()
        .find(|c| c.action == "RegisterTaskDefinition")
        .expect("a task definition was registered");
    assert!(
        registered.body.contains("arn:aws-eusc:iam::123456789012:role/ecsctl/"),
        "{}",
        registered.body
    );
    // The ARNs ecsctl builds itself (IAM's, and the queue's in the observer's policies); those
    // AWS returns (a secret's) are AWS's to name.
    let built_in_aws = |c: &&Call| {
        ["arn:aws:iam:", "arn%3Aaws%3Aiam%3A", "arn:aws:sqs:", "arn%3Aaws%3Asqs%3A"]
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
