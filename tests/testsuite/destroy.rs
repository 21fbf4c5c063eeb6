//! `ecsctl destroy` against the emulator: it removes exactly what bootstrap created, nothing more,
//! also after failed or killed runs and without the ledger. Checked with the AWS SDK (inventories of
//! the whole account), not with ecsctl's own output.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use serde_json::Value;

use crate::support::aws::Clients;
use crate::support::cli::{Invocation, Output};
use crate::support::inventory;
use crate::support::pool::tag_filter;
use crate::support::prefect::API_KEY;
use crate::support::proxy::{Call, Fault};
use crate::support::stack::Stack;
use crate::support::terminal::Terminal;
use crate::support::text::assert_text;

/// How long a condition polled for (a stalled call, a retried call) may take to come true.
const WAIT: Duration = Duration::from_secs(60);
/// How often such a condition is checked.
const POLL: Duration = Duration::from_millis(20);

impl Stack {
    /// Holds `run` at its `n`th mutating call (see [`Stack::hold`]) and kills it with SIGKILL: the
    /// call took effect but ecsctl never heard of it. Returns the mutating calls the proxy
    /// answered, for messages.
    fn kill_at_mutating_call(&self, run: Invocation, n: usize) -> Vec<String> {
        let mut running = self.hold(run, n);
        running.kill();
        let output = running.finish(WAIT);
        assert_eq!(output.code, None, "ecsctl was killed, not finished");
        self.mutating_actions()
    }
}

/// The id of the pool's (ecsctl-created) VPC.
async fn pool_vpc(aws: &Clients, pool: &str) -> String {
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .filters(tag_filter(pool))
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1, "one VPC tagged for {pool}: {vpcs:?}");
    vpcs.vpcs()[0].vpc_id().unwrap().to_string()
}

async fn service_status(aws: &Clients, pool: &str) -> Option<String> {
    let described = aws
        .ecs
        .describe_services()
        .cluster(format!("ecsctl-{pool}"))
        .services(format!("ecsctl-{pool}-worker"))
        .send()
        .await
        .ok()?;
    described
        .services()
        .first()
        .and_then(|s| s.status())
        .map(str::to_string)
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", out.stdout))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// The ledger's `created` records as (kind, id).
fn ledger_records(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).expect("read the ledger");
    let ledger: Value = serde_json::from_str(&text).expect("ledger JSON");
    let mut records: Vec<(String, String)> = ledger["created"]
        .as_array()
        .expect("created records")
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    records.sort();
    records
}

/// Panics unless the first `first` call comes after the last `last` call, and both happened.
fn assert_before(actions: &[String], last: &str, first: &str) {
    let end = actions.iter().rposition(|a| a == last);
    let start = actions.iter().position(|a| a == first);
    match (end, start) {
        (Some(end), Some(start)) => assert!(
            end < start,
            "every {last} must come before the first {first}: {actions:?}"
        ),
        _ => panic!("expected both {last} and {first} among {actions:?}"),
    }
}

/// Panics unless every role's policies were detached and deleted before that role was deleted
/// (IAM refuses DeleteRole while policies are attached), and some role was deleted at all.
fn assert_roles_emptied_before_deleted(calls: &[Call]) {
    let role_of = |call: &Call| {
        url::form_urlencoded::parse(call.body.as_bytes())
            .find(|(key, _)| key == "RoleName")
            .map(|(_, value)| value.into_owned())
            .unwrap_or_else(|| panic!("{} without a RoleName: {}", call.action, call.body))
    };
    let deleted: Vec<(usize, String)> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.action == "DeleteRole")
        .map(|(i, c)| (i, role_of(c)))
        .collect();
    assert!(!deleted.is_empty(), "no DeleteRole among the calls");
    for (i, call) in calls.iter().enumerate() {
        if !matches!(
            call.action.as_str(),
            "DetachRolePolicy" | "DeleteRolePolicy"
        ) {
            continue;
        }
        let role = role_of(call);
        if let Some((at, _)) = deleted.iter().find(|(_, r)| *r == role) {
            assert!(
                i < *at,
                "{} on {role} came after DeleteRole of it: {:?}",
                call.action,
                calls.iter().map(|c| &c.action).collect::<Vec<_>>()
            );
        }
    }
}

