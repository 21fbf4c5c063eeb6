//! `ecsctl status`: is the pool's worker healthy, and if not, why. This file only reads: every
//! step's look (through the engine) and, at the same time, the service's counts, deployments and
//! events, its recently stopped tasks, the newest task definition revision and the worker's last
//! log lines. It converts the answers into the plain facts of [`crate::health`], which judges
//! them and renders the report. It takes no lock and never needs the API key.

use anyhow::Result;
use aws_sdk_cloudwatchlogs::types::OrderBy;
use aws_sdk_ecs::types::{SortOrder, TaskDefinitionStatus};
use time::OffsetDateTime;

use super::{print_result, require_pool, step_failures, CliError, Common, Session};
use crate::aws::{time_of, AwsResultExt};
use crate::cli::StatusArgs;
use crate::engine;
use crate::health::{self, Facts, Health, LedgerInfo};
use crate::steps::{self, Context};

/// How many service events the report keeps (ECS returns up to 100, newest first).
const EVENTS_SHOWN: usize = 10;

pub async fn run(args: StatusArgs, common: Common) -> Result<(), CliError> {
    let pool = require_pool(args.pool.pool, false)?;
    let session = Session::open(&common, &pool, None, false).await?;
    if session.ledger.is_none() {
        common.progress.message(&format!(
            "no ledger for pool '{pool}' at {}; finding its resources by their ecsctl:pool tag and the {} IAM path",
            session.paths.file.display(),
            steps::IAM_PATH
        ));
    }
    let spec = session.ledger.as_ref().and_then(|l| l.spec.clone());
    let cx = session.context(&pool, spec.clone(), None, false, common.progress.clone());

    // None of these reads depends on another: all at once.
    let all = steps::all();
    let (plans, service, latest, stopped, logs) = tokio::join!(
        engine::look_all(&all, &cx),
        read_service(&cx),
        read_latest_task_definition(&cx),
        steps::service::recently_stopped_tasks(&cx),
        read_logs(&cx, args.log_lines),
    );
    let plans = plans.map_err(|f| step_failures("reading the pool's resources", &f))?;

    let ledger = session.ledger.as_ref();
    let facts = Facts {
        pool: pool.clone(),
        account: cx.identity.account.clone(),
        region: cx.identity.region.clone(),
        checked_at: OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| OffsetDateTime::now_utc()),
        ledger: LedgerInfo {
            path: session.paths.file.display().to_string(),
            found: ledger.is_some(),
            has_inputs: spec.is_some(),
        },
        created: ledger
            .map(|l| l.created.iter().map(|r| (r.step.clone(), r.kind)).collect())
            .unwrap_or_default(),
        used: ledger
            .map(|l| l.used.iter().map(|r| (r.kind, r.id.clone())).collect())
            .unwrap_or_default(),
        wanted_desired_count: spec.as_ref().map(|s| s.desired_count),
        plans,
        service: service.map_err(|e| format!("{e:#}")),
        latest_task_definition: latest.map_err(|e| format!("{e:#}")),
        stopped_tasks: stopped.map_err(|e| format!("{e:#}")),
        logs: logs.map_err(|e| format!("{e:#}")),
    };
    let report = health::report(facts);
    let json = serde_json::to_value(&report).map_err(|e| CliError::Failed(e.into()))?;
    print_result(common.output, &health::render_text(&report), &json);
    match report.verdict {
        Health::Healthy => Ok(()),
        Health::Unhealthy | Health::NotBootstrapped => Err(CliError::Unhealthy(report.summary)),
    }
}

/// The service as ECS describes it; `None` when it, or its cluster, does not exist or it was
/// deleted (ECS keeps deleted services around as INACTIVE for a while).
async fn read_service(cx: &Context) -> Result<Option<health::ServiceInfo>> {
    // The service step's look asks the same question at the same time; one call answers both.
    let service = steps::service::described_at_look(cx).await?;
    Ok(service
        .filter(|s| s.status() != Some("INACTIVE"))
        .as_ref()
        .map(service_info))
}

fn service_info(s: &aws_sdk_ecs::types::Service) -> health::ServiceInfo {
    let deployments: Vec<health::Deployment> = s
        .deployments()
        .iter()
        .map(|d| health::Deployment {
            id: d.id().unwrap_or_default().to_string(),
            status: d.status().unwrap_or_default().to_string(),
            task_definition: d.task_definition().unwrap_or_default().to_string(),
            desired: d.desired_count(),
            running: d.running_count(),
            pending: d.pending_count(),
            failed_tasks: d.failed_tasks(),
            rollout_state: d.rollout_state().map(|r| r.as_str().to_string()),
            rollout_state_reason: d.rollout_state_reason().map(str::to_string),
            created_at: time_of(d.created_at()),
            updated_at: time_of(d.updated_at()),
        })
        .collect();
    health::ServiceInfo {
        name: s.service_name().unwrap_or_default().to_string(),
        arn: s.service_arn().unwrap_or_default().to_string(),
        status: s.status().unwrap_or_default().to_string(),
        desired: s.desired_count(),
        running: s.running_count(),
        pending: s.pending_count(),
        task_definition: s.task_definition().unwrap_or_default().to_string(),
        latest_task_definition: None,
        rollout: deployments
            .iter()
            .find(|d| d.status == "PRIMARY")
            .and_then(|d| d.rollout_state.clone()),
        deployments,
        events: s
            .events()
            .iter()
            .take(EVENTS_SHOWN)
            .map(|e| health::Event {
                at: time_of(e.created_at()),
                message: e.message().unwrap_or_default().to_string(),
            })
            .collect(),
    }
}

