//! The real thing: a real `prefect worker start --pool P --type ecs` process (prefect and
//! prefect-aws from the pinned virtualenv) on this machine, against the emulator, with the
//! credentials of the worker role ecsctl made (AssumeRole on the emulator), a real deployment
//! and a real flow run. What the worker did is read from the emulator, and from a recording proxy
//! of the worker's own in front of it (moto does not keep everything RunTask was given).
//!
//! The worker runs as ecsctl's workers do (`--name ecsctl-P-<id>`, the plain environment of
//! ecsctl's worker task definition, the API key as the secret would inject it), except that it
//! talks to the Prefect server directly rather than through the stack's proxy, so ecsctl's
//! recorded Prefect calls stay ecsctl's, and that it heartbeats every 2 s to keep the tests fast.

use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ecs::types::TaskField;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sts::config::Credentials;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::support::aws::REGION;
use crate::support::iam::{decode_policy, statements, strings};
use crate::support::pool::{self, ACCOUNT};
use crate::support::prefect::{self, API_KEY};
use crate::support::proxy::Proxy;
use crate::support::stack::Stack;

/// The image the deployment names; never pulled (the emulator runs no containers).
const FLOW_IMAGE: &str = "prefecthq/prefect-aws:0.7.12-python3.12";
/// The deployment script, run with its directory as the working directory.
const FLOWS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testsuite/flows");
/// Seconds between the worker's heartbeats and between its polls for flow runs (Prefect's
/// defaults are 30 and 10). Prefect marks a worker OFFLINE about 3 heartbeats after its last.
const HEARTBEAT_SECS: &str = "2";
const QUERY_SECS: &str = "1";
/// How long the worker may take to come ONLINE (importing prefect-aws takes a few seconds; a
/// loaded 2-core CI machine gets more).
const ONLINE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the worker may take to pick up a scheduled flow run and call RunTask.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a STOPPED event may take to make its flow run CRASHED: the observer long-polls the
/// queue, so a message is read within a second or two of arriving.
const CRASH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Prefect may take to mark a killed worker OFFLINE (3 missed 2 s heartbeats, then
/// its next check of worker health, up to 15 s; measured at about 20 s).
const OFFLINE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often a condition is looked at again while waiting for it.
const POLL: Duration = Duration::from_millis(250);
/// What the worker logs when its observer cannot do its job (prefect-aws 0.7.12's words).
const OBSERVER_TROUBLE: [&str; 5] = [
    "ECS observer task crashed",
    "ECS observer has crashed",
    "SQS polling exceeded maximum backoff attempts",
    "event replication and crash detection will not work",
    "Failed to process ECS observer message",
];

/// Polls `probe` until it gives a value or `timeout` passes (then `None`). The pause between
/// polls only spaces them out: what is waited for is always the condition itself.
async fn wait_for<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Temporary credentials of a role, from the emulator's STS.
struct RoleCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
}

/// AssumeRole of the pool's worker role (`/ecsctl/ecsctl-<pool>-worker`), as ECS does for the
/// worker's task.
async fn assume_worker_role(s: &Stack, pool: &str) -> RoleCredentials {
    let arn = format!("arn:aws:iam::{ACCOUNT}:role/ecsctl/ecsctl-{pool}-use1-worker");
    let assumed = s
        .aws
        .sts
        .assume_role()
        .role_arn(&arn)
        .role_session_name("ecsctl-test-worker")
        .send()
        .await
        .unwrap_or_else(|e| panic!("AssumeRole {arn}: {e:?}"));
    let c = assumed
        .credentials()
        .expect("AssumeRole returns credentials");
    RoleCredentials {
        access_key_id: c.access_key_id().to_owned(),
        secret_access_key: c.secret_access_key().to_owned(),
        session_token: c.session_token().to_owned(),
    }
}

