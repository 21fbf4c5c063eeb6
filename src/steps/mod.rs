//! The steps that build a pool's stack. Every step has the same shape (see [`Step`]):
//! `look` reads what exists (no changes), `apply` creates or updates only what `look` found missing
//! or different, and `destroy` deletes what this step created. Each lives in its own module.

use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;

mod context;
mod own;
mod plan;
mod policy;
mod retag;
mod shared;
mod wait;

pub mod cluster;
pub mod execution_role;
pub mod flow_run_role;
mod iam;
pub mod log_group;
pub mod network;
pub mod observer;
pub mod secret;
pub mod service;
pub mod task_definition;
pub mod work_pool;
pub mod worker_role;

pub use context::{
    Context, Credentials, Names, PrefectAccess, Run, Teardown, WORKER_LOG_STREAM_PREFIX,
};
use plan::Seen;
pub use plan::{ItemState, PlanItem, Remedy, StepPlan, StepReport};

/// Tag keys ecsctl puts on everything it creates, at creation time.
pub const TAG_POOL: &str = "ecsctl:pool";
pub const TAG_STEP: &str = "ecsctl:step";
/// On account-global resources (IAM roles): the region whose stack they belong to.
pub const TAG_REGION: &str = "ecsctl:region";
/// IAM path of every role ecsctl creates; lets a lost ledger be rebuilt.
pub const IAM_PATH: &str = "/ecsctl/";

/// Every step, in an order that respects dependencies (the engine still schedules by `depends_on`).
pub fn all() -> Vec<Arc<dyn Step>> {
    vec![
        Arc::new(secret::SecretStep::default()),
        Arc::new(log_group::LogGroupStep::default()),
        Arc::new(execution_role::ExecutionRoleStep::default()),
        Arc::new(worker_role::WorkerRoleStep::default()),
        Arc::new(flow_run_role::FlowRunRoleStep::default()),
        Arc::new(network::NetworkStep::default()),
        Arc::new(cluster::ClusterStep::default()),
        Arc::new(observer::ObserverStep::default()),
        Arc::new(task_definition::TaskDefinitionStep::default()),
        Arc::new(service::ServiceStep::default()),
        Arc::new(work_pool::WorkPoolStep::default()),
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