/// The newest ACTIVE revision of the worker's family. Sorted newest first, but the revision is
/// compared too, since not every ECS implementation sorts.
async fn read_latest_task_definition(cx: &Context) -> Result<Option<String>> {
    let family = &cx.names.task_family;
    let listed = cx
        .aws
        .ecs
        .list_task_definitions()
        .family_prefix(family)
        .status(TaskDefinitionStatus::Active)
        .sort(SortOrder::Desc)
        .send()
        .await
        .aws(format!("listing the revisions of task definition {family}"))?;
    Ok(listed
        .task_definition_arns()
        .iter()
        .filter(|arn| {
            arn.rsplit('/')
                .next()
                .and_then(|s| s.rsplit_once(':'))
                .map(|(f, _)| f)
                == Some(family.as_str())
        })
        .max_by_key(|arn| revision(arn))
        .cloned())
}

fn revision(arn: &str) -> u64 {
    arn.rsplit(':')
        .next()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Whether the log group exists and has streams, and the last `lines` lines of the stream with
/// the latest event (each task writes its own stream).
async fn read_logs(cx: &Context, lines: u32) -> Result<health::LogInfo> {
    let group = &cx.names.log_group;
    let mut info = health::LogInfo {
        group: group.clone(),
        ..health::LogInfo::default()
    };
    let streams = cx
        .aws
        .logs
        .describe_log_streams()
        .log_group_name(group)
        .order_by(OrderBy::LastEventTime)
        .descending(true)
        .limit(1)
        .send()
        .await
        .found(
            &["ResourceNotFoundException"],
            format!("listing the log streams of log group {group}"),
        )?;
    let Some(streams) = streams else {
        return Ok(info);
    };
    info.exists = true;
    let Some(stream) = streams.log_streams().first() else {
        return Ok(info);
    };
    info.has_streams = true;
    let name = stream.log_stream_name().unwrap_or_default().to_string();
    info.last_event_at = stream.last_event_timestamp().and_then(time_of_millis);
    if lines > 0 && !name.is_empty() {
        let events = cx
            .aws
            .logs
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(&name)
            .limit(i32::try_from(lines).unwrap_or(i32::MAX))
            .start_from_head(false)
            .send()
            .await
            .aws(format!("reading log stream {name} of log group {group}"))?;
        info.lines = events
            .events()
            .iter()
            .map(|e| health::LogLine {
                at: e.timestamp().and_then(time_of_millis),
                message: e.message().unwrap_or_default().to_string(),
            })
            .collect();
    }
    info.stream = Some(name);
    Ok(info)
}

fn time_of_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{
        Container, Deployment, DeploymentRolloutState, Service, ServiceEvent, Task, TaskStopCode,
    };
    use aws_smithy_types::DateTime;

    #[test]
    fn a_described_service_becomes_plain_facts() {
        let service = Service::builder()
            .service_name("ecsctl-p-worker")
            .service_arn("arn:aws:ecs:us-east-1:123456789012:service/ecsctl-p/ecsctl-p-worker")
            .status("ACTIVE")
            .desired_count(1)
            .running_count(0)
            .pending_count(1)
            .task_definition("arn:aws:ecs:us-east-1:123456789012:task-definition/ecsctl-p-worker:3")
            .deployments(
                Deployment::builder()
                    .id("ecs-svc/1")
                    .status("PRIMARY")
                    .desired_count(1)
                    .pending_count(1)
                    .rollout_state(DeploymentRolloutState::InProgress)
                    .created_at(DateTime::from_secs(1_714_564_800))
                    .build(),
            )
            .set_events(Some(
                (0..20)
                    .map(|i| {
                        ServiceEvent::builder()
                            .message(format!("event {i}"))
                            .created_at(DateTime::from_secs(1_714_564_800 - i))
                            .build()
                    })
                    .collect(),
            ))
            .build();
        let info = service_info(&service);
        assert_eq!((info.desired, info.running, info.pending), (1, 0, 1));
        assert_eq!(info.rollout.as_deref(), Some("IN_PROGRESS"));
        assert_eq!(
            info.deployments[0].created_at,
            OffsetDateTime::from_unix_timestamp(1_714_564_800).ok()
        );
        assert_eq!(info.events.len(), EVENTS_SHOWN);
        assert_eq!(info.events[0].message, "event 0");
    }

    #[test]
    fn a_described_stopped_task_becomes_plain_facts() {
        let task = Task::builder()
            .task_arn("arn:aws:ecs:us-east-1:123456789012:task/ecsctl-p/0a5e5f0c")
            .stop_code(TaskStopCode::EssentialContainerExited)
            .stopped_reason("Essential container in task exited")
            .stopped_at(DateTime::from_secs(1_714_564_800))
            .containers(
                Container::builder()
                    .name("prefect-worker")
                    .exit_code(1)
                    .reason("")
                    .build(),
            )
            .build();
        let t = steps::service::stopped_task(&task);
        assert_eq!(t.id, "0a5e5f0c");
        assert_eq!(t.stop_code.as_deref(), Some("EssentialContainerExited"));
        assert_eq!(t.containers[0].exit_code, Some(1));
        assert_eq!(t.containers[0].reason, None, "empty reasons are no reasons");
    }

    #[test]
    fn revisions_compare_as_numbers() {
        assert!(
            revision("arn:aws:ecs:r:1:task-definition/f:10")
                > revision("arn:aws:ecs:r:1:task-definition/f:9")
        );
    }
}
