//! The worker service on real AWS (issue 12): what ECS does while tasks fail, start and stop,
//! which the emulator never shows. The proxy plays it (`support/behaviours/ecs.rs`); each test
//! names the item of the issue it covers.

use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{AssignPublicIp, AwsVpcConfiguration, NetworkConfiguration};
use serde_json::Value;

use crate::support::behaviours::ecs::{FailingDeployment, WorkerTasks};
use crate::support::behaviours::ecs_stop::{
    FlowRunArrives, ServicePurged, TasksOutliveService, FLOW_RUN_ID, FLOW_RUN_TASK,
};
use crate::support::behaviours::logs::LastEventTimeLags;
use crate::support::cli::Invocation;
use crate::support::prefect::API_KEY;
use crate::support::proxy::Call;
use crate::support::stack::Stack;

const SECRET_DENIED: &str = "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time(s): AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/ecsctl-execution/abc is not authorized to perform: secretsmanager:GetSecretValue";
const IMAGE_MISSING: &str = "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref docker.io/prefecthq/prefect-aws:nope: not found";

impl Stack {
    /// `bootstrap` that waits for the service (at most `timeout`), as a user runs it.
    fn bootstrap_waiting(&self, pool: &str, timeout: &str) -> Invocation {
        self.ecsctl
            .cmd([
                "bootstrap",
                "--pool",
                pool,
                "--yes",
                "--wait-timeout",
                timeout,
            ])
            .env("PREFECT_API_URL", self.prefect_api_url())
            .env("PREFECT_API_KEY", API_KEY)
    }

    fn service_status_json(&self, pool: &str) -> Value {
        let out = self
            .ecsctl
            .cmd(["status", "--pool", pool, "--output", "json"])
            .run();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status JSON does not parse ({e}):\n{}", out.stdout))
    }

    /// The service's network as the emulator holds it.
    async fn service_network(&self, pool: &str) -> AwsVpcConfiguration {
        let described = self
            .aws
            .ecs
            .describe_services()
            .cluster(format!("ecsctl-{pool}"))
            .services(format!("ecsctl-{pool}-worker"))
            .send()
            .await
            .unwrap();
        described.services()[0]
            .network_configuration()
            .and_then(|n| n.awsvpc_configuration())
            .cloned()
            .expect("the service has an awsvpc configuration")
    }
}

fn updates(calls: &[Call]) -> Vec<Value> {
    calls
        .iter()
        .filter(|c| c.action == "UpdateService")
        .map(|c| serde_json::from_str(&c.body).expect("UpdateService body is JSON"))
        .collect()
}

fn reason<'a>(report: &'a Value, code: &str) -> &'a Value {
    report["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .find(|r| r["code"] == code)
        .unwrap_or_else(|| panic!("no {code} reason in {report:#}"))
}

/// A resource's drift, in one line.
fn drift(resource: &Value) -> String {
    let words = resource["drift"].as_array().expect("drift array").iter();
    words
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join("; ")
}

fn service_resource(report: &Value) -> &Value {
    report["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["step"] == "service")
        .unwrap_or_else(|| panic!("no service in {report:#}"))
}

/// Item 1: a first deployment the circuit breaker failed, with nothing to roll back to.
#[tokio::test(flavor = "multi_thread")]
async fn item1_a_failed_first_deployment_is_drift_that_bootstrap_redeploys() {
    let s = Stack::start().await;
    s.bootstrap("fail1", &[]).assert_success();
    s.proxy.play(FailingDeployment::new("fail1", IMAGE_MISSING));

    let report = s.service_status_json("fail1");
    let failed = reason(&report, "rollout-failed")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !failed.contains("rolled back"),
        "nothing was rolled back: {failed}"
    );
    assert!(failed.contains("stopped launching"), "{failed}");
    let service = service_resource(&report);
    assert_eq!(service["state"], "drifted", "{report:#}");
    assert!(
        drift(service).contains("deployment failed and ECS stopped launching tasks"),
        "{report:#}"
    );

    s.proxy.clear();
    let out = s.bootstrap("fail1", &[]);
    out.assert_success();
    assert_eq!(s.stack_changes(), ["UpdateService"], "{}", out.stderr);
    let update = &updates(&s.proxy.calls())[0];
    assert_eq!(update["forceNewDeployment"], true, "{update}");
    assert!(
        out.stderr.contains("as the last one failed"),
        "says why: {}",
        out.stderr
    );

    // The new deployment is under way: the next run has nothing to do.
    s.proxy.clear();
    s.bootstrap("fail1", &[]).assert_success();
    assert_eq!(s.mutating_actions(), Vec::<String>::new());
}

