//! `ecsctl bootstrap`: gather and validate inputs, look at what exists, show the plan, create or
//! update what is missing, wait for the worker to run.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::{interactive, lock, render_plan, secret_file, step_failures, Common, Session};
use crate::cli::BootstrapArgs;
use crate::config::{self, BootstrapInputs, BootstrapSettings};
use crate::engine::{self, RunOutcome};
use crate::error::CliError;
use crate::prefect::Auth;
use crate::steps::{
    self, service, Context, Credentials, ItemState, PrefectAccess, Run, Step, StepPlan,
};

pub async fn run(args: BootstrapArgs, common: Common) -> Result<(), CliError> {
    let ask = interactive(args.yes);
    let wait_lock = args.pool.wait_lock;
    let settings = settings_from(args, ask)?;
    let started = Instant::now();
    common.journal.phase("connect");
    if config::is_loopback(&settings.spec.prefect_api_url) {
        common.progress.message(&format!(
            "warning: the Prefect API URL {} points at this machine: ecsctl can reach it from here, but the worker on Fargate never can (there it means the task itself). Use an address the worker's subnets can reach",
            settings.spec.prefect_api_url
        ));
    }

    let lock_as = (!settings.dry_run).then_some("bootstrap");
    let mut session = Session::open(&common, &settings.pool, lock_as, wait_lock).await?;
    let mut cx = context(&session, &settings, &common);
    common.journal.phase("look");
    if settings.dry_run {
        print_plan(&common, &cx, &look(&cx).await?.1);
        return Ok(());
    }
    // A pool neither this machine nor the account knows is about to be built: its lock is taken
    // alongside the look, off the critical path. Any other run takes it only once the look finds
    // something to change (and, on a terminal, after the user said yes).
    let early = !ask && session.ledger.is_none();
    let (looked, early_lock) = if early {
        let (looked, lock) = tokio::join!(
            look(&cx),
            lock::acquire(&common, &session, "bootstrap", wait_lock)
        );
        (looked, Some(lock?))
    } else {
        (look(&cx).await, None)
    };
    let checked = looked.and_then(|(all, plans)| {
        refuse_foreign(&cx, &plans)?;
        common.journal.phase("confirm");
        confirm_plan(&common, &cx, &plans, ask)?;
        Ok((all, plans))
    });
    let (mut all, plans) = match (checked, early_lock.is_some()) {
        (Ok(looked), _) => looked,
        (Err(e), true) => return lock::give_back(early_lock, &common, &session, e).await,
        (Err(e), false) => return Err(e),
    };
    let (held, now) = match early_lock {
        Some(lock) => lock,
        // Nothing to change, so nothing to lock: the run makes no mutating call at all.
        None if plans.iter().all(|p| p.is_noop()) => {
            return apply(&common, &cx, &all, &settings, started).await
        }
        None => lock::acquire(&common, &session, "bootstrap", wait_lock).await?,
    };
    if let Some(now) = now {
        // Someone changed the pool since the look: look again, now that nobody else can, and
        // ask again about the plan that look makes.
        session.absorb(now);
        cx = context(&session, &settings, &common);
        common.journal.phase("look");
        let again = look(&cx).await.and_then(|(steps, plans)| {
            refuse_foreign(&cx, &plans)?;
            confirm_plan(&common, &cx, &plans, ask)?;
            Ok(steps)
        });
        all = match again {
            Ok(looked) => looked,
            Err(e) => return held.release(&common, &session, true, Err(e)).await,
        };
    }
    held.mirror_ledger(&cx);
    let result = apply(&common, &cx, &all, &settings, started).await;
    held.release(&common, &session, true, result).await
}

