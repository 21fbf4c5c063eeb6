//! Proves the test harness itself works, so that other tests' failures point at ecsctl.

use std::time::{Duration, Instant};

use crate::support::aws::Clients;
use crate::support::behaviours::Refuse;
use crate::support::cli::Ecsctl;
use crate::support::emulator::Emulator;
use crate::support::inventory::{Inventory, LogGroup, Role, Secret};
use crate::support::prefect::{self, PrefectApi};
use crate::support::proxy::{Answer, Behaviour, Exchange, Fault, Proxy};
use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use serde_json::json;

/// The recorded calls in a compact form: `service Action read|mutating status [fault]`.
fn recorded(proxy: &Proxy) -> Vec<String> {
    proxy
        .calls()
        .iter()
        .map(|call| {
            let kind = if call.mutating { "mutating" } else { "read" };
            let status = call.status.map_or("-".to_owned(), |s| s.to_string());
            let fault = call.fault.map_or(String::new(), |f| format!(" {f:?}"));
            format!("{} {} {kind} {status}{fault}", call.service, call.action)
        })
        .collect()
}

#[tokio::test]
async fn proxy_records_calls_of_every_protocol() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint());
    let aws = Clients::new(&proxy.url()).await;

    aws.logs
        .create_log_group()
        .log_group_name("/selftest")
        .send()
        .await
        .unwrap();
    aws.logs.describe_log_groups().send().await.unwrap();
    aws.ecs.list_clusters().send().await.unwrap();
    aws.iam.list_roles().send().await.unwrap();
    aws.ec2.describe_vpcs().send().await.unwrap();
    aws.sts.get_caller_identity().send().await.unwrap();

    assert_eq!(
        recorded(&proxy),
        [
            "logs CreateLogGroup mutating 200",
            "logs DescribeLogGroups read 200",
            "ecs ListClusters read 200",
            "iam ListRoles read 200",
            "ec2 DescribeVpcs read 200",
            "sts GetCallerIdentity read 200",
        ]
    );
    assert_eq!(proxy.mutating_calls().len(), 1);
    assert_eq!(proxy.calls()[5].index, 5);

    proxy.clear();
    assert!(proxy.calls().is_empty());

    let latency = Duration::from_millis(300);
    proxy.set_latency(latency);
    let started = Instant::now();
    aws.sts.get_caller_identity().send().await.unwrap();
    assert!(started.elapsed() >= latency);
}

#[tokio::test]
async fn sdk_retries_injected_transient_faults() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint());
    let aws = Clients::new(&proxy.url()).await;

    // A throttle per protocol (awsJson in both its older and its schema-based client code,
    // awsQuery, ec2Query), then a dropped connection: the SDK must see each as retryable.
    proxy.fail_nth(0, Fault::Throttle);
    aws.logs
        .create_log_group()
        .log_group_name("/selftest")
        .send()
        .await
        .unwrap();
    proxy.fail_nth(2, Fault::Throttle);
    aws.sts.get_caller_identity().send().await.unwrap();
    proxy.fail_nth(4, Fault::Throttle);
    aws.ec2.describe_vpcs().send().await.unwrap();
    proxy.fail_nth(6, Fault::Throttle);
    aws.ecs.list_clusters().send().await.unwrap();
    proxy.fail_nth(8, Fault::Drop);
    aws.iam.list_roles().send().await.unwrap();

    assert_eq!(
        recorded(&proxy),
        [
            "logs CreateLogGroup mutating 400 Throttle",
            "logs CreateLogGroup mutating 200",
            "sts GetCallerIdentity read 400 Throttle",
            "sts GetCallerIdentity read 200",
            "ec2 DescribeVpcs read 400 Throttle",
            "ec2 DescribeVpcs read 200",
            "ecs ListClusters read 400 Throttle",
            "ecs ListClusters read 200",
            "iam ListRoles read - Drop",
            "iam ListRoles read 200",
        ]
    );
}

