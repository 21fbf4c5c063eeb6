//! `cluster`: the ECS cluster the worker's service runs in, with the Fargate capacity providers.

use std::time::Duration;

use anyhow::{anyhow, Result};
use async_trait::async_trait;
use aws_sdk_ecs::types::{CapacityProviderStrategyItem, ClusterField};

use super::own::{destroy_targets, left_alone, not_ours, record_found};
use super::own::{ecs_owned, tag};
use super::retag::{self, TagChanges, Tagged};
use super::wait::retry_while;
use super::{Context, ItemState, Seen, Step, StepPlan, StepReport};
use crate::aws::{is_code, messages, AwsResultExt};
use crate::ledger::ResourceKind;

const NAME: &str = "cluster";
const NOT_FOUND: &[&str] = &["ClusterNotFoundException"];
/// How long the first cluster in an account may race the creation of ECS's service-linked role.
const ROLE_RACE_TIMEOUT: Duration = Duration::from_secs(120);
/// What DeleteCluster answers while the service is still draining (real AWS only), and while
/// tasks still run or stop in it.
const STILL_IN_USE: &[&str] = &[
    "ClusterContainsServicesException",
    "ClusterContainsTasksException",
];
const CONTAINS_TASKS: &[&str] = &["ClusterContainsTasksException"];

#[derive(Debug, Clone)]
struct Found {
    arn: String,
    owned: bool,
    /// moto (and AWS, for a while) keeps deleted clusters around as INACTIVE.
    active: bool,
    tags: TagChanges,
}

#[derive(Default)]
pub struct ClusterStep {
    seen: Seen<Option<Found>>,
}

impl ClusterStep {
    fn state(found: &Option<Found>) -> ItemState {
        match found {
            Some(f) if f.active && !f.owned => ItemState::Foreign { id: f.arn.clone() },
            Some(f) if f.active => f.tags.onto(ItemState::Present { id: f.arn.clone() }),
            _ => ItemState::Missing,
        }
    }

    async fn create(&self, cx: &Context) -> Result<String> {
        let name = &cx.names.cluster;
        let fargate = CapacityProviderStrategyItem::builder()
            .capacity_provider("FARGATE")
            .weight(1)
            .build()?;
        let tags = cx.sdk_tags(NAME, tag::ecs);
        let created = retry_while(
            ROLE_RACE_TIMEOUT,
            messages::service_linked_role_not_ready,
            || {
                let request = cx
                    .aws
                    .ecs
                    .create_cluster()
                    .cluster_name(name)
                    .capacity_providers("FARGATE")
                    .capacity_providers("FARGATE_SPOT")
                    .default_capacity_provider_strategy(fargate.clone())
                    .set_tags(Some(tags.clone()));
                async move {
                    request
                        .send()
                        .await
                        .aws(format!("creating ECS cluster {name}"))
                }
            },
        )
        .await?;
        created
            .cluster()
            .and_then(|c| c.cluster_arn())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("creating ECS cluster {name}: AWS returned no cluster ARN"))
    }
}

#[async_trait]
impl Step for ClusterStep {
    fn name(&self) -> &'static str {
        NAME
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &[]
    }

    async fn look(&self, cx: &Context) -> Result<StepPlan> {
        let name = &cx.names.cluster;
        let described = cx
            .aws
            .ecs
            .describe_clusters()
            .clusters(name)
            .include(ClusterField::Tags)
            .send()
            .await
            .aws(format!("describing ECS cluster {name}"))?;
        // A missing cluster comes back as a MISSING failure, not as an error.
        let found = described
            .clusters()
            .iter()
            .find(|c| c.cluster_name() == Some(name.as_str()))
            .map(|c| Found {
                arn: c.cluster_arn().unwrap_or(name).to_string(),
                owned: ecs_owned(cx, c.tags()),
                active: c.status() != Some("INACTIVE"),
                tags: TagChanges::for_ecs(cx, c.tags()),
            });
        let plan = StepPlan::one(NAME, ResourceKind::Cluster, name, Self::state(&found));
        self.seen.put(found);
        Ok(plan)
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let name = &cx.names.cluster;
        let mut report = StepReport::default();
        let arn = match self.seen.get()?.filter(|f| f.active) {
            None => {
                let arn = self.create(cx).await?;
                cx.ledger.created(NAME, ResourceKind::Cluster, &arn)?;
                report.change(format!("created ECS cluster {name}"));
                arn
            }
            Some(found) if !found.owned => return Err(not_ours(cx, "an ECS cluster", name)),
            Some(found) => {
                record_found(cx, NAME, ResourceKind::Cluster, &found.arn)?;
                let what = format!("ECS cluster {name}");
                let retag = retag::apply(cx, Tagged::Ecs(&found.arn), &what, &found.tags);
                report.changes.extend(retag.await?);
                found.arn
            }
        };
        report.resource("cluster", &arn);
        cx.outputs.cluster_arn.set(arn);
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        let found = self.seen.get()?;
        let owned = found.as_ref().filter(|f| f.owned && f.active);
        let targets = destroy_targets(
            cx,
            NAME,
            ResourceKind::Cluster,
            owned.map(|f| f.arn.as_str()),
        );
        let mut report = StepReport::default();
        for arn in targets {
            // Already INACTIVE: deleting again would succeed but change nothing.
            let gone = found.as_ref().is_some_and(|f| f.arn == arn && !f.active);
            // Recreated under the recorded name by someone else: no longer ecsctl's.
            let foreign = found
                .as_ref()
                .is_some_and(|f| f.arn == arn && f.active && !f.owned);
            if foreign {
                report.change(left_alone(cx, &format!("ECS cluster {}", cx.names.cluster)));
            } else if cx.outputs.foreign_service.is_raised() {
                // AWS refuses to delete a cluster with a service in it, and that one is not ours.
                report.change(format!(
                    "left ECS cluster {}: it holds service {}, which is not ecsctl's; delete that service to finish",
                    cx.names.cluster, cx.names.service
                ));
                continue;
            } else if !gone && delete_cluster(cx, &arn).await? {
                report.change(format!("deleted ECS cluster {}", cx.names.cluster));
            }
            cx.ledger.forget(ResourceKind::Cluster, &arn)?;
        }
        Ok(report)
    }
}