/// The step context of this bootstrap.
fn context(session: &Session, settings: &BootstrapSettings, common: &Common) -> Context {
    let mut cx = session.context(
        &settings.pool,
        Some(settings.spec.clone()),
        Run::Bootstrap(Credentials {
            api_key: settings.api_key.clone(),
            auth_string: settings.auth_string.clone(),
        }),
        !settings.dry_run,
        common.progress.clone(),
    );
    cx.prefect = PrefectAccess {
        api_url: Some(settings.spec.prefect_api_url.clone()),
        auth: settings
            .api_key
            .clone()
            .map(Auth::Key)
            .or(settings.auth_string.clone().map(Auth::AuthString)),
    };
    common.journal.attach(&settings.pool, &cx.ledger);
    cx
}

/// The steps (which remember what they saw) and their plans.
type Looked = (Vec<Arc<dyn Step>>, Vec<StepPlan>);

async fn look(cx: &Context) -> Result<Looked, CliError> {
    let all = steps::all();
    let plans = engine::look_all(&all, cx)
        .await
        .map_err(|f| step_failures("checking what exists", &f))?;
    Ok((all, plans))
}

/// Creates and updates (with the lock held, unless there is nothing to change), waits for the
/// worker.
async fn apply(
    common: &Common,
    cx: &Context,
    all: &[Arc<dyn Step>],
    settings: &BootstrapSettings,
    started: Instant,
) -> Result<(), CliError> {
    common.journal.phase("apply");
    cx.ledger.set_spec(&settings.spec).map_err(|e| {
        e.context("nothing was changed in AWS; make the state directory writable (or free space on its disk) and run bootstrap again")
    })?;
    let outcome = engine::apply_all(all, cx).await;
    if !outcome.failures.is_empty() {
        let failed = step_failures("bootstrap", &outcome.failures);
        return Err(CliError::Failed(failed.context(what_next(cx))));
    }
    common.journal.phase("wait");
    if let Some(timeout) = settings.wait_timeout {
        common
            .progress
            .message("waiting for the worker service to be steady (--no-wait to skip)…");
        service::wait_until_steady(cx, timeout).await?;
    }
    print_outcome(common, cx, &outcome, started);
    Ok(())
}

/// After a failed run: where what it created is recorded, and how to go on. Honest about a
/// ledger that could not be saved: then the tags are the only record of the newest resources.
fn what_next(cx: &Context) -> String {
    let (file, pool) = (cx.ledger.paths().file.display(), cx.pool());
    match cx.ledger.unsaved() {
        None => format!(
            "what was created is recorded in {file}; run `ecsctl bootstrap --pool {pool}` again to finish, or `ecsctl destroy --pool {pool}` to remove it"
        ),
        Some(reason) => format!(
            "the ledger {file} could not be saved ({reason}), so what this run created since its last save is NOT recorded in it. It is tagged ecsctl:pool={pool}: once the state directory is writable again (permissions, free space), `ecsctl bootstrap --pool {pool}` finds and records it, and `ecsctl destroy --pool {pool}` finds it by its tags"
        ),
    }
}

/// `--dry-run`: the plan, and nothing else.
fn print_plan(common: &Common, cx: &Context, plans: &[StepPlan]) {
    let pool = cx.pool();
    let text = format!(
        "Plan for pool '{pool}' in account {} region {} (dry run, nothing changed):\n{}",
        cx.identity.account,
        cx.identity.region,
        render_plan(plans)
    );
    common.print(
        &text,
        &json!({ "pool": pool, "dry_run": true, "plan": plans }),
    );
}

/// Same-named resources ecsctl did not create stop the run before any change.
fn refuse_foreign(cx: &Context, plans: &[StepPlan]) -> Result<(), CliError> {
    let foreign: Vec<String> = plans
        .iter()
        .flat_map(|p| &p.items)
        .filter_map(|i| match &i.state {
            ItemState::Foreign { id } => Some(format!("  - {} {} ({id})", i.kind.label(), i.name)),
            _ => None,
        })
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    let pool = cx.pool();
    Err(CliError::Failed(anyhow::anyhow!(
        "these resources have ecsctl's names for pool '{pool}' but are not this stack's (not created by ecsctl: no ecsctl:pool={pool} tag; or serving pool '{pool}' in another region), so ecsctl will not touch them:\n{}\nDelete or rename them, or choose another --pool.",
        foreign.join("\n")
    )))
}

