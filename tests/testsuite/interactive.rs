//! `ecsctl bootstrap` on a terminal: answering dialoguer's prompts through a pseudo-terminal.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use rexpect::process::WaitStatus;

use crate::support::cli::{refused_endpoint, Ecsctl};
use crate::support::pool;
use crate::support::prefect::API_URL;
use crate::support::proxy::Proxy;
use crate::support::stack::Stack;
use crate::support::terminal::Terminal;

/// The key typed at the hidden prompt; it must reach the secret and never the screen.
const TYPED_KEY: &str = "pnu_typed_at_the_prompt_4b1d93e7";
/// How long any one prompt or result may take to appear.
const TIMEOUT: Duration = Duration::from_secs(30);

impl Terminal {
    fn termios(&self) -> libc::termios {
        // SAFETY: tcgetattr fills the zeroed struct; on a pty master it reports the terminal's modes.
        unsafe {
            let mut modes: libc::termios = std::mem::zeroed();
            assert_eq!(
                libc::tcgetattr(self.master.as_raw_fd(), &mut modes),
                0,
                "tcgetattr"
            );
            modes
        }
    }

    fn echoes(&self) -> bool {
        self.termios().c_lflag & libc::ECHO != 0
    }

    /// Turns the terminal's own echo on, as on a real terminal (rexpect starts with it off). Then
    /// a hidden prompt is observable: it is the moment the program turns echo off again.
    fn echo_on(&self) {
        let mut modes = self.termios();
        modes.c_lflag |= libc::ECHO;
        // SAFETY: sets the modes read above, with ECHO added.
        let rc = unsafe { libc::tcsetattr(self.master.as_raw_fd(), libc::TCSANOW, &modes) };
        assert_eq!(rc, 0, "tcsetattr");
    }

    /// Types `secret` at a hidden prompt, once the prompt reads with echo off. The password
    /// reader discards anything typed before that (TCSAFLUSH), so typing earlier could be lost.
    fn send_hidden(&mut self, secret: &str) {
        self.wait_for_hidden_read();
        self.send_line(secret);
    }

