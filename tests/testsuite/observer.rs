//! The observer chain against the emulator: what bootstrap builds (the queue, its dead-letter
//! queue and policy, the rule and its target), status naming each link someone breaks, bootstrap
//! mending them, and destroy with flow runs still running on the pool's cluster.

use aws_sdk_ecs::types::{AssignPublicIp, AwsVpcConfiguration, LaunchType, NetworkConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use crate::support::aws::REGION;
use crate::support::pool;
use crate::support::stack::Stack;

const ACCOUNT: &str = "123456789012";

async fn attributes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> std::collections::HashMap<String, String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_string(), v))
        .collect()
}

fn status_codes(s: &Stack, pool: &str) -> Vec<String> {
    let out = s
        .ecsctl
        .cmd(["status", "--pool", pool, "--output", "json"])
        .run();
    let report: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("status JSON ({e}):\n{}\n{}", out.stdout, out.stderr));
    report["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_builds_the_chain_status_names_each_broken_link_and_bootstrap_mends_it() {
    let s = Stack::start().await;
    let pool = "observed";
    s.bootstrap(pool, &[]).assert_success();
    let (sqs, events) = (&s.aws.sqs, &s.aws.events);
    let queue = pool::queue_url(&s.aws, "ecsctl-observed-task-events").await;
    let dead_letters = pool::queue_url(&s.aws, "ecsctl-observed-task-events-dlq").await;
    let rule_arn = format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/ecsctl-observed-task-state");
    let queue_arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:ecsctl-observed-task-events");

    // What was built.
    let attrs = attributes(sqs, &queue).await;
    assert_eq!(attrs["VisibilityTimeout"], "300");
    let redrive: Value = serde_json::from_str(&attrs["RedrivePolicy"]).unwrap();
    assert_eq!(redrive["maxReceiveCount"], 3);
    assert!(redrive["deadLetterTargetArn"]
        .as_str()
        .unwrap()
        .ends_with("ecsctl-observed-task-events-dlq"));
    let policy: Value = serde_json::from_str(&attrs["Policy"]).unwrap();
    for statement in policy["Statement"].as_array().unwrap() {
        assert_eq!(
            statement["Condition"]["ArnEquals"]["aws:SourceArn"],
            rule_arn.as_str(),
            "{policy:#}"
        );
        assert_eq!(statement["Principal"]["Service"], "events.amazonaws.com");
    }
    let rule = events
        .describe_rule()
        .name("ecsctl-observed-task-state")
        .send()
        .await
        .unwrap();
    assert_eq!(rule.state().map(|s| s.as_str()), Some("ENABLED"));
    let pattern: Value = serde_json::from_str(rule.event_pattern().unwrap()).unwrap();
    assert_eq!(
        pattern["detail-type"],
        serde_json::json!(["ECS Task State Change"])
    );
    assert_eq!(
        pattern["detail"]["clusterArn"],
        serde_json::json!([format!(
            "arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/ecsctl-observed"
        )])
    );
    let targets = events
        .list_targets_by_rule()
        .rule("ecsctl-observed-task-state")
        .send()
        .await
        .unwrap();
    let targeted: Vec<&str> = targets.targets().iter().map(|t| t.arn()).collect();
    assert_eq!(targeted, [queue_arn.as_str()]);
    assert!(!status_codes(&s, pool)
        .iter()
        .any(|c| c.starts_with("observer-")));

    // Someone breaks every link.
    events
        .disable_rule()
        .name("ecsctl-observed-task-state")
        .send()
        .await
        .unwrap();
    events
        .remove_targets()
        .rule("ecsctl-observed-task-state")
        .ids("ecsctl-observer-queue")
        .send()
        .await
        .unwrap();
    let widened = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": queue_arn }]
    });
    sqs.set_queue_attributes()
        .queue_url(&queue)
        .attributes(QueueAttributeName::Policy, widened.to_string())
        .send()
        .await
        .unwrap();
    sqs.send_message()
        .queue_url(&dead_letters)
        .message_body(r#"{"detail-type":"ECS Task State Change"}"#)
        .send()
        .await
        .unwrap();
    let codes = status_codes(&s, pool);
    for code in [
        "observer-rule-disabled",
        "observer-rule-target",
        "observer-queue-policy",
        "observer-dead-letters",
    ] {
        assert!(
            codes.iter().any(|c| c == code),
            "{code} missing from {codes:?}"
        );
    }

    // Bootstrap puts the chain back (the dead letter stays for a person to read).
    s.clear_calls();
    s.bootstrap(pool, &[]).assert_success();
    let mutating = s.mutating_actions();
    for action in ["PutRule", "PutTargets", "SetQueueAttributes"] {
        assert!(
            mutating.iter().any(|a| a == action),
            "{action} not in {mutating:?}"
        );
    }
    let codes = status_codes(&s, pool);
    assert!(
        codes.iter().any(|c| c == "observer-dead-letters"),
        "{codes:?}"
    );
    assert!(
        !codes
            .iter()
            .any(|c| c.starts_with("observer-") && c != "observer-dead-letters"),
        "{codes:?}"
    );
    s.destroy(pool, &[]).assert_success();
    assert!(sqs
        .get_queue_url()
        .queue_name("ecsctl-observed-task-events")
        .send()
        .await
        .is_err());
    assert!(events
        .describe_rule()
        .name("ecsctl-observed-task-state")
        .send()
        .await
        .is_err());
}

