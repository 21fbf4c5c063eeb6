//! The judgement and the words, over recorded facts.

use time::OffsetDateTime;

use super::causes::{classify, stop_reason};
use super::prefect::{is_ecsctl_worker, is_recent};
use super::*;
use crate::aws::ecs::{ContainerStop, Deployment, Event, ServiceInfo, StoppedTask};
use crate::ledger::ResourceKind;
use crate::prefect::{WorkPool, Worker};
use crate::steps::observer::{ChainHealth, ChainProblem};
use crate::steps::{ItemState, Names, PlanItem, Remedy, StepPlan};

const POOL: &str = "p";
const TD1: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/ecsctl-p-worker:1";
const TD2: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/ecsctl-p-worker:2";
const SERVICE_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service/ecsctl-p/ecsctl-p-worker";
const API_URL: &str = "https://api.prefect.cloud/api/accounts/a1/workspaces/w1";
/// ecsctl's worker: the pool's prefix and the ECS task id.
const WORKER: &str = "ecsctl-p-5b0d8e8f1e2a4c0f9d3f2b1a0c9e8d7f";

fn at(secs: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(secs).ok()
}

/// 2024-05-01 12:00:00 UTC, the "now" of every test.
const NOW: i64 = 1_714_564_800;

fn present(step: &'static str, kind: ResourceKind, name: &str) -> StepPlan {
    StepPlan {
        step,
        items: vec![PlanItem::new(
            kind,
            name,
            ItemState::Present {
                id: format!("id-of-{name}"),
            },
        )],
    }
}

/// Every step's look finding its resources as bootstrapped.
fn all_present() -> Vec<StepPlan> {
    vec![
        present("secret", ResourceKind::Secret, "ecsctl/p/prefect-api-key"),
        present("log-group", ResourceKind::LogGroup, "/ecsctl/p/worker"),
        present(
            "execution-role",
            ResourceKind::Role,
            "ecsctl-p-use1-execution",
        ),
        present("worker-role", ResourceKind::Role, "ecsctl-p-use1-worker"),
        present("network", ResourceKind::Vpc, "ecsctl-p"),
        present("cluster", ResourceKind::Cluster, "ecsctl-p"),
        present(
            "task-definition",
            ResourceKind::TaskDefinition,
            "ecsctl-p-worker",
        ),
        StepPlan {
            step: "service",
            items: vec![PlanItem::new(
                ResourceKind::Service,
                "ecsctl-p-worker",
                ItemState::Present {
                    id: SERVICE_ARN.into(),
                },
            )],
        },
        present("work-pool", ResourceKind::WorkPool, "p"),
    ]
}

/// A worker Prefect lists, its last heartbeat `ago` seconds before the check (30 s interval).
fn worker(name: &str, status: &str, ago: i64) -> Worker {
    Worker {
        name: name.into(),
        status: status.into(),
        last_heartbeat_time: at(NOW - ago),
        heartbeat_interval_seconds: Some(30),
    }
}

fn ecs_pool() -> WorkPool {
    WorkPool {
        name: POOL.into(),
        kind: "ecs".into(),
        base_job_template: serde_json::json!({ "variables": {} }),
        is_paused: false,
    }
}

fn prefect_answered(pool: Option<WorkPool>, workers: Vec<Worker>) -> PrefectFacts {
    PrefectFacts {
        api_url: Some(API_URL.into()),
        read: Ok(PrefectRead { pool, workers }),
    }
}

/// Prefect's side of a healthy pool: an ECS pool, ecsctl's worker online, heartbeat 20 s ago.
fn healthy_prefect() -> PrefectFacts {
    prefect_answered(Some(ecs_pool()), vec![worker(WORKER, "ONLINE", 20)])
}

/// Everything healthy on the AWS side; Prefect's side as given.
fn with_prefect(prefect: PrefectFacts) -> Facts {
    let mut f = facts(all_present(), Some(service(1, 0, "COMPLETED", &[])), vec![]);
    f.prefect = prefect;
    f
}

/// The work-pool step's look finding this.
fn pool_looked(plans: &mut [StepPlan], state: ItemState) {
    let plan = plans.iter_mut().find(|p| p.step == "work-pool").unwrap();
    plan.items[0].state = state;
}

/// A DescribeServices answer for a service on its first deployment.
fn service(running: i32, pending: i32, rollout: &str, events: &[(i64, &str)]) -> ServiceInfo {
    ServiceInfo {
        name: "ecsctl-p-worker".into(),
        arn: SERVICE_ARN.into(),
        status: "ACTIVE".into(),
        desired: 1,
        running,
        pending,
        task_definition: TD1.into(),
        latest_task_definition: None,
        rollout: Some(rollout.into()),
        deployments: vec![Deployment {
            id: "ecs-svc/4761939412542153432".into(),
            status: "PRIMARY".into(),
            task_definition: TD1.into(),
            desired: 1,
            running,
            pending,
            failed_tasks: 0,
            rollout_state: Some(rollout.into()),
            rollout_state_reason: Some(if rollout == "COMPLETED" {
                "ECS deployment ecs-svc/4761939412542153432 completed.".into()
            } else {
                "ECS deployment ecs-svc/4761939412542153432 in progress.".into()
            }),
            created_at: at(NOW - 600),
            updated_at: at(NOW - 300),
        }],
        events: events
            .iter()
            .map(|(secs, message)| Event {
                at: at(*secs),
                message: (*message).into(),
            })
            .collect(),
    }
}