/// Item 2: the first tasks of a fresh pool stop because IAM has not propagated the execution
/// role's secret policy yet; bootstrap forces a new deployment instead of failing.
#[tokio::test(flavor = "multi_thread")]
async fn item2_iam_not_yet_propagated_on_a_fresh_pool_heals_with_a_new_deployment() {
    let s = Stack::start().await;
    s.proxy
        .play(FailingDeployment::new("iam2", SECRET_DENIED).then_steady());
    let started = Instant::now();
    let out = s.bootstrap_waiting("iam2", "2m").run();
    out.assert_success();
    let forced: Vec<Value> = updates(&s.proxy.calls())
        .into_iter()
        .filter(|u| u["forceNewDeployment"] == true)
        .collect();
    assert_eq!(forced.len(), 1, "one forced deployment: {forced:?}");
    assert!(
        out.stderr
            .contains("forcing a new deployment (1 of at most 3)"),
        "says what it does: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("AccessDeniedException"),
        "{}",
        out.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// Item 2: a run that changed no IAM does not take such stops for IAM's delay: it reports them
/// at once, with ECS's words.
#[tokio::test(flavor = "multi_thread")]
async fn item2_without_an_iam_change_the_same_stops_fail_the_wait_at_once() {
    let s = Stack::start().await;
    s.bootstrap("iam2b", &[]).assert_success();
    // The new revision's deployment fails; the roles stay as they are.
    s.proxy.play(
        FailingDeployment::new("iam2b", SECRET_DENIED)
            .failing_the_next_update()
            .then_steady(),
    );
    s.proxy.clear();
    let started = Instant::now();
    let out = s
        .bootstrap_waiting("iam2b", "2m")
        .args(["--cpu", "1024", "--memory", "2048"])
        .run();
    out.assert_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        out.stderr.contains("deployment of ECS service"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("AccessDeniedException"),
        "{}",
        out.stderr
    );
    let forced = updates(&s.proxy.calls())
        .into_iter()
        .filter(|u| u["forceNewDeployment"] == true)
        .count();
    assert_eq!(forced, 0, "no IAM changed: nothing to wait out");
}

/// Item 6: public IP turned off by hand is drift that status names and bootstrap repairs.
#[tokio::test(flavor = "multi_thread")]
async fn item6_a_public_ip_turned_off_by_hand_is_reported_and_repaired() {
    let s = Stack::start().await;
    s.bootstrap("net6", &[]).assert_success();
    let before = s.service_network("net6").await;
    let off = AwsVpcConfiguration::builder()
        .set_subnets(Some(before.subnets().to_vec()))
        .set_security_groups(Some(before.security_groups().to_vec()))
        .assign_public_ip(AssignPublicIp::Disabled)
        .build()
        .unwrap();
    s.aws
        .ecs
        .update_service()
        .cluster("ecsctl-net6")
        .service("ecsctl-net6-worker")
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(off)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let report = s.service_status_json("net6");
    let service = service_resource(&report);
    assert_eq!(service["state"], "drifted", "{report:#}");
    assert!(
        drift(service).contains("public IP turned off (wanted on)"),
        "{report:#}"
    );

    s.proxy.clear();
    s.bootstrap("net6", &[]).assert_success();
    assert_eq!(s.stack_changes(), ["UpdateService"]);
    let after = s.service_network("net6").await;
    assert_eq!(after.assign_public_ip(), Some(&AssignPublicIp::Enabled));
    s.proxy.clear();
    s.bootstrap("net6", &[]).assert_success();
    assert_eq!(s.mutating_actions(), Vec::<String>::new());
}

/// Item 6: a security group recreated after a deletion reaches the service.
#[tokio::test(flavor = "multi_thread")]
async fn item6_a_recreated_security_group_reaches_the_service() {
    let s = Stack::start().await;
    s.bootstrap("net6b", &[]).assert_success();
    let old = s.service_network("net6b").await.security_groups()[0].clone();
    s.aws
        .ec2
        .delete_security_group()
        .group_id(&old)
        .send()
        .await
        .unwrap();

    s.bootstrap("net6b", &[]).assert_success();
    let groups = s
        .aws
        .ec2
        .describe_security_groups()
        .filters(crate::support::pool::tag_filter("net6b"));
    let groups = groups.send().await.unwrap();
    let new = groups.security_groups()[0].group_id().unwrap().to_owned();
    assert_ne!(new, old, "the group was recreated");
    let network = s.service_network("net6b").await;
    assert_eq!(network.security_groups(), [new]);
    // The next run forgets the deleted group's record (a ledger change, so the account's copy is
    // written under the lock) and changes nothing in the stack; the one after changes nothing.
    s.proxy.clear();
    s.bootstrap("net6b", &[]).assert_success();
    assert_eq!(s.stack_changes(), Vec::<String>::new());
    s.proxy.clear();
    s.bootstrap("net6b", &[]).assert_success();
    assert_eq!(s.mutating_actions(), Vec::<String>::new());
}

/// Item 9: destroy deletes the worker's roles and log group only after its task has stopped.
#[tokio::test(flavor = "multi_thread")]
async fn item9_destroy_waits_for_the_workers_tasks_to_stop_before_its_roles_and_logs() {
    let s = Stack::start().await;
    s.bootstrap("stop9", &[]).assert_success();
    s.proxy.play(TasksOutliveService::new("stop9", 2));
    s.proxy.clear();
    let out = s.destroy("stop9", &[]);
    out.assert_success();
    assert!(
        out.stderr.contains("for the worker's 1 task(s) to stop"),
        "says what it waits for: {}",
        out.stderr
    );
    let calls = s.proxy.calls();
    let stopping: Vec<usize> = calls
        .iter()
        .filter(|c| c.action == "DescribeTasks" && c.played_by == Some("tasks-outlive-service"))
        .map(|c| c.index)
        .collect();
    assert!(stopping.len() >= 3, "polled until STOPPED: {stopping:?}");
    let last_stopping = stopping[1];
    // The worker's own roles and log group (the flow runs' need not wait for it).
    let workers = |c: &&Call| {
        [
            "ecsctl-stop9-use1-execution",
            "ecsctl-stop9-use1-worker",
            "/ecsctl/stop9/worker",
        ]
        .iter()
        .any(|name| c.body.contains(name))
    };
    let deletes: Vec<&Call> = calls
        .iter()
        .filter(|c| ["DeleteRole", "DeleteLogGroup"].contains(&c.action.as_str()))
        .filter(workers)
        .collect();
    assert_eq!(deletes.len(), 3, "{deletes:?}");
    for c in deletes {
        assert!(
            c.index > last_stopping,
            "{} (call {}) ran while the worker's task was still stopping (until call {last_stopping})",
            c.action,
            c.index
        );
    }
}

/// Item 12: a service purged right after its deletion is gone: its tasks' ListTasks answers
/// ServiceNotFoundException, and destroy finishes.
#[tokio::test(flavor = "multi_thread")]
async fn item12_a_purged_service_is_gone() {
    let s = Stack::start().await;
    s.bootstrap("purge12", &[]).assert_success();
    s.proxy.play(ServicePurged::new("purge12"));
    s.proxy.clear();
    let out = s.destroy("purge12", &[]);
    out.assert_success();
    let not_found = s
        .proxy
        .calls()
        .into_iter()
        .filter(|c| c.played_by == Some("service-purged") && c.action == "ListTasks")
        .count();
    assert!(not_found > 0, "the purged service's tasks were asked for");
}

/// Item 12: a flow run still running when the cluster is deleted is named at once, with the
/// flag that stops it, not retried for the whole --wait-timeout.
#[tokio::test(flavor = "multi_thread")]
async fn item12_a_flow_run_holding_the_cluster_is_named_not_waited_for() {
    let s = Stack::start().await;
    s.bootstrap("hold12", &[]).assert_success();
    s.proxy.play(FlowRunArrives::new("hold12"));
    let started = Instant::now();
    let out = s.destroy("hold12", &["--wait-timeout", "90s"]);
    out.assert_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "gave up after {:?}, not at once",
        started.elapsed()
    );
    assert!(
        out.stderr
            .contains("ecsctl destroy --pool hold12 --stop-flow-runs"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(FLOW_RUN_TASK), "{}", out.stderr);
    assert!(out.stderr.contains(FLOW_RUN_ID), "{}", out.stderr);

    // As told: stop it and finish.
    let out = s.destroy("hold12", &["--stop-flow-runs"]);
    out.assert_success();
    assert!(
        s.proxy.calls().iter().any(|c| c.action == "StopTask"),
        "the flow run was stopped"
    );
}

impl Stack {
    /// Writes three lines to a new stream of the pool's worker log group, `ago_secs` ago.
    async fn write_worker_stream(&self, pool: &str, stream: &str, ago_secs: i64) {
        let group = format!("/ecsctl/{pool}/worker");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let logs = &self.aws.logs;
        logs.create_log_stream()
            .log_group_name(&group)
            .log_stream_name(stream)
            .send()
            .await
            .unwrap();
        let events = (0..3).map(|i| {
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now - ago_secs * 1000 + i)
                .message(format!("{stream} line {i}"))
                .build()
                .unwrap()
        });
        logs.put_log_events()
            .log_group_name(&group)
            .log_stream_name(stream)
            .set_log_events(Some(events.collect()))
            .send()
            .await
            .unwrap();
    }
}

/// Item 14: the worker's log lines come from its newest task's stream, whatever CloudWatch says
/// about last event times, and never from a flow run's stream in the same group.
#[tokio::test(flavor = "multi_thread")]
async fn item14_status_reads_the_newest_tasks_stream() {
    const NEW: &str = "9b2c4d6e8f0a4b1c8d2e3f4a5b6c7d8e";
    const OLD: &str = "1a2b3c4d5e6f4a7b8c9d0e1f2a3b4c5d";
    let new_stream = format!("worker/prefect-worker/{NEW}");
    let s = Stack::start().await;
    s.bootstrap("logs14", &[]).assert_success();
    s.write_worker_stream("logs14", &format!("worker/prefect-worker/{OLD}"), 120)
        .await;
    s.write_worker_stream("logs14", &new_stream, 30).await;
    s.proxy.play(WorkerTasks::new("logs14", NEW, OLD));
    s.proxy.play(LastEventTimeLags {
        stream: new_stream.clone(),
    });

    let lines = |report: &Value| -> Vec<String> {
        let lines = report["logs"]["lines"].as_array().expect("log lines");
        lines
            .iter()
            .map(|l| l["message"].as_str().unwrap().to_owned())
            .collect()
    };
    let out = s
        .ecsctl
        .cmd([
            "status",
            "--pool",
            "logs14",
            "--output",
            "json",
            "--log-lines",
            "2",
        ])
        .run();
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        report["logs"]["stream"],
        new_stream.as_str(),
        "{:#}",
        report["logs"]
    );
    assert_eq!(
        lines(&report),
        [
            format!("{new_stream} line 1"),
            format!("{new_stream} line 2")
        ]
    );

    // A flow run whose template was pointed at the worker's group logs there, newer still.
    s.write_worker_stream("logs14", "flow-run/prefect/f10a7e55", 5)
        .await;
    let out = s
        .ecsctl
        .cmd([
            "status",
            "--pool",
            "logs14",
            "--output",
            "json",
            "--log-lines",
            "2",
        ])
        .run();
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        report["logs"]["stream"],
        new_stream.as_str(),
        "{:#}",
        report["logs"]
    );
}

