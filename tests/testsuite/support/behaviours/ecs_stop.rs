//! ECS while a pool is torn down: tasks outlive their deleted service, a flow run keeps the
//! cluster, a deleted service is purged. The emulator has no tasks for a service, deletes a
//! cluster whatever runs in it, and keeps deleted services forever.

use std::sync::Mutex;

use serde_json::{json, Value};

use super::super::proxy::{Answer, Behaviour, Exchange};
use super::ecs::{described, ecs_answer, epoch_now, tasks_asked, Worker};

/// After DeleteService, ECS reports the service INACTIVE while its tasks are still STOPPING:
/// stopping a Fargate task takes up to the container's stop timeout (30 s by default) plus
/// releasing its network interface
/// (<https://docs.aws.amazon.com/AmazonECS/latest/developerguide/delete-service.html>: "tasks
/// … transition to the STOPPED state"). Here the worker's one task stays STOPPING for the next
/// `describes` DescribeTasks answers about it, then is STOPPED.
pub struct TasksOutliveService {
    worker: Worker,
    state: Mutex<Outliving>,
}

struct Outliving {
    deleted: bool,
    stopping_left: usize,
    created_at: f64,
}

const WORKER_TASK: &str = "5e1f0b0e";

impl TasksOutliveService {
    pub fn new(pool: &str, describes: usize) -> TasksOutliveService {
        TasksOutliveService {
            worker: Worker::of(pool),
            state: Mutex::new(Outliving {
                deleted: false,
                stopping_left: describes,
                created_at: epoch_now() - 600.0,
            }),
        }
    }
}

impl Behaviour for TasksOutliveService {
    fn name(&self) -> &'static str {
        "tasks-outlive-service"
    }

    fn answer(&self, request: &Exchange) -> Option<Answer> {
        let mut state = self.state.lock().expect("tasks-outlive-service state");
        match request.action.as_str() {
            "DeleteService" => state.deleted = true,
            _ if !state.deleted => {}
            "ListTasks" if request.json()["serviceName"] == self.worker.service.as_str() => {
                let arns = match request.json()["desiredStatus"].as_str() {
                    Some("STOPPED") => vec![self.worker.task_arn(WORKER_TASK)],
                    _ => vec![],
                };
                return Some(ecs_answer(&json!({ "taskArns": arns })));
            }
            "DescribeTasks"
                if tasks_asked(request).contains(&self.worker.task_arn(WORKER_TASK)) =>
            {
                let status = if state.stopping_left > 0 {
                    state.stopping_left -= 1;
                    "STOPPING"
                } else {
                    "STOPPED"
                };
                let task = self.worker.task(WORKER_TASK, status, state.created_at);
                return Some(described(vec![task]));
            }
            _ => {}
        }
        None
    }
}

/// A flow run the worker started after destroy looked for running flow runs (or one destroy
/// was not told to stop): AWS refuses to delete a cluster with running tasks
/// (`ClusterContainsTasksException`,
/// <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeleteCluster.html>) for as
/// long as the flow run runs, which can be hours. It shows once the worker's service is deleted
/// and runs until StopTask stops it.
pub struct FlowRunArrives {
    worker: Worker,
    state: Mutex<Arriving>,
}

#[derive(Default)]
struct Arriving {
    arrived: bool,
    stopped: bool,
}

pub const FLOW_RUN_TASK: &str = "f10a7e55";
pub const FLOW_RUN_ID: &str = "0e6a4f4c-1111-4222-8333-944455556666";

impl FlowRunArrives {
    pub fn new(pool: &str) -> FlowRunArrives {
        FlowRunArrives {
            worker: Worker::of(pool),
            state: Mutex::default(),
        }
    }

    fn task(&self, stopped: bool) -> Value {
        let mut task = self.worker.task(
            FLOW_RUN_TASK,
            if stopped { "STOPPED" } else { "RUNNING" },
            epoch_now() - 60.0,
        );
        task["group"] = json!("family:prefect-flow");
        task["tags"] = json!([{ "key": "prefect.io/flow-run-id", "value": FLOW_RUN_ID }]);
        task
    }
}

impl Behaviour for FlowRunArrives {
    fn name(&self) -> &'static str {
        "flow-run-arrives"
    }

    fn answer(&self, request: &Exchange) -> Option<Answer> {
        let mut state = self.state.lock().expect("flow-run-arrives state");
        let arn = self.worker.task_arn(FLOW_RUN_TASK);
        let running = state.arrived && !state.stopped;
        let body = request.json();
        match request.action.as_str() {
            "DeleteService" => state.arrived = true,
            "ListTasks" if running && body["serviceName"].is_null() => {
                let listed = body["desiredStatus"] != "STOPPED";
                let arns = if listed { vec![arn] } else { vec![] };
                return Some(ecs_answer(&json!({ "taskArns": arns })));
            }
            "DescribeTasks" if state.arrived && tasks_asked(request).contains(&arn) => {
                return Some(described(vec![self.task(state.stopped)]));
            }
            "StopTask" if state.arrived && tasks_asked(request).contains(&arn) => {
                state.stopped = true;
                return Some(ecs_answer(&json!({ "task": self.task(true) })));
            }
            "DeleteCluster" if running => {
                return Some(request.error(
                    400,
                    "ClusterContainsTasksException",
                    "The Cluster cannot be deleted while Tasks are active.",
                ));
            }
            _ => {}
        }
        None
    }
}

/// Some time after DeleteService, ECS purges the INACTIVE service: DescribeServices then lists it
/// among `failures` as MISSING, and calls naming it (ListTasks by `serviceName`, UpdateService,
/// DeleteService) answer `ServiceNotFoundException`. Here that happens at once.
pub struct ServicePurged {
    worker: Worker,
    deleted: Mutex<bool>,
}

impl ServicePurged {
    pub fn new(pool: &str) -> ServicePurged {
        ServicePurged {
            worker: Worker::of(pool),
            deleted: Mutex::new(false),
        }
    }
}

impl Behaviour for ServicePurged {
    fn name(&self) -> &'static str {
        "service-purged"
    }

    fn answer(&self, request: &Exchange) -> Option<Answer> {
        let mut deleted = self.deleted.lock().expect("service-purged state");
        let named = request.json()["serviceName"] == self.worker.service.as_str()
            || request.json()["service"] == self.worker.service.as_str();
        match request.action.as_str() {
            "DeleteService" if !*deleted => *deleted = true,
            _ if !*deleted => {}
            "DescribeServices" => {
                let arn = format!(
                    "arn:aws:ecs:us-east-1:123456789012:service/{}/{}",
                    self.worker.cluster, self.worker.service
                );
                let missing =
                    json!({ "services": [], "failures": [{ "arn": arn, "reason": "MISSING" }] });
                return Some(ecs_answer(&missing));
            }
            "ListTasks" | "UpdateService" | "DeleteService" if named => {
                return Some(request.error(400, "ServiceNotFoundException", "Service not found."));
            }
            _ => {}
        }
        None
    }
}