/// The plain environment of the pool's worker task definition (`ecsctl-<pool>-worker`): what
/// ecsctl gives its own worker, the observer's queue included.
async fn worker_task_environment(s: &Stack, pool: &str) -> Vec<(String, String)> {
    let family = format!("ecsctl-{pool}-worker");
    let described = s
        .aws
        .ecs
        .describe_task_definition()
        .task_definition(&family)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeTaskDefinition {family}: {e:?}"));
    let definition = described.task_definition().expect("a task definition");
    definition.container_definitions()[0]
        .environment()
        .iter()
        .map(|kv| {
            (
                kv.name().unwrap_or_default().to_owned(),
                kv.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A `prefect worker start` process, killed (SIGKILL) when dropped, and by the kernel if the
/// test process dies first.
struct Worker {
    child: Child,
    name: String,
    log: PathBuf,
    /// `PREFECT_HOME` and the log.
    _home: TempDir,
}

impl Worker {
    /// Starts `prefect worker start --pool <pool> --type ecs --name ecsctl-<pool>-local` with
    /// the worker task definition's environment, the planted API key, `credentials` and
    /// `aws_endpoint` (the emulator, or a proxy in front of it).
    async fn start(
        s: &Stack,
        pool: &str,
        credentials: &RoleCredentials,
        aws_endpoint: &str,
    ) -> Worker {
        let environment = worker_task_environment(s, pool).await;
        assert!(
            environment.contains(&(
                "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME".to_owned(),
                format!("ecsctl-{pool}-task-events")
            )),
            "the worker task definition names the observer's queue: {environment:?}"
        );
        let server = prefect::server();
        let home = tempfile::Builder::new()
            .prefix("ecsctl-worker-")
            .tempdir()
            .expect("create the worker's home");
        let log = home.path().join("worker.log");
        let log_file = std::fs::File::create(&log).expect("create the worker's log");
        let name = format!("ecsctl-{pool}-local");
        let mut command = server.command("prefect");
        // Nothing of this machine's AWS setup (a profile, a per-service endpoint) may leak in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("AWS_") {
                command.env_remove(&key);
            }
        }
        for (key, value) in &environment {
            command.env(key, value);
        }
        command
            .args(["worker", "start", "--pool", pool, "--type", "ecs", "--name"])
            .arg(&name)
            // The server itself (the task definition's URL is the stack's Prefect proxy).
            .env("PREFECT_API_URL", server.api_url())
            .env("PREFECT_HOME", home.path())
            .env("PREFECT_API_KEY", API_KEY)
            .env("PREFECT_WORKER_HEARTBEAT_SECONDS", HEARTBEAT_SECS)
            .env("PREFECT_WORKER_QUERY_SECONDS", QUERY_SECS)
            .env("AWS_ACCESS_KEY_ID", &credentials.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &credentials.secret_access_key)
            .env("AWS_SESSION_TOKEN", &credentials.session_token)
            // botocore (≥ 1.31; the virtualenv has 1.43) and aiobotocore honour it.
            .env("AWS_ENDPOINT_URL", aws_endpoint)
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_CONFIG_FILE", home.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                home.path().join("no-aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("PYTHONUNBUFFERED", "1")
            .stdout(log_file.try_clone().expect("clone the log's handle"))
            .stderr(log_file);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // Killed by the kernel when the test's thread ends, should Drop never run.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .expect("start prefect worker");
        Worker {
            child,
            name,
            log,
            _home: home,
        }
    }

    /// Everything the worker has written so far.
    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// The worker's log lines that say its observer is in trouble.
    fn observer_trouble(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|line| OBSERVER_TROUBLE.iter().any(|words| line.contains(words)))
            .map(str::to_owned)
            .collect()
    }

    /// Panics, with the log, if the worker has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("poll the worker") {
            panic!("the worker exited with {status}:\n{}", self.log());
        }
    }

    /// Waits until Prefect lists this worker ONLINE in `pool`.
    async fn wait_online(&mut self, pool: &str) {
        let deadline = Instant::now() + ONLINE_TIMEOUT;
        loop {
            self.assert_running();
            if worker_status(pool, &self.name).await.as_deref() == Some("ONLINE") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "worker {} not ONLINE in Prefect after {ONLINE_TIMEOUT:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Kills the worker at once (SIGKILL: it sends no last word to Prefect, as when its task
    /// dies) and waits for it to be gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Prefect REST call straight to the shared server, as JSON.
async fn prefect_json(method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let url = format!("{}{path}", prefect::server().api_url());
    let mut request = reqwest::Client::new().request(method, &url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("reach the Prefect server");
    let status = response.status();
    let text = response.text().await.expect("read Prefect's answer");
    assert!(status.is_success(), "{url}: HTTP {status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}"))
}

/// The status Prefect gives the worker `name` in `pool` (`None` while it is not listed).
async fn worker_status(pool: &str, name: &str) -> Option<String> {
    let workers = prefect_json(
        reqwest::Method::POST,
        &format!("/work_pools/{pool}/workers/filter"),
        Some(json!({})),
    )
    .await;
    workers
        .as_array()?
        .iter()
        .find(|w| w["name"] == name)
        .and_then(|w| w["status"].as_str().map(str::to_owned))
}

/// A flow run as Prefect has it now.
async fn flow_run(id: &str) -> Value {
    prefect_json(reqwest::Method::GET, &format!("/flow_runs/{id}"), None).await
}

/// The deployment and flow run `flows/deploy.py` made.
struct Deployed {
    deployment_id: String,
    flow_run_id: String,
}

/// Deploys the test flow to `pool` with Prefect's own `flow.deploy(..., build=False,
/// push=False)` and schedules one run of it now.
fn deploy(pool: &str) -> Deployed {
    let out = prefect::server()
        .command("python")
        .args(["deploy.py", pool, FLOW_IMAGE])
        .current_dir(FLOWS_DIR)
        .output()
        .expect("run flows/deploy.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "flows/deploy.py failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let ids: Value = last
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("flows/deploy.py printed no JSON:\n{stdout}"));
    Deployed {
        deployment_id: ids["deployment_id"].as_str().unwrap().to_owned(),
        flow_run_id: ids["flow_run_id"].as_str().unwrap().to_owned(),
    }
}

/// `ecsctl status --pool <pool> --output json`: its exit code and report.
fn status_report(s: &Stack, pool: &str) -> (Option<i32>, Value) {
    let out = s
        .ecsctl
        .cmd(["status", "--pool", pool, "--output", "json"])
        .run();
    let report = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("status JSON ({e}):\n{}\n{}", out.stdout, out.stderr));
    (out.code, report)
}

fn reason_codes(report: &Value) -> Vec<String> {
    report["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_owned())
        .collect()
}

/// The report's entry for the worker `name`.
fn reported_worker<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["prefect"]["workers"]
        .as_array()
        .expect("prefect.workers")
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("status does not list worker {name}: {report:#}"))
}

