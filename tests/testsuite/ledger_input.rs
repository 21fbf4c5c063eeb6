//! A ledger that is corrupt, of another pool, account or region, or of an unknown format is bad
//! input: every command refuses it with exit 2 and a message naming the problem, changes nothing in
//! AWS, and leaves the file exactly as it was.

use std::path::Path;

use crate::support::cli::Ecsctl;
use crate::support::emulator::Emulator;
use crate::support::pool;
use crate::support::prefect::{API_KEY, API_URL};
use crate::support::proxy::Proxy;

const POOL: &str = "ledgered";

fn ledger(pool: &str, account: &str, region: &str, format: u32) -> String {
    serde_json::json!({
        "format": format,
        "pool": pool,
        "account": account,
        "region": region,
        "spec": null,
        "created": [],
        "used": [],
    })
    .to_string()
}

#[test]
fn a_bad_ledger_is_refused_by_every_command_and_left_untouched() {
    let emulator = Emulator::start();
    let proxy = Proxy::start(&emulator.endpoint());
    let ecsctl = Ecsctl::new(proxy.url());
    let path = pool::ledger_path(&ecsctl.state_dir(), POOL);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();

    let cases = [
        (
            "corrupt",
            "{\"format\": 1, \"pool\": ".to_string(),
            "not a valid ecsctl ledger",
        ),
        (
            "not JSON at all",
            "hello".to_string(),
            "not a valid ecsctl ledger",
        ),
        (
            "another pool's",
            ledger("other-pool", pool::ACCOUNT, "us-east-1", 1),
            "belongs to pool 'other-pool'",
        ),
        (
            "another account's",
            ledger(POOL, "999999999999", "us-east-1", 1),
            "account 999999999999",
        ),
        (
            "another region's",
            ledger(POOL, pool::ACCOUNT, "eu-west-1", 1),
            "region eu-west-1",
        ),
        (
            "a newer format",
            ledger(POOL, pool::ACCOUNT, "us-east-1", 99),
            "format 99",
        ),
    ];
    let commands: [&[&str]; 3] = [
        &["bootstrap", "--pool", POOL, "--yes", "--no-wait"],
        &["destroy", "--pool", POOL, "--yes"],
        &["status", "--pool", POOL],
    ];
    let mut failures = Vec::new();
    for (what, content, needle) in &cases {
        for args in commands {
            std::fs::write(&path, content).unwrap();
            proxy.clear();
            let out = ecsctl
                .cmd(args)
                .env("PREFECT_API_URL", API_URL)
                .env("PREFECT_API_KEY", API_KEY)
                .run();
            let mutating = proxy.mutating_calls();
            let after = read(&path);
            let ok = out.code == Some(2)
                && out.stderr.contains(needle)
                && mutating.is_empty()
                && after == *content;
            if !ok {
                failures.push(format!(
                    "{what} ledger, `ecsctl {}`: exit {:?}, mutating calls {:?}, ledger unchanged: {}\n--- stderr\n{}",
                    args.join(" "),
                    out.code,
                    mutating.iter().map(|c| &c.action).collect::<Vec<_>>(),
                    after == *content,
                    out.stderr
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("the ledger is still there")
}
