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
use crate::ledger::{Ledger, LedgerHandle, ResourceKind};
use crate::prefect::Auth;
use crate::progress::Progress;

/// Which command the steps run for.
pub enum Run {
    /// Create or update; the Prefect credentials to store.
    Bootstrap(Credentials),
    /// Delete what ecsctl created.
    Destroy(Teardown),
    /// Only read.
    Status,
}

/// The Prefect credentials a bootstrap stores for the worker, each in its own secret.
#[derive(Clone, Default)]
pub struct Credentials {
    pub api_key: Option<ApiKey>,
    /// A self-hosted server's basic-auth string (`PREFECT_API_AUTH_STRING`).
    pub auth_string: Option<ApiKey>,
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
    /// Where Prefect is, and the credentials the command was given for it.
    pub prefect: PrefectAccess,
}

/// Where the pool's Prefect API is and how to authenticate, as far as the command knows. Without
/// credentials, a run that needs them reads them from the pool's own secrets.
#[derive(Clone, Default)]
pub struct PrefectAccess {
    pub api_url: Option<String>,
    pub auth: Option<Auth>,
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

    /// The credentials to store: only a bootstrap has them.
    pub fn credentials(&self) -> Option<&Credentials> {
        match &self.run {
            Run::Bootstrap(credentials) => Some(credentials),
            Run::Destroy(_) | Run::Status => None,
        }
    }

    /// The API key to store, if this bootstrap has one.
    pub fn api_key(&self) -> Option<&ApiKey> {
        self.credentials().and_then(|c| c.api_key.as_ref())
    }

    pub fn is_bootstrap(&self) -> bool {
        matches!(self.run, Run::Bootstrap(_))
    }

