//! The judgement behind `ecsctl status`: plain facts in (what the step looks found, the ledger,
//! the service as ECS describes it, recently stopped tasks, the worker's last log lines), a
//! [`Report`] out, with a verdict (healthy / unhealthy / not bootstrapped), the reasons in plain
//! words and the command or flag that fixes each. No AWS calls and no SDK types live here:
//! `commands::status` reads AWS and converts the answers into the structs below.
//!
//! # `ecsctl status --output json`
//!
//! [`Report`] *is* the JSON document `status --output json` prints on stdout: one object whose
//! fields are documented on [`Report`] and the types it holds. The shape is stable: every field
//! is always present (`null` or `[]` when there is nothing to say), times are RFC 3339 strings in
//! UTC, and fields are only ever added. The exit code agrees with `verdict`: 0 for `"healthy"`,
//! 1 for `"unhealthy"` and `"not-bootstrapped"`.

use serde::Serialize;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::ledger::ResourceKind;
use crate::steps::{ItemState, Names, StepPlan};

/// Stopped tasks that stopped this recently still count against a service that otherwise looks
/// steady: a worker that keeps crashing is not healthy between two crashes.
const RECENT_STOP_SECS: i64 = 15 * 60;
/// How much of an AWS message a reason quotes (the full text is in the report's other sections).
const QUOTE_CHARS: usize = 200;

// ---------------------------------------------------------------------------------------------
// The report (the JSON shape)
// ---------------------------------------------------------------------------------------------

/// The whole answer of `ecsctl status`, as printed by `--output json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The Prefect work pool the stack belongs to.
    pub pool: String,
    /// AWS account id the pool was looked for in.
    pub account: String,
    /// AWS region the pool was looked for in.
    pub region: String,
    /// When the check ran (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// `"healthy"`, `"unhealthy"` or `"not-bootstrapped"`.
    pub verdict: Health,
    /// One line saying the verdict and its main reason, e.g.
    /// `pool 'p' is unhealthy: the service runs 0 of 1 worker tasks (1 pending)`.
    pub summary: String,
    /// Why the pool is not healthy, most fundamental first; empty exactly when `verdict` is
    /// `"healthy"`.
    pub reasons: Vec<Reason>,
    /// Where the pool's ledger is and whether it was there.
    pub ledger: LedgerInfo,
    /// Every resource of the pool, step by step, in the order the steps are listed by ecsctl.
    pub resources: Vec<Resource>,
    /// The ECS service as ECS describes it; `null` when it does not exist (or is deleted).
    pub service: Option<ServiceInfo>,
    /// The service's recently stopped tasks, newest first (ECS keeps them about an hour).
    pub stopped_tasks: Vec<StoppedTask>,
    /// The worker's CloudWatch logs; `null` when they could not be read (see `warnings`).
    pub logs: Option<LogInfo>,
    /// Reads that failed without making the verdict impossible (e.g. no permission to read logs).
    pub warnings: Vec<String>,
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// Every resource is there as bootstrapped, the service runs all its desired tasks and its
    /// rollout completed.
    Healthy,
    /// Something of the pool exists but at least one reason says it is not working as wanted.
    Unhealthy,
    /// Nothing of the pool exists: no ledger and nothing found by the pool's tags.
    NotBootstrapped,
}

/// One reason the pool is not healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Stable, machine-readable kind of problem: `not-bootstrapped`, `missing`, `drifted`,
    /// `foreign`, `service-unreadable`, `service-scaled-to-zero`, `service-not-running`,
    /// `rollout-failed`, `rollout-in-progress`, `role-not-assumable`, `secret-unreadable`,
    /// `log-group-unusable`, `network-unreachable`, `image-pull-failed`, `capacity-unavailable`,
    /// `out-of-memory`, `container-unhealthy`, `container-exited`, `tasks-keep-failing`,
    /// `task-failed-to-start`.
    pub code: &'static str,
    /// What it is about: a resource's name, the service's name or a task id; `null` for the
    /// pool as a whole.
    pub subject: Option<String>,
    /// The problem in plain words.
    pub message: String,
    /// The command or flag that fixes it, or where to look next; `null` when there is none.
    pub fix: Option<String>,
}

/// The pool's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerInfo {
    /// The ledger file's path.
    pub path: String,
    /// Whether the file exists. Without it, status finds the pool's resources by their
    /// `ecsctl:pool` tag and the `/ecsctl/` IAM path.
    pub found: bool,
    /// Whether it holds the inputs of the last bootstrap; only then can drift from those inputs
    /// (desired count, log retention, task definition contents) be seen.
    pub has_inputs: bool,
}

/// One resource of the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    /// The step that owns it: `secret`, `log-group`, `execution-role`, `worker-role`, `network`,
    /// `cluster`, `task-definition` or `service`.
    pub step: &'static str,
    /// `secret`, `log-group`, `role`, `vpc`, `subnet`, `internet-gateway`, `route-table`,
    /// `security-group`, `cluster`, `task-definition` or `service`.
    pub kind: ResourceKind,
    /// Its name (for a resource that has none, the name ecsctl would give it).
    pub name: String,
    /// `present`, `missing`, `drifted` (there, but not as bootstrapped), `used` (yours, given
    /// with `--vpc-id`/`--subnet-ids`; never changed) or `foreign` (same name, not ecsctl's).
    pub state: ResourceState,
    /// Its ARN or id; `null` when missing.
    pub id: Option<String>,
    /// What differs from the ledger and inputs, in plain words; empty unless `drifted`.
    pub drift: Vec<String>,
    /// Whether the ledger records ecsctl creating a resource of this kind for this step (a
    /// missing one was then deleted behind ecsctl's back).
    pub in_ledger: bool,
}

/// [`Resource::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceState {
    Present,
    Missing,
    Drifted,
    Used,
    Foreign,
}

