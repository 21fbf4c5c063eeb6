//! The worker service's tasks, running and stopped, as ECS describes them: destroy waits on the
//! ones still stopping, status reads the newest one's log stream.

use anyhow::Result;
use aws_sdk_ecs::types::{DesiredStatus, Task};

use crate::aws::AwsResultExt;
use crate::steps::Context;

/// A purged service (gone for good, or never there) has no tasks.
const GONE: &[&str] = &["ServiceNotFoundException", "ClusterNotFoundException"];

/// The service's tasks: running, starting, stopping and recently stopped (ECS lists stopped
/// tasks for about an hour); the first page of each, which holds the newest.
pub(super) async fn service_tasks(cx: &Context) -> Result<Vec<Task>> {
    let (cluster, name) = (&cx.names.cluster, &cx.names.service);
    let list = |status: DesiredStatus| async move {
        let listed = cx
            .aws
            .ecs
            .list_tasks()
            .cluster(cluster)
            .service_name(name)
            .desired_status(status)
            .send()
            .await
            .found(GONE, format!("listing the tasks of ECS service {name}"))?;
        anyhow::Ok(listed.map(|l| l.task_arns().to_vec()).unwrap_or_default())
    };
    // A task being stopped is listed as desired STOPPED; one starting or running, as RUNNING.
    let (stopped, running) =
        tokio::try_join!(list(DesiredStatus::Stopped), list(DesiredStatus::Running))?;
    let arns: Vec<String> = running.into_iter().chain(stopped).collect();
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    // DescribeTasks takes at most 100 tasks; ListTasks pages hold at most 100 each.
    let described = futures::future::try_join_all(arns.chunks(100).map(|chunk| {
        cx.aws
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
    }))
    .await
    .aws(format!("describing the tasks of ECS service {name}"))?;
    // The group names the service's own tasks (an emulator may list others).
    let group = format!("service:{name}");
    Ok(described
        .iter()
        .flat_map(|d| d.tasks())
        .filter(|t| t.group() == Some(group.as_str()))
        .cloned()
        .collect())
}

/// A task's id: the last part of its ARN.
pub fn task_id(task: &Task) -> &str {
    task.task_arn()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or("?")
}

/// The service's tasks, newest first by when ECS created them (which is what says which task is
/// the newest: its log stream may not exist yet, and CloudWatch updates a stream's last event
/// time up to an hour late).
pub async fn tasks_newest_first(cx: &Context) -> Result<Vec<Task>> {
    let mut tasks = service_tasks(cx).await?;
    tasks.sort_by_key(|t| {
        std::cmp::Reverse(t.created_at().map(|at| (at.secs(), at.subsec_nanos())))
    });
    Ok(tasks)
}