fn logs_with_lines(lines: &[&str]) -> LogInfo {
    LogInfo {
        group: "/ecsctl/p/worker".into(),
        exists: true,
        has_streams: !lines.is_empty(),
        stream: (!lines.is_empty())
            .then(|| "worker/prefect-worker/5b0d8e8f1e2a4c0f9d3f2b1a0c9e8d7f".into()),
        last_event_at: (!lines.is_empty()).then(|| at(NOW - 30)).flatten(),
        lines: lines
            .iter()
            .map(|m| LogLine {
                at: at(NOW - 30),
                message: (*m).into(),
            })
            .collect(),
    }
}

fn facts(plans: Vec<StepPlan>, svc: Option<ServiceInfo>, stopped: Vec<StoppedTask>) -> Facts {
    Facts {
        pool: POOL.into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
        checked_at: at(NOW).unwrap(),
        ledger: LedgerInfo {
            path: "/state/123456789012/us-east-1/p.json".into(),
            found: true,
            has_inputs: true,
        },
        created: plans
            .iter()
            .flat_map(|p| p.items.iter().map(move |i| (p.step.to_string(), i.kind)))
            .collect(),
        used: Vec::new(),
        wanted_desired_count: Some(1),
        plans,
        service: Ok(svc),
        latest_task_definition: Ok(Some(TD1.into())),
        stopped_tasks: Ok(stopped),
        logs: Ok(logs_with_lines(&[
            "12:00:01.123 | INFO    | prefect.worker.ecs.ecsworker 7c0e - Worker pool 'p' created.",
            "Worker 'ECSWorker 7c0e' started!",
        ])),
        prefect: healthy_prefect(),
        observer: Ok(ChainHealth {
            problems: Vec::new(),
            dead_letters: Some(0),
            waiting: Some(0),
        }),
    }
}

fn codes(r: &Report) -> Vec<&'static str> {
    r.reasons.iter().map(|r| r.code).collect()
}

/// A task stopped because the execution role could not read the secret, as DescribeTasks
/// reports it on AWS.
fn secret_denied_task() -> StoppedTask {
    StoppedTask {
        id: "0a5e5f0c3b1d4a8e9f7c6b5a4d3e2f1a".into(),
        task_definition: TD1.into(),
        stopped_at: at(NOW - 120),
        stop_code: Some("TaskFailedToStart".into()),
        stopped_reason: Some("ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch secret arn:aws:secretsmanager:us-east-1:123456789012:secret:ecsctl/p/prefect-api-key-AbCdEf from secrets manager: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/ecsctl-p-use1-execution/0a5e5f0c is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:ecsctl/p/prefect-api-key-AbCdEf because no identity-based policy allows the secretsmanager:GetSecretValue action status code: 400".into()),
        containers: vec![ContainerStop {
            name: "prefect-worker".into(),
            exit_code: None,
            reason: None,
        }],
    }
}

#[test]
fn running_equal_to_desired_with_a_completed_rollout_is_healthy() {
    let events = [
        (NOW - 200, "(service ecsctl-p-worker) has reached a steady state."),
        (NOW - 210, "(service ecsctl-p-worker) (deployment ecs-svc/4761939412542153432) deployment completed."),
        (NOW - 400, "(service ecsctl-p-worker) has started 1 tasks: (task 5b0d8e8f1e2a4c0f9d3f2b1a0c9e8d7f)."),
    ];
    let r = report(facts(
        all_present(),
        Some(service(1, 0, "COMPLETED", &events)),
        vec![],
    ));
    assert_eq!(r.verdict, Health::Healthy, "{:?}", r.reasons);
    assert!(r.reasons.is_empty());
    assert_eq!(
        r.summary,
        "pool 'p' is healthy: 1 of 1 worker tasks running"
    );
    assert!(r
        .resources
        .iter()
        .all(|res| res.state == ResourceState::Present));
    let text = render_text(&r);
    assert!(text.contains("Verdict: HEALTHY"), "{text}");
    assert!(
        text.contains("desired 1, running 1, pending 0; rollout COMPLETED"),
        "{text}"
    );
    assert!(text.contains("Worker 'ECSWorker 7c0e' started!"), "{text}");
}

#[test]
fn zero_of_one_running_without_a_cause_is_unhealthy_and_says_to_wait() {
    let mut f = facts(
        all_present(),
        Some(service(0, 1, "IN_PROGRESS", &[])),
        vec![],
    );
    f.logs = Ok(logs_with_lines(&[]));
    let r = report(f);
    assert_eq!(r.verdict, Health::Unhealthy);
    assert_eq!(
        codes(&r),
        ["service-not-running"],
        "no rollout noise on top"
    );
    assert_eq!(
        r.reasons[0].message,
        "the service runs 0 of 1 worker tasks (1 pending)"
    );
    let fix = r.reasons[0].fix.as_deref().unwrap();
    assert!(fix.contains("no task has ever written a log line"), "{fix}");
    assert!(fix.contains("ecsctl status --pool p"), "{fix}");
    assert_eq!(
        r.summary,
        "pool 'p' is unhealthy: the service runs 0 of 1 worker tasks (1 pending)"
    );
    let text = render_text(&r);
    assert!(text.contains("no log streams"), "{text}");
}

