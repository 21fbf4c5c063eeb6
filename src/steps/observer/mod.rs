//! `observer`: the chain that tells the worker what happened to the flow-run tasks it started.
//! Since prefect-aws 0.6 the worker returns right after RunTask; its observer learns of crashes
//! from an SQS queue fed by an EventBridge rule on the cluster's "ECS Task State Change" events.
//! Without the chain a run whose task never starts stays PENDING forever. The queue has a
//! dead-letter queue (a message there is a state change the worker never handled), and a policy
//! that lets only this pool's rule send.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use serde_json::{json, Value};

use super::own::{destroy_targets, not_ours, record_found};
use super::wait::retry_while;
use super::{Context, ItemState, PlanItem, Remedy, Seen, Step, StepPlan, StepReport};
use crate::aws::{is_code, AwsResultExt};
use crate::ledger::ResourceKind;

mod read;

use super::policy;
use super::retag::{self, Tagged};
use super::shared::{FoundQueue, FoundRule, ObserverChain};
use read::{find_queue, find_rule};

const NAME: &str = "observer";
const QUEUE_GONE: &[&str] = &[
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
];
const RULE_GONE: &[&str] = &["ResourceNotFoundException"];
/// The observer extends a message's visibility while it handles it; 5 minutes is its base.
const VISIBILITY_TIMEOUT_SECS: &str = "300";
/// A state change the worker failed to handle three times goes to the dead-letter queue.
const MAX_RECEIVES: u32 = 3;
/// Dead letters are kept 14 days (SQS's longest), for status to count and a person to read.
const DEAD_LETTER_RETENTION_SECS: &str = "1209600";
/// AWS refuses to recreate a queue name for 60 s after a delete.
const RECENTLY_DELETED: &[&str] = &["AWS.SimpleQueueService.QueueDeletedRecently"];
const RECREATE_WAIT: Duration = Duration::from_secs(75);
/// The rule's one target.
const TARGET_ID: &str = "ecsctl-observer-queue";

#[derive(Default)]
pub struct ObserverStep {
    seen: Seen<ObserverChain>,
}

/// The chain as the look saw it; read once per run, whoever asks first (the step or status).
pub async fn chain_at_look(cx: &Context) -> Result<ObserverChain> {
    let chain = cx
        .shared
        .observer_at_look
        .get_or_try_init(|| async {
            let names = &cx.names;
            let (queue, dead_letters, rule) = tokio::try_join!(
                find_queue(cx, &names.events_queue),
                find_queue(cx, &names.events_dead_letter_queue),
                find_rule(cx),
            )?;
            Ok::<_, anyhow::Error>(ObserverChain {
                queue,
                dead_letters,
                rule,
            })
        })
        .await?;
    Ok(chain.clone())
}

/// The chain's ARNs, all derived from names.
pub struct Chain {
    pub queue_arn: String,
    pub dead_letter_arn: String,
    pub rule_arn: String,
    pub cluster_arn: String,
}

impl Chain {
    pub fn of(cx: &Context) -> Self {
        Self {
            queue_arn: cx.events_queue_arn(),
            dead_letter_arn: format!(
                "{}:{}",
                cx.arn_prefix("sqs"),
                cx.names.events_dead_letter_queue
            ),
            rule_arn: format!("{}:rule/{}", cx.arn_prefix("events"), cx.names.events_rule),
            cluster_arn: format!("{}:cluster/{}", cx.arn_prefix("ecs"), cx.names.cluster),
        }
    }

    /// Task state changes of this pool's cluster, and nothing else.
    pub fn event_pattern(&self) -> Value {
        json!({
            "source": ["aws.ecs"],
            "detail-type": ["ECS Task State Change"],
            "detail": { "clusterArn": [self.cluster_arn] }
        })
    }

    /// Only EventBridge may send, and only for this pool's rule.
    pub fn queue_policy(&self) -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "OnlyThisPoolsRule",
                "Effect": "Allow",
                "Principal": { "Service": "events.amazonaws.com" },
                "Action": "sqs:SendMessage",
                "Resource": self.queue_arn,
                "Condition": { "ArnEquals": { "aws:SourceArn": self.rule_arn } }
            }]
        })
    }

    fn queue_attributes(&self) -> HashMap<&'static str, String> {
        HashMap::from([
            ("VisibilityTimeout", VISIBILITY_TIMEOUT_SECS.to_string()),
            (
                "RedrivePolicy",
                json!({ "deadLetterTargetArn": self.dead_letter_arn, "maxReceiveCount": MAX_RECEIVES })
                    .to_string(),
            ),
            ("Policy", self.queue_policy().to_string()),
        ])
    }
}

