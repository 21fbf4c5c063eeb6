//! `task-definition`: the worker's Fargate task definition. Changed inputs register a new revision
//! (revisions are immutable); the same inputs register nothing. The Prefect credentials (the API
//! key, a self-hosted server's auth string) reach the container only through
//! `secrets[].valueFrom`, never as plain environment.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{anyhow, Result};
use async_trait::async_trait;
use aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, CpuArchitecture, HealthCheck, KeyValuePair,
    LogConfiguration, LogDriver, NetworkMode, OsFamily, RuntimePlatform, Secret, TaskDefinition,
    TaskDefinitionStatus,
};

use super::own::{ecs_owned, not_ours, record_found, tag};
use super::retag::{self, TagChanges, Tagged};
use super::shared::latest_task_definition;
use super::wait::retry_while;
use super::{Context, ItemState, Names, PlanItem, Remedy, Seen, Step, StepPlan, StepReport};
use crate::aws::{messages, AwsResultExt};
use crate::config::StackSpec;
use crate::ledger::ResourceKind;

const NAME: &str = "task-definition";
/// How long registering waits for IAM to propagate roles created in this run (seconds, as a rule).
const ROLE_WAIT: Duration = Duration::from_secs(60);
const API_KEY_VAR: &str = "PREFECT_API_KEY";
const AUTH_STRING_VAR: &str = "PREFECT_API_AUTH_STRING";
const API_URL_VAR: &str = "PREFECT_API_URL";
/// DeleteTaskDefinitions takes at most this many ARNs per call.
const DELETE_BATCH: usize = 10;
/// Where the worker's observer finds its queue (prefect-aws's settings).
const OBSERVER_QUEUE_VAR: &str = "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME";
const OBSERVER_REGION_VAR: &str = "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_REGION";
/// Starts the worker named after its ECS task (from the task metadata endpoint; the hostname
/// where there is none), so status can tell ecsctl's workers from others on the same pool. The
/// pool is its one argument; `exec` leaves the worker as the container's main process.
const START_WORKER: &str = r#"import json, os, socket, sys, urllib.request
pool = sys.argv[1]
try:
    uri = os.environ["ECS_CONTAINER_METADATA_URI_V4"] + "/task"
    task = json.load(urllib.request.urlopen(uri, timeout=5))["TaskARN"].rsplit("/", 1)[-1]
except Exception:
    task = socket.gethostname()
os.execvp("prefect", ["prefect", "worker", "start", "--pool", pool, "--type", "ecs",
                      "--with-healthcheck", "--name", "ecsctl-" + pool + "-" + task])
"#;
/// The worker's `--with-healthcheck` server answers here once it polls; a hung worker fails it
/// and the service replaces the task.
const HEALTH_CHECK: &str = "python -c \"import urllib.request; urllib.request.urlopen('http://localhost:8080/health', timeout=5)\" || exit 1";
/// Seconds: between checks, per check, failures before unhealthy, and the start-up allowed
/// (pulling nothing, but importing Prefect and registering with the server takes a while).
const HEALTH_INTERVAL: i32 = 30;
const HEALTH_TIMEOUT: i32 = 10;
const HEALTH_RETRIES: i32 = 3;
const HEALTH_START_PERIOD: i32 = 120;

/// What the definition points at in other steps' resources.
#[derive(Debug, Clone)]
struct Refs {
    execution_role_arn: String,
    task_role_arn: String,
    /// The ARN of the secret holding each credential the worker gets.
    api_key_secret: Option<String>,
    auth_string_secret: Option<String>,
    log_group: String,
}

impl Refs {
    /// The exact values (apply). The role ARNs follow from their names and path, so registering
    /// does not wait for the roles: the service, which starts tasks, waits for them instead.
    fn from_outputs(cx: &Context) -> Result<Self> {
        let o = &cx.outputs;
        let secrets = o.secret_arns.get()?;
        Ok(Self {
            execution_role_arn: cx.role_arn(&cx.names.execution_role),
            task_role_arn: cx.role_arn(&cx.names.worker_role),
            api_key_secret: secrets.api_key.clone(),
            auth_string_secret: secrets.auth_string.clone(),
            log_group: o.log_group.get()?.clone(),
        })
    }