#[test]
fn a_task_stopped_by_resource_initialization_error_names_the_secret_and_the_role() {
    let r = report(facts(
        all_present(),
        Some(service(0, 0, "IN_PROGRESS", &[])),
        vec![secret_denied_task()],
    ));
    assert_eq!(r.verdict, Health::Unhealthy);
    assert_eq!(codes(&r), ["service-not-running", "secret-unreadable"]);
    assert!(r.reasons[0]
        .fix
        .as_deref()
        .unwrap()
        .contains("reasons below"));
    let secret = &r.reasons[1];
    assert_eq!(
        secret.subject.as_deref(),
        Some("task 0a5e5f0c3b1d4a8e9f7c6b5a4d3e2f1a")
    );
    assert!(
        secret
            .message
            .starts_with("ECS cannot read the API key secret"),
        "{}",
        secret.message
    );
    assert!(secret
        .message
        .contains("ResourceInitializationError: unable to pull secrets"));
    assert!(secret.message.chars().count() < 400, "quotes are cut short");
    let fix = secret.fix.as_deref().unwrap();
    assert!(
        fix.contains("ecsctl-p-use1-execution") && fix.contains("secretsmanager:GetSecretValue"),
        "{fix}"
    );

    let text = render_text(&r);
    assert!(
        text.contains("2024-05-01 11:58:00Z task 0a5e5f0c3b1d4a8e9f7c6b5a4d3e2f1a: ResourceInitializationError: unable to pull secrets or registry auth"),
        "{text}"
    );
    assert!(text.contains("[TaskFailedToStart]"), "{text}");
    assert!(
        text.contains("container prefect-worker: did not start"),
        "{text}"
    );
    assert!(
        text.contains("fix: check the execution role ecsctl-p-use1-execution"),
        "{text}"
    );
}

#[test]
fn a_secret_fetch_timeout_points_at_the_network_instead() {
    let mut task = secret_denied_task();
    task.stopped_reason = Some("ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: service call has been retried 5 time(s): failed to fetch secret arn:aws:secretsmanager:us-east-1:123456789012:secret:ecsctl/p/prefect-api-key-AbCdEf from secrets manager: RequestCanceled: request context canceled caused by: context deadline exceeded. Please check your task network configuration. dial tcp 52.46.145.7:443: i/o timeout".into());
    let reason = stop_reason(&task, &Names::new(POOL, "us-east-1")).unwrap();
    assert_eq!(reason.code, "secret-unreadable");
    assert!(reason.fix.unwrap().contains("route to the internet"));
}

#[test]
fn an_unable_to_assume_role_event_is_a_reason_with_the_role_names() {
    let events = [
        (NOW - 60, "(service ecsctl-p-worker) failed to launch a task with (error ECS was unable to assume the role 'arn:aws:iam::123456789012:role/ecsctl/ecsctl-p-use1-execution' that was provided for this task. Please verify that the role being passed has the proper trust relationship and permissions and that your IAM user has permissions to pass this role.)."),
        (NOW - 3600, "(service ecsctl-p-worker) has reached a steady state."),
        (NOW - 7200, "(service ecsctl-p-worker) was unable to place a task. Reason: Capacity is unavailable at this time. Please try again later or in a different availability zone."),
    ];
    let r = report(facts(
        all_present(),
        Some(service(0, 0, "IN_PROGRESS", &events)),
        vec![],
    ));
    assert_eq!(r.verdict, Health::Unhealthy);
    // The capacity event predates the last steady state: history, not a reason.
    assert_eq!(codes(&r), ["service-not-running", "role-not-assumable"]);
    let role = &r.reasons[1];
    assert!(
        role.message.contains("ECS was unable to assume the role"),
        "{}",
        role.message
    );
    let fix = role.fix.as_deref().unwrap();
    assert!(
        fix.contains("ecsctl-p-use1-execution") && fix.contains("ecsctl-p-use1-worker"),
        "{fix}"
    );
    assert!(fix.contains("ecs-tasks.amazonaws.com"), "{fix}");

    let text = render_text(&r);
    assert!(
        text.contains("Last service events (newest first):"),
        "{text}"
    );
    assert!(
        text.contains("2024-05-01 11:59:00Z (service ecsctl-p-worker) failed to launch a task with (error ECS was unable to assume the role"),
        "{text}"
    );
    assert!(
        text.contains("Capacity is unavailable at this time"),
        "all events are shown: {text}"
    );
}

#[test]
fn capacity_and_image_problems_are_recognised() {
    let names = Names::new(POOL, "us-east-1");
    let capacity = classify("(service ecsctl-p-worker) was unable to place a task. Reason: Capacity is unavailable at this time. Please try again later or in a different availability zone.", &names).unwrap();
    assert_eq!(capacity.code, "capacity-unavailable");
    let image = classify("CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref docker.io/prefecthq/prefect-aws:nope: docker.io/prefecthq/prefect-aws:nope: not found", &names).unwrap();
    assert_eq!(image.code, "image-pull-failed");
    assert!(classify(
        "(service ecsctl-p-worker) has started 1 tasks: (task 1).",
        &names
    )
    .is_none());
}