/// Starts a flow-run-like task on the pool's cluster, as the worker would (RunTask, not the
/// service), with the pool's network.
async fn run_flow_task(s: &Stack, pool: &str) -> String {
    let ecs = &s.aws.ecs;
    let service = ecs
        .describe_services()
        .cluster(format!("ecsctl-{pool}"))
        .services(format!("ecsctl-{pool}-worker"))
        .send()
        .await
        .unwrap();
    let network = service.services()[0]
        .network_configuration()
        .unwrap()
        .clone();
    let vpc = network.awsvpc_configuration().unwrap();
    let task = ecs
        .run_task()
        .cluster(format!("ecsctl-{pool}"))
        .task_definition(format!("ecsctl-{pool}-worker"))
        .launch_type(LaunchType::Fargate)
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(
                    AwsVpcConfiguration::builder()
                        .set_subnets(Some(vpc.subnets().to_vec()))
                        .set_security_groups(Some(vpc.security_groups().to_vec()))
                        .assign_public_ip(AssignPublicIp::Enabled)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .expect("RunTask through the emulator's wrapper");
    task.tasks()[0].task_arn().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_refuses_while_flow_runs_run_and_stops_them_with_the_flag() {
    let s = Stack::start().await;
    let before = s.inventory().await;
    let pool = "running-flows";
    s.bootstrap(pool, &[]).assert_success();
    let task = run_flow_task(&s, pool).await;
    let task_id = task.rsplit('/').next().unwrap();

    // CI (no terminal): fail fast, nothing deleted, the task and the flag named.
    s.clear_calls();
    let refused = s.destroy(pool, &[]);
    refused.assert_code(1);
    assert!(refused.stderr.contains(task_id), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--stop-flow-runs"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        s.mutating_actions(),
        Vec::<String>::new(),
        "nothing deleted"
    );

    let stopped = s.destroy(pool, &["--stop-flow-runs"]);
    stopped.assert_success();
    let described = s
        .aws
        .ecs
        .describe_tasks()
        .cluster(format!("ecsctl-{pool}"))
        .tasks(&task)
        .send()
        .await
        .unwrap();
    let status = described
        .tasks()
        .first()
        .and_then(|t| t.last_status().map(str::to_string));
    assert!(
        status.is_none() || status.as_deref() == Some("STOPPED"),
        "the flow run's task is {status:?}"
    );
    s.destroy_all_and_assert_unchanged(&[], &before).await;
}
