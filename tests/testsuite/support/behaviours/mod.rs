//! AWS behaviours the emulator lacks, played by the test proxy ([`super::proxy::Behaviour`]).
//!
//! moto answers every call at once and consistently, never runs a task and never adds resources of
//! its own. Real AWS does all of these; each behaviour here plays one of them the way AWS documents
//! it, for a bounded while, so a test can show that ecsctl handles it. Add one per behaviour, say in
//! its doc comment what AWS does and where that is documented, and list it here:
//!
//! - [`Refuse`]: an operation answers with an AWS error for its next N calls (quotas such as
//!   `VpcLimitExceeded`, or a code AWS gives while something propagates).
//! - [`ecs::FailingDeployment`]: a worker service's first deployment failed by the circuit
//!   breaker, with nothing to roll back to, and its stopped task's reason; healed by a forced
//!   new deployment.
//! - [`ecs_stop::TasksOutliveService`]: after DeleteService, the worker's task is STOPPING for
//!   a while before it is STOPPED.
//! - [`ecs_stop::FlowRunArrives`]: a flow run starts while destroy runs and holds the cluster
//!   (`ClusterContainsTasksException`) until StopTask.
//! - [`ecs_stop::ServicePurged`]: a deleted service is purged: MISSING to DescribeServices,
//!   `ServiceNotFoundException` to calls naming it.
//! - [`ecs::WorkerTasks`]: the worker service lists a running task and the stopped one it
//!   replaced.
//! - [`logs::LastEventTimeLags`]: a log stream's last event time lags behind its events.
//! - [`CallerPartition`]: the caller's ARN is in another partition (`arn:aws-eusc:…`).
//! - [`NotYetVisible`]: an id an EC2 Create returned is `*.NotFound` to the next N calls naming it.
//! - [`RoleNotYetValid`]: a role is "not valid" to RegisterTaskDefinition until N calls after
//!   its CreateRole.
//! - [`SecretPurging`]: a force-deleted secret stays visible with a `DeletedDate`, and blocks
//!   CreateSecret of its name, for N calls.
//! - [`ZoneIdIs`]: a subnet's zone has another id in this account (one Fargate lacks).

use std::sync::Mutex;

use super::proxy::{Answer, Behaviour, Exchange};

pub mod ecs;
pub mod ecs_stop;
pub mod logs;
mod partition;
mod read_after_create;
mod role_propagation;
mod secret_purge;
mod zones;

pub use partition::CallerPartition;
pub use read_after_create::NotYetVisible;
pub use role_propagation::RoleNotYetValid;
pub use secret_purge::SecretPurging;
pub use zones::ZoneIdIs;

/// Answers the next `times` calls of `action` with an AWS error, then lets them through. `times`
/// of `usize::MAX` refuses for as long as the behaviour plays (a quota that stays exceeded).
pub struct Refuse {
    action: &'static str,
    status: u16,
    code: &'static str,
    message: &'static str,
    left: Mutex<usize>,
}

impl Refuse {
    /// A client error (HTTP 400) with `code` and `message`, for the next `times` calls.
    pub fn times(
        action: &'static str,
        times: usize,
        code: &'static str,
        message: &'static str,
    ) -> Refuse {
        Refuse {
            action,
            status: 400,
            code,
            message,
            left: Mutex::new(times),
        }
    }

    /// For as long as the behaviour plays.
    pub fn always(action: &'static str, code: &'static str, message: &'static str) -> Refuse {
        Refuse::times(action, usize::MAX, code, message)
    }
}

impl Behaviour for Refuse {
    fn name(&self) -> &'static str {
        "refuse"
    }

    fn answer(&self, request: &Exchange) -> Option<Answer> {
        if request.action != self.action {
            return None;
        }
        let mut left = self.left.lock().expect("refuse state");
        if *left == 0 {
            return None;
        }
        *left = left.saturating_sub(1);
        Some(request.error(self.status, self.code, self.message))
    }
}
