//! ECS's answers as plain data: the service with its deployments and events, stopped tasks, task
//! definition names, and the one rule for where a rollout stands. The service step's wait and
//! `status` both read these; `status --output json` prints them as they are (see `crate::health`).

use aws_sdk_ecs::types::{Service, Task};
use serde::Serialize;
use time::OffsetDateTime;

use super::time_of;

/// The ECS service, as DescribeServices reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceInfo {
    pub name: String,
    pub arn: String,
    /// `ACTIVE` or `DRAINING`.
    pub status: String,
    /// Tasks wanted, running and starting.
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    /// The task definition the service runs (ARN).
    pub task_definition: String,
    /// The newest ACTIVE revision of the worker's task definition family (ARN); `null` when
    /// none (or unreadable).
    pub latest_task_definition: Option<String>,
    /// The rollout state of the PRIMARY deployment: `COMPLETED`, `IN_PROGRESS` or `FAILED`;
    /// `null` when ECS reports none.
    pub rollout: Option<String>,
    /// The deployments, as ECS lists them (PRIMARY first).
    pub deployments: Vec<Deployment>,
    /// The last service events, newest first. These carry ECS's own words for problems such
    /// as "unable to assume the role" or "unable to place a task".
    pub events: Vec<Event>,
}

/// One deployment of the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Deployment {
    pub id: String,
    /// `PRIMARY` (the newest), `ACTIVE` (being replaced) or `INACTIVE`.
    pub status: String,
    /// Task definition ARN.
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    /// Tasks of this deployment that failed to start or stopped unexpectedly.
    pub failed_tasks: i32,
    /// `COMPLETED`, `IN_PROGRESS` or `FAILED` (the circuit breaker tripped); `null` if unknown.
    pub rollout_state: Option<String>,
    pub rollout_state_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

/// One service event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Event {
    #[serde(with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
    pub message: String,
}

/// A task of the service that stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoppedTask {
    /// The task id (the last part of its ARN).
    pub id: String,
    pub task_definition: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub stopped_at: Option<OffsetDateTime>,
    /// ECS's stop code: `TaskFailedToStart`, `EssentialContainerExited`, `UserInitiated`,
    /// `ServiceSchedulerInitiated`, `SpotInterruption`, …
    pub stop_code: Option<String>,
    /// ECS's words, e.g. `ResourceInitializationError: unable to pull secrets or registry auth: …`.
    pub stopped_reason: Option<String>,
    pub containers: Vec<ContainerStop>,
}

/// How one container of a stopped task ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerStop {
    pub name: String,
    /// `null` when the container never started.
    pub exit_code: Option<i32>,
    /// e.g. `CannotPullContainerError: …` or `OutOfMemoryError: Container killed due to memory usage`.
    pub reason: Option<String>,
}

