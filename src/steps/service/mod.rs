//! `service`: the ECS service that keeps the worker running on Fargate (the wait for it to be
//! steady is in [`steady`], its network in [`network`]). A new task definition revision, a new
//! desired count, a changed network or a rotated API key update the service in place (one
//! UpdateService), and so does a first deployment that failed with nothing to roll back to (a new
//! deployment is forced); the same inputs change nothing.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use async_trait::async_trait;
use aws_sdk_ecs::types::{
    DeploymentCircuitBreaker, DeploymentConfiguration, LaunchType, PropagateTags, Service,
    ServiceField,
};

use super::own::{ecs_owned, left_alone, not_ours, record_found, tag};
use super::retag::{self, TagChanges, Tagged};
use super::shared::latest_active_task_definition;
use super::wait::poll_until;
use super::{Context, ItemState, Remedy, Seen, Step, StepPlan, StepReport};
use crate::aws::ecs::{ServiceInfo, TaskDefinitionName};
use crate::aws::AwsResultExt;
use crate::config::StackSpec;
use crate::ledger::ResourceKind;

mod drain;
mod network;
mod recover;
mod steady;
mod tasks;

use network::ServiceNetwork;

use steady::recently_stopped_tasks;
pub use steady::wait_until_steady;
pub use tasks::{task_id, tasks_newest_first};

const NAME: &str = "service";
/// Answers that mean the service (or its cluster) is already gone.
const GONE: &[&str] = &[
    "ServiceNotFoundException",
    "ServiceNotActiveException",
    "ClusterNotFoundException",
];
const DRAIN_POLL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
struct Found {
    arn: String,
    owned: bool,
    /// ACTIVE, DRAINING (being deleted) or INACTIVE (deleted; moto keeps these forever).
    status: String,
    task_definition: String,
    desired_count: i32,
    network: Option<ServiceNetwork>,
    /// ECS's reason, when the primary deployment failed and nothing was rolled back to.
    failed_primary: Option<String>,
    tags: TagChanges,
}

impl Found {
    fn new(cx: &Context, s: &Service) -> Self {
        Self {
            arn: s.service_arn().unwrap_or(&cx.names.service).to_string(),
            owned: ecs_owned(cx, s.tags()),
            status: s.status().unwrap_or_default().to_string(),
            task_definition: s.task_definition().unwrap_or_default().to_string(),
            desired_count: s.desired_count(),
            network: ServiceNetwork::of(s),
            failed_primary: ServiceInfo::from_sdk(s, 0).failed_primary().map(|d| {
                d.rollout_state_reason
                    .clone()
                    .unwrap_or_else(|| "no reason given".into())
            }),
            tags: TagChanges::for_ecs(cx, s.tags()),
        }
    }

    /// How the service's network differs from `want`'s (a service without one differs).
    fn network_differences(&self, want: &ServiceNetwork) -> Vec<String> {
        match &self.network {
            Some(network) => network.differences(want),
            None => vec!["has no network configuration".into()],
        }
    }

    fn is_inactive(&self) -> bool {
        self.status == "INACTIVE"
    }

    fn is_draining(&self) -> bool {
        self.status == "DRAINING"
    }
}

#[derive(Default)]
pub struct ServiceStep {
    seen: Seen<Option<Found>>,
}