#[tokio::test]
async fn persistent_server_error_fails_the_call() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint());
    let aws = Clients::new(&proxy.url()).await;

    proxy.fail_action("DescribeLogGroups", Fault::ServerError);
    let error = aws.logs.describe_log_groups().send().await.unwrap_err();
    assert_eq!(error.code(), Some("InternalFailure"), "{error:?}");
    // The SDK's standard retry mode makes 3 attempts; none reaches the emulator.
    assert_eq!(
        recorded(&proxy),
        ["logs DescribeLogGroups read 500 ServerError"; 3]
    );

    // Other actions pass, and clearing the fault restores the action.
    aws.logs
        .create_log_group()
        .log_group_name("/selftest")
        .send()
        .await
        .unwrap();
    proxy.clear_faults();
    aws.logs.describe_log_groups().send().await.unwrap();
}

#[tokio::test]
async fn random_faults_repeat_with_the_same_seed() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint());
    let aws = Clients::new(&proxy.url()).await;
    proxy.fail_fraction(0.25, 7, Fault::Throttle);

    let mut runs = Vec::new();
    for _ in 0..2 {
        proxy.clear();
        for _ in 0..12 {
            aws.sts.get_caller_identity().send().await.unwrap();
        }
        let faulted: Vec<usize> = proxy
            .calls()
            .iter()
            .filter(|call| call.fault.is_some())
            .map(|call| call.index)
            .collect();
        runs.push(faulted);
    }
    assert!(!runs[0].is_empty(), "a quarter of the calls should fail");
    assert_eq!(runs[0], runs[1]);
}

const TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
    "Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const INLINE_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
    "Action":"logs:PutLogEvents","Resource":"*"}]}"#;

#[tokio::test]
async fn inventory_is_stable_and_sees_every_kind_of_change() {
    let emulator = Emulator::start();
    let aws = Clients::new(&emulator.endpoint()).await;

    let before = Inventory::take(&aws).await;
    let default_vpc = before
        .vpcs
        .iter()
        .find(|vpc| vpc.cidr == "172.31.0.0/16")
        .expect("the region's default VPC");
    assert!(before.subnets.iter().any(|s| s.vpc_id == default_vpc.id));
    assert!(before
        .route_tables
        .iter()
        .any(|t| t.vpc_id == default_vpc.id));
    assert!(before
        .security_groups
        .iter()
        .any(|g| g.vpc_id == default_vpc.id));
    before.assert_unchanged(&Inventory::take(&aws).await);

    aws.logs
        .create_log_group()
        .log_group_name("/selftest")
        .send()
        .await
        .unwrap();
    aws.logs
        .put_retention_policy()
        .log_group_name("/selftest")
        .retention_in_days(7)
        .send()
        .await
        .unwrap();
    aws.iam
        .create_role()
        .role_name("selftest")
        .path("/ecsctl/")
        .assume_role_policy_document(TRUST_POLICY)
        .send()
        .await
        .unwrap();
    let policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy";
    aws.iam
        .attach_role_policy()
        .role_name("selftest")
        .policy_arn(policy_arn)
        .send()
        .await
        .unwrap();
    aws.iam
        .put_role_policy()
        .role_name("selftest")
        .policy_name("inline")
        .policy_document(INLINE_POLICY)
        .send()
        .await
        .unwrap();
    aws.secrets
        .create_secret()
        .name("selftest")
        .secret_string("x")
        .send()
        .await
        .unwrap();
    aws.secrets
        .delete_secret()
        .secret_id("selftest")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    aws.ecs
        .create_cluster()
        .cluster_name("selftest")
        .send()
        .await
        .unwrap();

    let after = Inventory::take(&aws).await;
    assert!(after.log_groups.contains(&LogGroup {
        name: "/selftest".into(),
        retention_days: Some(7),
    }));
    assert!(after.roles.contains(&Role {
        name: "selftest".into(),
        path: "/ecsctl/".into(),
        managed_policies: vec![policy_arn.into()],
        inline_policies: vec!["inline".into()],
    }));
    assert!(after.secrets.contains(&Secret {
        name: "selftest".into(),
        scheduled_for_deletion: true,
    }));
    assert_eq!(after.clusters.len(), 1);
    assert!(after.clusters[0].arn.ends_with("cluster/selftest"));

    // Exactly the four new resources differ, all as additions.
    let diff = before.diff(&after);
    assert_eq!(diff.lines().count(), 4, "{diff}");
    assert!(diff.lines().all(|line| line.starts_with("+ ")), "{diff}");
}