fn dead_letter_attributes() -> HashMap<&'static str, String> {
    HashMap::from([(
        "MessageRetentionPeriod",
        DEAD_LETTER_RETENTION_SECS.to_string(),
    )])
}

/// The attributes that differ from the wanted ones (JSON ones compared as JSON, the queue
/// policy by what it grants).
fn differing(found: &FoundQueue, wanted: &HashMap<&'static str, String>) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = wanted
        .iter()
        .filter(|(name, value)| {
            let have = found.attributes.get(**name);
            let as_json = |v: &str| serde_json::from_str::<Value>(v).ok();
            match (have, value.starts_with('{')) {
                (Some(have), true) if **name == "Policy" => match (as_json(have), as_json(value)) {
                    (Some(have), Some(want)) => !policy::same(&have, &want),
                    _ => true,
                },
                (Some(have), true) => as_json(have) != as_json(value),
                (Some(have), false) => have != *value,
                (None, _) => true,
            }
        })
        .map(|(name, _)| *name)
        .collect();
    names.sort_unstable();
    names
}

fn queue_state(found: &Option<FoundQueue>, wanted: &HashMap<&'static str, String>) -> ItemState {
    match found {
        None => ItemState::Missing,
        Some(q) if !q.owned => ItemState::Foreign { id: q.url.clone() },
        Some(q) => q.tags.onto(match differing(q, wanted) {
            differ if differ.is_empty() => ItemState::Present { id: q.url.clone() },
            differ => ItemState::drifted(
                &q.url,
                format!("{} differ", differ.join(", ")),
                Remedy::Update(Some("will be set")),
            ),
        }),
    }
}

/// What is wrong with the rule: its state, what it matches, where it sends. The one check the
/// plan (in words) and status (as problems) share.
fn rule_problems(rule: &FoundRule, chain: &Chain) -> Vec<ChainProblem> {
    let mut problems = Vec::new();
    if rule.state != "ENABLED" {
        problems.push(ChainProblem::RuleDisabled(rule.state.clone()));
    }
    if rule.pattern.as_ref() != Some(&chain.event_pattern()) {
        problems.push(ChainProblem::RuleMatchesOtherEvents);
    }
    if rule.targets != [chain.queue_arn.clone()] {
        problems.push(ChainProblem::RuleNotTargetingQueue(rule.targets.clone()));
    }
    problems
}

/// [`rule_problems`] as the plan says them.
fn rule_differences(rule: &FoundRule, chain: &Chain) -> Vec<String> {
    in_words(&rule_problems(rule, chain))
}

fn in_words(problems: &[ChainProblem]) -> Vec<String> {
    problems
        .iter()
        .map(|problem| match problem {
            ChainProblem::RuleDisabled(state) => format!("state is {state}"),
            ChainProblem::RuleMatchesOtherEvents => {
                "matches other events than this cluster's task state changes".into()
            }
            ChainProblem::RuleNotTargetingQueue(targets) => format!(
                "targets {} instead of the queue",
                if targets.is_empty() {
                    "nothing".to_string()
                } else {
                    targets.join(", ")
                }
            ),
            other => unreachable!("not a rule problem: {other:?}"),
        })
        .collect()
}

fn rule_state(found: &Option<FoundRule>, chain: &Chain) -> ItemState {
    match found {
        None => ItemState::Missing,
        Some(r) if !r.owned => ItemState::Foreign { id: r.arn.clone() },
        Some(r) => r.tags.onto(match rule_differences(r, chain) {
            differ if differ.is_empty() => ItemState::Present { id: r.arn.clone() },
            differ => ItemState::drifted(
                &r.arn,
                differ.join("; "),
                Remedy::Update(Some("will be set")),
            ),
        }),
    }
}

/// A broken link in the chain, as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainProblem {
    /// The rule exists but does not fire (`DISABLED`).
    RuleDisabled(String),
    /// The rule matches other events than this cluster's task state changes.
    RuleMatchesOtherEvents,
    /// The rule sends elsewhere, or nowhere (the ARNs it targets).
    RuleNotTargetingQueue(Vec<String>),
    /// The queue's policy is not exactly "only this pool's rule may send".
    QueuePolicyChanged,
    /// Other queue attributes differ (visibility timeout, redrive).
    QueueAttributesChanged(Vec<&'static str>),
}