/// The ECS service, as DescribeServices reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceInfo {
    pub name: String,
    pub arn: String,
    /// `ACTIVE` or `DRAINING`.
    pub status: String,
    /// Tasks wanted, running and starting.
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    /// The task definition the service runs (ARN).
    pub task_definition: String,
    /// The newest ACTIVE revision of the worker's task definition family (ARN); `null` when
    /// none (or unreadable).
    pub latest_task_definition: Option<String>,
    /// The rollout state of the PRIMARY deployment: `COMPLETED`, `IN_PROGRESS` or `FAILED`;
    /// `null` when ECS reports none.
    pub rollout: Option<String>,
    /// The deployments, as ECS lists them (PRIMARY first).
    pub deployments: Vec<Deployment>,
    /// The last service events, newest first. These carry ECS's own words for problems such
    /// as "unable to assume the role" or "unable to place a task".
    pub events: Vec<Event>,
}

/// One deployment of the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Deployment {
    pub id: String,
    /// `PRIMARY` (the newest), `ACTIVE` (being replaced) or `INACTIVE`.
    pub status: String,
    /// Task definition ARN.
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    /// Tasks of this deployment that failed to start or stopped unexpectedly.
    pub failed_tasks: i32,
    /// `COMPLETED`, `IN_PROGRESS` or `FAILED` (the circuit breaker tripped); `null` if unknown.
    pub rollout_state: Option<String>,
    pub rollout_state_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

/// One service event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Event {
    #[serde(with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
    pub message: String,
}

/// A task of the service that stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoppedTask {
    /// The task id (the last part of its ARN).
    pub id: String,
    pub task_definition: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub stopped_at: Option<OffsetDateTime>,
    /// ECS's stop code: `TaskFailedToStart`, `EssentialContainerExited`, `UserInitiated`,
    /// `ServiceSchedulerInitiated`, `SpotInterruption`, …
    pub stop_code: Option<String>,
    /// ECS's words, e.g. `ResourceInitializationError: unable to pull secrets or registry auth: …`.
    pub stopped_reason: Option<String>,
    pub containers: Vec<ContainerStop>,
}

/// How one container of a stopped task ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerStop {
    pub name: String,
    /// `null` when the container never started.
    pub exit_code: Option<i32>,
    /// e.g. `CannotPullContainerError: …` or `OutOfMemoryError: Container killed due to memory usage`.
    pub reason: Option<String>,
}

/// The worker's CloudWatch Logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogInfo {
    /// The log group name.
    pub group: String,
    /// Whether the log group exists.
    pub exists: bool,
    /// Whether it has any log stream; without one, no worker task ever started far enough to log.
    pub has_streams: bool,
    /// The stream with the latest event (one per task); `null` without streams.
    pub stream: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_event_at: Option<OffsetDateTime>,
    /// Its last lines (at most `--log-lines`), oldest first.
    pub lines: Vec<LogLine>,
}

/// One log line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogLine {
    #[serde(with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// The facts (what `commands::status` read)
// ---------------------------------------------------------------------------------------------

/// Everything status read, as plain data. A read that failed carries its error text.
#[derive(Debug, Clone)]
pub struct Facts {
    pub pool: String,
    pub account: String,
    pub region: String,
    pub checked_at: OffsetDateTime,
    pub ledger: LedgerInfo,
    /// (step, kind) of every resource the ledger records ecsctl creating.
    pub created: Vec<(String, ResourceKind)>,
    /// (kind, id) of every resource the ledger records as the user's, used as is.
    pub used: Vec<(ResourceKind, String)>,
    /// The desired count of the last bootstrap (from the ledger's inputs).
    pub wanted_desired_count: Option<u32>,
    /// Every step's look, in step order.
    pub plans: Vec<StepPlan>,
    /// The service; `Ok(None)` when it (or its cluster) does not exist or was deleted.
    pub service: Result<Option<ServiceInfo>, String>,
    /// The newest ACTIVE revision of the worker's family (ARN).
    pub latest_task_definition: Result<Option<String>, String>,
    pub stopped_tasks: Result<Vec<StoppedTask>, String>,
    pub logs: Result<LogInfo, String>,
}

