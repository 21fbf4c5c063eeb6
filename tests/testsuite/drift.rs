//! Drift a security reviewer would catch, set by hand with the SDK behind ecsctl's back: status
//! names it (which policy, which rule, which tag) in its JSON reasons, bootstrap repairs it on
//! ecsctl's own resources only, and a second bootstrap makes zero mutating calls. And a read that
//! fails is never taken for "no change".

use serde_json::Value;

use crate::support::cli::Output;
use crate::support::proxy::Fault;
use crate::support::stack::Stack;

/// `ecsctl status --output json` (the ledger gives the Prefect URL), parsed, with its exit code.
fn status_report(s: &Stack, pool: &str) -> (i32, Value) {
    let out = s
        .ecsctl
        .cmd(["status", "--pool", pool, "--output", "json"])
        .env("PREFECT_API_KEY", crate::support::prefect::API_KEY)
        .run();
    let report = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("status JSON does not parse ({e}):\n{}", out.stdout));
    (out.code.expect("exited"), report)
}

/// The messages of status's `drifted` reasons about `subject`.
fn drift_messages(report: &Value, subject: &str) -> Vec<String> {
    report["reasons"]
        .as_array()
        .expect("reasons array")
        .iter()
        .filter(|r| r["code"] == "drifted" && r["subject"] == subject)
        .map(|r| r["message"].as_str().expect("message").to_string())
        .collect()
}

/// A bootstrap with the same inputs, asserted to make no mutating AWS call.
fn assert_rerun_changes_nothing(s: &Stack, pool: &str, extra: &[&str]) {
    s.proxy.clear();
    let out = s.bootstrap(pool, extra);
    out.assert_success();
    assert_eq!(
        s.mutating_actions(),
        Vec::<String>::new(),
        "a second bootstrap must change nothing:\n{}",
        out.stderr
    );
    assert!(out.stdout.starts_with("No changes"), "{}", out.stdout);
}

