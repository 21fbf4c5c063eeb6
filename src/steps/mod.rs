//! The steps that build a pool's stack. Every step has the same shape (see [`Step`]):
//! `look` reads what exists (no changes), `apply` creates or updates only what `look` found missing
//! or different, and `destroy` deletes what this step created. Each lives in its own module.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, Result};
use async_trait::async_trait;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use serde::Serialize;

use crate::aws::{Aws, Identity};
use crate::config::{ApiKey, StackSpec};
use crate::ledger::{LedgerHandle, Record, ResourceKind};
use crate::progress::Progress;

pub mod cluster;
pub mod execution_role;
mod iam;
pub mod log_group;
pub mod network;
pub mod secret;
pub mod service;
pub mod task_definition;
pub mod worker_role;

/// Tag keys ecsctl puts on everything it creates, at creation time.
pub const TAG_POOL: &str = "ecsctl:pool";
pub const TAG_STEP: &str = "ecsctl:step";
/// IAM path of every role ecsctl creates; lets a lost ledger be rebuilt.
pub const IAM_PATH: &str = "/ecsctl/";

/// Every step, in an order that respects dependencies (the engine still schedules by `depends_on`).
pub fn all() -> Vec<Arc<dyn Step>> {
    vec![
        Arc::new(secret::SecretStep::default()),
        Arc::new(log_group::LogGroupStep::default()),
        Arc::new(execution_role::ExecutionRoleStep::default()),
        Arc::new(worker_role::WorkerRoleStep::default()),
        Arc::new(network::NetworkStep::default()),
        Arc::new(cluster::ClusterStep::default()),
        Arc::new(task_definition::TaskDefinitionStep::default()),
        Arc::new(service::ServiceStep::default()),
    ]
}

/// One piece of the stack.
#[async_trait]
pub trait Step: Send + Sync {
    fn name(&self) -> &'static str;
    fn depends_on(&self) -> &'static [&'static str];
    /// Reads what exists. Never changes anything. Remembers what it saw for `apply`.
    async fn look(&self, cx: &Context) -> Result<StepPlan>;
    /// Creates or updates what `look` found missing or different; records each creation at once.
    async fn apply(&self, cx: &Context) -> Result<StepReport>;
    /// Deletes what this step created (the ledger's records plus what `look` found tagged for the pool).
    async fn destroy(&self, cx: &Context) -> Result<StepReport>;
}

/// The names ecsctl gives a pool's resources; derived, so they can be found without a ledger.
#[derive(Debug, Clone, Serialize)]
pub struct Names {
    pub pool: String,
    pub secret: String,
    pub log_group: String,
    pub execution_role: String,
    pub worker_role: String,
    pub network: String,
    pub cluster: String,
    pub task_family: String,
    pub service: String,
    pub security_group: String,
    pub container: String,
}

impl Names {
    pub fn new(pool: &str) -> Self {
        Self {
            pool: pool.to_string(),
            secret: format!("ecsctl/{pool}/prefect-api-key"),
            log_group: format!("/ecsctl/{pool}/worker"),
            execution_role: format!("ecsctl-{pool}-execution"),
            worker_role: format!("ecsctl-{pool}-worker"),
            network: format!("ecsctl-{pool}"),
            cluster: format!("ecsctl-{pool}"),
            task_family: format!("ecsctl-{pool}-worker"),
            service: format!("ecsctl-{pool}-worker"),
            security_group: format!("ecsctl-{pool}-worker"),
            container: "prefect-worker".to_string(),
        }
    }
}

/// Values steps hand to the steps that depend on them.
#[derive(Debug, Default)]
pub struct Outputs {
    pub secret_arn: OnceLock<String>,
    /// The API key changed this run: running workers must be restarted to pick it up.
    pub secret_rotated: AtomicBool,
    pub log_group: OnceLock<String>,
    pub vpc_id: OnceLock<String>,
    pub subnet_ids: OnceLock<Vec<String>>,
    pub security_group_id: OnceLock<String>,
    pub cluster_arn: OnceLock<String>,
    pub task_definition_arn: OnceLock<String>,
    /// A new task definition revision was registered this run.
    pub task_definition_changed: AtomicBool,
}

/// Reads an output a dependency must have set; the engine's ordering makes a miss a bug.
pub fn output<'a, T>(cell: &'a OnceLock<T>, what: &str) -> Result<&'a T> {
    cell.get()
        .ok_or_else(|| anyhow!("internal error: {what} is not known yet"))
}

pub fn set_output<T>(cell: &OnceLock<T>, value: T) {
    // A step sets each output once per run; a second set would carry the same value.
    let _ = cell.set(value);
}

impl Outputs {
    pub fn flag(flag: &AtomicBool) -> bool {
        flag.load(Ordering::SeqCst)
    }
    pub fn raise(flag: &AtomicBool) {
        flag.store(true, Ordering::SeqCst);
    }
}

