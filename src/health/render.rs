//! The report as text for a person, one section at a time.

use time::macros::format_description;
use time::OffsetDateTime;

use super::{Health, LogInfo, PrefectInfo, Report, Resource, ResourceState};
use crate::aws::ecs::{ServiceInfo, StoppedTask, TaskDefinitionName};

/// The report as text for a person: resources, the service, stopped tasks, log lines, Prefect,
/// verdict.
pub fn render_text(r: &Report) -> String {
    let mut out = Lines::default();
    header(&mut out, r);
    out.blank();
    resources(&mut out, &r.resources);
    out.blank();
    match &r.service {
        None => out.push("Service: not found"),
        Some(s) => service(&mut out, s),
    }
    out.blank();
    stopped_tasks(&mut out, &r.stopped_tasks);
    out.blank();
    logs(&mut out, r.logs.as_ref());
    out.blank();
    prefect(&mut out, &r.pool, &r.prefect);
    if !r.warnings.is_empty() {
        out.blank();
        out.push("Warnings:");
        for w in &r.warnings {
            out.push(format!("  ! {w}"));
        }
    }
    out.blank();
    verdict(&mut out, r);
    out.0
}

#[derive(Default)]
struct Lines(String);

impl Lines {
    fn push(&mut self, line: impl AsRef<str>) {
        self.0.push_str(line.as_ref());
        self.0.push('\n');
    }

    fn blank(&mut self) {
        self.0.push('\n');
    }
}

fn header(out: &mut Lines, r: &Report) {
    out.push(format!(
        "Pool '{}' in account {} region {}",
        r.pool, r.account, r.region
    ));
    out.push(if r.ledger.found {
        format!("Ledger: {}", r.ledger.path)
    } else {
        format!(
            "Ledger: none at {} (resources found by their ecsctl:pool tag)",
            r.ledger.path
        )
    });
}

fn resources(out: &mut Lines, resources: &[Resource]) {
    out.push("Resources:");
    for res in resources {
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
        let line = format!(
            "  {symbol} {:<16} {:<18} {:<36} {state}  {}",
            res.step,
            res.kind.label(),
            res.name,
            res.id.as_deref().unwrap_or_default()
        );
        out.push(line.trim_end());
        for drift in &res.drift {
            out.push(format!("      drift: {drift}"));
        }
    }
    if resources.is_empty() {
        out.push("  (none found)");
    }
}

fn service(out: &mut Lines, s: &ServiceInfo) {
    out.push(format!(
        "Service {} ({}): desired {}, running {}, pending {}; rollout {}",
        s.name,
        s.status,
        s.desired,
        s.running,
        s.pending,
        s.rollout.as_deref().unwrap_or("unknown")
    ));
    let running = TaskDefinitionName::parse(&s.task_definition).short;
    let latest = match &s.latest_task_definition {
        Some(latest) => match TaskDefinitionName::parse(latest).short {
            newest if newest != running => format!(" (latest: {newest})"),
            _ => " (latest)".to_string(),
        },
        None => String::new(),
    };
    out.push(format!("  Task definition: {running}{latest}"));
    out.push("  Deployments:");
    for d in &s.deployments {
        out.push(format!(
            "    {:<8} {}  desired {}, running {}, pending {}, failed {}; rollout {}{}",
            d.status,
            TaskDefinitionName::parse(&d.task_definition).short,
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
        out.push("    (none)");
    }
    out.push("  Last service events (newest first):");
    for e in &s.events {
        out.push(format!("    {} {}", stamp(e.at), e.message));
    }
    if s.events.is_empty() {
        out.push("    (none)");
    }
}

fn stopped_tasks(out: &mut Lines, tasks: &[StoppedTask]) {
    out.push("Recently stopped tasks (newest first):");
    for t in tasks {
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
        out.push(text);
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
            out.push(format!("      container {}: {exit}{why}", c.name));
        }
    }
    if tasks.is_empty() {
        out.push("  (none)");
    }
}

fn logs(out: &mut Lines, logs: Option<&LogInfo>) {
    match logs {
        None => out.push("Worker logs: could not be read (see the warnings)"),
        Some(l) if !l.exists => out.push(format!(
            "Worker logs: the log group {} does not exist",
            l.group
        )),
        Some(l) if !l.has_streams => out.push(format!(
            "Worker logs ({}): no log streams: no worker task has written a line yet",
            l.group
        )),
        Some(l) => {
            out.push(format!(
                "Worker logs ({}, stream {}, last event {}):",
                l.group,
                l.stream.as_deref().unwrap_or("?"),
                stamp(l.last_event_at)
            ));
            for entry in &l.lines {
                out.push(format!(
                    "  {} {}",
                    stamp(entry.at),
                    entry.message.trim_end()
                ));
            }
            if l.lines.is_empty() {
                out.push("  (no lines asked for or none in the stream)");
            }
        }
    }
}

fn prefect(out: &mut Lines, pool: &str, p: &PrefectInfo) {
    let at = p
        .api_url
        .as_deref()
        .map(|u| format!(" ({u})"))
        .unwrap_or_default();
    if let Some(e) = &p.error {
        out.push(format!("Prefect{at}: could not be asked: {e}"));
        return;
    }
    out.push(format!("Prefect{at}:"));
    match &p.pool {
        None => out.push(format!("  Work pool {pool}: does not exist")),
        Some(wp) => out.push(format!(
            "  Work pool {}: type {}{}",
            wp.name,
            wp.kind,
            if wp.paused { ", paused" } else { "" }
        )),
    }
    for w in &p.workers {
        let whose = if w.ecsctl { "ecsctl's" } else { "not ecsctl's" };
        let stale = if w.recent {
            ""
        } else {
            ", no recent heartbeat"
        };
        out.push(format!(
            "  Worker {}: {}, last heartbeat {} ({whose}{stale})",
            w.name,
            w.status,
            w.last_heartbeat
                .map_or("never".to_string(), |t| stamp(Some(t)))
        ));
    }
    if p.workers.is_empty() && p.pool.is_some() {
        out.push("  Workers: none");
    }
}

fn verdict(out: &mut Lines, r: &Report) {
    let verdict = match r.verdict {
        Health::Healthy => "HEALTHY",
        Health::Unhealthy => "UNHEALTHY",
        Health::NotBootstrapped => "NOT BOOTSTRAPPED",
    };
    out.push(format!("Verdict: {verdict}"));
    if r.verdict == Health::Healthy {
        out.push(format!("  {}", r.summary));
    }
    for reason in &r.reasons {
        out.push(format!("  ✗ {}", reason.message));
        if let Some(fix) = &reason.fix {
            out.push(format!("      fix: {fix}"));
        }
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