    /// The values as far as they are known before the other steps ran (look): names are derived,
    /// but Secrets Manager appends a random suffix to each secret's ARN.
    fn expected(cx: &Context, spec: &StackSpec, current: &Definition) -> Self {
        let expect = |wanted: bool, secret: &str, var: &str| {
            let prefix = format!("{}:secret:{secret}-", cx.arn_prefix("secretsmanager"));
            wanted.then(|| secret_for_look(&prefix, current, var))
        };
        Self {
            execution_role_arn: cx.role_arn(&cx.names.execution_role),
            task_role_arn: cx.role_arn(&cx.names.worker_role),
            api_key_secret: expect(spec.credentials.api_key, &cx.names.secret, API_KEY_VAR),
            auth_string_secret: expect(
                spec.credentials.auth_string,
                &cx.names.auth_string_secret,
                AUTH_STRING_VAR,
            ),
            log_group: cx.names.log_group.clone(),
        }
    }
}

/// The parts of the worker's task definition ecsctl decides, as plain data: built from the inputs
/// by [`desired`] or read back from AWS by [`current`], so the two compare field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Definition {
    cpu: String,
    memory: String,
    execution_role_arn: String,
    task_role_arn: String,
    /// Container names; ecsctl's definition has exactly one.
    containers: Vec<String>,
    image: String,
    command: Vec<String>,
    environment: BTreeMap<String, String>,
    /// Environment variable → the ARN ECS reads its value from at task start.
    secrets: BTreeMap<String, String>,
    log_options: BTreeMap<String, String>,
    /// The container health check's command.
    health_check: Vec<String>,
}

/// The definition the inputs ask for.
fn desired(names: &Names, spec: &StackSpec, region: &str, refs: &Refs) -> Definition {
    let command = ["python", "-c", START_WORKER, &names.pool];
    Definition {
        cpu: spec.cpu.to_string(),
        memory: spec.memory.to_string(),
        execution_role_arn: refs.execution_role_arn.clone(),
        task_role_arn: refs.task_role_arn.clone(),
        containers: vec![names.container.clone()],
        image: spec.image.clone(),
        command: command.map(str::to_string).to_vec(),
        environment: BTreeMap::from([
            (API_URL_VAR.to_string(), spec.prefect_api_url.clone()),
            (OBSERVER_QUEUE_VAR.to_string(), names.events_queue.clone()),
            (OBSERVER_REGION_VAR.to_string(), region.to_string()),
        ]),
        health_check: vec!["CMD-SHELL".to_string(), HEALTH_CHECK.to_string()],
        secrets: [
            (API_KEY_VAR, &refs.api_key_secret),
            (AUTH_STRING_VAR, &refs.auth_string_secret),
        ]
        .into_iter()
        .filter_map(|(var, arn)| Some((var.to_string(), arn.clone()?)))
        .collect(),
        log_options: BTreeMap::from([
            ("awslogs-group".to_string(), refs.log_group.clone()),
            ("awslogs-region".to_string(), region.to_string()),
            (
                "awslogs-stream-prefix".to_string(),
                super::context::WORKER_LOG_STREAM_PREFIX.to_string(),
            ),
        ]),
    }
}

/// Reads a registered definition back into the comparable shape (container fields from `container`).
fn current(td: &TaskDefinition, container: &str) -> Definition {
    let mut def = Definition {
        cpu: td.cpu().unwrap_or_default().to_string(),
        memory: td.memory().unwrap_or_default().to_string(),
        execution_role_arn: td.execution_role_arn().unwrap_or_default().to_string(),
        task_role_arn: td.task_role_arn().unwrap_or_default().to_string(),
        containers: td
            .container_definitions()
            .iter()
            .map(|c| c.name().unwrap_or_default().to_string())
            .collect(),
        ..Definition::default()
    };
    let Some(c) = td
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(container))
    else {
        return def;
    };
    def.image = c.image().unwrap_or_default().to_string();
    def.command = c.command().to_vec();
    def.environment = c
        .environment()
        .iter()
        .map(|kv| {
            let (name, value) = (
                kv.name().unwrap_or_default(),
                kv.value().unwrap_or_default(),
            );
            (name.to_string(), value.to_string())
        })
        .collect();
    def.secrets = c
        .secrets()
        .iter()
        .map(|s| (s.name().to_string(), s.value_from().to_string()))
        .collect();
    def.health_check = c
        .health_check()
        .map(|h| h.command().to_vec())
        .unwrap_or_default();
    def.log_options = c
        .log_configuration()
        .and_then(|l| l.options())
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    def
}

