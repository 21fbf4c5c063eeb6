//! The judgement: each resource with its drift, the verdict, and a reason with its fix for each
//! problem, most fundamental first.

use super::causes::{classify, quote, stop_reason};
use super::{observer, prefect};
use super::{Facts, Health, Reason, Report, Resource, ResourceState};
use crate::aws::ecs::{Rollout, ServiceInfo, TaskDefinitionName};
use crate::aws::messages;
use crate::ledger::ResourceKind;
use crate::steps::{ItemState, Names, Remedy};

/// Stopped tasks that stopped this recently still count against a service that otherwise looks
/// steady: a worker that keeps crashing is not healthy between two crashes.
const RECENT_STOP_SECS: i64 = 15 * 60;

/// The verdict and its reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub health: Health,
    pub reasons: Vec<Reason>,
}

/// Turns what status read into the report: resources with their drift, the verdict and reasons.
pub fn report(facts: Facts) -> Report {
    let resources = resources(&facts);
    let verdict = verdict(&facts, &resources);
    let mut warnings = Vec::new();
    let mut service = match &facts.service {
        Ok(s) => s.clone(),
        Err(_) => None, // a reason says so
    };
    match &facts.latest_task_definition {
        Ok(latest) => {
            if let Some(s) = service.as_mut() {
                s.latest_task_definition.clone_from(latest);
            }
        }
        Err(e) => warnings.push(e.clone()),
    }
    let stopped_tasks = match &facts.stopped_tasks {
        Ok(tasks) => tasks.clone(),
        Err(e) => {
            warnings.push(e.clone());
            Vec::new()
        }
    };
    let logs = match &facts.logs {
        Ok(logs) => Some(logs.clone()),
        Err(e) => {
            warnings.push(e.clone());
            None
        }
    };
    let summary = summary(&facts, &verdict, service.as_ref());
    let prefect = prefect::info(&facts);
    let observer = observer::info(&facts);
    Report {
        pool: facts.pool,
        account: facts.account,
        region: facts.region,
        checked_at: facts.checked_at,
        verdict: verdict.health,
        summary,
        reasons: verdict.reasons,
        ledger: facts.ledger,
        resources,
        service,
        stopped_tasks,
        logs,
        warnings,
        prefect,
        observer,
    }
}

/// Each plan item as a resource, with the drift status sees beyond the step looks: the service
/// running an older revision than the newest one ecsctl registered, and a desired count other
/// than the last bootstrap's.
pub fn resources(facts: &Facts) -> Vec<Resource> {
    let service = facts.service.as_ref().ok().and_then(Option::as_ref);
    let latest = facts
        .latest_task_definition
        .as_ref()
        .ok()
        .and_then(Option::as_deref);
    let mut out = Vec::new();
    for plan in &facts.plans {
        for item in &plan.items {
            let mut drift = match &item.state {
                ItemState::Drifted { drift, .. } => vec![drift.what.clone()],
                _ => Vec::new(),
            };
            if item.kind == ResourceKind::Service && item.state.is_owned() {
                if let Some(s) = service {
                    drift.extend(service_drift(
                        s,
                        latest,
                        &item.state,
                        facts.wanted_desired_count,
                    ));
                }
            }
            let state = match &item.state {
                ItemState::Missing => ResourceState::Missing,
                ItemState::Present { .. } if drift.is_empty() => ResourceState::Present,
                ItemState::Present { .. } | ItemState::Drifted { .. } => ResourceState::Drifted,
                ItemState::Used { .. } => ResourceState::Used,
                ItemState::Foreign { .. } => ResourceState::Foreign,
            };
            out.push(Resource {
                step: plan.step,
                kind: item.kind,
                name: item.name.clone(),
                state,
                id: item.state.id().map(str::to_string),
                drift,
                in_ledger: facts
                    .created
                    .iter()
                    .any(|(step, kind)| step == plan.step && *kind == item.kind),
                remedy: match &item.state {
                    ItemState::Drifted { drift, .. } => Some(drift.remedy),
                    _ => None,
                },
            });
        }
    }
    out
}

