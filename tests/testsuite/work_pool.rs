//! The `work-pool` step against a real Prefect server: the ECS work pool ecsctl creates (or, when
//! the pool is someone else's, the defaults it sets in it), re-runs that write nothing, a pool of
//! another type, and what destroy leaves in Prefect.

use serde_json::{json, Value};

use crate::support::pool;
use crate::support::proxy::Fault;
use crate::support::stack::Stack;

/// The variables whose defaults ecsctl owns in a pool's base job template.
const OWNED: [&str; 13] = [
    "cluster",
    "vpc_id",
    "network_configuration",
    "execution_role_arn",
    "task_role_arn",
    "prefect_api_key_secret_arn",
    "prefect_api_auth_string_secret_arn",
    "configure_cloudwatch_logs",
    "cloudwatch_logs_options",
    "launch_type",
    "capacity_provider_strategy",
    "match_latest_revision_in_family",
    "labels",
];

/// `variables.properties.<name>.default` of a pool's template (`Value::Null` when absent).
fn default_of<'a>(pool: &'a Value, name: &str) -> &'a Value {
    &pool["base_job_template"]["variables"]["properties"][name]["default"]
}

/// The template without the defaults ecsctl owns: what must be the same before and after ecsctl.
fn without_owned_defaults(template: &Value) -> Value {
    let mut template = template.clone();
    for name in OWNED {
        if let Some(Value::Object(variable)) =
            template.pointer_mut(&format!("/variables/properties/{name}"))
        {
            variable.remove("default");
        }
    }
    template
}