/// Deletes a cluster, retrying while its service drains or its last tasks stop; `false` when it
/// was already gone. Flow runs still running (started after destroy looked) are not waited
/// for: they may run for hours, so destroy stops and says how to stop them.
async fn delete_cluster(cx: &Context, arn: &str) -> Result<bool> {
    retry_while(
        cx.teardown().timeout,
        |e| is_code(e, STILL_IN_USE),
        || {
            let request = cx.aws.ecs.delete_cluster().cluster(arn);
            async move {
                let deleted = request
                    .send()
                    .await
                    .done_unless(NOT_FOUND, format!("deleting ECS cluster {arn}"));
                match deleted {
                    Err(e) if is_code(&e, CONTAINS_TASKS) => Err(flow_runs_hold(cx, e).await),
                    other => other,
                }
            }
        },
    )
    .await
}

/// What ClusterContainsTasksException means: flow runs still running (an error naming them
/// and `--stop-flow-runs`, not retried), or tasks still stopping (`refused`, retried).
async fn flow_runs_hold(cx: &Context, refused: anyhow::Error) -> anyhow::Error {
    let runs = match running_flow_runs(cx).await {
        Ok(runs) if !runs.is_empty() => runs,
        Ok(_) => return refused,
        Err(e) => return e,
    };
    let pool = cx.pool();
    let listing: String = runs.iter().map(|r| format!("\n  - {r}")).collect();
    anyhow!(
        "ECS cluster {} still runs {} flow run(s), which AWS will not let go of the cluster:{listing}\nstop them with `ecsctl destroy --pool {pool} --stop-flow-runs` (or let them finish and run destroy again)",
        cx.names.cluster,
        runs.len()
    )
}

/// A flow run's task on the pool's cluster: started by the worker, not by the worker's service.
#[derive(Debug, Clone)]
pub struct FlowRunTask {
    pub arn: String,
    /// The Prefect flow run it runs, from the task's `prefect.io/flow-run-id` tag.
    pub flow_run: Option<String>,
    pub status: String,
}

impl std::fmt::Display for FlowRunTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = self.arn.rsplit('/').next().unwrap_or(&self.arn);
        match &self.flow_run {
            Some(run) => write!(f, "task {id} ({}, flow run {run})", self.status),
            None => write!(f, "task {id} ({})", self.status),
        }
    }
}

/// The flow runs still running on the pool's cluster. While any run, AWS refuses to delete the
/// cluster, and their network interfaces hold the subnets and security group.
pub async fn running_flow_runs(cx: &Context) -> Result<Vec<FlowRunTask>> {
    let cluster = &cx.names.cluster;
    let listed = cx
        .aws
        .ecs
        .list_tasks()
        .cluster(cluster)
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
        .send()
        .await
        .found(
            NOT_FOUND,
            format!("listing the tasks of ECS cluster {cluster}"),
        )?;
    let arns = listed.map(|l| l.task_arns().to_vec()).unwrap_or_default();
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let described = cx
        .aws
        .ecs
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns))
        .include(aws_sdk_ecs::types::TaskField::Tags)
        .send()
        .await
        .aws(format!("describing the tasks of ECS cluster {cluster}"))?;
    let service_group = format!("service:{}", cx.names.service);
    Ok(described
        .tasks()
        .iter()
        .filter(|t| t.group() != Some(service_group.as_str()))
        .map(|t| FlowRunTask {
            arn: t.task_arn().unwrap_or_default().to_string(),
            flow_run: t
                .tags()
                .iter()
                .find(|tag| tag.key() == Some("prefect.io/flow-run-id"))
                .and_then(|tag| tag.value().map(str::to_string)),
            status: t.last_status().unwrap_or("PENDING").to_string(),
        })
        .collect())
}

/// Stops flow-run tasks, all at once; a task already gone is stopped.
pub async fn stop_flow_runs(cx: &Context, tasks: &[FlowRunTask]) -> Result<()> {
    let cluster = &cx.names.cluster;
    futures::future::try_join_all(tasks.iter().map(|task| async move {
        cx.aws
            .ecs
            .stop_task()
            .cluster(cluster)
            .task(&task.arn)
            .reason(format!(
                "ecsctl destroy --pool {} --stop-flow-runs",
                cx.pool()
            ))
            .send()
            .await
            .done_unless(&["InvalidParameterException"], format!("stopping {task}"))
    }))
    .await
    .map(drop)
}
