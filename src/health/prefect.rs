//! The Prefect side of the judgement: is the pool there in Prefect, of type `ecs`, not paused,
//! pointed at this stack, and is one of ecsctl's own workers online in it right now. Without an
//! answer from Prefect, status says so and does not guess.

use serde::Serialize;
use time::OffsetDateTime;

use super::{Facts, Reason, Resource, ResourceState};
use crate::ledger::ResourceKind;
use crate::prefect::{WorkPool, Worker};
use crate::steps::Names;

/// A worker whose interval Prefect does not give heartbeats this often (prefect's default).
const DEFAULT_HEARTBEAT_SECS: i64 = 30;
/// A heartbeat is recent within this many intervals of the check, plus [`HEARTBEAT_GRACE_SECS`].
const HEARTBEATS_MISSED: i64 = 3;
const HEARTBEAT_GRACE_SECS: i64 = 15;

/// What status learned from Prefect.
#[derive(Debug, Clone)]
pub struct PrefectFacts {
    /// The API asked: the last bootstrap's (from the ledger) or `PREFECT_API_URL`.
    pub api_url: Option<String>,
    /// The pool and its workers, or why Prefect could not be asked.
    pub read: Result<PrefectRead, PrefectTrouble>,
}

/// Prefect's answers.
#[derive(Debug, Clone, Default)]
pub struct PrefectRead {
    /// `None` when Prefect has no pool by that name.
    pub pool: Option<WorkPool>,
    /// The pool's workers, online or not.
    pub workers: Vec<Worker>,
}

/// Why Prefect could not be asked; each but `NoUrl` carries the error's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefectTrouble {
    /// No ledger holding the last bootstrap's URL, and no `PREFECT_API_URL`.
    NoUrl,
    /// No answer at all: DNS, connection refused, timeout.
    Unreachable(String),
    /// Prefect answered 401 or 403: no credentials, or the wrong ones.
    Denied(String),
    /// Anything else: an error answer, or the credentials in the pool's secrets unreadable.
    Failed(String),
}

/// `prefect` in the report: the pool and its workers as Prefect describes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrefectInfo {
    /// The Prefect API asked (the last bootstrap's, from the ledger, or `PREFECT_API_URL`); `null`
    /// when none is known.
    pub api_url: Option<String>,
    /// Why Prefect could not be asked (no URL known, unreachable, credentials refused); `null`
    /// when it answered. Then `pool` is `null` and `workers` empty: nothing is guessed.
    pub error: Option<String>,
    /// The work pool; `null` when Prefect has none by the pool's name (or could not be asked).
    pub pool: Option<PoolInfo>,
    /// Every worker Prefect lists for the pool, online or not, in Prefect's order.
    pub workers: Vec<WorkerInfo>,
}

/// [`PrefectInfo::pool`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolInfo {
    /// The pool's name (the same as `pool` at the top).
    pub name: String,
    /// The pool's type; ecsctl's worker needs `"ecs"`, and a pool's type can never be changed.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether the pool is paused: then no worker takes flow runs from it.
    pub paused: bool,
}

/// One of [`PrefectInfo::workers`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerInfo {
    /// The worker's name; ecsctl's are `ecsctl-<pool>-<ECS task id>`.
    pub name: String,
    /// As Prefect says: `"ONLINE"` or `"OFFLINE"`.
    pub status: String,
    /// Its last heartbeat (RFC 3339, UTC); `null` when it never sent one.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_heartbeat: Option<OffsetDateTime>,
    /// Whether it is ecsctl's worker (named `ecsctl-<pool>-<task id>`); another worker polling
    /// the pool (someone's laptop) never makes it healthy.
    pub ecsctl: bool,
    /// Whether its last heartbeat is within 3 heartbeat intervals (30 s unless Prefect says
    /// otherwise) plus 15 s of `checked_at`. Healthy needs an `ONLINE`, recent, ecsctl worker.
    pub recent: bool,
}

impl WorkerInfo {
    fn is_up(&self) -> bool {
        self.status == "ONLINE" && self.recent
    }
}