/// Drift of the service the service step's look does not check.
fn service_drift(
    s: &ServiceInfo,
    latest: Option<&str>,
    looked: &ItemState,
    wanted_desired: Option<u32>,
) -> Vec<String> {
    let mut drift = Vec::new();
    if let Some(latest) = latest {
        let running = TaskDefinitionName::parse(&s.task_definition);
        let newest = TaskDefinitionName::parse(latest);
        // Another family is the look's finding already.
        if running.family == newest.family && running.short != newest.short {
            drift.push(format!(
                "runs task definition {}, not the latest revision {}",
                running.short, newest.short
            ));
        }
    }
    // With the ledger's inputs, the look already compares the desired count when it reports
    // drift for another reason; only a look that saw nothing wrong needs it here.
    if let (ItemState::Present { .. }, Some(want)) = (looked, wanted_desired) {
        if i64::from(s.desired) != i64::from(want) {
            drift.push(format!("desired count {} (wanted {want})", s.desired));
        }
    }
    drift
}

/// Healthy, unhealthy (with reasons) or not bootstrapped. AWS reasons come first, then
/// Prefect's: the most fundamental first.
pub fn verdict(facts: &Facts, resources: &[Resource]) -> Verdict {
    let names = Names::new(&facts.pool, &facts.region);
    let bootstrap = format!("`ecsctl bootstrap --pool {}`", facts.pool);
    // The work pool's own problems are Prefect's reasons, worded for Prefect.
    let aws: Vec<&Resource> = resources
        .iter()
        .filter(|r| r.kind != ResourceKind::WorkPool)
        .collect();
    let foreign = aws
        .iter()
        .filter(|r| r.state == ResourceState::Foreign)
        .map(|r| foreign_reason(&facts.pool, r));

    let exists = resources
        .iter()
        .any(|r| matches!(r.state, ResourceState::Present | ResourceState::Drifted));
    if !exists && facts.created.is_empty() {
        let mut reasons = vec![not_bootstrapped_reason(facts, &bootstrap)];
        reasons.extend(foreign);
        reasons.extend(prefect::reasons_before_bootstrap(facts));
        return Verdict {
            health: Health::NotBootstrapped,
            reasons,
        };
    }

    let mut reasons: Vec<Reason> = foreign.collect();
    for r in &aws {
        match r.state {
            ResourceState::Missing => reasons.push(missing_reason(facts, r, &bootstrap)),
            // The observer chain's drift is judged link by link below.
            ResourceState::Drifted if is_observer(r.kind) => {}
            ResourceState::Drifted => reasons.push(drift_reason(r, &bootstrap)),
            _ => {}
        }
    }
    // Missing ones first, then drifted ones, as a person would fix them.
    reasons.sort_by_key(|r| match r.code {
        "foreign" => 0,
        "missing" => 1,
        _ => 2,
    });

    let service_ours = resources.iter().any(|r| {
        r.kind == ResourceKind::Service
            && matches!(r.state, ResourceState::Present | ResourceState::Drifted)
    });
    if service_ours {
        match &facts.service {
            Err(e) => reasons.push(Reason {
                code: "service-unreadable",
                subject: Some(names.service.clone()),
                message: format!("could not read the service, so its health is unknown: {e}"),
                fix: Some(
                    "check the credentials allow ecs:DescribeServices, then run status again"
                        .into(),
                ),
            }),
            Ok(None) => {}
            Ok(Some(s)) => reasons.extend(service_reasons(facts, s, &names, &bootstrap)),
        }
    }
    reasons.extend(observer::reasons(facts));
    let after_aws = !reasons.is_empty();
    reasons.extend(prefect::reasons(facts, resources, after_aws));
    let health = if reasons.is_empty() {
        Health::Healthy
    } else {
        Health::Unhealthy
    };
    Verdict { health, reasons }
}

fn is_observer(kind: ResourceKind) -> bool {
    matches!(kind, ResourceKind::Queue | ResourceKind::EventRule)
}