/// Polls `check` until it holds, failing with `what` after [`WAIT`].
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(POLL);
    }
}

fn finish(child: std::process::Child) -> Output {
    child.wait_with_output().expect("wait for ecsctl").into()
}

/// The whole life of a pool: bootstrap, destroy (dry run first), bootstrap again at once, destroy
/// keeping the secret recoverable, bootstrap restoring it, destroy confirmed on a terminal. After
/// each destroy the account is exactly as it was before the first bootstrap.
#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_then_destroy_leaves_the_account_exactly_as_before() {
    let s = Stack::start().await;
    let pool = "gone";
    let secret = "ecsctl/gone/prefect-api-key";
    let before = s.inventory().await;
    s.bootstrap(pool, &[]).assert_success();
    let bootstrapped = s.inventory().await;
    let vpc = pool_vpc(&s.aws, pool).await;
    let ledger = s.ledger(pool);
    assert!(ledger.exists());

    // --dry-run lists what would go and changes nothing.
    s.proxy.clear();
    let dry = s.destroy(pool, &["--dry-run", "--output", "json"]);
    dry.assert_success();
    let listed = strings(&json(&dry)["would_delete"]).join("\n");
    for name in [
        vpc.as_str(),
        "ecsctl-gone-use1-execution",
        "ecsctl-gone-worker",
        secret,
        "/ecsctl/gone/worker",
        "cluster ecsctl-gone",
    ] {
        assert!(listed.contains(name), "{name} not listed:\n{listed}");
    }
    assert_eq!(s.mutating_actions(), Vec::<String>::new());
    bootstrapped.assert_unchanged(&s.inventory().await);
    assert!(ledger.exists(), "a dry run keeps the ledger");

    assert!(
        s.prefect.pool(pool).await.is_some(),
        "a dry run keeps the work pool"
    );

    s.proxy.clear();
    let out = s.destroy(pool, &["--output", "json"]);
    out.assert_success();
    before.assert_unchanged(&s.inventory().await);
    assert!(!ledger.exists(), "the ledger is removed once all is gone");
    assert_eq!(s.prefect.pool(pool).await, None, "the work pool is deleted");
    let result = json(&out);
    assert_eq!(result["left"], Value::Array(vec![]));
    let deleted = strings(&result["deleted"]).join("\n");
    assert!(deleted.contains(&vpc), "{deleted}");
    // Progress is one line per step on stderr, as in bootstrap.
    for step in ["[service]", "[network]", "[execution-role]", "[secret]"] {
        assert!(out.stderr.contains(step), "no {step} line:\n{}", out.stderr);
    }

    // The order AWS needs: the service first (force-deleted, no scale-down call), then what it
    // used, the roles included; the secret and log group after the task definition; the network
    // from the inside out.
    let actions = s.mutating_actions();
    assert!(!actions.iter().any(|a| a == "UpdateService"), "{actions:?}");
    for after_service in [
        "DeregisterTaskDefinition",
        "DeleteRole",
        "DeleteCluster",
        "DeleteSecurityGroup",
        "DeleteSubnet",
    ] {
        assert_before(&actions, "DeleteService", after_service);
    }
    assert_before(
        &actions,
        "DeregisterTaskDefinition",
        "DeleteTaskDefinitions",
    );
    for after_task_definition in ["DeleteSecret", "DeleteLogGroup"] {
        assert_before(&actions, "DeleteTaskDefinitions", after_task_definition);
    }
    assert_roles_emptied_before_deleted(&s.proxy.mutating_calls());
    assert_before(&actions, "DisassociateRouteTable", "DeleteRouteTable");
    assert_before(&actions, "DetachInternetGateway", "DeleteInternetGateway");
    for inside in [
        "DeleteSubnet",
        "DeleteRouteTable",
        "DeleteInternetGateway",
        "DeleteSecurityGroup",
    ] {
        assert_before(&actions, inside, "DeleteVpc");
    }

    // Again: nothing to do, nothing done.
    s.proxy.clear();
    let again = s.destroy(pool, &[]);
    again.assert_success();
    assert_text(
        &again.stdout,
        "Nothing of pool 'gone' exists in account [ACCOUNT] region us-east-1.\n",
        &[],
    );
    assert_eq!(s.mutating_actions(), Vec::<String>::new());

    // The names are free at once, the secret's included.
    s.proxy.clear();
    s.bootstrap(pool, &[]).assert_success();
    assert!(s.mutating_actions().contains(&"CreateSecret".to_string()));
    assert_eq!(
        service_status(&s.aws, pool).await.as_deref(),
        Some("ACTIVE")
    );

    // With a recovery window the secret is only scheduled for deletion, and that is not a
    // leftover: destroy succeeds and removes the ledger.
    s.destroy(pool, &["--secret-recovery-days", "7"])
        .assert_success();
    let described = s
        .aws
        .secrets
        .describe_secret()
        .secret_id(secret)
        .send()
        .await
        .unwrap();
    assert!(described.deleted_date().is_some(), "{described:?}");
    let mut expected = before.clone();
    expected.secrets.push(inventory::Secret {
        name: secret.to_string(),
        scheduled_for_deletion: true,
    });
    expected.secrets.sort();
    expected.assert_unchanged(&s.inventory().await);
    assert!(!ledger.exists());
    // Already scheduled: a second such destroy has nothing to do.
    s.proxy.clear();
    s.destroy(pool, &["--secret-recovery-days", "7"])
        .assert_success();
    assert_eq!(s.mutating_actions(), Vec::<String>::new());

    // The next bootstrap restores the secret instead of failing on its taken name.
    s.proxy.clear();
    s.bootstrap(pool, &[]).assert_success();
    let actions = s.mutating_actions();
    assert!(
        actions.contains(&"RestoreSecret".to_string()),
        "{actions:?}"
    );
    assert!(
        !actions.contains(&"CreateSecret".to_string()),
        "{actions:?}"
    );
    let described = s
        .aws
        .secrets
        .describe_secret()
        .secret_id(secret)
        .send()
        .await
        .unwrap();
    assert!(described.deleted_date().is_none(), "{described:?}");
    let value = s
        .aws
        .secrets
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(value.secret_string(), Some(API_KEY));

    // On a terminal destroy shows the list and asks; "no" deletes nothing.
    let bootstrapped = s.inventory().await;
    let vpc = pool_vpc(&s.aws, pool).await;
    s.proxy.clear();
    let mut term = Terminal::start(&s.ecsctl, &["destroy", "--pool", pool], WAIT);
    term.expect("will delete");
    term.expect(&vpc);
    term.expect("Delete these resources?");
    term.send("n");
    term.expect("cancelled");
    let code = term.finish();
    assert_ne!(code, 0, "declining must not exit 0:\n{}", term.shown);
    assert_eq!(s.mutating_actions(), Vec::<String>::new());
    bootstrapped.assert_unchanged(&s.inventory().await);

    let mut term = Terminal::start(&s.ecsctl, &["destroy", "--pool", pool], WAIT);
    term.expect("Delete these resources?");
    term.send("y");
    assert_eq!(term.finish(), 0, "destroy failed:\n{}", term.shown);
    before.assert_unchanged(&s.inventory().await);
    assert!(!ledger.exists());
}

