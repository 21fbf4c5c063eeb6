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
    assert!(s.mutating_actions().contains(&"PutSecretValue".to_string()));
}

const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";
const ESCALATE: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}"#;

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
            .role_name(format!("ecsctl-{pool}-use1-execution"))
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
    let (worker, execution) = ("ecsctl-guard-use1-worker", "ecsctl-guard-use1-execution");
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
    let put = iam
        .put_role_policy()
        .role_name(worker)
        .policy_name("escalate");
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
    let authorize = s
        .aws
        .ec2
        .authorize_security_group_ingress()
        .group_id(&group);
    authorize.ip_permissions(ssh).send().await.unwrap();

    // Status names each: which policy, which rule.
    let (code, report) = status_report(&s, pool);
    assert_eq!(code, 1, "{report:#}");
    // The role and the security group (named after the worker, without the region code).
    let worker_role = [worker, "ecsctl-guard-worker"]
        .map(|name| drift_messages(&report, name).join("\n"))
        .join("\n");
    for needle in [
        "managed policy AdministratorAccess",
        "detach AdministratorAccess from ecsctl-guard-use1-worker",
        "inline policy escalate (allows iam:* on *)",
        "ingress tcp/22 from 0.0.0.0/0 is open",
    ] {
        assert!(worker_role.contains(needle), "{needle}:\n{report:#}");
    }
    let execution_role = drift_messages(&report, execution).join("\n");
    assert!(
        execution_role.contains("detach AdministratorAccess from ecsctl-guard-use1-execution")
            && execution_role.contains("allows secretsmanager:GetSecretValue on *"),
        "{report:#}"
    );
    let flow = drift_messages(&report, flow_run).join("\n");
    assert!(flow.contains("detach ReadOnlyAccess from"), "{report:#}");

    // The plan says what bootstrap will remove before it does.
    let out = s.bootstrap(pool, &[&flow_args[..], &["--dry-run"]].concat());
    out.assert_success();
    for needle in [
        "detach AdministratorAccess from ecsctl-guard-use1-worker",
        "delete inline policy escalate from ecsctl-guard-use1-worker",
        "revoke ingress tcp/22 from 0.0.0.0/0 from ecsctl-guard-worker",
        "rewrite inline policy ecsctl-read-prefect-api-key of ecsctl-guard-use1-execution",
        "detach ReadOnlyAccess from ecsctl-guard-use1-flow-run",
    ] {
        assert!(out.stdout.contains(needle), "{needle}:\n{}", out.stdout);
    }

    // Bootstrap restores exactly what ecsctl owns.
    s.proxy.clear();
    s.bootstrap(pool, &flow_args).assert_success();
    let mut mutating = s.stack_changes();
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

type Tags = std::collections::BTreeMap<String, String>;