    /// How destroy deletes; the defaults in other runs.
    pub fn teardown(&self) -> Teardown {
        match &self.run {
            Run::Destroy(teardown) => *teardown,
            Run::Bootstrap(_) | Run::Status => Teardown::default(),
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

    /// The role flow runs get: the user's `--flow-run-role-arn`, or ecsctl's (by its name).
    pub fn flow_run_role_arn(&self) -> String {
        match self
            .spec
            .as_ref()
            .and_then(|s| s.flow_run.role_arn.as_ref())
        {
            Some(arn) => arn.clone(),
            None => self.role_arn(&self.names.flow_run_role),
        }
    }

    /// The queue the worker's observer reads.
    pub fn events_queue_arn(&self) -> String {
        format!("{}:{}", self.arn_prefix("sqs"), self.names.events_queue)
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
    /// The secret of a self-hosted server's basic-auth string.
    pub auth_string_secret: String,
    pub log_group: String,
    /// Where flow runs' containers log.
    pub flow_run_log_group: String,
    /// IAM names are global to the account: each role carries the region, so the same pool in
    /// two regions gets two sets of roles (see [`Names::keeping_recorded`] for older stacks).
    pub execution_role: String,
    pub worker_role: String,
    pub flow_run_role: String,
    pub network: String,
    pub cluster: String,
    pub task_family: String,
    pub service: String,
    pub security_group: String,
    pub container: String,
    /// The SQS queue the worker's observer reads ECS task state changes from, its dead-letter
    /// queue, and the EventBridge rule that feeds it.
    pub events_queue: String,
    pub events_dead_letter_queue: String,
    pub events_rule: String,
    /// ecsctl's workers name themselves with this prefix and their ECS task id, so that status
    /// tells them from other workers polling the same pool (someone's laptop).
    pub worker_name_prefix: String,
}

/// The worker's awslogs stream prefix: each task logs to `worker/<container>/<task id>`.
pub const WORKER_LOG_STREAM_PREFIX: &str = "worker";

impl Names {
    /// The log stream the worker's task `task_id` writes to.
    pub fn worker_log_stream(&self, task_id: &str) -> String {
        format!("{WORKER_LOG_STREAM_PREFIX}/{}/{task_id}", self.container)
    }

    pub fn new(pool: &str, region: &str) -> Self {
        let code = region_code(region);
        Self {
            pool: pool.to_string(),
            secret: format!("ecsctl/{pool}/prefect-api-key"),
            auth_string_secret: format!("ecsctl/{pool}/prefect-api-auth-string"),
            log_group: format!("/ecsctl/{pool}/worker"),
            flow_run_log_group: format!("/ecsctl/{pool}/flow-runs"),
            execution_role: format!("ecsctl-{pool}-{code}-execution"),
            worker_role: format!("ecsctl-{pool}-{code}-worker"),
            flow_run_role: format!("ecsctl-{pool}-{code}-flow-run"),
            network: format!("ecsctl-{pool}"),
            cluster: format!("ecsctl-{pool}"),
            task_family: format!("ecsctl-{pool}-worker"),
            service: format!("ecsctl-{pool}-worker"),
            security_group: format!("ecsctl-{pool}-worker"),
            container: "prefect-worker".to_string(),
            worker_name_prefix: format!("ecsctl-{pool}-"),
            events_queue: format!("ecsctl-{pool}-task-events"),
            events_dead_letter_queue: format!("ecsctl-{pool}-task-events-dlq"),
            events_rule: format!("ecsctl-{pool}-task-state"),
        }
    }
}

impl Names {
    /// Keeps the role names a ledger records for their steps: a stack bootstrapped before roles
    /// carried the region (`ecsctl-P-execution`) keeps its roles rather than growing a second set.
    pub fn keeping_recorded(mut self, ledger: &Ledger) -> Self {
        for (step, name) in [
            ("execution-role", &mut self.execution_role),
            ("worker-role", &mut self.worker_role),
            ("flow-run-role", &mut self.flow_run_role),
        ] {
            if let Some(r) = ledger
                .created_by(step)
                .find(|r| r.kind == ResourceKind::Role)
            {
                name.clone_from(&r.id);
            }
        }
        self
    }
}

/// A short code for a region, as AWS's own zone ids spell them: `us-east-1` → `use1`,
/// `ap-southeast-2` → `apse2`, `us-gov-west-1` → `usgw1`. With a 40-character pool, the
/// longest role name stays within IAM's 64 characters.
pub fn region_code(region: &str) -> String {
    region
        .split('-')
        .map(|part| match part {
            "gov" => "g",
            "iso" => "i",
            "isob" => "b",
            "isof" => "f",
            "isoe" => "e",
            "north" => "n",
            "south" => "s",
            "east" => "e",
            "west" => "w",
            "central" => "c",
            "northeast" => "ne",
            "northwest" => "nw",
            "southeast" => "se",
            "southwest" => "sw",
            other => other,
        })
        .collect()
}

/// Values steps hand to the steps that depend on them.
pub struct Outputs {
    /// The ARNs of the secrets holding the worker's Prefect credentials (none, one or two).
    pub secret_arns: Slot<SecretArns>,
    /// The API key changed this run: running workers must be restarted to pick it up.
    pub secret_rotated: Flag,
    pub log_group: Slot<String>,
    pub vpc_id: Slot<String>,
    pub subnet_ids: Slot<Vec<String>>,
    pub security_group_id: Slot<String>,
    /// Whether the worker's tasks get a public IP: their subnets route to an internet gateway.
    pub assign_public_ip: Slot<bool>,
    pub cluster_arn: Slot<String>,
    pub task_definition_arn: Slot<String>,
    /// A new task definition revision was registered this run.
    pub task_definition_changed: Flag,
    /// The worker's execution or task role was created or changed this run: for a minute or
    /// so, ECS may not yet be able to use it (IAM is eventually consistent).
    pub worker_iam_changed: Flag,
    /// The role flow runs run as: ecsctl's, or the user's `--flow-run-role-arn`.
    pub flow_run_role_arn: Slot<String>,
    /// Destroy found a service with the pool's name that is not ecsctl's: its cluster must stay.
    pub foreign_service: Flag,
}

/// The ARNs of the secrets holding the worker's Prefect credentials; `None` for a credential the
/// worker does not get.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretArns {
    pub api_key: Option<String>,
    pub auth_string: Option<String>,
}

impl Default for Outputs {
    fn default() -> Self {
        Self {
            secret_arns: Slot::new("the secrets' ARNs"),
            secret_rotated: Flag::default(),
            log_group: Slot::new("the log group"),
            vpc_id: Slot::new("the VPC id"),
            subnet_ids: Slot::new("the subnet ids"),
            security_group_id: Slot::new("the security group id"),
            assign_public_ip: Slot::new("whether tasks get a public IP"),
            cluster_arn: Slot::new("the cluster ARN"),
            task_definition_arn: Slot::new("the task definition ARN"),
            task_definition_changed: Flag::default(),
            worker_iam_changed: Flag::default(),
            flow_run_role_arn: Slot::new("the flow-run role ARN"),
            foreign_service: Flag::default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_codes_are_short_and_distinct() {
        let codes: Vec<String> = [
            "us-east-1",
            "us-east-2",
            "eu-central-1",
            "ap-southeast-2",
            "ap-northeast-1",
            "us-gov-west-1",
            "cn-northwest-1",
        ]
        .iter()
        .map(|r| region_code(r))
        .collect();
        assert_eq!(
            codes,
            ["use1", "use2", "euc1", "apse2", "apne1", "usgw1", "cnnw1"]
        );
        for region in [
            "us-gov-west-1",
            "us-isob-east-1",
            "ap-southeast-5",
            "eu-isoe-west-1",
        ] {
            let names = Names::new(&"p".repeat(40), region);
            for role in [names.execution_role, names.worker_role, names.flow_run_role] {
                assert!(role.len() <= 64, "{role} is {} long", role.len());
            }
        }
    }

    #[test]
    fn roles_carry_the_region_unless_the_ledger_names_older_ones() {
        let east = Names::new("p", "us-east-1");
        let west = Names::new("p", "us-west-2");
        assert_eq!(east.execution_role, "ecsctl-p-use1-execution");
        assert_eq!(east.worker_role, "ecsctl-p-use1-worker");
        assert_ne!(east.worker_role, west.worker_role);

        let mut ledger = Ledger::new("p", "1", "us-east-1");
        ledger.created.push(crate::ledger::Record {
            step: "execution-role".into(),
            kind: ResourceKind::Role,
            id: "ecsctl-p-execution".into(),
            at: time::OffsetDateTime::UNIX_EPOCH,
        });
        let kept = Names::new("p", "us-east-1").keeping_recorded(&ledger);
        assert_eq!(kept.execution_role, "ecsctl-p-execution");
        assert_eq!(kept.worker_role, "ecsctl-p-use1-worker");
    }
}
