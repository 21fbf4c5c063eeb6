//! Flags, environment and prompt answers → validated settings.
//!
//! Everything here is pure: no AWS calls and no terminal I/O, so every rule is unit-tested. Validation
//! collects *all* problems at once, so a user fixes their command line in one go.

mod bootstrap;
mod fargate;
mod global;
mod profiles;
mod secret;
mod validate;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use fargate::{
    cpu_sizes_for, fargate_memory_options, fargate_runs_in, validate_task_size, FARGATE_CPU_SIZES,
};
pub use global::{
    state_dir, validate_endpoint_url, validate_endpoint_url_from, validate_region,
    validate_region_from,
};
pub use profiles::{profile_names, validate_profile};
pub use secret::{validate_api_key, validate_auth_string, MAX_SECRET_LEN};
pub use validate::{
    is_loopback, is_prefect_cloud, parse_duration, parse_tags, validate_api_url,
    validate_desired_count, validate_flow_run_capacity, validate_image, validate_log_retention,
    validate_network, validate_policy_arn, validate_pool_name, validate_role_arn,
    validate_secret_recovery_days,
};

/// The worker's image: a pinned prefect-aws release (the one the tests run), never `latest`,
/// which once pointed at a nightly build. Tags follow `<prefect-aws>-python<version>`.
pub const DEFAULT_IMAGE: &str = "prefecthq/prefect-aws:0.7.12-python3.12";
pub const DEFAULT_CPU: u32 = 512;
pub const DEFAULT_MEMORY: u32 = 1024;
pub const DEFAULT_DESIRED_COUNT: u32 = 1;
pub const DEFAULT_LOG_RETENTION_DAYS: u32 = 30;
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long destroy waits for a service to drain and for AWS to release network interfaces.
pub const DEFAULT_TEARDOWN_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Longest pool name whose derived names (e.g. the 64-character IAM role `ecsctl-<pool>-execution`)
/// stay within every AWS limit.
pub const MAX_POOL_NAME_LEN: usize = 40;

/// Retention values CloudWatch Logs accepts (PutRetentionPolicy rejects anything else).
pub const LOG_RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// The Prefect API key. Deliberately not `Serialize`, and `Debug` never shows it.
/// A Prefect credential (an API key or a basic-auth string): never printed, logged or recorded.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where the worker's network comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum NetworkChoice {
    /// ecsctl creates (and later deletes) a VPC with two public subnets.
    Create,
    /// The user's VPC and subnets, used but never deleted.
    Reuse {
        vpc_id: String,
        subnet_ids: Vec<String>,
    },
}

/// The non-secret inputs of a bootstrap; also what the ledger records.
/// Where flow runs get their Fargate capacity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowRunCapacity {
    #[default]
    Fargate,
    /// FARGATE_SPOT: cheaper, and AWS may stop a run to take the capacity back.
    Spot,
}

/// How flow runs run: their capacity and the role their code gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRunSpec {
    #[serde(default)]
    pub capacity: FlowRunCapacity,
    /// Managed policies attached to ecsctl's flow-run role (`--flow-run-policy-arn`).
    #[serde(default)]
    pub policy_arns: Vec<String>,
    /// The user's own role for flow runs (`--flow-run-role-arn`): used, never created or deleted.
    #[serde(default)]
    pub role_arn: Option<String>,
}

/// Which Prefect credentials the worker gets, each from its own secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// `PREFECT_API_KEY` (Prefect Cloud always; a self-hosted server maybe).
    pub api_key: bool,
    /// `PREFECT_API_AUTH_STRING` (a self-hosted server with basic auth).
    #[serde(default)]
    pub auth_string: bool,
}

impl Default for Credentials {
    /// Ledgers written before self-hosted servers were supported always had a key.
    fn default() -> Self {
        Self {
            api_key: true,
            auth_string: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackSpec {
    pub prefect_api_url: String,
    #[serde(default)]
    pub credentials: Credentials,
    #[serde(default)]
    pub flow_run: FlowRunSpec,
    pub image: String,
    pub cpu: u32,
    pub memory: u32,
    pub desired_count: u32,
    pub log_retention_days: u32,
    pub tags: Vec<(String, String)>,
    pub network: NetworkChoice,
}

/// Everything `bootstrap` needs, validated.
#[derive(Debug, Clone)]
pub struct BootstrapSettings {
    pub pool: String,
    pub spec: StackSpec,
    pub api_key: Option<ApiKey>,
    pub auth_string: Option<ApiKey>,
    pub dry_run: bool,
    /// `None` with `--no-wait`.
    pub wait_timeout: Option<Duration>,
}

/// Bootstrap inputs as gathered from flags, environment and prompts, before validation.
#[derive(Debug, Clone, Default)]
pub struct BootstrapInputs {
    pub pool: Option<String>,
    pub prefect_api_url: Option<String>,
    pub api_key: Option<String>,
    pub auth_string: Option<String>,
    pub image: Option<String>,
    pub cpu: Option<u32>,
    pub memory: Option<u32>,
    pub desired_count: Option<u32>,
    pub log_retention_days: Option<u32>,
    pub tags: Vec<String>,
    pub vpc_id: Option<String>,
    pub subnet_ids: Vec<String>,
    pub flow_run_capacity: Option<String>,
    pub flow_run_policy_arns: Vec<String>,
    pub flow_run_role_arn: Option<String>,
    pub dry_run: bool,
    pub no_wait: bool,
    pub wait_timeout: Option<String>,
}

/// One thing wrong with the inputs, phrased for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// All problems found in one set of inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputErrors(pub Vec<InputError>);

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {e}")?;
        }
        Ok(())
    }
}

fn err(msg: impl Into<String>) -> InputError {
    InputError(msg.into())
}

/// `1, 2, 3`: a list of allowed values in a message.
fn join(values: &[u32]) -> String {
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
