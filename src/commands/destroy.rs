//! `ecsctl destroy`: delete what ecsctl created for a pool — by the ledger, or by tags when the
//! ledger is lost — backwards through the step graph, then prove nothing is left.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::{
    interactive, lock, prefect_auth_from_env, prefect_from_env, require_pool, step_failures,
    Common, Session,
};
use crate::cli::DestroyArgs;
use crate::config;
use crate::engine::{self, RunOutcome, StepFailure};
use crate::error::CliError;
use crate::ledger::{self, Record, ResourceKind};
use crate::prefect::Auth;
use crate::steps::cluster::{self, FlowRunTask};
use crate::steps::{self, Context, ItemState, Run, Step, StepPlan, Teardown};

pub async fn run(args: DestroyArgs, common: Common) -> Result<(), CliError> {
    let teardown = teardown_from(&args)?;
    let pool = require_pool(args.pool.pool, args.yes)?;
    let auth = prefect_auth_from_env()?;
    let ask = interactive(args.yes);
    let started = Instant::now();
    common.journal.phase("connect");

    let lock_as = (!args.dry_run).then_some("destroy");
    let mut session = Session::open(&common, &pool, lock_as, args.pool.wait_lock).await?;
    session.note_if_no_ledger(&common, &pool);
    let run = Destroy {
        common: &common,
        pool: &pool,
        teardown,
        dry_run: args.dry_run,
        auth,
    };
    common.journal.phase("look");
    let (mut cx, mut looked) = run.look(&session).await?;
    let to_delete = targets(&cx, &looked.plans);
    if to_delete.is_empty() {
        if !args.dry_run {
            ledger::remove(&session.paths)?;
            if session.seen.ledger_version.is_some() && session.seen.holder.is_none() {
                // A copy left by a run whose pool is gone since (deleted by hand, or by destroy
                // of an older ecsctl).
                session.account.forget_ledger().await?;
            }
        }
        let text = format!(
            "Nothing of pool '{pool}' exists in account {} region {}.\n",
            cx.identity.account, cx.identity.region
        );
        let json = json!({ "pool": pool, "deleted": [], "left": [] });
        common.print(&text, &json);
        return Ok(());
    }
    if args.dry_run {
        print_dry_run(&common, &pool, &to_delete, &looked.flow_runs);
        return Ok(());
    }
    // Asked before the lock, so that a "no" (or flow runs left running) changes nothing at all.
    common.journal.phase("confirm");
    confirm(&common, &pool, &to_delete, ask, session.ledger.is_none())?;
    common.journal.phase("delete");
    stop_flow_runs(&common, &cx, &looked.flow_runs, args.stop_flow_runs, ask).await?;
    let (held, now) = lock::acquire(&common, &session, "destroy", args.pool.wait_lock).await?;
    if let Some(now) = now {
        // Someone changed the pool since the look: look again, now that nobody else can.
        session.absorb(now);
        match run.look(&session).await {
            Ok(again) => (cx, looked) = again,
            Err(e) => return held.release(&common, &session, true, Err(e)).await,
        }
    }
    held.mirror_ledger(&cx);
    let result = run.delete(&session, &cx, &looked, started).await;
    let all_gone = result.is_ok();
    held.release(&common, &session, !all_gone, result).await
}

/// What a look found: the steps (which remember what they saw), their plans, and the flow runs
/// still running on the pool's cluster.
struct Looked {
    steps: Vec<Arc<dyn Step>>,
    plans: Vec<StepPlan>,
    flow_runs: Vec<FlowRunTask>,
}

/// One destroy's settings.
struct Destroy<'a> {
    common: &'a Common,
    pool: &'a str,
    teardown: Teardown,
    dry_run: bool,
    /// The Prefect credentials from the environment, checked before any call.
    auth: Option<Auth>,
}

