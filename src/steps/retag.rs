//! The user's `--tag`s on resources that already exist: a changed value is set in place, a new
//! one added, and one the last bootstrap set but this one no longer gives is removed. Tags ecsctl
//! did not set, and its own `ecsctl:*` tags, are never touched. `look` works out the changes per
//! resource (the ledger still holds the last bootstrap's tags then); `apply` makes them.

use anyhow::Result;
use aws_sdk_ec2::types::Tag as Ec2Tag;
use aws_sdk_eventbridge::types::Tag as EventsTag;

use super::own::tag;
use super::{Context, ItemState, Remedy};
use crate::aws::AwsResultExt;

/// The tag changes one resource needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagChanges {
    /// Tags to add or set to a new value: (key, wanted value, current value if any).
    pub set: Vec<(String, String, Option<String>)>,
    /// Keys the last bootstrap set that are no longer given.
    pub remove: Vec<String>,
}

impl TagChanges {
    /// Works out the changes: `wanted` are this run's `--tag`s, `previous` the ones the last
    /// bootstrap set, `have` the resource's tags now. `ignore` are keys ecsctl sets itself in
    /// another way (EC2's `Name`), left out of the comparison.
    pub fn between<'a>(
        wanted: &[(String, String)],
        previous: &[(String, String)],
        have: impl IntoIterator<Item = (&'a str, &'a str)>,
        ignore: &[&str],
    ) -> Self {
        let have: Vec<(&str, &str)> = have.into_iter().collect();
        let current = |key: &str| have.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let mine = |key: &str| !ignore.contains(&key) && !key.starts_with("ecsctl:");
        let set = (wanted.iter())
            .filter(|(k, v)| mine(k) && current(k) != Some(v.as_str()))
            .map(|(k, v)| (k.clone(), v.clone(), current(k).map(str::to_string)))
            .collect();
        let remove = (previous.iter())
            .filter(|(k, _)| mine(k) && !wanted.iter().any(|(w, _)| w == k))
            .filter(|(k, _)| current(k).is_some())
            .map(|(k, _)| k.clone())
            .collect();
        Self { set, remove }
    }

    /// Between this run's tags and the resource's (see [`Self::between`]).
    pub fn for_resource<'a>(
        cx: &Context,
        have: impl IntoIterator<Item = (&'a str, &'a str)>,
        ignore: &[&str],
    ) -> Self {
        let wanted = cx.spec.as_ref().map(|s| s.tags.clone()).unwrap_or_default();
        // Until bootstrap records its inputs, the ledger holds the last bootstrap's.
        let previous = (cx.ledger.snapshot().spec)
            .map(|s| s.tags)
            .unwrap_or_default();
        Self::between(&wanted, &previous, have, ignore)
    }

    /// [`Self::for_resource`] for an ECS resource's tags.
    pub fn for_ecs(cx: &Context, tags: &[aws_sdk_ecs::types::Tag]) -> Self {
        let have = tags
            .iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()));
        Self::for_resource(cx, have, &[])
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    /// What differs, e.g. "tag team is data, wanted ml; tag owner is missing".
    pub fn describe(&self) -> String {
        let set = self.set.iter().map(|(k, v, have)| match have {
            Some(have) => format!("tag {k} is {have:?}, wanted {v:?}"),
            None => format!("tag {k}={v:?} is missing"),
        });
        let remove = (self.remove.iter()).map(|k| format!("tag {k} is no longer given: remove it"));
        set.chain(remove).collect::<Vec<_>>().join("; ")
    }

    /// The item's state with these changes added to its drift.
    pub fn onto(&self, state: ItemState) -> ItemState {
        if self.is_empty() {
            return state;
        }
        match state {
            ItemState::Present { id } => {
                ItemState::drifted(id, self.describe(), Remedy::Update(None))
            }
            ItemState::Drifted { id, drift } => ItemState::Drifted {
                id,
                drift: super::plan::Drift {
                    what: format!("{}; {}", drift.what, self.describe()),
                    remedy: drift.remedy,
                },
            },
            other => other,
        }
    }

    fn set_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.set.iter().map(|(k, v, _)| (k.clone(), v.clone()))
    }

    /// The change as the run reports it.
    fn report(&self, what: &str) -> Option<String> {
        (!self.is_empty()).then(|| format!("updated the tags of {what} ({})", self.describe()))
    }
}

