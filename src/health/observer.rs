//! The observer chain, judged as a chain: each broken link is its own reason (a rule that does
//! not fire, that matches other events, that sends elsewhere; a queue that others may write to),
//! and so are dead letters (state changes the worker never handled), a backlog, and an observer
//! that crashed in the worker's own words.

use serde::Serialize;

use super::{Facts, Reason};
use crate::prefect::observer_trouble;
use crate::steps::observer::{ChainHealth, ChainProblem};
use crate::steps::Names;

/// Messages waiting in the queue beyond which the observer is taken not to be reading it.
const BACKLOG: u64 = 100;

/// The chain's queues in the report (`observer` in the JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ObserverInfo {
    /// The queue the worker's observer reads.
    pub queue: String,
    /// Messages in its dead-letter queue (state changes the worker never handled); `null` when
    /// the queue could not be read or does not exist.
    pub dead_letters: Option<u64>,
    /// Messages waiting in the queue; `null` likewise.
    pub waiting: Option<u64>,
    /// Why the chain could not be read; `null` when it was.
    pub error: Option<String>,
}

pub fn info(facts: &Facts) -> ObserverInfo {
    let queue = Names::new(&facts.pool, &facts.region).events_queue;
    match &facts.observer {
        Ok(chain) => ObserverInfo {
            queue,
            dead_letters: chain.dead_letters,
            waiting: chain.waiting,
            error: None,
        },
        Err(e) => ObserverInfo {
            queue,
            error: Some(e.clone()),
            ..ObserverInfo::default()
        },
    }
}

pub fn reasons(facts: &Facts) -> Vec<Reason> {
    let names = Names::new(&facts.pool, &facts.region);
    let bootstrap = format!("`ecsctl bootstrap --pool {}`", facts.pool);
    let mut reasons = Vec::new();
    let chain = match &facts.observer {
        Ok(chain) => chain,
        Err(e) => {
            reasons.push(reason(
                "observer-unreadable",
                &names.events_queue,
                format!("could not read the observer chain, so crash detection is unknown: {e}"),
                "check the credentials allow sqs:GetQueueAttributes and events:DescribeRule, then run status again".into(),
            ));
            return reasons;
        }
    };
    for problem in &chain.problems {
        reasons.push(problem_reason(problem, &names, &bootstrap));
    }
    reasons.extend(depth_reasons(chain, &names));
    if let Ok(logs) = &facts.logs {
        if let Some(line) = logs
            .lines
            .iter()
            .rev()
            .find(|l| observer_trouble(&l.message))
        {
            reasons.push(reason(
                "observer-crashed",
                &names.events_queue,
                format!(
                    "the worker's observer is failing, so crashed flow runs are not detected: its log says \"{}\"",
                    line.message.trim()
                ),
                format!(
                    "check the worker role {} may read the queue {} ({bootstrap} restores both), then restart the worker (bootstrap forces a new deployment when it changes anything)",
                    names.worker_role, names.events_queue
                ),
            ));
        }
    }
    reasons
}

fn problem_reason(problem: &ChainProblem, names: &Names, bootstrap: &str) -> Reason {
    let (code, subject, message) = match problem {
        ChainProblem::RuleDisabled(state) => (
            "observer-rule-disabled",
            &names.events_rule,
            format!("the EventBridge rule {} is {state}: no task state change reaches the worker", names.events_rule),
        ),
        ChainProblem::RuleMatchesOtherEvents => (
            "observer-rule-pattern",
            &names.events_rule,
            format!("the EventBridge rule {} no longer matches this cluster's task state changes", names.events_rule),
        ),
        ChainProblem::RuleNotTargetingQueue(targets) => (
            "observer-rule-target",
            &names.events_rule,
            format!(
                "the EventBridge rule {} sends to {} instead of the queue {}",
                names.events_rule,
                if targets.is_empty() { "nothing".to_string() } else { targets.join(", ") },
                names.events_queue
            ),
        ),
        ChainProblem::QueuePolicyChanged => (
            "observer-queue-policy",
            &names.events_queue,
            format!(
                "the queue {}'s policy is not \"only this pool's rule may send\": others may write to it, or the rule may not",
                names.events_queue
            ),
        ),
        ChainProblem::QueueAttributesChanged(attributes) => (
            "observer-queue-settings",
            &names.events_queue,
            format!("the queue {}'s {} changed", names.events_queue, attributes.join(", ")),
        ),
    };
    reason(
        code,
        subject,
        message,
        format!("run {bootstrap} to put the chain back"),
    )
}

fn depth_reasons(chain: &ChainHealth, names: &Names) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if let Some(n) = chain.dead_letters.filter(|n| *n > 0) {
        reasons.push(reason(
            "observer-dead-letters",
            &names.events_dead_letter_queue,
            format!(
                "{n} task state change(s) the worker never handled are in the dead-letter queue {}: their flow runs may show a wrong state",
                names.events_dead_letter_queue
            ),
            format!(
                "look for observer errors in the worker's log lines; read the messages with `aws sqs receive-message --queue-url <url of {}>`, then purge that queue",
                names.events_dead_letter_queue
            ),
        ));
    }
    if let Some(n) = chain.waiting.filter(|n| *n > BACKLOG) {
        reasons.push(reason(
            "observer-backlog",
            &names.events_queue,
            format!("{n} task state changes are waiting in the queue {}: the worker's observer is not reading it", names.events_queue),
            "check the worker runs and its log lines show no observer errors".into(),
        ));
    }
    reasons
}

fn reason(code: &'static str, subject: &str, message: String, fix: String) -> Reason {
    Reason {
        code,
        subject: Some(subject.to_string()),
        message,
        fix: Some(fix),
    }
}
