//! `log-group`: the CloudWatch Logs groups the worker's container and the flow runs' containers
//! write to, each with a retention so logs do not pile up (and cost) forever. ecsctl creates the
//! flow runs' group itself: the execution role may write logs but not create groups.

use anyhow::Result;
use async_trait::async_trait;
use futures::future::join_all;

use super::own::{destroy_targets, left_alone, not_ours, record_found};
use super::retag::{self, TagChanges, Tagged};
use super::{Context, ItemState, PlanItem, Remedy, Seen, Step, StepPlan, StepReport};
use crate::aws::AwsResultExt;
use crate::ledger::ResourceKind;

const NAME: &str = "log-group";
const NOT_FOUND: &[&str] = &["ResourceNotFoundException"];

#[derive(Debug, Clone)]
struct Found {
    name: String,
    owned: bool,
    retention_days: Option<i32>,
    tags: TagChanges,
}

/// A group's ARN, as the tagging calls want it.
fn arn(cx: &Context, name: &str) -> String {
    format!("{}:log-group:{name}", cx.arn_prefix("logs"))
}

#[derive(Default)]
pub struct LogGroupStep {
    seen: Seen<Vec<Found>>,
}

/// The pool's groups: the worker's, then the flow runs'.
fn groups(cx: &Context) -> [&String; 2] {
    [&cx.names.log_group, &cx.names.flow_run_log_group]
}

fn state(cx: &Context, name: &str, found: Option<&Found>) -> ItemState {
    let id = name.to_string();
    match found {
        None => ItemState::Missing,
        Some(f) if !f.owned => ItemState::Foreign { id },
        Some(f) => f.tags.onto(
            match cx.spec.as_ref().map(|s| s.log_retention_days as i32) {
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
        ),
    }
}

/// Both groups with one DescribeLogGroups (they share the pool's prefix), their tags alongside:
/// the ARNs are predictable.
async fn look_groups(cx: &Context) -> Result<Vec<Found>> {
    let prefix = format!("/ecsctl/{}/", cx.pool());
    let tags = |name: &str| {
        let request = cx
            .aws
            .logs
            .list_tags_for_resource()
            .resource_arn(arn(cx, name));
        async move { request.send().await }
    };
    let [worker, flow_runs] = groups(cx);
    let describe = cx
        .aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(&prefix)
        .send();
    // Groups the ledger knows have their tags read alongside; on a first bootstrap there are
    // none, and the tags are read only for groups that turn out to exist.
    let known = !cx.recorded(NAME, ResourceKind::LogGroup).is_empty();
    let (described, early) = if known {
        let (described, worker_tags, flow_run_tags) =
            tokio::join!(describe, tags(worker), tags(flow_runs));
        (described, Some((worker_tags, flow_run_tags)))
    } else {
        (describe.await, None)
    };
    let described = described.aws(format!("describing the log groups {prefix}*"))?;
    if described.log_groups().is_empty() {
        return Ok(Vec::new());
    }
    let (worker_tags, flow_run_tags) = match early {
        Some(early) => early,
        None => tokio::join!(tags(worker), tags(flow_runs)),
    };
    let mut found = Vec::new();
    for (name, tags) in [(worker, worker_tags), (flow_runs, flow_run_tags)] {
        let Some(group) = described
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(name.as_str()))
        else {
            continue;
        };
        let tags = tags
            .found(NOT_FOUND, format!("reading the tags of log group {name}"))?
            .and_then(|t| t.tags().cloned())
            .unwrap_or_default();
        let pairs = || tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        found.push(Found {
            name: name.clone(),
            owned: cx.owns(pairs()),
            retention_days: group.retention_in_days(),
            tags: TagChanges::for_resource(cx, pairs(), &[]),
        });
    }
    Ok(found)
}

/// Creates the group if missing and sets its retention; what changed.
async fn ensure(cx: &Context, name: &str, found: Option<&Found>) -> Result<Vec<String>> {
    let wanted = cx.spec()?.log_retention_days as i32;
    let mut changes = Vec::new();
    let retention = match found {
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
            changes.push(format!("created log group {name}"));
            None
        }
        Some(found) if !found.owned => return Err(not_ours(cx, "a log group", name)),
        Some(found) => {
            record_found(cx, NAME, ResourceKind::LogGroup, name)?;
            let what = format!("log group {name}");
            let group = Tagged::LogGroup(&arn(cx, name));
            changes.extend(retag::apply(cx, group, &what, &found.tags).await?);
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
        changes.push(format!("set the retention of {name} to {wanted} days"));
    }
    Ok(changes)
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
        let found = look_groups(cx).await?;
        let items = groups(cx)
            .into_iter()
            .map(|name| {
                let f = found.iter().find(|f| &f.name == name);
                PlanItem::new(ResourceKind::LogGroup, name, state(cx, name, f))
            })
            .collect();
        self.seen.put(found);
        Ok(StepPlan { step: NAME, items })
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let found = self.seen.get()?;
        // join_all, not try_join_all: a failed create must not cancel the other one after AWS
        // made its group but before the ledger recorded it.
        let ensured = join_all(
            groups(cx)
                .into_iter()
                .map(|name| ensure(cx, name, found.iter().find(|f| &f.name == name))),
        )
        .await;
        let mut report = StepReport::default();
        for changes in ensured {
            for change in changes? {
                report.change(change);
            }
        }
        for name in groups(cx) {
            report.resource("log group", name);
        }
        cx.outputs.log_group.set(cx.names.log_group.clone());
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        let found = self.seen.get()?;
        let owned = found.iter().filter(|f| f.owned).map(|f| f.name.as_str());
        let targets = destroy_targets(cx, NAME, ResourceKind::LogGroup, owned);
        let mut report = StepReport::default();
        for name in targets {
            // A group recreated under the recorded name by someone else is no longer ecsctl's.
            if found.iter().any(|f| f.name == name && !f.owned) {
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