/// Item 6: a switch to the user's VPC (`--vpc-id`, `--subnet-ids`) moves the service there.
#[tokio::test(flavor = "multi_thread")]
async fn item6_a_switch_to_vpc_id_moves_the_service() {
    use aws_sdk_ec2::types::Filter;
    let s = Stack::start().await;
    s.bootstrap("net6c", &[]).assert_success();
    let vpcs = s.aws.ec2.describe_vpcs();
    let vpcs = vpcs
        .filters(Filter::builder().name("is-default").values("true").build())
        .send()
        .await
        .unwrap();
    let default_vpc = vpcs.vpcs()[0].vpc_id().unwrap().to_owned();
    let subnets = s.aws.ec2.describe_subnets();
    let subnets = subnets
        .filters(
            Filter::builder()
                .name("vpc-id")
                .values(&default_vpc)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut ids: Vec<String> = subnets
        .subnets()
        .iter()
        .map(|s| s.subnet_id().unwrap().to_owned())
        .take(2)
        .collect();
    ids.sort();

    let joined = ids.join(",");
    s.route_default_vpc_out(&default_vpc).await;
    let reuse = ["--vpc-id", default_vpc.as_str(), "--subnet-ids", &joined];
    s.bootstrap("net6c", &reuse).assert_success();
    let network = s.service_network("net6c").await;
    let mut subnets = network.subnets().to_vec();
    subnets.sort();
    assert_eq!(subnets, ids, "the service runs in the user's subnets");
    // As above: the next run tidies the ledger only; the one after changes nothing at all.
    s.proxy.clear();
    s.bootstrap("net6c", &reuse).assert_success();
    assert_eq!(s.stack_changes(), Vec::<String>::new());
    s.proxy.clear();
    s.bootstrap("net6c", &reuse).assert_success();
    assert_eq!(s.mutating_actions(), Vec::<String>::new());
}
