//! Credentials and region as the aws CLI finds them: a chosen profile (`--profile`, `AWS_PROFILE`)
//! wins over keys in the environment, an unknown profile is bad input, and an empty `AWS_REGION`
//! is as good as unset. Two profiles in a test `~/.aws`, told apart by the account the emulator
//! says each one's keys belong to.

use std::path::Path;

use serde_json::Value;

use crate::support::cli::Invocation;
use crate::support::stack::Stack;

/// The account whose role profile `alpha`'s keys come from (the environment's keys are the
/// emulator's default account, 123456789012).
const ALPHA_ACCOUNT: &str = "111111111111";

impl Stack {
    /// Writes `config` and `credentials` files with profiles `alpha` (another account's keys,
    /// region eu-west-1) and `beta` (the default account's keys, region ap-southeast-2), and a
    /// `[default]` profile with region ca-central-1.
    async fn two_profiles(&self, dir: &Path) {
        let assumed = self
            .aws
            .sts
            .assume_role()
            .role_arn(format!("arn:aws:iam::{ALPHA_ACCOUNT}:role/ecsctl-test"))
            .role_session_name("alpha")
            .send()
            .await
            .expect("assume a role in the other account");
        let keys = assumed.credentials().expect("credentials");
        std::fs::write(
            dir.join("config"),
            "[default]\nregion = ca-central-1\n[profile alpha]\nregion = eu-west-1\n\
             [profile beta]\nregion = ap-southeast-2\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("credentials"),
            format!(
                "[alpha]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n\
                 [beta]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
                keys.access_key_id(),
                keys.secret_access_key(),
                keys.session_token()
            ),
        )
        .unwrap();
    }

    /// `status --output json` with the test's profiles files; the environment keeps its keys.
    fn status_with_profiles(&self, dir: &Path, extra: &[&str]) -> Invocation {
        self.ecsctl
            .cmd(["status", "--pool", "creds", "--output", "json"])
            .args(extra)
            .env("AWS_CONFIG_FILE", dir.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials"))
    }
}

/// Where status looked: (account, region).
fn looked_in(run: Invocation) -> (String, String) {
    let out = run.run();
    out.assert_code(1); // the pool was never bootstrapped
    let report: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("status JSON does not parse ({e}):\n{out:?}"));
    (
        report["account"].as_str().unwrap().to_string(),
        report["region"].as_str().unwrap().to_string(),
    )
}

fn at(account: &str, region: &str) -> (String, String) {
    (account.to_string(), region.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chosen_profile_wins_over_the_environments_keys_and_region() {
    let s = Stack::start().await;
    let dir = tempfile::tempdir().unwrap();
    s.two_profiles(dir.path()).await;

    // The environment alone: its keys, its region.
    assert_eq!(
        looked_in(s.status_with_profiles(dir.path(), &[])),
        at("123456789012", "us-east-1")
    );
    // --profile, or AWS_PROFILE: the profile's keys and region, though the environment has both.
    assert_eq!(
        looked_in(s.status_with_profiles(dir.path(), &["--profile", "alpha"])),
        at(ALPHA_ACCOUNT, "eu-west-1")
    );
    assert_eq!(
        looked_in(
            s.status_with_profiles(dir.path(), &[])
                .env("AWS_PROFILE", "alpha")
        ),
        at(ALPHA_ACCOUNT, "eu-west-1")
    );
    // The flag beats the variable, and --region beats the profile's region.
    assert_eq!(
        looked_in(
            s.status_with_profiles(dir.path(), &["--profile", "beta", "--region", "us-east-2"])
                .env("AWS_PROFILE", "alpha")
        ),
        at("123456789012", "us-east-2")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_profile_is_bad_input_naming_the_profiles_found() {
    let s = Stack::start().await;
    let dir = tempfile::tempdir().unwrap();
    s.two_profiles(dir.path()).await;
    s.clear_calls();
    for run in [
        s.status_with_profiles(dir.path(), &["--profile", "prod"]),
        s.status_with_profiles(dir.path(), &[])
            .env("AWS_PROFILE", "prod"),
    ] {
        let out = run.run();
        out.assert_code(2);
        assert!(
            out.stderr.contains("'prod' is not a profile")
                && out.stderr.contains("profiles found: alpha, beta, default"),
            "{}",
            out.stderr
        );
    }
    assert!(s.proxy.calls().is_empty(), "{:?}", s.proxy.calls());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_aws_region_falls_back_like_the_aws_cli() {
    let s = Stack::start().await;
    let dir = tempfile::tempdir().unwrap();
    s.two_profiles(dir.path()).await;
    let empty = |extra: &[&str]| {
        s.status_with_profiles(dir.path(), extra)
            .env("AWS_REGION", "")
    };
    assert_eq!(
        looked_in(empty(&[]).env("AWS_DEFAULT_REGION", "us-west-1")),
        at("123456789012", "us-west-1")
    );
    assert_eq!(
        looked_in(empty(&[])),
        at("123456789012", "ca-central-1"),
        "the default profile's region"
    );
    assert_eq!(
        looked_in(empty(&["--profile", "beta"])),
        at("123456789012", "ap-southeast-2")
    );
}