/// What status needs of the chain: its broken links and the queues' depths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainHealth {
    pub problems: Vec<ChainProblem>,
    /// Messages in the dead-letter queue: state changes the worker never handled.
    pub dead_letters: Option<u64>,
    /// Messages waiting in the queue: a backlog means the observer is not reading.
    pub waiting: Option<u64>,
}

/// The chain's broken links (of the parts that exist: a missing part is a missing resource).
pub fn check(found: &ObserverChain, chain: &Chain) -> ChainHealth {
    let mut problems = Vec::new();
    if let Some(rule) = found.rule.as_ref().filter(|r| r.owned) {
        problems.extend(rule_problems(rule, chain));
    }
    if let Some(queue) = found.queue.as_ref().filter(|q| q.owned) {
        let differ = differing(queue, &chain.queue_attributes());
        if differ.contains(&"Policy") {
            problems.push(ChainProblem::QueuePolicyChanged);
        }
        let others: Vec<&'static str> = differ.into_iter().filter(|d| *d != "Policy").collect();
        if !others.is_empty() {
            problems.push(ChainProblem::QueueAttributesChanged(others));
        }
    }
    let depth = |q: &Option<FoundQueue>| {
        q.as_ref()
            .and_then(|q| q.attributes.get("ApproximateNumberOfMessages"))
            .and_then(|n| n.parse().ok())
    };
    ChainHealth {
        problems,
        dead_letters: depth(&found.dead_letters),
        waiting: depth(&found.queue),
    }
}

/// Creates the queue with its attributes and tags, or sets the attributes that differ.
async fn ensure_queue(
    cx: &Context,
    name: &str,
    found: Option<&FoundQueue>,
    wanted: HashMap<&'static str, String>,
    report: &mut Vec<String>,
) -> Result<()> {
    let sqs = &cx.aws.sqs;
    let Some(found) = found else {
        let attributes: HashMap<_, _> = wanted.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let tags: HashMap<String, String> = cx.tags(NAME).into_iter().collect();
        let created = retry_while(
            RECREATE_WAIT,
            |e| is_code(e, RECENTLY_DELETED),
            || {
                let request = sqs
                    .create_queue()
                    .queue_name(name)
                    .set_attributes(Some(attributes.clone()))
                    .set_tags(Some(tags.clone()));
                async move {
                    request
                        .send()
                        .await
                        .aws(format!("creating SQS queue {name}"))
                }
            },
        )
        .await?;
        let url = created.queue_url().unwrap_or(name).to_string();
        cx.ledger.created(NAME, ResourceKind::Queue, &url)?;
        report.push(format!("created SQS queue {name}"));
        return Ok(());
    };
    if !found.owned {
        return Err(not_ours(cx, "an SQS queue", name));
    }
    record_found(cx, NAME, ResourceKind::Queue, &found.url)?;
    let what = format!("SQS queue {name}");
    let retag = retag::apply(cx, Tagged::Queue(&found.url), &what, &found.tags);
    report.extend(retag.await?);
    let differ = differing(found, &wanted);
    if differ.is_empty() {
        return Ok(());
    }
    let attributes: HashMap<_, _> = wanted
        .into_iter()
        .filter(|(k, _)| differ.contains(k))
        .map(|(k, v)| (k.into(), v))
        .collect();
    sqs.set_queue_attributes()
        .queue_url(&found.url)
        .set_attributes(Some(attributes))
        .send()
        .await
        .aws(format!("setting the attributes of SQS queue {name}"))?;
    report.push(format!("set {} of SQS queue {name}", differ.join(", ")));
    Ok(())
}

