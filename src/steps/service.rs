//! `service`: the ECS service that keeps the worker running on Fargate, and the wait for it to be
//! steady. A new task definition revision, a new desired count or a rotated API key update the
//! service in place (one UpdateService); the same inputs change nothing.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Result};
use async_trait::async_trait;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, DeploymentCircuitBreaker, DeploymentConfiguration,
    DeploymentRolloutState, DesiredStatus, LaunchType, NetworkConfiguration, PropagateTags,
    Service, ServiceField,
};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

use super::cluster::{ecs_tags, foreign, owned};
use super::task_definition::latest_active_arn;
use super::{
    output, poll_until, retry_while, Context, ItemState, Outputs, PlanItem, Seen, Step, StepPlan,
    StepReport,
};
use crate::aws::{time_of, AwsResultExt};
use crate::config::StackSpec;
use crate::health;
use crate::ledger::ResourceKind;
use time::format_description::well_known::Rfc3339;

const NAME: &str = "service";
/// Answers that mean the service (or its cluster) is already gone.
const GONE: &[&str] = &[
    "ServiceNotFoundException",
    "ServiceNotActiveException",
    "ClusterNotFoundException",
];
/// IAM is eventually consistent: ECS may not yet be able to use a role created seconds ago.
const ROLE_NOT_READY: &[&str] = &[
    "unable to assume the role",
    "verify that the ecs service role being passed has the proper permissions",
];
const ROLE_RETRY_TIMEOUT: Duration = Duration::from_secs(120);
const STEADY_POLL: Duration = Duration::from_secs(5);
const DRAIN_POLL: Duration = Duration::from_secs(2);
/// Events this much older than the start of a wait belong to earlier runs and are not shown.
const EVENT_LOOKBACK_SECS: i64 = 120;
/// How many events and stopped tasks a wait error (and, for stopped tasks, status) shows.
const DIAGNOSTIC_ITEMS: usize = 5;

#[derive(Debug, Clone)]
struct Found {
    arn: String,
    owned: bool,
    /// ACTIVE, DRAINING (being deleted) or INACTIVE (deleted; moto keeps these forever).
    status: String,
    task_definition: String,
    desired_count: i32,
}

