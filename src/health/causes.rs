//! Why a worker task stopped or a service event matters: ECS's words (recognised in
//! `aws::messages`) turned into reasons with the fix for this pool.

use super::Reason;
use crate::aws::ecs::StoppedTask;
use crate::aws::messages::{self, EcsProblem};
use crate::steps::Names;

/// How much of an AWS message a reason quotes.
const QUOTE_CHARS: usize = 200;

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
        || messages::is_essential_container_exit(stopped);
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

/// A known problem recognised in ECS's words, with its fix.
pub(super) struct Cause {
    pub code: &'static str,
    pub what: String,
    pub fix: String,
}

/// The problem ECS describes in `text`, in ecsctl's words, with the fix for this pool.
pub(super) fn classify(text: &str, names: &Names) -> Option<Cause> {
    let bootstrap = format!("`ecsctl bootstrap --pool {}`", names.pool);
    let (code, what, fix) = match messages::ecs_problem(text)? {
        EcsProblem::RoleNotAssumable => (
            "role-not-assumable",
            "ECS cannot assume the worker's IAM role",
            format!(
                "check that the roles {} and {} exist and trust ecs-tasks.amazonaws.com ({bootstrap} restores them); a role created seconds ago can take a minute to be usable (IAM is eventually consistent)",
                names.execution_role, names.worker_role
            ),
        ),
        EcsProblem::SecretUnreadable { timed_out: true } => (
            "secret-unreadable",
            "ECS cannot read the API key secret for the worker",
            format!(
                "the task cannot reach Secrets Manager: its subnets need a route to the internet (public IP and an internet gateway route, or a NAT gateway or VPC endpoints); {bootstrap} repairs ecsctl's own network"
            ),
        ),
        EcsProblem::SecretUnreadable { timed_out: false } => (
            "secret-unreadable",
            "ECS cannot read the API key secret for the worker",
            format!(
                "check the execution role {} can read the secret {} (its inline policy must allow secretsmanager:GetSecretValue on the secret's ARN) and that the secret exists and is not scheduled for deletion; {bootstrap} repairs both",
                names.execution_role, names.secret
            ),
        ),
        EcsProblem::ImagePull { timed_out } => (
            "image-pull-failed",
            "ECS cannot pull the worker's image",
            format!(
                "check the image exists and is public (bootstrap with --image to change it), and that the subnets reach the internet{}",
                if timed_out { " (the message says the connection timed out)" } else { "" }
            ),
        ),
        EcsProblem::LogGroupUnusable => (
            "log-group-unusable",
            "ECS cannot write the worker's logs",
            format!(
                "check the log group {} exists and the execution role {} may write to it; {bootstrap} recreates both",
                names.log_group, names.execution_role
            ),
        ),
        EcsProblem::NetworkUnreachable => (
            "network-unreachable",
            "the worker's task cannot reach AWS or the internet",
            format!("the subnets need a route to the internet (public IP and an internet gateway route, or a NAT gateway); {bootstrap} repairs ecsctl's own network"),
        ),
        EcsProblem::NoCapacity => (
            "capacity-unavailable",
            "Fargate has no capacity for the worker's task right now",
            "ECS keeps retrying by itself; if it lasts, bootstrap with other subnets (--vpc-id, --subnet-ids) in other availability zones, or another --cpu/--memory size".into(),
        ),
        EcsProblem::OutOfMemory => (
            "out-of-memory",
            "the worker ran out of memory",
            format!("give it more: run {bootstrap} with a larger --memory (and --cpu if needed)"),
        ),
        EcsProblem::Unhealthy => (
            "container-unhealthy",
            "the worker container failed its health check",
            "see the worker's last log lines above".into(),
        ),
        EcsProblem::KeepsFailing => (
            "tasks-keep-failing",
            "ECS cannot keep the worker's tasks running",
            "see the stopped tasks and log lines above for why they stop".into(),
        ),
        EcsProblem::FailedToStart => (
            "task-failed-to-start",
            "ECS could not prepare the worker's task",
            "see the stopped reason above".into(),
        ),
    };
    Some(Cause {
        code,
        what: what.to_string(),
        fix,
    })
}

/// At most [`QUOTE_CHARS`] of an AWS message (the full text is in the report's other sections).
pub(super) fn quote(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= QUOTE_CHARS {
        text.to_string()
    } else {
        let cut: String = text.chars().take(QUOTE_CHARS).collect();
        format!("{cut}…")
    }
}