fn assert_failed_naming(out: &Output, needles: &[&str]) {
    out.assert_code(1);
    for needle in needles {
        assert!(
            out.stderr.contains(needle),
            "the error does not say {needle:?}:\n{}",
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_that_cannot_be_read_is_not_taken_for_an_unchanged_key() {
    let s = Stack::start().await;
    s.bootstrap("unread", &[]).assert_success();
    let secret = "ecsctl/unread/prefect-api-key";

    // Denied, throttled past the retries, or a 5xx: bootstrap cannot know whether the key it
    // was given is the stored one. It says which secret and why, and changes nothing.
    for (fault, code) in [
        (Fault::AccessDenied, "AccessDeniedException"),
        (Fault::Throttle, "ThrottlingException"),
        (Fault::ServerError, "InternalFailure"),
    ] {
        s.proxy.clear();
        s.proxy.fail_action("GetSecretValue", fault);
        let out = s
            .bootstrap_cmd("unread", &[])
            .env("ECSCTL_MAX_ATTEMPTS", "2")
            .env("PREFECT_API_KEY", "pnu_rotated_but_unreadable_42")
            .run();
        assert_failed_naming(&out, &[secret, code, "cannot tell whether"]);
        assert!(!out.stdout.contains("No changes"), "{}", out.stdout);
        assert_eq!(s.mutating_actions(), Vec::<String>::new(), "{fault:?}");
        s.proxy.clear_faults();
    }

    // Once the read succeeds, the new key is stored.
    s.proxy.clear();
    s.bootstrap_cmd("unread", &[])
        .env("PREFECT_API_KEY", "pnu_rotated_but_unreadable_42")
        .run()
        .assert_success();
    assert!(s
        .mutating_actions()
        .contains(&"PutSecretValue".to_string()));
}

const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
const ESCALATE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}"#;

impl Stack {
    /// The id of the pool's security group, found by its name.
    async fn drift_group_id(&self, pool: &str) -> String {
        let groups = self
            .aws
            .ec2
            .describe_security_groups()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("group-name")
                    .values(format!("ecsctl-{pool}-worker"))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        groups.security_groups()[0].group_id().unwrap().to_string()
    }

    async fn drift_attached(&self, role: &str) -> Vec<String> {
        let attached = self
            .aws
            .iam
            .list_attached_role_policies()
            .role_name(role)
            .send()
            .await
            .unwrap();
        let mut arns: Vec<String> = attached
            .attached_policies()
            .iter()
            .map(|p| p.policy_arn().unwrap().to_string())
            .collect();
        arns.sort();
        arns
    }

    async fn drift_inline_names(&self, role: &str) -> Vec<String> {
        let listed = self
            .aws
            .iam
            .list_role_policies()
            .role_name(role)
            .send()
            .await
            .unwrap();
        listed.policy_names().to_vec()
    }

    async fn drift_execution_grant(&self, pool: &str) -> Value {
        let policy = self
            .aws
            .iam
            .get_role_policy()
            .role_name(format!("ecsctl-{pool}-execution"))
            .policy_name("ecsctl-read-prefect-api-key")
            .send()
            .await
            .unwrap();
        crate::support::iam::decode_policy(policy.policy_document())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn security_drift_is_reported_then_repaired_on_ecsctls_own_roles_and_group() {
    let s = Stack::start().await;
    let pool = "guard";
    let policy_arn = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess";
    let flow_args = ["--flow-run-policy-arn", policy_arn];
    s.bootstrap(pool, &flow_args).assert_success();
    let (worker, execution) = ("ecsctl-guard-worker", "ecsctl-guard-execution");
    let flow_run = "ecsctl-guard-use1-flow-run";
    let grant_before = s.drift_execution_grant(pool).await;
    let group = s.drift_group_id(pool).await;

    // Behind ecsctl's back: admin on the worker and execution roles, another policy on the
    // flow-run role, an inline iam:* on the worker, the secret grant widened to *, and SSH
    // opened on the security group.
    let iam = &s.aws.iam;
    for (role, arn) in [(worker, ADMIN), (execution, ADMIN), (flow_run, READ_ONLY)] {
        let attach = iam.attach_role_policy().role_name(role).policy_arn(arn);
        attach.send().await.unwrap();
    }
    let put = iam.put_role_policy().role_name(worker).policy_name("escalate");
    put.policy_document(ESCALATE).send().await.unwrap();
    let mut widened = grant_before.clone();
    widened["Statement"][0]["Resource"] = Value::from("*");
    let put = iam.put_role_policy().role_name(execution);
    put.policy_name("ecsctl-read-prefect-api-key")
        .policy_document(widened.to_string())
        .send()
        .await
        .unwrap();
    let ssh = aws_sdk_ec2::types::IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .ip_ranges(
            aws_sdk_ec2::types::IpRange::builder()
                .cidr_ip("0.0.0.0/0")
                .build(),
        )
        .build();
    let authorize = s.aws.ec2.authorize_security_group_ingress().group_id(&group);
    authorize.ip_permissions(ssh).send().await.unwrap();

    // Status names each: which policy, which rule.
    let (code, report) = status_report(&s, pool);
    assert_eq!(code, 1, "{report:#}");
    let worker_role = drift_messages(&report, worker).join("\n");
    for needle in [
        "managed policy AdministratorAccess",
        "detach AdministratorAccess from ecsctl-guard-worker",
        "inline policy escalate (allows iam:* on *)",
        "ingress tcp/22 from 0.0.0.0/0 is open",
    ] {
        assert!(worker_role.contains(needle), "{needle}:\n{report:#}");
    }
    let execution_role = drift_messages(&report, execution).join("\n");
    assert!(
        execution_role.contains("detach AdministratorAccess from ecsctl-guard-execution")
            && execution_role.contains("allows secretsmanager:GetSecretValue on *"),
        "{report:#}"
    );
    let flow = drift_messages(&report, flow_run).join("\n");
    assert!(flow.contains("detach ReadOnlyAccess from"), "{report:#}");

    // The plan says what bootstrap will remove before it does.
    let out = s.bootstrap(pool, &[&flow_args[..], &["--dry-run"]].concat());
    out.assert_success();
    for needle in [
        "detach AdministratorAccess from ecsctl-guard-worker",
        "delete inline policy escalate from ecsctl-guard-worker",
        "revoke ingress tcp/22 from 0.0.0.0/0 from ecsctl-guard-worker",
        "rewrite inline policy ecsctl-read-prefect-api-key of ecsctl-guard-execution",
        "detach ReadOnlyAccess from ecsctl-guard-use1-flow-run",
    ] {
        assert!(out.stdout.contains(needle), "{needle}:\n{}", out.stdout);
    }

    // Bootstrap restores exactly what ecsctl owns.
    s.proxy.clear();
    s.bootstrap(pool, &flow_args).assert_success();
    let mut mutating = s.mutating_actions();
    mutating.sort();
    assert_eq!(
        mutating,
        [
            "DeleteRolePolicy",
            "DetachRolePolicy",
            "DetachRolePolicy",
            "DetachRolePolicy",
            "PutRolePolicy",
            "RevokeSecurityGroupIngress"
        ]
    );
    assert_eq!(s.drift_attached(worker).await, Vec::<String>::new());
    assert_eq!(
        s.drift_attached(execution).await,
        ["arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"]
    );
    assert_eq!(s.drift_attached(flow_run).await, [policy_arn]);
    assert_eq!(
        s.drift_inline_names(worker).await,
        ["ecsctl-prefect-ecs-worker"]
    );
    assert_eq!(s.drift_execution_grant(pool).await, grant_before);
    let groups = s
        .aws
        .ec2
        .describe_security_groups()
        .group_ids(&group)
        .send()
        .await
        .unwrap();
    assert!(groups.security_groups()[0].ip_permissions().is_empty());

    assert_rerun_changes_nothing(&s, pool, &flow_args);
    let (_, report) = status_report(&s, pool);
    let drifted: Vec<&Value> = report["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["code"] == "drifted")
        .collect();
    assert!(drifted.is_empty(), "{drifted:#?}");
}