impl Destroy<'_> {
    fn context(&self, session: &Session) -> Context {
        let spec = session.ledger.as_ref().and_then(|l| l.spec.clone());
        let mut cx = session.context(
            self.pool,
            spec.clone(),
            Run::Destroy(self.teardown),
            !self.dry_run,
            self.common.progress.clone(),
        );
        cx.prefect = prefect_from_env(spec.as_ref(), self.auth.clone());
        cx
    }

    /// What exists of the pool, and the flow runs still running on its cluster.
    async fn look(&self, session: &Session) -> Result<(Context, Looked), CliError> {
        let cx = self.context(session);
        self.common.journal.attach(self.pool, &cx.ledger);
        let steps = steps::all();
        let (plans, flow_runs) = tokio::join!(
            engine::look_all(&steps, &cx),
            cluster::running_flow_runs(&cx)
        );
        let plans = plans.map_err(|f| step_failures("finding the pool's resources", &f))?;
        let flow_runs = flow_runs?;
        Ok((
            cx,
            Looked {
                steps,
                plans,
                flow_runs,
            },
        ))
    }

    /// With the lock held: delete, and check nothing is left.
    async fn delete(
        &self,
        session: &Session,
        cx: &Context,
        looked: &Looked,
        started: Instant,
    ) -> Result<(), CliError> {
        let (common, pool) = (self.common, self.pool);
        let outcome = engine::destroy_all(&looked.steps, cx).await;
        // Look again with fresh steps: only what AWS says now counts (and what the ledger still
        // lists, which a failed step could not delete).
        common.journal.phase("verify");
        let mut verify_cx = self.context(session);
        verify_cx.ledger = cx.ledger.clone();
        let after = engine::look_all(&steps::all(), &verify_cx).await;
        let deleted = check_nothing_left(&verify_cx, &outcome, after)?;

        ledger::remove(&session.paths).map_err(|e| {
            e.context(format!("everything of pool '{pool}' was deleted, but its ledger could not be removed: delete the file by hand (a later destroy finds nothing and removes it)"))
        })?;
        let mut text = format!(
            "Destroyed pool '{pool}' in account {} region {} ({:.1}s)\n",
            cx.identity.account,
            cx.identity.region,
            started.elapsed().as_secs_f64()
        );
        for d in &deleted {
            text.push_str(&format!("  {d}\n"));
        }
        let json = json!({ "pool": pool, "deleted": deleted, "left": Vec::<String>::new() });
        common.print(&text, &json);
        Ok(())
    }
}

/// `--secret-recovery-days` and `--wait-timeout`, both checked before anything else.
fn teardown_from(args: &DestroyArgs) -> Result<Teardown, CliError> {
    let mut problems = Vec::new();
    let secret_recovery_days = args
        .secret_recovery_days
        .map(config::validate_secret_recovery_days)
        .transpose()
        .map_err(|e| problems.push(e))
        .ok()
        .flatten();
    let timeout = args
        .wait_timeout
        .as_deref()
        .map(config::parse_duration)
        .transpose()
        .map_err(|e| problems.push(e))
        .ok()
        .flatten()
        .unwrap_or(config::DEFAULT_TEARDOWN_TIMEOUT);
    if !problems.is_empty() {
        return Err(super::bad_inputs(problems));
    }
    Ok(Teardown {
        secret_recovery_days,
        timeout,
    })
}

fn listing(items: &[String]) -> String {
    items.iter().map(|t| format!("  - {t}\n")).collect()
}

fn print_dry_run(common: &Common, pool: &str, to_delete: &[String], flow_runs: &[FlowRunTask]) {
    let running: Vec<String> = flow_runs.iter().map(ToString::to_string).collect();
    let mut text = format!(
        "Would delete for pool '{pool}' (dry run, nothing deleted):\n{}",
        listing(to_delete)
    );
    if !running.is_empty() {
        text.push_str(&format!(
            "and would first need to stop these running flow runs (--stop-flow-runs):\n{}",
            listing(&running)
        ));
    }
    let json = json!({ "pool": pool, "dry_run": true, "would_delete": to_delete, "running_flow_runs": running });
    common.print(&text, &json);
}

/// Flow runs still running hold the cluster and the network: stop them with `--stop-flow-runs`
/// or a yes on a terminal; otherwise stop here, before anything is deleted.
async fn stop_flow_runs(
    common: &Common,
    cx: &Context,
    flow_runs: &[FlowRunTask],
    flag: bool,
    ask: bool,
) -> Result<(), CliError> {
    if flow_runs.is_empty() {
        return Ok(());
    }
    let pool = cx.pool();
    let running: Vec<String> = flow_runs.iter().map(ToString::to_string).collect();
    let stop = flag || (ask && confirm_stop(common, pool, &running)?);
    if !stop {
        return Err(CliError::Failed(anyhow::anyhow!(
            "pool '{pool}' still runs {} flow run(s), which AWS will not let go of the cluster and network; nothing was deleted:\n{}stop them with `ecsctl destroy --pool {pool} --stop-flow-runs` (or let them finish and run destroy again)",
            running.len(),
            listing(&running)
        )));
    }
    cluster::stop_flow_runs(cx, flow_runs).await?;
    common
        .progress
        .message(&format!("stopped {} flow run(s)", running.len()));
    Ok(())
}