#[test]
fn a_crashing_worker_is_unhealthy_even_between_two_crashes() {
    let crashed = StoppedTask {
        id: "9f8e7d6c".into(),
        task_definition: TD1.into(),
        stopped_at: at(NOW - 90),
        stop_code: Some("EssentialContainerExited".into()),
        stopped_reason: Some("Essential container in task exited".into()),
        containers: vec![ContainerStop {
            name: "prefect-worker".into(),
            exit_code: Some(1),
            reason: None,
        }],
    };
    let steady = service(1, 0, "COMPLETED", &[]);
    let r = report(facts(
        all_present(),
        Some(steady.clone()),
        vec![crashed.clone()],
    ));
    assert_eq!(codes(&r), ["container-exited"]);
    assert!(
        r.reasons[0].message.contains("exited with exit code 1"),
        "{}",
        r.reasons[0].message
    );
    assert!(render_text(&r).contains("container prefect-worker: exit code 1"));

    // An hour-old crash of a service that is steady since then is history.
    let mut old = crashed;
    old.stopped_at = at(NOW - 3600);
    let r = report(facts(all_present(), Some(steady), vec![old]));
    assert_eq!(r.verdict, Health::Healthy, "{:?}", r.reasons);
}

#[test]
fn a_normal_replacement_is_not_a_reason() {
    let replaced = StoppedTask {
        id: "1".into(),
        stop_code: Some("ServiceSchedulerInitiated".into()),
        stopped_reason: Some("Scaling activity initiated by (deployment ecs-svc/123)".into()),
        containers: vec![ContainerStop {
            name: "prefect-worker".into(),
            exit_code: Some(0),
            reason: None,
        }],
        ..StoppedTask::default()
    };
    assert_eq!(stop_reason(&replaced, &Names::new(POOL, "us-east-1")), None);
}

#[test]
fn a_failed_rollout_and_a_rollout_in_progress_are_reasons() {
    let mut svc = service(1, 0, "IN_PROGRESS", &[]);
    let r = report(facts(all_present(), Some(svc.clone()), vec![]));
    assert_eq!(codes(&r), ["rollout-in-progress"]);

    svc.deployments[0].rollout_state = Some("FAILED".into());
    svc.deployments[0].rollout_state_reason =
        Some("ECS deployment circuit breaker: tasks failed to start.".into());
    let r = report(facts(all_present(), Some(svc), vec![]));
    assert_eq!(codes(&r), ["rollout-failed"]);
    assert!(r.reasons[0].message.contains("circuit breaker"));
    // The only deployment failed: there was nothing to roll back to.
    assert!(
        !r.reasons[0].message.contains("rolled back"),
        "{}",
        r.reasons[0].message
    );
    assert!(r.reasons[0].message.contains("stopped launching"));
}

#[test]
fn scaled_to_zero_is_unhealthy() {
    let mut svc = service(0, 0, "COMPLETED", &[]);
    svc.desired = 0;
    let mut f = facts(all_present(), Some(svc), vec![]);
    f.wanted_desired_count = Some(0);
    let r = report(f);
    assert_eq!(codes(&r), ["service-scaled-to-zero"]);
}

#[test]
fn nothing_found_and_no_ledger_is_not_bootstrapped() {
    let plans: Vec<StepPlan> = all_present()
        .into_iter()
        .map(|mut p| {
            for item in &mut p.items {
                item.state = ItemState::Missing;
            }
            p
        })
        .collect();
    let mut f = facts(plans, None, vec![]);
    f.created.clear();
    f.ledger.found = false;
    f.logs = Ok(LogInfo {
        group: "/ecsctl/p/worker".into(),
        ..LogInfo::default()
    });
    let r = report(f);
    assert_eq!(r.verdict, Health::NotBootstrapped);
    assert_eq!(codes(&r), ["not-bootstrapped"]);
    assert_eq!(
        r.reasons[0].fix.as_deref(),
        Some("run `ecsctl bootstrap --pool p` to create it")
    );
    assert!(r.summary.contains("is not bootstrapped"));
    let text = render_text(&r);
    assert!(text.contains("Verdict: NOT BOOTSTRAPPED"), "{text}");
    assert!(
        text.contains("the log group /ecsctl/p/worker does not exist"),
        "{text}"
    );
}

#[test]
fn a_resource_deleted_behind_ecsctls_back_is_named_missing() {
    let mut plans = all_present();
    plans[1].items[0].state = ItemState::Missing;
    let r = report(facts(plans, Some(service(1, 0, "COMPLETED", &[])), vec![]));
    assert_eq!(r.verdict, Health::Unhealthy);
    assert_eq!(codes(&r), ["missing"]);
    assert_eq!(r.reasons[0].subject.as_deref(), Some("/ecsctl/p/worker"));
    assert!(r.reasons[0]
        .message
        .contains("log group /ecsctl/p/worker is missing"));
    assert!(r.reasons[0].message.contains("deleted outside ecsctl"));
    assert!(r.reasons[0]
        .fix
        .as_deref()
        .unwrap()
        .contains("ecsctl bootstrap --pool p"));
    let lg = r.resources.iter().find(|x| x.step == "log-group").unwrap();
    assert_eq!(
        (lg.state, lg.id.as_deref(), lg.in_ledger),
        (ResourceState::Missing, None, true)
    );
}