    /// Waits until the hidden prompt reads (echo off); see [`Terminal::echo_on`].
    fn wait_for_hidden_read(&self) {
        let deadline = Instant::now() + TIMEOUT;
        while self.echoes() {
            assert!(
                Instant::now() < deadline,
                "the hidden prompt never turned echo off\n--- terminal so far:\n{}",
                self.shown
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Answers the bootstrap prompts from the API URL (already on screen) on: the URL of the test's
/// self-hosted server (`api_url`), the hidden key (optional for such a server, typed anyway), no
/// auth string, then Enter for every default.
fn answer_from_the_url(term: &mut Terminal, api_url: &str) {
    term.send_line(api_url);
    term.expect("Prefect API key, if your server wants one");
    term.send_hidden(TYPED_KEY);
    // Seen only once the key's read is over, so the next hidden read is a new one.
    term.expect("Prefect API auth string");
    term.send_hidden("");
    term.expect("Worker image");
    term.send_line("");
    term.expect("Task CPU");
    term.send_line("");
    term.expect("Task memory");
    term.send_line("");
    term.expect("Number of workers");
    term.send_line("");
    term.expect("Keep worker logs for");
    term.send_line("");
    term.expect("Network");
    term.send_line("");
}

fn ledgers(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).expect("read state dir") {
            let path = entry.expect("state dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn answering_the_prompts_and_confirming_builds_the_stack_with_the_typed_key() {
    let s = Stack::start().await;
    let pool = "typed-pool";
    let mut term = Terminal::start(
        &s.ecsctl,
        &["bootstrap", "--pool", pool, "--no-wait"],
        TIMEOUT,
    );
    term.expect("Prefect API URL");
    // ecsctl is running now (rexpect turned echo off before exec, so this cannot be undone).
    term.echo_on();
    answer_from_the_url(&mut term, &s.prefect_api_url());

    term.expect(&format!("Plan for pool '{pool}'"));
    term.expect("Create and update these resources?");
    assert!(
        s.proxy.mutating_calls().is_empty(),
        "changed something before the confirmation: {:?}",
        s.proxy.mutating_calls()
    );
    term.send("y");
    let code = term.finish();
    assert_eq!(code, 0, "bootstrap failed:\n{}", term.shown);
    // What is typed at a visible prompt is on screen; what is typed at the hidden one is not.
    let api_url = s.prefect_api_url();
    assert!(term.shown.contains(&api_url), "{}", term.shown);
    assert!(
        !term.shown.contains(TYPED_KEY),
        "the typed key was shown on the terminal:\n{}",
        term.shown
    );

    // The secret holds exactly the typed key.
    let value = s
        .aws
        .secrets
        .get_secret_value()
        .secret_id(format!("ecsctl/{pool}/prefect-api-key"))
        .send()
        .await
        .expect("the secret exists");
    assert_eq!(value.secret_string(), Some(TYPED_KEY));

    // The service exists, with the default worker count.
    let services = s
        .aws
        .ecs
        .describe_services()
        .cluster(format!("ecsctl-{pool}"))
        .services(format!("ecsctl-{pool}-worker"))
        .send()
        .await
        .unwrap();
    let service = services
        .services()
        .iter()
        .find(|svc| svc.status() == Some("ACTIVE"))
        .unwrap_or_else(|| panic!("no active worker service: {services:?}"));
    assert_eq!(service.desired_count(), 1);

    // Enter at each prompt took the defaults; the typed URL reached the worker.
    let task = s
        .aws
        .ecs
        .describe_task_definition()
        .task_definition(service.task_definition().unwrap())
        .send()
        .await
        .unwrap();
    let task = task.task_definition().unwrap();
    assert_eq!((task.cpu(), task.memory()), (Some("512"), Some("1024")));
    let container = &task.container_definitions()[0];
    assert_eq!(
        container.image(),
        Some("prefecthq/prefect-aws:0.7.12-python3.12")
    );
    assert!(
        container
            .environment()
            .iter()
            .any(|e| e.name() == Some("PREFECT_API_URL") && e.value() == Some(api_url.as_str())),
        "{:?}",
        container.environment()
    );
    let groups = s
        .aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(format!("/ecsctl/{pool}/worker"))
        .send()
        .await
        .unwrap();
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(30));
    // A VPC was created for the pool (the "create" network choice).
    let vpcs = s
        .aws
        .ec2
        .describe_vpcs()
        .filters(pool::tag_filter(pool))
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn answering_no_at_the_confirmation_changes_nothing() {
    let s = Stack::start().await;
    let pool = "declined-pool";
    // No --pool: the first question is the pool's name.
    let mut term = Terminal::start(&s.ecsctl, &["bootstrap", "--no-wait"], TIMEOUT);
    term.expect("Prefect work pool name");
    term.echo_on();
    term.send_line(pool);
    term.expect("Prefect API URL");
    answer_from_the_url(&mut term, &s.prefect_api_url());

    term.expect(&format!("Plan for pool '{pool}'"));
    term.expect("Create and update these resources?");
    term.send("n");
    term.expect("cancelled");
    let code = term.finish();
    assert_ne!(code, 0, "declining must not exit 0:\n{}", term.shown);
    assert!(
        !term.shown.contains(TYPED_KEY),
        "the typed key was shown on the terminal:\n{}",
        term.shown
    );

    let calls = s.proxy.calls();
    assert!(
        calls.iter().any(|c| c.action == "GetCallerIdentity"),
        "ecsctl never looked at the account: {calls:?}"
    );
    assert!(
        s.proxy.mutating_calls().is_empty(),
        "declining still changed something: {:?}",
        s.proxy.mutating_calls()
    );
    assert_eq!(s.prefect_writes(), Vec::<String>::new());
    assert_eq!(s.prefect.pool(pool).await, None, "no work pool in Prefect");
    let secrets = s.aws.secrets.list_secrets().send().await.unwrap();
    assert!(secrets.secret_list().is_empty(), "{secrets:?}");
    let ledgers = ledgers(&s.ecsctl.state_dir());
    assert!(ledgers.is_empty(), "a ledger was written: {ledgers:?}");
}

/// Ctrl-C at a question ends ecsctl at once, as Ctrl-C does anywhere: killed by SIGINT (the
/// default action; nothing has been created yet) or exit code 130.
fn assert_interrupted(status: WaitStatus, shown: &str) {
    assert!(
        matches!(
            status,
            WaitStatus::Signaled(_, rexpect::process::Signal::SIGINT, _)
                | WaitStatus::Exited(_, 130)
        ),
        "Ctrl-C ended ecsctl with {status:?}\n--- terminal:\n{shown}"
    );
}

impl Terminal {
    /// Presses Ctrl-C and waits for ecsctl to end.
    fn interrupt(&mut self) -> WaitStatus {
        let pressed = Instant::now();
        self.session.send_control('c').expect("write to the pty");
        match self.session.exp_eof() {
            Ok(rest) => self.shown.push_str(&rest),
            Err(e) => panic!(
                "still running after Ctrl-C: {e}\n--- terminal so far:\n{}",
                self.shown
            ),
        }
        let status = self.session.process().wait().expect("wait for ecsctl");
        assert!(
            pressed.elapsed() < Duration::from_secs(10),
            "took {:?} to stop after Ctrl-C",
            pressed.elapsed()
        );
        status
    }
}

#[test]
fn ctrl_c_at_a_question_stops_ecsctl_at_once() {
    // Nothing answers behind the proxy: no call may be made before the questions are done.
    let proxy = Proxy::start(&refused_endpoint());
    let ecsctl = Ecsctl::new(proxy.url());

    // At the hidden key prompt, which reads a whole line with echo off.
    let mut term = Terminal::start(
        &ecsctl,
        &["bootstrap", "--pool", "ctrl-c-pool", "--no-wait"],
        TIMEOUT,
    );
    term.expect("Prefect API URL");
    term.echo_on();
    term.send_line(API_URL);
    term.expect("Prefect API key");
    term.wait_for_hidden_read();
    let status = term.interrupt();
    assert_interrupted(status, &term.shown);

    // At a list, which reads single keys in raw mode.
    let mut term = Terminal::start(
        &ecsctl,
        &["bootstrap", "--pool", "ctrl-c-pool", "--no-wait"],
        TIMEOUT,
    );
    term.expect("Prefect API URL");
    term.echo_on();
    term.send_line(API_URL);
    term.expect("Prefect API key");
    term.send_hidden(TYPED_KEY);
    term.expect("Worker image");
    term.send_line("");
    term.expect("Task CPU");
    let status = term.interrupt();
    assert_interrupted(status, &term.shown);

    assert!(proxy.calls().is_empty(), "{:?}", proxy.calls());
    let ledgers = ledgers(&ecsctl.state_dir());
    assert!(ledgers.is_empty(), "{ledgers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_at_the_confirmation_changes_nothing_and_exits_130() {
    let s = Stack::start().await;
    let pool = "interrupted-pool";
    let mut term = Terminal::start(
        &s.ecsctl,
        &["bootstrap", "--pool", pool, "--no-wait"],
        TIMEOUT,
    );
    term.expect("Prefect API URL");
    term.echo_on();
    answer_from_the_url(&mut term, &s.prefect_api_url());
    term.expect("Create and update these resources?");
    let status = term.interrupt();
    assert!(
        matches!(status, WaitStatus::Exited(_, 130)),
        "Ctrl-C at the confirmation ended ecsctl with {status:?}\n--- terminal:\n{}",
        term.shown
    );
    assert!(term.shown.contains("interrupted"), "{}", term.shown);
    assert!(
        s.proxy.mutating_calls().is_empty(),
        "{:?}",
        s.proxy.mutating_calls()
    );
    assert_eq!(s.prefect_writes(), Vec::<String>::new());
}

#[test]
fn a_bad_flag_is_reported_before_any_question() {
    let proxy = Proxy::start(&refused_endpoint());
    let ecsctl = Ecsctl::new(proxy.url());
    let mut term = Terminal::start(
        &ecsctl,
        &[
            "bootstrap",
            "--pool",
            "flag-pool",
            "--no-wait",
            "--tag",
            "novalue",
        ],
        TIMEOUT,
    );
    let code = term.finish();
    assert_eq!(code, 2, "{}", term.shown);
    assert!(term.shown.contains("--tag 'novalue'"), "{}", term.shown);
    assert!(
        !term.shown.contains("Prefect API URL"),
        "asked questions before rejecting the flag:\n{}",
        term.shown
    );
    assert!(proxy.calls().is_empty(), "{:?}", proxy.calls());
}

#[test]
fn the_cpu_question_offers_only_sizes_that_allow_the_given_memory() {
    let proxy = Proxy::start(&refused_endpoint());
    let ecsctl = Ecsctl::new(proxy.url());
    let mut term = Terminal::start(
        &ecsctl,
        &[
            "bootstrap",
            "--pool",
            "memory-pool",
            "--no-wait",
            "--memory",
            "8192",
        ],
        TIMEOUT,
    );
    term.expect("Prefect API URL");
    term.echo_on();
    term.send_line(API_URL);
    term.expect("Prefect API key");
    term.send_hidden(TYPED_KEY);
    term.expect("Worker image");
    term.send_line("");
    term.expect("Task CPU");
    let start = term.shown.len();
    term.expect("4096 CPU units");
    term.send_line("");
    // With --memory given there is no memory question: the worker count comes next.
    term.expect("Number of workers");
    let question = term.shown[start..].to_string();
    for offered in ["1024 CPU units", "2048 CPU units", "4096 CPU units"] {
        assert!(
            question.contains(offered),
            "{offered} not offered:\n{question}"
        );
    }
    for refused in [
        "256 CPU units",
        "512 CPU units",
        "8192 CPU units",
        "16384 CPU units",
    ] {
        assert!(
            !question.contains(refused),
            "{refused} offered:\n{question}"
        );
    }
    let status = term.interrupt();
    assert_interrupted(status, &term.shown);
    assert!(proxy.calls().is_empty(), "{:?}", proxy.calls());
}

/// A key pasted at the hidden prompt with a zero-width space in it, or as a whole `export` line,
/// is refused there, naming the character and its position, and asked again; nothing is called.
#[test]
fn a_key_pasted_at_the_prompt_with_invisible_characters_is_refused_and_asked_again() {
    let proxy = Proxy::start(&refused_endpoint());
    let ecsctl = Ecsctl::new(proxy.url());
    let mut term = Terminal::start(
        &ecsctl,
        &["bootstrap", "--pool", "pasted-pool", "--no-wait"],
        TIMEOUT,
    );
    term.expect("Prefect API URL");
    term.echo_on();
    term.send_line(API_URL);
    term.expect("Prefect API key");
    term.send_hidden("pnu_pasted\u{200b}secret0042");
    term.expect("U+200B (a zero-width space, invisible) at character 11 of 21");
    term.expect("Prefect API key");
    term.send_hidden("export PREFECT_API_KEY=pnu_pastedsecret0042");
    // (rexpect reads the screen byte by byte: the "…" after it would not match)
    term.expect("whole shell line `export PREFECT_API_KEY=");
    term.expect("Prefect API key");
    term.wait_for_hidden_read();
    let status = term.interrupt();
    assert_interrupted(status, &term.shown);
    assert!(!term.shown.contains("secret0042"), "{}", term.shown);
    assert!(proxy.calls().is_empty(), "{:?}", proxy.calls());
}
