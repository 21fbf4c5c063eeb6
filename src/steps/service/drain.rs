//! After DeleteService: ECS reports the service INACTIVE while its tasks are still STOPPING.
//! Until they have stopped, the worker still runs as its role and writes to its log group, so
//! destroy waits for them (bounded, saying so) before the steps after it delete those.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{anyhow, Result};

use super::tasks::{service_tasks, task_id};
use super::NAME;
use crate::steps::wait::poll_until;
use crate::steps::Context;

const STOP_POLL: Duration = Duration::from_secs(2);

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

/// The service's tasks that have not stopped yet, by id and status.
async fn tasks_not_stopped(cx: &Context) -> Result<Vec<String>> {
    Ok(service_tasks(cx)
        .await?
        .iter()
        .filter(|t| t.last_status() != Some("STOPPED"))
        .map(|t| format!("{} {}", task_id(t), t.last_status().unwrap_or("PENDING")))
        .collect())
}