/// Without the ledger (another machine, another CI job) destroy goes by the pool's tags, and a
/// resource without the pool's tag survives even when it has the pool's name and IAM path.
#[tokio::test(flavor = "multi_thread")]
async fn without_the_ledger_only_what_is_tagged_for_the_pool_goes() {
    let s = Stack::start().await;
    let pool = "lost";
    let role = "ecsctl-lost-use1-worker";
    let log_group = "/ecsctl/lost/worker";
    let before = s.inventory().await;

    // Someone else's role named like the pool's worker role, under ecsctl's IAM path: bootstrap
    // refuses it, and destroy leaves it alone.
    s.aws
        .iam
        .create_role()
        .role_name(role)
        .path("/ecsctl/")
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .unwrap();
    let with_theirs = s.inventory().await;
    let out = s.bootstrap(pool, &[]);
    out.assert_code(1);
    assert!(out.stderr.contains(role), "{}", out.stderr);
    s.proxy.clear();
    s.destroy(pool, &[]).assert_success();
    assert_eq!(s.mutating_actions(), Vec::<String>::new());
    with_theirs.assert_unchanged(&s.inventory().await);
    s.aws
        .iam
        .delete_role()
        .role_name(role)
        .send()
        .await
        .unwrap();

    // The pool's own stack; then two parts of it change hands (their pool tag says so) and the
    // ledger is lost.
    s.bootstrap(pool, &[]).assert_success();
    let bootstrapped = s.inventory().await;
    let vpc = pool_vpc(&s.aws, pool).await;
    s.aws
        .iam
        .tag_role()
        .role_name(role)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("ecsctl:pool")
                .value("theirs")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    s.aws
        .logs
        .tag_resource()
        .resource_arn(format!(
            "arn:aws:logs:us-east-1:123456789012:log-group:{log_group}"
        ))
        .tags("ecsctl:pool", "theirs")
        .send()
        .await
        .unwrap();
    let retagged = s.inventory().await;
    let ledger = s.ledger(pool);
    s.lose_ledger(pool).await;

    s.proxy.clear();
    let dry = s.destroy(pool, &["--dry-run"]);
    dry.assert_success();
    // All that is tagged for the pool, and not their role and log group.
    assert_text(
        &dry.stdout,
        "\
Would delete for pool 'lost' (dry run, nothing deleted):
  - secret ecsctl/lost/prefect-api-key ([ARN])
  - log group /ecsctl/lost/flow-runs (/ecsctl/lost/flow-runs)
  - IAM role ecsctl-lost-use1-execution ([ARN])
  - IAM role ecsctl-lost-use1-flow-run ([ARN])
  - VPC ecsctl-lost ([VPC])
  - subnet ecsctl-lost-a ([SUBNET])
  - subnet ecsctl-lost-b ([SUBNET])
  - internet gateway ecsctl-lost ([IGW])
  - route table ecsctl-lost ([RTB])
  - security group ecsctl-lost-worker ([SG])
  - cluster ecsctl-lost ([ARN])
  - SQS queue ecsctl-lost-task-events-dlq ([AWS]/[ACCOUNT]/ecsctl-lost-task-events-dlq)
  - SQS queue ecsctl-lost-task-events ([AWS]/[ACCOUNT]/ecsctl-lost-task-events)
  - EventBridge rule ecsctl-lost-task-state ([ARN])
  - task definition ecsctl-lost-worker ([ARN])
  - service ecsctl-lost-worker ([ARN])
",
        &s.placeholders(),
    );
    assert!(dry.stdout.contains(&vpc), "{}", dry.stdout);
    assert_eq!(s.mutating_actions(), Vec::<String>::new());
    retagged.assert_unchanged(&s.inventory().await);
    assert!(!ledger.exists(), "a dry run writes no ledger");

    let out = s.destroy(pool, &[]);
    out.assert_success();
    // It says what it found before deleting it, also without a terminal.
    assert!(out.stderr.contains("no ledger"), "{}", out.stderr);
    let shown = out
        .stderr
        .find(&vpc)
        .unwrap_or_else(|| panic!("the VPC it found is not shown:\n{}", out.stderr));
    let deleting = out
        .stderr
        .find("[network]")
        .expect("a network progress line");
    assert!(
        shown < deleting,
        "found list shown after deleting:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("ecsctl-lost-use1-execution"),
        "{}",
        out.stderr
    );
    assert!(!ledger.exists());

    // Everything went but their role (with its policies) and their log group.
    let mut expected = before.clone();
    expected.roles.extend(
        bootstrapped
            .roles
            .iter()
            .filter(|r| r.name == role)
            .cloned(),
    );
    expected.log_groups.extend(
        (bootstrapped.log_groups.iter())
            .filter(|g| g.name == log_group)
            .cloned(),
    );
    assert_eq!(expected.roles.len(), before.roles.len() + 1);
    assert_eq!(expected.log_groups.len(), before.log_groups.len() + 1);
    expected.roles.sort();
    expected.log_groups.sort();
    expected.assert_unchanged(&s.inventory().await);
}

