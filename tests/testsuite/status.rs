//! `ecsctl status` against the emulator. The emulator's ECS services never start tasks, so a
//! freshly bootstrapped pool is (truthfully) unhealthy there: 0 of 1 worker tasks running. The
//! healthy verdict and the rendering of events and stop reasons are unit-tested in `src/health.rs`
//! over recorded responses. Arrangements and cross-checks use the AWS SDK directly.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::cli::Output;
use crate::support::prefect::API_KEY;
use crate::support::stack::Stack;
use crate::support::text::assert_text;

const STEPS: [&str; 10] = [
    "secret",
    "log-group",
    "execution-role",
    "worker-role",
    "flow-run-role",
    "network",
    "cluster",
    "task-definition",
    "service",
    "work-pool",
];

impl Stack {
    /// `ecsctl status` with no Prefect settings at all in its environment.
    fn status(&self, pool: &str, extra: &[&str]) -> Output {
        self.ecsctl
            .cmd(["status", "--pool", pool])
            .args(extra)
            .run()
    }

    /// `status --output json`, parsed; asserts the exit code first.
    fn status_json(&self, pool: &str, code: i32, extra: &[&str]) -> Value {
        let out = self.status(pool, &[&["--output", "json"], extra].concat());
        out.assert_code(code);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status JSON does not parse ({e}):\n{}", out.stdout))
    }
}

fn resource<'a>(report: &'a Value, step: &str) -> &'a Value {
    report["resources"]
        .as_array()
        .expect("resources array")
        .iter()
        .find(|r| r["step"] == step)
        .unwrap_or_else(|| panic!("no resource of step {step} in {report:#}"))
}