impl ServiceInfo {
    /// A described service; keeps the newest `events` events.
    pub fn from_sdk(s: &Service, events: usize) -> Self {
        let deployments: Vec<Deployment> = s
            .deployments()
            .iter()
            .map(|d| Deployment {
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
        Self {
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
                .take(events)
                .map(|e| Event {
                    at: time_of(e.created_at()),
                    message: e.message().unwrap_or_default().to_string(),
                })
                .collect(),
        }
    }

    /// Where the rollout stands: steady when every wanted task runs and the primary deployment
    /// completed (or, where ECS reports no rollout state, it is the only deployment; with an
    /// external deployment controller, there are none). A failed primary deployment (the circuit
    /// breaker, with nothing to roll back to) fails it, and so does a failed deployment that ECS
    /// is rolling back from (the primary then runs another task definition); a failed deployment
    /// of the primary's own task definition is one a forced new deployment retries. Bootstrap
    /// waits on this; status judges by it.
    pub fn rollout_state(&self) -> Rollout {
        let primary = self.deployments.iter().find(|d| d.status == "PRIMARY");
        let failed = |d: &&Deployment| d.rollout_state.as_deref() == Some("FAILED");
        let reason = |d: &Deployment| {
            d.rollout_state_reason
                .clone()
                .unwrap_or_else(|| "no reason given".into())
        };
        if let Some(p) = primary.filter(failed) {
            return Rollout::Failed {
                reason: reason(p),
                rolled_back: false,
            };
        }
        let rolled_back_from = self
            .deployments
            .iter()
            .filter(failed)
            .find(|d| primary.is_none_or(|p| p.task_definition != d.task_definition));
        if let Some(d) = rolled_back_from {
            return Rollout::Failed {
                reason: reason(d),
                rolled_back: primary.is_some(),
            };
        }
        let all_running = self.running == self.desired;
        match primary.map(|d| d.rollout_state.as_deref()) {
            Some(Some("COMPLETED")) if all_running => Rollout::Steady,
            Some(None) if all_running && self.deployments.len() == 1 => Rollout::Steady,
            None if all_running && self.deployments.is_empty() => Rollout::Steady,
            _ => Rollout::InProgress,
        }
    }

    /// The primary deployment, when it failed: the circuit breaker tripped on a deployment with
    /// nothing to roll back to (the first one), and ECS stopped launching its tasks.
    pub fn failed_primary(&self) -> Option<&Deployment> {
        self.deployments
            .iter()
            .find(|d| d.status == "PRIMARY" && d.rollout_state.as_deref() == Some("FAILED"))
    }

    /// Where the service stands, e.g. "running 0 of 1, pending 1, rollout IN_PROGRESS".
    pub fn counts(&self) -> String {
        format!(
            "running {} of {}, pending {}, rollout {}",
            self.running,
            self.desired,
            self.pending,
            self.rollout.as_deref().unwrap_or("state unknown")
        )
    }
}

/// Where a service's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    Steady,
    InProgress,
    /// A deployment failed (circuit breaker), with ECS's reason; `rolled_back` when ECS went
    /// back to an earlier deployment, false when there was none to go back to.
    Failed {
        reason: String,
        rolled_back: bool,
    },
}

impl StoppedTask {
    pub fn from_sdk(t: &Task) -> Self {
        Self {
            id: t
                .task_arn()
                .and_then(|a| a.rsplit('/').next())
                .unwrap_or("?")
                .to_string(),
            task_definition: t.task_definition_arn().unwrap_or_default().to_string(),
            stopped_at: time_of(t.stopped_at()),
            stop_code: t.stop_code().map(|c| c.as_str().to_string()),
            stopped_reason: t
                .stopped_reason()
                .filter(|r| !r.is_empty())
                .map(str::to_string),
            containers: t
                .containers()
                .iter()
                .map(|c| ContainerStop {
                    name: c.name().unwrap_or_default().to_string(),
                    exit_code: c.exit_code(),
                    reason: c.reason().filter(|r| !r.is_empty()).map(str::to_string),
                })
                .collect(),
        }
    }
}

/// A task definition as ECS names it: `arn:…:task-definition/FAMILY:REVISION` or `FAMILY:REVISION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskDefinitionName<'a> {
    /// `FAMILY:REVISION`.
    pub short: &'a str,
    pub family: &'a str,
    /// `None` when the name has no (numeric) revision.
    pub revision: Option<u64>,
}

