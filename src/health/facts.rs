//! What `commands::status` read, as plain data: the judgement's only input.

use time::OffsetDateTime;

use super::{LedgerInfo, LogInfo, PrefectFacts};
use crate::aws::ecs::{ServiceInfo, StoppedTask};
use crate::ledger::ResourceKind;
use crate::steps::observer::ChainHealth;
use crate::steps::StepPlan;

/// Everything status read, as plain data. A read that failed carries its error text.
#[derive(Debug, Clone)]
pub struct Facts {
    pub pool: String,
    pub account: String,
    pub region: String,
    pub checked_at: OffsetDateTime,
    pub ledger: LedgerInfo,
    /// (step, kind) of every resource the ledger records ecsctl creating.
    pub created: Vec<(String, ResourceKind)>,
    /// (kind, id) of every resource the ledger records as the user's, used as is.
    pub used: Vec<(ResourceKind, String)>,
    /// The desired count of the last bootstrap (from the ledger's inputs).
    pub wanted_desired_count: Option<u32>,
    /// Every step's look, in step order.
    pub plans: Vec<StepPlan>,
    /// The service; `Ok(None)` when it (or its cluster) does not exist or was deleted.
    pub service: Result<Option<ServiceInfo>, String>,
    /// The newest ACTIVE revision of the worker's family (ARN).
    pub latest_task_definition: Result<Option<String>, String>,
    pub stopped_tasks: Result<Vec<StoppedTask>, String>,
    pub logs: Result<LogInfo, String>,
    /// The work pool and its workers as Prefect describes them, or why Prefect could not be asked.
    pub prefect: PrefectFacts,
    /// The observer chain's broken links and queue depths.
    pub observer: Result<ChainHealth, String>,
}
