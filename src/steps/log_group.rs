//! `log-group`: the CloudWatch Logs group the worker's container writes to, with a retention so
//! logs do not pile up (and cost) forever.

use anyhow::Result;
use async_trait::async_trait;

use super::own::{destroy_targets, left_alone, not_ours, record_found};
use super::{Context, ItemState, Remedy, Seen, Step, StepPlan, StepReport};
use crate::aws::AwsResultExt;
use crate::ledger::ResourceKind;

const NAME: &str = "log-group";
const NOT_FOUND: &[&str] = &["ResourceNotFoundException"];

#[derive(Debug, Clone)]
struct Found {
    owned: bool,
    retention_days: Option<i32>,
}

#[derive(Default)]
pub struct LogGroupStep {
    seen: Seen<Option<Found>>,
}

impl LogGroupStep {
    fn state(cx: &Context, found: &Option<Found>) -> ItemState {
        let id = cx.names.log_group.clone();
        match found {
            None => ItemState::Missing,
            Some(f) if !f.owned => ItemState::Foreign { id },
            Some(f) => match cx.spec.as_ref().map(|s| s.log_retention_days as i32) {
                Some(wanted) if f.retention_days != Some(wanted) => ItemState::drifted(
                    id,
                    format!(
                        "retention is {}, wanted {wanted} days",
                        f.retention_days
                            .map_or("never expire".to_string(), |d| format!("{d} days"))
                    ),
                    Remedy::Update(None),
                ),
                _ => ItemState::Present { id },
            },
        }
    }
}

#[async_trait]
impl Step for LogGroupStep {
    fn name(&self) -> &'static str {
        NAME
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &[]
    }

    async fn look(&self, cx: &Context) -> Result<StepPlan> {
        let name = &cx.names.log_group;
        // The ARN is predictable, so tags are read alongside the describe instead of after it.
        let arn = format!("{}:log-group:{name}", cx.arn_prefix("logs"));
        let (described, tags) = tokio::join!(
            cx.aws
                .logs
                .describe_log_groups()
                .log_group_name_prefix(name)
                .send(),
            cx.aws
                .logs
                .list_tags_for_resource()
                .resource_arn(&arn)
                .send()
        );
        let described = described.aws(format!("describing log group {name}"))?;
        let group = described
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(name.as_str()));
        let found = match group {
            None => None,
            Some(g) => {
                let tags = tags
                    .found(NOT_FOUND, format!("reading the tags of log group {name}"))?
                    .and_then(|t| t.tags().cloned())
                    .unwrap_or_default();
                Some(Found {
                    owned: cx.owns(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                    retention_days: g.retention_in_days(),
                })
            }
        };
        let plan = StepPlan::one(NAME, ResourceKind::LogGroup, name, Self::state(cx, &found));
        self.seen.put(found);
        Ok(plan)
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let name = &cx.names.log_group;
        let wanted = cx.spec()?.log_retention_days as i32;
        let mut report = StepReport::default();
        let retention = match self.seen.get()? {
            None => {
                let tags = cx.tags(NAME).into_iter().collect();
                cx.aws
                    .logs
                    .create_log_group()
                    .log_group_name(name)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .aws(format!("creating log group {name}"))?;
                cx.ledger.created(NAME, ResourceKind::LogGroup, name)?;
                report.change(format!("created log group {name}"));
                None
            }
            Some(found) if !found.owned => return Err(not_ours(cx, "a log group", name)),
            Some(found) => {
                record_found(cx, NAME, ResourceKind::LogGroup, name)?;
                found.retention_days
            }
        };
        if retention != Some(wanted) {
            cx.aws
                .logs
                .put_retention_policy()
                .log_group_name(name)
                .retention_in_days(wanted)
                .send()
                .await
                .aws(format!("setting the retention of log group {name}"))?;
            report.change(format!("set log retention to {wanted} days"));
        }
        report.resource("log group", name);
        cx.outputs.log_group.set(name.clone());
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        let found = self.seen.get()?;
        // A log group recreated under the recorded name by someone else is no longer ecsctl's.
        let foreign = found.as_ref().is_some_and(|f| !f.owned);
        let owned = found.is_some_and(|f| f.owned);
        let targets = destroy_targets(
            cx,
            NAME,
            ResourceKind::LogGroup,
            owned.then_some(cx.names.log_group.as_str()),
        );
        let mut report = StepReport::default();
        for name in targets {
            if foreign && name == cx.names.log_group {
                report.change(left_alone(cx, &format!("log group {name}")));
                cx.ledger.forget(ResourceKind::LogGroup, &name)?;
                continue;
            }
            let deleted = cx
                .aws
                .logs
                .delete_log_group()
                .log_group_name(&name)
                .send()
                .await
                .done_unless(NOT_FOUND, format!("deleting log group {name}"))?;
            cx.ledger.forget(ResourceKind::LogGroup, &name)?;
            if deleted {
                report.change(format!("deleted log group {name}"));
            }
        }
        Ok(report)
    }
}