/// On a terminal, shows the plan and asks before changing anything; says when there is nothing to do.
fn confirm_plan(
    common: &Common,
    cx: &Context,
    plans: &[StepPlan],
    ask: bool,
) -> Result<(), CliError> {
    let in_place = plans.iter().all(|p| p.is_noop());
    if in_place {
        common
            .progress
            .message("everything is in place; nothing to change");
        return Ok(());
    }
    if ask {
        common.progress.message(&format!(
            "Plan for pool '{}' in account {} region {}:\n{}",
            cx.pool(),
            cx.identity.account,
            cx.identity.region,
            render_plan(plans)
        ));
        if !crate::prompt::confirm("Create and update these resources?")? {
            return Err(CliError::Failed(anyhow::anyhow!(
                "cancelled; nothing was changed"
            )));
        }
    }
    Ok(())
}

/// What was done and what exists now, as text or JSON.
fn print_outcome(common: &Common, cx: &Context, outcome: &RunOutcome, started: Instant) {
    let changed = outcome.changed();
    let mut text = format!(
        "{} pool '{}' in account {} region {} ({:.1}s)\n",
        if changed {
            "Bootstrapped"
        } else {
            "No changes to"
        },
        cx.pool(),
        cx.identity.account,
        cx.identity.region,
        started.elapsed().as_secs_f64()
    );
    let mut resources = serde_json::Map::new();
    for (step, report) in &outcome.reports {
        for (label, ids) in &report.resources {
            text.push_str(&format!("  {step:<16} {label:<18} {}\n", ids.join(", ")));
        }
        resources.insert(step.to_string(), json!(report.resources));
    }
    let changes: Vec<&String> = outcome
        .reports
        .iter()
        .flat_map(|(_, r)| &r.changes)
        .collect();
    common.print(
        &text,
        &json!({
            "pool": cx.pool(),
            "account": cx.identity.account,
            "region": cx.identity.region,
            "changed": changed,
            "changes": changes,
            "resources": resources,
            "ledger": cx.ledger.paths().file,
        }),
    );
}

/// Flags and environment, then prompts on a terminal, then validation of everything at once.
fn settings_from(args: BootstrapArgs, ask: bool) -> Result<BootstrapSettings, CliError> {
    let api_key = match &args.prefect_api_key_file {
        Some(path) => Some(secret_file::read(path, &secret_file::API_KEY)?),
        None => non_empty_env("PREFECT_API_KEY"),
    };
    let auth_string = match &args.prefect_api_auth_string_file {
        Some(path) => Some(secret_file::read(path, &secret_file::AUTH_STRING)?),
        None => non_empty_env("PREFECT_API_AUTH_STRING"),
    };
    let mut inputs = BootstrapInputs {
        pool: args.pool.pool,
        prefect_api_url: args
            .prefect_api_url
            .or_else(|| non_empty_env("PREFECT_API_URL")),
        api_key,
        auth_string,
        image: args.image,
        cpu: args.cpu,
        memory: args.memory,
        desired_count: args.desired_count,
        log_retention_days: args.log_retention_days,
        tags: args.tags,
        vpc_id: args.vpc_id,
        subnet_ids: args.subnet_ids,
        flow_run_capacity: args.flow_run_capacity,
        flow_run_policy_arns: args.flow_run_policy_arns,
        flow_run_role_arn: args.flow_run_role_arn,
        dry_run: args.dry_run,
        no_wait: args.no_wait,
        wait_timeout: args.wait_timeout,
    };
    if ask {
        inputs
            .validate_given()
            .map_err(|e| super::bad_inputs(e.0))?;
        crate::prompt::fill_bootstrap(&mut inputs)?;
    }
    inputs.validate().map_err(|e| super::bad_inputs(e.0))
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