async fn queue_url_dlq(s: &Stack, queue: &str) -> String {
    pool::queue_url(&s.aws, &format!("{queue}-dlq")).await
}

/// Messages in a queue, visible or being handled.
async fn messages_in(s: &Stack, url: &str) -> u64 {
    let attributes = s
        .aws
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes()
        .cloned()
        .unwrap_or_default();
    attributes
        .values()
        .map(|n| n.parse::<u64>().expect("a count"))
        .sum()
}

/// The worker's calls of `action` through `proxy`, their bodies parsed.
fn recorded(proxy: &Proxy, action: &str) -> Vec<(Option<u16>, Value)> {
    proxy
        .calls()
        .into_iter()
        .filter(|c| c.action == action)
        .map(|c| {
            let body = serde_json::from_str(&c.body).unwrap_or(Value::Null);
            (c.status, body)
        })
        .collect()
}

fn tag_value<'a>(tags: &'a Value, key: &str) -> Option<&'a str> {
    tags.as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .and_then(|t| t["value"].as_str())
}

/// Asserts the task definition the worker registered for a flow run runs on Fargate with
/// ecsctl's execution role, gets the API key from ecsctl's secret (never as plain environment)
/// and logs to the pool's flow-run log group without asking ECS to create it.
fn assert_flow_run_definition(
    definition: &aws_sdk_ecs::types::TaskDefinition,
    ids: &pool::StackIds,
    pool: &str,
) {
    assert_eq!(
        definition
            .requires_compatibilities()
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>(),
        ["FARGATE"]
    );
    assert_eq!(
        definition.network_mode().map(|m| m.as_str()),
        Some("awsvpc")
    );
    assert_eq!(
        definition.execution_role_arn(),
        Some(ids.execution_role_arn.as_str())
    );
    let container = &definition.container_definitions()[0];
    assert_eq!(container.image(), Some(FLOW_IMAGE));
    let secrets: Vec<(&str, &str)> = container
        .secrets()
        .iter()
        .map(|s| (s.name(), s.value_from()))
        .collect();
    assert_eq!(secrets, [("PREFECT_API_KEY", ids.secret_arn.as_str())]);
    assert!(
        !container
            .environment()
            .iter()
            .any(|kv| kv.name() == Some("PREFECT_API_KEY")),
        "{:?}",
        container.environment()
    );
    let logging = container
        .log_configuration()
        .expect("the flow run's container logs");
    assert_eq!(logging.log_driver().as_str(), "awslogs");
    let options = logging.options().cloned().unwrap_or_default();
    assert_eq!(
        options.get("awslogs-group").map(String::as_str),
        Some(format!("/ecsctl/{pool}/flow-runs").as_str()),
        "{options:?}"
    );
    assert_eq!(
        options.get("awslogs-region").map(String::as_str),
        Some(REGION)
    );
    // The execution role may not create log groups: the worker must not ask ECS to.
    assert_ne!(
        options.get("awslogs-create-group").map(String::as_str),
        Some("true"),
        "{options:?}"
    );
}

