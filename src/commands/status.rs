//! `ecsctl status`: is the pool's worker healthy, and if not, why. This file only reads: every
//! step's look (through the engine) and, at the same time, the service's counts, deployments and
//! events, its recently stopped tasks, the newest task definition revision and the worker's last
//! log lines. It converts the answers into the plain facts of [`crate::health`], which judges
//! them and renders the report. It takes no lock and never needs the API key.

use anyhow::Result;
use aws_sdk_cloudwatchlogs::types::OrderBy;
use aws_sdk_ecs::types::{SortOrder, TaskDefinitionStatus};
use time::OffsetDateTime;

use super::{print_result, require_pool, step_failures, Common, Session};
use crate::aws::ecs::{ServiceInfo, TaskDefinitionName};
use crate::aws::AwsResultExt;
use crate::cli::StatusArgs;
use crate::engine;
use crate::error::CliError;
use crate::health::{self, Facts, Health, LedgerInfo};
use crate::steps::{self, Context, Run};

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
    let cx = session.context(
        &pool,
        spec.clone(),
        Run::Status,
        false,
        common.progress.clone(),
    );

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
async fn read_service(cx: &Context) -> Result<Option<ServiceInfo>> {
    // The service step's look asks the same question at the same time; one call answers both.
    let service = steps::service::described_at_look(cx).await?;
    Ok(service
        .filter(|s| s.status() != Some("INACTIVE"))
        .as_ref()
        .map(|s| ServiceInfo::from_sdk(s, EVENTS_SHOWN)))
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
        .filter(|arn| TaskDefinitionName::parse(arn).family == family)
        .max_by_key(|arn| TaskDefinitionName::parse(arn).revision)
        .cloned())
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
