//! Runs steps: every `look` at once, then `apply` (or `destroy`) as a dependency graph where a step
//! starts as soon as the steps it depends on (or, backwards, the steps depending on it) are done.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};

use crate::steps::{Context, Step, StepPlan, StepReport};

/// A step that failed, and why.
#[derive(Debug)]
pub struct StepFailure {
    pub step: &'static str,
    pub error: anyhow::Error,
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "step {}: {:#}", self.step, self.error)
    }
}

/// What a graph run did: reports of the steps that finished, and the failures.
#[derive(Debug, Default)]
pub struct RunOutcome {
    pub reports: Vec<(&'static str, StepReport)>,
    pub failures: Vec<StepFailure>,
    /// Steps not run because something they wait for failed.
    pub skipped: Vec<&'static str>,
}

impl RunOutcome {
    pub fn changed(&self) -> bool {
        self.reports.iter().any(|(_, r)| !r.changes.is_empty())
    }
}

/// Every step's `look`, concurrently. Returns the plans in step order, or every failure.
pub async fn look_all(
    steps: &[Arc<dyn Step>],
    cx: &Context,
) -> Result<Vec<StepPlan>, Vec<StepFailure>> {
    let looks = steps.iter().map(|step| async move {
        step.look(cx).await.map_err(|error| StepFailure {
            step: step.name(),
            error,
        })
    });
    let results = futures::future::join_all(looks).await;
    let (plans, failures): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    if failures.is_empty() {
        Ok(plans.into_iter().filter_map(Result::ok).collect())
    } else {
        Err(failures.into_iter().filter_map(Result::err).collect())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Dependencies first (bootstrap).
    Forward,
    /// Dependents first (destroy).
    Backward,
}

pub async fn apply_all(steps: &[Arc<dyn Step>], cx: &Context) -> RunOutcome {
    run_graph(
        steps,
        Direction::Forward,
        cx,
        "applying",
        |step| async move { step.apply(cx).await },
    )
    .await
}

pub async fn destroy_all(steps: &[Arc<dyn Step>], cx: &Context) -> RunOutcome {
    run_graph(
        steps,
        Direction::Backward,
        cx,
        "deleting",
        |step| async move { step.destroy(cx).await },
    )
    .await
}

/// For each step, the steps that must finish before it starts.
pub fn prerequisites(
    steps: &[Arc<dyn Step>],
    direction: Direction,
) -> HashMap<&'static str, Vec<&'static str>> {
    let mut before: HashMap<&'static str, Vec<&'static str>> =
        steps.iter().map(|s| (s.name(), Vec::new())).collect();
    for step in steps {
        for dep in step.depends_on() {
            match direction {
                Direction::Forward => before.entry(step.name()).or_default().push(dep),
                Direction::Backward => before.entry(dep).or_default().push(step.name()),
            }
        }
    }
    before
}

/// Runs `run` for every step in dependency order, as many at once as the graph allows. A failed
/// step's dependents are skipped; independent steps still run, so a re-run has less left to do.
async fn run_graph<'a, F, Fut>(
    steps: &'a [Arc<dyn Step>],
    direction: Direction,
    cx: &'a Context,
    verb: &str,
    run: F,
) -> RunOutcome
where
    F: Fn(&'a Arc<dyn Step>) -> Fut,
    Fut: Future<Output = anyhow::Result<StepReport>> + 'a,
{
    let before = prerequisites(steps, direction);
    let mut done: HashSet<&'static str> = HashSet::new();
    let mut blocked: HashSet<&'static str> = HashSet::new();
    let mut started: HashSet<&'static str> = HashSet::new();
    let mut running = FuturesUnordered::new();
    let mut outcome = RunOutcome::default();

    loop {
        for step in steps {
            let name = step.name();
            if started.contains(name) {
                continue;
            }
            let prereqs = &before[name];
            if prereqs.iter().any(|p| blocked.contains(p)) {
                blocked.insert(name);
                started.insert(name);
                outcome.skipped.push(name);
            } else if prereqs.iter().all(|p| done.contains(p)) {
                started.insert(name);
                cx.progress.started(name, verb);
                let fut = run(step);
                running.push(async move {
                    let t0 = Instant::now();
                    (name, fut.await, t0.elapsed())
                });
            }
        }
        let Some((name, result, elapsed)) = running.next().await else {
            break;
        };
        match result {
            Ok(report) => {
                cx.progress
                    .finished(name, &summary(&report, direction), elapsed);
                done.insert(name);
                outcome.reports.push((name, report));
            }
            Err(error) => {
                cx.progress.failed(name, &format!("{error:#}"));
                blocked.insert(name);
                outcome.failures.push(StepFailure { step: name, error });
            }
        }
    }
    // Report in the steps' own order, not in the order they happened to finish.
    outcome
        .reports
        .sort_by_key(|(name, _)| steps.iter().position(|s| s.name() == *name));
    outcome
}

fn summary(report: &StepReport, direction: Direction) -> String {
    if !report.changes.is_empty() {
        return report.changes.join("; ");
    }
    match direction {
        Direction::Backward => "nothing to delete".to_string(),
        Direction::Forward => {
            let ids: Vec<&str> = report
                .resources
                .values()
                .flatten()
                .map(String::as_str)
                .collect();
            if ids.is_empty() {
                "nothing needed".to_string()
            } else {
                format!("in place: {}", ids.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps;

    #[test]
    fn the_step_graph_is_complete_and_acyclic() {
        let all = steps::all();
        let names: HashSet<&str> = all.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), all.len(), "step names are unique");
        for step in &all {
            for dep in step.depends_on() {
                assert!(
                    names.contains(dep),
                    "{} depends on unknown {dep}",
                    step.name()
                );
            }
        }
        // Kahn's algorithm: every step must become ready.
        let before = prerequisites(&all, Direction::Forward);
        let mut done: HashSet<&str> = HashSet::new();
        while done.len() < all.len() {
            let ready: Vec<&str> = before
                .iter()
                .filter(|(n, deps)| !done.contains(*n) && deps.iter().all(|d| done.contains(d)))
                .map(|(n, _)| *n)
                .collect();
            assert!(
                !ready.is_empty(),
                "cycle among {:?}",
                names.difference(&done)
            );
            done.extend(ready);
        }
    }

    #[test]
    fn destroy_removes_the_service_before_what_it_uses() {
        let all = steps::all();
        let backward = prerequisites(&all, Direction::Backward);
        for used_by_service in [
            "cluster",
            "network",
            "task-definition",
            "execution-role",
            "worker-role",
        ] {
            assert!(
                backward[used_by_service].contains(&"service"),
                "{used_by_service}"
            );
        }
        // The secret outlives the role that reads it and the definition that names it.
        assert!(backward["secret"].contains(&"execution-role"));
        assert!(backward["secret"].contains(&"task-definition"));
        // The work pool stops pointing at the stack before any of it goes.
        for used_by_pool in [
            "cluster",
            "network",
            "execution-role",
            "flow-run-role",
            "secret",
            "log-group",
        ] {
            assert!(
                backward[used_by_pool].contains(&"work-pool"),
                "{used_by_pool}"
            );
        }
    }
}
