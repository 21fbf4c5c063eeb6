//! The wait for the service to be steady, showing ECS's events as they come, and what a failed
//! wait says: the last events and why recent tasks stopped.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Result};
use aws_sdk_ecs::types::{DesiredStatus, Service};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use time::format_description::well_known::Rfc3339;

use super::recover::{self, Redeploys};
use super::{describe, NAME};
use crate::aws::ecs::{Rollout, ServiceInfo, StoppedTask};
use crate::aws::AwsResultExt;
use crate::steps::wait::poll_until;
use crate::steps::Context;

const STEADY_POLL: Duration = Duration::from_secs(5);
/// Events this much older than the start of a wait belong to earlier runs and are not shown.
const EVENT_LOOKBACK_SECS: i64 = 120;
/// How many events and stopped tasks a wait error (and, for stopped tasks, status) shows.
const DIAGNOSTIC_ITEMS: usize = 5;
/// How many service events the IAM recovery reads (ECS lists up to 100, newest first).
const EVENTS_READ: usize = 10;

/// Waits until the service runs its desired count on a completed rollout, showing its events as
/// they appear. On a failed rollout or timeout the error carries the recent events and the reasons
/// tasks stopped, which is where ECS says what went wrong. Tasks stopping because IAM changes of
/// this run have not propagated yet start a new deployment instead (see [`recover`]).
pub async fn wait_until_steady(cx: &Context, timeout: Duration) -> Result<()> {
    let name = &cx.names.service;
    let shown = &Mutex::new(HashSet::new());
    let redeploys = &Redeploys::default();
    let since = DateTime::from(SystemTime::now()).secs() - EVENT_LOOKBACK_SECS;
    let outcome = poll_until(timeout, STEADY_POLL, || async move {
        let service = describe(cx)
            .await?
            .filter(|s| s.status() == Some("ACTIVE"))
            .ok_or_else(|| anyhow!("ECS service {name} is gone; run bootstrap again"))?;
        show_new_events(cx, &service, shown, since);
        let info = ServiceInfo::from_sdk(&service, EVENTS_READ);
        if recover::after_iam_change(cx, &info, redeploys).await? {
            return Ok(None);
        }
        match info.rollout_state() {
            Rollout::Steady => Ok(Some(())),
            Rollout::InProgress => Ok(None),
            Rollout::Failed { reason, .. } => Err(anyhow!(
                "the deployment of ECS service {name} failed: {reason}{}",
                diagnose(cx, &service).await
            )),
        }
    })
    .await?;
    if outcome.is_some() {
        return Ok(());
    }
    let service = describe(cx).await?;
    let (counts, details) = match &service {
        Some(s) => (ServiceInfo::from_sdk(s, 0).counts(), diagnose(cx, s).await),
        None => ("the service is gone".to_string(), String::new()),
    };
    bail!(
        "ECS service {name} did not become steady within {}s ({counts}).{details}\nRun `ecsctl status --pool {}` to look again, or bootstrap with a longer --wait-timeout.",
        timeout.as_secs(),
        cx.pool()
    )
}

/// Prints service events not shown yet, oldest first (ECS lists the newest first).
fn show_new_events(cx: &Context, service: &Service, shown: &Mutex<HashSet<String>>, since: i64) {
    let mut shown = shown.lock().unwrap_or_else(|p| p.into_inner());
    for event in service.events().iter().rev() {
        let recent = event.created_at().is_none_or(|t| t.secs() >= since);
        let message = event.message().unwrap_or_default();
        let key = event.id().unwrap_or(message).to_string();
        if recent && shown.insert(key) {
            cx.progress.note(NAME, message);
        }
    }
}

/// The last service events and why recent tasks stopped, as lines for an error message.
async fn diagnose(cx: &Context, service: &Service) -> String {
    let mut text = String::new();
    let events: Vec<String> = service
        .events()
        .iter()
        .take(DIAGNOSTIC_ITEMS)
        .map(|e| {
            format!(
                "{} {}",
                timestamp(e.created_at()),
                e.message().unwrap_or_default()
            )
        })
        .collect();
    if !events.is_empty() {
        text.push_str(&format!(
            "\nRecent service events:\n  - {}",
            events.join("\n  - ")
        ));
    }
    match stopped_reasons(cx).await {
        Ok(reasons) if reasons.is_empty() => {}
        Ok(reasons) => text.push_str(&format!(
            "\nRecently stopped tasks:\n  - {}",
            reasons.join("\n  - ")
        )),
        Err(e) => text.push_str(&format!("\n(could not read the stopped tasks: {e:#})")),
    }
    text
}

fn timestamp(t: Option<&DateTime>) -> String {
    t.and_then(|t| t.fmt(Format::DateTime).ok())
        .unwrap_or_default()
}

/// Why the service's recently stopped tasks stopped, newest first, one line each.
async fn stopped_reasons(cx: &Context) -> Result<Vec<String>> {
    Ok(recently_stopped_tasks(cx)
        .await?
        .iter()
        .map(|t| {
            let at = t
                .stopped_at
                .and_then(|at| at.format(&Rfc3339).ok())
                .unwrap_or_default();
            let reason = t.stopped_reason.as_deref().unwrap_or("no reason given");
            format!("{at} task {}: {reason}", t.id)
        })
        .collect())
}

/// The service's recently stopped tasks with their stop codes, reasons and exit codes, newest first.
pub async fn recently_stopped_tasks(cx: &Context) -> Result<Vec<StoppedTask>> {
    let (cluster, name) = (&cx.names.cluster, &cx.names.service);
    let listed = cx
        .aws
        .ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(name)
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .found(
            &["ClusterNotFoundException", "ServiceNotFoundException"],
            format!("listing the stopped tasks of ECS service {name}"),
        )?;
    let arns = listed.map(|l| l.task_arns().to_vec()).unwrap_or_default();
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    // DescribeTasks takes at most 100 tasks; ListTasks pages hold at most 100.
    let described = cx
        .aws
        .ecs
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns))
        .send()
        .await
        .aws(format!(
            "describing the stopped tasks of ECS service {name}"
        ))?;
    let mut tasks: Vec<StoppedTask> = described
        .tasks()
        .iter()
        .map(StoppedTask::from_sdk)
        .collect();
    tasks.sort_by_key(|t| std::cmp::Reverse(t.stopped_at));
    tasks.truncate(DIAGNOSTIC_ITEMS);
    Ok(tasks)
}
