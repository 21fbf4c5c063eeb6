//! Reading the observer chain: the queues with their attributes and tags, the rule with its
//! targets and tags; and deleting the rule (its targets first, as EventBridge requires).

use anyhow::Result;
use aws_sdk_sqs::types::QueueAttributeName;

use super::{Context, QUEUE_GONE, RULE_GONE, TARGET_ID};
use crate::aws::{dns_suffix, AwsResultExt};
use crate::ledger::ResourceKind;
use crate::steps::retag::TagChanges;
use crate::steps::shared::{FoundQueue, FoundRule};

/// The queue by name with all its attributes and its tags; `None` when there is none. The
/// attributes and tags are asked at the same time as the queue's URL, by the URL SQS gives a queue
/// of that name; only if that guess is wrong (an endpoint of another shape) are they asked again.
pub async fn find_queue(cx: &Context, name: &str) -> Result<Option<FoundQueue>> {
    let sqs = &cx.aws.sqs;
    // Guess only for a queue the ledger knows: on a first bootstrap the queue is missing and the
    // guessed reads would be calls for nothing.
    let known = cx
        .recorded(super::NAME, ResourceKind::Queue)
        .iter()
        .any(|url| url.ends_with(&format!("/{name}")));
    let guessed = expected_url(cx, name);
    let guessed_read = async {
        if known {
            read_queue(cx, name, &guessed).await
        } else {
            Ok(None)
        }
    };
    let (url, guessed_read) =
        tokio::join!(sqs.get_queue_url().queue_name(name).send(), guessed_read,);
    let url = url
        .found(QUEUE_GONE, format!("finding SQS queue {name}"))?
        .and_then(|o| o.queue_url().map(str::to_string));
    let Some(url) = url else {
        return Ok(None);
    };
    let read = match guessed_read {
        Ok(Some(read)) => read,
        _ => read_queue(cx, name, &url).await?.ok_or_else(|| {
            anyhow::anyhow!("SQS queue {name} went away while it was being read; look again")
        })?,
    };
    Ok(Some(FoundQueue { url, ..read }))
}

/// The URL SQS gives a queue: `https://sqs.<region>.<domain>/<account>/<name>`.
fn expected_url(cx: &Context, name: &str) -> String {
    let domain = dns_suffix(&cx.identity.partition);
    format!(
        "https://sqs.{}.{domain}/{}/{name}",
        cx.identity.region, cx.identity.account
    )
}

/// The queue's attributes and tags by its URL; `None` when there is no such queue.
async fn read_queue(cx: &Context, name: &str, url: &str) -> Result<Option<FoundQueue>> {
    let sqs = &cx.aws.sqs;
    let (attributes, tags) = tokio::join!(
        sqs.get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send(),
        sqs.list_queue_tags().queue_url(url).send(),
    );
    let Some(attributes) = attributes.found(QUEUE_GONE, format!("reading SQS queue {name}"))?
    else {
        return Ok(None);
    };
    let attributes = attributes
        .attributes()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_string(), v))
        .collect();
    let tags = tags
        .found(QUEUE_GONE, format!("reading the tags of SQS queue {name}"))?
        .and_then(|t| t.tags().cloned())
        .unwrap_or_default();
    let pairs = || tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    Ok(Some(FoundQueue {
        url: url.to_string(),
        owned: cx.owns(pairs()),
        attributes,
        tags: TagChanges::for_resource(cx, pairs(), &[]),
    }))
}

/// The pool's rule with its targets and tags; `None` when there is none.
pub async fn find_rule(cx: &Context) -> Result<Option<FoundRule>> {
    let events = &cx.aws.events;
    let name = &cx.names.events_rule;
    // The rule's ARN follows from its name: for a rule the ledger knows, its targets and tags
    // are asked alongside DescribeRule; otherwise (a first bootstrap) only once it exists.
    let arn = super::Chain::of(cx).rule_arn;
    let known = cx
        .recorded(super::NAME, ResourceKind::EventRule)
        .contains(name);
    let targets_and_tags = |arn: String| async move {
        tokio::join!(
            events.list_targets_by_rule().rule(name).send(),
            events.list_tags_for_resource().resource_arn(arn).send(),
        )
    };
    let describe = events.describe_rule().name(name).send();
    let (rule, early) = if known {
        let (rule, early) = tokio::join!(describe, targets_and_tags(arn.clone()));
        (rule, Some(early))
    } else {
        (describe.await, None)
    };
    let Some(rule) = rule.found(RULE_GONE, format!("reading EventBridge rule {name}"))? else {
        return Ok(None);
    };
    let arn = rule.arn().map_or(arn, str::to_string);
    let (targets, tags) = match early {
        Some(early) => early,
        None => targets_and_tags(arn.clone()).await,
    };
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
    let pairs = || tags.iter().map(|t| (t.key(), t.value()));
    Ok(Some(FoundRule {
        owned: cx.owns(pairs()),
        tags: TagChanges::for_resource(cx, pairs(), &[]),
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
