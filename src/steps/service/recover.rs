//! Recovering from IAM propagation while waiting for the service. Roles and the secret-read
//! policy made in this run can be unusable to ECS for a minute or so: the first tasks then stop
//! with "ECS was unable to assume the role" or "unable to pull secrets … AccessDeniedException",
//! and the circuit breaker may fail the deployment. That heals by itself, so on a young deployment
//! after an IAM change in this run, ecsctl forces a new deployment (a bounded number of times)
//! instead of failing. A run that changed no IAM never looks for this.

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Result;
use time::OffsetDateTime;

use super::NAME;
use crate::aws::ecs::{ServiceInfo, StoppedTask};
use crate::aws::messages;
use crate::aws::AwsResultExt;
use crate::steps::Context;

/// A deployment older than this did not fail on a role made seconds before it.
const YOUNG_SECS: i64 = 300;
/// How many new deployments one run forces for IAM before it reports the failure.
pub(super) const MAX_REDEPLOYS: u32 = 3;

/// The new deployments forced so far in this wait.
#[derive(Default)]
pub(super) struct Redeploys(AtomicU32);

impl Redeploys {
    fn take(&self) -> Option<u32> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        (n <= MAX_REDEPLOYS).then_some(n)
    }

    fn left(&self) -> bool {
        self.0.load(Ordering::SeqCst) < MAX_REDEPLOYS
    }
}

/// Whether the primary deployment is young and has failed tasks: only then are the stopped
/// tasks worth reading.
pub(super) fn young_and_failing(info: &ServiceInfo, now: OffsetDateTime) -> bool {
    info.deployments.iter().any(|d| {
        d.status == "PRIMARY"
            && (d.failed_tasks > 0 || d.rollout_state.as_deref() == Some("FAILED"))
            && d.created_at
                .is_some_and(|at| (now - at).whole_seconds() <= YOUNG_SECS)
    })
}

/// ECS's words saying the primary deployment's tasks stop because IAM has not propagated yet:
/// a service event or a task stopped since the deployment began.
pub(super) fn iam_evidence(info: &ServiceInfo, stopped: &[StoppedTask]) -> Option<String> {
    let since = info
        .deployments
        .iter()
        .find(|d| d.status == "PRIMARY")
        .and_then(|d| d.created_at)?;
    let events = info
        .events
        .iter()
        .filter(|e| e.at.is_none_or(|at| at >= since))
        .map(|e| e.message.clone());
    let tasks = stopped
        .iter()
        .filter(|t| t.stopped_at.is_some_and(|at| at >= since))
        .flat_map(|t| {
            let containers = t.containers.iter().filter_map(|c| c.reason.clone());
            t.stopped_reason.clone().into_iter().chain(containers)
        });
    events
        .chain(tasks)
        .find(|text| messages::is_iam_not_yet_usable(text))
}

/// On a young failing deployment after an IAM change in this run, forces a new deployment when
/// ECS says IAM is why; `true` when it did.
pub(super) async fn after_iam_change(
    cx: &Context,
    info: &ServiceInfo,
    redeploys: &Redeploys,
) -> Result<bool> {
    let now = OffsetDateTime::now_utc();
    if !cx.outputs.worker_iam_changed.is_raised()
        || !redeploys.left()
        || !young_and_failing(info, now)
    {
        return Ok(false);
    }
    let stopped = super::recently_stopped_tasks(cx).await?;
    let Some(evidence) = iam_evidence(info, &stopped) else {
        return Ok(false);
    };
    let Some(n) = redeploys.take() else {
        return Ok(false);
    };
    cx.progress.note(
        NAME,
        &format!(
            "ECS cannot use the IAM roles made in this run yet (IAM takes up to a minute to propagate): \"{evidence}\"; forcing a new deployment ({n} of at most {MAX_REDEPLOYS})"
        ),
    );
    let name = &cx.names.service;
    cx.aws
        .ecs
        .update_service()
        .cluster(&cx.names.cluster)
        .service(name)
        .force_new_deployment(true)
        .send()
        .await
        .aws(format!("forcing a new deployment of ECS service {name}"))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ecs::{ContainerStop, Deployment, Event};

    const T0: i64 = 1_764_540_000;

    fn at(secs: i64) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp(T0 + secs).ok()
    }

    fn info(failed_tasks: i32, events: &[(i64, &str)]) -> ServiceInfo {
        ServiceInfo {
            deployments: vec![Deployment {
                status: "PRIMARY".into(),
                failed_tasks,
                rollout_state: Some("IN_PROGRESS".into()),
                created_at: at(0),
                ..Deployment::default()
            }],
            events: events
                .iter()
                .map(|(secs, m)| Event {
                    at: at(*secs),
                    message: m.to_string(),
                })
                .collect(),
            ..ServiceInfo::default()
        }
    }

    fn stopped(secs: i64, reason: &str) -> StoppedTask {
        StoppedTask {
            stopped_at: at(secs),
            stop_code: Some("TaskFailedToStart".into()),
            containers: vec![ContainerStop {
                name: "prefect-worker".into(),
                exit_code: None,
                reason: Some(reason.into()),
            }],
            ..StoppedTask::default()
        }
    }

    const DENIED: &str = "ResourceInitializationError: unable to pull secrets or registry auth: AccessDeniedException: not authorized to perform secretsmanager:GetSecretValue";

    #[test]
    fn only_a_young_deployment_with_failed_tasks_is_looked_at() {
        let now = at(60).unwrap();
        assert!(young_and_failing(&info(1, &[]), now));
        assert!(!young_and_failing(&info(0, &[]), now));
        assert!(!young_and_failing(
            &info(1, &[]),
            at(YOUNG_SECS + 1).unwrap()
        ));
    }

    #[test]
    fn iam_words_since_the_deployment_began_are_evidence() {
        let found = iam_evidence(&info(1, &[]), &[stopped(10, DENIED)]);
        assert_eq!(found.as_deref(), Some(DENIED));
        let event = "(service s) failed to launch a task with (error ECS was unable to assume the role 'arn:aws:iam::1:role/r').";
        assert!(iam_evidence(&info(1, &[(5, event)]), &[]).is_some());
        // Before this deployment: an earlier one's trouble.
        assert_eq!(
            iam_evidence(&info(1, &[(-5, event)]), &[stopped(-5, DENIED)]),
            None
        );
        // Other reasons are not IAM's delay.
        assert_eq!(
            iam_evidence(
                &info(1, &[]),
                &[stopped(10, "CannotPullContainerError: pull access denied")]
            ),
            None
        );
    }

    #[test]
    fn redeploys_are_bounded() {
        let r = Redeploys::default();
        let taken: Vec<_> = (0..5).map(|_| r.take()).collect();
        assert_eq!(taken, [Some(1), Some(2), Some(3), None, None]);
        assert!(!r.left());
    }
}