fn foreign_reason(pool: &str, r: &Resource) -> Reason {
    Reason {
        code: "foreign",
        subject: Some(r.name.clone()),
        message: format!(
            "a {} named {} exists but was not created by ecsctl for pool '{pool}' (no ecsctl:pool={pool} tag)",
            r.kind.label(),
            r.name
        ),
        fix: Some(
            "delete or rename it, or use another --pool; ecsctl never touches resources it did not create"
                .into(),
        ),
    }
}

fn not_bootstrapped_reason(facts: &Facts, bootstrap: &str) -> Reason {
    Reason {
        code: "not-bootstrapped",
        subject: None,
        message: format!(
            "nothing of pool '{}' exists in account {} region {}{}",
            facts.pool,
            facts.account,
            facts.region,
            if facts.ledger.found {
                ""
            } else {
                " (no ledger, and nothing carries its ecsctl:pool tag)"
            }
        ),
        fix: Some(format!("run {bootstrap} to create it")),
    }
}

fn missing_reason(facts: &Facts, r: &Resource, bootstrap: &str) -> Reason {
    let yours = facts.used.iter().any(|(kind, id)| {
        *kind == r.kind && (*id == r.name || r.id.as_deref() == Some(id.as_str()))
    });
    let (message, fix) = if yours {
        (
            format!(
                "your {} {} that the worker runs in is gone",
                r.kind.label(),
                r.name
            ),
            format!("run {bootstrap} with --vpc-id and --subnet-ids naming ones that exist"),
        )
    } else if r.in_ledger {
        (
            format!(
                "the {} {} is missing: ecsctl created it (the ledger says so) but it was deleted outside ecsctl",
                r.kind.label(),
                r.name
            ),
            format!("run {bootstrap} (with the same inputs) to recreate it"),
        )
    } else {
        (
            format!("the {} {} is missing", r.kind.label(), r.name),
            format!("run {bootstrap} (with the same inputs) to create it"),
        )
    };
    Reason {
        code: "missing",
        subject: Some(r.name.clone()),
        message,
        fix: Some(fix),
    }
}

fn drift_reason(r: &Resource, bootstrap: &str) -> Reason {
    let what = r.drift.join("; ");
    let fix = match r.remedy {
        Some(Remedy::Restore) => format!(
            "run {bootstrap} to restore it before the deletion date, or the worker loses its API key"
        ),
        Some(Remedy::AwaitDeletion) => {
            format!("wait until it is gone, then run {bootstrap} to recreate it")
        }
        Some(Remedy::Update(_)) | None => format!(
            "run {bootstrap} with the same inputs to put it back as bootstrapped (or with new inputs to keep the change)"
        ),
    };
    Reason {
        code: "drifted",
        subject: Some(r.name.clone()),
        message: format!(
            "the {} {} differs from the last bootstrap: {what}",
            r.kind.label(),
            r.name
        ),
        fix: Some(fix),
    }
}