/// Creates or corrects the rule and its one target.
async fn ensure_rule(
    cx: &Context,
    chain: &Chain,
    found: Option<&FoundRule>,
    report: &mut Vec<String>,
) -> Result<()> {
    let name = &cx.names.events_rule;
    let events = &cx.aws.events;
    if let Some(rule) = found.filter(|r| !r.owned) {
        return Err(not_ours(cx, "an EventBridge rule", &rule.arn));
    }
    let problems = found.map(|r| rule_problems(r, chain));
    let any =
        |wrong: fn(&ChainProblem) -> bool| problems.as_ref().is_none_or(|p| p.iter().any(wrong));
    let rewrite = any(|p| {
        matches!(
            p,
            ChainProblem::RuleDisabled(_) | ChainProblem::RuleMatchesOtherEvents
        )
    });
    let retarget = any(|p| matches!(p, ChainProblem::RuleNotTargetingQueue(_)));
    if rewrite {
        let tags = found.is_none().then(|| {
            cx.sdk_tags(NAME, |k, v| {
                aws_sdk_eventbridge::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
            })
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
        });
        events
            .put_rule()
            .name(name)
            .description(format!(
                "ECS task state changes of ecsctl pool {} for its worker's observer",
                cx.pool()
            ))
            .event_pattern(chain.event_pattern().to_string())
            .state(aws_sdk_eventbridge::types::RuleState::Enabled)
            .set_tags(tags.transpose()?)
            .send()
            .await
            .aws(format!("writing EventBridge rule {name}"))?;
    }
    match found {
        None => cx.ledger.created(NAME, ResourceKind::EventRule, name)?,
        Some(_) => record_found(cx, NAME, ResourceKind::EventRule, name)?,
    }
    if retarget {
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id(TARGET_ID)
            .arn(&chain.queue_arn)
            .build()?;
        events
            .put_targets()
            .rule(name)
            .targets(target)
            .send()
            .await
            .aws(format!("pointing EventBridge rule {name} at its queue"))?;
    }
    report.push(match problems {
        None => format!("created EventBridge rule {name}"),
        Some(p) if p.is_empty() => return Ok(()),
        Some(p) => format!(
            "corrected EventBridge rule {name}: {}",
            in_words(&p).join("; ")
        ),
    });
    Ok(())
}

