//! One pool name in two regions of one account: two independent stacks. IAM is global (the
//! emulator keeps it so, as AWS does), so everything account-global must carry the region.

use serde_json::Value;

use crate::support::aws::{Clients, REGION};
use crate::support::inventory::Inventory;
use crate::support::stack::Stack;

const OTHER: &str = "us-west-2";

impl Stack {
    /// Clients straight to the emulator in `region`.
    async fn clients_in(&self, region: &str) -> Clients {
        Clients::with_region(&self.emulator.endpoint(), region).await
    }

    /// `status --output json` of `pool` in `region`.
    fn status_in(&self, pool: &str, region: &str) -> Value {
        let out = self
            .ecsctl
            .cmd([
                "status", "--pool", pool, "--output", "json", "--region", region,
            ])
            .run();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status JSON does not parse ({e}):\n{out:?}"))
    }
}

/// The execution role's grant: the secret ARNs its inline policy lets ECS read.
async fn secret_grant(aws: &Clients, role: &str) -> String {
    let policy = aws
        .iam
        .get_role_policy()
        .role_name(role)
        .policy_name("ecsctl-read-prefect-api-key")
        .send()
        .await
        .unwrap_or_else(|e| panic!("reading the inline policy of {role}: {e:?}"));
    percent_encoding::percent_decode_str(policy.policy_document())
        .decode_utf8_lossy()
        .into_owned()
}

/// An inventory without the account's IAM roles, which every region's listing shows.
fn regional(inventory: &Inventory) -> Inventory {
    Inventory {
        roles: Vec::new(),
        ..inventory.clone()
    }
}

fn all_present(report: &Value) -> bool {
    report["resources"]
        .as_array()
        .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["state"] == "present"))
}

#[tokio::test(flavor = "multi_thread")]
async fn one_pool_in_two_regions_is_two_stacks_and_destroying_one_leaves_the_other() {
    let s = Stack::start().await;
    let west = s.clients_in(OTHER).await;
    let pristine = s.inventory().await;
    let pristine_west = Inventory::take(&west).await;

    s.bootstrap("twin", &[]).assert_success();
    let east_only = s.inventory().await;
    let east_grant = secret_grant(&s.aws, "ecsctl-twin-use1-execution").await;
    // One Prefect work pool serves one cluster: the second region gets a workspace of its own,
    // played here by taking the first region's pool out of the shared server meanwhile.
    let east_pool = s.prefect.pool("twin").await.expect("east's work pool");
    s.prefect.delete_pool("twin").await;
    s.bootstrap("twin", &["--region", OTHER]).assert_success();

    // Two sets of roles, each tagged with its region; the first region's grant is untouched.
    for (role, region) in [
        ("ecsctl-twin-use1-execution", REGION),
        ("ecsctl-twin-use1-worker", REGION),
        ("ecsctl-twin-use1-flow-run", REGION),
        ("ecsctl-twin-usw2-execution", OTHER),
        ("ecsctl-twin-usw2-worker", OTHER),
        ("ecsctl-twin-usw2-flow-run", OTHER),
    ] {
        let got = s.aws.iam.get_role().role_name(role).send().await;
        let got = got.unwrap_or_else(|e| panic!("role {role} missing: {e:?}"));
        let tags = got.role().unwrap().tags();
        assert!(
            tags.iter()
                .any(|t| t.key() == "ecsctl:region" && t.value() == region),
            "{role} lacks ecsctl:region={region}: {tags:?}"
        );
    }
    assert_eq!(
        secret_grant(&s.aws, "ecsctl-twin-use1-execution").await,
        east_grant,
        "the second region rewrote the first region's secret grant"
    );
    assert!(east_grant.contains(&format!(":{REGION}:")), "{east_grant}");

    // A region where the pool never was: destroy finds nothing and changes nothing.
    s.proxy.clear();
    s.destroy("twin", &["--region", "eu-west-1"])
        .assert_success();
    assert_eq!(s.mutating_actions(), Vec::<String>::new());

    // Destroying the second region leaves the first exactly as it was.
    s.destroy("twin", &["--region", OTHER]).assert_success();
    s.prefect
        .create_pool("twin", "ecs", Some(east_pool["base_job_template"].clone()))
        .await;
    east_only.assert_unchanged(&s.inventory().await);
    regional(&pristine_west).assert_unchanged(&regional(&Inventory::take(&west).await));
    let report = s.status_in("twin", REGION);
    assert!(all_present(&report), "{report:#}");
    assert_eq!(
        secret_grant(&s.aws, "ecsctl-twin-use1-execution").await,
        east_grant
    );

    s.destroy_all_and_assert_unchanged(&["twin"], &pristine)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_region_never_takes_over_or_deletes_the_first_regions_work_pool() {
    let s = Stack::start().await;
    let pristine = s.inventory().await;
    s.bootstrap("shared-ws", &[]).assert_success();
    let east = s.inventory().await;
    let pool = s.prefect.pool("shared-ws").await.expect("the work pool");

    s.clear_calls();
    let out = s.bootstrap("shared-ws", &["--region", OTHER]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("serving this pool's stack in us-east-1"),
        "{}",
        out.stderr
    );
    assert_eq!(s.stack_changes(), Vec::<String>::new());
    assert_eq!(s.prefect_writes(), Vec::<String>::new());

    s.destroy("shared-ws", &["--region", OTHER])
        .assert_success();
    assert_eq!(s.prefect_writes(), Vec::<String>::new());
    assert_eq!(s.prefect.pool("shared-ws").await, Some(pool));
    east.assert_unchanged(&s.inventory().await);

    s.destroy_all_and_assert_unchanged(&["shared-ws"], &pristine)
        .await;
}
