//! Answers more than one step reads in a run (and `status` too): asked of AWS once, by whoever
//! asks first, so that no step reaches into another.

use anyhow::Result;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::types::{TaskDefinitionField, TaskDefinitionStatus};

use super::Context;
use crate::aws::{messages, AwsResultExt};

/// Answers several readers need in one run; whoever asks first asks AWS, the others wait for it.
#[derive(Default)]
pub struct SharedReads {
    /// The family's latest task definition (the task-definition and service looks).
    pub latest_task_definition: tokio::sync::OnceCell<Option<DescribeTaskDefinitionOutput>>,
    /// The service as the look saw it (the service step and status).
    pub service_at_look: tokio::sync::OnceCell<Option<aws_sdk_ecs::types::Service>>,
}

/// The family's latest revision with its tags; `None` when the family does not exist.
pub async fn latest_task_definition(cx: &Context) -> Result<Option<DescribeTaskDefinitionOutput>> {
    // The task-definition and service looks both ask; the first asks AWS, the other waits for it.
    let latest = cx
        .shared
        .latest_task_definition
        .get_or_try_init(|| async {
            let family = &cx.names.task_family;
            let described = cx
                .aws
                .ecs
                .describe_task_definition()
                .task_definition(family)
                .include(TaskDefinitionField::Tags)
                .send()
                .await
                .aws(format!("describing task definition {family}"));
            match described {
                Err(e) if messages::task_definition_unknown(&e) => Ok(None),
                other => other.map(Some),
            }
        })
        .await?;
    Ok(latest.clone())
}

/// The ARN of the family's latest revision if it is ACTIVE: the one the service should run.
pub async fn latest_active_task_definition(cx: &Context) -> Result<Option<String>> {
    Ok(latest_task_definition(cx).await?.and_then(|out| {
        let td = out.task_definition()?;
        if td.status() != Some(&TaskDefinitionStatus::Active) {
            return None;
        }
        td.task_definition_arn().map(str::to_string)
    }))
}
