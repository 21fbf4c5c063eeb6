//! What a step gets for one run: who and where we are, the pool's names and wanted stack, the
//! ledger, progress, what kind of run this is, and the values steps hand to each other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde::Serialize;

use super::shared::SharedReads;
use super::{IAM_PATH, TAG_POOL, TAG_STEP};
use crate::aws::{Aws, Identity};
use crate::config::{ApiKey, StackSpec, DEFAULT_TEARDOWN_TIMEOUT};
use crate::ledger::{LedgerHandle, ResourceKind};
use crate::progress::Progress;

/// Which command the steps run for.
pub enum Run {
    /// Create or update; the API key to store.
    Bootstrap { api_key: ApiKey },
    /// Delete what ecsctl created.
    Destroy(Teardown),
    /// Only read.
    Status,
}

/// How destroy deletes.
#[derive(Debug, Clone, Copy)]
pub struct Teardown {
    /// Keep a deleted secret recoverable this many days.
    pub secret_recovery_days: Option<u32>,
    /// How long to retry DependencyViolation and wait for draining.
    pub timeout: Duration,
}

impl Default for Teardown {
    fn default() -> Self {
        Self {
            secret_recovery_days: None,
            timeout: DEFAULT_TEARDOWN_TIMEOUT,
        }
    }
}

/// Everything a step needs for one run.
pub struct Context {
    pub aws: Aws,
    pub identity: Identity,
    pub names: Names,
    /// The wanted stack; `None` for destroy/status when the ledger is lost (then nothing is created).
    pub spec: Option<StackSpec>,
    pub ledger: LedgerHandle,
    pub progress: Arc<dyn Progress>,
    pub run: Run,
    /// Values steps hand to the steps that depend on them.
    pub outputs: Outputs,
    /// Answers more than one reader needs, asked of AWS once per run.
    pub shared: SharedReads,
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

    /// The API key to store: only a bootstrap has one.
    pub fn api_key(&self) -> Option<&ApiKey> {
        match &self.run {
            Run::Bootstrap { api_key } => Some(api_key),
            Run::Destroy(_) | Run::Status => None,
        }
    }

    pub fn is_bootstrap(&self) -> bool {
        matches!(self.run, Run::Bootstrap { .. })
    }

    /// How destroy deletes; the defaults in other runs.
    pub fn teardown(&self) -> Teardown {
        match &self.run {
            Run::Destroy(teardown) => *teardown,
            Run::Bootstrap { .. } | Run::Status => Teardown::default(),
        }
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

    /// [`Self::tags`] as one service's SDK tag type, e.g. `|k, v| Tag::builder().key(k)…`.
    pub fn sdk_tags<T>(&self, step: &str, tag: impl Fn(String, String) -> T) -> Vec<T> {
        self.tags(step)
            .into_iter()
            .map(|(k, v)| tag(k, v))
            .collect()
    }

    /// Whether a resource's tags say it belongs to this pool.
    pub fn owns<'a>(&self, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        tags.into_iter()
            .any(|(k, v)| k == TAG_POOL && v == self.pool())
    }

    /// The ids of what the ledger records `step` creating of `kind`.
    pub fn recorded(&self, step: &str, kind: ResourceKind) -> Vec<String> {
        self.ledger
            .snapshot()
            .created_by(step)
            .filter(|r| r.kind == kind)
            .map(|r| r.id.clone())
            .collect()
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
pub struct Outputs {
    pub secret_arn: Slot<String>,
    /// The API key changed this run: running workers must be restarted to pick it up.
    pub secret_rotated: Flag,
    pub log_group: Slot<String>,
    pub vpc_id: Slot<String>,
    pub subnet_ids: Slot<Vec<String>>,
    pub security_group_id: Slot<String>,
    pub cluster_arn: Slot<String>,
    pub task_definition_arn: Slot<String>,
    /// A new task definition revision was registered this run.
    pub task_definition_changed: Flag,
}

impl Default for Outputs {
    fn default() -> Self {
        Self {
            secret_arn: Slot::new("the secret's ARN"),
            secret_rotated: Flag::default(),
            log_group: Slot::new("the log group"),
            vpc_id: Slot::new("the VPC id"),
            subnet_ids: Slot::new("the subnet ids"),
            security_group_id: Slot::new("the security group id"),
            cluster_arn: Slot::new("the cluster ARN"),
            task_definition_arn: Slot::new("the task definition ARN"),
            task_definition_changed: Flag::default(),
        }
    }
}

/// A value one step sets once and the steps after it read.
pub struct Slot<T> {
    value: OnceLock<T>,
    what: &'static str,
}

impl<T> Slot<T> {
    const fn new(what: &'static str) -> Self {
        Self {
            value: OnceLock::new(),
            what,
        }
    }

    pub fn set(&self, value: T) {
        // A step sets each output once per run; a second set would carry the same value.
        let _ = self.value.set(value);
    }

    /// The value a dependency must have set; the engine's ordering makes a miss a bug.
    pub fn get(&self) -> Result<&T> {
        self.value
            .get()
            .ok_or_else(|| anyhow!("internal error: {} is not known yet", self.what))
    }
}

/// Something that happened this run, raised by one step and read by a later one.
#[derive(Default)]
pub struct Flag(AtomicBool);

impl Flag {
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