#[test]
fn ecsctl_runs_in_a_clean_environment() {
    let ecsctl = Ecsctl::new("http://127.0.0.1:9");
    assert!(ecsctl.state_dir().is_dir());
    ecsctl.cmd(["--help"]).run().assert_success();
}

/// Registers a Fargate task definition whose container has no memory of its own (only the task
/// has), as prefect-aws does for every flow run, and runs it once. Returns RunTask's answer.
async fn run_memoryless_task(
    aws: &Clients,
) -> Result<
    aws_sdk_ecs::operation::run_task::RunTaskOutput,
    aws_sdk_ecs::error::SdkError<aws_sdk_ecs::operation::run_task::RunTaskError>,
> {
    use aws_sdk_ecs::types::{
        AwsVpcConfiguration, Compatibility, ContainerDefinition, LaunchType, NetworkConfiguration,
        NetworkMode,
    };
    aws.ecs
        .create_cluster()
        .cluster_name("flow-runs")
        .send()
        .await
        .unwrap();
    aws.ecs
        .register_task_definition()
        .family("prefect-flow-run")
        .requires_compatibilities(Compatibility::Fargate)
        .network_mode(NetworkMode::Awsvpc)
        .cpu("256")
        .memory("512")
        .container_definitions(
            ContainerDefinition::builder()
                .name("prefect")
                .image("prefecthq/prefect:3-latest")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let subnets = aws.ec2.describe_subnets().send().await.unwrap();
    let groups = aws.ec2.describe_security_groups().send().await.unwrap();
    aws.ecs
        .run_task()
        .cluster("flow-runs")
        .task_definition("prefect-flow-run")
        .launch_type(LaunchType::Fargate)
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(
                    AwsVpcConfiguration::builder()
                        .subnets(subnets.subnets()[0].subnet_id().unwrap())
                        .security_groups(groups.security_groups()[0].group_id().unwrap())
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
}

#[tokio::test]
async fn moto_needs_the_wrapper_to_run_a_task_whose_container_has_no_memory() {
    // moto as released: an internal error (its TypeError), which real AWS never answers here.
    let unpatched = Emulator::start_unpatched();
    let aws = Clients::new(&unpatched.endpoint()).await;
    let error = run_memoryless_task(&aws).await.unwrap_err();
    let status = error.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(500), "{error:?}");
    assert!(
        unpatched
            .log()
            .contains("TypeError: unsupported operand type(s) for +=: 'int' and 'NoneType'"),
        "moto failed for another reason:\n{}",
        unpatched.log()
    );

    // Through scripts/moto_server.py (what every other test runs): the task is created.
    let emulator = Emulator::start();
    let aws = Clients::new(&emulator.endpoint()).await;
    let ran = run_memoryless_task(&aws)
        .await
        .expect("RunTask through the wrapper");
    assert!(ran.failures().is_empty(), "{:?}", ran.failures());
    assert_eq!(ran.tasks().len(), 1);
    let listed = aws
        .ecs
        .list_tasks()
        .cluster("flow-runs")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.task_arns(), [ran.tasks()[0].task_arn().unwrap()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_prefect_server_answers_and_the_proxy_records_its_rest_calls() {
    let server = prefect::server();
    // The same server for every caller in the process.
    assert_eq!(prefect::server().url(), server.url());
    let proxy = Proxy::start(server.url());
    let api = PrefectApi::new(&format!("{}/api", proxy.url()));

    assert_eq!(api.pool("selftest-missing").await, None);
    let created = api.create_pool("selftest-pool", "process", None).await;
    assert_eq!(created["name"], "selftest-pool");
    let template = json!({
        "job_configuration": { "command": "{{ command }}" },
        "variables": { "properties": { "command": { "type": "string" } } },
    });
    api.set_template("selftest-pool", &template).await;
    let filtered = reqwest::Client::new()
        .post(format!(
            "{}/api/work_pools/selftest-pool/workers/filter",
            proxy.url()
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(filtered.status().is_success());

    assert_eq!(
        recorded(&proxy),
        [
            "http GET /api/work_pools/selftest-missing read 404",
            "http POST /api/work_pools/ mutating 201",
            "http PATCH /api/work_pools/selftest-pool mutating 204",
            "http POST /api/work_pools/selftest-pool/workers/filter read 200",
        ]
    );

    // A REST fault is an HTTP status with Prefect's `{"detail": …}`.
    proxy.fail_nth(4, Fault::Throttle);
    let throttled = reqwest::Client::new()
        .get(format!("{}/api/health", proxy.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(throttled.status().as_u16(), 429);
    let body: serde_json::Value = throttled.json().await.unwrap();
    assert_eq!(body["detail"], "Rate exceeded");

    // Prefect's own CLI from the fixture reaches the same server.
    let out = server
        .command("prefect")
        .args(["work-pool", "inspect", "selftest-pool"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("process"));
}

/// Flips a cluster's status in the emulator's answers: a rewrite the SDK parses as AWS's own.
struct ClustersInactive;

impl Behaviour for ClustersInactive {
    fn name(&self) -> &'static str {
        "clusters-inactive"
    }

    fn rewrite(&self, request: &Exchange, answer: &mut Answer) {
        if request.action != "DescribeClusters" || request.json()["clusters"] != json!(["c"]) {
            return;
        }
        let mut body = answer.json();
        for cluster in body["clusters"].as_array_mut().into_iter().flatten() {
            cluster["status"] = json!("INACTIVE");
        }
        answer.set_json(&body);
    }
}

#[tokio::test]
async fn behaviours_answer_as_aws_in_each_protocol_and_rewrite_answers() {
    use aws_sdk_ec2::error::ProvideErrorMetadata as _;
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint());
    let aws = Clients::new(&proxy.url()).await;

    // ec2Query: a quota refusal the SDK does not retry, then the call goes through.
    proxy.play(Refuse::times(
        "CreateVpc",
        1,
        "VpcLimitExceeded",
        "The maximum number of VPCs has been reached.",
    ));
    let create = || aws.ec2.create_vpc().cidr_block("10.9.0.0/16").send();
    let error = create().await.unwrap_err();
    assert_eq!(error.code(), Some("VpcLimitExceeded"), "{error:?}");
    create()
        .await
        .expect("the second CreateVpc reaches the emulator");
    // awsQuery and awsJson carry the code too.
    proxy.play(Refuse::always("GetRole", "NoSuchEntity", "not yet"));
    proxy.play(Refuse::always(
        "RegisterTaskDefinition",
        "ClientException",
        "Role is not valid",
    ));
    let error = aws.iam.get_role().role_name("r").send().await.unwrap_err();
    assert_eq!(error.code(), Some("NoSuchEntity"), "{error:?}");
    let error = aws
        .ecs
        .register_task_definition()
        .family("f")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("ClientException"), "{error:?}");
    assert_eq!(error.message(), Some("Role is not valid"), "{error:?}");
    let played: Vec<_> = proxy
        .calls()
        .iter()
        .map(|call| (call.action.clone(), call.played_by))
        .collect();
    assert_eq!(
        played,
        [
            ("CreateVpc".to_owned(), Some("refuse")),
            ("CreateVpc".to_owned(), None),
            ("GetRole".to_owned(), Some("refuse")),
            ("RegisterTaskDefinition".to_owned(), Some("refuse")),
        ]
    );

    // A rewrite changes what the SDK reads; stopping the behaviours restores the emulator's answer.
    aws.ecs
        .create_cluster()
        .cluster_name("c")
        .send()
        .await
        .unwrap();
    proxy.play(ClustersInactive);
    let status = || async {
        let clusters = aws
            .ecs
            .describe_clusters()
            .clusters("c")
            .send()
            .await
            .unwrap();
        clusters.clusters()[0]
            .status()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(status().await, "INACTIVE");
    proxy.stop_behaviours();
    assert_eq!(status().await, "ACTIVE");
}