#[test]
fn drift_from_the_looks_and_from_the_service_is_reported_in_plain_words() {
    let mut plans = all_present();
    plans[0].items[0].state =
        ItemState::drifted("arn:secret", "scheduled for deletion", Remedy::Restore);
    let mut svc = service(2, 0, "COMPLETED", &[]);
    svc.desired = 2;
    svc.deployments[0].desired = 2;
    svc.deployments[0].running = 2;
    let mut f = facts(plans, Some(svc), vec![]);
    f.latest_task_definition = Ok(Some(TD2.into()));
    let r = report(f);
    assert_eq!(codes(&r), ["drifted", "drifted"]);
    assert_eq!(r.reasons[0].message, "the secret ecsctl/p/prefect-api-key differs from the last bootstrap: scheduled for deletion");
    assert!(r.reasons[0].fix.as_deref().unwrap().contains("restore it"));
    let service = r.resources.iter().find(|x| x.step == "service").unwrap();
    assert_eq!(service.state, ResourceState::Drifted);
    assert_eq!(
        service.drift,
        [
            "runs task definition ecsctl-p-worker:1, not the latest revision ecsctl-p-worker:2",
            "desired count 2 (wanted 1)"
        ]
    );
    let text = render_text(&r);
    assert!(
        text.contains("Task definition: ecsctl-p-worker:1 (latest: ecsctl-p-worker:2)"),
        "{text}"
    );
}

#[test]
fn a_service_that_cannot_be_read_is_not_healthy_and_other_failed_reads_are_warnings() {
    let mut f = facts(all_present(), None, vec![]);
    f.service = Err("describing ECS service ecsctl-p-worker failed: AccessDeniedException".into());
    f.logs = Err("reading log group /ecsctl/p/worker failed: AccessDeniedException".into());
    let r = report(f);
    assert_eq!(codes(&r), ["service-unreadable"]);
    assert_eq!(r.warnings.len(), 1);
    assert!(r.logs.is_none());
    assert!(render_text(&r).contains("could not be read"));
}

#[test]
fn the_json_shape_is_stable() {
    let r = report(facts(
        all_present(),
        Some(service(
            0,
            0,
            "IN_PROGRESS",
            &[(
                NOW - 60,
                "(service ecsctl-p-worker) has started 1 tasks: (task 1).",
            )],
        )),
        vec![secret_denied_task()],
    ));
    let json = serde_json::to_value(&r).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "account",
            "checked_at",
            "ledger",
            "logs",
            "observer",
            "pool",
            "prefect",
            "reasons",
            "region",
            "resources",
            "service",
            "stopped_tasks",
            "summary",
            "verdict",
            "warnings"
        ]
    );
    assert_eq!(json["verdict"], "unhealthy");
    assert_eq!(json["checked_at"], "2024-05-01T12:00:00Z");
    assert_eq!(json["reasons"][1]["code"], "secret-unreadable");
    assert_eq!(json["resources"][0]["kind"], "secret");
    assert_eq!(json["resources"][0]["state"], "present");
    assert_eq!(json["resources"][1]["kind"], "log-group");
    assert_eq!(json["service"]["running"], 0);
    assert_eq!(
        json["service"]["deployments"][0]["rollout_state"],
        "IN_PROGRESS"
    );
    assert_eq!(json["service"]["events"][0]["at"], "2024-05-01T11:59:00Z");
    assert_eq!(json["stopped_tasks"][0]["stop_code"], "TaskFailedToStart");
    assert_eq!(
        json["stopped_tasks"][0]["containers"][0]["exit_code"],
        serde_json::Value::Null
    );
    assert_eq!(
        json["logs"]["lines"][1]["message"],
        "Worker 'ECSWorker 7c0e' started!"
    );
    assert_eq!(json["ledger"]["found"], true);
    let prefect = &json["prefect"];
    let mut keys: Vec<&str> = prefect
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["api_url", "error", "pool", "workers"]);
    assert_eq!(prefect["api_url"], API_URL);
    assert_eq!(prefect["error"], serde_json::Value::Null);
    assert_eq!(
        prefect["pool"],
        serde_json::json!({ "name": "p", "type": "ecs", "paused": false })
    );
    assert_eq!(
        prefect["workers"],
        serde_json::json!([{
            "name": WORKER,
            "status": "ONLINE",
            "last_heartbeat": "2024-05-01T11:59:40Z",
            "ecsctl": true,
            "recent": true
        }])
    );
    let work_pool = json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["step"] == "work-pool")
        .unwrap();
    assert_eq!(work_pool["kind"], "work-pool");
}