fn reason_codes(report: &Value) -> Vec<String> {
    report["reasons"]
        .as_array()
        .expect("reasons array")
        .iter()
        .map(|r| r["code"].as_str().expect("code").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn after_bootstrap_everything_is_present_and_the_idle_service_is_unhealthy() {
    let s = Stack::start().await;
    s.bootstrap("st", &[]).assert_success();
    s.proxy.clear();

    let out = s.status("st", &[]);
    out.assert_code(1);
    assert!(
        s.proxy.mutating_calls().is_empty(),
        "status only reads: {:?}",
        s.proxy.mutating_calls()
    );
    assert_text(
        &out.stdout,
        "\
Pool 'st' in account [ACCOUNT] region us-east-1
Ledger: [STATE]/[ACCOUNT]/us-east-1/st.json

Resources:
  ✓ secret           secret             ecsctl/st/prefect-api-key            present  [ARN]
  ✓ log-group        log group          /ecsctl/st/worker                    present  /ecsctl/st/worker
  ✓ log-group        log group          /ecsctl/st/flow-runs                 present  /ecsctl/st/flow-runs
  ✓ execution-role   IAM role           ecsctl-st-use1-execution             present  [ARN]
  ✓ worker-role      IAM role           ecsctl-st-use1-worker                present  [ARN]
  ✓ flow-run-role    IAM role           ecsctl-st-use1-flow-run              present  [ARN]
  ✓ network          VPC                ecsctl-st                            present  [VPC]
  ✓ network          subnet             ecsctl-st-a                          present  [SUBNET]
  ✓ network          subnet             ecsctl-st-b                          present  [SUBNET]
  ✓ network          internet gateway   ecsctl-st                            present  [IGW]
  ✓ network          route table        ecsctl-st                            present  [RTB]
  ✓ network          security group     ecsctl-st-worker                     present  [SG]
  ✓ cluster          cluster            ecsctl-st                            present  [ARN]
  ✓ observer         SQS queue          ecsctl-st-task-events-dlq            present  [AWS]/[ACCOUNT]/ecsctl-st-task-events-dlq
  ✓ observer         SQS queue          ecsctl-st-task-events                present  [AWS]/[ACCOUNT]/ecsctl-st-task-events
  ✓ observer         EventBridge rule   ecsctl-st-task-state                 present  [ARN]
  ✓ task-definition  task definition    ecsctl-st-worker                     present  [ARN]
  ✓ service          service            ecsctl-st-worker                     present  [ARN]
  ✓ work-pool        work pool          st                                   present  st

Service ecsctl-st-worker (ACTIVE): desired 1, running 0, pending 1; rollout IN_PROGRESS
  Task definition: ecsctl-st-worker:1 (latest)
  Deployments:
    PRIMARY  ecsctl-st-worker:1  desired 1, running 0, pending 1, failed 0; rollout IN_PROGRESS: ECS deployment [DEPLOYMENT] in progress.
  Last service events (newest first):
    (none)

Recently stopped tasks (newest first):
  (none)

Worker logs (/ecsctl/st/worker): no log streams: no worker task has written a line yet

Prefect ([PREFECT]):
  Work pool st: type ecs
  Workers: none

Verdict: UNHEALTHY
  ✗ the service runs 0 of 1 worker tasks (1 pending)
      fix: ECS gives no reason yet and no task has ever written a log line: if the service was just created or updated, wait a minute and run `ecsctl status --pool st` again
  ✗ no ecsctl worker is online in Prefect work pool 'st'
      fix: fix the reasons above first; the worker comes online when its task runs and reaches Prefect
",
        &s.placeholders(),
    );
    assert!(
        out.stderr
            .contains("ecsctl: pool 'st' is unhealthy: the service runs 0 of 1 worker tasks"),
        "one-line summary on stderr: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("error:"),
        "an unhealthy pool is not an error: {}",
        out.stderr
    );
    assert!(!out.stdout.contains(API_KEY) && !out.stderr.contains(API_KEY));

    let report = s.status_json("st", 1, &[]);
    assert_eq!(report["verdict"], "unhealthy");
    // No worker task runs on the emulator, so none is online in Prefect either.
    assert_eq!(
        reason_codes(&report),
        ["service-not-running", "worker-offline"],
        "{report:#}"
    );
    assert_eq!(report["ledger"]["found"], true);
    assert_eq!(
        report["prefect"]["pool"],
        json!({ "name": "st", "paused": false, "type": "ecs" }),
        "{report:#}"
    );
    assert_eq!(report["prefect"]["workers"], json!([]), "{report:#}");
    for step in STEPS {
        assert_eq!(
            resource(&report, step)["state"],
            "present",
            "{step}: {report:#}"
        );
    }
    assert!(
        report["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "present"),
        "{report:#}"
    );

    // The counts are ECS's, as the SDK sees them.
    let described = s
        .aws
        .ecs
        .describe_services()
        .cluster("ecsctl-st")
        .services("ecsctl-st-worker")
        .send()
        .await
        .unwrap();
    let service = &described.services()[0];
    assert_eq!(report["service"]["desired"], service.desired_count());
    assert_eq!(report["service"]["running"], service.running_count());
    assert_eq!(report["service"]["pending"], service.pending_count());
    assert_eq!(report["service"]["running"], 0);
    assert_eq!(
        report["service"]["task_definition"],
        service.task_definition().unwrap()
    );
    assert_eq!(
        report["service"]["latest_task_definition"],
        service.task_definition().unwrap()
    );
    assert_eq!(report["service"]["deployments"][0]["status"], "PRIMARY");
    assert_eq!(report["logs"]["exists"], true);
    assert_eq!(report["logs"]["has_streams"], false);
    assert_eq!(report["stopped_tasks"], Value::Array(vec![]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_never_bootstrapped_or_destroyed_is_not_bootstrapped() {
    let s = Stack::start().await;
    let out = s.status("never", &[]);
    out.assert_code(1);
    assert_text(
        &out.stdout,
        "\
Pool 'never' in account [ACCOUNT] region us-east-1
Ledger: none at [STATE]/[ACCOUNT]/us-east-1/never.json (resources found by their ecsctl:pool tag)

Resources:
  ✗ secret           secret             ecsctl/never/prefect-api-key         missing
  ✗ log-group        log group          /ecsctl/never/worker                 missing
  ✗ log-group        log group          /ecsctl/never/flow-runs              missing
  ✗ execution-role   IAM role           ecsctl-never-use1-execution          missing
  ✗ worker-role      IAM role           ecsctl-never-use1-worker             missing
  ✗ flow-run-role    IAM role           ecsctl-never-use1-flow-run           missing
  ✗ cluster          cluster            ecsctl-never                         missing
  ✗ observer         SQS queue          ecsctl-never-task-events-dlq         missing
  ✗ observer         SQS queue          ecsctl-never-task-events             missing
  ✗ observer         EventBridge rule   ecsctl-never-task-state              missing
  ✗ task-definition  task definition    ecsctl-never-worker                  missing
  ✗ service          service            ecsctl-never-worker                  missing

Service: not found

Recently stopped tasks (newest first):
  (none)

Worker logs: the log group /ecsctl/never/worker does not exist

Prefect: could not be asked: no Prefect API URL is known (no ledger with the last bootstrap's, and PREFECT_API_URL is not set)

Verdict: NOT BOOTSTRAPPED
  ✗ nothing of pool 'never' exists in account [ACCOUNT] region us-east-1 (no ledger, and nothing carries its ecsctl:pool tag)
      fix: run `ecsctl bootstrap --pool never` to create it
",
        &s.placeholders(),
    );
    assert!(
        out.stderr.contains("pool 'never' is not bootstrapped"),
        "{}",
        out.stderr
    );

    s.bootstrap("st-gone", &[]).assert_success();
    s.destroy("st-gone", &[]).assert_success();
    let report = s.status_json("st-gone", 1, &[]);
    assert_eq!(report["verdict"], "not-bootstrapped", "{report:#}");
    assert_eq!(reason_codes(&report), ["not-bootstrapped"]);
    assert_eq!(report["ledger"]["found"], false);
    assert_eq!(report["service"], Value::Null);
    assert!(
        report["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "missing"),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resource_deleted_behind_ecsctls_back_is_named_missing() {
    let s = Stack::start().await;
    s.bootstrap("del", &[]).assert_success();
    s.aws
        .logs
        .delete_log_group()
        .log_group_name("/ecsctl/del/worker")
        .send()
        .await
        .unwrap();

    let report = s.status_json("del", 1, &[]);
    assert_eq!(report["verdict"], "unhealthy");
    let group = resource(&report, "log-group");
    assert_eq!(group["state"], "missing", "{report:#}");
    assert_eq!(group["in_ledger"], true);
    let missing: Vec<&Value> = report["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["code"] == "missing")
        .collect();
    assert_eq!(
        missing.len(),
        1,
        "only the log group is missing: {report:#}"
    );
    assert_eq!(missing[0]["subject"], "/ecsctl/del/worker");
    assert!(missing[0]["fix"]
        .as_str()
        .unwrap()
        .contains("ecsctl bootstrap --pool del"));
    assert_eq!(report["logs"]["exists"], false);
    for step in STEPS.iter().filter(|s| **s != "log-group") {
        assert_eq!(resource(&report, step)["state"], "present", "{step}");
    }

    let out = s.status("del", &[]);
    out.assert_code(1);
    assert!(
        out.stdout
            .contains("the log group /ecsctl/del/worker is missing"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("the log group /ecsctl/del/worker does not exist"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_made_outside_ecsctl_are_reported_as_drift() {
    let s = Stack::start().await;
    s.bootstrap("drift", &[]).assert_success();
    let aws = &s.aws;
    // Someone scales the service, shortens the retention, schedules the secret for deletion
    // and registers a newer revision the service does not run.
    aws.ecs
        .update_service()
        .cluster("ecsctl-drift")
        .service("ecsctl-drift-worker")
        .desired_count(3)
        .send()
        .await
        .unwrap();
    aws.logs
        .put_retention_policy()
        .log_group_name("/ecsctl/drift/worker")
        .retention_in_days(7)
        .send()
        .await
        .unwrap();
    aws.secrets
        .delete_secret()
        .secret_id("ecsctl/drift/prefect-api-key")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    let described = aws
        .ecs
        .describe_task_definition()
        .task_definition("ecsctl-drift-worker")
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    let td = described.task_definition().unwrap();
    let registered = aws
        .ecs
        .register_task_definition()
        .family(td.family().unwrap())
        .set_network_mode(td.network_mode().cloned())
        .set_requires_compatibilities(Some(td.requires_compatibilities().to_vec()))
        .set_cpu(td.cpu().map(String::from))
        .set_memory(td.memory().map(String::from))
        .set_execution_role_arn(td.execution_role_arn().map(String::from))
        .set_task_role_arn(td.task_role_arn().map(String::from))
        .set_container_definitions(Some(td.container_definitions().to_vec()))
        .set_tags(Some(described.tags().to_vec()))
        .send()
        .await
        .unwrap();
    let revision = registered.task_definition().unwrap().revision();
    assert_eq!(revision, 2);

    let report = s.status_json("drift", 1, &[]);
    assert_eq!(report["verdict"], "unhealthy");
    let secret = resource(&report, "secret");
    assert_eq!(secret["state"], "drifted", "{report:#}");
    assert!(secret["drift"][0]
        .as_str()
        .unwrap()
        .contains("scheduled for deletion"));
    let group = resource(&report, "log-group");
    assert_eq!(group["state"], "drifted");
    assert!(
        group["drift"][0].as_str().unwrap().contains("7 days"),
        "{group}"
    );
    let service = resource(&report, "service");
    assert_eq!(service["state"], "drifted");
    let drift = service["drift"].to_string();
    assert!(drift.contains("desired count 3 (wanted 1)"), "{drift}");
    assert!(
        drift.contains("not the latest revision ecsctl-drift-worker:2"),
        "{drift}"
    );
    assert_eq!(
        resource(&report, "task-definition")["state"],
        "present",
        "{report:#}"
    );
    let subjects: Vec<&str> = report["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["code"] == "drifted")
        .map(|r| r["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        [
            "ecsctl/drift/prefect-api-key",
            "/ecsctl/drift/worker",
            "ecsctl-drift-worker"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_ledger_the_pool_is_found_by_its_tags() {
    let s = Stack::start().await;
    s.bootstrap("st-lost", &[]).assert_success();
    let ledger = s.ledger("st-lost");
    s.lose_ledger("st-lost").await;

    let out = s.status("st-lost", &["--output", "json"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("no ledger for pool 'st-lost'"),
        "{}",
        out.stderr
    );
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "unhealthy", "{report:#}");
    assert_eq!(report["ledger"]["found"], false);
    // Without the ledger nothing says which Prefect the pool is in.
    assert_eq!(
        reason_codes(&report),
        ["service-not-running", "prefect-unreachable"],
        "{report:#}"
    );
    // Every AWS resource is found by its tag; the work pool is in a Prefect nobody named.
    for step in STEPS.iter().filter(|s| **s != "work-pool") {
        assert_eq!(
            resource(&report, step)["state"],
            "present",
            "{step}: {report:#}"
        );
    }
    let kinds: Vec<&str> = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["step"] == "network")
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "vpc",
        "subnet",
        "internet-gateway",
        "route-table",
        "security-group",
    ] {
        assert!(
            kinds.contains(&kind),
            "the network's {kind} is found by its tag: {kinds:?}"
        );
    }
    assert!(!ledger.exists(), "status does not write a ledger");

    // Told where Prefect is, it finds the work pool there too.
    let out = s
        .ecsctl
        .cmd(["status", "--pool", "st-lost", "--output", "json"])
        .env("PREFECT_API_URL", s.prefect_api_url())
        .run();
    out.assert_code(1);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        !reason_codes(&report).contains(&"prefect-unreachable".to_string()),
        "{report:#}"
    );
    assert_eq!(report["prefect"]["pool"]["name"], "st-lost", "{report:#}");
    assert_eq!(
        resource(&report, "work-pool")["state"],
        "present",
        "{report:#}"
    );
    assert!(!ledger.exists(), "status does not write a ledger");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_worker_log_lines_come_from_the_newest_stream() {
    let s = Stack::start().await;
    s.bootstrap("logs", &[]).assert_success();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for (stream, offset) in [
        ("worker/prefect-worker/old", 0),
        ("worker/prefect-worker/new", 5_000),
    ] {
        s.aws
            .logs
            .create_log_stream()
            .log_group_name("/ecsctl/logs/worker")
            .log_stream_name(stream)
            .send()
            .await
            .unwrap();
        let events = (0..15).map(|i| {
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now - 60_000 + offset + i)
                .message(format!("{stream} line {i}"))
                .build()
                .unwrap()
        });
        s.aws
            .logs
            .put_log_events()
            .log_group_name("/ecsctl/logs/worker")
            .log_stream_name(stream)
            .set_log_events(Some(events.collect()))
            .send()
            .await
            .unwrap();
    }

    let report = s.status_json("logs", 1, &["--log-lines", "3"]);
    assert_eq!(report["logs"]["has_streams"], true);
    assert_eq!(report["logs"]["stream"], "worker/prefect-worker/new");
    let lines: Vec<&str> = report["logs"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "worker/prefect-worker/new line 12",
            "worker/prefect-worker/new line 13",
            "worker/prefect-worker/new line 14"
        ]
    );
    let fix = report["reasons"][0]["fix"].as_str().unwrap();
    assert!(
        fix.contains("log lines"),
        "the log lines are where to look: {fix}\n{:#}",
        report["reasons"]
    );

    let out = s.status("logs", &["--log-lines", "2"]);
    out.assert_code(1);
    assert!(
        out.stdout.contains("worker/prefect-worker/new line 14"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("worker/prefect-worker/new line 12"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_json_report_holds_what_the_text_shows() {
    let s = Stack::start().await;
    s.bootstrap("both", &[]).assert_success();
    s.aws
        .logs
        .delete_log_group()
        .log_group_name("/ecsctl/both/worker")
        .send()
        .await
        .unwrap();
    let text = s.status("both", &[]);
    text.assert_code(1);
    let report = s.status_json("both", 1, &[]);
    let text = &text.stdout;

    for r in report["resources"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        assert!(
            text.contains(name),
            "resource {name} is in the text:\n{text}"
        );
        assert!(
            text.contains(r["state"].as_str().unwrap()),
            "its state is in the text"
        );
        if let Some(id) = r["id"].as_str() {
            assert!(
                text.contains(id),
                "resource id {id} is in the text:\n{text}"
            );
        }
    }
    for r in report["reasons"].as_array().unwrap() {
        let message = r["message"].as_str().unwrap();
        assert!(
            text.contains(message),
            "reason {message:?} is in the text:\n{text}"
        );
        let fix = r["fix"].as_str().unwrap();
        assert!(text.contains(fix), "fix {fix:?} is in the text:\n{text}");
    }
    let svc = &report["service"];
    let counts = format!(
        "desired {}, running {}, pending {}; rollout {}",
        svc["desired"],
        svc["running"],
        svc["pending"],
        svc["rollout"].as_str().unwrap()
    );
    assert!(text.contains(&counts), "{counts:?} is in the text:\n{text}");
    assert!(text.contains(report["ledger"]["path"].as_str().unwrap()));
    assert_eq!(report["pool"], "both");
    assert_eq!(report["account"], "123456789012");
    assert_eq!(report["region"], "us-east-1");
    assert!(report["summary"]
        .as_str()
        .unwrap()
        .starts_with("pool 'both' is unhealthy: "));
    assert!(report["checked_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_usage_exits_2_before_any_call() {
    let s = Stack::start().await;
    let out = s.ecsctl.cmd(["status"]).run();
    out.assert_code(2);
    assert!(out.stderr.contains("--pool"), "{}", out.stderr);
    s.status("p", &["--log-lines", "100000"]).assert_code(2);
    s.status("p", &["--log-lines", "many"]).assert_code(2);
    s.status("Not A Pool!", &[]).assert_code(2);
    assert!(s.proxy.calls().is_empty(), "{:?}", s.proxy.calls());
}

#[tokio::test(flavor = "multi_thread")]
async fn independent_reads_run_concurrently() {
    let s = Stack::start().await;
    s.bootstrap("fast", &[]).assert_success();
    // Warm up: the emulator's first answers per service are slow.
    s.status("fast", &[]).assert_code(1);
    s.proxy.clear();
    let latency = Duration::from_millis(400);
    s.proxy.set_latency(latency);

    let started = Instant::now();
    s.status("fast", &[]).assert_code(1);
    let elapsed = started.elapsed();
    let calls = s.proxy.calls().len();
    // Identity first, then one round of looks and extra reads, then the reads that need an
    // earlier answer (DescribeTasks after ListTasks, GetLogEvents after DescribeLogStreams).
    assert!(calls >= 15, "status read everything: {calls} calls");
    assert!(
        elapsed < latency * 6,
        "{calls} calls at {latency:?} each took {elapsed:?}: reads are not concurrent"
    );
}