/// A VPC and subnets passed with --vpc-id/--subnet-ids, and another pool in the same account,
/// survive destroy, with the ledger and without.
#[tokio::test(flavor = "multi_thread")]
async fn a_reused_vpc_and_another_pool_survive() {
    let s = Stack::start().await;
    let vpcs = s
        .aws
        .ec2
        .describe_vpcs()
        .filters(Filter::builder().name("is-default").values("true").build())
        .send()
        .await
        .unwrap();
    let default_vpc = vpcs.vpcs()[0].vpc_id().unwrap().to_string();
    let subnets = s
        .aws
        .ec2
        .describe_subnets()
        .filters(
            Filter::builder()
                .name("vpc-id")
                .values(&default_vpc)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut subnets: Vec<(String, String)> = subnets
        .subnets()
        .iter()
        .map(|s| {
            (
                s.availability_zone().unwrap().to_string(),
                s.subnet_id().unwrap().to_string(),
            )
        })
        .collect();
    subnets.sort();
    let subnet_ids = format!("{},{}", subnets[0].1, subnets[1].1);
    s.route_default_vpc_out(&default_vpc).await;
    let reuse = [
        "--vpc-id",
        default_vpc.as_str(),
        "--subnet-ids",
        &subnet_ids,
    ];
    let before = s.inventory().await;

    s.bootstrap("other", &[]).assert_success();
    let with_other = s.inventory().await;

    // With the ledger, which records the VPC and subnets as used, not created.
    s.bootstrap("reuse", &reuse).assert_success();
    let groups = s
        .aws
        .ec2
        .describe_security_groups()
        .filters(tag_filter("reuse"))
        .send()
        .await
        .unwrap();
    assert_eq!(groups.security_groups().len(), 1);
    assert_eq!(
        groups.security_groups()[0].vpc_id(),
        Some(default_vpc.as_str()),
        "the pool's security group is in the reused VPC"
    );
    s.destroy("reuse", &[]).assert_success();
    with_other.assert_unchanged(&s.inventory().await);

    // Without the ledger: only what is tagged for the pool goes.
    s.bootstrap("reuse", &reuse).assert_success();
    s.lose_ledger("reuse").await;
    s.destroy("reuse", &[]).assert_success();
    with_other.assert_unchanged(&s.inventory().await);

    // The other pool is whole: bootstrapping it again changes nothing.
    s.proxy.clear();
    s.bootstrap("other", &[]).assert_success();
    assert_eq!(s.mutating_actions(), Vec::<String>::new());
    assert_eq!(
        service_status(&s.aws, "other").await.as_deref(),
        Some("ACTIVE")
    );
    s.destroy("other", &[]).assert_success();
    before.assert_unchanged(&s.inventory().await);
}

/// Bootstraps that fail half-way, a destroy that fails half-way (and says what is left), and
/// a destroy waiting out DependencyViolation: each time a destroy (re-)run leaves the account
/// as it was.
#[tokio::test(flavor = "multi_thread")]
async fn destroy_finishes_after_failures_of_bootstrap_and_of_itself() {
    let s = Stack::start().await;
    let before = s.inventory().await;

    // The network half made.
    let pool = "no-subnet";
    s.proxy.fail_action("CreateSubnet", Fault::ServerError);
    let out = s.bootstrap(pool, &[]);
    s.proxy.clear_faults();
    out.assert_code(1);
    assert!(
        out.stderr.contains("Injected server error"),
        "{}",
        out.stderr
    );
    pool_vpc(&s.aws, pool).await;
    s.destroy(pool, &[]).assert_success();
    before.assert_unchanged(&s.inventory().await);
    assert!(!s.ledger(pool).exists());

    // Everything but the service made; the log group then deleted behind ecsctl's back
    // (NotFound counts as deleted); DeleteVpc and DeleteRole failing.
    let pool = "stuck";
    s.proxy.fail_action("CreateService", Fault::ServerError);
    let out = s.bootstrap(pool, &[]);
    s.proxy.clear_faults();
    out.assert_code(1);
    let vpc = pool_vpc(&s.aws, pool).await;
    s.aws
        .logs
        .delete_log_group()
        .log_group_name("/ecsctl/stuck/worker")
        .send()
        .await
        .unwrap();
    s.proxy.fail_action("DeleteVpc", Fault::ServerError);
    s.proxy.fail_action("DeleteRole", Fault::ServerError);
    let out = s.destroy(pool, &[]);
    s.proxy.clear_faults();
    out.assert_code(1);
    let (_, left) = out
        .stderr
        .split_once("are still there:")
        .unwrap_or_else(|| panic!("no list of what is left:\n{}", out.stderr));
    // The secret waits for the execution role that reads it.
    for name in [
        vpc.as_str(),
        "ecsctl-stuck-use1-execution",
        "ecsctl-stuck-use1-worker",
        "ecsctl-stuck-use1-flow-run",
        "ecsctl/stuck/prefect-api-key",
    ] {
        assert!(left.contains(name), "{name} not listed as left:\n{left}");
    }
    for gone in ["subnet", "cluster", "log group", "task definition"] {
        assert!(!left.contains(gone), "{gone} listed as left:\n{left}");
    }
    // The ledger still names exactly what is left; everything else is gone and forgotten.
    let ledger = s.ledger(pool);
    let records = ledger_records(&ledger);
    let kinds: Vec<&str> = records.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["role", "role", "role", "secret", "vpc"],
        "{records:?}"
    );
    assert_eq!(records[0].1, "ecsctl-stuck-use1-execution");
    assert_eq!(records[1].1, "ecsctl-stuck-use1-flow-run");
    assert_eq!(records[2].1, "ecsctl-stuck-use1-worker");
    assert!(records[3]
        .1
        .contains(":secret:ecsctl/stuck/prefect-api-key"));
    assert_eq!(records[4].1, vpc);
    s.destroy(pool, &[]).assert_success();
    before.assert_unchanged(&s.inventory().await);
    assert!(!ledger.exists());

    // Something not ecsctl's still in the VPC, as Fargate's network interfaces are while AWS
    // releases them: DeleteVpc answers DependencyViolation until it is gone.
    let pool = "busy";
    s.bootstrap(pool, &[]).assert_success();
    let vpc = pool_vpc(&s.aws, pool).await;
    let blocker = s
        .aws
        .ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.0.128.0/20")
        .send()
        .await
        .unwrap();
    let blocker = blocker.subnet().unwrap().subnet_id().unwrap().to_string();
    s.proxy.clear();
    let mut child = s.destroy_cmd(pool, &[]).spawn();
    let refused = || {
        s.proxy
            .calls()
            .iter()
            .any(|c| c.action == "DeleteVpc" && c.status == Some(400))
    };
    wait_until("DeleteVpc is refused or destroy ends", || {
        refused() || child.try_wait().expect("poll ecsctl").is_some()
    });
    assert!(refused(), "destroy ended early:\n{:?}", finish(child));
    s.aws
        .ec2
        .delete_subnet()
        .subnet_id(&blocker)
        .send()
        .await
        .unwrap();
    let out = finish(child);
    out.assert_success();
    assert!(out.stderr.contains("still in use"), "{}", out.stderr);
    let attempts = (s.proxy.calls().iter())
        .filter(|c| c.action == "DeleteVpc")
        .count();
    assert!(attempts >= 2, "DeleteVpc was not retried: {attempts}");
    before.assert_unchanged(&s.inventory().await);
}