fn service_reasons(facts: &Facts, s: &ServiceInfo, names: &Names, bootstrap: &str) -> Vec<Reason> {
    let subject = Some(s.name.clone());
    let mut reasons = Vec::new();
    let rollout = s.rollout_state();
    let evidence = evidence(facts, s, names, &rollout);

    if s.status != "ACTIVE" {
        // DRAINING: the drift reason already says what to do.
        return reasons;
    }
    if s.desired == 0 {
        reasons.push(Reason {
            code: "service-scaled-to-zero",
            subject: subject.clone(),
            message: "the service is scaled to 0 tasks: no worker runs".into(),
            fix: Some(format!(
                "run {bootstrap} to restore the desired count (or add --desired-count N)"
            )),
        });
    } else if s.running < s.desired {
        let no_streams = matches!(&facts.logs, Ok(l) if l.exists && !l.has_streams);
        let fix = if !evidence.is_empty() {
            "the reasons below say why tasks do not start or keep stopping".to_string()
        } else if matches!(&facts.logs, Ok(l) if !l.lines.is_empty()) {
            "see the worker's last log lines above for why it stops".to_string()
        } else {
            format!(
                "ECS gives no reason yet{}: if the service was just created or updated, wait a minute and run `ecsctl status --pool {}` again",
                if no_streams { " and no task has ever written a log line" } else { "" },
                facts.pool
            )
        };
        reasons.push(Reason {
            code: "service-not-running",
            subject: subject.clone(),
            message: format!(
                "the service runs {} of {} worker tasks ({} pending)",
                s.running, s.desired, s.pending
            ),
            fix: Some(fix),
        });
    }
    match &rollout {
        Rollout::Failed {
            reason,
            rolled_back,
        } => reasons.push(Reason {
            code: "rollout-failed",
            subject: subject.clone(),
            message: if *rolled_back {
                format!("the last deployment failed and was rolled back: {reason}")
            } else {
                format!("the service's deployment failed and ECS stopped launching worker tasks (there was no earlier deployment to roll back to): {reason}")
            },
            fix: Some(format!(
                "fix the cause shown by the stopped tasks and events, then run {bootstrap} again{}",
                if *rolled_back { "" } else { ": it starts a new deployment" }
            )),
        }),
        Rollout::InProgress if s.desired > 0 && s.running >= s.desired => reasons.push(Reason {
            code: "rollout-in-progress",
            subject: subject.clone(),
            message: format!(
                "a deployment is still rolling out ({} deployment{}, primary {})",
                s.deployments.len(),
                if s.deployments.len() == 1 { "" } else { "s" },
                s.rollout.as_deref().unwrap_or("without a rollout state")
            ),
            fix: Some(format!(
                "wait for it to finish, then run `ecsctl status --pool {}` again",
                facts.pool
            )),
        }),
        _ => {}
    }
    reasons.extend(evidence);
    reasons
}

/// Reasons found in what ECS said: the service events since it was last steady, and tasks that
/// stopped for a reason other than a normal replacement. One reason per kind of problem, quoting
/// the newest evidence.
fn evidence(facts: &Facts, s: &ServiceInfo, names: &Names, rollout: &Rollout) -> Vec<Reason> {
    let mut found: Vec<Reason> = Vec::new();
    let mut add = |reason: Reason| {
        if !found.iter().any(|r| r.code == reason.code) {
            found.push(reason);
        }
    };
    // Events are newest first; anything before the last steady state is history.
    for event in s
        .events
        .iter()
        .take_while(|e| !messages::is_steady_state_event(&e.message))
    {
        if let Some(cause) = classify(&event.message, names) {
            add(Reason {
                code: cause.code,
                subject: Some(s.name.clone()),
                message: format!(
                    "{}: the service reports \"{}\"",
                    cause.what,
                    quote(&event.message)
                ),
                fix: Some(cause.fix),
            });
        }
    }
    let steady = *rollout == Rollout::Steady && s.running == s.desired;
    let now = facts.checked_at.unix_timestamp();
    let tasks = facts.stopped_tasks.as_deref().unwrap_or_default();
    for task in tasks {
        // A steady service outlived its earlier failures, unless tasks keep stopping right now.
        let recent = task
            .stopped_at
            .is_some_and(|t| now - t.unix_timestamp() <= RECENT_STOP_SECS);
        if steady && !recent {
            continue;
        }
        if let Some(reason) = stop_reason(task, names) {
            add(reason);
        }
    }
    found
}

fn summary(facts: &Facts, verdict: &Verdict, service: Option<&ServiceInfo>) -> String {
    let pool = &facts.pool;
    match verdict.health {
        Health::Healthy => match service {
            Some(s) => format!(
                "pool '{pool}' is healthy: {} of {} worker tasks running",
                s.running, s.desired
            ),
            None => format!("pool '{pool}' is healthy"),
        },
        Health::NotBootstrapped => format!(
            "pool '{pool}' is not bootstrapped: nothing of it exists in account {} region {}",
            facts.account, facts.region
        ),
        Health::Unhealthy => {
            let first = verdict
                .reasons
                .first()
                .map(|r| r.message.as_str())
                .unwrap_or("no reason given");
            let more = verdict.reasons.len().saturating_sub(1);
            if more == 0 {
                format!("pool '{pool}' is unhealthy: {first}")
            } else {
                format!(
                    "pool '{pool}' is unhealthy: {first} (and {more} more reason{})",
                    if more == 1 { "" } else { "s" }
                )
            }
        }
    }
}