/// Whether `name` is one of ecsctl's workers: the pool's prefix and then the ECS task id.
pub fn is_ecsctl_worker(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|id| {
        !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

/// Whether a heartbeat at `last` counts as recent at `now`.
pub fn is_recent(
    last: Option<OffsetDateTime>,
    interval_secs: Option<i64>,
    now: OffsetDateTime,
) -> bool {
    let interval = interval_secs
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_HEARTBEAT_SECS);
    let allowed = interval
        .saturating_mul(HEARTBEATS_MISSED)
        .saturating_add(HEARTBEAT_GRACE_SECS);
    last.is_some_and(|t| (now - t).whole_seconds() <= allowed)
}

/// The report's `prefect` object.
pub fn info(facts: &Facts) -> PrefectInfo {
    let p = &facts.prefect;
    let names = Names::new(&facts.pool, &facts.region);
    let (error, pool, workers) = match &p.read {
        Err(trouble) => (Some(trouble_text(trouble)), None, Vec::new()),
        Ok(read) => (
            None,
            read.pool.as_ref().map(|pool| PoolInfo {
                name: pool.name.clone(),
                kind: pool.kind.clone(),
                paused: pool.is_paused,
            }),
            read.workers
                .iter()
                .map(|w| worker_info(w, &names, facts.checked_at))
                .collect(),
        ),
    };
    PrefectInfo {
        api_url: p.api_url.clone(),
        error,
        pool,
        workers,
    }
}

fn worker_info(w: &Worker, names: &Names, now: OffsetDateTime) -> WorkerInfo {
    WorkerInfo {
        name: w.name.clone(),
        status: w.status.clone(),
        last_heartbeat: w.last_heartbeat_time,
        ecsctl: is_ecsctl_worker(&w.name, &names.worker_name_prefix),
        recent: is_recent(w.last_heartbeat_time, w.heartbeat_interval_seconds, now),
    }
}

fn trouble_text(trouble: &PrefectTrouble) -> String {
    match trouble {
        PrefectTrouble::NoUrl => {
            "no Prefect API URL is known (no ledger with the last bootstrap's, and PREFECT_API_URL is not set)"
                .into()
        }
        PrefectTrouble::Unreachable(e) | PrefectTrouble::Denied(e) | PrefectTrouble::Failed(e) => {
            e.clone()
        }
    }
}

/// The Prefect reasons, after the AWS ones: Prefect unasked, then the pool (missing, wrong type,
/// drifted, paused), then no ecsctl worker online. `after_aws` says AWS reasons come before.
pub fn reasons(facts: &Facts, resources: &[Resource], after_aws: bool) -> Vec<Reason> {
    let info = info(facts);
    let read = match &facts.prefect.read {
        Err(trouble) => return vec![unasked_reason(facts, trouble)],
        Ok(read) => read,
    };
    let Some(pool) = &read.pool else {
        return vec![missing_reason(facts)];
    };
    let mut reasons = Vec::new();
    if pool.kind != "ecs" {
        reasons.push(wrong_type_reason(&facts.pool, &pool.kind));
    }
    let drifted = resources
        .iter()
        .filter(|r| r.kind == ResourceKind::WorkPool && r.state == ResourceState::Drifted);
    reasons.extend(drifted.map(|r| drift_reason(&facts.pool, r)));
    if pool.is_paused {
        reasons.push(paused_reason(&facts.pool));
    }
    if !info.workers.iter().any(|w| w.ecsctl && w.is_up()) {
        reasons.push(offline_reason(
            facts,
            &info.workers,
            after_aws || !reasons.is_empty(),
        ));
    }
    reasons
}

/// Before anything is bootstrapped only a pool of the wrong type matters: bootstrap would stop on it.
pub fn reasons_before_bootstrap(facts: &Facts) -> Vec<Reason> {
    match &facts.prefect.read {
        Ok(PrefectRead {
            pool: Some(pool), ..
        }) if pool.kind != "ecs" => vec![wrong_type_reason(&facts.pool, &pool.kind)],
        _ => Vec::new(),
    }
}

fn unasked_reason(facts: &Facts, trouble: &PrefectTrouble) -> Reason {
    let pool = &facts.pool;
    let names = Names::new(pool, &facts.region);
    let at = facts
        .prefect
        .api_url
        .as_deref()
        .map(|u| format!(" at {u}"))
        .unwrap_or_default();
    let unknown = "so whether the worker is online is unknown";
    let message = match trouble {
        PrefectTrouble::NoUrl => format!("no Prefect API URL is known for pool '{pool}' (no ledger with the last bootstrap's, and PREFECT_API_URL is not set), {unknown}"),
        PrefectTrouble::Unreachable(e) => format!("Prefect{at} could not be reached, {unknown}: {e}"),
        PrefectTrouble::Denied(e) => format!("Prefect{at} refused the credentials ecsctl used, {unknown}: {e}"),
        PrefectTrouble::Failed(e) => format!("Prefect{at} could not be asked about the pool, {unknown}: {e}"),
    };
    let first = match trouble {
        PrefectTrouble::NoUrl => "set PREFECT_API_URL to the pool's Prefect API",
        PrefectTrouble::Unreachable(_) => "check that PREFECT_API_URL is the pool's Prefect API (the last bootstrap's is used when the ledger has it) and that this machine reaches it",
        PrefectTrouble::Denied(_) | PrefectTrouble::Failed(_) => "check PREFECT_API_URL is the pool's Prefect API",
    };
    Reason {
        code: "prefect-unreachable",
        subject: facts.prefect.api_url.clone(),
        message,
        fix: Some(format!(
            "{first}; set PREFECT_API_KEY for Prefect Cloud, or PREFECT_API_AUTH_STRING for a server with basic auth, or use AWS credentials that may read the pool's secret {} (or {}), which ecsctl reads the worker's credentials from; then run `ecsctl status --pool {pool}` again",
            names.secret, names.auth_string_secret
        )),
    }
}

fn missing_reason(facts: &Facts) -> Reason {
    let pool = &facts.pool;
    let created = facts
        .created
        .iter()
        .any(|(_, kind)| *kind == ResourceKind::WorkPool);
    let at = facts
        .prefect
        .api_url
        .as_deref()
        .map(|u| format!(" at {u}"))
        .unwrap_or_default();
    Reason {
        code: "work-pool-missing",
        subject: Some(pool.clone()),
        message: format!(
            "the Prefect work pool '{pool}' does not exist{at}{}, so no worker takes flow runs from it",
            if created { " (ecsctl created it, the ledger says so, but it was deleted in Prefect)" } else { "" }
        ),
        fix: Some(format!("run `ecsctl bootstrap --pool {pool}` to create it")),
    }
}

fn wrong_type_reason(pool: &str, kind: &str) -> Reason {
    Reason {
        code: "work-pool-wrong-type",
        subject: Some(pool.to_string()),
        message: format!(
            "the Prefect work pool '{pool}' has type '{kind}', but the ECS worker needs type 'ecs', and a pool's type can never be changed"
        ),
        fix: Some(format!(
            "use another --pool, or delete that pool in Prefect (`prefect work-pool delete {pool}`) if nothing else uses it and run `ecsctl bootstrap --pool {pool}` to create it as an ECS pool"
        )),
    }
}

fn drift_reason(pool: &str, r: &Resource) -> Reason {
    Reason {
        code: "drifted",
        subject: Some(r.name.clone()),
        message: format!(
            "the Prefect work pool '{}' differs from the last bootstrap (changed in Prefect, e.g. in its UI): {}",
            r.name,
            r.drift.join("; ")
        ),
        fix: Some(format!(
            "run `ecsctl bootstrap --pool {pool}` to put ecsctl's defaults back (it sets only its own variables; the rest of the job template stays)"
        )),
    }
}

fn paused_reason(pool: &str) -> Reason {
    Reason {
        code: "work-pool-paused",
        subject: Some(pool.to_string()),
        message: format!(
            "the Prefect work pool '{pool}' is paused: no worker takes flow runs from it"
        ),
        fix: Some(format!("`prefect work-pool resume {pool}`")),
    }
}

fn offline_reason(facts: &Facts, workers: &[WorkerInfo], after_others: bool) -> Reason {
    let pool = &facts.pool;
    let mut message = format!("no ecsctl worker is online in Prefect work pool '{pool}'");
    let stale: Vec<String> = workers
        .iter()
        .filter(|w| w.ecsctl && w.status == "ONLINE" && !w.recent)
        .map(|w| {
            format!(
                "{} (last heartbeat {})",
                w.name,
                heartbeat_age(w, facts.checked_at)
            )
        })
        .collect();
    if !stale.is_empty() {
        message.push_str(&format!(
            "; Prefect still says ONLINE but no recent heartbeat came from {}",
            stale.join(", ")
        ));
    }
    let others: Vec<&str> = workers
        .iter()
        .filter(|w| !w.ecsctl && w.is_up())
        .map(|w| w.name.as_str())
        .collect();
    if !others.is_empty() {
        message.push_str(&format!(
            "; online but not ecsctl's (they do not make the pool healthy): {}",
            others.join(", ")
        ));
    }
    let fix = if after_others {
        "fix the reasons above first; the worker comes online when its task runs and reaches Prefect".to_string()
    } else {
        format!(
            "see the worker's last log lines above: a worker that runs but does not come online has a wrong PREFECT_API_URL or API key, or no route to Prefect (run `ecsctl bootstrap --pool {pool}` to set them again); a worker that just started needs a minute"
        )
    };
    Reason {
        code: "worker-offline",
        subject: Some(pool.clone()),
        message,
        fix: Some(fix),
    }
}

fn heartbeat_age(w: &WorkerInfo, now: OffsetDateTime) -> String {
    match w.last_heartbeat {
        None => "never".into(),
        Some(t) => format!("{} s before the check", (now - t).whole_seconds()),
    }
}
