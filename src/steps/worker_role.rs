//! `worker-role`: the role the worker runs as. It starts flow runs as ECS tasks, so it may run and
//! stop tasks, register their definitions, and pass only this pool's own roles to them.

use anyhow::Result;
use async_trait::async_trait;

use super::iam::{self, FoundRole, RoleSpec};
use super::{Context, Seen, Step, StepPlan, StepReport};
use crate::ledger::ResourceKind;

const NAME: &str = "worker-role";
const POLICY_TEMPLATE: &str = include_str!("../../templates/worker-role-policy.json");
const INLINE_POLICY_NAME: &str = "ecsctl-prefect-ecs-worker";

#[derive(Default)]
pub struct WorkerRoleStep {
    seen: Seen<Option<FoundRole>>,
}

/// The wanted role. Its policy names only ARNs ecsctl can derive, so it is known up front.
fn role_spec(cx: &Context) -> Result<RoleSpec> {
    let policy = iam::render_policy(
        POLICY_TEMPLATE,
        &[
            ("EXECUTION_ROLE_ARN", &cx.role_arn(&cx.names.execution_role)),
            ("WORKER_ROLE_ARN", &cx.role_arn(&cx.names.worker_role)),
        ],
    )?;
    Ok(RoleSpec {
        step: NAME,
        name: cx.names.worker_role.clone(),
        description: format!(
            "Task role of the ecsctl Prefect worker for pool {}",
            cx.pool()
        ),
        managed_policy_arns: Vec::new(),
        inline_policy_name: INLINE_POLICY_NAME,
        inline_policy: Some(policy),
    })
}

#[async_trait]
impl Step for WorkerRoleStep {
    fn name(&self) -> &'static str {
        NAME
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &[]
    }

    async fn look(&self, cx: &Context) -> Result<StepPlan> {
        let found = iam::look(cx, &cx.names.worker_role, INLINE_POLICY_NAME).await?;
        let state = iam::state(&found, &role_spec(cx)?);
        self.seen.put(found);
        Ok(StepPlan::one(
            NAME,
            ResourceKind::Role,
            &cx.names.worker_role,
            state,
        ))
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let mut report = StepReport::default();
        iam::apply(cx, &role_spec(cx)?, self.seen.get()?, &mut report).await?;
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        iam::destroy(cx, NAME, self.seen.get()?, &cx.names.worker_role).await
    }
}
