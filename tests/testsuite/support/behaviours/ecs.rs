//! ECS as it is while tasks run, fail and stop. The emulator never runs a task: its services
//! report a first deployment IN_PROGRESS forever and list no tasks. These behaviours make its
//! answers about one pool's worker service (cluster `ecsctl-P`, service `ecsctl-P-worker`) look
//! like AWS's at a given moment.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;
use serde_json::{json, Value};

use super::super::proxy::{Answer, Behaviour, Exchange};

const ACCOUNT_REGION: &str = "us-east-1:123456789012";
/// The circuit breaker's reason for a failed deployment, as ECS words it.
pub const CIRCUIT_BREAKER: &str = "ECS deployment circuit breaker: tasks failed to start.";

/// An awsJson answer with `body`, as ECS gives it.
pub fn ecs_answer(body: &Value) -> Answer {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    Answer {
        status: StatusCode::OK,
        headers,
        body: Bytes::from(body.to_string()),
    }
}

/// Now, as ECS writes times in JSON (seconds since the epoch).
pub fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs_f64()
}

/// The names ECS knows one pool's worker by.
#[derive(Clone)]
pub struct Worker {
    pub cluster: String,
    pub service: String,
}

impl Worker {
    pub fn of(pool: &str) -> Worker {
        Worker {
            cluster: format!("ecsctl-{pool}"),
            service: format!("ecsctl-{pool}-worker"),
        }
    }

    /// A task ARN in the pool's cluster (the long ARN format, as AWS uses today).
    pub fn task_arn(&self, id: &str) -> String {
        format!("arn:aws:ecs:{ACCOUNT_REGION}:task/{}/{id}", self.cluster)
    }

    fn is_service_request(&self, request: &Exchange) -> bool {
        let body = request.json();
        let named = |v: &Value| {
            v.as_str()
                .is_some_and(|s| s == self.service || s.ends_with(&format!("/{}", self.service)))
        };
        named(&body["service"])
            || named(&body["serviceName"])
            || body["services"]
                .as_array()
                .is_some_and(|s| s.iter().any(named))
    }

    /// A task of the worker's service (group `service:<name>`), described as ECS does.
    pub fn task(&self, id: &str, last_status: &str, created_at: f64) -> Value {
        json!({
            "taskArn": self.task_arn(id),
            "clusterArn": format!("arn:aws:ecs:{ACCOUNT_REGION}:cluster/{}", self.cluster),
            "group": format!("service:{}", self.service),
            "launchType": "FARGATE",
            "lastStatus": last_status,
            "desiredStatus": if last_status == "RUNNING" { "RUNNING" } else { "STOPPED" },
            "createdAt": created_at,
            "startedAt": created_at + 20.0,
            "containers": [{ "name": "prefect-worker", "lastStatus": last_status }],
        })
    }
}

/// The task ARNs a DescribeTasks (or StopTask) asks about.
pub fn tasks_asked(request: &Exchange) -> BTreeSet<String> {
    let body = request.json();
    let many = body["tasks"].as_array().cloned().unwrap_or_default();
    many.into_iter()
        .chain([body["task"].clone()])
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect()
}

/// DescribeTasks's answer: `tasks`, all of them asked for.
pub fn described(tasks: Vec<Value>) -> Answer {
    ecs_answer(&json!({ "tasks": tasks, "failures": [] }))
}

/// After a fresh service's tasks fail to start (IAM not yet propagated, an image that cannot be
/// pulled), the deployment circuit breaker marks its first deployment FAILED; with nothing to roll
/// back to, ECS stops launching tasks and the service stays at 0 running
/// (<https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-circuit-breaker.html>).
/// The failed task is listed as stopped with ECS's `stopped_reason` for it. A forced new
/// deployment (UpdateService with `forceNewDeployment`) ends the failure: with
/// [`FailingDeployment::then_steady`] the new deployment completes with every task running (the
/// cause healed, as IAM does); otherwise the emulator's own answers (a deployment in progress)
/// come back.
pub struct FailingDeployment {
    worker: Worker,
    stopped_reason: &'static str,
    steady_after_force: bool,
    state: Mutex<Failing>,
}

#[derive(Default)]
struct Failing {
    /// Waiting for the next UpdateService: the deployment it starts is the one that fails.
    waiting: bool,
    forced: bool,
    /// When the failed task stopped: the first time anyone looked.
    stopped_at: Option<f64>,
}

impl FailingDeployment {
    pub fn new(pool: &str, stopped_reason: &'static str) -> FailingDeployment {
        FailingDeployment {
            worker: Worker::of(pool),
            stopped_reason,
            steady_after_force: false,
            state: Mutex::default(),
        }
    }

    /// Fails the deployment the next UpdateService starts, not the one there now.
    pub fn failing_the_next_update(self) -> FailingDeployment {
        self.state.lock().expect("failing deployment state").waiting = true;
        self
    }

    fn waiting(&self) -> bool {
        self.state.lock().expect("failing deployment state").waiting
    }

    /// After a forced new deployment, every task runs.
    pub fn then_steady(mut self) -> FailingDeployment {
        self.steady_after_force = true;
        self
    }

