//! `ecsctl status`: is the pool's worker healthy, and if not, why. This file only reads: every
//! step's look (through the engine) and, at the same time, the service's counts, deployments and
//! events, its recently stopped tasks, the newest task definition revision, the worker's last
//! log lines, and the work pool and its workers in Prefect. It converts the answers into the
//! plain facts of [`crate::health`], which judges them and renders the report. It takes no lock.
//! Prefect is asked with PREFECT_API_KEY / PREFECT_API_AUTH_STRING when set, else with the
//! worker's own credentials from the pool's secrets; when Prefect cannot be asked, that is a
//! reason, not a failure of status.

use anyhow::Result;
use aws_sdk_cloudwatchlogs::types::{LogStream, OrderBy};
use aws_sdk_ecs::types::{SortOrder, TaskDefinitionStatus};
use time::OffsetDateTime;

use super::{
    prefect_auth_from_env, prefect_from_env, require_pool, step_failures, Common, Session,
};
use crate::aws::ecs::{ServiceInfo, StoppedTask, TaskDefinitionName};
use crate::aws::AwsResultExt;
use crate::cli::StatusArgs;
use crate::engine;
use crate::error::CliError;
use crate::health::{self, Facts, Health, LedgerInfo, PrefectFacts, PrefectRead, PrefectTrouble};
use crate::prefect::PrefectError;
use crate::steps::{self, Context, Run, Step, StepPlan, WORKER_LOG_STREAM_PREFIX};

/// How many service events the report keeps (ECS returns up to 100, newest first).
const EVENTS_SHOWN: usize = 10;
/// The step whose look asks Prefect: its failure is a reason in the report, not an error.
const WORK_POOL_STEP: &str = "work-pool";

pub async fn run(args: StatusArgs, common: Common) -> Result<(), CliError> {
    let pool = require_pool(args.pool.pool, false)?;
    let auth = prefect_auth_from_env()?;
    common.journal.phase("connect");
    let session = Session::open(&common, &pool, None, false).await?;
    session.note_if_no_ledger(&common, &pool);
    let spec = session.ledger.as_ref().and_then(|l| l.spec.clone());
    let mut cx = session.context(
        &pool,
        spec.clone(),
        Run::Status,
        false,
        common.progress.clone(),
    );
    cx.prefect = prefect_from_env(spec.as_ref(), auth);
    common.journal.attach(&pool, &cx.ledger);
    common.journal.phase("look");

    // None of these reads depends on another: all at once. The work pool's look asks Prefect,
    // which may not answer: it runs on its own so that its failure is a reason, not an error.
    let all = steps::all();
    let order: Vec<&'static str> = all.iter().map(|s| s.name()).collect();
    let (pool_step, aws_steps): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|s| s.name() == WORK_POOL_STEP);
    let (plans, (pool_plan, prefect), service, latest, (stopped, logs)) = tokio::join!(
        engine::look_all(&aws_steps, &cx),
        read_prefect(pool_step.first().map(|s| s.as_ref()), &cx),
        read_service(&cx),
        read_latest_task_definition(&cx),
        read_tasks_and_logs(&cx, args.log_lines),
    );
    let mut plans = plans.map_err(|f| step_failures("reading the pool's resources", &f))?;
    // The observer step's look read the chain; judging it asks nothing more.
    let observer = steps::observer::chain_at_look(&cx)
        .await
        .map(|found| steps::observer::check(&found, &steps::observer::Chain::of(&cx)))
        .map_err(|e| format!("{e:#}"));
    plans.extend(pool_plan);
    plans.sort_by_key(|p| order.iter().position(|name| *name == p.step));

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
        prefect,
        observer,
    };
    let report = health::report(facts);
    let json = serde_json::to_value(&report).map_err(|e| CliError::Failed(e.into()))?;
    common.print(&health::render_text(&report), &json);
    match report.verdict {
        Health::Healthy => Ok(()),
        Health::Unhealthy | Health::NotBootstrapped => Err(CliError::Unhealthy(report.summary)),
    }
}

/// The work pool's look, then the pool's workers: the pool as Prefect describes it, or why
/// Prefect could not be asked. The look reads the pool through the run's shared reads, which
/// then hold the client and the pool; asking again would only wait out the same failure twice.
async fn read_prefect(step: Option<&dyn Step>, cx: &Context) -> (Option<StepPlan>, PrefectFacts) {
    let api_url = cx.prefect.api_url.clone();
    let failed = |trouble| PrefectFacts {
        api_url: api_url.clone(),
        read: Err(trouble),
    };
    let Some(step) = step else {
        let internal = "internal error: no work-pool step".to_string();
        return (None, failed(PrefectTrouble::Failed(internal)));
    };
    let plan = match step.look(cx).await {
        Ok(plan) => plan,
        Err(e) => return (None, failed(trouble(&e))),
    };
    let (Some(Some(client)), Some(pool)) =
        (cx.shared.prefect.get(), cx.shared.work_pool_at_look.get())
    else {
        // The look found no Prefect API URL to ask.
        return (Some(plan), failed(PrefectTrouble::NoUrl));
    };
    let workers = match pool {
        None => Ok(Vec::new()),
        Some(_) => client.workers(cx.pool()).await,
    };
    let facts = match workers {
        Ok(workers) => PrefectFacts {
            api_url: Some(client.api_url().to_string()),
            read: Ok(PrefectRead {
                pool: pool.clone(),
                workers,
            }),
        },
        Err(e) => failed(trouble(&e)),
    };
    (Some(plan), facts)
}