/// Asserts a RunTask request names ecsctl's cluster, subnets and security group, runs as the
/// flow-run role, carries the pool's tag, and has no `PREFECT_API_KEY` in plain environment.
fn assert_run_task_request(request: &Value, ids: &pool::StackIds, pool: &str) {
    assert_eq!(request["cluster"], ids.cluster_arn.as_str());
    assert_eq!(request["launchType"], "FARGATE");
    let vpc = &request["networkConfiguration"]["awsvpcConfiguration"];
    let mut subnets = strings(&vpc["subnets"]);
    subnets.sort();
    assert_eq!(subnets, ids.subnet_ids, "{request:#}");
    assert_eq!(
        vpc["securityGroups"],
        json!([ids.security_group_id]),
        "{request:#}"
    );
    assert_eq!(vpc["assignPublicIp"], "ENABLED");
    assert_eq!(
        request["overrides"]["taskRoleArn"],
        ids.flow_run_role_arn.as_str()
    );
    assert_eq!(
        tag_value(&request["tags"], "ecsctl:pool"),
        Some(pool),
        "{request:#}"
    );
    let plain: Vec<String> = request["overrides"]["containerOverrides"]
        .as_array()
        .expect("container overrides")
        .iter()
        .flat_map(|c| c["environment"].as_array().cloned().unwrap_or_default())
        .filter_map(|kv| kv["name"].as_str().map(str::to_owned))
        .collect();
    assert!(
        plain.iter().any(|name| name == "PREFECT__FLOW_RUN_ID"),
        "the overrides are the flow run's environment: {plain:?}"
    );
    assert!(
        !plain.iter().any(|name| name == "PREFECT_API_KEY"),
        "{plain:?}"
    );
}

