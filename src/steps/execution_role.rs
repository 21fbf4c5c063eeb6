//! `execution-role`: the role ECS itself uses to start the worker: pull the image, write logs and
//! read the API key secret — that one secret and nothing else.

use anyhow::Result;
use async_trait::async_trait;

use super::iam::{self, FoundRole, RoleSpec};
use super::{Context, Seen, Step, StepPlan, StepReport};
use crate::ledger::ResourceKind;

const NAME: &str = "execution-role";
const POLICY_TEMPLATE: &str = include_str!("../../templates/execution-role-policy.json");
const INLINE_POLICY_NAME: &str = "ecsctl-read-prefect-api-key";

#[derive(Default)]
pub struct ExecutionRoleStep {
    seen: Seen<Option<FoundRole>>,
}

/// The wanted role; the inline policy is known once the secret's ARN is.
fn role_spec(cx: &Context, secret_arn: Option<&str>) -> Result<RoleSpec> {
    Ok(RoleSpec {
        step: NAME,
        name: cx.names.execution_role.clone(),
        description: format!(
            "ECS task execution role of the ecsctl Prefect worker for pool {}",
            cx.pool()
        ),
        managed_policy_arns: vec![format!(
            "arn:{}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
            cx.identity.partition
        )],
        inline_policy_name: INLINE_POLICY_NAME,
        inline_policy: secret_arn
            .map(|arn| iam::render_policy(POLICY_TEMPLATE, &[("SECRET_ARN", arn)]))
            .transpose()?,
    })
}

#[async_trait]
impl Step for ExecutionRoleStep {
    fn name(&self) -> &'static str {
        NAME
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["secret"]
    }

    async fn look(&self, cx: &Context) -> Result<StepPlan> {
        let found = iam::look(cx, &cx.names.execution_role, INLINE_POLICY_NAME).await?;
        let state = iam::state(&found, &role_spec(cx, None)?);
        self.seen.put(found);
        Ok(StepPlan::one(
            NAME,
            ResourceKind::Role,
            &cx.names.execution_role,
            state,
        ))
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let secret_arn = cx.outputs.secret_arn.get()?;
        let spec = role_spec(cx, Some(secret_arn))?;
        let mut report = StepReport::default();
        iam::apply(cx, &spec, self.seen.get()?, &mut report).await?;
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        iam::destroy(cx, NAME, self.seen.get()?, &cx.names.execution_role).await
    }
}