/// On a terminal, shows the running flow runs and asks before stopping them.
fn confirm_stop(common: &Common, pool: &str, running: &[String]) -> Result<bool, CliError> {
    common.progress.message(&format!(
        "pool '{pool}' still runs these flow runs:\n{}",
        listing(running)
    ));
    crate::prompt::confirm("Stop them (their flow runs will crash) and go on?")
}

/// On a terminal, lists what will go and asks; without a ledger, says what it found first.
fn confirm(
    common: &Common,
    pool: &str,
    to_delete: &[String],
    ask: bool,
    no_ledger: bool,
) -> Result<(), CliError> {
    let listing = listing(to_delete);
    if ask {
        common
            .progress
            .message(&format!("ecsctl will delete for pool '{pool}':\n{listing}"));
        if !crate::prompt::confirm("Delete these resources?")? {
            return Err(CliError::Failed(anyhow::anyhow!(
                "cancelled; nothing was deleted"
            )));
        }
    } else if no_ledger {
        // Found by tags alone: say what, before deleting it.
        common
            .progress
            .message(&format!("found for pool '{pool}', to delete:\n{listing}"));
    }
    Ok(())
}

/// What was deleted, or an error listing what is still there (and the steps that failed).
fn check_nothing_left(
    cx: &Context,
    outcome: &RunOutcome,
    after: Result<Vec<StepPlan>, Vec<StepFailure>>,
) -> Result<Vec<String>, CliError> {
    let pool = cx.pool();
    if !outcome.failures.is_empty() {
        let mut text = format!("{:#}\n", step_failures("destroy", &outcome.failures));
        match &after {
            Ok(after) => {
                text.push_str(&format!(
                    "these resources of pool '{pool}' are still there:\n"
                ));
                text.push_str(&listing(&targets(cx, after)));
            }
            Err(f) => text.push_str(&format!(
                "{:#}\n",
                step_failures("checking what is left", f)
            )),
        }
        return Err(CliError::Failed(anyhow::anyhow!(
            "{text}run `ecsctl destroy --pool {pool}` again to finish; the ledger still lists what is left"
        )));
    }
    let after = after.map_err(|f| step_failures("checking that nothing is left", &f))?;
    let left = owned_items(&after);
    if !left.is_empty() {
        return Err(CliError::Failed(anyhow::anyhow!(
            "destroy finished but these resources of pool '{pool}' are still there:\n{}run `ecsctl destroy --pool {pool}` again, or delete them by hand",
            listing(&left)
        )));
    }
    Ok(outcome
        .reports
        .iter()
        .flat_map(|(_, r)| r.changes.iter().cloned())
        .collect())
}

/// What will be deleted: the ledger's records and whatever `look` found tagged for the pool.
fn targets(cx: &Context, plans: &[StepPlan]) -> Vec<String> {
    let mut out = owned_items(plans);
    // A work pool ecsctl configured but did not create: it stays, without ecsctl's defaults.
    let configured = plans
        .iter()
        .flat_map(|p| &p.items)
        .filter(|i| i.kind == ResourceKind::WorkPool && matches!(i.state, ItemState::Used { .. }));
    for pool in configured {
        out.push(format!(
            "work pool {} (not created by ecsctl: only ecsctl's defaults are removed, the pool stays)",
            pool.name
        ));
    }
    let recorded: Vec<Record> = cx.ledger.snapshot().created;
    for r in recorded {
        if !out.iter().any(|o| o.contains(&r.id)) {
            out.push(format!(
                "{} {} (recorded in the ledger)",
                r.kind.label(),
                r.id
            ));
        }
    }
    out
}

fn owned_items(plans: &[StepPlan]) -> Vec<String> {
    plans
        .iter()
        .flat_map(|p| &p.items)
        .filter(|i| i.state.is_owned())
        .map(|i| {
            format!(
                "{} {} ({})",
                i.kind.label(),
                i.name,
                i.state.id().unwrap_or_default()
            )
        })
        .collect()
}