/// The detail of ECS's "ECS Task State Change" event for `task` stopping because its flow-run
/// container exited with 1, as ECS sends it (the fields prefect-aws's observer reads: the
/// cluster and task, to read the task's tags; the status; the containers and their exit codes).
fn stopped_event_detail(task: &aws_sdk_ecs::types::Task) -> Value {
    let task_arn = task.task_arn().unwrap_or_default();
    let container_arn = task.containers()[0].container_arn().unwrap_or_default();
    json!({
        "clusterArn": task.cluster_arn(),
        "taskArn": task_arn,
        "taskDefinitionArn": task.task_definition_arn(),
        "group": task.group(),
        "launchType": "FARGATE",
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "stopCode": "EssentialContainerExited",
        "stoppedReason": "Essential container in task exited",
        "containers": [{
            "containerArn": container_arn,
            "taskArn": task_arn,
            "name": "prefect",
            "lastStatus": "STOPPED",
            "exitCode": 1
        }],
        "version": 5
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_worker_runs_flow_runs_on_ecsctls_stack_and_its_observer_marks_a_crash() {
    let s = Stack::start().await;
    let before = s.inventory().await;
    let pool = "real-worker";
    // The planted key goes into the pool's secret, so the pool gets prefect_api_key_secret_arn.
    s.bootstrap(pool, &[]).assert_success();
    let ids = pool::stack_ids(&s.aws, pool).await;

    // The worker's AWS calls go through a proxy of its own, which keeps their bodies.
    let worker_proxy = Proxy::start(&s.emulator.endpoint());
    let credentials = assume_worker_role(&s, pool).await;
    let mut worker = Worker::start(&s, pool, &credentials, &worker_proxy.url()).await;
    worker.wait_online(pool).await;

    // Its observer found the pool's queue (as the worker role) and started reading it.
    let queue = format!("ecsctl-{pool}-task-events");
    let (proxy, name) = (&worker_proxy, queue.as_str());
    let found_queue = wait_for(ONLINE_TIMEOUT, || async move {
        recorded(proxy, "GetQueueUrl")
            .into_iter()
            .find(|(_, body)| body["QueueName"] == name)
    })
    .await
    .unwrap_or_else(|| panic!("the observer never asked for {queue}:\n{}", worker.log()));
    assert_eq!(
        found_queue.0,
        Some(200),
        "GetQueueUrl {queue} as the worker role"
    );
    assert_eq!(
        worker.observer_trouble(),
        Vec::<String>::new(),
        "the worker starts with no observer error"
    );

    // A real deployment and flow run; the worker submits it to ECS.
    let deployed = deploy(pool);
    let run_id = deployed.flow_run_id.as_str();
    let submitted = wait_for(SUBMIT_TIMEOUT, || async move {
        let run = flow_run(run_id).await;
        run["infrastructure_pid"].as_str().map(str::to_owned)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the worker never submitted flow run {}:\n{}",
            deployed.flow_run_id,
            worker.log()
        )
    });
    let cluster = format!("ecsctl-{pool}");
    let tasks = s
        .aws
        .ecs
        .list_tasks()
        .cluster(&cluster)
        .send()
        .await
        .unwrap();
    assert_eq!(tasks.task_arns().len(), 1, "one flow-run task on {cluster}");
    let task_arn = tasks.task_arns()[0].clone();
    assert_eq!(
        submitted,
        format!("{}::{task_arn}", ids.cluster_arn),
        "Prefect knows the flow run by that task"
    );

    // The task definition the worker registered: Fargate, ecsctl's execution role, the key from
    // ecsctl's secret and not in plain text, logs to the flow-run log group.
    let family = format!("prefect_{pool}_{}", deployed.deployment_id);
    let described = s
        .aws
        .ecs
        .describe_task_definition()
        .task_definition(&family)
        .send()
        .await
        .unwrap_or_else(|e| panic!("the worker registered no {family}: {e:?}"));
    let definition = described.task_definition().unwrap();
    assert_flow_run_definition(definition, &ids, pool);

    // The task it started, as ECS keeps it: ecsctl's cluster, the flow-run role, the tags.
    let described = s
        .aws
        .ecs
        .describe_tasks()
        .cluster(&cluster)
        .tasks(&task_arn)
        .include(TaskField::Tags)
        .send()
        .await
        .unwrap();
    let task = &described.tasks()[0];
    assert_eq!(task.cluster_arn(), Some(ids.cluster_arn.as_str()));
    assert_eq!(task.task_definition_arn(), definition.task_definition_arn());
    assert_eq!(
        task.overrides().and_then(|o| o.task_role_arn()),
        Some(ids.flow_run_role_arn.as_str())
    );
    let tags: Vec<(&str, &str)> = task
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        .collect();
    assert!(tags.contains(&("ecsctl:pool", pool)), "{tags:?}");
    assert!(
        tags.contains(&("prefect.io/flow-run-id", deployed.flow_run_id.as_str())),
        "{tags:?}"
    );

    // The RunTask request itself (moto keeps only one subnet of it, and no security group).
    let run_tasks = recorded(&worker_proxy, "RunTask");
    assert_eq!(run_tasks.len(), 1, "one RunTask");
    let (status, request) = &run_tasks[0];
    assert_eq!(*status, Some(200));
    assert_run_task_request(request, &ids, pool);
    // The worker has the key; not one of its AWS calls carries it.
    for call in worker_proxy.calls() {
        assert!(
            !call.body.contains(API_KEY),
            "the worker sent the API key in {}: {}",
            call.action,
            call.body
        );
    }

    // Crash detection through the real chain: ECS's "task stopped" event for that task goes to
    // the default bus, ecsctl's rule routes it to ecsctl's queue, the worker's observer reads
    // it, reads the task's tags (DescribeTasks) and marks the flow run CRASHED. AWS refuses
    // PutEvents with an `aws.*` source; moto accepts it and routes it like ECS's own event, so
    // the test goes through the rule's pattern and target and the queue rather than around
    // them. (moto delivers through a DISABLED rule too: the rule's state is status's to check.)
    let flow_run_before = flow_run(&deployed.flow_run_id).await;
    assert_eq!(
        flow_run_before["state_type"], "PENDING",
        "submitted, not yet crashed: {flow_run_before:#}"
    );
    let detail = stopped_event_detail(task);
    let put = s
        .aws
        .events
        .put_events()
        .entries(
            PutEventsRequestEntry::builder()
                .source("aws.ecs")
                .detail_type("ECS Task State Change")
                .resources(&task_arn)
                .detail(detail.to_string())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(put.failed_entry_count(), 0, "{put:?}");
    let crashed = wait_for(CRASH_TIMEOUT, || async move {
        let run = flow_run(run_id).await;
        (run["state_type"] == "CRASHED").then_some(run)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "flow run {} not CRASHED within {CRASH_TIMEOUT:?}:\n{}",
            deployed.flow_run_id,
            worker.log()
        )
    });
    let message = crashed["state"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("non-zero exit code") && message.contains("prefect"),
        "{crashed:#}"
    );
    assert!(
        recorded(&worker_proxy, "DescribeTasks")
            .iter()
            .any(|(status, body)| *status == Some(200)
                && body["tasks"] == json!([task_arn])
                && body["include"] == json!(["TAGS"])),
        "the observer read the task's tags as the worker role"
    );
    // Handled and deleted: nothing left in the queue, nothing dead-lettered.
    let url = pool::queue_url(&s.aws, &queue).await;
    let (stack, url) = (&s, url.as_str());
    let drained = wait_for(CRASH_TIMEOUT, || async move {
        (messages_in(stack, url).await == 0).then_some(())
    })
    .await;
    assert!(drained.is_some(), "the observer never deleted the message");
    let dead_letters = queue_url_dlq(&s, &queue).await;
    assert_eq!(messages_in(&s, &dead_letters).await, 0);
    assert_eq!(
        worker.observer_trouble(),
        Vec::<String>::new(),
        "{}",
        worker.log()
    );

    // Cleanup: the worker first, then the pool with the flow run's task still running in ECS.
    worker.kill();
    s.destroy(pool, &["--stop-flow-runs"]).assert_success();
    s.destroy_all_and_assert_unchanged(&[], &before).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_sees_a_real_worker_online_and_offline_once_prefect_marks_it() {
    let s = Stack::start().await;
    let before = s.inventory().await;
    let pool = "real-worker-status";
    s.bootstrap(pool, &[]).assert_success();
    let credentials = assume_worker_role(&s, pool).await;
    let mut worker = Worker::start(&s, pool, &credentials, &s.emulator.endpoint()).await;
    worker.wait_online(pool).await;
    let name = worker.name.clone();

    // While it runs: listed ONLINE, recognised as ecsctl's, recent, and no worker-offline.
    // (The emulator never runs the service's task, so status is unhealthy for that reason.)
    let (code, report) = status_report(&s, pool);
    let listed = reported_worker(&report, &name);
    assert_eq!(listed["status"], "ONLINE", "{report:#}");
    assert_eq!(listed["ecsctl"], true, "{report:#}");
    assert_eq!(listed["recent"], true, "{report:#}");
    let codes = reason_codes(&report);
    assert!(!codes.contains(&"worker-offline".to_owned()), "{codes:?}");
    assert!(
        codes.contains(&"service-not-running".to_owned()),
        "{codes:?}"
    );
    assert_eq!(code, Some(1));

    // Stopped: once Prefect marks it OFFLINE, status says no ecsctl worker is online.
    worker.kill();
    let worker_name = name.as_str();
    let offline = wait_for(OFFLINE_TIMEOUT, || async move {
        (worker_status(pool, worker_name).await.as_deref() == Some("OFFLINE")).then_some(())
    })
    .await;
    assert!(
        offline.is_some(),
        "Prefect never marked {name} OFFLINE within {OFFLINE_TIMEOUT:?}"
    );
    let (code, report) = status_report(&s, pool);
    let listed = reported_worker(&report, &name);
    assert_eq!(listed["status"], "OFFLINE", "{report:#}");
    assert_eq!(listed["ecsctl"], true, "{report:#}");
    let offline_reason = report["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "worker-offline")
        .unwrap_or_else(|| panic!("no worker-offline reason: {report:#}"));
    assert_eq!(offline_reason["subject"], pool);
    assert_eq!(report["verdict"], "unhealthy");
    assert_eq!(code, Some(1));

    s.destroy_all_and_assert_unchanged(&[pool], &before).await;
}

/// SDK clients that act as the worker role, straight to the emulator.
struct AsWorkerRole {
    sqs: aws_sdk_sqs::Client,
    ecs: aws_sdk_ecs::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
}

impl AsWorkerRole {
    async fn new(endpoint: &str, c: &RoleCredentials) -> AsWorkerRole {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .endpoint_url(endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                &c.access_key_id,
                &c.secret_access_key,
                Some(c.session_token.clone()),
                None,
                "ecsctl-worker-role",
            ))
            .load()
            .await;
        AsWorkerRole {
            sqs: aws_sdk_sqs::Client::new(&config),
            ecs: aws_sdk_ecs::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
        }
    }
}

/// The emulator's words when it refused a call for lack of permission (HTTP 403), or `None`
/// when the call was not refused for that reason (it succeeded, or failed otherwise).
fn refusal<T, E>(
    result: &Result<T, aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>>,
) -> Option<String> {
    let raw = result.as_ref().err()?.raw_response()?;
    (raw.status().as_u16() == 403)
        .then(|| String::from_utf8_lossy(raw.body().bytes().unwrap_or_default()).into_owned())
}

/// Turns the emulator's IAM enforcement on (`"0"`: from the next request on) or off (`"inf"`).
/// The body must reach moto raw: a form content type (curl's `-d`/`--data-binary` default)
/// leaves it empty and moto answers 500.
async fn set_iam_enforcement(endpoint: &str, initial_free_requests: &str) {
    let response = reqwest::Client::new()
        .post(format!("{endpoint}/moto-api/reset-auth"))
        .header("content-type", "text/plain")
        .body(initial_free_requests.to_owned())
        .send()
        .await
        .expect("reach the emulator");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "reset-auth: HTTP {status}: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_role_may_make_its_observers_calls_on_its_queue_and_nothing_else_there() {
    // Its own stack: enforcement applies to the whole emulator.
    let s = Stack::start().await;
    let before = s.inventory().await;
    let pool = "worker-iam";
    s.bootstrap(pool, &[]).assert_success();
    let queue = format!("ecsctl-{pool}-task-events");
    let queue_arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}");

    // Two halves, because neither shows it all. The document: the SQS statement names exactly
    // the pool's queue, with exactly the observer's calls, and no other statement grants
    // anything in SQS; that is what AWS evaluates. The emulator alone cannot show it: moto
    // authorises SQS calls against the queue named by their QueueUrl, but GetQueueUrl (which
    // names the queue by QueueName) against "*", so under enforcement it refuses the observer's
    // legitimate GetQueueUrl on a queue-scoped statement, and it authorises other services'
    // calls against "*" only.
    let policy = s
        .aws
        .iam
        .get_role_policy()
        .role_name(format!("ecsctl-{pool}-use1-worker"))
        .policy_name("ecsctl-prefect-ecs-worker")
        .send()
        .await
        .unwrap();
    let policy = decode_policy(policy.policy_document());
    let sqs_statements: Vec<Value> = statements(&policy)
        .into_iter()
        .filter(|st| {
            strings(&st["Action"])
                .iter()
                .any(|a| a == "*" || a.to_lowercase().starts_with("sqs:"))
        })
        .collect();
    assert_eq!(sqs_statements.len(), 1, "{policy:#}");
    let sqs = &sqs_statements[0];
    assert_eq!(sqs["Effect"], "Allow");
    assert_eq!(strings(&sqs["Resource"]), vec![queue_arn], "{policy:#}");
    let mut actions = strings(&sqs["Action"]);
    actions.sort();
    assert_eq!(
        actions,
        [
            "sqs:ChangeMessageVisibility",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl",
            "sqs:ReceiveMessage",
        ]
    );

    // Enforcement: with moto's IAM enforcement on, the worker role's own credentials (from
    // AssumeRole) may make the observer's other calls on the pool's queue, and are refused an
    // action they were not given and the same calls on another queue. That proves the
    // credentials chain and the action list, which the document alone cannot.
    let queue_url = pool::queue_url(&s.aws, &queue).await;
    let other_url = queue_url_dlq(&s, &queue).await;
    s.aws
        .sqs
        .send_message()
        .queue_url(&queue_url)
        .message_body(r#"{"detail-type":"ECS Task State Change"}"#)
        .send()
        .await
        .unwrap();
    let credentials = assume_worker_role(&s, pool).await;
    let role = AsWorkerRole::new(&s.emulator.endpoint(), &credentials).await;
    set_iam_enforcement(&s.emulator.endpoint(), "0").await;

    let attributes = role
        .sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await;
    assert!(attributes.is_ok(), "GetQueueAttributes: {attributes:?}");
    let received = role
        .sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(1)
        .send()
        .await
        .expect("ReceiveMessage as the worker role");
    let handle = received.messages()[0]
        .receipt_handle()
        .expect("a receipt handle")
        .to_owned();
    role.sqs
        .change_message_visibility()
        .queue_url(&queue_url)
        .receipt_handle(&handle)
        .visibility_timeout(300)
        .send()
        .await
        .expect("ChangeMessageVisibility as the worker role");
    role.sqs
        .delete_message()
        .queue_url(&queue_url)
        .receipt_handle(&handle)
        .send()
        .await
        .expect("DeleteMessage as the worker role");
    // The observer's other reads (the task's tags, its definition, a crashed run's logs).
    let tasks = role
        .ecs
        .describe_tasks()
        .cluster(format!("ecsctl-{pool}"))
        .tasks(format!(
            "arn:aws:ecs:{REGION}:{ACCOUNT}:task/ecsctl-{pool}/0123456789abcdef0123456789abcdef"
        ))
        .include(TaskField::Tags)
        .send()
        .await;
    assert!(tasks.is_ok(), "DescribeTasks: {tasks:?}");
    let definition = role
        .ecs
        .describe_task_definition()
        .task_definition(format!("ecsctl-{pool}-worker"))
        .send()
        .await;
    assert!(definition.is_ok(), "DescribeTaskDefinition: {definition:?}");
    let logs = role
        .logs
        .get_log_events()
        .log_group_name(format!("/ecsctl/{pool}/flow-runs"))
        .log_stream_name("flow-run/prefect/none")
        .send()
        .await;
    assert_eq!(refusal(&logs), None, "GetLogEvents refused: {logs:?}");

    let sent = role
        .sqs
        .send_message()
        .queue_url(&queue_url)
        .message_body("{}")
        .send()
        .await;
    let words = refusal(&sent).unwrap_or_else(|| panic!("SendMessage not refused: {sent:?}"));
    assert!(
        words.contains("not authorized to perform: sqs:SendMessage"),
        "{words}"
    );
    let deleted = role.sqs.delete_queue().queue_url(&queue_url).send().await;
    assert!(
        refusal(&deleted).is_some(),
        "DeleteQueue not refused: {deleted:?}"
    );
    let elsewhere = role
        .sqs
        .receive_message()
        .queue_url(&other_url)
        .send()
        .await;
    assert!(
        refusal(&elsewhere).is_some(),
        "ReceiveMessage on {other_url} not refused: {elsewhere:?}"
    );
    let elsewhere = role
        .sqs
        .get_queue_attributes()
        .queue_url(&other_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await;
    assert!(
        refusal(&elsewhere).is_some(),
        "GetQueueAttributes on {other_url} not refused: {elsewhere:?}"
    );

    set_iam_enforcement(&s.emulator.endpoint(), "inf").await;
    s.destroy_all_and_assert_unchanged(&[pool], &before).await;
}