/// Everything a step needs for one run.
pub struct Context {
    pub aws: Aws,
    pub identity: Identity,
    pub names: Names,
    /// The wanted stack; `None` for destroy/status when the ledger is lost (then nothing is created).
    pub spec: Option<StackSpec>,
    pub api_key: Option<ApiKey>,
    pub ledger: LedgerHandle,
    pub outputs: Outputs,
    pub progress: Arc<dyn Progress>,
    /// Keep a deleted secret recoverable this many days (destroy only).
    pub secret_recovery_days: Option<u32>,
    /// How long destroy may retry DependencyViolation and wait for draining.
    pub teardown_timeout: Duration,
    /// The family's latest task definition, read once per run though two steps' looks need it.
    pub latest_task_definition: tokio::sync::OnceCell<Option<DescribeTaskDefinitionOutput>>,
    /// The service as the look saw it, read once though the service step and status need it.
    pub service_at_look: tokio::sync::OnceCell<Option<aws_sdk_ecs::types::Service>>,
}

impl Context {
    pub fn pool(&self) -> &str {
        &self.names.pool
    }

    /// The wanted stack; asking for it in a run that has none is a bug.
    pub fn spec(&self) -> Result<&StackSpec> {
        self.spec
            .as_ref()
            .ok_or_else(|| anyhow!("internal error: no stack spec in this run"))
    }

    /// Tags for a resource of `step`: the pool and step tags plus the user's `--tag`s.
    pub fn tags(&self, step: &str) -> Vec<(String, String)> {
        let mut tags = vec![
            (TAG_POOL.to_string(), self.pool().to_string()),
            (TAG_STEP.to_string(), step.to_string()),
        ];
        if let Some(spec) = &self.spec {
            tags.extend(spec.tags.iter().cloned());
        }
        tags
    }

    /// Whether a resource's tags say it belongs to this pool.
    pub fn owns<'a>(&self, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        tags.into_iter()
            .any(|(k, v)| k == TAG_POOL && v == self.pool())
    }

    pub fn recorded(&self, step: &str) -> Vec<Record> {
        self.ledger.snapshot().created_by(step).cloned().collect()
    }

    pub fn arn_prefix(&self, service: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}",
            self.identity.partition, self.identity.region, self.identity.account
        )
    }

    pub fn role_arn(&self, role_name: &str) -> String {
        format!(
            "arn:{}:iam::{}:role{IAM_PATH}{role_name}",
            self.identity.partition, self.identity.account
        )
    }
}

/// What `look` found for one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum ItemState {
    /// Not there: bootstrap will create it.
    Missing,
    /// There and as wanted.
    Present { id: String },
    /// There but different from the inputs: bootstrap will update it in place.
    Drifted { id: String, what: String },
    /// The user's own resource (e.g. --vpc-id): used, never changed or deleted.
    Used { id: String },
    /// Same name, but not tagged for this pool: ecsctl refuses to touch it.
    Foreign { id: String },
}

impl ItemState {
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Missing => None,
            Self::Present { id }
            | Self::Drifted { id, .. }
            | Self::Used { id }
            | Self::Foreign { id } => Some(id),
        }
    }

    /// Whether ecsctl owns something that exists (and destroy should remove it).
    pub fn is_owned(&self) -> bool {
        matches!(self, Self::Present { .. } | Self::Drifted { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanItem {
    pub kind: ResourceKind,
    pub name: String,
    #[serde(flatten)]
    pub state: ItemState,
}

impl PlanItem {
    pub fn new(kind: ResourceKind, name: impl Into<String>, state: ItemState) -> Self {
        Self {
            kind,
            name: name.into(),
            state,
        }
    }
}

/// What `look` found for a step.
#[derive(Debug, Clone, Serialize)]
pub struct StepPlan {
    pub step: &'static str,
    pub items: Vec<PlanItem>,
}

impl StepPlan {
    pub fn is_noop(&self) -> bool {
        self.items
            .iter()
            .all(|i| matches!(i.state, ItemState::Present { .. } | ItemState::Used { .. }))
    }
}

/// What `apply` or `destroy` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepReport {
    /// Human-readable changes made, e.g. "created VPC vpc-0abc"; empty when nothing changed.
    pub changes: Vec<String>,
    /// The step's resources after the run, by kind, for the result output.
    pub resources: BTreeMap<String, Vec<String>>,
}

impl StepReport {
    pub fn change(&mut self, what: impl Into<String>) {
        self.changes.push(what.into());
    }

    pub fn resource(&mut self, label: &str, id: impl Into<String>) {
        self.resources
            .entry(label.to_string())
            .or_default()
            .push(id.into());
    }
}

/// What `look` saw, kept for `apply` in the same run.
#[derive(Debug, Default)]
pub struct Seen<T>(Mutex<Option<T>>);

impl<T: Clone> Seen<T> {
    pub fn put(&self, value: T) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
    }

    pub fn get(&self) -> Result<T> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| anyhow!("internal error: apply ran before look"))
    }
}

/// Polls `check` until it returns `Some`, or fails after `timeout`. For AWS's eventual states
/// (a service draining, ENIs being released), where there is nothing to wait on but the API.
pub async fn poll_until<T, F, Fut>(
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(Some(v));
        }
        if tokio::time::Instant::now() + every > deadline {
            return Ok(None);
        }
        tokio::time::sleep(every).await;
    }
}

/// Retries `attempt` while `retryable` says its error is one AWS heals by itself (eventual
/// consistency, DependencyViolation while ENIs are released), with backoff, within `timeout`.
pub async fn retry_while<T, F, Fut>(
    timeout: Duration,
    retryable: impl Fn(&anyhow::Error) -> bool,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(200);
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if retryable(&e) && tokio::time::Instant::now() + delay < deadline => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}