fn tag_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Tags {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Stack {
    /// The tags of every resource ecsctl tags for the pool, read with the SDK, by what it is.
    async fn drift_all_tags(&self, pool: &str) -> Vec<(String, Tags)> {
        let aws = &self.aws;
        let mut all = Vec::new();
        let secret = aws.secrets.describe_secret();
        let secret = secret.secret_id(format!("ecsctl/{pool}/prefect-api-key"));
        let secret = secret.send().await.unwrap();
        let pairs = secret
            .tags()
            .iter()
            .map(|t| (t.key().unwrap(), t.value().unwrap()));
        all.push(("secret".to_string(), tag_map(pairs)));
        for group in ["worker", "flow-runs"] {
            let arn =
                format!("arn:aws:logs:us-east-1:123456789012:log-group:/ecsctl/{pool}/{group}");
            let tags = aws.logs.list_tags_for_resource().resource_arn(arn);
            let tags = tags
                .send()
                .await
                .unwrap()
                .tags()
                .cloned()
                .unwrap_or_default();
            all.push((format!("log group {group}"), tags.into_iter().collect()));
        }
        for role in ["use1-worker", "use1-execution", "use1-flow-run"] {
            let got = aws
                .iam
                .get_role()
                .role_name(format!("ecsctl-{pool}-{role}"));
            let got = got.send().await.unwrap();
            let pairs = got
                .role()
                .unwrap()
                .tags()
                .iter()
                .map(|t| (t.key(), t.value()));
            all.push((format!("role {role}"), tag_map(pairs)));
        }
        let filter = aws_sdk_ec2::types::Filter::builder()
            .name("tag:ecsctl:pool")
            .values(pool)
            .build();
        let ec2 = |kind: &str, tags: &[aws_sdk_ec2::types::Tag]| {
            let pairs = tags.iter().map(|t| (t.key().unwrap(), t.value().unwrap()));
            (kind.to_string(), tag_map(pairs))
        };
        let vpcs = aws
            .ec2
            .describe_vpcs()
            .filters(filter.clone())
            .send()
            .await
            .unwrap();
        all.extend(vpcs.vpcs().iter().map(|v| ec2("vpc", v.tags())));
        let subnets = aws
            .ec2
            .describe_subnets()
            .filters(filter.clone())
            .send()
            .await
            .unwrap();
        all.extend(subnets.subnets().iter().map(|v| ec2("subnet", v.tags())));
        let igws = aws.ec2.describe_internet_gateways().filters(filter.clone());
        let igws = igws.send().await.unwrap();
        all.extend(
            igws.internet_gateways()
                .iter()
                .map(|v| ec2("internet gateway", v.tags())),
        );
        let tables = aws
            .ec2
            .describe_route_tables()
            .filters(filter.clone())
            .send()
            .await
            .unwrap();
        all.extend(
            tables
                .route_tables()
                .iter()
                .map(|v| ec2("route table", v.tags())),
        );
        let groups = aws
            .ec2
            .describe_security_groups()
            .filters(filter)
            .send()
            .await
            .unwrap();
        all.extend(
            groups
                .security_groups()
                .iter()
                .map(|v| ec2("security group", v.tags())),
        );
        let ecs_tags = |kind: &str, tags: &[aws_sdk_ecs::types::Tag]| {
            let pairs = tags.iter().map(|t| (t.key().unwrap(), t.value().unwrap()));
            (kind.to_string(), tag_map(pairs))
        };
        let cluster = aws
            .ecs
            .describe_clusters()
            .clusters(format!("ecsctl-{pool}"));
        let cluster = cluster.include(aws_sdk_ecs::types::ClusterField::Tags);
        let cluster = cluster.send().await.unwrap();
        all.push(ecs_tags("cluster", cluster.clusters()[0].tags()));
        let td = aws
            .ecs
            .describe_task_definition()
            .task_definition(format!("ecsctl-{pool}-worker"));
        let td = td.include(aws_sdk_ecs::types::TaskDefinitionField::Tags);
        all.push(ecs_tags("task definition", td.send().await.unwrap().tags()));
        let service = aws
            .ecs
            .describe_services()
            .cluster(format!("ecsctl-{pool}"));
        let service = service.services(format!("ecsctl-{pool}-worker"));
        let service = service.include(aws_sdk_ecs::types::ServiceField::Tags);
        all.push(ecs_tags(
            "service",
            service.send().await.unwrap().services()[0].tags(),
        ));
        for queue in ["task-events", "task-events-dlq"] {
            let url = aws
                .sqs
                .get_queue_url()
                .queue_name(format!("ecsctl-{pool}-{queue}"));
            let url = url.send().await.unwrap().queue_url().unwrap().to_string();
            let tags = aws
                .sqs
                .list_queue_tags()
                .queue_url(url)
                .send()
                .await
                .unwrap();
            all.push((
                format!("queue {queue}"),
                tags.tags()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            ));
        }
        let rule = aws
            .events
            .describe_rule()
            .name(format!("ecsctl-{pool}-task-state"));
        let arn = rule.send().await.unwrap().arn().unwrap().to_string();
        let tags = aws
            .events
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .unwrap();
        let pairs = tags.tags().iter().map(|t| (t.key(), t.value()));
        all.push(("rule".to_string(), tag_map(pairs)));
        all
    }
}

/// Tagging calls, of every service ecsctl tags with.
const TAG_CALLS: &[&str] = &[
    "TagResource",
    "UntagResource",
    "TagRole",
    "UntagRole",
    "CreateTags",
    "DeleteTags",
    "TagQueue",
    "UntagQueue",
];

#[tokio::test(flavor = "multi_thread")]
async fn changed_tags_are_applied_in_place_on_every_kind_and_others_tags_are_kept() {
    let s = Stack::start().await;
    let pool = "retag";
    s.bootstrap(pool, &["--tag", "team=data", "--tag", "cost=42"])
        .assert_success();
    let all = s.drift_all_tags(pool).await;
    assert_eq!(all.len(), 18, "every kind ecsctl tags: {all:#?}");

    // Someone else's tag on the cluster, and a tag ecsctl set changed by hand on a log group.
    let cluster_arn = "arn:aws:ecs:us-east-1:123456789012:cluster/ecsctl-retag";
    let theirs = aws_sdk_ecs::types::Tag::builder()
        .key("owner")
        .value("ops")
        .build();
    let tag = s
        .aws
        .ecs
        .tag_resource()
        .resource_arn(cluster_arn)
        .tags(theirs);
    tag.send().await.unwrap();
    let group = "arn:aws:logs:us-east-1:123456789012:log-group:/ecsctl/retag/worker";
    let tag = s
        .aws
        .logs
        .tag_resource()
        .resource_arn(group)
        .tags("team", "hijacked");
    tag.send().await.unwrap();
    let (code, report) = status_report(&s, pool);
    assert_eq!(code, 1);
    let messages = drift_messages(&report, "/ecsctl/retag/worker").join("\n");
    assert!(
        messages.contains(r#"tag team is "hijacked", wanted "data""#),
        "{report:#}"
    );

    // team changes, env is new, cost is no longer given.
    let new_tags = ["--tag", "team=ml", "--tag", "env=prod"];
    let out = s.bootstrap(pool, &[&new_tags[..], &["--dry-run"]].concat());
    out.assert_success();
    assert!(
        out.stdout.contains(r#"tag team is "data", wanted "ml""#)
            && out
                .stdout
                .contains("tag cost is no longer given: remove it"),
        "{}",
        out.stdout
    );
    s.proxy.clear();
    let out = s.bootstrap(pool, &[&new_tags[..], &["--output", "json"]].concat());
    out.assert_success();
    let mutating = s.stack_changes();
    assert!(
        !mutating.is_empty() && mutating.iter().all(|a| TAG_CALLS.contains(&a.as_str())),
        "only tagging calls: {mutating:?}"
    );
    let all = s.drift_all_tags(pool).await;
    assert_eq!(all.len(), 18);
    for (what, tags) in &all {
        assert_eq!(
            tags.get("team").map(String::as_str),
            Some("ml"),
            "{what}: {tags:?}"
        );
        assert_eq!(
            tags.get("env").map(String::as_str),
            Some("prod"),
            "{what}: {tags:?}"
        );
        assert!(!tags.contains_key("cost"), "{what}: {tags:?}");
        assert_eq!(
            tags.get("ecsctl:pool").map(String::as_str),
            Some(pool),
            "{what}"
        );
        assert!(tags.contains_key("ecsctl:step"), "{what}: {tags:?}");
    }
    let cluster = &all.iter().find(|(w, _)| w == "cluster").unwrap().1;
    assert_eq!(cluster.get("owner").map(String::as_str), Some("ops"));

    assert_rerun_changes_nothing(&s, pool, &new_tags);
}

const ECS_TASKS_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

impl Stack {
    /// The default VPC, two of its subnets, and its default security group.
    async fn drift_default_network(&self) -> (String, String, String) {
        let ec2 = &self.aws.ec2;
        let filter = |name: &str, value: &str| {
            aws_sdk_ec2::types::Filter::builder()
                .name(name)
                .values(value)
                .build()
        };
        let vpcs = ec2.describe_vpcs().filters(filter("is-default", "true"));
        let vpc = vpcs.send().await.unwrap().vpcs()[0]
            .vpc_id()
            .unwrap()
            .to_string();
        let subnets = ec2.describe_subnets().filters(filter("vpc-id", &vpc));
        let subnets = subnets.send().await.unwrap();
        let mut ids: Vec<(String, String)> = (subnets.subnets().iter())
            .map(|s| {
                let az = s.availability_zone().unwrap().to_string();
                (az, s.subnet_id().unwrap().to_string())
            })
            .collect();
        ids.sort();
        let groups = ec2
            .describe_security_groups()
            .filters(filter("vpc-id", &vpc));
        let groups = groups.filters(filter("group-name", "default"));
        let group = groups.send().await.unwrap().security_groups()[0]
            .group_id()
            .unwrap()
            .to_string();
        self.route_default_vpc_out(&vpc).await;
        (vpc, format!("{},{}", ids[0].1, ids[1].1), group)
    }

    async fn drift_ingress(&self, group: &str) -> usize {
        let groups = self.aws.ec2.describe_security_groups().group_ids(group);
        groups.send().await.unwrap().security_groups()[0]
            .ip_permissions()
            .len()
    }

    async fn drift_open_ssh(&self, group: &str) {
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
        let authorize = self.aws.ec2.authorize_security_group_ingress();
        authorize
            .group_id(group)
            .ip_permissions(ssh)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_ecsctl_did_not_create_is_never_repaired_or_retagged() {
    let s = Stack::start().await;
    let pool = "yours";
    let (vpc, subnets, default_group) = s.drift_default_network().await;
    // The user's own flow-run role, with an admin policy and an inline policy of their choosing.
    let iam = &s.aws.iam;
    let created = iam.create_role().role_name("my-flow-runs");
    let created = created.assume_role_policy_document(ECS_TASKS_TRUST);
    let role_arn = created
        .send()
        .await
        .unwrap()
        .role()
        .unwrap()
        .arn()
        .to_string();
    let attach = iam.attach_role_policy().role_name("my-flow-runs");
    attach.policy_arn(ADMIN).send().await.unwrap();
    let put = iam
        .put_role_policy()
        .role_name("my-flow-runs")
        .policy_name("mine");
    put.policy_document(ESCALATE).send().await.unwrap();
    let inputs = [
        "--vpc-id",
        &vpc,
        "--subnet-ids",
        &subnets,
        "--flow-run-role-arn",
        &role_arn,
    ];
    s.bootstrap(pool, &[&inputs[..], &["--tag", "team=a"]].concat())
        .assert_success();
    let ours = s.drift_group_id(pool).await;
    let default_rules = s.drift_ingress(&default_group).await;

    // SSH opened on both groups; the tag changed.
    s.drift_open_ssh(&ours).await;
    s.drift_open_ssh(&default_group).await;
    s.proxy.clear();
    let changed = [&inputs[..], &["--tag", "team=b"]].concat();
    s.bootstrap(pool, &changed).assert_success();
    assert!(
        s.mutating_actions()
            .contains(&"RevokeSecurityGroupIngress".to_string()),
        "{:?}",
        s.mutating_actions()
    );
    assert_eq!(s.drift_ingress(&ours).await, 0, "ecsctl's group is closed");
    assert_eq!(
        s.drift_ingress(&default_group).await,
        default_rules + 1,
        "the VPC's own group keeps every rule"
    );
    // The user's role keeps its policies and gets no tags; the user's VPC and subnets neither.
    assert_eq!(s.drift_attached("my-flow-runs").await, [ADMIN]);
    assert_eq!(s.drift_inline_names("my-flow-runs").await, ["mine"]);
    let role = iam
        .get_role()
        .role_name("my-flow-runs")
        .send()
        .await
        .unwrap();
    assert!(role.role().unwrap().tags().is_empty());
    let vpcs = s
        .aws
        .ec2
        .describe_vpcs()
        .vpc_ids(&vpc)
        .send()
        .await
        .unwrap();
    assert!(
        !vpcs.vpcs()[0]
            .tags()
            .iter()
            .any(|t| t.key() == Some("team")),
        "{:?}",
        vpcs.vpcs()[0].tags()
    );
    let group = s.aws.ec2.describe_security_groups().group_ids(&ours);
    let group = group.send().await.unwrap();
    let team = (group.security_groups()[0].tags().iter())
        .find(|t| t.key() == Some("team"))
        .and_then(|t| t.value().map(str::to_string));
    assert_eq!(team.as_deref(), Some("b"));

    assert_rerun_changes_nothing(&s, pool, &changed);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_without_a_stored_value_gets_the_key() {
    let s = Stack::start().await;
    let pool = "novalue";
    s.bootstrap(pool, &[]).assert_success();
    // The secret replaced by one with the pool's tags but no value at all.
    let name = "ecsctl/novalue/prefect-api-key";
    let sm = &s.aws.secrets;
    let delete = sm.delete_secret().secret_id(name);
    delete
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let tag = |k: &str, v: &str| {
        aws_sdk_secretsmanager::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
    };
    let create = sm.create_secret().name(name).tags(tag("ecsctl:pool", pool));
    create
        .tags(tag("ecsctl:step", "secret"))
        .send()
        .await
        .unwrap();

    s.proxy.clear();
    s.bootstrap(pool, &[]).assert_success();
    assert!(
        s.mutating_actions().contains(&"PutSecretValue".to_string()),
        "{:?}",
        s.mutating_actions()
    );
    let value = sm.get_secret_value().secret_id(name).send().await.unwrap();
    assert_eq!(
        value.secret_string(),
        Some(crate::support::prefect::API_KEY)
    );
}