/// Why Prefect could not be asked: no answer, credentials refused (401/403), or anything else
/// (an error answer, or the worker's credentials in the pool's secrets unreadable).
fn trouble(e: &anyhow::Error) -> PrefectTrouble {
    let text = format!("{e:#}");
    match e.chain().find_map(|c| c.downcast_ref::<PrefectError>()) {
        Some(p) if p.status.is_none() => PrefectTrouble::Unreachable(text),
        Some(p) if matches!(p.status, Some(401 | 403)) => PrefectTrouble::Denied(text),
        _ => PrefectTrouble::Failed(text),
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

/// How many recently stopped tasks the report shows.
const STOPPED_SHOWN: usize = 5;

/// The service's tasks (one read) and what status makes of them: the recently stopped ones,
/// newest first, and the worker's log lines from the newest task's stream.
async fn read_tasks_and_logs(
    cx: &Context,
    lines: u32,
) -> (
    Result<Vec<StoppedTask>, String>,
    Result<health::LogInfo, String>,
) {
    let text = |e: anyhow::Error| format!("{e:#}");
    let (tasks, listed) = tokio::join!(steps::service::tasks_newest_first(cx), list_streams(cx));
    let tasks = tasks.map_err(text);
    let stopped = tasks.as_ref().map_err(Clone::clone).map(|tasks| {
        let mut stopped: Vec<StoppedTask> = tasks
            .iter()
            .filter(|t| t.desired_status() == Some("STOPPED"))
            .map(StoppedTask::from_sdk)
            .collect();
        stopped.sort_by_key(|t| std::cmp::Reverse(t.stopped_at));
        stopped.truncate(STOPPED_SHOWN);
        stopped
    });
    let streams = tasks.map(|tasks| {
        let ids = tasks.iter().map(steps::service::task_id);
        ids.map(|id| cx.names.worker_log_stream(id)).collect()
    });
    let logs = match (listed, streams) {
        (Ok(listed), Ok(streams)) => read_logs(cx, listed, streams, lines).await.map_err(text),
        (Err(e), _) => Err(text(e)),
        (_, Err(e)) => Err(e),
    };
    (stopped, logs)
}

/// The log group's streams, newest event first; `None` when the group does not exist.
async fn list_streams(cx: &Context) -> Result<Option<Vec<LogStream>>> {
    let group = &cx.names.log_group;
    let listed = cx
        .aws
        .logs
        .describe_log_streams()
        .log_group_name(group)
        .order_by(OrderBy::LastEventTime)
        .descending(true)
        .limit(STREAMS_LISTED)
        .send()
        .await
        .found(
            &["ResourceNotFoundException"],
            format!("listing the log streams of log group {group}"),
        )?;
    Ok(listed.map(|l| l.log_streams().to_vec()))
}

/// How many of the newest tasks' streams status tries (a task that never started has none).
const TASK_STREAMS_TRIED: usize = 3;
/// How many streams one look lists, newest event first: enough to find the worker's among flow
/// runs' streams in the same group.
const STREAMS_LISTED: i32 = 50;

/// Whether the log group exists and has worker streams, and the last `lines` lines of the newest
/// worker task's stream (`worker/<container>/<task id>`), found from the service's tasks: a
/// stream's last event time lags up to an hour, and the group may hold flow runs' streams. When
/// no task of the service is listed any more, the worker stream with the latest event.
async fn read_logs(
    cx: &Context,
    listed: Option<Vec<LogStream>>,
    task_streams: Vec<String>,
    lines: u32,
) -> Result<health::LogInfo> {
    let mut info = health::LogInfo {
        group: cx.names.log_group.clone(),
        ..health::LogInfo::default()
    };
    let Some(listed) = listed else {
        return Ok(info);
    };
    info.exists = true;
    let prefix = format!("{WORKER_LOG_STREAM_PREFIX}/");
    let worker_streams: Vec<&LogStream> = listed
        .iter()
        .filter(|s| s.log_stream_name().is_some_and(|n| n.starts_with(&prefix)))
        .collect();
    info.has_streams = !worker_streams.is_empty();
    let newest_listed = worker_streams.first().and_then(|s| s.log_stream_name());
    let mut candidates: Vec<String> = task_streams.into_iter().take(TASK_STREAMS_TRIED).collect();
    candidates.extend(newest_listed.map(str::to_string));
    for name in candidates {
        let listed_as = worker_streams
            .iter()
            .find(|s| s.log_stream_name() == Some(name.as_str()));
        let read = match lines {
            0 if listed_as.is_none() => continue,
            0 => Some(Vec::new()),
            _ => read_stream(cx, &name, lines).await?,
        };
        let Some(read) = read else { continue };
        info.has_streams = true;
        info.last_event_at = read.last().and_then(|l| l.at).or_else(|| {
            listed_as
                .and_then(|s| s.last_event_timestamp())
                .and_then(time_of_millis)
        });
        info.lines = read;
        info.stream = Some(name);
        break;
    }
    Ok(info)
}

/// The last `lines` lines of a stream of the worker's log group; `None` when it does not exist.
async fn read_stream(cx: &Context, name: &str, lines: u32) -> Result<Option<Vec<health::LogLine>>> {
    let group = &cx.names.log_group;
    let events = cx
        .aws
        .logs
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(name)
        .limit(i32::try_from(lines).unwrap_or(i32::MAX))
        .start_from_head(false)
        .send()
        .await
        .found(
            &["ResourceNotFoundException"],
            format!("reading log stream {name} of log group {group}"),
        )?;
    Ok(events.map(|events| {
        events
            .events()
            .iter()
            .map(|e| health::LogLine {
                at: e.timestamp().and_then(time_of_millis),
                message: e.message().unwrap_or_default().to_string(),
            })
            .collect()
    }))
}

fn time_of_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok()
}
