//! `worker-role`: the role the worker runs as. It starts flow runs as ECS tasks, so it may run and
//! stop tasks, register their definitions, and pass only this pool's own roles to them.

use anyhow::Result;
use async_trait::async_trait;

use super::iam::{self, FoundRole, InlinePolicy, RoleSpec};
use super::{Context, Seen, Step, StepPlan, StepReport};
use crate::ledger::ResourceKind;

const NAME: &str = "worker-role";
const POLICY_TEMPLATE: &str = include_str!("../../templates/worker-role-policy.json");
const INLINE_POLICY_NAME: &str = "ecsctl-prefect-ecs-worker";

#[derive(Default)]
pub struct WorkerRoleStep {
    seen: Seen<Option<FoundRole>>,
}

/// The wanted role. Its policy names only ARNs known up front: ecsctl's roles' are derived from
/// their names, and a user's flow-run role is an input. It may pass exactly the roles flow runs
/// get, to ECS tasks only — never itself, which flows could otherwise take.
fn role_spec(cx: &Context) -> Result<RoleSpec> {
    let policy = iam::render_policy(
        POLICY_TEMPLATE,
        &[
            ("EXECUTION_ROLE_ARN", &cx.role_arn(&cx.names.execution_role)),
            ("FLOW_RUN_ROLE_ARN", &cx.flow_run_role_arn()),
            ("EVENTS_QUEUE_ARN", &cx.events_queue_arn()),
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
        // ecsctl's own role: a managed policy someone else attached is detached.
        only_these_managed: true,
        inline: Some(InlinePolicy {
            name: INLINE_POLICY_NAME,
            document: Some(policy),
        }),
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
        let found = iam::look(cx, &cx.names.worker_role, Some(INLINE_POLICY_NAME)).await?;
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
        if !report.changes.is_empty() {
            cx.outputs.worker_iam_changed.raise();
        }
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        iam::destroy(cx, NAME, self.seen.get()?, &cx.names.worker_role).await
    }
}
