//! `flow-run-role`: the role flow-run tasks run as. Flow code must neither run as the worker (which
//! can start tasks and pass roles) nor without a role (no AWS credentials at all), so it gets its
//! own: empty unless the user attaches managed policies (`--flow-run-policy-arn`), or the user's
//! own role (`--flow-run-role-arn`), which ecsctl uses but never changes or deletes.

use anyhow::Result;
use async_trait::async_trait;

use super::iam::{self, FoundRole, RoleSpec};
use super::{Context, ItemState, Seen, Step, StepPlan, StepReport};
use crate::ledger::ResourceKind;

const NAME: &str = "flow-run-role";

#[derive(Default)]
pub struct FlowRunRoleStep {
    seen: Seen<Option<FoundRole>>,
}

/// The user's own role, when the inputs name one.
fn users_role(cx: &Context) -> Option<&str> {
    cx.spec
        .as_ref()
        .and_then(|s| s.flow_run.role_arn.as_deref())
}

fn role_spec(cx: &Context) -> RoleSpec {
    RoleSpec {
        step: NAME,
        name: cx.names.flow_run_role.clone(),
        description: format!(
            "Role of the flow runs of the ecsctl Prefect worker for pool {}",
            cx.pool()
        ),
        managed_policy_arns: cx
            .spec
            .as_ref()
            .map(|s| s.flow_run.policy_arns.clone())
            .unwrap_or_default(),
        // The policies given are the whole list: one dropped from the inputs is detached.
        only_these_managed: cx.spec.is_some(),
        inline: None,
    }
}

#[async_trait]
impl Step for FlowRunRoleStep {
    fn name(&self) -> &'static str {
        NAME
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &[]
    }

    async fn look(&self, cx: &Context) -> Result<StepPlan> {
        // ecsctl's role is looked for even when the user's is in use: one left from an earlier
        // bootstrap is still ecsctl's to delete.
        let found = iam::look(cx, &cx.names.flow_run_role, None).await?;
        let mut plan = StepPlan::one(
            NAME,
            ResourceKind::Role,
            &cx.names.flow_run_role,
            iam::state(&found, &role_spec(cx)),
        );
        if let Some(arn) = users_role(cx) {
            plan.items.retain(|i| i.state.is_owned());
            plan.items.push(super::PlanItem::new(
                ResourceKind::Role,
                arn,
                ItemState::Used {
                    id: arn.to_string(),
                },
            ));
        }
        self.seen.put(found);
        Ok(plan)
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let mut report = StepReport::default();
        match users_role(cx) {
            Some(arn) => {
                cx.ledger.used(NAME, ResourceKind::Role, arn)?;
                report.resource("role (yours)", arn);
            }
            None => iam::apply(cx, &role_spec(cx), self.seen.get()?, &mut report).await?,
        }
        cx.outputs.flow_run_role_arn.set(cx.flow_run_role_arn());
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        iam::destroy(cx, NAME, self.seen.get()?, &cx.names.flow_run_role).await
    }
}