#[async_trait]
impl Step for ObserverStep {
    fn name(&self) -> &'static str {
        NAME
    }

    fn depends_on(&self) -> &'static [&'static str] {
        // The rule names the cluster by its ARN, which is derived: nothing to wait for.
        &[]
    }

    async fn look(&self, cx: &Context) -> Result<StepPlan> {
        let names = &cx.names;
        let found = chain_at_look(cx).await?;
        let chain = Chain::of(cx);
        let items = vec![
            PlanItem::new(
                ResourceKind::Queue,
                &names.events_dead_letter_queue,
                queue_state(&found.dead_letters, &dead_letter_attributes()),
            ),
            PlanItem::new(
                ResourceKind::Queue,
                &names.events_queue,
                queue_state(&found.queue, &chain.queue_attributes()),
            ),
            PlanItem::new(
                ResourceKind::EventRule,
                &names.events_rule,
                rule_state(&found.rule, &chain),
            ),
        ];
        self.seen.put(found);
        Ok(StepPlan { step: NAME, items })
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let found = self.seen.get()?;
        let chain = Chain::of(cx);
        let names = &cx.names;
        // The queue's redrive names the dead-letter queue; the rule only needs ARNs.
        let queues = async {
            let mut changes = Vec::new();
            ensure_queue(
                cx,
                &names.events_dead_letter_queue,
                found.dead_letters.as_ref(),
                dead_letter_attributes(),
                &mut changes,
            )
            .await?;
            ensure_queue(
                cx,
                &names.events_queue,
                found.queue.as_ref(),
                chain.queue_attributes(),
                &mut changes,
            )
            .await?;
            Ok::<_, anyhow::Error>(changes)
        };
        let rule = async {
            let mut changes = Vec::new();
            ensure_rule(cx, &chain, found.rule.as_ref(), &mut changes).await?;
            // ensure_rule refused a rule that is not ecsctl's.
            if let Some(rule) = &found.rule {
                let what = format!("EventBridge rule {}", names.events_rule);
                let retag = retag::apply(cx, Tagged::Rule(&rule.arn), &what, &rule.tags);
                changes.extend(retag.await?);
            }
            Ok::<_, anyhow::Error>(changes)
        };
        // join!, not try_join!: a failure on one side must not cancel the other between a
        // create and its record in the ledger.
        let (queue_changes, rule_changes) = tokio::join!(queues, rule);
        let (queue_changes, rule_changes) = (queue_changes?, rule_changes?);
        let mut report = StepReport::default();
        for change in queue_changes.into_iter().chain(rule_changes) {
            report.change(change);
        }
        report.resource("queue", &names.events_queue);
        report.resource("rule", &names.events_rule);
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        let found = self.seen.get()?;
        let mut report = StepReport::default();
        let rules = destroy_targets(
            cx,
            NAME,
            ResourceKind::EventRule,
            found
                .rule
                .iter()
                .filter(|r| r.owned)
                .map(|_| cx.names.events_rule.as_str()),
        );
        for rule in rules {
            if read::delete_rule(cx, &rule).await? {
                report.change(format!("deleted EventBridge rule {rule}"));
            }
            cx.ledger.forget(ResourceKind::EventRule, &rule)?;
        }
        let owned_queues = [&found.queue, &found.dead_letters]
            .into_iter()
            .flatten()
            .filter(|q| q.owned)
            .map(|q| q.url.as_str());
        for url in destroy_targets(cx, NAME, ResourceKind::Queue, owned_queues) {
            let deleted = cx
                .aws
                .sqs
                .delete_queue()
                .queue_url(&url)
                .send()
                .await
                .done_unless(QUEUE_GONE, format!("deleting SQS queue {url}"))?;
            cx.ledger.forget(ResourceKind::Queue, &url)?;
            if deleted {
                report.change(format!("deleted SQS queue {url}"));
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> Chain {
        Chain {
            queue_arn: "arn:aws:sqs:us-east-1:1:ecsctl-p-task-events".into(),
            dead_letter_arn: "arn:aws:sqs:us-east-1:1:ecsctl-p-task-events-dlq".into(),
            rule_arn: "arn:aws:events:us-east-1:1:rule/ecsctl-p-task-state".into(),
            cluster_arn: "arn:aws:ecs:us-east-1:1:cluster/ecsctl-p".into(),
        }
    }

    #[test]
    fn only_this_pools_rule_may_send_and_only_this_clusters_events_match() {
        let c = chain();
        let policy = c.queue_policy();
        let statements = policy["Statement"].as_array().unwrap();
        assert!(statements
            .iter()
            .all(|s| s["Condition"]["ArnEquals"]["aws:SourceArn"] == c.rule_arn));
        assert_eq!(
            statements[0]["Principal"]["Service"],
            "events.amazonaws.com"
        );
        assert_eq!(statements[0]["Action"], "sqs:SendMessage");
        assert_eq!(
            c.event_pattern()["detail"]["clusterArn"],
            json!([c.cluster_arn])
        );
        let redrive: Value = serde_json::from_str(&c.queue_attributes()["RedrivePolicy"]).unwrap();
        assert_eq!(redrive["maxReceiveCount"], 3);
        assert_eq!(redrive["deadLetterTargetArn"], c.dead_letter_arn);
    }

    #[test]
    fn json_attributes_compare_as_json_and_a_widened_policy_is_drift() {
        let c = chain();
        let wanted = c.queue_attributes();
        let mut attributes: HashMap<String, String> = wanted
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        // AWS returns JSON with its own spacing and key order.
        attributes.insert(
            "RedrivePolicy".into(),
            format!(
                "{{\"maxReceiveCount\":3, \"deadLetterTargetArn\":\"{}\"}}",
                c.dead_letter_arn
            ),
        );
        let found = FoundQueue {
            url: "https://sqs/q".into(),
            owned: true,
            attributes,
            tags: retag::TagChanges::default(),
        };
        assert!(differing(&found, &wanted).is_empty());
        let mut widened = found.clone();
        widened.attributes.insert(
            "Policy".into(),
            json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sqs:*"}]})
                .to_string(),
        );
        assert_eq!(differing(&widened, &wanted), ["Policy"]);
        // The same grant written another way is no drift.
        let mut rewritten = c.queue_policy();
        rewritten["Statement"][0]["Action"] = json!(["SQS:SendMessage"]);
        rewritten["Statement"][0]["Sid"] = json!("renamed");
        let mut same = found.clone();
        same.attributes
            .insert("Policy".into(), rewritten.to_string());
        assert!(differing(&same, &wanted).is_empty());
    }

    #[test]
    fn a_disabled_rule_or_a_removed_target_is_drift() {
        let c = chain();
        let good = FoundRule {
            arn: c.rule_arn.clone(),
            owned: true,
            state: "ENABLED".into(),
            pattern: Some(c.event_pattern()),
            targets: vec![c.queue_arn.clone()],
            tags: retag::TagChanges::default(),
        };
        assert!(rule_differences(&good, &c).is_empty());
        let disabled = FoundRule {
            state: "DISABLED".into(),
            ..good.clone()
        };
        assert_eq!(rule_differences(&disabled, &c), ["state is DISABLED"]);
        let untargeted = FoundRule {
            targets: vec![],
            ..good
        };
        assert_eq!(
            rule_differences(&untargeted, &c),
            ["targets nothing instead of the queue"]
        );
    }
}
