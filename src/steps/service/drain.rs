//! After DeleteService: ECS reports the service INACTIVE while its tasks are still STOPPING.
//! Until they have stopped, the worker still runs as its role and writes to its log group, so
//! destroy waits for them (bounded, saying so) before the steps after it delete those.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{anyhow, Result};
use aws_sdk_ecs::types::DesiredStatus;

use super::NAME;
use crate::aws::AwsResultExt;
use crate::steps::wait::poll_until;
use crate::steps::Context;

const STOP_POLL: Duration = Duration::from_secs(2);
/// A purged service (gone for good, or never there) has no tasks left to wait for.
const GONE: &[&str] = &["ServiceNotFoundException", "ClusterNotFoundException"];

/// Waits until none of the service's tasks is running or stopping.
pub(super) async fn wait_for_tasks_to_stop(cx: &Context) -> Result<()> {
    let timeout = cx.teardown().timeout;
    let said = &AtomicBool::new(false);
    let stopped = poll_until(timeout, STOP_POLL, || async move {
        let left = tasks_not_stopped(cx).await?;
        if left.is_empty() {
            return Ok(Some(()));
        }
        if !said.swap(true, Ordering::SeqCst) {
            cx.progress.note(
                NAME,
                &format!(
                    "waiting up to {}s for the worker's {} task(s) to stop ({}), so its role and log group outlive them",
                    timeout.as_secs(),
                    left.len(),
                    left.join(", ")
                ),
            );
        }
        Ok(None)
    })
    .await?;
    stopped.ok_or_else(|| {
        anyhow!(
            "the worker's tasks of ECS service {} are still stopping after {}s; run `ecsctl destroy --pool {}` again later",
            cx.names.service,
            timeout.as_secs(),
            cx.pool()
        )
    })
}

/// The service's tasks (by id, with their status) that have not stopped yet.
async fn tasks_not_stopped(cx: &Context) -> Result<Vec<String>> {
    let (cluster, name) = (&cx.names.cluster, &cx.names.service);
    let list = |status: DesiredStatus| async move {
        let listed = cx
            .aws
            .ecs
            .list_tasks()
            .cluster(cluster)
            .service_name(name)
            .desired_status(status)
            .send()
            .await
            .found(GONE, format!("listing the tasks of ECS service {name}"))?;
        anyhow::Ok(listed.map(|l| l.task_arns().to_vec()).unwrap_or_default())
    };
    // A task being stopped is listed as desired STOPPED; one not told yet, as RUNNING.
    let (stopping, running) =
        tokio::try_join!(list(DesiredStatus::Stopped), list(DesiredStatus::Running))?;
    let arns: Vec<String> = stopping.into_iter().chain(running).collect();
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    // DescribeTasks takes at most 100 tasks; ListTasks pages hold at most 100 each.
    let described = futures::future::try_join_all(arns.chunks(100).map(|chunk| {
        cx.aws
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
    }))
    .await
    .aws(format!("describing the tasks of ECS service {name}"))?;
    // The group names the service's own tasks (emulators may list others).
    let group = format!("service:{name}");
    Ok(described
        .iter()
        .flat_map(|d| d.tasks())
        .filter(|t| t.group() == Some(group.as_str()) && t.last_status() != Some("STOPPED"))
        .map(|t| {
            let id = t
                .task_arn()
                .and_then(|a| a.rsplit('/').next())
                .unwrap_or("?");
            format!("{id} {}", t.last_status().unwrap_or("PENDING"))
        })
        .collect())
}