    fn stopped_task(&self) -> Value {
        let stopped_at = *self
            .state
            .lock()
            .expect("failing deployment state")
            .stopped_at
            .get_or_insert_with(epoch_now);
        let mut task = self.worker.task("f00dfeed", "STOPPED", stopped_at - 30.0);
        task["stoppedAt"] = json!(stopped_at);
        task["stopCode"] = json!("TaskFailedToStart");
        task["stoppedReason"] = json!(self.stopped_reason);
        task
    }

    fn rewrite_service(&self, service: &mut Value, forced: bool) {
        let desired = service["desiredCount"].clone();
        let (running, state, reason) = match (forced, self.steady_after_force) {
            (false, _) => (json!(0), "FAILED", CIRCUIT_BREAKER),
            (true, true) => (desired.clone(), "COMPLETED", "ECS deployment completed."),
            (true, false) => return,
        };
        service["runningCount"] = running.clone();
        service["pendingCount"] = json!(0);
        for d in service["deployments"].as_array_mut().into_iter().flatten() {
            if d["status"] == "PRIMARY" {
                d["runningCount"] = running.clone();
                d["pendingCount"] = json!(0);
                d["rolloutState"] = json!(state);
                d["rolloutStateReason"] = json!(reason);
                if !forced {
                    d["failedTasks"] = json!(3);
                }
            }
        }
        if !forced {
            let event = json!({
                "id": "failing-deployment",
                "createdAt": epoch_now(),
                "message": format!("(service {}) deployment failed: tasks failed to start.", self.worker.service),
            });
            let events = service["events"].as_array().cloned().unwrap_or_default();
            service["events"] = Value::Array([vec![event], events].concat());
        }
    }
}

impl Behaviour for FailingDeployment {
    fn name(&self) -> &'static str {
        "failing-deployment"
    }

    fn answer(&self, request: &Exchange) -> Option<Answer> {
        if self.waiting() {
            return None;
        }
        match request.action.as_str() {
            "ListTasks"
                if self.worker.is_service_request(request)
                    && request.json()["desiredStatus"] == "STOPPED" =>
            {
                let arn = self.worker.task_arn("f00dfeed");
                Some(ecs_answer(&json!({ "taskArns": [arn] })))
            }
            "DescribeTasks" if tasks_asked(request).contains(&self.worker.task_arn("f00dfeed")) => {
                Some(described(vec![self.stopped_task()]))
            }
            _ => None,
        }
    }

    fn rewrite(&self, request: &Exchange, answer: &mut Answer) {
        if !answer.status.is_success() || !self.worker.is_service_request(request) {
            return;
        }
        let mut state = self.state.lock().expect("failing deployment state");
        match request.action.as_str() {
            "UpdateService" if state.waiting => state.waiting = false,
            "UpdateService" if request.json()["forceNewDeployment"] == true => {
                state.forced = true;
            }
            _ if state.waiting => {}
            "DescribeServices" => {
                let forced = state.forced;
                drop(state);
                let mut body = answer.json();
                for service in body["services"].as_array_mut().into_iter().flatten() {
                    if service["serviceName"] == self.worker.service.as_str() {
                        self.rewrite_service(service, forced);
                    }
                }
                answer.set_json(&body);
            }
            _ => {}
        }
    }
}

/// The worker service's tasks as ECS lists them while it runs: one task running now and the one
/// it replaced, stopped a minute ago (ECS lists stopped tasks for about an hour). Nothing else.
pub struct WorkerTasks {
    worker: Worker,
    pub running: &'static str,
    pub stopped: &'static str,
    started: f64,
}

impl WorkerTasks {
    pub fn new(pool: &str, running: &'static str, stopped: &'static str) -> WorkerTasks {
        WorkerTasks {
            worker: Worker::of(pool),
            running,
            stopped,
            started: epoch_now(),
        }
    }

    fn tasks(&self) -> Vec<Value> {
        let mut old = self
            .worker
            .task(self.stopped, "STOPPED", self.started - 3600.0);
        old["stoppedAt"] = json!(self.started - 60.0);
        old["stopCode"] = json!("ServiceSchedulerInitiated");
        old["stoppedReason"] = json!("Task replaced by a new deployment");
        let new = self
            .worker
            .task(self.running, "RUNNING", self.started - 90.0);
        vec![new, old]
    }
}

impl Behaviour for WorkerTasks {
    fn name(&self) -> &'static str {
        "worker-tasks"
    }

    fn answer(&self, request: &Exchange) -> Option<Answer> {
        match request.action.as_str() {
            "ListTasks" if self.worker.is_service_request(request) => {
                let id = match request.json()["desiredStatus"].as_str() {
                    Some("STOPPED") => self.stopped,
                    _ => self.running,
                };
                let arns = [self.worker.task_arn(id)];
                Some(ecs_answer(&json!({ "taskArns": arns })))
            }
            "DescribeTasks" => {
                let asked = tasks_asked(request);
                let tasks: Vec<Value> = self
                    .tasks()
                    .into_iter()
                    .filter(|t| t["taskArn"].as_str().is_some_and(|a| asked.contains(a)))
                    .collect();
                (!tasks.is_empty()).then(|| described(tasks))
            }
            _ => None,
        }
    }
}