// ---------------------------------------------------------------------------------------------
// The judgement
// ---------------------------------------------------------------------------------------------

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
                ItemState::Drifted { what, .. } => vec![plain(what)],
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
        let (running, newest) = (revision_of(&s.task_definition), revision_of(latest));
        // Another family is the look's finding already.
        if running.0 == newest.0 && running.1 != newest.1 {
            drift.push(format!(
                "runs task definition {}, not the latest revision {}",
                short_task_definition(&s.task_definition),
                short_task_definition(latest)
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

/// Healthy, unhealthy (with reasons) or not bootstrapped.
pub fn verdict(facts: &Facts, resources: &[Resource]) -> Verdict {
    let names = Names::new(&facts.pool);
    let pool = &facts.pool;
    let bootstrap = format!("`ecsctl bootstrap --pool {pool}`");
    let foreign: Vec<Reason> = resources
        .iter()
        .filter(|r| r.state == ResourceState::Foreign)
        .map(|r| Reason {
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
        })
        .collect();

    let exists = resources
        .iter()
        .any(|r| matches!(r.state, ResourceState::Present | ResourceState::Drifted));
    if !exists && facts.created.is_empty() {
        let mut reasons = vec![Reason {
            code: "not-bootstrapped",
            subject: None,
            message: format!(
                "nothing of pool '{pool}' exists in account {} region {}{}",
                facts.account,
                facts.region,
                if facts.ledger.found {
                    ""
                } else {
                    " (no ledger, and nothing carries its ecsctl:pool tag)"
                }
            ),
            fix: Some(format!("run {bootstrap} to create it")),
        }];
        reasons.extend(foreign);
        return Verdict {
            health: Health::NotBootstrapped,
            reasons,
        };
    }

    let mut reasons = foreign;
    for r in resources
        .iter()
        .filter(|r| r.state == ResourceState::Missing)
    {
        reasons.push(missing_reason(facts, r, &bootstrap));
    }
    for r in resources
        .iter()
        .filter(|r| r.state == ResourceState::Drifted)
    {
        reasons.push(drift_reason(r, &bootstrap));
    }

    let service_item = resources.iter().find(|r| r.kind == ResourceKind::Service);
    let service_ours = service_item
        .is_some_and(|r| matches!(r.state, ResourceState::Present | ResourceState::Drifted));
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

    if reasons.is_empty() {
        Verdict {
            health: Health::Healthy,
            reasons,
        }
    } else {
        Verdict {
            health: Health::Unhealthy,
            reasons,
        }
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
    let fix = if r.kind == ResourceKind::Secret && what.contains("scheduled for deletion") {
        format!(
            "run {bootstrap} to restore it before the deletion date, or the worker loses its API key"
        )
    } else if r.kind == ResourceKind::Service && what.contains("draining") {
        format!("wait until it is gone, then run {bootstrap} to recreate it")
    } else {
        format!(
            "run {bootstrap} with the same inputs to put it back as bootstrapped (or with new inputs to keep the change)"
        )
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

/// Where the service's rollout stands (the same rule `bootstrap` waits on).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rollout {
    Steady,
    InProgress,
    Failed(String),
}

fn rollout(s: &ServiceInfo) -> Rollout {
    if let Some(failed) = s
        .deployments
        .iter()
        .find(|d| d.rollout_state.as_deref() == Some("FAILED"))
    {
        return Rollout::Failed(
            failed
                .rollout_state_reason
                .clone()
                .unwrap_or_else(|| "no reason given".into()),
        );
    }
    let all_running = s.running == s.desired;
    let primary = s.deployments.iter().find(|d| d.status == "PRIMARY");
    match primary.map(|d| d.rollout_state.as_deref()) {
        Some(Some("COMPLETED")) if all_running => Rollout::Steady,
        Some(None) if all_running && s.deployments.len() == 1 => Rollout::Steady,
        // An external deployment controller reports no deployments.
        None if all_running && s.deployments.is_empty() => Rollout::Steady,
        _ => Rollout::InProgress,
    }
}

fn service_reasons(facts: &Facts, s: &ServiceInfo, names: &Names, bootstrap: &str) -> Vec<Reason> {
    let subject = Some(s.name.clone());
    let mut reasons = Vec::new();
    let rollout = rollout(s);
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
        Rollout::Failed(why) => reasons.push(Reason {
            code: "rollout-failed",
            subject: subject.clone(),
            message: format!("the last deployment failed and was rolled back: {why}"),
            fix: Some(format!(
                "fix the cause shown by the stopped tasks and events, then run {bootstrap} again"
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
        .take_while(|e| !e.message.contains("has reached a steady state"))
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

/// What a stopped task says went wrong; `None` for a normal stop (a deployment replacing it, a
/// scale-in, a person stopping it).
pub fn stop_reason(task: &StoppedTask, names: &Names) -> Option<Reason> {
    let stopped = task.stopped_reason.as_deref().unwrap_or_default();
    let container_texts = task.containers.iter().filter_map(|c| c.reason.as_deref());
    let text = std::iter::once(stopped)
        .chain(container_texts)
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let subject = Some(format!("task {}", task.id));
    let says = if text.is_empty() {
        "stopped without a reason".to_string()
    } else {
        format!("stopped: \"{}\"", quote(&text))
    };
    if let Some(cause) = classify(&text, names) {
        return Some(Reason {
            code: cause.code,
            subject,
            message: format!("{}: task {} {says}", cause.what, task.id),
            fix: Some(cause.fix),
        });
    }
    let exited = task
        .containers
        .iter()
        .find(|c| c.exit_code.is_some_and(|code| code != 0));
    let essential_exit = task.stop_code.as_deref() == Some("EssentialContainerExited")
        || stopped.starts_with("Essential container in task exited");
    if essential_exit || exited.is_some() {
        let code = exited
            .or_else(|| task.containers.iter().find(|c| c.exit_code.is_some()))
            .and_then(|c| c.exit_code.map(|code| format!(" with exit code {code}")))
            .unwrap_or_default();
        return Some(Reason {
            code: "container-exited",
            subject,
            message: format!("the worker container exited{code}: task {} {says}", task.id),
            fix: Some(
                "see the worker's last log lines above; a wrong PREFECT_API_URL or API key, or a work pool that does not exist in Prefect, are the usual causes (fix with `ecsctl bootstrap`)"
                    .into(),
            ),
        });
    }
    if task.stop_code.as_deref() == Some("TaskFailedToStart") {
        return Some(Reason {
            code: "task-failed-to-start",
            subject,
            message: format!("a worker task failed to start: task {} {says}", task.id),
            fix: Some("see the stopped reason above".into()),
        });
    }
    None
}

/// A known problem recognised in ECS's words.
struct Cause {
    code: &'static str,
    what: String,
    fix: String,
}

/// Recognises the problems ECS reports in events and stop reasons.
fn classify(text: &str, names: &Names) -> Option<Cause> {
    let t = text.to_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| t.contains(n));
    let pool = &names.pool;
    let bootstrap = format!("`ecsctl bootstrap --pool {pool}`");
    let cause = |code, what: &str, fix: String| {
        Some(Cause {
            code,
            what: what.to_string(),
            fix,
        })
    };
    if has(&["unable to assume the role", "unable to assume role"]) {
        return cause(
            "role-not-assumable",
            "ECS cannot assume the worker's IAM role",
            format!(
                "check that the roles {} and {} exist and trust ecs-tasks.amazonaws.com ({bootstrap} restores them); a role created seconds ago can take a minute to be usable (IAM is eventually consistent)",
                names.execution_role, names.worker_role
            ),
        );
    }
    let network_timeout = has(&[
        "i/o timeout",
        "connection issue between the task",
        "dial tcp",
    ]);
    if has(&[
        "unable to pull secrets",
        "unable to retrieve secret",
        "failed to fetch secret",
    ]) {
        let fix = if network_timeout {
            format!(
                "the task cannot reach Secrets Manager: its subnets need a route to the internet (public IP and an internet gateway route, or a NAT gateway or VPC endpoints); {bootstrap} repairs ecsctl's own network"
            )
        } else {
            format!(
                "check the execution role {} can read the secret {} (its inline policy must allow secretsmanager:GetSecretValue on the secret's ARN) and that the secret exists and is not scheduled for deletion; {bootstrap} repairs both",
                names.execution_role, names.secret
            )
        };
        return cause(
            "secret-unreadable",
            "ECS cannot read the API key secret for the worker",
            fix,
        );
    }
    if has(&[
        "cannotpullcontainererror",
        "pull image manifest",
        "failed to resolve ref",
    ]) {
        return cause(
            "image-pull-failed",
            "ECS cannot pull the worker's image",
            format!(
                "check the image exists and is public (bootstrap with --image to change it), and that the subnets reach the internet{}",
                if network_timeout { " (the message says the connection timed out)" } else { "" }
            ),
        );
    }
    if has(&[
        "failed to validate logger args",
        "failed to create cloudwatch log stream",
    ]) {
        return cause(
            "log-group-unusable",
            "ECS cannot write the worker's logs",
            format!(
                "check the log group {} exists and the execution role {} may write to it; {bootstrap} recreates both",
                names.log_group, names.execution_role
            ),
        );
    }
    if network_timeout {
        return cause(
            "network-unreachable",
            "the worker's task cannot reach AWS or the internet",
            format!(
                "the subnets need a route to the internet (public IP and an internet gateway route, or a NAT gateway); {bootstrap} repairs ecsctl's own network"
            ),
        );
    }
    if has(&[
        "capacity is unavailable",
        "insufficient capacity",
        "unable to place a task",
        "no container instance met",
    ]) {
        return cause(
            "capacity-unavailable",
            "Fargate has no capacity for the worker's task right now",
            "ECS keeps retrying by itself; if it lasts, bootstrap with other subnets (--vpc-id, --subnet-ids) in other availability zones, or another --cpu/--memory size".into(),
        );
    }
    if has(&["outofmemory", "out of memory", "killed due to memory usage"]) {
        return cause(
            "out-of-memory",
            "the worker ran out of memory",
            format!("give it more: run {bootstrap} with a larger --memory (and --cpu if needed)"),
        );
    }
    if has(&["failed container health checks", "health check"]) {
        return cause(
            "container-unhealthy",
            "the worker container failed its health check",
            "see the worker's last log lines above".into(),
        );
    }
    if has(&["unable to consistently start tasks"]) {
        return cause(
            "tasks-keep-failing",
            "ECS cannot keep the worker's tasks running",
            "see the stopped tasks and log lines above for why they stop".into(),
        );
    }
    if has(&[
        "resourceinitializationerror",
        "cannotstartcontainererror",
        "cannotcreatecontainererror",
    ]) {
        return cause(
            "task-failed-to-start",
            "ECS could not prepare the worker's task",
            "see the stopped reason above".into(),
        );
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Words
// ---------------------------------------------------------------------------------------------

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

/// A look's drift text without bootstrap's "(will be …)" promise, which status does not keep.
fn plain(what: &str) -> String {
    let trimmed = what.trim();
    if let (Some(open), true) = (trimmed.rfind(" ("), trimmed.ends_with(')')) {
        if trimmed[open..].contains("will ") {
            return trimmed[..open].to_string();
        }
    }
    trimmed.to_string()
}

/// (family, revision) of a task definition ARN or `family:revision`.
fn revision_of(task_definition: &str) -> (&str, &str) {
    let last = short_task_definition(task_definition);
    last.rsplit_once(':').unwrap_or((last, ""))
}

/// `family:revision` from a task definition ARN.
fn short_task_definition(task_definition: &str) -> &str {
    task_definition
        .rsplit('/')
        .next()
        .unwrap_or(task_definition)
}

fn quote(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= QUOTE_CHARS {
        text.to_string()
    } else {
        let cut: String = text.chars().take(QUOTE_CHARS).collect();
        format!("{cut}…")
    }
}

fn stamp(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| {
        t.format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]Z"
        ))
        .ok()
    })
    .unwrap_or_else(|| "????-??-?? ??:??:??Z".into())
}

/// The report as text for a person: resources, the service, stopped tasks, log lines, verdict.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "Pool '{}' in account {} region {}",
        r.pool, r.account, r.region
    ));
    line(if r.ledger.found {
        format!("Ledger: {}", r.ledger.path)
    } else {
        format!(
            "Ledger: none at {} (resources found by their ecsctl:pool tag)",
            r.ledger.path
        )
    });

    line(String::new());
    line("Resources:".into());
    for res in &r.resources {
        let (symbol, state) = match res.state {
            ResourceState::Present => ("✓", "present"),
            ResourceState::Missing if res.in_ledger => (
                "✗",
                "missing (deleted outside ecsctl: the ledger records it)",
            ),
            ResourceState::Missing => ("✗", "missing"),
            ResourceState::Drifted => ("~", "drifted"),
            ResourceState::Used => ("·", "used (yours, never changed)"),
            ResourceState::Foreign => ("!", "foreign (not ecsctl's)"),
        };
        line(
            format!(
                "  {symbol} {:<16} {:<18} {:<36} {state}  {}",
                res.step,
                res.kind.label(),
                res.name,
                res.id.as_deref().unwrap_or_default()
            )
            .trim_end()
            .to_string(),
        );
        for drift in &res.drift {
            line(format!("      drift: {drift}"));
        }
    }
    if r.resources.is_empty() {
        line("  (none found)".into());
    }

    line(String::new());
    match &r.service {
        None => line("Service: not found".into()),
        Some(s) => {
            line(format!(
                "Service {} ({}): desired {}, running {}, pending {}; rollout {}",
                s.name,
                s.status,
                s.desired,
                s.running,
                s.pending,
                s.rollout.as_deref().unwrap_or("unknown")
            ));
            line(format!(
                "  Task definition: {}{}",
                short_task_definition(&s.task_definition),
                match &s.latest_task_definition {
                    Some(latest)
                        if short_task_definition(latest)
                            != short_task_definition(&s.task_definition) =>
                    {
                        format!(" (latest: {})", short_task_definition(latest))
                    }
                    Some(_) => " (latest)".to_string(),
                    None => String::new(),
                }
            ));
            line("  Deployments:".into());
            for d in &s.deployments {
                line(format!(
                    "    {:<8} {}  desired {}, running {}, pending {}, failed {}; rollout {}{}",
                    d.status,
                    short_task_definition(&d.task_definition),
                    d.desired,
                    d.running,
                    d.pending,
                    d.failed_tasks,
                    d.rollout_state.as_deref().unwrap_or("unknown"),
                    d.rollout_state_reason
                        .as_deref()
                        .filter(|t| !t.is_empty())
                        .map(|t| format!(": {t}"))
                        .unwrap_or_default()
                ));
            }
            if s.deployments.is_empty() {
                line("    (none)".into());
            }
            line("  Last service events (newest first):".into());
            for e in &s.events {
                line(format!("    {} {}", stamp(e.at), e.message));
            }
            if s.events.is_empty() {
                line("    (none)".into());
            }
        }
    }

    line(String::new());
    line("Recently stopped tasks (newest first):".into());
    for t in &r.stopped_tasks {
        let mut text = format!(
            "  {} task {}: {}",
            stamp(t.stopped_at),
            t.id,
            t.stopped_reason
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or("no reason given")
        );
        if let Some(code) = &t.stop_code {
            text.push_str(&format!(" [{code}]"));
        }
        line(text);
        for c in &t.containers {
            let exit = c.exit_code.map_or("did not start".to_string(), |code| {
                format!("exit code {code}")
            });
            let why = c
                .reason
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            line(format!("      container {}: {exit}{why}", c.name));
        }
    }
    if r.stopped_tasks.is_empty() {
        line("  (none)".into());
    }

    line(String::new());
    match &r.logs {
        None => line("Worker logs: could not be read (see the warnings)".into()),
        Some(l) if !l.exists => line(format!(
            "Worker logs: the log group {} does not exist",
            l.group
        )),
        Some(l) if !l.has_streams => line(format!(
            "Worker logs ({}): no log streams: no worker task has written a line yet",
            l.group
        )),
        Some(l) => {
            line(format!(
                "Worker logs ({}, stream {}, last event {}):",
                l.group,
                l.stream.as_deref().unwrap_or("?"),
                stamp(l.last_event_at)
            ));
            for entry in &l.lines {
                line(format!(
                    "  {} {}",
                    stamp(entry.at),
                    entry.message.trim_end()
                ));
            }
            if l.lines.is_empty() {
                line("  (no lines asked for or none in the stream)".into());
            }
        }
    }

    if !r.warnings.is_empty() {
        line(String::new());
        line("Warnings:".into());
        for w in &r.warnings {
            line(format!("  ! {w}"));
        }
    }

    line(String::new());
    let verdict = match r.verdict {
        Health::Healthy => "HEALTHY",
        Health::Unhealthy => "UNHEALTHY",
        Health::NotBootstrapped => "NOT BOOTSTRAPPED",
    };
    line(format!("Verdict: {verdict}"));
    if r.verdict == Health::Healthy {
        line(format!("  {}", r.summary));
    }
    for reason in &r.reasons {
        line(format!("  ✗ {}", reason.message));
        if let Some(fix) = &reason.fix {
            line(format!("      fix: {fix}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::PlanItem;

    const POOL: &str = "p";
    const TD1: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/ecsctl-p-worker:1";
    const TD2: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/ecsctl-p-worker:2";
    const SERVICE_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service/ecsctl-p/ecsctl-p-worker";

    fn at(secs: i64) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp(secs).ok()
    }

    /// 2024-05-01 12:00:00 UTC, the "now" of every test.
    const NOW: i64 = 1_714_564_800;

    fn present(step: &'static str, kind: ResourceKind, name: &str) -> StepPlan {
        StepPlan {
            step,
            items: vec![PlanItem::new(
                kind,
                name,
                ItemState::Present {
                    id: format!("id-of-{name}"),
                },
            )],
        }
    }

    /// Every step's look finding its resources as bootstrapped.
    fn all_present() -> Vec<StepPlan> {
        vec![
            present("secret", ResourceKind::Secret, "ecsctl/p/prefect-api-key"),
            present("log-group", ResourceKind::LogGroup, "/ecsctl/p/worker"),
            present("execution-role", ResourceKind::Role, "ecsctl-p-execution"),
            present("worker-role", ResourceKind::Role, "ecsctl-p-worker"),
            present("network", ResourceKind::Vpc, "ecsctl-p"),
            present("cluster", ResourceKind::Cluster, "ecsctl-p"),
            present(
                "task-definition",
                ResourceKind::TaskDefinition,
                "ecsctl-p-worker",
            ),
            StepPlan {
                step: "service",
                items: vec![PlanItem::new(
                    ResourceKind::Service,
                    "ecsctl-p-worker",
                    ItemState::Present {
                        id: SERVICE_ARN.into(),
                    },
                )],
            },
        ]
    }

    /// A DescribeServices answer for a service on its first deployment.
    fn service(running: i32, pending: i32, rollout: &str, events: &[(i64, &str)]) -> ServiceInfo {
        ServiceInfo {
            name: "ecsctl-p-worker".into(),
            arn: SERVICE_ARN.into(),
            status: "ACTIVE".into(),
            desired: 1,
            running,
            pending,
            task_definition: TD1.into(),
            latest_task_definition: None,
            rollout: Some(rollout.into()),
            deployments: vec![Deployment {
                id: "ecs-svc/4761939412542153432".into(),
                status: "PRIMARY".into(),
                task_definition: TD1.into(),
                desired: 1,
                running,
                pending,
                failed_tasks: 0,
                rollout_state: Some(rollout.into()),
                rollout_state_reason: Some(if rollout == "COMPLETED" {
                    "ECS deployment ecs-svc/4761939412542153432 completed.".into()
                } else {
                    "ECS deployment ecs-svc/4761939412542153432 in progress.".into()
                }),
                created_at: at(NOW - 600),
                updated_at: at(NOW - 300),
            }],
            events: events
                .iter()
                .map(|(secs, message)| Event {
                    at: at(*secs),
                    message: (*message).into(),
                })
                .collect(),
        }
    }

    fn logs_with_lines(lines: &[&str]) -> LogInfo {
        LogInfo {
            group: "/ecsctl/p/worker".into(),
            exists: true,
            has_streams: !lines.is_empty(),
            stream: (!lines.is_empty())
                .then(|| "worker/prefect-worker/5b0d8e8f1e2a4c0f9d3f2b1a0c9e8d7f".into()),
            last_event_at: (!lines.is_empty()).then(|| at(NOW - 30)).flatten(),
            lines: lines
                .iter()
                .map(|m| LogLine {
                    at: at(NOW - 30),
                    message: (*m).into(),
                })
                .collect(),
        }
    }

    fn facts(plans: Vec<StepPlan>, svc: Option<ServiceInfo>, stopped: Vec<StoppedTask>) -> Facts {
        Facts {
            pool: POOL.into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            checked_at: at(NOW).unwrap(),
            ledger: LedgerInfo {
                path: "/state/123456789012/us-east-1/p.json".into(),
                found: true,
                has_inputs: true,
            },
            created: plans
                .iter()
                .flat_map(|p| p.items.iter().map(move |i| (p.step.to_string(), i.kind)))
                .collect(),
            used: Vec::new(),
            wanted_desired_count: Some(1),
            plans,
            service: Ok(svc),
            latest_task_definition: Ok(Some(TD1.into())),
            stopped_tasks: Ok(stopped),
            logs: Ok(logs_with_lines(&[
                "12:00:01.123 | INFO    | prefect.worker.ecs.ecsworker 7c0e - Worker pool 'p' created.",
                "Worker 'ECSWorker 7c0e' started!",
            ])),
        }
    }

    fn codes(r: &Report) -> Vec<&'static str> {
        r.reasons.iter().map(|r| r.code).collect()
    }

    /// A task stopped because the execution role could not read the secret, as DescribeTasks
    /// reports it on AWS.
    fn secret_denied_task() -> StoppedTask {
        StoppedTask {
            id: "0a5e5f0c3b1d4a8e9f7c6b5a4d3e2f1a".into(),
            task_definition: TD1.into(),
            stopped_at: at(NOW - 120),
            stop_code: Some("TaskFailedToStart".into()),
            stopped_reason: Some("ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch secret arn:aws:secretsmanager:us-east-1:123456789012:secret:ecsctl/p/prefect-api-key-AbCdEf from secrets manager: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/ecsctl-p-execution/0a5e5f0c is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:ecsctl/p/prefect-api-key-AbCdEf because no identity-based policy allows the secretsmanager:GetSecretValue action status code: 400".into()),
            containers: vec![ContainerStop {
                name: "prefect-worker".into(),
                exit_code: None,
                reason: None,
            }],
        }
    }

    #[test]
    fn running_equal_to_desired_with_a_completed_rollout_is_healthy() {
        let events = [
            (NOW - 200, "(service ecsctl-p-worker) has reached a steady state."),
            (NOW - 210, "(service ecsctl-p-worker) (deployment ecs-svc/4761939412542153432) deployment completed."),
            (NOW - 400, "(service ecsctl-p-worker) has started 1 tasks: (task 5b0d8e8f1e2a4c0f9d3f2b1a0c9e8d7f)."),
        ];
        let r = report(facts(
            all_present(),
            Some(service(1, 0, "COMPLETED", &events)),
            vec![],
        ));
        assert_eq!(r.verdict, Health::Healthy, "{:?}", r.reasons);
        assert!(r.reasons.is_empty());
        assert_eq!(
            r.summary,
            "pool 'p' is healthy: 1 of 1 worker tasks running"
        );
        assert!(r
            .resources
            .iter()
            .all(|res| res.state == ResourceState::Present));
        let text = render_text(&r);
        assert!(text.contains("Verdict: HEALTHY"), "{text}");
        assert!(
            text.contains("desired 1, running 1, pending 0; rollout COMPLETED"),
            "{text}"
        );
        assert!(text.contains("Worker 'ECSWorker 7c0e' started!"), "{text}");
    }

    #[test]
    fn zero_of_one_running_without_a_cause_is_unhealthy_and_says_to_wait() {
        let mut f = facts(
            all_present(),
            Some(service(0, 1, "IN_PROGRESS", &[])),
            vec![],
        );
        f.logs = Ok(logs_with_lines(&[]));
        let r = report(f);
        assert_eq!(r.verdict, Health::Unhealthy);
        assert_eq!(
            codes(&r),
            ["service-not-running"],
            "no rollout noise on top"
        );
        assert_eq!(
            r.reasons[0].message,
            "the service runs 0 of 1 worker tasks (1 pending)"
        );
        let fix = r.reasons[0].fix.as_deref().unwrap();
        assert!(fix.contains("no task has ever written a log line"), "{fix}");
        assert!(fix.contains("ecsctl status --pool p"), "{fix}");
        assert_eq!(
            r.summary,
            "pool 'p' is unhealthy: the service runs 0 of 1 worker tasks (1 pending)"
        );
        let text = render_text(&r);
        assert!(text.contains("no log streams"), "{text}");
    }

    #[test]
    fn a_task_stopped_by_resource_initialization_error_names_the_secret_and_the_role() {
        let r = report(facts(
            all_present(),
            Some(service(0, 0, "IN_PROGRESS", &[])),
            vec![secret_denied_task()],
        ));
        assert_eq!(r.verdict, Health::Unhealthy);
        assert_eq!(codes(&r), ["service-not-running", "secret-unreadable"]);
        assert!(r.reasons[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("reasons below"));
        let secret = &r.reasons[1];
        assert_eq!(
            secret.subject.as_deref(),
            Some("task 0a5e5f0c3b1d4a8e9f7c6b5a4d3e2f1a")
        );
        assert!(
            secret
                .message
                .starts_with("ECS cannot read the API key secret"),
            "{}",
            secret.message
        );
        assert!(secret
            .message
            .contains("ResourceInitializationError: unable to pull secrets"));
        assert!(secret.message.chars().count() < 400, "quotes are cut short");
        let fix = secret.fix.as_deref().unwrap();
        assert!(
            fix.contains("ecsctl-p-execution") && fix.contains("secretsmanager:GetSecretValue"),
            "{fix}"
        );

        let text = render_text(&r);
        assert!(
            text.contains("2024-05-01 11:58:00Z task 0a5e5f0c3b1d4a8e9f7c6b5a4d3e2f1a: ResourceInitializationError: unable to pull secrets or registry auth"),
            "{text}"
        );
        assert!(text.contains("[TaskFailedToStart]"), "{text}");
        assert!(
            text.contains("container prefect-worker: did not start"),
            "{text}"
        );
        assert!(
            text.contains("fix: check the execution role ecsctl-p-execution"),
            "{text}"
        );
    }

    #[test]
    fn a_secret_fetch_timeout_points_at_the_network_instead() {
        let mut task = secret_denied_task();
        task.stopped_reason = Some("ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: unable to retrieve secret from asm: service call has been retried 5 time(s): failed to fetch secret arn:aws:secretsmanager:us-east-1:123456789012:secret:ecsctl/p/prefect-api-key-AbCdEf from secrets manager: RequestCanceled: request context canceled caused by: context deadline exceeded. Please check your task network configuration. dial tcp 52.46.145.7:443: i/o timeout".into());
        let reason = stop_reason(&task, &Names::new(POOL)).unwrap();
        assert_eq!(reason.code, "secret-unreadable");
        assert!(reason.fix.unwrap().contains("route to the internet"));
    }

    #[test]
    fn an_unable_to_assume_role_event_is_a_reason_with_the_role_names() {
        let events = [
            (NOW - 60, "(service ecsctl-p-worker) failed to launch a task with (error ECS was unable to assume the role 'arn:aws:iam::123456789012:role/ecsctl/ecsctl-p-execution' that was provided for this task. Please verify that the role being passed has the proper trust relationship and permissions and that your IAM user has permissions to pass this role.)."),
            (NOW - 3600, "(service ecsctl-p-worker) has reached a steady state."),
            (NOW - 7200, "(service ecsctl-p-worker) was unable to place a task. Reason: Capacity is unavailable at this time. Please try again later or in a different availability zone."),
        ];
        let r = report(facts(
            all_present(),
            Some(service(0, 0, "IN_PROGRESS", &events)),
            vec![],
        ));
        assert_eq!(r.verdict, Health::Unhealthy);
        // The capacity event predates the last steady state: history, not a reason.
        assert_eq!(codes(&r), ["service-not-running", "role-not-assumable"]);
        let role = &r.reasons[1];
        assert!(
            role.message.contains("ECS was unable to assume the role"),
            "{}",
            role.message
        );
        let fix = role.fix.as_deref().unwrap();
        assert!(
            fix.contains("ecsctl-p-execution") && fix.contains("ecsctl-p-worker"),
            "{fix}"
        );
        assert!(fix.contains("ecs-tasks.amazonaws.com"), "{fix}");

        let text = render_text(&r);
        assert!(
            text.contains("Last service events (newest first):"),
            "{text}"
        );
        assert!(
            text.contains("2024-05-01 11:59:00Z (service ecsctl-p-worker) failed to launch a task with (error ECS was unable to assume the role"),
            "{text}"
        );
        assert!(
            text.contains("Capacity is unavailable at this time"),
            "all events are shown: {text}"
        );
    }

    #[test]
    fn capacity_and_image_problems_are_recognised() {
        let names = Names::new(POOL);
        let capacity = classify("(service ecsctl-p-worker) was unable to place a task. Reason: Capacity is unavailable at this time. Please try again later or in a different availability zone.", &names).unwrap();
        assert_eq!(capacity.code, "capacity-unavailable");
        let image = classify("CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref docker.io/prefecthq/prefect-aws:nope: docker.io/prefecthq/prefect-aws:nope: not found", &names).unwrap();
        assert_eq!(image.code, "image-pull-failed");
        assert!(classify(
            "(service ecsctl-p-worker) has started 1 tasks: (task 1).",
            &names
        )
        .is_none());
    }

    #[test]
    fn a_crashing_worker_is_unhealthy_even_between_two_crashes() {
        let crashed = StoppedTask {
            id: "9f8e7d6c".into(),
            task_definition: TD1.into(),
            stopped_at: at(NOW - 90),
            stop_code: Some("EssentialContainerExited".into()),
            stopped_reason: Some("Essential container in task exited".into()),
            containers: vec![ContainerStop {
                name: "prefect-worker".into(),
                exit_code: Some(1),
                reason: None,
            }],
        };
        let steady = service(1, 0, "COMPLETED", &[]);
        let r = report(facts(
            all_present(),
            Some(steady.clone()),
            vec![crashed.clone()],
        ));
        assert_eq!(codes(&r), ["container-exited"]);
        assert!(
            r.reasons[0].message.contains("exited with exit code 1"),
            "{}",
            r.reasons[0].message
        );
        assert!(render_text(&r).contains("container prefect-worker: exit code 1"));

        // An hour-old crash of a service that is steady since then is history.
        let mut old = crashed;
        old.stopped_at = at(NOW - 3600);
        let r = report(facts(all_present(), Some(steady), vec![old]));
        assert_eq!(r.verdict, Health::Healthy, "{:?}", r.reasons);
    }

    #[test]
    fn a_normal_replacement_is_not_a_reason() {
        let replaced = StoppedTask {
            id: "1".into(),
            stop_code: Some("ServiceSchedulerInitiated".into()),
            stopped_reason: Some("Scaling activity initiated by (deployment ecs-svc/123)".into()),
            containers: vec![ContainerStop {
                name: "prefect-worker".into(),
                exit_code: Some(0),
                reason: None,
            }],
            ..StoppedTask::default()
        };
        assert_eq!(stop_reason(&replaced, &Names::new(POOL)), None);
    }

    #[test]
    fn a_failed_rollout_and_a_rollout_in_progress_are_reasons() {
        let mut svc = service(1, 0, "IN_PROGRESS", &[]);
        let r = report(facts(all_present(), Some(svc.clone()), vec![]));
        assert_eq!(codes(&r), ["rollout-in-progress"]);

        svc.deployments[0].rollout_state = Some("FAILED".into());
        svc.deployments[0].rollout_state_reason =
            Some("ECS deployment circuit breaker: tasks failed to start.".into());
        let r = report(facts(all_present(), Some(svc), vec![]));
        assert_eq!(codes(&r), ["rollout-failed"]);
        assert!(r.reasons[0].message.contains("circuit breaker"));
    }

    #[test]
    fn scaled_to_zero_is_unhealthy() {
        let mut svc = service(0, 0, "COMPLETED", &[]);
        svc.desired = 0;
        let mut f = facts(all_present(), Some(svc), vec![]);
        f.wanted_desired_count = Some(0);
        let r = report(f);
        assert_eq!(codes(&r), ["service-scaled-to-zero"]);
    }

    #[test]
    fn nothing_found_and_no_ledger_is_not_bootstrapped() {
        let plans: Vec<StepPlan> = all_present()
            .into_iter()
            .map(|mut p| {
                for item in &mut p.items {
                    item.state = ItemState::Missing;
                }
                p
            })
            .collect();
        let mut f = facts(plans, None, vec![]);
        f.created.clear();
        f.ledger.found = false;
        f.logs = Ok(LogInfo {
            group: "/ecsctl/p/worker".into(),
            ..LogInfo::default()
        });
        let r = report(f);
        assert_eq!(r.verdict, Health::NotBootstrapped);
        assert_eq!(codes(&r), ["not-bootstrapped"]);
        assert_eq!(
            r.reasons[0].fix.as_deref(),
            Some("run `ecsctl bootstrap --pool p` to create it")
        );
        assert!(r.summary.contains("is not bootstrapped"));
        let text = render_text(&r);
        assert!(text.contains("Verdict: NOT BOOTSTRAPPED"), "{text}");
        assert!(
            text.contains("the log group /ecsctl/p/worker does not exist"),
            "{text}"
        );
    }

    #[test]
    fn a_resource_deleted_behind_ecsctls_back_is_named_missing() {
        let mut plans = all_present();
        plans[1].items[0].state = ItemState::Missing;
        let r = report(facts(plans, Some(service(1, 0, "COMPLETED", &[])), vec![]));
        assert_eq!(r.verdict, Health::Unhealthy);
        assert_eq!(codes(&r), ["missing"]);
        assert_eq!(r.reasons[0].subject.as_deref(), Some("/ecsctl/p/worker"));
        assert!(r.reasons[0]
            .message
            .contains("log group /ecsctl/p/worker is missing"));
        assert!(r.reasons[0].message.contains("deleted outside ecsctl"));
        assert!(r.reasons[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("ecsctl bootstrap --pool p"));
        let lg = r.resources.iter().find(|x| x.step == "log-group").unwrap();
        assert_eq!(
            (lg.state, lg.id.as_deref(), lg.in_ledger),
            (ResourceState::Missing, None, true)
        );
    }

    #[test]
    fn drift_from_the_looks_and_from_the_service_is_reported_in_plain_words() {
        let mut plans = all_present();
        plans[0].items[0].state = ItemState::Drifted {
            id: "arn:secret".into(),
            what: "scheduled for deletion (will be restored)".into(),
        };
        let mut svc = service(2, 0, "COMPLETED", &[]);
        svc.desired = 2;
        svc.deployments[0].desired = 2;
        svc.deployments[0].running = 2;
        let mut f = facts(plans, Some(svc), vec![]);
        f.latest_task_definition = Ok(Some(TD2.into()));
        let r = report(f);
        assert_eq!(codes(&r), ["drifted", "drifted"]);
        assert_eq!(r.reasons[0].message, "the secret ecsctl/p/prefect-api-key differs from the last bootstrap: scheduled for deletion");
        assert!(r.reasons[0].fix.as_deref().unwrap().contains("restore it"));
        let service = r.resources.iter().find(|x| x.step == "service").unwrap();
        assert_eq!(service.state, ResourceState::Drifted);
        assert_eq!(
            service.drift,
            [
                "runs task definition ecsctl-p-worker:1, not the latest revision ecsctl-p-worker:2",
                "desired count 2 (wanted 1)"
            ]
        );
        let text = render_text(&r);
        assert!(
            text.contains("Task definition: ecsctl-p-worker:1 (latest: ecsctl-p-worker:2)"),
            "{text}"
        );
    }

    #[test]
    fn a_service_that_cannot_be_read_is_not_healthy_and_other_failed_reads_are_warnings() {
        let mut f = facts(all_present(), None, vec![]);
        f.service =
            Err("describing ECS service ecsctl-p-worker failed: AccessDeniedException".into());
        f.logs = Err("reading log group /ecsctl/p/worker failed: AccessDeniedException".into());
        let r = report(f);
        assert_eq!(codes(&r), ["service-unreadable"]);
        assert_eq!(r.warnings.len(), 1);
        assert!(r.logs.is_none());
        assert!(render_text(&r).contains("could not be read"));
    }

    #[test]
    fn the_json_shape_is_stable() {
        let r = report(facts(
            all_present(),
            Some(service(
                0,
                0,
                "IN_PROGRESS",
                &[(
                    NOW - 60,
                    "(service ecsctl-p-worker) has started 1 tasks: (task 1).",
                )],
            )),
            vec![secret_denied_task()],
        ));
        let json = serde_json::to_value(&r).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "account",
                "checked_at",
                "ledger",
                "logs",
                "pool",
                "reasons",
                "region",
                "resources",
                "service",
                "stopped_tasks",
                "summary",
                "verdict",
                "warnings"
            ]
        );
        assert_eq!(json["verdict"], "unhealthy");
        assert_eq!(json["checked_at"], "2024-05-01T12:00:00Z");
        assert_eq!(json["reasons"][1]["code"], "secret-unreadable");
        assert_eq!(json["resources"][0]["kind"], "secret");
        assert_eq!(json["resources"][0]["state"], "present");
        assert_eq!(json["resources"][1]["kind"], "log-group");
        assert_eq!(json["service"]["running"], 0);
        assert_eq!(
            json["service"]["deployments"][0]["rollout_state"],
            "IN_PROGRESS"
        );
        assert_eq!(json["service"]["events"][0]["at"], "2024-05-01T11:59:00Z");
        assert_eq!(json["stopped_tasks"][0]["stop_code"], "TaskFailedToStart");
        assert_eq!(
            json["stopped_tasks"][0]["containers"][0]["exit_code"],
            serde_json::Value::Null
        );
        assert_eq!(
            json["logs"]["lines"][1]["message"],
            "Worker 'ECSWorker 7c0e' started!"
        );
        assert_eq!(json["ledger"]["found"], true);
    }

    #[test]
    fn bootstrap_promises_are_cut_from_drift_texts() {
        assert_eq!(
            plain("scheduled for deletion (will be restored)"),
            "scheduled for deletion"
        );
        assert_eq!(
            plain("runs task definition x:1, desired count 2 (wanted 1) (will be updated)"),
            "runs task definition x:1, desired count 2 (wanted 1)"
        );
        assert_eq!(
            plain("retention is 7 days, wanted 30 days"),
            "retention is 7 days, wanted 30 days"
        );
        assert_eq!(revision_of(TD2), ("ecsctl-p-worker", "2"));
        assert_eq!(revision_of("ecsctl-p-worker:2"), ("ecsctl-p-worker", "2"));
    }
}