impl<'a> TaskDefinitionName<'a> {
    pub fn parse(name: &'a str) -> Self {
        let short = name.rsplit('/').next().unwrap_or(name);
        let (family, revision) = match short.rsplit_once(':') {
            Some((family, revision)) => (family, revision.parse().ok()),
            None => (short, None),
        };
        Self {
            short,
            family,
            revision,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(running: i32, deployments: Vec<Deployment>) -> ServiceInfo {
        ServiceInfo {
            desired: 1,
            running,
            deployments,
            ..ServiceInfo::default()
        }
    }

    fn deployment(status: &str, state: Option<&str>) -> Deployment {
        Deployment {
            status: status.into(),
            rollout_state: state.map(str::to_string),
            ..Deployment::default()
        }
    }

    #[test]
    fn steady_needs_a_completed_rollout_and_all_tasks_running() {
        let done = || deployment("PRIMARY", Some("COMPLETED"));
        assert_eq!(service(1, vec![done()]).rollout_state(), Rollout::Steady);
        assert_eq!(
            service(0, vec![done()]).rollout_state(),
            Rollout::InProgress
        );
        let going = deployment("PRIMARY", Some("IN_PROGRESS"));
        assert_eq!(service(1, vec![going]).rollout_state(), Rollout::InProgress);
        assert_eq!(
            service(1, vec![deployment("PRIMARY", None)]).rollout_state(),
            Rollout::Steady
        );
        // An external deployment controller reports no deployments at all.
        assert_eq!(service(1, vec![]).rollout_state(), Rollout::Steady);
        assert_eq!(service(0, vec![]).rollout_state(), Rollout::InProgress);
    }

    #[test]
    fn a_failed_deployment_fails_the_rollout() {
        let with = |d: Deployment, td: &str| Deployment {
            task_definition: td.into(),
            rollout_state_reason: Some("circuit breaker triggered".into()),
            ..d
        };
        // Rolled back: the primary went back to the previous revision.
        let failed = with(deployment("ACTIVE", Some("FAILED")), "f:2");
        let primary = with(deployment("PRIMARY", Some("IN_PROGRESS")), "f:1");
        assert_eq!(
            service(0, vec![primary, failed.clone()]).rollout_state(),
            Rollout::Failed {
                reason: "circuit breaker triggered".into(),
                rolled_back: true
            }
        );
        // The first deployment: nothing to roll back to.
        let first = with(deployment("PRIMARY", Some("FAILED")), "f:1");
        let info = service(0, vec![first.clone()]);
        assert_eq!(
            info.rollout_state(),
            Rollout::Failed {
                reason: "circuit breaker triggered".into(),
                rolled_back: false
            }
        );
        assert_eq!(info.failed_primary(), Some(&first));
        // A forced new deployment of the same revision retries the failed one.
        let retry = with(deployment("PRIMARY", Some("IN_PROGRESS")), "f:1");
        let old = with(deployment("ACTIVE", Some("FAILED")), "f:1");
        let info = service(0, vec![retry, old]);
        assert_eq!(info.rollout_state(), Rollout::InProgress);
        assert_eq!(info.failed_primary(), None);
    }

    #[test]
    fn a_described_service_becomes_plain_facts() {
        use aws_sdk_ecs::types::{DeploymentRolloutState, ServiceEvent};
        use aws_smithy_types::DateTime;
        let service = Service::builder()
            .service_name("ecsctl-p-worker")
            .service_arn("arn:aws:ecs:us-east-1:123456789012:service/ecsctl-p/ecsctl-p-worker")
            .status("ACTIVE")
            .desired_count(1)
            .running_count(0)
            .pending_count(1)
            .task_definition("arn:aws:ecs:us-east-1:123456789012:task-definition/ecsctl-p-worker:3")
            .deployments(
                aws_sdk_ecs::types::Deployment::builder()
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
        let info = ServiceInfo::from_sdk(&service, 10);
        assert_eq!((info.desired, info.running, info.pending), (1, 0, 1));
        assert_eq!(info.rollout.as_deref(), Some("IN_PROGRESS"));
        assert_eq!(
            info.deployments[0].created_at,
            OffsetDateTime::from_unix_timestamp(1_714_564_800).ok()
        );
        assert_eq!(info.events.len(), 10);
        assert_eq!(info.events[0].message, "event 0");
        assert_eq!(
            info.counts(),
            "running 0 of 1, pending 1, rollout IN_PROGRESS"
        );
    }

    #[test]
    fn a_described_stopped_task_becomes_plain_facts() {
        use aws_sdk_ecs::types::{Container, TaskStopCode};
        use aws_smithy_types::DateTime;
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
        let t = StoppedTask::from_sdk(&task);
        assert_eq!(t.id, "0a5e5f0c");
        assert_eq!(t.stop_code.as_deref(), Some("EssentialContainerExited"));
        assert_eq!(t.containers[0].exit_code, Some(1));
        assert_eq!(t.containers[0].reason, None, "empty reasons are no reasons");
    }

    #[test]
    fn task_definition_names_are_read_from_arns_and_short_forms() {
        let arn = TaskDefinitionName::parse(
            "arn:aws:ecs:us-east-1:123456789012:task-definition/ecsctl-p-worker:3",
        );
        assert_eq!(
            (arn.short, arn.family, arn.revision),
            ("ecsctl-p-worker:3", "ecsctl-p-worker", Some(3))
        );
        let short = TaskDefinitionName::parse("ecsctl-p-worker:2");
        assert_eq!((short.family, short.revision), ("ecsctl-p-worker", Some(2)));
        assert_eq!(TaskDefinitionName::parse("ecsctl-p-worker").revision, None);
        // Revisions compare as numbers.
        assert!(
            TaskDefinitionName::parse("f:10").revision > TaskDefinitionName::parse("f:9").revision
        );
    }
}