#[test]
fn the_json_says_why_prefect_could_not_be_asked_and_guesses_nothing() {
    let r = report(with_prefect(PrefectFacts {
        api_url: None,
        read: Err(PrefectTrouble::NoUrl),
    }));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["prefect"]["api_url"], serde_json::Value::Null);
    assert_eq!(
        json["prefect"]["error"],
        "no Prefect API URL is known (no ledger with the last bootstrap's, and PREFECT_API_URL is not set)"
    );
    assert_eq!(json["prefect"]["pool"], serde_json::Value::Null);
    assert_eq!(json["prefect"]["workers"], serde_json::json!([]));
    assert_eq!(json["verdict"], "unhealthy");
    assert_eq!(json["reasons"][0]["code"], "prefect-unreachable");
}

#[test]
fn an_online_ecsctl_worker_with_a_recent_heartbeat_is_healthy() {
    let r = report(with_prefect(healthy_prefect()));
    assert_eq!(r.verdict, Health::Healthy, "{:?}", r.reasons);
    assert!(r.reasons.is_empty());
    assert_eq!(r.prefect.error, None);
    let w = &r.prefect.workers[0];
    assert_eq!((w.name.as_str(), w.ecsctl, w.recent), (WORKER, true, true));
    let text = render_text(&r);
    assert!(text.contains(&format!("Prefect ({API_URL}):")), "{text}");
    assert!(text.contains("  Work pool p: type ecs\n"), "{text}");
    assert!(
        text.contains(&format!(
            "  Worker {WORKER}: ONLINE, last heartbeat 2024-05-01 11:59:40Z (ecsctl's)"
        )),
        "{text}"
    );
}

#[test]
fn another_worker_online_on_the_pool_does_not_make_it_healthy() {
    let r = report(with_prefect(prefect_answered(
        Some(ecs_pool()),
        vec![
            worker("laptop-alice", "ONLINE", 5),
            worker("ecsctl-p-0a5e5f0c3b1d4a8e9f7c6b5a4d3e2f1a", "OFFLINE", 3600),
        ],
    )));
    assert_eq!(r.verdict, Health::Unhealthy);
    assert_eq!(codes(&r), ["worker-offline"]);
    let offline = &r.reasons[0];
    assert_eq!(offline.subject.as_deref(), Some("p"));
    assert!(
        offline
            .message
            .starts_with("no ecsctl worker is online in Prefect work pool 'p'"),
        "{}",
        offline.message
    );
    assert!(
        offline
            .message
            .contains("online but not ecsctl's (they do not make the pool healthy): laptop-alice"),
        "{}",
        offline.message
    );
    assert!(
        offline.fix.as_deref().unwrap().contains("PREFECT_API_URL"),
        "{:?}",
        offline.fix
    );
    assert!(r.summary.contains("laptop-alice"), "{}", r.summary);
    let laptop = &r.prefect.workers[0];
    assert_eq!((laptop.ecsctl, laptop.recent), (false, true));
    let text = render_text(&r);
    assert!(
        text.contains(
            "Worker laptop-alice: ONLINE, last heartbeat 2024-05-01 11:59:55Z (not ecsctl's)"
        ),
        "{text}"
    );
    assert!(
        text.contains("Worker ecsctl-p-0a5e5f0c3b1d4a8e9f7c6b5a4d3e2f1a: OFFLINE, last heartbeat 2024-05-01 11:00:00Z (ecsctl's, no recent heartbeat)"),
        "{text}"
    );
}

#[test]
fn a_stale_heartbeat_is_offline_though_prefect_says_online() {
    // 3 × 30 s + 15 s = 105 s: one second more is stale.
    let r = report(with_prefect(prefect_answered(
        Some(ecs_pool()),
        vec![worker(WORKER, "ONLINE", 106)],
    )));
    assert_eq!(r.verdict, Health::Unhealthy);
    assert_eq!(codes(&r), ["worker-offline"]);
    assert!(
        r.reasons[0].message.contains(&format!(
            "Prefect still says ONLINE but no recent heartbeat came from {WORKER} (last heartbeat 106 s before the check)"
        )),
        "{}",
        r.reasons[0].message
    );
    assert!(!r.prefect.workers[0].recent);

    let r = report(with_prefect(prefect_answered(
        Some(ecs_pool()),
        vec![worker(WORKER, "ONLINE", 105)],
    )));
    assert_eq!(r.verdict, Health::Healthy, "{:?}", r.reasons);
}

#[test]
fn recent_means_three_intervals_and_fifteen_seconds() {
    let now = at(NOW).unwrap();
    assert!(is_recent(at(NOW - 105), None, now), "30 s by default");
    assert!(!is_recent(at(NOW - 106), None, now));
    assert!(is_recent(at(NOW - 195), Some(60), now));
    assert!(!is_recent(at(NOW - 196), Some(60), now));
    assert!(!is_recent(None, Some(30), now), "never a heartbeat");
    assert!(
        is_recent(at(NOW + 5), Some(30), now),
        "a clock a little ahead"
    );
}

#[test]
fn ecsctls_workers_are_named_by_the_pool_and_their_task_id() {
    let prefix = Names::new(POOL, "us-east-1").worker_name_prefix;
    assert!(is_ecsctl_worker(WORKER, &prefix));
    assert!(!is_ecsctl_worker("ecsctl-p-", &prefix));
    assert!(!is_ecsctl_worker("ECSWorker 7c0e", &prefix));
    assert!(!is_ecsctl_worker("ecsctl-q-5b0d8e8f", &prefix));
}