/// What differs between the wanted and the current definition, by field; empty when nothing does.
/// Log options AWS adds on its own (e.g. a default `mode`) are not a difference.
fn differences(want: &Definition, have: &Definition) -> Vec<&'static str> {
    let log_differs = want
        .log_options
        .iter()
        .any(|(k, v)| have.log_options.get(k) != Some(v));
    [
        ("cpu", want.cpu != have.cpu),
        ("memory", want.memory != have.memory),
        (
            "execution role",
            want.execution_role_arn != have.execution_role_arn,
        ),
        ("task role", want.task_role_arn != have.task_role_arn),
        ("containers", want.containers != have.containers),
        ("image", want.image != have.image),
        ("command", want.command != have.command),
        ("environment", want.environment != have.environment),
        ("secrets", want.secrets != have.secrets),
        ("log configuration", log_differs),
        ("health check", want.health_check != have.health_check),
    ]
    .into_iter()
    .filter_map(|(what, differs)| differs.then_some(what))
    .collect()
}

/// The ARN to expect for `var` before the secret step ran: the current one if it is the pool's
/// secret (right name, any suffix), else the bare prefix, which then shows as a difference.
fn secret_for_look(prefix: &str, current: &Definition, var: &str) -> String {
    match current.secrets.get(var) {
        Some(arn) if arn.starts_with(prefix) => arn.clone(),
        _ => prefix.to_string(),
    }
}

/// The one container of the definition, in the SDK's shape.
fn container_definition(want: &Definition, name: &str) -> Result<ContainerDefinition> {
    let environment = want
        .environment
        .iter()
        .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
        .collect();
    let secrets = want
        .secrets
        .iter()
        .map(|(k, v)| Secret::builder().name(k).value_from(v).build())
        .collect::<Result<Vec<_>, _>>()?;
    let log = want
        .log_options
        .iter()
        .fold(
            LogConfiguration::builder().log_driver(LogDriver::Awslogs),
            |b, (k, v)| b.options(k, v),
        )
        .build()?;
    let health_check = HealthCheck::builder()
        .set_command(Some(want.health_check.clone()))
        .interval(HEALTH_INTERVAL)
        .timeout(HEALTH_TIMEOUT)
        .retries(HEALTH_RETRIES)
        .start_period(HEALTH_START_PERIOD)
        .build()?;
    Ok(ContainerDefinition::builder()
        .name(name)
        .image(&want.image)
        .essential(true)
        .health_check(health_check)
        .set_command(Some(want.command.clone()))
        .set_environment(Some(environment))
        .set_secrets(Some(secrets))
        .log_configuration(log)
        .build())
}

#[derive(Debug, Clone)]
struct Found {
    arn: String,
    owned: bool,
    /// DescribeTaskDefinition by family may return a deregistered (INACTIVE) latest revision.
    active: bool,
    current: Definition,
    tags: TagChanges,
}

#[derive(Default)]
pub struct TaskDefinitionStep {
    seen: Seen<Option<Found>>,
}

impl TaskDefinitionStep {
    /// `want` is `None` when the run has no inputs to compare with (destroy or status without a ledger).
    fn state(found: &Option<Found>, want: Option<&Definition>) -> ItemState {
        let Some(f) = found else {
            return ItemState::Missing;
        };
        let id = f.arn.clone();
        if !f.owned {
            return ItemState::Foreign { id };
        }
        if !f.active {
            return ItemState::Missing;
        }
        match want.map(|w| differences(w, &f.current)) {
            Some(diff) if !diff.is_empty() => ItemState::drifted(
                id,
                format!("{} changed", diff.join(", ")),
                Remedy::Update(Some("a new revision will be registered")),
            ),
            _ => f.tags.onto(ItemState::Present { id }),
        }
    }

