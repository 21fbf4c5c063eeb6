//! The report: the JSON document `status --output json` prints, field by field.

use serde::Serialize;
use time::OffsetDateTime;

use super::ObserverInfo;
use super::PrefectInfo;
use crate::aws::ecs::{ServiceInfo, StoppedTask};
use crate::ledger::ResourceKind;
use crate::steps::Remedy;

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
    /// The work pool and its workers as Prefect describes them, or why Prefect could not be
    /// asked (then the verdict is never `"healthy"`).
    pub prefect: PrefectInfo,
    /// The worker's crash detection: its queue's depth and its dead letters.
    pub observer: ObserverInfo,
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// Every resource is there as bootstrapped, the service runs all its desired tasks and its
    /// rollout completed, and Prefect says one of ecsctl's workers is online in the pool (with a
    /// recent heartbeat), which is an `ecs` pool, not paused.
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
    /// `task-failed-to-start`; and, after those, Prefect's: `prefect-unreachable` (no URL known,
    /// no answer, or credentials refused), `work-pool-missing`, `work-pool-wrong-type`,
    /// `drifted` (subject the pool: its defaults no longer point at this stack),
    /// `work-pool-paused`, `worker-offline` (no ecsctl worker `ONLINE` with a recent heartbeat;
    /// other online workers are named in the message).
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
    /// The step that owns it: `secret`, `log-group`, `execution-role`, `worker-role`,
    /// `flow-run-role`, `network`, `cluster`, `task-definition`, `service` or `work-pool` (the
    /// Prefect work pool; absent when Prefect could not be asked).
    pub step: &'static str,
    /// `secret`, `log-group`, `role`, `vpc`, `subnet`, `internet-gateway`, `route-table`,
    /// `security-group`, `cluster`, `task-definition`, `service` or `work-pool`.
    pub kind: ResourceKind,
    /// Its name (for a resource that has none, the name ecsctl would give it).
    pub name: String,
    /// `present`, `missing`, `drifted` (there, but not as bootstrapped), `used` (yours, given
    /// with `--vpc-id`/`--subnet-ids`; never changed; for the work pool: a pool ecsctl did not
    /// create, whose defaults it sets) or `foreign` (same name, not ecsctl's; for the work pool:
    /// of another type than `ecs`).
    pub state: ResourceState,
    /// Its ARN or id; `null` when missing.
    pub id: Option<String>,
    /// What differs from the ledger and inputs, in plain words; empty unless `drifted`.
    pub drift: Vec<String>,
    /// Whether the ledger records ecsctl creating a resource of this kind for this step (a
    /// missing one was then deleted behind ecsctl's back).
    pub in_ledger: bool,
    /// What bootstrap does about the look's drift (it decides the fix); not in the JSON.
    #[serde(skip)]
    pub remedy: Option<Remedy>,
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

/// The worker's CloudWatch Logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogInfo {
    /// The log group name.
    pub group: String,
    /// Whether the log group exists.
    pub exists: bool,
    /// Whether it has any worker log stream; without one, no worker task ever started far
    /// enough to log.
    pub has_streams: bool,
    /// The stream of the service's newest task that has one (`worker/<container>/<task id>`),
    /// or, when ECS lists no task of the service any more, the worker stream with the latest
    /// event; never a flow run's. `null` without streams.
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