#[test]
fn a_paused_pool_is_unhealthy_and_the_fix_resumes_it() {
    let mut pool = ecs_pool();
    pool.is_paused = true;
    let r = report(with_prefect(prefect_answered(
        Some(pool),
        vec![worker(WORKER, "ONLINE", 20)],
    )));
    assert_eq!(r.verdict, Health::Unhealthy);
    assert_eq!(codes(&r), ["work-pool-paused"]);
    assert_eq!(
        r.reasons[0].message,
        "the Prefect work pool 'p' is paused: no worker takes flow runs from it"
    );
    assert_eq!(
        r.reasons[0].fix.as_deref(),
        Some("`prefect work-pool resume p`")
    );
    assert_eq!(r.prefect.pool.as_ref().map(|p| p.paused), Some(true));
    assert!(render_text(&r).contains("  Work pool p: type ecs, paused"));
}

#[test]
fn prefect_unreachable_is_not_healthy_and_the_fix_names_what_to_set() {
    let mut f = with_prefect(PrefectFacts {
        api_url: Some(API_URL.into()),
        read: Err(PrefectTrouble::Unreachable(format!(
            "reading Prefect work pool p failed: error sending request for url ({API_URL}/work_pools/p): dns error"
        ))),
    });
    // The work-pool step's look failed: it has no plan.
    f.plans.retain(|p| p.step != "work-pool");
    let r = report(f);
    assert_eq!(r.verdict, Health::Unhealthy);
    assert_eq!(codes(&r), ["prefect-unreachable"]);
    let reason = &r.reasons[0];
    assert_eq!(reason.subject.as_deref(), Some(API_URL));
    assert!(
        reason.message.starts_with(&format!(
            "Prefect at {API_URL} could not be reached, so whether the worker is online is unknown: reading Prefect work pool p failed"
        )),
        "{}",
        reason.message
    );
    let fix = reason.fix.as_deref().unwrap();
    for needed in [
        "PREFECT_API_URL",
        "PREFECT_API_KEY",
        "PREFECT_API_AUTH_STRING",
        "ecsctl/p/prefect-api-key",
    ] {
        assert!(fix.contains(needed), "{needed} in {fix}");
    }
    assert!(r.prefect.error.as_deref().unwrap().contains("dns error"));
    assert_eq!(
        (r.prefect.pool.as_ref(), r.prefect.workers.len()),
        (None, 0)
    );
    assert!(r.resources.iter().all(|res| res.step != "work-pool"));
    let text = render_text(&r);
    assert!(
        text.contains(&format!(
            "Prefect ({API_URL}): could not be asked: reading Prefect work pool p failed"
        )),
        "{text}"
    );

    let r = report(with_prefect(PrefectFacts {
        api_url: Some(API_URL.into()),
        read: Err(PrefectTrouble::Denied(
            "reading Prefect work pool p failed: HTTP 401: Invalid authentication credentials"
                .into(),
        )),
    }));
    assert_eq!(codes(&r), ["prefect-unreachable"]);
    assert!(
        r.reasons[0].message.contains("refused the credentials"),
        "{}",
        r.reasons[0].message
    );
    assert!(r.reasons[0]
        .fix
        .as_deref()
        .unwrap()
        .contains("PREFECT_API_KEY"));

    let r = report(with_prefect(PrefectFacts {
        api_url: None,
        read: Err(PrefectTrouble::NoUrl),
    }));
    assert_eq!(codes(&r), ["prefect-unreachable"]);
    assert_eq!(r.reasons[0].subject, None);
    assert!(r.reasons[0]
        .message
        .contains("no Prefect API URL is known for pool 'p'"));
    assert!(r.reasons[0]
        .fix
        .as_deref()
        .unwrap()
        .starts_with("set PREFECT_API_URL"));
    assert!(render_text(&r).contains("Prefect: could not be asked: no Prefect API URL is known"));
}

#[test]
fn a_pool_missing_in_prefect_is_its_own_reason() {
    let mut f = with_prefect(prefect_answered(None, Vec::new()));
    pool_looked(&mut f.plans, ItemState::Missing);
    let r = report(f);
    assert_eq!(r.verdict, Health::Unhealthy);
    // One reason, worded for Prefect: not also a generic `missing`, nor `worker-offline`.
    assert_eq!(codes(&r), ["work-pool-missing"]);
    assert!(
        r.reasons[0].message.starts_with(&format!(
            "the Prefect work pool 'p' does not exist at {API_URL} (ecsctl created it, the ledger says so, but it was deleted in Prefect)"
        )),
        "{}",
        r.reasons[0].message
    );
    assert_eq!(
        r.reasons[0].fix.as_deref(),
        Some("run `ecsctl bootstrap --pool p` to create it")
    );
    let pool = r.resources.iter().find(|x| x.step == "work-pool").unwrap();
    assert_eq!(pool.state, ResourceState::Missing);
    assert!(render_text(&r).contains("  Work pool p: does not exist\n"));
}