    async fn register(cx: &Context, want: &Definition) -> Result<String> {
        let family = &cx.names.task_family;
        let platform = RuntimePlatform::builder()
            .operating_system_family(OsFamily::Linux)
            .cpu_architecture(CpuArchitecture::X8664)
            .build();
        let container = container_definition(want, &cx.names.container)?;
        let noted = AtomicBool::new(false);
        // Registering does not wait for the roles (see `Refs::from_outputs`): while ECS cannot
        // see a role created a moment ago it answers "Role is not valid", which is waited out.
        let registered = retry_while(ROLE_WAIT, messages::role_not_valid_yet, || async {
            let result = cx
                .aws
                .ecs
                .register_task_definition()
                .family(family)
                .network_mode(NetworkMode::Awsvpc)
                .requires_compatibilities(Compatibility::Fargate)
                .cpu(&want.cpu)
                .memory(&want.memory)
                .execution_role_arn(&want.execution_role_arn)
                .task_role_arn(&want.task_role_arn)
                .runtime_platform(platform.clone())
                .container_definitions(container.clone())
                .set_tags(Some(cx.sdk_tags(NAME, tag::ecs)))
                .send()
                .await
                .aws(format!("registering task definition {family}"));
            if matches!(&result, Err(e) if messages::role_not_valid_yet(e))
                && !noted.swap(true, Ordering::SeqCst)
            {
                cx.progress.note(
                    NAME,
                    "ECS does not see the new IAM roles yet; retrying while IAM propagates them",
                );
            }
            result
        })
        .await?;
        registered
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("registering task definition {family}: AWS returned no ARN"))
    }
}

#[async_trait]
impl Step for TaskDefinitionStep {
    fn name(&self) -> &'static str {
        NAME
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["secret", "log-group"]
    }

    async fn look(&self, cx: &Context) -> Result<StepPlan> {
        let family = &cx.names.task_family;
        let found = latest_task_definition(cx).await?.and_then(|out| {
            let td = out.task_definition()?;
            Some(Found {
                arn: td.task_definition_arn().unwrap_or(family).to_string(),
                owned: ecs_owned(cx, out.tags()),
                active: td.status() == Some(&TaskDefinitionStatus::Active),
                current: current(td, &cx.names.container),
                tags: TagChanges::for_ecs(cx, out.tags()),
            })
        });
        let want = match (&cx.spec, &found) {
            (Some(spec), Some(f)) => Some(desired(
                &cx.names,
                spec,
                &cx.identity.region,
                &Refs::expected(cx, spec, &f.current),
            )),
            _ => None,
        };
        let state = Self::state(&found, want.as_ref());
        self.seen.put(found);
        let mut item = PlanItem::new(ResourceKind::TaskDefinition, family, state);
        // The image the worker runs, so a plan says which Prefect it starts.
        if let Some(spec) = &cx.spec {
            item = item.with_detail(format!("image {}", spec.image));
        }
        Ok(StepPlan {
            step: NAME,
            items: vec![item],
        })
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let family = &cx.names.task_family;
        let found = self.seen.get()?;
        if found.as_ref().is_some_and(|f| !f.owned) {
            return Err(not_ours(cx, "an ECS task definition family", family));
        }
        let want = desired(
            &cx.names,
            cx.spec()?,
            &cx.identity.region,
            &Refs::from_outputs(cx)?,
        );
        let live = found.filter(|f| f.active);
        let diff = live.as_ref().map(|f| differences(&want, &f.current));
        let mut report = StepReport::default();
        let arn = match (live, diff) {
            (Some(f), Some(diff)) if diff.is_empty() => {
                record_found(cx, NAME, ResourceKind::TaskDefinition, &f.arn)?;
                // The revision in use keeps its place; only its tags change.
                let what = format!("task definition {}", f.arn);
                let retag = retag::apply(cx, Tagged::Ecs(&f.arn), &what, &f.tags);
                report.changes.extend(retag.await?);
                f.arn
            }
            (_, diff) => {
                let arn = Self::register(cx, &want).await?;
                cx.ledger
                    .created(NAME, ResourceKind::TaskDefinition, &arn)?;
                cx.outputs.task_definition_changed.raise();
                report.change(match diff {
                    Some(diff) => format!(
                        "registered task definition {arn} ({} changed)",
                        diff.join(", ")
                    ),
                    None => format!("registered task definition {arn}"),
                });
                arn
            }
        };
        report.resource("task definition", &arn);
        cx.outputs.task_definition_arn.set(arn);
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        let family = &cx.names.task_family;
        // A same-named family without the pool's tag is someone else's: only the ledger's own
        // revisions are removed from it.
        let owned = self.seen.get()?.is_some_and(|f| f.owned);
        let mut targets = cx.recorded(NAME, ResourceKind::TaskDefinition);
        let mut report = StepReport::default();
        if targets.is_empty() && !owned {
            return Ok(report);
        }
        let (active, inactive) = tokio::try_join!(
            list_family(cx, TaskDefinitionStatus::Active),
            list_family(cx, TaskDefinitionStatus::Inactive)
        )?;
        if owned {
            for arn in active.iter().chain(&inactive) {
                if !targets.contains(arn) {
                    targets.push(arn.clone());
                }
            }
        }
        let to_deregister: Vec<&String> = targets.iter().filter(|a| active.contains(a)).collect();
        deregister_all(cx, &to_deregister).await?;
        if !to_deregister.is_empty() {
            report.change(format!(
                "deregistered {} revision(s) of task definition {family}",
                to_deregister.len()
            ));
        }
        // Revisions in neither list are already deleted (or being deleted).
        let to_delete: Vec<String> = targets
            .iter()
            .filter(|a| active.contains(a) || inactive.contains(a))
            .cloned()
            .collect();
        let deleted = delete_all(cx, &to_delete).await;
        if deleted > 0 {
            report.change(format!(
                "deleted {deleted} revision(s) of task definition {family}"
            ));
        }
        for arn in &targets {
            cx.ledger.forget(ResourceKind::TaskDefinition, arn)?;
        }
        Ok(report)
    }
}

