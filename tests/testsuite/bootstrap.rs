//! `ecsctl bootstrap` against the emulator, checked with the AWS SDK (not ecsctl's own output).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::aws::Clients;
use crate::support::iam::{decode_policy, statements, strings};
use crate::support::pool;
use crate::support::prefect::API_KEY;
use crate::support::stack::Stack;
use crate::support::text::assert_text;

async fn inline_policy(aws: &Clients, role: &str) -> Value {
    let names = aws
        .iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    assert_eq!(
        names.policy_names().len(),
        1,
        "{role} has one inline policy"
    );
    let doc = aws
        .iam
        .get_role_policy()
        .role_name(role)
        .policy_name(&names.policy_names()[0])
        .send()
        .await
        .unwrap();
    decode_policy(doc.policy_document())
}

/// Asserts the pool has exactly one stack's worth of tagged network resources (VPC, subnets,
/// gateway, route table, security group): nothing duplicated.
async fn assert_one_network(aws: &Clients, pool: &str) {
    let counts = pool::resource_counts(aws, pool).await;
    assert_eq!(counts[..5], pool::EXPECTED_COUNTS[..5], "{pool}'s network");
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_bootstrap_creates_the_whole_stack_wired_as_designed() {
    let s = Stack::start().await;
    let out = s.bootstrap("my-ecs-pool", &["--output", "json"]);
    out.assert_success();
    let api_url = s.prefect_api_url();
    let result: Value = serde_json::from_str(&out.stdout).expect("JSON result on stdout");
    assert_eq!(result["changed"], true);
    let aws = &s.aws;

    // Secret: holds the key, tagged for the pool.
    let secret = aws
        .secrets
        .describe_secret()
        .secret_id("ecsctl/my-ecs-pool/prefect-api-key")
        .send()
        .await
        .unwrap();
    let secret_arn = secret.arn().unwrap().to_string();
    assert!(secret
        .tags()
        .iter()
        .any(|t| t.key() == Some("ecsctl:pool") && t.value() == Some("my-ecs-pool")));
    let value = aws
        .secrets
        .get_secret_value()
        .secret_id(&secret_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(value.secret_string(), Some(API_KEY));

    // Log group with the default retention.
    let groups = aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix("/ecsctl/my-ecs-pool/worker")
        .send()
        .await
        .unwrap();
    assert_eq!(groups.log_groups().len(), 1);
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(30));
    // And one for the flow runs' containers, with the same retention.
    let groups = aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix("/ecsctl/my-ecs-pool/flow-runs")
        .send()
        .await
        .unwrap();
    assert_eq!(groups.log_groups().len(), 1);
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(30));

    // Execution role: trusted by ECS tasks, the managed policy, and reads only this secret.
    let exec = aws
        .iam
        .get_role()
        .role_name("ecsctl-my-ecs-pool-use1-execution")
        .send()
        .await
        .unwrap();
    let exec = exec.role().unwrap();
    assert_eq!(exec.path(), "/ecsctl/");
    let trust = decode_policy(exec.assume_role_policy_document().unwrap());
    assert_eq!(
        trust["Statement"][0]["Principal"]["Service"],
        "ecs-tasks.amazonaws.com"
    );
    let attached = aws
        .iam
        .list_attached_role_policies()
        .role_name("ecsctl-my-ecs-pool-use1-execution")
        .send()
        .await
        .unwrap();
    assert!(attached
        .attached_policies()
        .iter()
        .any(|p| p.policy_name() == Some("AmazonECSTaskExecutionRolePolicy")));
    let exec_policy = inline_policy(aws, "ecsctl-my-ecs-pool-use1-execution").await;
    for st in statements(&exec_policy) {
        assert_eq!(
            strings(&st["Action"]),
            vec!["secretsmanager:GetSecretValue"]
        );
        assert_eq!(
            strings(&st["Resource"]),
            vec![secret_arn.clone()],
            "only this secret"
        );
    }

    // Flow-run role: the role flow runs run as, trusted by ECS tasks, nothing attached.
    let flow_run = aws
        .iam
        .get_role()
        .role_name(pool::flow_run_role("my-ecs-pool"))
        .send()
        .await
        .unwrap();
    let flow_run = flow_run.role().unwrap();
    assert_eq!(flow_run.path(), "/ecsctl/");
    let trust = decode_policy(flow_run.assume_role_policy_document().unwrap());
    assert_eq!(
        trust["Statement"][0]["Principal"]["Service"],
        "ecs-tasks.amazonaws.com"
    );

    // Worker role: a different role, allowed to run tasks and pass only the roles flow runs
    // need (the execution role and the flow-run role), never itself.
    let worker = aws
        .iam
        .get_role()
        .role_name("ecsctl-my-ecs-pool-use1-worker")
        .send()
        .await
        .unwrap();
    let worker = worker.role().unwrap();
    assert_ne!(worker.arn(), exec.arn());
    let worker_policy = inline_policy(aws, "ecsctl-my-ecs-pool-use1-worker").await;
    let actions: BTreeSet<String> = statements(&worker_policy)
        .iter()
        .flat_map(|st| strings(&st["Action"]))
        .collect();
    for needed in [
        "ecs:RunTask",
        "ecs:StopTask",
        "ecs:RegisterTaskDefinition",
        "ecs:TagResource",
        "iam:PassRole",
    ] {
        assert!(actions.contains(needed), "worker role lacks {needed}");
    }
    for st in statements(&worker_policy) {
        assert_ne!(
            strings(&st["Action"]),
            vec!["*".to_string()],
            "no wildcard action"
        );
        if strings(&st["Action"]).contains(&"iam:PassRole".to_string()) {
            let mut resources = strings(&st["Resource"]);
            resources.sort();
            let mut expected = vec![exec.arn().to_string(), flow_run.arn().to_string()];
            expected.sort();
            assert_eq!(
                resources, expected,
                "PassRole only for the flow runs' roles"
            );
        }
    }

    // Network: one VPC, two subnets in two AZs, IGW attached, default route, no-ingress SG.
    assert_one_network(aws, "my-ecs-pool").await;
    let pool_filter = pool::tag_filter("my-ecs-pool");
    let vpc = aws
        .ec2
        .describe_vpcs()
        .filters(pool_filter.clone())
        .send()
        .await
        .unwrap();
    let vpc = &vpc.vpcs()[0];
    assert_eq!(vpc.cidr_block(), Some("10.0.0.0/16"));
    let vpc_id = vpc.vpc_id().unwrap().to_string();
    let subnets = aws
        .ec2
        .describe_subnets()
        .filters(pool_filter.clone())
        .send()
        .await
        .unwrap();
    let subnet_ids: BTreeSet<String> = subnets
        .subnets()
        .iter()
        .map(|s| s.subnet_id().unwrap().to_string())
        .collect();
    let azs: BTreeSet<&str> = subnets
        .subnets()
        .iter()
        .map(|s| s.availability_zone().unwrap())
        .collect();
    assert_eq!(azs.len(), 2, "subnets in two AZs");
    assert!(subnets
        .subnets()
        .iter()
        .all(|s| s.vpc_id() == Some(vpc_id.as_str())));
    let igw = aws
        .ec2
        .describe_internet_gateways()
        .filters(pool_filter.clone())
        .send()
        .await
        .unwrap();
    let igw = &igw.internet_gateways()[0];
    assert_eq!(igw.attachments()[0].vpc_id(), Some(vpc_id.as_str()));
    let rt = aws
        .ec2
        .describe_route_tables()
        .filters(pool_filter.clone())
        .send()
        .await
        .unwrap();
    let rt = &rt.route_tables()[0];
    assert!(rt
        .routes()
        .iter()
        .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0")
            && r.gateway_id() == igw.internet_gateway_id()));
    let associated: BTreeSet<String> = rt
        .associations()
        .iter()
        .filter_map(|a| a.subnet_id().map(String::from))
        .collect();
    assert_eq!(associated, subnet_ids, "both subnets route through the IGW");
    let sg = aws
        .ec2
        .describe_security_groups()
        .filters(pool_filter)
        .send()
        .await
        .unwrap();
    let sg = &sg.security_groups()[0];
    assert!(sg.ip_permissions().is_empty(), "no inbound rules");
    assert!(!sg.ip_permissions_egress().is_empty(), "outbound allowed");
    let sg_id = sg.group_id().unwrap().to_string();

    // Cluster with Fargate capacity providers.
    let clusters = aws
        .ecs
        .describe_clusters()
        .clusters("ecsctl-my-ecs-pool")
        .send()
        .await
        .unwrap();
    let cluster = &clusters.clusters()[0];
    assert_eq!(cluster.status(), Some("ACTIVE"));
    assert!(cluster.capacity_providers().iter().any(|c| c == "FARGATE"));

    // Task definition: the worker command, the key from the secret, logs to the log group.
    let td = aws
        .ecs
        .describe_task_definition()
        .task_definition("ecsctl-my-ecs-pool-worker")
        .send()
        .await
        .unwrap();
    let td = td.task_definition().unwrap();
    assert_eq!(td.execution_role_arn(), Some(exec.arn()));
    assert_eq!(td.task_role_arn(), Some(worker.arn()));
    assert_eq!((td.cpu(), td.memory()), (Some("512"), Some("1024")));
    let container = &td.container_definitions()[0];
    assert_eq!(
        container.image(),
        Some("prefecthq/prefect-aws:0.7.12-python3.12")
    );
    // A small Python launcher names the worker after its ECS task, then becomes
    // `prefect worker start --pool P --type ecs …`.
    let command = container.command();
    assert_eq!(command.len(), 4, "{command:?}");
    assert_eq!(command[..2], ["python", "-c"], "{command:?}");
    assert_eq!(
        command[3], "my-ecs-pool",
        "the pool is the launcher's argument"
    );
    assert!(
        command[2].contains(
            r#"os.execvp("prefect", ["prefect", "worker", "start", "--pool", pool, "--type", "ecs","#
        ),
        "the launcher starts the ECS worker on the pool: {}",
        command[2]
    );
    assert!(container
        .environment()
        .iter()
        .any(|e| e.name() == Some("PREFECT_API_URL") && e.value() == Some(api_url.as_str())));
    assert!(container
        .environment()
        .iter()
        .all(|e| e.name() != Some("PREFECT_API_KEY")));
    assert!(container
        .environment()
        .iter()
        .all(|e| e.value() != Some(API_KEY)));
    let secrets = container.secrets();
    assert_eq!(secrets.len(), 1);
    assert_eq!(
        (secrets[0].name(), secrets[0].value_from()),
        ("PREFECT_API_KEY", secret_arn.as_str())
    );
    let logs = container.log_configuration().unwrap();
    assert_eq!(logs.log_driver().as_str(), "awslogs");
    assert_eq!(
        logs.options()
            .unwrap()
            .get("awslogs-group")
            .map(String::as_str),
        Some("/ecsctl/my-ecs-pool/worker")
    );

    // Service: runs that task definition on the pool's subnets and security group.
    let services = aws
        .ecs
        .describe_services()
        .cluster("ecsctl-my-ecs-pool")
        .services("ecsctl-my-ecs-pool-worker")
        .send()
        .await
        .unwrap();
    let service = &services.services()[0];
    assert_eq!(service.status(), Some("ACTIVE"));
    assert_eq!(service.task_definition(), td.task_definition_arn());
    assert_eq!(service.desired_count(), 1);
    let vpc_config = service
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
        .unwrap();
    let service_subnets: BTreeSet<String> = vpc_config.subnets().iter().cloned().collect();
    assert_eq!(service_subnets, subnet_ids);
    assert_eq!(vpc_config.security_groups(), [sg_id]);

    // The key is nowhere else: not in output, not in the ledger.
    assert!(!out.stdout.contains(API_KEY) && !out.stderr.contains(API_KEY));
    let ledger = std::fs::read_to_string(s.ledger("my-ecs-pool")).expect("ledger written");
    assert!(!ledger.contains(API_KEY));
    assert!(ledger.contains(&vpc_id) && ledger.contains(&secret_arn));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_makes_no_mutating_call_and_changes_nothing() {
    let s = Stack::start().await;
    let out = s.bootstrap("again", &[]);
    out.assert_success();
    assert_text(
        &out.stdout,
        "\
Bootstrapped pool 'again' in account [ACCOUNT] region us-east-1 ([ELAPSED])
  secret           secret             [ARN]
  log-group        log group          /ecsctl/again/worker, /ecsctl/again/flow-runs
  execution-role   role               [ARN]
  worker-role      role               [ARN]
  flow-run-role    role               [ARN]
  network          internet gateway   [IGW]
  network          route table        [RTB]
  network          security group     [SG]
  network          subnets            [SUBNET], [SUBNET]
  network          vpc                [VPC]
  cluster          cluster            [ARN]
  observer         queue              ecsctl-again-task-events
  observer         rule               ecsctl-again-task-state
  task-definition  task definition    [ARN]
  service          service            [ARN]
  work-pool        work pool          again
",
        &[],
    );
    let before = s.inventory().await;
    let pool_before = s.prefect.pool("again").await.expect("the work pool exists");
    s.clear_calls();

    // Told as text, then as JSON: the same answer, and neither run changes anything, in AWS or
    // in Prefect.
    let text = s.bootstrap("again", &[]);
    text.assert_success();
    assert_text(
        &text.stdout,
        "\
No changes to pool 'again' in account [ACCOUNT] region us-east-1 ([ELAPSED])
  secret           secret             [ARN]
  log-group        log group          /ecsctl/again/worker, /ecsctl/again/flow-runs
  execution-role   role               [ARN]
  worker-role      role               [ARN]
  flow-run-role    role               [ARN]
  network          internet gateway   [IGW]
  network          route table        [RTB]
  network          security group     [SG]
  network          subnets            [SUBNET], [SUBNET]
  network          vpc                [VPC]
  cluster          cluster            [ARN]
  observer         queue              ecsctl-again-task-events
  observer         rule               ecsctl-again-task-state
  task-definition  task definition    [ARN]
  service          service            [ARN]
  work-pool        work pool          again
",
        &[],
    );
    let first: Vec<&str> = out.stdout.lines().skip(1).collect();
    let again: Vec<&str> = text.stdout.lines().skip(1).collect();
    assert_eq!(first, again, "the same resources, by the same ids");
    let out = s.bootstrap("again", &["--output", "json"]);
    out.assert_success();
    assert_eq!(
        s.mutating_actions(),
        Vec::<String>::new(),
        "a re-run must not change anything"
    );
    assert!(!s.proxy.calls().is_empty(), "the re-run did look");
    assert_eq!(
        s.prefect_writes(),
        Vec::<String>::new(),
        "a re-run must not write to Prefect"
    );
    assert!(
        s.prefect_calls()
            .iter()
            .any(|c| c.action == "GET /api/work_pools/again"),
        "the re-run read the work pool: {:?}",
        s.prefect_calls()
    );
    let result: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(result["changed"], false);
    before.assert_unchanged(&s.inventory().await);
    let pool_after = s.prefect.pool("again").await.expect("the work pool exists");
    assert_eq!(pool_after["updated"], pool_before["updated"]);
    assert_eq!(
        pool_after["base_job_template"],
        pool_before["base_job_template"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_image_makes_one_new_revision_and_updates_the_service() {
    let s = Stack::start().await;
    s.bootstrap("img", &[]).assert_success();
    s.proxy.clear();

    s.bootstrap("img", &["--image", "prefecthq/prefect-aws:0.5.0"])
        .assert_success();
    assert_eq!(
        s.stack_changes(),
        ["RegisterTaskDefinition", "UpdateService"]
    );
    let td = s
        .aws
        .ecs
        .describe_task_definition()
        .task_definition("ecsctl-img-worker")
        .send()
        .await
        .unwrap();
    let td = td.task_definition().unwrap();
    assert_eq!(td.revision(), 2);
    assert_eq!(
        td.container_definitions()[0].image(),
        Some("prefecthq/prefect-aws:0.5.0")
    );
    let services = s
        .aws
        .ecs
        .describe_services()
        .cluster("ecsctl-img")
        .services("ecsctl-img-worker")
        .send()
        .await
        .unwrap();
    assert_eq!(
        services.services()[0].task_definition(),
        td.task_definition_arn()
    );
    assert_one_network(&s.aws, "img").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn other_changed_inputs_update_in_place() {
    let s = Stack::start().await;
    s.bootstrap("knobs", &[]).assert_success();

    s.proxy.clear();
    s.bootstrap("knobs", &["--desired-count", "2"])
        .assert_success();
    assert_eq!(s.stack_changes(), ["UpdateService"]);

    s.proxy.clear();
    s.bootstrap(
        "knobs",
        &["--desired-count", "2", "--log-retention-days", "90"],
    )
    .assert_success();
    // Both log groups, the worker's and the flow runs'.
    assert_eq!(
        s.stack_changes(),
        ["PutRetentionPolicy", "PutRetentionPolicy"]
    );

    // A new key: a new secret version, and the service restarted so workers read it.
    s.proxy.clear();
    let out = s
        .bootstrap_cmd(
            "knobs",
            &["--desired-count", "2", "--log-retention-days", "90"],
        )
        .env("PREFECT_API_KEY", "pnu_rotated_key_77")
        .run();
    out.assert_success();
    assert_eq!(s.stack_changes(), ["PutSecretValue", "UpdateService"]);
    let value = s
        .aws
        .secrets
        .get_secret_value()
        .secret_id("ecsctl/knobs/prefect-api-key")
        .send()
        .await
        .unwrap();
    assert_eq!(value.secret_string(), Some("pnu_rotated_key_77"));

    // A new API URL (the same server by another name) and size: one new revision.
    let other_url = s.prefect_api_url().replace("127.0.0.1", "localhost");
    assert_ne!(other_url, s.prefect_api_url());
    s.proxy.clear();
    let out = s
        .bootstrap_cmd(
            "knobs",
            &[
                "--desired-count",
                "2",
                "--log-retention-days",
                "90",
                "--cpu",
                "1024",
                "--memory",
                "2048",
            ],
        )
        .env("PREFECT_API_URL", &other_url)
        .env("PREFECT_API_KEY", "pnu_rotated_key_77")
        .run();
    out.assert_success();
    assert_eq!(
        s.stack_changes(),
        ["RegisterTaskDefinition", "UpdateService"]
    );
    let services = s
        .aws
        .ecs
        .describe_services()
        .cluster("ecsctl-knobs")
        .services("ecsctl-knobs-worker")
        .send()
        .await
        .unwrap();
    assert_eq!(services.services()[0].desired_count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_shows_the_plan_and_changes_nothing() {
    let s = Stack::start().await;
    let out = s.bootstrap("dry", &["--dry-run"]);
    out.assert_success();
    assert_text(
        &out.stdout,
        "\
Plan for pool 'dry' in account [ACCOUNT] region us-east-1 (dry run, nothing changed):
  + secret           secret             ecsctl/dry/prefect-api-key               create
  + log-group        log group          /ecsctl/dry/worker                       create
  + log-group        log group          /ecsctl/dry/flow-runs                    create
  + execution-role   IAM role           ecsctl-dry-use1-execution                create
  + worker-role      IAM role           ecsctl-dry-use1-worker                   create
  + flow-run-role    IAM role           ecsctl-dry-use1-flow-run                 create
  + network          VPC                ecsctl-dry                               create
  + network          subnet             ecsctl-dry-a                             create
  + network          subnet             ecsctl-dry-b                             create
  + network          internet gateway   ecsctl-dry                               create
  + network          route table        ecsctl-dry                               create
  + network          security group     ecsctl-dry-worker                        create
  + cluster          cluster            ecsctl-dry                               create
  + observer         SQS queue          ecsctl-dry-task-events-dlq               create
  + observer         SQS queue          ecsctl-dry-task-events                   create
  + observer         EventBridge rule   ecsctl-dry-task-state                    create
  + task-definition  task definition    ecsctl-dry-worker                        create; image prefecthq/prefect-aws:0.7.12-python3.12
  + service          service            ecsctl-dry-worker                        create
  + work-pool        work pool          dry                                      create
",
        &[],
    );
    assert_eq!(s.mutating_actions(), Vec::<String>::new());
    assert_eq!(s.prefect_writes(), Vec::<String>::new());
    assert!(!s.ledger("dry").exists());
    assert_eq!(s.prefect.pool("dry").await, None, "no work pool in Prefect");
}

#[tokio::test(flavor = "multi_thread")]
async fn waiting_for_a_worker_that_never_runs_times_out_with_the_reason() {
    // The emulator never starts tasks, so the service stays at 0 of 1 running.
    let s = Stack::start().await;
    let out = s
        .ecsctl
        .cmd([
            "bootstrap",
            "--pool",
            "waits",
            "--yes",
            "--wait-timeout",
            "1s",
        ])
        .env("PREFECT_API_URL", s.prefect_api_url())
        .env("PREFECT_API_KEY", API_KEY)
        .run();
    out.assert_code(1);
    assert!(
        out.stderr.contains("did not become steady within 1s"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("running 0 of 1"), "{}", out.stderr);
    assert!(
        out.stderr.contains("ecsctl status --pool waits"),
        "{}",
        out.stderr
    );
    // Everything was still created and recorded; only the wait failed.
    let services = s
        .aws
        .ecs
        .describe_services()
        .cluster("ecsctl-waits")
        .services("ecsctl-waits-worker")
        .send()
        .await
        .unwrap();
    assert_eq!(services.services()[0].status(), Some("ACTIVE"));
}