impl ServiceStep {
    /// `latest`: the task definition revision the service should run, when known; `network`:
    /// the stack's network as the ledger knows it.
    fn state(
        found: &Option<Found>,
        spec: Option<&StackSpec>,
        (latest, family): (Option<&str>, &str),
        network: &ServiceNetwork,
    ) -> ItemState {
        let Some(f) = found.as_ref().filter(|f| !f.is_inactive()) else {
            return ItemState::Missing;
        };
        let id = f.arn.clone();
        if !f.owned {
            return ItemState::Foreign { id };
        }
        if f.is_draining() {
            return ItemState::drifted(id, "still draining after a delete", Remedy::AwaitDeletion);
        }
        let mut what = Vec::new();
        let runs_wanted = match latest {
            Some(latest) => f.task_definition == latest,
            None => TaskDefinitionName::parse(&f.task_definition).family == family,
        };
        if !runs_wanted {
            what.push(format!("runs task definition {}", f.task_definition));
        }
        if let Some(want) = spec.map(|s| s.desired_count) {
            if i64::from(f.desired_count) != i64::from(want) {
                what.push(format!("desired count {} (wanted {want})", f.desired_count));
            }
        }
        what.extend(f.network_differences(network));
        if let Some(why) = &f.failed_primary {
            what.push(format!(
                "its deployment failed and ECS stopped launching tasks, with nothing to roll back to ({why})"
            ));
        }
        let how = if f.failed_primary.is_some() {
            "a new deployment will be forced"
        } else {
            "will be updated"
        };
        f.tags.onto(if what.is_empty() {
            ItemState::Present { id }
        } else {
            ItemState::drifted(id, what.join(", "), Remedy::Update(Some(how)))
        })
    }

    async fn create(cx: &Context, task_definition: &str, desired_count: i32) -> Result<String> {
        let (cluster, name) = (&cx.names.cluster, &cx.names.service);
        let breaker = DeploymentCircuitBreaker::builder()
            .enable(true)
            .rollback(true)
            .build();
        let deployment = DeploymentConfiguration::builder()
            .deployment_circuit_breaker(breaker)
            .minimum_healthy_percent(100)
            .maximum_percent(200)
            .build();
        // No retry on "unable to assume the role": CreateService answers that only for a
        // load balancer's service role, which this service has none of. The task roles are
        // assumed when tasks start: see the wait in `steady`.
        let created = cx
            .aws
            .ecs
            .create_service()
            .cluster(cluster)
            .service_name(name)
            .task_definition(task_definition)
            .desired_count(desired_count)
            .launch_type(LaunchType::Fargate)
            .network_configuration(ServiceNetwork::wanted(cx)?.sdk()?)
            .deployment_configuration(deployment)
            .propagate_tags(PropagateTags::Service)
            .enable_ecs_managed_tags(true)
            .set_tags(Some(cx.sdk_tags(NAME, tag::ecs)))
            .send()
            .await
            .aws(format!("creating ECS service {name} in cluster {cluster}"))?;
        created
            .service()
            .and_then(|s| s.service_arn())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("creating ECS service {name}: AWS returned no service ARN"))
    }

    /// One UpdateService with every change needed, or none; returns what changed.
    async fn update(
        cx: &Context,
        found: &Found,
        task_definition: &str,
        desired_count: i32,
    ) -> Result<Option<String>> {
        let mut why = Vec::new();
        if found.task_definition != task_definition {
            why.push(format!("task definition {task_definition}"));
        }
        let new_count = (found.desired_count != desired_count).then_some(desired_count);
        if let Some(count) = new_count {
            why.push(format!("desired count {} → {count}", found.desired_count));
        }
        let network = ServiceNetwork::wanted(cx)?;
        let network_changes = found.network_differences(&network);
        if !network_changes.is_empty() {
            why.push(format!("network ({})", network_changes.join(", ")));
        }
        // Running workers read the API key at start only: restart them to pick up a new one.
        let rotated = cx.outputs.secret_rotated.is_raised();
        if rotated {
            why.push("a new deployment for the new Prefect credentials".into());
        }
        // A failed first deployment launches nothing more until a new one starts.
        if found.failed_primary.is_some() {
            why.push("a new deployment, as the last one failed".into());
        }
        let force = rotated || found.failed_primary.is_some();
        if why.is_empty() {
            return Ok(None);
        }
        let name = &cx.names.service;
        cx.aws
            .ecs
            .update_service()
            .cluster(&cx.names.cluster)
            .service(name)
            .task_definition(task_definition)
            .set_desired_count(new_count)
            .set_network_configuration(
                (!network_changes.is_empty())
                    .then(|| network.sdk())
                    .transpose()?,
            )
            .force_new_deployment(force)
            .send()
            .await
            .aws(format!("updating ECS service {name}"))?;
        Ok(Some(format!(
            "updated ECS service {name}: {}",
            why.join(", ")
        )))
    }
}