/// A resource whose tags are set in place, by the service's own calls.
pub enum Tagged<'a> {
    Secret(&'a str),
    /// A CloudWatch Logs group, by ARN.
    LogGroup(&'a str),
    Role(&'a str),
    /// EC2 resources sharing the same changes (VPC, subnets, gateway, table, group).
    Ec2(Vec<String>),
    /// An ECS cluster, service or task definition, by ARN.
    Ecs(&'a str),
    /// An SQS queue, by URL.
    Queue(&'a str),
    /// An EventBridge rule, by ARN.
    Rule(&'a str),
}

/// Sets and removes the tags; returns the change for the report, `None` when there was none.
pub async fn apply(
    cx: &Context,
    target: Tagged<'_>,
    what: &str,
    changes: &TagChanges,
) -> Result<Option<String>> {
    if changes.is_empty() {
        return Ok(None);
    }
    let doing = format!("updating the tags of {what}");
    if !changes.set.is_empty() {
        set(cx, &target, changes, &doing).await?;
    }
    if !changes.remove.is_empty() {
        remove(cx, &target, changes.remove.clone(), &doing).await?;
    }
    Ok(changes.report(what))
}

/// Adds the tags, or sets their new values.
async fn set(cx: &Context, target: &Tagged<'_>, changes: &TagChanges, doing: &str) -> Result<()> {
    let pairs = || changes.set_pairs();
    match target {
        Tagged::Secret(id) => {
            let tags = pairs().map(|(k, v)| tag::secrets(k, v)).collect();
            let call = cx.aws.secrets.tag_resource().secret_id(*id);
            call.set_tags(Some(tags)).send().await.aws(doing)?;
        }
        Tagged::LogGroup(arn) => {
            let call = cx.aws.logs.tag_resource().resource_arn(*arn);
            call.set_tags(Some(pairs().collect()))
                .send()
                .await
                .aws(doing)?;
        }
        Tagged::Role(name) => {
            let tags = pairs()
                .map(|(k, v)| tag::iam(k, v))
                .collect::<Result<Vec<_>, _>>()?;
            let call = cx.aws.iam.tag_role().role_name(*name);
            call.set_tags(Some(tags)).send().await.aws(doing)?;
        }
        Tagged::Ec2(ids) => {
            let tags = pairs().map(|(k, v)| tag::ec2(k, v)).collect();
            let call = cx.aws.ec2.create_tags().set_resources(Some(ids.clone()));
            call.set_tags(Some(tags)).send().await.aws(doing)?;
        }
        Tagged::Ecs(arn) => {
            let tags = pairs().map(|(k, v)| tag::ecs(k, v)).collect();
            let call = cx.aws.ecs.tag_resource().resource_arn(*arn);
            call.set_tags(Some(tags)).send().await.aws(doing)?;
        }
        Tagged::Queue(url) => {
            let call = cx.aws.sqs.tag_queue().queue_url(*url);
            call.set_tags(Some(pairs().collect()))
                .send()
                .await
                .aws(doing)?;
        }
        Tagged::Rule(arn) => {
            let tags = pairs()
                .map(|(k, v)| EventsTag::builder().key(k).value(v).build())
                .collect::<Result<Vec<_>, _>>()?;
            let call = cx.aws.events.tag_resource().resource_arn(*arn);
            call.set_tags(Some(tags)).send().await.aws(doing)?;
        }
    }
    Ok(())
}

/// Removes the tags with these keys.
async fn remove(cx: &Context, target: &Tagged<'_>, keys: Vec<String>, doing: &str) -> Result<()> {
    let keys = Some(keys);
    match target {
        Tagged::Secret(id) => {
            let call = cx.aws.secrets.untag_resource().secret_id(*id);
            call.set_tag_keys(keys).send().await.aws(doing)?;
        }
        Tagged::LogGroup(arn) => {
            let call = cx.aws.logs.untag_resource().resource_arn(*arn);
            call.set_tag_keys(keys).send().await.aws(doing)?;
        }
        Tagged::Role(name) => {
            let call = cx.aws.iam.untag_role().role_name(*name);
            call.set_tag_keys(keys).send().await.aws(doing)?;
        }
        Tagged::Ec2(ids) => {
            // A tag without a value is removed whatever its value.
            let tags = keys.into_iter().flatten();
            let tags = tags.map(|k| Ec2Tag::builder().key(k).build()).collect();
            let call = cx.aws.ec2.delete_tags().set_resources(Some(ids.clone()));
            call.set_tags(Some(tags)).send().await.aws(doing)?;
        }
        Tagged::Ecs(arn) => {
            let call = cx.aws.ecs.untag_resource().resource_arn(*arn);
            call.set_tag_keys(keys).send().await.aws(doing)?;
        }
        Tagged::Queue(url) => {
            let call = cx.aws.sqs.untag_queue().queue_url(*url);
            call.set_tag_keys(keys).send().await.aws(doing)?;
        }
        Tagged::Rule(arn) => {
            let call = cx.aws.events.untag_resource().resource_arn(*arn);
            call.set_tag_keys(keys).send().await.aws(doing)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn changed_added_and_dropped_tags_and_nothing_else() {
        let wanted = pairs(&[("team", "ml"), ("owner", "ann")]);
        let previous = pairs(&[("team", "data"), ("cost", "42"), ("gone", "x")]);
        let have = [
            ("ecsctl:pool", "p"),
            ("team", "data"),
            ("cost", "42"),
            ("someone", "else"),
            ("Name", "ecsctl-p"),
        ];
        let changes = TagChanges::between(&wanted, &previous, have, &["Name"]);
        assert_eq!(
            changes.set,
            [
                ("team".into(), "ml".into(), Some("data".into())),
                ("owner".into(), "ann".into(), None)
            ]
        );
        // Removed only where ecsctl set it and it is still there; never someone's own tag.
        assert_eq!(changes.remove, ["cost"]);
        assert_eq!(
            changes.describe(),
            r#"tag team is "data", wanted "ml"; tag owner="ann" is missing; tag cost is no longer given: remove it"#
        );
    }

    #[test]
    fn the_same_tags_need_no_change_and_ecsctls_own_are_never_touched() {
        let wanted = pairs(&[("team", "ml"), ("Name", "mine")]);
        let have = [("team", "ml"), ("Name", "ecsctl-p"), ("ecsctl:step", "x")];
        let changes = TagChanges::between(&wanted, &wanted, have, &["Name"]);
        assert!(changes.is_empty(), "{changes:?}");
        let state = ItemState::Present { id: "i".into() };
        assert_eq!(changes.onto(state.clone()), state);
        let dropped = TagChanges::between(&[], &pairs(&[("ecsctl:pool", "p")]), have, &[]);
        assert!(dropped.is_empty());
    }
}