/// Runs killed with SIGKILL right after a call reached AWS and before ecsctl heard the answer:
/// bootstraps at several points, then destroy itself twice; a destroy run then finishes.
#[tokio::test(flavor = "multi_thread")]
async fn destroy_finishes_after_killed_bootstraps_and_killed_destroys() {
    let s = Stack::start().await;
    let pool = "killed";
    let before = s.inventory().await;

    for n in [1, 8, 16] {
        let made = s.kill_at_mutating_call(s.bootstrap_cmd(pool, &[]), n);
        s.unlock(pool);
        assert_ne!(before, s.inventory().await, "nothing made by {made:?}");
        let out = s.destroy(pool, &[]);
        assert!(
            out.success(),
            "destroy after bootstrap killed at call #{n} (after {made:?}) failed:\n{}",
            out.stderr
        );
        before.assert_unchanged(&s.inventory().await);
        assert!(!s.ledger(pool).exists());
    }

    s.bootstrap(pool, &[]).assert_success();
    for n in [3, 6] {
        s.kill_at_mutating_call(s.destroy_cmd(pool, &[]), n);
        s.unlock(pool);
        assert!(s.ledger(pool).exists(), "a killed destroy keeps the ledger");
    }
    assert_ne!(
        before,
        s.inventory().await,
        "the killed runs deleted everything"
    );
    s.destroy(pool, &[]).assert_success();
    before.assert_unchanged(&s.inventory().await);
    assert!(!s.ledger(pool).exists());
}