#[async_trait]
impl Step for ServiceStep {
    fn name(&self) -> &'static str {
        NAME
    }

    fn depends_on(&self) -> &'static [&'static str] {
        // The roles too: a task started before they exist fails to start.
        &[
            "cluster",
            "network",
            "task-definition",
            "execution-role",
            "worker-role",
        ]
    }

    async fn look(&self, cx: &Context) -> Result<StepPlan> {
        // A run killed between registering a revision and updating the service left it behind.
        let (service, latest) =
            tokio::try_join!(described_at_look(cx), latest_active_task_definition(cx))?;
        let found = service.map(|s| Found::new(cx, &s));
        let state = Self::state(
            &found,
            cx.spec.as_ref(),
            (latest.as_deref(), &cx.names.task_family),
            &ServiceNetwork::recorded(cx),
        );
        self.seen.put(found);
        Ok(StepPlan::one(
            NAME,
            ResourceKind::Service,
            &cx.names.service,
            state,
        ))
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let name = &cx.names.service;
        let task_definition = cx.outputs.task_definition_arn.get()?;
        let desired_count = i32::try_from(cx.spec()?.desired_count)?;
        let mut report = StepReport::default();
        let arn = match self.seen.get()?.filter(|f| !f.is_inactive()) {
            None => {
                let arn = Self::create(cx, task_definition, desired_count).await?;
                cx.ledger.created(NAME, ResourceKind::Service, &arn)?;
                report.change(format!("created ECS service {name}"));
                arn
            }
            Some(found) if !found.owned => return Err(not_ours(cx, "an ECS service", name)),
            Some(found) if found.is_draining() => bail!(
                "ECS service {name} is still draining after a delete; wait until `ecsctl status --pool {}` shows it gone, then bootstrap again",
                cx.pool()
            ),
            Some(found) => {
                record_found(cx, NAME, ResourceKind::Service, &found.arn)?;
                let what = format!("ECS service {name}");
                let (update, retag) = tokio::try_join!(
                    Self::update(cx, &found, task_definition, desired_count),
                    retag::apply(cx, Tagged::Ecs(&found.arn), &what, &found.tags),
                )?;
                report.changes.extend(update.into_iter().chain(retag));
                found.arn
            }
        };
        report.resource("service", arn);
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        let recorded = cx.recorded(NAME, ResourceKind::Service);
        let mut report = StepReport::default();
        let found = self.seen.get()?.filter(|f| !f.is_inactive());
        if let Some(found) = found.as_ref().filter(|f| f.owned) {
            if delete(cx, found).await? {
                report.change(format!("deleted ECS service {}", cx.names.service));
            }
        } else if found.is_some() {
            // The recorded name (and so ARN) now belongs to a service someone else made.
            cx.outputs.foreign_service.raise();
            report.change(left_alone(cx, &format!("ECS service {}", cx.names.service)));
        }
        // The step has one service, found by name: whatever the ledger recorded is now gone.
        for arn in &recorded {
            cx.ledger.forget(ResourceKind::Service, arn)?;
        }
        Ok(report)
    }
}

/// The pool's service as ECS describes it, in any status; `None` when it or its cluster is missing.
/// The service as it was when the run looked; asked of AWS once per run whoever asks first.
pub async fn described_at_look(cx: &Context) -> Result<Option<Service>> {
    let service = cx
        .shared
        .service_at_look
        .get_or_try_init(|| describe(cx))
        .await?;
    Ok(service.clone())
}