/// The ledger's entries of one list (`created` or `used`) as `(kind, id)`.
fn ledger_entries(s: &Stack, pool: &str, list: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(s.ledger(pool)).expect("the pool's ledger");
    let ledger: Value = serde_json::from_str(&text).expect("a JSON ledger");
    ledger[list]
        .as_array()
        .unwrap_or_else(|| panic!("ledger has no {list} list: {text}"))
        .iter()
        .map(|entry| {
            (
                entry["kind"].as_str().unwrap_or_default().to_owned(),
                entry["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Asserts the pool's defaults send flow runs to this stack, and that its job configuration
/// uses each of them (a default nothing references would change nothing).
fn assert_points_at(pool_json: &Value, facts: &pool::StackIds, pool: &str) {
    let default = |name| default_of(pool_json, name);
    assert_eq!(default("cluster"), &json!(facts.cluster_arn));
    assert_eq!(default("vpc_id"), &json!(facts.vpc_id));
    let network = default("network_configuration");
    let mut subnets: Vec<String> = network["subnets"]
        .as_array()
        .unwrap_or_else(|| panic!("network_configuration without subnets: {network}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    subnets.sort();
    assert_eq!(subnets, facts.subnet_ids, "the pool's subnets");
    assert_eq!(
        network["securityGroups"],
        json!([facts.security_group_id]),
        "{network}"
    );
    assert_eq!(network["assignPublicIp"], "ENABLED", "{network}");
    assert_eq!(
        default("execution_role_arn"),
        &json!(facts.execution_role_arn)
    );
    assert_eq!(default("task_role_arn"), &json!(facts.flow_run_role_arn));
    assert_eq!(
        default("prefect_api_key_secret_arn"),
        &json!(facts.secret_arn)
    );
    assert_eq!(default("configure_cloudwatch_logs"), &json!(true));
    let logs = default("cloudwatch_logs_options");
    assert_eq!(
        logs["awslogs-group"],
        json!(format!("/ecsctl/{pool}/flow-runs")),
        "{logs}"
    );
    assert_eq!(logs["awslogs-region"], "us-east-1", "{logs}");
    // The execution role may not create log groups; the group is ecsctl's.
    assert_eq!(logs["awslogs-create-group"], "false", "{logs}");
    assert_eq!(default("match_latest_revision_in_family"), &json!(true));
    assert_eq!(default("labels"), &json!({ "ecsctl:pool": pool }));

    let job = pool_json["base_job_template"]["job_configuration"].to_string();
    for name in [
        "cluster",
        "vpc_id",
        "network_configuration",
        "execution_role_arn",
        "task_role_arn",
        "prefect_api_key_secret_arn",
        "configure_cloudwatch_logs",
        "cloudwatch_logs_options",
        "match_latest_revision_in_family",
        "labels",
    ] {
        assert!(
            job.contains(&format!("{{{{ {name} }}}}")),
            "the job configuration never uses {name}: {job}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_bootstrap_creates_an_ecs_pool_pointing_at_this_stack() {
    let s = Stack::start().await;
    let pool = "wp-new";
    assert_eq!(s.prefect.pool(pool).await, None);

    let out = s.bootstrap(pool, &[]);
    out.assert_success();
    assert_eq!(s.prefect_writes_done(), ["POST /api/work_pools/"]);
    assert!(
        out.stderr
            .contains(&format!("created Prefect work pool {pool}")),
        "{}",
        out.stderr
    );
    let created = s.prefect.pool(pool).await.expect("the work pool exists");
    assert_eq!(created["type"], "ecs");
    let facts = pool::stack_ids(&s.aws, pool).await;
    assert_points_at(&created, &facts, pool);
    assert!(
        ledger_entries(&s, pool, "created").contains(&("work-pool".into(), pool.into())),
        "the ledger records that ecsctl created the pool"
    );

    // Nothing to do the second time: no write to AWS or Prefect, and the plan agrees.
    s.clear_calls();
    s.bootstrap(pool, &[]).assert_success();
    assert_eq!(s.mutating_actions(), Vec::<String>::new());
    assert_eq!(s.prefect_writes(), Vec::<String>::new());
    let plan = s.bootstrap(pool, &["--dry-run"]);
    plan.assert_success();
    let line = plan
        .stdout
        .lines()
        .find(|l| l.contains("work-pool"))
        .unwrap_or_else(|| panic!("no work-pool line in the plan:\n{}", plan.stdout));
    assert!(
        line.trim_start().starts_with("= work-pool")
            && line.ends_with(&format!("in place ({pool})")),
        "a re-plan right after bootstrap must find the pool in place:\n{}",
        plan.stdout
    );
    assert_eq!(
        s.prefect.pool(pool).await.expect("still there")["base_job_template"],
        created["base_job_template"]
    );

    // status reads the pool and its workers, and writes nothing.
    s.clear_calls();
    let status = s.ecsctl.cmd(["status", "--pool", pool]).run();
    assert!(
        status
            .stdout
            .contains(&format!("Work pool {pool}: type ecs")),
        "{}",
        status.stdout
    );
    let read: Vec<String> = s.prefect_calls().into_iter().map(|c| c.action).collect();
    assert!(
        read.contains(&format!("POST /api/work_pools/{pool}/workers/filter")),
        "status lists the pool's workers: {read:?}"
    );
    assert_eq!(s.prefect_writes(), Vec::<String>::new());

    // destroy deletes the pool it created.
    s.clear_calls();
    s.destroy(pool, &[]).assert_success();
    assert_eq!(
        s.prefect_writes_done(),
        [format!("DELETE /api/work_pools/{pool}")]
    );
    assert_eq!(s.prefect.pool(pool).await, None, "the pool is gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_pool_gets_only_ecsctls_defaults_and_keeps_the_rest() {
    let s = Stack::start().await;
    let pool = "wp-users";
    // The user made the pool with Prefect's CLI and gave flow runs an environment of their own.
    let made = prefect_cli(&["work-pool", "create", pool, "--type", "ecs"]);
    assert!(made.status.success(), "prefect work-pool create: {made:?}");
    let mut template =
        s.prefect.pool(pool).await.expect("the user's pool")["base_job_template"].clone();
    template["variables"]["properties"]["env"]["default"] = json!({ "TEAM": "data" });
    template["variables"]["properties"]["cpu"]["default"] = json!(2048);
    s.prefect.set_template(pool, &template).await;
    let users = s.prefect.pool(pool).await.unwrap();

    s.bootstrap(pool, &[]).assert_success();
    assert_eq!(
        s.prefect_writes_done(),
        [format!("PATCH /api/work_pools/{pool}")]
    );
    let configured = s.prefect.pool(pool).await.unwrap();
    assert_eq!(
        configured["id"], users["id"],
        "the same pool, not a new one"
    );
    assert_points_at(&configured, &pool::stack_ids(&s.aws, pool).await, pool);
    assert_eq!(default_of(&configured, "env"), &json!({ "TEAM": "data" }));
    assert_eq!(default_of(&configured, "cpu"), &json!(2048));
    assert_eq!(
        without_owned_defaults(&configured["base_job_template"]),
        without_owned_defaults(&users["base_job_template"]),
        "only ecsctl's defaults changed"
    );
    assert!(ledger_entries(&s, pool, "used").contains(&("work-pool".into(), pool.into())));
    assert!(
        !ledger_entries(&s, pool, "created").contains(&("work-pool".into(), pool.into())),
        "ecsctl did not create the user's pool"
    );

    s.clear_calls();
    s.bootstrap(pool, &[]).assert_success();
    assert_eq!(s.mutating_actions(), Vec::<String>::new());
    assert_eq!(s.prefect_writes(), Vec::<String>::new());

    // destroy leaves the user's pool, taking out only what ecsctl put in.
    s.clear_calls();
    s.destroy(pool, &[]).assert_success();
    assert_eq!(
        s.prefect_writes_done(),
        [format!("PATCH /api/work_pools/{pool}")]
    );
    let left = s.prefect.pool(pool).await.expect("the user's pool stays");
    assert_eq!(left["id"], users["id"]);
    assert_eq!(left["type"], "ecs");
    for name in OWNED {
        assert_eq!(
            default_of(&left, name),
            &Value::Null,
            "ecsctl's default for {name} is removed"
        );
    }
    assert_eq!(
        without_owned_defaults(&left["base_job_template"]),
        without_owned_defaults(&users["base_job_template"]),
        "the user's template is as it was"
    );
    assert_eq!(default_of(&left, "env"), &json!({ "TEAM": "data" }));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_of_another_type_fails_clearly_and_nothing_is_created() {
    let s = Stack::start().await;
    let pool = "wp-process";
    let theirs = s.prefect.create_pool(pool, "process", None).await;
    let before = s.inventory().await;

    let out = s.bootstrap(pool, &[]);
    out.assert_code(1);
    for needle in [
        &format!("the Prefect work pool '{pool}' exists with type 'process'"),
        "a pool's type can never be changed",
        "Use another --pool",
    ] {
        assert!(
            out.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            out.stderr
        );
    }
    assert_eq!(s.stack_changes(), Vec::<String>::new());
    assert_eq!(s.prefect_writes(), Vec::<String>::new());
    before.assert_unchanged(&s.inventory().await);
    let after = s.prefect.pool(pool).await.expect("their pool stays");
    assert_eq!(after, theirs, "their pool is untouched");
}

/// Runs Prefect's CLI against the shared server and waits for it.
fn prefect_cli(args: &[&str]) -> std::process::Output {
    crate::support::prefect::server()
        .command("prefect")
        .args(args)
        .output()
        .expect("run prefect")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_changed_or_deleted_in_prefect_is_reported_and_put_back() {
    let s = Stack::start().await;
    let pool = "wp-drift";
    s.bootstrap(pool, &[]).assert_success();
    let made = s.prefect.pool(pool).await.expect("the work pool");

    // Someone points the pool's flow runs at another cluster in Prefect's UI.
    let mut template = made["base_job_template"].clone();
    template["variables"]["properties"]["cluster"]["default"] = json!("someone-elses-cluster");
    s.prefect.set_template(pool, &template).await;
    let status = s.ecsctl.cmd(["status", "--pool", pool]).run();
    status.assert_code(1);
    assert!(
        status
            .stdout
            .contains("defaults not pointing at this stack: cluster"),
        "{}",
        status.stdout
    );
    s.clear_calls();
    s.bootstrap(pool, &[]).assert_success();
    assert_eq!(
        s.prefect_writes_done(),
        [format!("PATCH /api/work_pools/{pool}")]
    );
    assert_eq!(s.stack_changes(), Vec::<String>::new());
    let fixed = s.prefect.pool(pool).await.expect("the work pool");
    assert_eq!(fixed["id"], made["id"], "the same pool, updated");
    assert_eq!(
        fixed["base_job_template"], made["base_job_template"],
        "ecsctl's defaults are back, nothing else changed"
    );

    // Someone deletes it: status names it missing, and the next bootstrap makes it again.
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{}/api/work_pools/{pool}",
            crate::support::prefect::server().url()
        ))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{deleted:?}");
    let report: Value = serde_json::from_str(
        &s.ecsctl
            .cmd(["status", "--pool", pool, "--output", "json"])
            .run()
            .stdout,
    )
    .expect("a JSON report");
    let work_pool = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["step"] == "work-pool")
        .unwrap_or_else(|| panic!("no work-pool resource: {report:#}"));
    assert_eq!(work_pool["state"], "missing", "{report:#}");
    s.clear_calls();
    s.bootstrap(pool, &[]).assert_success();
    assert_eq!(s.prefect_writes_done(), ["POST /api/work_pools/"]);
    let again = s.prefect.pool(pool).await.expect("made again");
    assert_points_at(&again, &pool::stack_ids(&s.aws, pool).await, pool);
}

#[tokio::test(flavor = "multi_thread")]
async fn prefect_failing_once_is_retried_and_refusing_fails_naming_the_step_until_a_re_run() {
    let s = Stack::start().await;

    // Every Prefect call of a first bootstrap fails once (a 500, then a 429): all retried.
    let pool = "wp-flaky";
    for index in 0..8 {
        let fault = if index % 2 == 0 {
            Fault::ServerError
        } else {
            Fault::Throttle
        };
        s.prefect_proxy.fail_nth(index * 2, fault);
    }
    s.bootstrap(pool, &[]).assert_success();
    let faulted = s
        .prefect_calls()
        .iter()
        .filter(|c| c.fault.is_some())
        .count();
    assert!(faulted >= 2, "only {faulted} Prefect calls were faulted");
    assert_eq!(
        s.prefect_writes()
            .iter()
            .filter(|w| *w == "POST /api/work_pools/")
            .count(),
        2,
        "the refused create and its retry: {:?}",
        s.prefect_writes()
    );
    assert_points_at(
        &s.prefect.pool(pool).await.expect("the work pool"),
        &pool::stack_ids(&s.aws, pool).await,
        pool,
    );

    // Prefect refuses the pool for good: the run fails naming the step and Prefect's answer,
    // everything in AWS is made and recorded, and a run without the fault finishes the job.
    let pool = "wp-refused";
    s.prefect_proxy.clear_faults();
    s.prefect_proxy
        .fail_action("POST /api/work_pools/", Fault::ServerError);
    let out = s.bootstrap(pool, &[]);
    out.assert_code(1);
    for needle in [
        "step work-pool",
        &format!("creating Prefect work pool {pool} failed: HTTP 500"),
        "Injected server error",
    ] {
        assert!(
            out.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            out.stderr
        );
    }
    assert_eq!(s.prefect.pool(pool).await, None);
    pool::assert_complete(&s.aws, &s.ecsctl.state_dir(), pool, "after Prefect refused").await;
    s.prefect_proxy.clear_faults();
    s.clear_calls();
    s.bootstrap(pool, &[]).assert_success();
    assert_eq!(s.stack_changes(), Vec::<String>::new());
    assert_eq!(s.prefect_writes_done(), ["POST /api/work_pools/"]);
    assert!(s.prefect.pool(pool).await.is_some());
}