/// Every revision ARN of the pool's family with this status.
async fn list_family(cx: &Context, status: TaskDefinitionStatus) -> Result<Vec<String>> {
    let family = &cx.names.task_family;
    cx.aws
        .ecs
        .list_task_definitions()
        .family_prefix(family)
        .status(status.clone())
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .aws(format!(
            "listing {} revisions of task definition {family}",
            status.as_str()
        ))
}

/// Deregisters revisions concurrently; an unknown revision is already gone.
async fn deregister_all(cx: &Context, arns: &[&String]) -> Result<()> {
    futures::future::try_join_all(arns.iter().map(|arn| async move {
        let deregistered = cx
            .aws
            .ecs
            .deregister_task_definition()
            .task_definition(arn.as_str())
            .send()
            .await
            .aws(format!("deregistering task definition {arn}"));
        match deregistered {
            Err(e) if messages::task_definition_unknown(&e) => Ok(()),
            other => other.map(|_| ()),
        }
    }))
    .await
    .map(|_| ())
}

/// Deletes deregistered revisions, at most ten per call; returns how many AWS accepted. A failure
/// is only noted: a deregistered revision can no longer be used, which is what matters.
async fn delete_all(cx: &Context, arns: &[String]) -> usize {
    let mut deleted = 0;
    for batch in arns.chunks(DELETE_BATCH) {
        let result = cx
            .aws
            .ecs
            .delete_task_definitions()
            .set_task_definitions(Some(batch.to_vec()))
            .send()
            .await
            .aws("deleting deregistered task definitions");
        match result {
            Ok(out) => {
                deleted += out.task_definitions().len();
                for failure in out.failures() {
                    cx.progress.note(
                        NAME,
                        &format!(
                            "could not delete {} ({}); it stays deregistered",
                            failure.arn().unwrap_or_default(),
                            failure.reason().unwrap_or("no reason given")
                        ),
                    );
                }
            }
            Err(e) => cx.progress.note(
                NAME,
                &format!("{e:#}; the revisions stay deregistered, which is enough"),
            ),
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NetworkChoice;

    fn spec() -> StackSpec {
        StackSpec {
            credentials: Default::default(),
            flow_run: Default::default(),
            prefect_api_url: "https://api.prefect.cloud/api/accounts/a/workspaces/w".into(),
            image: "prefecthq/prefect-aws:latest".into(),
            cpu: 512,
            memory: 1024,
            desired_count: 1,
            log_retention_days: 30,
            tags: vec![],
            network: NetworkChoice::Create,
        }
    }

    fn refs() -> Refs {
        Refs {
            execution_role_arn: "arn:aws:iam::123456789012:role/ecsctl/ecsctl-p-execution".into(),
            task_role_arn: "arn:aws:iam::123456789012:role/ecsctl/ecsctl-p-worker".into(),
            api_key_secret: Some(KEY_ARN.into()),
            auth_string_secret: None,
            log_group: "/ecsctl/p/worker".into(),
        }
    }

    const KEY_ARN: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecsctl/p/prefect-api-key-AbCdEf";
    const AUTH_ARN: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecsctl/p/prefect-api-auth-string-GhIjKl";

    fn want() -> Definition {
        desired(&Names::new("p", "us-east-1"), &spec(), "us-east-1", &refs())
    }

    /// The definition as AWS would return it after registering `def`.
    fn registered(def: &Definition) -> TaskDefinition {
        TaskDefinition::builder()
            .cpu(&def.cpu)
            .memory(&def.memory)
            .execution_role_arn(&def.execution_role_arn)
            .task_role_arn(&def.task_role_arn)
            .container_definitions(container_definition(def, "prefect-worker").unwrap())
            .build()
    }

    #[test]
    fn same_definition_has_no_differences() {
        let want = want();
        let have = current(&registered(&want), "prefect-worker");
        assert_eq!(have, want);
        assert!(differences(&want, &have).is_empty());
    }

    #[test]
    fn changed_image_is_named() {
        let mut old = want();
        old.image = "prefecthq/prefect-aws:3.0".into();
        let have = current(&registered(&old), "prefect-worker");
        assert_eq!(differences(&want(), &have), vec!["image"]);
    }

    #[test]
    fn api_key_comes_only_from_the_secret() {
        let want = want();
        assert!(!want.environment.contains_key(API_KEY_VAR));
        assert_eq!(
            want.secrets.get(API_KEY_VAR).map(String::as_str),
            Some(KEY_ARN)
        );
        let container = container_definition(&want, "prefect-worker").unwrap();
        assert!(container
            .environment()
            .iter()
            .all(|kv| kv.name() != Some(API_KEY_VAR)));
    }

    #[test]
    fn worker_runs_as_its_own_role_with_the_pool_command() {
        let want = want();
        assert_ne!(want.task_role_arn, want.execution_role_arn);
        assert_eq!(want.command[..2], ["python", "-c"]);
        assert_eq!(want.command[3], "p");
        assert_eq!(
            want.environment[OBSERVER_QUEUE_VAR], "ecsctl-p-task-events",
            "the observer reads the pool's queue"
        );
        assert_eq!(want.health_check[0], "CMD-SHELL");
    }

    /// Runs the start script with a stand-in `prefect` that prints its arguments: no metadata
    /// endpoint here, so the worker is named after the host.
    #[test]
    fn the_worker_starts_named_by_ecsctl_with_its_health_check() {
        let bin = tempfile::tempdir().unwrap();
        let fake = bin.path().join("prefect");
        std::fs::write(&fake, "#!/bin/sh\necho \"$@\"\n").unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path = format!(
            "{}:{}",
            bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = std::process::Command::new("python3")
            .args(["-c", START_WORKER, "my-pool"])
            .env("PATH", path)
            .env_remove("ECS_CONTAINER_METADATA_URI_V4")
            .output()
            .expect("python3 runs (the tests need it, like the emulator does)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let args = String::from_utf8(out.stdout).unwrap();
        let host = std::process::Command::new("hostname").output().unwrap();
        let host = String::from_utf8(host.stdout).unwrap();
        assert_eq!(
            args.trim(),
            format!(
                "worker start --pool my-pool --type ecs --with-healthcheck --name ecsctl-my-pool-{}",
                host.trim()
            )
        );
    }

    #[test]
    fn look_accepts_any_suffix_of_the_pool_secret_only() {
        let prefix =
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecsctl/p/prefect-api-key-";
        let have = want();
        assert_eq!(secret_for_look(prefix, &have, API_KEY_VAR), KEY_ARN);
        let mut other = want();
        other.secrets.insert(
            API_KEY_VAR.into(),
            "arn:aws:secretsmanager:us-east-1:1:secret:x-1".into(),
        );
        let mut expected = want();
        expected.secrets.insert(
            API_KEY_VAR.into(),
            secret_for_look(prefix, &other, API_KEY_VAR),
        );
        assert_eq!(differences(&expected, &other), vec!["secrets"]);
    }

    /// The container's secrets and plain environment for a worker with these credentials.
    fn injected(
        api_key: Option<&str>,
        auth_string: Option<&str>,
    ) -> (Vec<(String, String)>, Vec<String>) {
        let refs = Refs {
            api_key_secret: api_key.map(str::to_string),
            auth_string_secret: auth_string.map(str::to_string),
            ..refs()
        };
        let want = desired(&Names::new("p", "us-east-1"), &spec(), "us-east-1", &refs);
        let container = container_definition(&want, "prefect-worker").unwrap();
        let secrets = container
            .secrets()
            .iter()
            .map(|s| (s.name().to_string(), s.value_from().to_string()))
            .collect();
        let env = container
            .environment()
            .iter()
            .map(|kv| kv.name().unwrap_or_default().to_string())
            .collect();
        (secrets, env)
    }

    #[test]
    fn each_credential_comes_only_from_its_secret() {
        let key = (API_KEY_VAR.to_string(), KEY_ARN.to_string());
        let auth = (AUTH_STRING_VAR.to_string(), AUTH_ARN.to_string());
        let cases = [
            (Some(KEY_ARN), None, vec![key.clone()]),
            (None, Some(AUTH_ARN), vec![auth.clone()]),
            // In the definition's (sorted) order.
            (Some(KEY_ARN), Some(AUTH_ARN), vec![auth, key]),
            (None, None, vec![]),
        ];
        for (api_key, auth_string, secrets) in cases {
            let (got, env) = injected(api_key, auth_string);
            assert_eq!(got, secrets, "{api_key:?} {auth_string:?}");
            // Only the URL and the observer's queue are plain environment, whatever the
            // credentials.
            assert_eq!(
                env,
                [API_URL_VAR, OBSERVER_QUEUE_VAR, OBSERVER_REGION_VAR],
                "{api_key:?} {auth_string:?}"
            );
        }
    }

    #[test]
    fn look_accepts_any_suffix_of_each_pool_secret() {
        let prefix = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecsctl/p/";
        let (key_prefix, auth_prefix) = (
            format!("{prefix}prefect-api-key-"),
            format!("{prefix}prefect-api-auth-string-"),
        );
        let mut have = want();
        have.secrets.insert(AUTH_STRING_VAR.into(), AUTH_ARN.into());
        assert_eq!(secret_for_look(&key_prefix, &have, API_KEY_VAR), KEY_ARN);
        assert_eq!(
            secret_for_look(&auth_prefix, &have, AUTH_STRING_VAR),
            AUTH_ARN
        );
        // The key's secret in the auth string's place is not the pool's auth-string secret.
        let mut swapped = have.clone();
        swapped
            .secrets
            .insert(AUTH_STRING_VAR.into(), KEY_ARN.into());
        assert_eq!(
            secret_for_look(&auth_prefix, &swapped, AUTH_STRING_VAR),
            auth_prefix
        );
        // A definition without the auth string, when one is wanted, differs in its secrets.
        let without = want();
        let mut expected = want();
        expected.secrets.insert(
            AUTH_STRING_VAR.into(),
            secret_for_look(&auth_prefix, &without, AUTH_STRING_VAR),
        );
        assert_eq!(differences(&expected, &without), vec!["secrets"]);
    }

    #[test]
    fn log_options_added_by_aws_are_not_a_difference() {
        let want = want();
        let mut have = want.clone();
        have.log_options
            .insert("mode".into(), "non-blocking".into());
        assert!(differences(&want, &have).is_empty());
    }
}