/// The service as it is now.
async fn describe(cx: &Context) -> Result<Option<Service>> {
    let (cluster, name) = (&cx.names.cluster, &cx.names.service);
    let described = cx
        .aws
        .ecs
        .describe_services()
        .cluster(cluster)
        .services(name)
        .include(ServiceField::Tags)
        .send()
        .await
        .found(
            &["ClusterNotFoundException"],
            format!("describing ECS service {name} in cluster {cluster}"),
        )?;
    // A missing service comes back as a MISSING failure, not as an error.
    Ok(described.and_then(|d| {
        d.services()
            .iter()
            .find(|s| s.service_name() == Some(name.as_str()))
            .cloned()
    }))
}

/// Deletes the service, waits until ECS reports it INACTIVE (AWS drains it first; removing the
/// roles or cluster before then can leave it hanging), then until its tasks have stopped (see
/// [`drain`]). `force` stops its tasks without scaling it to zero first, which would only add a
/// round trip. `false` if it was already gone.
async fn delete(cx: &Context, found: &Found) -> Result<bool> {
    let (cluster, name) = (&cx.names.cluster, &cx.names.service);
    // A DRAINING service was deleted by an earlier run: only the waits are left.
    let mut inactive = false;
    if !found.is_draining() {
        let deleted = cx
            .aws
            .ecs
            .delete_service()
            .cluster(cluster)
            .service(name)
            .force(true)
            .send()
            .await
            .found(GONE, format!("deleting ECS service {name}"))?;
        let Some(deleted) = deleted else {
            return Ok(false);
        };
        inactive = deleted.service().and_then(|s| s.status()) == Some("INACTIVE");
    }
    if !inactive {
        wait_until_inactive(cx).await?;
    }
    drain::wait_for_tasks_to_stop(cx).await?;
    Ok(true)
}

async fn wait_until_inactive(cx: &Context) -> Result<()> {
    let timeout = cx.teardown().timeout;
    let gone = poll_until(timeout, DRAIN_POLL, || async move {
        let service = describe(cx).await?;
        Ok(service
            .filter(|s| s.status() != Some("INACTIVE"))
            .is_none()
            .then_some(()))
    })
    .await?;
    gone.ok_or_else(|| {
        anyhow!(
            "ECS service {} is still draining after {}s; run `ecsctl destroy --pool {}` again later",
            cx.names.service,
            timeout.as_secs(),
            cx.pool()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TD: &str = "arn:aws:ecs:us-east-1:1:task-definition/ecsctl-p-worker:1";

    fn network(public_ip: bool) -> ServiceNetwork {
        ServiceNetwork::new(
            vec!["subnet-a".into()],
            vec!["sg-1".into()],
            Some(public_ip),
        )
    }

    fn found(failed_primary: Option<&str>, public_ip: bool) -> Option<Found> {
        Some(Found {
            arn: "arn:svc".into(),
            owned: true,
            status: "ACTIVE".into(),
            task_definition: TD.into(),
            desired_count: 1,
            network: Some(network(public_ip)),
            failed_primary: failed_primary.map(str::to_string),
            tags: TagChanges::default(),
        })
    }

    fn plan_text(state: &ItemState) -> String {
        match state {
            ItemState::Drifted { drift, .. } => drift.plan_text(),
            other => panic!("not drifted: {other:?}"),
        }
    }

    #[test]
    fn a_failed_first_deployment_and_a_public_ip_turned_off_are_drift() {
        let state = |f: Option<Found>| {
            ServiceStep::state(&f, None, (Some(TD), "ecsctl-p-worker"), &network(true))
        };
        assert!(matches!(
            state(found(None, true)),
            ItemState::Present { .. }
        ));
        let failed = plan_text(&state(found(Some("tasks failed to start."), true)));
        assert!(
            failed.contains("nothing to roll back to (tasks failed to start.)")
                && failed.ends_with("(a new deployment will be forced)"),
            "{failed}"
        );
        let off = plan_text(&state(found(None, false)));
        assert_eq!(off, "public IP turned off (wanted on) (will be updated)");
    }
}