#[test]
fn a_pool_of_another_type_can_never_be_changed() {
    let mut pool = ecs_pool();
    pool.kind = "process".into();
    let mut f = with_prefect(prefect_answered(
        Some(pool),
        vec![worker(WORKER, "ONLINE", 20)],
    ));
    pool_looked(
        &mut f.plans,
        ItemState::Foreign {
            id: "p (type process)".into(),
        },
    );
    let r = report(f);
    assert_eq!(
        codes(&r),
        ["work-pool-wrong-type"],
        "not a generic `foreign`"
    );
    let reason = &r.reasons[0];
    assert!(
        reason.message.contains("has type 'process'"),
        "{}",
        reason.message
    );
    assert!(
        reason.message.contains("can never be changed"),
        "{}",
        reason.message
    );
    assert!(reason
        .fix
        .as_deref()
        .unwrap()
        .contains("`prefect work-pool delete p`"));
    assert_eq!(json_of(&r)["prefect"]["pool"]["type"], "process");
}

fn json_of(r: &Report) -> serde_json::Value {
    serde_json::to_value(r).unwrap()
}

#[test]
fn pool_defaults_changed_in_prefect_are_drift_that_bootstrap_puts_back() {
    let mut f = with_prefect(healthy_prefect());
    pool_looked(
        &mut f.plans,
        ItemState::drifted(
            "p",
            "defaults not pointing at this stack: network_configuration",
            Remedy::Update(Some("will be set; the rest of the template stays")),
        ),
    );
    let r = report(f);
    assert_eq!(codes(&r), ["drifted"]);
    let reason = &r.reasons[0];
    assert_eq!(reason.subject.as_deref(), Some("p"));
    assert!(
        reason
            .message
            .contains("the Prefect work pool 'p' differs from the last bootstrap")
            && reason
                .message
                .contains("defaults not pointing at this stack: network_configuration"),
        "{}",
        reason.message
    );
    assert!(reason
        .fix
        .as_deref()
        .unwrap()
        .starts_with("run `ecsctl bootstrap --pool p` to put ecsctl's defaults back"));
}

#[test]
fn prefect_reasons_come_after_aws_ones_and_an_offline_worker_is_still_said() {
    let mut plans = all_present();
    plans[1].items[0].state = ItemState::Missing;
    let mut f = facts(plans, Some(service(0, 1, "IN_PROGRESS", &[])), vec![]);
    let mut pool = ecs_pool();
    pool.is_paused = true;
    f.prefect = prefect_answered(Some(pool), Vec::new());
    let r = report(f);
    assert_eq!(
        codes(&r),
        [
            "missing",
            "service-not-running",
            "work-pool-paused",
            "worker-offline"
        ]
    );
    assert!(r.reasons[3]
        .fix
        .as_deref()
        .unwrap()
        .starts_with("fix the reasons above first"));
    assert!(render_text(&r).contains("  Workers: none"));
}

/// Everything healthy but the observer chain as given.
fn with_observer(chain: ChainHealth, log_lines: &[&str]) -> Report {
    let mut f = facts(all_present(), Some(service(1, 0, "COMPLETED", &[])), vec![]);
    f.observer = Ok(chain);
    if !log_lines.is_empty() {
        f.logs = Ok(logs_with_lines(log_lines));
    }
    report(f)
}

#[test]
fn each_broken_link_of_the_observer_chain_is_its_own_reason() {
    let broken = ChainHealth {
        problems: vec![
            ChainProblem::RuleDisabled("DISABLED".into()),
            ChainProblem::RuleNotTargetingQueue(Vec::new()),
            ChainProblem::QueuePolicyChanged,
        ],
        dead_letters: Some(2),
        waiting: Some(0),
    };
    let r = with_observer(broken, &[]);
    assert_eq!(r.verdict, Health::Unhealthy);
    assert_eq!(
        codes(&r),
        [
            "observer-rule-disabled",
            "observer-rule-target",
            "observer-queue-policy",
            "observer-dead-letters"
        ]
    );
    assert!(
        r.reasons[1].message.contains("sends to nothing"),
        "{}",
        r.reasons[1].message
    );
    assert!(
        r.reasons[3].message.starts_with("2 task state change(s)"),
        "{}",
        r.reasons[3].message
    );
    assert_eq!(json_of(&r)["observer"]["dead_letters"], 2);
}

#[test]
fn an_observer_crash_in_the_worker_log_is_a_reason_with_its_words() {
    let r = with_observer(
        ChainHealth {
            problems: Vec::new(),
            dead_letters: Some(0),
            waiting: Some(3),
        },
        &[
            "Worker 'ECSWorker 7c0e' started!",
            "12:00:05.000 | ERROR | prefect_aws.observers.ecs - ECS observer task crashed",
        ],
    );
    assert_eq!(codes(&r), ["observer-crashed"]);
    assert!(r.reasons[0].message.contains("ECS observer task crashed"));
    assert!(r.reasons[0]
        .fix
        .as_deref()
        .unwrap()
        .contains("ecsctl-p-use1-worker"));
}

#[test]
fn a_chain_that_cannot_be_read_is_not_healthy() {
    let mut f = facts(all_present(), Some(service(1, 0, "COMPLETED", &[])), vec![]);
    f.observer = Err("reading SQS queue failed: AccessDenied".into());
    let r = report(f);
    assert_eq!(codes(&r), ["observer-unreadable"]);
    assert_eq!(
        json_of(&r)["observer"]["error"],
        "reading SQS queue failed: AccessDenied"
    );
}
