//! Answers more than one step reads in a run (and `status` too): asked of AWS once, by whoever
//! asks first, so that no step reaches into another.

use std::collections::HashMap;

use anyhow::Result;
use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
use aws_sdk_ecs::types::{TaskDefinitionField, TaskDefinitionStatus};
use serde_json::Value;

use super::retag::TagChanges;
use super::Context;
use crate::aws::{messages, AwsResultExt};
use crate::config::{validate_api_key, validate_auth_string, NetworkChoice};
use crate::ledger::ResourceKind;
use crate::prefect::{Auth, Prefect, WorkPool};

/// Answers several readers need in one run; whoever asks first asks AWS, the others wait for it.
#[derive(Default)]
pub struct SharedReads {
    /// The family's latest task definition (the task-definition and service looks).
    pub latest_task_definition: tokio::sync::OnceCell<Option<DescribeTaskDefinitionOutput>>,
    /// The service as the look saw it (the service step and status).
    pub service_at_look: tokio::sync::OnceCell<Option<aws_sdk_ecs::types::Service>>,
    /// The Prefect API, with credentials (the work-pool step and status).
    pub prefect: tokio::sync::OnceCell<Option<Prefect>>,
    /// The Prefect work pool as the look saw it (the work-pool step and status).
    pub work_pool_at_look: tokio::sync::OnceCell<Option<WorkPool>>,
    /// The observer chain as the look saw it (the observer step and status).
    pub observer_at_look: tokio::sync::OnceCell<ObserverChain>,
}

#[derive(Debug, Clone)]
/// An SQS queue of the observer chain.
pub struct FoundQueue {
    pub url: String,
    pub owned: bool,
    pub attributes: HashMap<String, String>,
    pub tags: TagChanges,
}

/// The observer chain's EventBridge rule.
#[derive(Debug, Clone)]
pub struct FoundRule {
    pub arn: String,
    pub owned: bool,
    pub state: String,
    pub pattern: Option<Value>,
    /// The ARNs the rule sends to.
    pub targets: Vec<String>,
    pub tags: TagChanges,
}

/// The observer chain's queues and rule as AWS describes them.
#[derive(Debug, Clone, Default)]
pub struct ObserverChain {
    pub queue: Option<FoundQueue>,
    pub dead_letters: Option<FoundQueue>,
    pub rule: Option<FoundRule>,
}

/// The pool in Prefect as the look saw it; `None` when Prefect has no such pool. An error when
/// no Prefect API URL is known.
pub async fn work_pool_at_look(cx: &Context) -> Result<Option<WorkPool>> {
    let pool = cx
        .shared
        .work_pool_at_look
        .get_or_try_init(|| async {
            let prefect = prefect(cx).await?.ok_or_else(|| {
                anyhow::anyhow!(
                    "no Prefect API URL is known for pool '{}' (no ledger): set PREFECT_API_URL",
                    cx.pool()
                )
            })?;
            prefect.work_pool(cx.pool()).await
        })
        .await?;
    Ok(pool.clone())
}

/// The pool's Prefect API; `None` when no URL is known (no ledger and no PREFECT_API_URL). Without
/// credentials from the command, the worker's own are read from the pool's secrets: whoever may
/// read those may act as the worker anyway.
pub async fn prefect(cx: &Context) -> Result<Option<&Prefect>> {
    let prefect = cx
        .shared
        .prefect
        .get_or_try_init(|| async {
            let Some(api_url) = &cx.prefect.api_url else {
                return Ok(None);
            };
            let auth = match &cx.prefect.auth {
                Some(auth) => Some(auth.clone()),
                None => auth_from_secrets(cx).await?,
            };
            Prefect::new(api_url, auth).map(Some)
        })
        .await?;
    Ok(prefect.as_ref())
}

async fn auth_from_secrets(cx: &Context) -> Result<Option<Auth>> {
    let read = |name: &str| {
        let request = cx.aws.secrets.get_secret_value().secret_id(name);
        let doing = format!("reading the Prefect credentials in secret {name}");
        async move {
            let value = request.send().await.found(
                &["ResourceNotFoundException", "InvalidRequestException"],
                doing,
            )?;
            Ok::<_, anyhow::Error>(value.and_then(|v| v.secret_string().map(str::to_string)))
        }
    };
    let (key, auth_string) =
        tokio::try_join!(read(&cx.names.secret), read(&cx.names.auth_string_secret))?;
    let key = key.and_then(|k| validate_api_key(&k).ok()).map(Auth::Key);
    let auth_string = auth_string
        .and_then(|a| validate_auth_string(&a).ok())
        .map(Auth::AuthString);
    Ok(key.or(auth_string))
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

/// ecsctl's own network has two subnets (in two zones).
const OWN_SUBNETS: usize = 2;

/// The stack's network as far as the inputs and the ledger tell, before the network step has
/// applied (the looks, and status): a reused network is in the inputs; otherwise the newest
/// record of each kind is the current one, as the ledger keeps every id a pool ever had (a group
/// recreated after a deletion, its own VPC before a switch to `--vpc-id`). Ids are sorted.
pub struct RecordedNetwork {
    pub vpc_id: Option<String>,
    pub subnet_ids: Vec<String>,
    pub security_group_id: Option<String>,
}

pub fn recorded_network(cx: &Context) -> RecordedNetwork {
    let ledger = cx.ledger.snapshot();
    let newest = |kind: ResourceKind, count: usize| -> Vec<String> {
        let records = ledger.created.iter().chain(&ledger.used);
        let mut ids: Vec<String> = (records.filter(|r| r.kind == kind).rev())
            .take(count)
            .map(|r| r.id.clone())
            .collect();
        ids.sort();
        ids
    };
    let (vpc_id, mut subnet_ids) = match cx.spec.as_ref().map(|s| &s.network) {
        Some(NetworkChoice::Reuse { vpc_id, subnet_ids }) => {
            (Some(vpc_id.clone()), subnet_ids.clone())
        }
        _ => (
            newest(ResourceKind::Vpc, 1).pop(),
            newest(ResourceKind::Subnet, OWN_SUBNETS),
        ),
    };
    subnet_ids.sort();
    RecordedNetwork {
        vpc_id,
        subnet_ids,
        security_group_id: newest(ResourceKind::SecurityGroup, 1).pop(),
    }
}
