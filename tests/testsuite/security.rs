//! Secrets stay secret and what bootstrap builds grants no more than the worker needs.
//!
//! - A planted API key is searched for everywhere ecsctl writes or shows something: stdout and
//!   stderr of every command at every verbosity (a failing run too), the ledger directory, the
//!   task definition and service, and the arguments of a running ecsctl.
//! - IAM policies are read back from IAM and checked statement by statement.
//! - The ledger is private to the user; the security group lets nothing in.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::support::aws::Clients;
use crate::support::cli::{Ecsctl, Output};
use crate::support::iam::{decode_policy, statements, strings};
use crate::support::pool::{self, ledger_path, ACCOUNT};
use crate::support::proxy::Fault;
use crate::support::stack::Stack;

/// Planted keys: long and unusual enough that finding one anywhere can only mean a leak. Two,
/// so that a rotation has one to replace and one to replace it with.
const API_KEY: &str = "pnu_PLANTED0secret0key0a1b2c3d4e5f6g7h8i9j";
const ROTATED_KEY: &str = "pnu_PLANTED0rotated0key0z9y8x7w6v5u4t3s2r1q";
const PLANTED: [&str; 2] = [API_KEY, ROTATED_KEY];

impl Stack {
    async fn secret_value(&self, pool: &str) -> String {
        self.aws
            .secrets
            .get_secret_value()
            .secret_id(format!("ecsctl/{pool}/prefect-api-key"))
            .send()
            .await
            .unwrap()
            .secret_string()
            .unwrap()
            .to_string()
    }
}

/// Fails if any planted key is in `text`; `where_` says what the text is.
fn assert_no_key(text: &str, where_: &str) {
    for key in PLANTED {
        assert!(
            !text.contains(key),
            "the API key {key} shows in {where_}:\n{text}"
        );
    }
}

fn assert_output_has_no_key(out: &Output, what: &str) {
    assert_no_key(&out.stdout, &format!("the stdout of {what}"));
    assert_no_key(&out.stderr, &format!("the stderr of {what}"));
}

