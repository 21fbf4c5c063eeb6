//! Reading the observer chain: the queues with their attributes and tags, the rule with its
//! targets and tags; and deleting the rule (its targets first, as EventBridge requires).

use anyhow::Result;
use aws_sdk_sqs::types::QueueAttributeName;

use super::{Context, QUEUE_GONE, RULE_GONE, TARGET_ID};
use crate::aws::AwsResultExt;
use crate::steps::shared::{FoundQueue, FoundRule};

/// The queue by name with all its attributes and its tags; `None` when there is none.
pub async fn find_queue(cx: &Context, name: &str) -> Result<Option<FoundQueue>> {
    let sqs = &cx.aws.sqs;
    let url = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .found(QUEUE_GONE, format!("finding SQS queue {name}"))?
        .and_then(|o| o.queue_url().map(str::to_string));
    let Some(url) = url else {
        return Ok(None);
    };
    let (attributes, tags) = tokio::join!(
        sqs.get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send(),
        sqs.list_queue_tags().queue_url(&url).send(),
    );
    let attributes = attributes
        .found(QUEUE_GONE, format!("reading SQS queue {name}"))?
        .and_then(|a| a.attributes().cloned())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_string(), v))
        .collect();
    let tags = tags
        .found(QUEUE_GONE, format!("reading the tags of SQS queue {name}"))?
        .and_then(|t| t.tags().cloned())
        .unwrap_or_default();
    Ok(Some(FoundQueue {
        url,
        owned: cx.owns(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        attributes,
    }))
}

/// The pool's rule with its targets and tags; `None` when there is none.
pub async fn find_rule(cx: &Context) -> Result<Option<FoundRule>> {
    let events = &cx.aws.events;
    let name = &cx.names.events_rule;
    let Some(rule) = events
        .describe_rule()
        .name(name)
        .send()
        .await
        .found(RULE_GONE, format!("reading EventBridge rule {name}"))?
    else {
        return Ok(None);
    };
    let arn = rule.arn().unwrap_or_default().to_string();
    let (targets, tags) = tokio::join!(
        events.list_targets_by_rule().rule(name).send(),
        events.list_tags_for_resource().resource_arn(&arn).send(),
    );
    let targets = targets
        .found(
            RULE_GONE,
            format!("listing the targets of EventBridge rule {name}"),
        )?
        .map(|t| t.targets().iter().map(|t| t.arn().to_string()).collect())
        .unwrap_or_default();
    let tags = tags
        .found(
            RULE_GONE,
            format!("reading the tags of EventBridge rule {name}"),
        )?
        .map(|t| t.tags().to_vec())
        .unwrap_or_default();
    Ok(Some(FoundRule {
        owned: cx.owns(tags.iter().map(|t| (t.key(), t.value()))),
        state: rule
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        pattern: rule
            .event_pattern()
            .and_then(|p| serde_json::from_str(p).ok()),
        targets,
        arn,
    }))
}

/// Removes the rule's target, then the rule; `false` when it was already gone.
pub async fn delete_rule(cx: &Context, name: &str) -> Result<bool> {
    let events = &cx.aws.events;
    let removed = events
        .remove_targets()
        .rule(name)
        .ids(TARGET_ID)
        .force(false)
        .send()
        .await
        .done_unless(
            RULE_GONE,
            format!("removing the target of EventBridge rule {name}"),
        )?;
    if !removed {
        return Ok(false);
    }
    events
        .delete_rule()
        .name(name)
        .send()
        .await
        .done_unless(RULE_GONE, format!("deleting EventBridge rule {name}"))
}