/// Names in the ledger that someone else has since taken over (untagged) are not deleted, and a
/// deletion AWS keeps refusing gives up after `--wait-timeout`, listing what is left.
#[tokio::test(flavor = "multi_thread")]
async fn taken_over_names_survive_and_a_stuck_delete_gives_up_in_time() {
    let s = Stack::start().await;
    s.bootstrap("taken", &[]).assert_success();
    let aws = &s.aws;

    // Someone takes the worker role and the log group over: they strip the pool tag.
    aws.iam
        .untag_role()
        .role_name("ecsctl-taken-use1-worker")
        .tag_keys("ecsctl:pool")
        .send()
        .await
        .unwrap();
    let group = "/ecsctl/taken/worker";
    aws.logs
        .untag_resource()
        .resource_arn(format!(
            "arn:aws:logs:us-east-1:123456789012:log-group:{group}"
        ))
        .tag_keys("ecsctl:pool")
        .send()
        .await
        .unwrap();
    // And adds a subnet of their own to the pool's VPC, so AWS refuses to delete the VPC.
    let vpc = pool_vpc(aws, "taken").await;
    let theirs = aws
        .ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.0.200.0/24")
        .send()
        .await
        .unwrap();
    let theirs = theirs
        .subnet()
        .and_then(|s| s.subnet_id())
        .unwrap()
        .to_string();

    let started = Instant::now();
    let out = s.destroy("taken", &["--wait-timeout", "3s"]);
    out.assert_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "gave up after {:?}",
        started.elapsed()
    );
    assert!(
        out.stderr.contains(&vpc),
        "names the VPC left:\n{}",
        out.stderr
    );
    assert!(s.ledger("taken").exists(), "the ledger keeps what is left");

    // Their subnet goes; the next destroy finishes, and still leaves what is not ecsctl's.
    aws.ec2
        .delete_subnet()
        .subnet_id(&theirs)
        .send()
        .await
        .unwrap();
    s.destroy("taken", &[]).assert_success();
    assert!(!s.ledger("taken").exists());
    aws.iam
        .get_role()
        .role_name("ecsctl-taken-use1-worker")
        .send()
        .await
        .expect("the untagged role survives");
    let groups = aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(group)
        .send()
        .await
        .unwrap();
    assert_eq!(
        groups.log_groups().len(),
        1,
        "the untagged log group survives"
    );
    assert_eq!(
        pool_filter_count(aws, "taken").await,
        0,
        "nothing tagged is left"
    );
}

async fn pool_filter_count(aws: &Clients, pool: &str) -> usize {
    aws.ec2
        .describe_vpcs()
        .filters(tag_filter(pool))
        .send()
        .await
        .unwrap()
        .vpcs()
        .len()
}