impl Found {
    fn new(cx: &Context, s: &Service) -> Self {
        Self {
            arn: s.service_arn().unwrap_or(&cx.names.service).to_string(),
            owned: owned(cx, s.tags()),
            status: s.status().unwrap_or_default().to_string(),
            task_definition: s.task_definition().unwrap_or_default().to_string(),
            desired_count: s.desired_count(),
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
    /// `latest`: the task definition revision the service should run, when known.
    fn state(
        found: &Option<Found>,
        spec: Option<&StackSpec>,
        latest: Option<&str>,
        family: &str,
    ) -> ItemState {
        let Some(f) = found.as_ref().filter(|f| !f.is_inactive()) else {
            return ItemState::Missing;
        };
        let id = f.arn.clone();
        if !f.owned {
            return ItemState::Foreign { id };
        }
        if f.is_draining() {
            return ItemState::Drifted {
                id,
                what: "still draining after a delete; bootstrap can recreate it once it is gone"
                    .into(),
            };
        }
        let mut what = Vec::new();
        let runs_wanted = match latest {
            Some(latest) => f.task_definition == latest,
            None => family_of(&f.task_definition) == family,
        };
        if !runs_wanted {
            what.push(format!("runs task definition {}", f.task_definition));
        }
        if let Some(want) = spec.map(|s| s.desired_count) {
            if i64::from(f.desired_count) != i64::from(want) {
                what.push(format!("desired count {} (wanted {want})", f.desired_count));
            }
        }
        if what.is_empty() {
            ItemState::Present { id }
        } else {
            ItemState::Drifted {
                id,
                what: format!("{} (will be updated)", what.join(", ")),
            }
        }
    }

    async fn create(cx: &Context, task_definition: &str, desired_count: i32) -> Result<String> {
        let (cluster, name) = (&cx.names.cluster, &cx.names.service);
        let vpc = AwsVpcConfiguration::builder()
            .set_subnets(Some(
                output(&cx.outputs.subnet_ids, "the subnet ids")?.clone(),
            ))
            .security_groups(output(
                &cx.outputs.security_group_id,
                "the security group id",
            )?)
            .assign_public_ip(AssignPublicIp::Enabled)
            .build()?;
        let network = NetworkConfiguration::builder()
            .awsvpc_configuration(vpc)
            .build();
        let breaker = DeploymentCircuitBreaker::builder()
            .enable(true)
            .rollback(true)
            .build();
        let deployment = DeploymentConfiguration::builder()
            .deployment_circuit_breaker(breaker)
            .minimum_healthy_percent(100)
            .maximum_percent(200)
            .build();
        let tags = ecs_tags(cx, NAME);
        let created = retry_while(ROLE_RETRY_TIMEOUT, role_not_ready, || {
            let request = cx
                .aws
                .ecs
                .create_service()
                .cluster(cluster)
                .service_name(name)
                .task_definition(task_definition)
                .desired_count(desired_count)
                .launch_type(LaunchType::Fargate)
                .network_configuration(network.clone())
                .deployment_configuration(deployment.clone())
                .propagate_tags(PropagateTags::Service)
                .enable_ecs_managed_tags(true)
                .set_tags(Some(tags.clone()));
            async move {
                request
                    .send()
                    .await
                    .aws(format!("creating ECS service {name} in cluster {cluster}"))
            }
        })
        .await?;
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
        // Running workers read the API key at start only: restart them to pick up a new one.
        let rotated = Outputs::flag(&cx.outputs.secret_rotated);
        if rotated {
            why.push("a new deployment for the new API key".into());
        }
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
            .force_new_deployment(rotated)
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
        let (service, latest) = tokio::try_join!(described_at_look(cx), latest_active_arn(cx))?;
        let found = service.map(|s| Found::new(cx, &s));
        let state = Self::state(
            &found,
            cx.spec.as_ref(),
            latest.as_deref(),
            &cx.names.task_family,
        );
        let items = vec![PlanItem::new(
            ResourceKind::Service,
            &cx.names.service,
            state,
        )];
        self.seen.put(found);
        Ok(StepPlan { step: NAME, items })
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let name = &cx.names.service;
        let task_definition = output(&cx.outputs.task_definition_arn, "the task definition ARN")?;
        let desired_count = i32::try_from(cx.spec()?.desired_count)?;
        let mut report = StepReport::default();
        let arn = match self.seen.get()?.filter(|f| !f.is_inactive()) {
            None => {
                let arn = Self::create(cx, task_definition, desired_count).await?;
                cx.ledger.created(NAME, ResourceKind::Service, &arn)?;
                report.change(format!("created ECS service {name}"));
                arn
            }
            Some(found) if !found.owned => return Err(foreign(cx, "service", name)),
            Some(found) if found.is_draining() => bail!(
                "ECS service {name} is still draining after a delete; wait until `ecsctl status --pool {}` shows it gone, then bootstrap again",
                cx.pool()
            ),
            Some(found) => {
                // Found by tag but missing from the ledger (a run killed before recording it).
                cx.ledger.created(NAME, ResourceKind::Service, &found.arn)?;
                if let Some(change) = Self::update(cx, &found, task_definition, desired_count).await? {
                    report.change(change);
                }
                found.arn
            }
        };
        report.resource("service", arn);
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        let recorded: Vec<String> = cx
            .recorded(NAME)
            .into_iter()
            .filter(|r| r.kind == ResourceKind::Service)
            .map(|r| r.id)
            .collect();
        let mut report = StepReport::default();
        let target = self
            .seen
            .get()?
            .filter(|f| !f.is_inactive() && (f.owned || recorded.contains(&f.arn)));
        if let Some(found) = target {
            if delete(cx, &found).await? {
                report.change(format!("deleted ECS service {}", cx.names.service));
            }
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
    let service = cx.service_at_look.get_or_try_init(|| describe(cx)).await?;
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

/// The family of a task definition ARN (`…:task-definition/FAMILY:REV`) or `FAMILY:REV`.
fn family_of(task_definition: &str) -> &str {
    let last = task_definition
        .rsplit('/')
        .next()
        .unwrap_or(task_definition);
    last.split(':').next().unwrap_or(last)
}

fn role_not_ready(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}").to_lowercase();
    ROLE_NOT_READY.iter().any(|m| text.contains(m))
}

/// Deletes the service and waits until ECS reports it INACTIVE (AWS drains it first; removing the
/// roles or cluster before then can leave it hanging). `force` stops its tasks without scaling it
/// to zero first, which would only add a round trip. `false` if it was already gone.
async fn delete(cx: &Context, found: &Found) -> Result<bool> {
    let (cluster, name) = (&cx.names.cluster, &cx.names.service);
    // A DRAINING service was deleted by an earlier run: only the wait is left.
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
        if deleted.service().and_then(|s| s.status()) == Some("INACTIVE") {
            return Ok(true);
        }
    }
    wait_until_inactive(cx).await?;
    Ok(true)
}

async fn wait_until_inactive(cx: &Context) -> Result<()> {
    let gone = poll_until(cx.teardown_timeout, DRAIN_POLL, || async move {
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
            cx.teardown_timeout.as_secs(),
            cx.pool()
        )
    })
}

/// Where a service's rollout stands.
#[derive(Debug, PartialEq, Eq)]
enum Rollout {
    Steady,
    InProgress,
    Failed(String),
}

/// Steady when every wanted task runs and the primary deployment completed (or, where ECS reports
/// no rollout state, it is the only deployment). Any failed deployment (circuit breaker) fails.
fn rollout(s: &Service) -> Rollout {
    if let Some(failed) = s
        .deployments()
        .iter()
        .find(|d| d.rollout_state() == Some(&DeploymentRolloutState::Failed))
    {
        let reason = failed.rollout_state_reason().unwrap_or("no reason given");
        return Rollout::Failed(reason.to_string());
    }
    let all_running = s.running_count() == s.desired_count();
    let primary = s
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"));
    match primary.map(|d| d.rollout_state()) {
        Some(Some(DeploymentRolloutState::Completed)) if all_running => Rollout::Steady,
        Some(None) if all_running && s.deployments().len() == 1 => Rollout::Steady,
        _ => Rollout::InProgress,
    }
}

/// Waits until the service runs its desired count on a completed rollout, showing its events as
/// they appear. On a failed rollout or timeout the error carries the recent events and the reasons
/// tasks stopped, which is where ECS says what went wrong.
pub async fn wait_until_steady(cx: &Context, timeout: Duration) -> Result<()> {
    let name = &cx.names.service;
    let shown = &Mutex::new(HashSet::new());
    let since = DateTime::from(SystemTime::now()).secs() - EVENT_LOOKBACK_SECS;
    let outcome = poll_until(timeout, STEADY_POLL, || async move {
        let service = describe(cx)
            .await?
            .filter(|s| s.status() == Some("ACTIVE"))
            .ok_or_else(|| anyhow!("ECS service {name} is gone; run bootstrap again"))?;
        show_new_events(cx, &service, shown, since);
        match rollout(&service) {
            Rollout::Steady => Ok(Some(())),
            Rollout::InProgress => Ok(None),
            Rollout::Failed(reason) => Err(anyhow!(
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
        Some(s) => (counts(s), diagnose(cx, s).await),
        None => ("the service is gone".to_string(), String::new()),
    };
    bail!(
        "ECS service {name} did not become steady within {}s ({counts}).{details}\nRun `ecsctl status --pool {}` to look again, or bootstrap with a longer --wait-timeout.",
        timeout.as_secs(),
        cx.pool()
    )
}

/// Where the service stands, e.g. "running 0 of 1, pending 1, rollout IN_PROGRESS".
fn counts(s: &Service) -> String {
    let rollout = s
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .and_then(|d| d.rollout_state())
        .map_or("state unknown", |r| r.as_str());
    format!(
        "running {} of {}, pending {}, rollout {rollout}",
        s.running_count(),
        s.desired_count(),
        s.pending_count()
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
pub async fn recently_stopped_tasks(cx: &Context) -> Result<Vec<health::StoppedTask>> {
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
    let mut tasks: Vec<health::StoppedTask> = described.tasks().iter().map(stopped_task).collect();
    tasks.sort_by_key(|t| std::cmp::Reverse(t.stopped_at));
    tasks.truncate(DIAGNOSTIC_ITEMS);
    Ok(tasks)
}

pub fn stopped_task(t: &aws_sdk_ecs::types::Task) -> health::StoppedTask {
    health::StoppedTask {
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
            .map(|c| health::ContainerStop {
                name: c.name().unwrap_or_default().to_string(),
                exit_code: c.exit_code(),
                reason: c.reason().filter(|r| !r.is_empty()).map(str::to_string),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::Deployment;

    fn service(running: i32, deployments: Vec<Deployment>) -> Service {
        Service::builder()
            .desired_count(1)
            .running_count(running)
            .set_deployments(Some(deployments))
            .build()
    }

    fn deployment(status: &str, state: Option<DeploymentRolloutState>) -> Deployment {
        Deployment::builder()
            .status(status)
            .set_rollout_state(state)
            .build()
    }

    #[test]
    fn steady_needs_a_completed_rollout_and_all_tasks_running() {
        let done = || deployment("PRIMARY", Some(DeploymentRolloutState::Completed));
        assert_eq!(rollout(&service(1, vec![done()])), Rollout::Steady);
        assert_eq!(rollout(&service(0, vec![done()])), Rollout::InProgress);
        let going = deployment("PRIMARY", Some(DeploymentRolloutState::InProgress));
        assert_eq!(rollout(&service(1, vec![going])), Rollout::InProgress);
        assert_eq!(
            rollout(&service(1, vec![deployment("PRIMARY", None)])),
            Rollout::Steady
        );
    }

    #[test]
    fn a_failed_deployment_fails_the_wait() {
        let failed = Deployment::builder()
            .status("ACTIVE")
            .rollout_state(DeploymentRolloutState::Failed)
            .rollout_state_reason("circuit breaker triggered")
            .build();
        let primary = deployment("PRIMARY", Some(DeploymentRolloutState::InProgress));
        assert_eq!(
            rollout(&service(0, vec![primary, failed])),
            Rollout::Failed("circuit breaker triggered".into())
        );
    }

    #[test]
    fn family_is_read_from_arns_and_short_forms() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/ecsctl-p-worker:3";
        assert_eq!(family_of(arn), "ecsctl-p-worker");
        assert_eq!(family_of("ecsctl-p-worker:2"), "ecsctl-p-worker");
    }
}