/// Every file under `dir` (ledgers, locks, anything left behind), read as bytes.
fn assert_no_key_in_files(dir: &Path, when: &str) {
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files += 1;
                let bytes = std::fs::read(&path).unwrap();
                assert_no_key(
                    &String::from_utf8_lossy(&bytes),
                    &format!("{} {when}", path.display()),
                );
            }
        }
    }
    assert!(files > 0, "no files under {} {when}", dir.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_key_shows_nowhere_at_any_verbosity() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    let pool = "quiet";
    // Every run's output, searched for the key at the end.
    let mut runs: Vec<(String, Output)> = Vec::new();

    // Create, re-run, and rotate the key: every path that handles it.
    for (key, verbosity) in [(API_KEY, "-v"), (API_KEY, "-vv"), (ROTATED_KEY, "-vv")] {
        for output in ["text", "json"] {
            let out = s
                .bootstrap_cmd(pool, &[verbosity, "--output", output])
                .env("PREFECT_API_KEY", key)
                .run();
            out.assert_success();
            runs.push((format!("bootstrap {verbosity} --output {output}"), out));
        }
    }
    assert_eq!(
        s.secret_value(pool).await,
        ROTATED_KEY,
        "the key was rotated"
    );
    for verbosity in ["-v", "-vv"] {
        for output in ["text", "json"] {
            let out = s
                .ecsctl
                .cmd(["status", "--pool", pool, verbosity, "--output", output])
                .run();
            // The emulator never runs tasks, so the pool is unhealthy: exit 1 with a report.
            out.assert_code(1);
            runs.push((format!("status {verbosity} --output {output}"), out));
        }
    }
    assert_no_key_in_files(&s.ecsctl.state_dir(), "after bootstrap and status");

    // The key reaches the worker only by reference to the secret.
    let td = s
        .aws
        .ecs
        .describe_task_definition()
        .task_definition(format!("ecsctl-{pool}-worker"))
        .send()
        .await
        .unwrap();
    let td = td.task_definition().unwrap();
    let container = &td.container_definitions()[0];
    let environment: Vec<(&str, &str)> = container
        .environment()
        .iter()
        .map(|e| (e.name().unwrap_or(""), e.value().unwrap_or("")))
        .collect();
    let api_url = s.prefect_api_url();
    assert_eq!(
        environment,
        [
            ("PREFECT_API_URL", api_url.as_str()),
            (
                "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME",
                &format!("ecsctl-{pool}-task-events"),
            ),
            (
                "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_REGION",
                "us-east-1"
            ),
        ]
    );
    let secret_arn = s
        .aws
        .secrets
        .describe_secret()
        .secret_id(format!("ecsctl/{pool}/prefect-api-key"))
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let secrets: Vec<(&str, &str)> = container
        .secrets()
        .iter()
        .map(|s| (s.name(), s.value_from()))
        .collect();
    assert_eq!(secrets, [("PREFECT_API_KEY", secret_arn.as_str())]);
    assert_no_key(&format!("{td:?}"), "the task definition");
    // Flow runs get the key the same way: the work pool names the secret, never the key.
    let work_pool = s.prefect.pool(pool).await.expect("the work pool");
    assert_no_key(&work_pool.to_string(), "the Prefect work pool");
    assert_eq!(
        work_pool["base_job_template"]["variables"]["properties"]["prefect_api_key_secret_arn"]
            ["default"],
        secret_arn.as_str()
    );
    let services = s
        .aws
        .ecs
        .describe_services()
        .cluster(format!("ecsctl-{pool}"))
        .services(format!("ecsctl-{pool}-worker"))
        .send()
        .await
        .unwrap();
    assert_no_key(&format!("{services:?}"), "the service");

    // A run that fails while storing the key says why, without the key.
    s.proxy.fail_action("CreateSecret", Fault::ServerError);
    let out = s
        .bootstrap_cmd("refused", &["-vv"])
        .env("PREFECT_API_KEY", API_KEY)
        .env("ECSCTL_MAX_ATTEMPTS", "1")
        .run();
    s.proxy.clear_faults();
    assert!(
        out.stderr
            .contains("creating secret ecsctl/refused/prefect-api-key failed"),
        "{}",
        out.stderr
    );
    out.assert_code(1);
    runs.push(("a failing bootstrap -vv".into(), out));

    for verbosity in ["-v", "-vv"] {
        let out = s.destroy(pool, &["--dry-run", verbosity]);
        out.assert_success();
        runs.push((format!("destroy --dry-run {verbosity}"), out));
    }
    assert_no_key_in_files(&s.ecsctl.state_dir(), "after a failing run");
    for pool in [pool, "refused"] {
        let out = s.destroy(pool, &["-vv"]);
        out.assert_success();
        runs.push((format!("destroy -vv of {pool}"), out));
    }

    for (what, out) in &runs {
        assert_output_has_no_key(out, what);
    }
    pristine.assert_unchanged(&s.inventory().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_key_is_read_from_a_file_or_stdin_and_shown_nowhere() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("prefect-api-key");
    // As `echo "$KEY" > file` writes it: the newline is not part of the key.
    std::fs::write(&key_file, format!("{API_KEY}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    let out = s
        .bootstrap_cmd(
            "from-file",
            &["-vv", "--prefect-api-key-file", key_file.to_str().unwrap()],
        )
        .env_remove("PREFECT_API_KEY")
        .run();
    out.assert_success();
    assert_output_has_no_key(&out, "bootstrap --prefect-api-key-file FILE");
    assert_eq!(s.secret_value("from-file").await, API_KEY);

    let mut child = s
        .bootstrap_cmd("from-stdin", &["-vv", "--prefect-api-key-file", "-"])
        .env_remove("PREFECT_API_KEY")
        .into_command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{ROTATED_KEY}").unwrap();
        // Dropped here: ecsctl reads the key to the end of its input.
    }
    let out: Output = child.wait_with_output().unwrap().into();
    out.assert_success();
    assert_output_has_no_key(&out, "bootstrap --prefect-api-key-file -");
    assert_eq!(s.secret_value("from-stdin").await, ROTATED_KEY);

    assert_no_key_in_files(&s.ecsctl.state_dir(), "after bootstraps with key files");
    s.destroy_all_and_assert_unchanged(&["from-file", "from-stdin"], &pristine)
        .await;
}

/// The arguments of a running process, as `ps` shows them to every user of the machine.
fn arguments_of(pid: u32) -> (String, String) {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    let ps = std::process::Command::new("ps")
        .args(["-ww", "-o", "args=", "-p", &pid.to_string()])
        .output()
        .unwrap();
    (cmdline, String::from_utf8_lossy(&ps.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_key_is_not_in_the_arguments_of_a_running_ecsctl() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, API_KEY).unwrap();

    let ways: [(&str, Vec<&str>); 2] = [
        ("by-env", vec![]),
        (
            "by-file",
            vec!["--prefect-api-key-file", key_file.to_str().unwrap()],
        ),
    ];
    for (pool, extra) in &ways {
        let invocation = if extra.is_empty() {
            s.bootstrap_cmd(pool, extra).env("PREFECT_API_KEY", API_KEY)
        } else {
            s.bootstrap_cmd(pool, extra).env_remove("PREFECT_API_KEY")
        };
        // Held at its third change, mid-run, with the key already read.
        let mut running = s.hold(invocation, 2);
        let (cmdline, ps) = arguments_of(running.pid());
        assert!(
            cmdline.contains(&format!("--pool {pool}")),
            "not ecsctl's arguments: {cmdline}"
        );
        assert!(ps.contains("bootstrap"), "ps shows no ecsctl: {ps:?}");
        assert_no_key(&cmdline, &format!("/proc/<pid>/cmdline of ecsctl ({pool})"));
        assert_no_key(&ps, &format!("ps of ecsctl ({pool})"));
        running.kill();
        s.unlock(pool);
    }
    let pools: Vec<&str> = ways.iter().map(|(pool, _)| *pool).collect();
    s.destroy_all_and_assert_unchanged(&pools, &pristine).await;
}

/// Every policy of a role: the attached managed ones (their default version) and the inline ones.
async fn role_policies(aws: &Clients, role: &str) -> (Vec<String>, Vec<Value>, Vec<Value>) {
    let attached = aws
        .iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    let mut managed_arns = Vec::new();
    let mut managed = Vec::new();
    for policy in attached.attached_policies() {
        let arn = policy.policy_arn().unwrap();
        managed_arns.push(arn.to_string());
        let meta = aws.iam.get_policy().policy_arn(arn).send().await.unwrap();
        let version = meta.policy().unwrap().default_version_id().unwrap();
        let document = aws
            .iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(version)
            .send()
            .await
            .unwrap();
        let document = document.policy_version().unwrap().document().unwrap();
        managed.push(decode_policy(document));
    }
    let names = aws
        .iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    let mut inline = Vec::new();
    for name in names.policy_names() {
        let policy = aws
            .iam
            .get_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
            .unwrap();
        inline.push(decode_policy(policy.policy_document()));
    }
    (managed_arns, managed, inline)
}

/// No statement allows everything on everything, or is written by exclusion (NotAction /
/// NotResource), which would grant all that is not listed.
fn assert_no_wildcard_grant(policy: &Value, what: &str) {
    for st in statements(policy) {
        assert!(
            st.get("NotAction").is_none() && st.get("NotResource").is_none(),
            "{what} grants by exclusion: {st}"
        );
        let actions = strings(&st["Action"]);
        let resources = strings(&st["Resource"]);
        assert!(
            !(actions.iter().any(|a| a == "*") && resources.iter().any(|r| r == "*")),
            "{what} grants * on *: {st}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn iam_grants_the_worker_only_what_it_needs() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    let pool = "least";
    s.bootstrap_cmd(pool, &[])
        .env("PREFECT_API_KEY", API_KEY)
        .run()
        .assert_success();
    let exec_name = format!("ecsctl-{pool}-use1-execution");
    let worker_name = format!("ecsctl-{pool}-use1-worker");
    let role_arn = |name: &str| format!("arn:aws:iam::{ACCOUNT}:role/ecsctl/{name}");
    let secret_arn = s
        .aws
        .secrets
        .describe_secret()
        .secret_id(format!("ecsctl/{pool}/prefect-api-key"))
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();

    for role in [&exec_name, &worker_name] {
        let got = s.aws.iam.get_role().role_name(role).send().await.unwrap();
        let got = got.role().unwrap();
        assert_eq!(got.arn(), role_arn(role));
        // Only ECS tasks may take the role on.
        let trust = decode_policy(got.assume_role_policy_document().unwrap());
        for st in statements(&trust) {
            assert_eq!(st["Effect"], "Allow", "{role} trust: {st}");
            assert_eq!(strings(&st["Action"]), ["sts:AssumeRole"], "{role}: {st}");
            assert_eq!(
                st["Principal"],
                serde_json::json!({ "Service": "ecs-tasks.amazonaws.com" }),
                "{role} trust: {st}"
            );
        }
    }

    // The execution role: the AWS managed policy, and reading this pool's secret, nothing else.
    let (managed_arns, managed, inline) = role_policies(&s.aws, &exec_name).await;
    assert_eq!(
        managed_arns,
        ["arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"]
    );
    assert_eq!(inline.len(), 1, "one inline policy on {exec_name}");
    let exec_statements = statements(&inline[0]);
    assert!(!exec_statements.is_empty());
    for st in &exec_statements {
        assert_eq!(st["Effect"], "Allow", "{st}");
        assert_eq!(strings(&st["Action"]), ["secretsmanager:GetSecretValue"]);
        assert_eq!(strings(&st["Resource"]), [secret_arn.as_str()], "{st}");
    }
    for policy in managed.iter().chain(&inline) {
        assert_no_wildcard_grant(policy, &format!("a policy of {exec_name}"));
    }

    // The worker role: its own inline policy only, and it passes only the two roles flow runs
    // need (their execution role and their task role), never itself.
    let (managed_arns, _, inline) = role_policies(&s.aws, &worker_name).await;
    assert!(managed_arns.is_empty(), "{worker_name}: {managed_arns:?}");
    assert_eq!(inline.len(), 1, "one inline policy on {worker_name}");
    let policy = &inline[0];
    assert_no_wildcard_grant(policy, &format!("the policy of {worker_name}"));
    let mut passable = Vec::new();
    for st in statements(policy) {
        assert_eq!(st["Effect"], "Allow", "{st}");
        let actions = strings(&st["Action"]);
        for action in &actions {
            assert!(
                !action.contains('*'),
                "{worker_name} allows a wildcard action: {st}"
            );
        }
        if actions
            .iter()
            .any(|a| a.eq_ignore_ascii_case("iam:PassRole"))
        {
            assert_eq!(actions, ["iam:PassRole"], "PassRole stands alone: {st}");
            passable.extend(strings(&st["Resource"]));
        }
    }
    passable.sort();
    let mut own = vec![role_arn(&exec_name), role_arn(&pool::flow_run_role(pool))];
    own.sort();
    assert_eq!(
        passable, own,
        "iam:PassRole is limited to the flow runs' roles"
    );

    s.destroy_all_and_assert_unchanged(&[pool], &pristine).await;
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ledger_is_private_and_the_worker_takes_no_inbound_traffic() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    // A state directory someone made world-readable is tightened; a new one is made private.
    let loose = ledger_path(&s.ecsctl.state_dir(), "private")
        .parent()
        .unwrap()
        .to_path_buf();
    std::fs::create_dir_all(&loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fresh = Ecsctl::new(s.proxy.url()).with_prefect(s.prefect_api_url());

    for (ecsctl, pool) in [(&s.ecsctl, "private"), (&fresh, "fresh")] {
        for run in ["first", "second"] {
            ecsctl.bootstrap(pool).run().assert_success();
            let ledger = ledger_path(&ecsctl.state_dir(), pool);
            assert_eq!(mode(&ledger), 0o600, "{pool} ledger after the {run} run");
            let region_dir = ledger.parent().unwrap();
            assert_eq!(mode(region_dir), 0o700, "{}", region_dir.display());
            if pool == "fresh" {
                let account_dir = region_dir.parent().unwrap();
                assert_eq!(mode(account_dir), 0o700, "{}", account_dir.display());
            }
        }
    }

    // The worker's security group: no inbound rule at all; outbound open.
    let sg = s
        .aws
        .ec2
        .describe_security_groups()
        .filters(pool::tag_filter("private"))
        .send()
        .await
        .unwrap();
    assert_eq!(sg.security_groups().len(), 1);
    let sg = &sg.security_groups()[0];
    assert!(
        sg.ip_permissions().is_empty(),
        "inbound rules: {:?}",
        sg.ip_permissions()
    );
    assert!(!sg.ip_permissions_egress().is_empty(), "no outbound rule");
    // And it is the only group the worker's service uses.
    let services = s
        .aws
        .ecs
        .describe_services()
        .cluster("ecsctl-private")
        .services("ecsctl-private-worker")
        .send()
        .await
        .unwrap();
    let network = services.services()[0]
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
        .unwrap();
    assert_eq!(network.security_groups(), [sg.group_id().unwrap()]);

    fresh.destroy("fresh").run().assert_success();
    s.destroy_all_and_assert_unchanged(&["private"], &pristine)
        .await;
}
