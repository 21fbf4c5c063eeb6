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
