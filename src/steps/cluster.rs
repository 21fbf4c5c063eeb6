//! `cluster`: the ECS cluster the worker's service runs in, with the Fargate capacity providers.
//! Also holds the small tag helpers the ECS steps share.

use std::time::Duration;

use anyhow::{anyhow, Result};
use async_trait::async_trait;
use aws_sdk_ecs::types::{CapacityProviderStrategyItem, ClusterField, Tag};

use super::{
    retry_while, set_output, Context, ItemState, PlanItem, Seen, Step, StepPlan, StepReport,
    TAG_POOL,
};
use crate::aws::{message_contains, AwsResultExt};
use crate::ledger::ResourceKind;

const NAME: &str = "cluster";
const NOT_FOUND: &[&str] = &["ClusterNotFoundException"];
/// The first cluster in an account races the creation of the ECS service-linked role.
const ROLE_RACE: &str = "Unable to assume the service linked role";
const ROLE_RACE_TIMEOUT: Duration = Duration::from_secs(120);
/// What DeleteCluster answers while the service is still draining (real AWS only).
const STILL_IN_USE: &[&str] = &[
    "ClusterContainsServicesException",
    "ClusterContainsTasksException",
];

/// ECS tags for a resource of `step`, set on the create call itself.
pub(super) fn ecs_tags(cx: &Context, step: &str) -> Vec<Tag> {
    cx.tags(step)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Whether ECS tags mark a resource as this pool's.
pub(super) fn owned(cx: &Context, tags: &[Tag]) -> bool {
    cx.owns(
        tags.iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
    )
}

/// The error for a same-named ECS resource that ecsctl did not create: it is never adopted.
pub(super) fn foreign(cx: &Context, what: &str, name: &str) -> anyhow::Error {
    anyhow!(
        "an ECS {what} named {name} already exists but was not created by ecsctl for pool '{pool}' (it has no {TAG_POOL}={pool} tag); delete or rename it, or use another --pool",
        pool = cx.pool()
    )
}

#[derive(Debug, Clone)]
struct Found {
    arn: String,
    owned: bool,
    /// moto (and AWS, for a while) keeps deleted clusters around as INACTIVE.
    active: bool,
}

#[derive(Default)]
pub struct ClusterStep {
    seen: Seen<Option<Found>>,
}

impl ClusterStep {
    fn state(found: &Option<Found>) -> ItemState {
        match found {
            Some(f) if f.active && !f.owned => ItemState::Foreign { id: f.arn.clone() },
            Some(f) if f.active => ItemState::Present { id: f.arn.clone() },
            _ => ItemState::Missing,
        }
    }

    async fn create(&self, cx: &Context) -> Result<String> {
        let name = &cx.names.cluster;
        let fargate = CapacityProviderStrategyItem::builder()
            .capacity_provider("FARGATE")
            .weight(1)
            .build()?;
        let tags = ecs_tags(cx, NAME);
        let created = retry_while(
            ROLE_RACE_TIMEOUT,
            |e| message_contains(e, ROLE_RACE),
            || {
                let request = cx
                    .aws
                    .ecs
                    .create_cluster()
                    .cluster_name(name)
                    .capacity_providers("FARGATE")
                    .capacity_providers("FARGATE_SPOT")
                    .default_capacity_provider_strategy(fargate.clone())
                    .set_tags(Some(tags.clone()));
                async move {
                    request
                        .send()
                        .await
                        .aws(format!("creating ECS cluster {name}"))
                }
            },
        )
        .await?;
        created
            .cluster()
            .and_then(|c| c.cluster_arn())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("creating ECS cluster {name}: AWS returned no cluster ARN"))
    }
}

#[async_trait]
impl Step for ClusterStep {
    fn name(&self) -> &'static str {
        NAME
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &[]
    }

    async fn look(&self, cx: &Context) -> Result<StepPlan> {
        let name = &cx.names.cluster;
        let described = cx
            .aws
            .ecs
            .describe_clusters()
            .clusters(name)
            .include(ClusterField::Tags)
            .send()
            .await
            .aws(format!("describing ECS cluster {name}"))?;
        // A missing cluster comes back as a MISSING failure, not as an error.
        let found = described
            .clusters()
            .iter()
            .find(|c| c.cluster_name() == Some(name.as_str()))
            .map(|c| Found {
                arn: c.cluster_arn().unwrap_or(name).to_string(),
                owned: owned(cx, c.tags()),
                active: c.status() != Some("INACTIVE"),
            });
        let items = vec![PlanItem::new(
            ResourceKind::Cluster,
            name,
            Self::state(&found),
        )];
        self.seen.put(found);
        Ok(StepPlan { step: NAME, items })
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let name = &cx.names.cluster;
        let mut report = StepReport::default();
        let arn = match self.seen.get()?.filter(|f| f.active) {
            None => {
                let arn = self.create(cx).await?;
                cx.ledger.created(NAME, ResourceKind::Cluster, &arn)?;
                report.change(format!("created ECS cluster {name}"));
                arn
            }
            Some(found) if !found.owned => return Err(foreign(cx, "cluster", name)),
            Some(found) => {
                // Found by tag but missing from the ledger (a run killed before recording it).
                cx.ledger.created(NAME, ResourceKind::Cluster, &found.arn)?;
                found.arn
            }
        };
        report.resource("cluster", &arn);
        set_output(&cx.outputs.cluster_arn, arn);
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        let found = self.seen.get()?;
        let mut targets: Vec<String> = cx
            .recorded(NAME)
            .into_iter()
            .filter(|r| r.kind == ResourceKind::Cluster)
            .map(|r| r.id)
            .collect();
        if let Some(f) = found.as_ref().filter(|f| f.owned && f.active) {
            if !targets.contains(&f.arn) {
                targets.push(f.arn.clone());
            }
        }
        let mut report = StepReport::default();
        for arn in targets {
            // Already INACTIVE: deleting again would succeed but change nothing.
            let gone = found.as_ref().is_some_and(|f| f.arn == arn && !f.active);
            // Recreated under the recorded name by someone else: no longer ecsctl's.
            let foreign = found
                .as_ref()
                .is_some_and(|f| f.arn == arn && f.active && !f.owned);
            if foreign {
                report.change(format!(
                    "left ECS cluster {}: it no longer carries the {}={} tag",
                    cx.names.cluster,
                    super::TAG_POOL,
                    cx.pool()
                ));
            } else if !gone && delete_cluster(cx, &arn).await? {
                report.change(format!("deleted ECS cluster {}", cx.names.cluster));
            }
            cx.ledger.forget(ResourceKind::Cluster, &arn)?;
        }
        Ok(report)
    }
}

/// Deletes a cluster, retrying while its service drains; `false` when it was already gone.
async fn delete_cluster(cx: &Context, arn: &str) -> Result<bool> {
    retry_while(
        cx.teardown_timeout,
        |e| STILL_IN_USE.iter().any(|code| message_contains(e, code)),
        || {
            let request = cx.aws.ecs.delete_cluster().cluster(arn);
            async move {
                request
                    .send()
                    .await
                    .done_unless(NOT_FOUND, format!("deleting ECS cluster {arn}"))
            }
        },
    )
    .await
}
