//! How fast ecsctl is against a distant AWS: the release binary against the emulator, behind the
//! test harness's proxy adding a fixed delay to every call (100 ms by default, like a far region).
//!
//! Each run gets a fresh emulator and times four scenarios in order: a fresh `bootstrap --yes
//! --no-wait`, the same bootstrap again (a no-op), `status` and `destroy --yes`. Per scenario it
//! reports the wall time (median, min–max), the AWS calls and mutating calls, calls repeated with
//! the same input, and two floors: the chain of dependent calls the run actually took, and the
//! chain the design needs (see [`Scenario::design_chain`]). Then `ecsctl --help` start-up and the
//! binary's size. Results go to stdout as a table and to a JSON file, to compare between commits.
//!
//! Run it with `./scripts/bench [--runs N] [--delay-ms MS] [--json PATH]`. It only runs when
//! started by `cargo bench` (which passes `--bench`), so `cargo test --all-targets` stays fast.

/// The parts of the test harness (tests/testsuite/support) the benchmark drives. It uses only some
/// of what they offer; the test binary uses all of it (and warns about what it does not), so
/// unused items here are expected.
#[path = "../tests/testsuite/support"]
#[allow(dead_code)]
mod support {
    pub mod aws;
    pub mod cli;
    pub mod emulator;
    pub mod prefect;
    pub mod proxy;
}

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};
use support::aws::Clients;
use support::cli::{Ecsctl, Output};
use support::emulator::Emulator;
use support::proxy::{Call, Proxy};

const POOL: &str = "bench";
/// The pool of the unrecorded cycle that warms the emulator up before the timed one.
const WARM_UP_POOL: &str = "warmup";
/// A placeholder key: the test harness's Prefect server (support::prefect, started once, on this
/// machine, behind a proxy adding the same delay as AWS's) has no authentication.
const API_KEY: &str = "pnu_bench_not_a_real_key";
/// The delay the targets are stated for; at any other delay they are not judged.
const TARGET_DELAY: Duration = Duration::from_millis(100);
/// Answers this close together are taken as simultaneous when naming a chain's links.
const SIMULTANEOUS: Duration = Duration::from_millis(10);
/// `ecsctl --help` must start in under this long.
const HELP_TARGET: Duration = Duration::from_millis(20);

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "Times ecsctl's scenarios against the emulator behind a latency proxy"
)]
struct Options {
    /// Delay the proxy adds to every AWS call, in milliseconds
    #[arg(long, env = "ECSCTL_BENCH_DELAY_MS", default_value_t = 100)]
    delay_ms: u64,

    /// Runs per scenario, each on a fresh emulator
    #[arg(long, env = "ECSCTL_BENCH_RUNS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,

    /// Where to write the results as JSON (relative to the package root under cargo)
    #[arg(long, env = "ECSCTL_BENCH_JSON", default_value = "bench-results.json")]
    json: PathBuf,

    /// The ecsctl executable to time [default: $CARGO_TARGET_DIR/release/ecsctl, with
    /// CARGO_TARGET_DIR defaulting to ~/.cache/ecsctl/target as in ./scripts]
    #[arg(long, env = "ECSCTL_BENCH_BIN")]
    bin: Option<PathBuf>,

    /// How many `ecsctl --help` runs to take the median of
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    help_runs: u32,

    /// Set by `cargo bench`; without it nothing runs (e.g. under `cargo test --all-targets`)
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> ExitCode {
    let options = Options::parse();
    if !options.bench {
        eprintln!(
            "bench: not started by `cargo bench` (no --bench); skipping. Run ./scripts/bench."
        );
        return ExitCode::SUCCESS;
    }
    let binary = options.bin.clone().unwrap_or_else(release_binary);
    if !binary.is_file() {
        eprintln!(
            "bench: {} not found: build it with `cargo build --release` (./scripts/bench does), or pass --bin",
            binary.display()
        );
        return ExitCode::FAILURE;
    }
    let delay = Duration::from_millis(options.delay_ms);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");

    let mut runs: Vec<Vec<Measurement>> = Vec::new();
    for run in 1..=options.runs {
        eprintln!(
            "bench: run {run}/{} ({} ms per call)",
            options.runs,
            delay.as_millis()
        );
        match one_run(&runtime, &binary, delay) {
            Ok(measurements) => runs.push(measurements),
            Err(message) => {
                eprintln!("bench: run {run} failed: {message}");
                return ExitCode::FAILURE;
            }
        }
    }
    let summaries: Vec<Summary> = Scenario::ALL
        .iter()
        .enumerate()
        .map(|(i, &scenario)| Summary::new(scenario, runs.iter().map(|r| &r[i]).collect(), delay))
        .collect();
    let help = time_help(&binary, options.help_runs);
    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    let (commit, dirty) = git_commit();

    print!(
        "{}",
        report(&options, &binary, size, &help, &commit, dirty, &summaries)
    );
    let results = to_json(&options, &binary, size, &help, &commit, dirty, &summaries);
    let text = serde_json::to_string_pretty(&results).expect("serialize results");
    if let Err(e) = std::fs::write(&options.json, text + "\n") {
        eprintln!("bench: cannot write {}: {e}", options.json.display());
        return ExitCode::FAILURE;
    }
    eprintln!("bench: results written to {}", options.json.display());
    ExitCode::SUCCESS
}

/// `$CARGO_TARGET_DIR/release/ecsctl`, the target dir defaulting as in `./scripts`.
fn release_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/ecsctl/target")
        });
    target.join("release/ecsctl")
}

// ---- scenarios ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Bootstrap,
    Rerun,
    Status,
    Destroy,
}

impl Scenario {
    /// In the order one run performs them, each starting from where the previous left the account.
    const ALL: [Scenario; 4] = [
        Scenario::Bootstrap,
        Scenario::Rerun,
        Scenario::Status,
        Scenario::Destroy,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Bootstrap => "bootstrap",
            Scenario::Rerun => "re-run",
            Scenario::Status => "status",
            Scenario::Destroy => "destroy",
        }
    }

    fn args(self, pool: &'static str) -> Vec<&'static str> {
        match self {
            Scenario::Bootstrap | Scenario::Rerun => {
                vec!["bootstrap", "--pool", pool, "--yes", "--no-wait"]
            }
            Scenario::Status => vec!["status", "--pool", pool],
            Scenario::Destroy => vec!["destroy", "--pool", pool, "--yes"],
        }
    }

    /// Runs this scenario for `pool`; an unexpected exit code is an error showing the output.
    /// Returns when the process was started and when it had exited.
    fn run(
        self,
        ecsctl: &Ecsctl,
        prefect_api_url: &str,
        pool: &'static str,
    ) -> Result<(Output, Instant, Instant), String> {
        let invocation = ecsctl
            .cmd(self.args(pool))
            .env("PREFECT_API_URL", prefect_api_url)
            .env("PREFECT_API_KEY", API_KEY);
        let began = Instant::now();
        let output = invocation.run();
        let ended = Instant::now();
        if !self.accepts(output.code) {
            return Err(format!(
                "`ecsctl {}` exited with {:?}\n--- stdout\n{}\n--- stderr\n{}",
                self.args(pool).join(" "),
                output.code,
                output.stdout,
                output.stderr
            ));
        }
        Ok((output, began, ended))
    }

    /// `status` exits 1 on the emulator, which never runs the worker task: that is the truth.
    fn accepts(self, code: Option<i32>) -> bool {
        match self {
            Scenario::Status => matches!(code, Some(0 | 1)),
            _ => code == Some(0),
        }
    }

    /// The fewest dependent round trips this scenario needs on the default stack, under the
    /// benchmark's conditions, if every call that need not wait for another runs alongside it.
    /// Each entry is one round trip that needs an answer from the one before; what runs
    /// alongside it is in the comments. Floor = length × delay. This judges the design, where
    /// the measured chain (see [`Measurement::chain`]) only shows what the implementation did.
    fn design_chain(self) -> &'static [&'static str] {
        match self {
            Scenario::Bootstrap => &[
                // The account keys the ledger (and its lock), whose ids the looks use first.
                "sts:GetCallerIdentity",
                // Every step's reads at once, by ledger id, name or tag (+ the AZs for subnets).
                "look: all reads at once",
                // Alongside: CreateSecret, CreateLogGroup, CreateRole ×2, CreateCluster,
                // CreateInternetGateway (all tagged at creation, none needs another's id).
                "ec2:CreateVpc",
                // Need the VPC id. Alongside: CreateRouteTable, AttachInternetGateway,
                // ModifyVpcAttribute, PutRolePolicy/AttachRolePolicy (need the secret ARN and the
                // roles), RegisterTaskDefinition (needs the secret ARN; role ARNs are derived).
                "ec2:CreateSubnet ×2 + CreateSecurityGroup",
                // Needs subnets, security group, cluster and task definition. Alongside:
                // AssociateRouteTable ×2 and CreateRoute, which need the subnets, route table and
                // attached gateway. (If the service waits for the whole network step, add one.)
                "ecs:CreateService",
            ],
            // Everything exists: find each resource once and compare it with the inputs.
            Scenario::Rerun => &["sts:GetCallerIdentity", "look: all reads at once"],
            // The service, its tasks and logs are read alongside the looks. On AWS, stopped tasks
            // (ListTasks → DescribeTasks) and log lines (DescribeLogStreams → GetLogEvents) add a
            // third round trip; the emulator has neither, so the answer to the first is empty.
            Scenario::Status => &["sts:GetCallerIdentity", "look: all reads at once"],
            Scenario::Destroy => &[
                "sts:GetCallerIdentity",
                "look: all reads at once",
                // force=true: no scale-to-0 first. The emulator answers INACTIVE at once; on AWS
                // a DescribeServices poll until INACTIVE adds a round trip (or minutes).
                // Alongside: DisassociateRouteTable ×2, DeregisterTaskDefinition,
                // DeleteSecret, DeleteLogGroup.
                "ecs:DeleteService",
                // Need the service gone (its ENIs and public IPs). Alongside: DeleteCluster,
                // DeleteRouteTable, DeleteTaskDefinitions, the roles' DeleteRolePolicy and
                // DetachRolePolicy.
                "ec2:DeleteSubnet ×2 + DeleteSecurityGroup + DetachInternetGateway",
                // Alongside: DeleteInternetGateway, DeleteRole ×2.
                "ec2:DeleteVpc",
                // Prove nothing of the pool is left.
                "verify: all reads at once",
            ],
        }
    }

    /// The target for this scenario at 100 ms per call, as text, and whether it is met.
    fn target(self, s: &Summary) -> (String, bool) {
        let median = s.wall.median;
        match self {
            Scenario::Bootstrap => (
                "≤ 2× design floor and < 1.0 s".to_owned(),
                median <= 2.0 * s.design_floor_ms() && median < 1000.0,
            ),
            Scenario::Rerun => (
                "0 mutating, 0 repeated, < 0.4 s".to_owned(),
                s.mutating.max == 0.0 && s.repeated.max == 0.0 && median < 400.0,
            ),
            Scenario::Status => ("< 0.4 s".to_owned(), median < 400.0),
            Scenario::Destroy => ("< 1.5 s".to_owned(), median < 1500.0),
        }
    }
}

// ---- one run ----

/// One scenario's run of ecsctl, with the calls the proxy saw.
struct Measurement {
    wall: Duration,
    code: Option<i32>,
    /// When the process was started and when it had exited, on the proxy's clock.
    began: Instant,
    ended: Instant,
    calls: Vec<Call>,
}

/// A fresh, warmed-up emulator behind a fresh proxy; every scenario in order. An unexpected
/// exit code ends the benchmark: numbers of a run that failed half-way would mean nothing.
fn one_run(
    runtime: &tokio::runtime::Runtime,
    binary: &Path,
    delay: Duration,
) -> Result<Vec<Measurement>, String> {
    let emulator = Emulator::start();
    runtime.block_on(warm_up_services(&emulator.endpoint()));
    warm_up_operations(binary, &emulator.endpoint())?;
    let proxy = Proxy::start(&emulator.endpoint());
    proxy.set_latency(delay);
    // Prefect is as far away as AWS: its calls get the same delay (and are not in the chain).
    let prefect = Proxy::start(support::prefect::server().url());
    prefect.set_latency(delay);
    let prefect_api_url = format!("{}/api", prefect.url());
    let ecsctl = Ecsctl::with_binary(proxy.url(), binary);

    let mut measurements = Vec::new();
    for scenario in Scenario::ALL {
        proxy.clear();
        let (output, began, ended) = scenario.run(&ecsctl, &prefect_api_url, POOL)?;
        measurements.push(Measurement {
            wall: ended - began,
            code: output.code,
            began,
            ended,
            calls: proxy.calls(),
        });
    }
    Ok(measurements)
}

/// One read per service, straight to the emulator (not recorded, no delay): moto builds each
/// service's backend on first use, which takes far longer than a call (seconds for IAM, which
/// loads the managed policies), and would otherwise be timed as ecsctl's.
async fn warm_up_services(endpoint: &str) {
    let aws = Clients::new(endpoint).await;
    let (sts, iam, ec2, ecs, secrets, logs) = tokio::join!(
        aws.sts.get_caller_identity().send(),
        aws.iam.list_roles().send(),
        aws.ec2.describe_vpcs().send(),
        aws.ecs.list_clusters().send(),
        aws.secrets.list_secrets().send(),
        aws.logs.describe_log_groups().send(),
    );
    sts.expect("warm up STS");
    iam.expect("warm up IAM");
    ec2.expect("warm up EC2");
    ecs.expect("warm up ECS");
    secrets.expect("warm up Secrets Manager");
    logs.expect("warm up CloudWatch Logs");
}

/// Moto also pays on the first use of each operation (it renders answers from templates it
/// compiles when first needed): a first bootstrap on a fresh emulator spends hundreds of ms
/// there that AWS never would, and one throwaway call per service does not cover it. So one
/// whole cycle for another pool runs first, straight to the emulator, unrecorded and undelayed;
/// its destroy leaves nothing of that pool in the way of the timed one.
fn warm_up_operations(binary: &Path, endpoint: &str) -> Result<(), String> {
    let ecsctl = Ecsctl::with_binary(endpoint, binary);
    for scenario in Scenario::ALL {
        scenario
            .run(&ecsctl, &support::prefect::server().api_url(), WARM_UP_POOL)
            .map_err(|e| format!("warming up: {e}"))?;
    }
    Ok(())
}

impl Measurement {
    fn mutating(&self) -> usize {
        self.calls.iter().filter(|c| c.mutating).count()
    }

    /// Calls that asked a question already asked in this run (same action, same input), as
    /// `service:Action` → how many times it was asked. A retry after an answer that said "not
    /// yet" also counts: worth a look, not always wrong.
    fn repeated(&self) -> BTreeMap<String, usize> {
        let mut asked: BTreeMap<(&str, &str, u64), usize> = BTreeMap::new();
        for call in &self.calls {
            *asked
                .entry((&call.service, &call.action, call.body_digest))
                .or_default() += 1;
        }
        let mut repeated = BTreeMap::new();
        for ((service, action, _), count) in asked {
            if count > 1 {
                *repeated.entry(format!("{service}:{action}")).or_default() += count;
            }
        }
        repeated
    }

    /// How many calls were answers already had: the total of `repeated` minus one per question.
    fn repeated_count(&self) -> usize {
        let distinct: std::collections::HashSet<_> = self
            .calls
            .iter()
            .map(|c| (&c.service, &c.action, c.body_digest))
            .collect();
        self.calls.len() - distinct.len()
    }

    /// The longest chain of calls in which each started after the previous one had finished.
    ///
    /// Why this is a floor: every call takes at least the delay, and a call that started only
    /// after another had answered did not overlap it: whether it needed that answer or was just
    /// scheduled after it, the run made those round trips one after the other. However much
    /// concurrency there is, a run that orders its calls like this cannot finish before
    /// length × delay; the rest is process start-up, the emulator, CPU and time between calls.
    /// It measures the implementation as it is: shortening this chain is what makes it faster.
    fn chain(&self) -> Vec<&Call> {
        let mut order: Vec<&Call> = self.calls.iter().collect();
        order.sort_by_key(|c| c.started);
        // longest[i]: the longest chain ending with order[i]; before[i]: its previous call.
        let mut longest = vec![1usize; order.len()];
        let mut before: Vec<Option<usize>> = vec![None; order.len()];
        for i in 0..order.len() {
            let answered: Vec<usize> = (0..i)
                .filter(|&j| order[j].finished <= order[i].started)
                .collect();
            let Some(length) = answered.iter().map(|&j| longest[j]).max() else {
                continue;
            };
            // Timing alone cannot say which of the equally long chains this call waited for;
            // name the likeliest. Answers that came within SIMULTANEOUS of the last one are
            // indistinguishable (the emulator answers in bursts): among those, one of the same
            // service (mostly the same step), else the last to answer.
            let ends = answered.iter().filter(|&&j| longest[j] == length);
            let last = ends.clone().map(|&j| order[j].finished).max();
            let likeliest = ends
                .filter(|&&j| last.is_some_and(|last| order[j].finished + SIMULTANEOUS >= last))
                .max_by_key(|&&j| (order[j].service == order[i].service, order[j].finished));
            longest[i] = length + 1;
            before[i] = likeliest.copied();
        }
        let Some(mut at) = (0..order.len()).max_by_key(|&i| (longest[i], order[i].finished)) else {
            return Vec::new();
        };
        let mut chain = vec![order[at]];
        while let Some(prev) = before[at] {
            chain.push(order[prev]);
            at = prev;
        }
        chain.reverse();
        chain
    }

    /// Where the wall time went, along the chain: before the first call (process start-up,
    /// credentials, reading the ledger), inside the chain's calls (the added delay, and the rest:
    /// the emulator answering), between them (waiting on calls off the chain, or CPU), and
    /// after the last.
    fn breakdown(&self, delay: Duration) -> Breakdown {
        let chain = self.chain();
        let (Some(first), Some(last)) = (chain.first(), chain.last()) else {
            return Breakdown {
                before_first: self.wall,
                ..Breakdown::default()
            };
        };
        let in_calls: Duration = chain.iter().map(|c| c.finished - c.started).sum();
        let between = chain
            .windows(2)
            .map(|pair| pair[1].started - pair[0].finished)
            .sum();
        let delays = delay * chain.len() as u32;
        Breakdown {
            before_first: first.started.saturating_duration_since(self.began),
            delays,
            emulator: in_calls.saturating_sub(delays),
            between,
            after_last: self.ended.saturating_duration_since(last.finished),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Breakdown {
    before_first: Duration,
    /// The chain's calls: the delay the proxy added to each, and the rest of their time.
    delays: Duration,
    emulator: Duration,
    between: Duration,
    after_last: Duration,
}

// ---- summaries ----

/// Median, min and max of one number over the runs.
#[derive(Clone, Debug)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
    runs: Vec<f64>,
}

impl Stat {
    fn new(runs: Vec<f64>) -> Stat {
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        };
        Stat {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            runs,
        }
    }

    /// A count: one number if every run agreed, else the range.
    fn count(&self) -> String {
        if self.min == self.max {
            format!("{}", self.min)
        } else {
            format!("{}–{}", self.min, self.max)
        }
    }

    fn to_json(&self) -> Value {
        json!({ "median": self.median, "min": self.min, "max": self.max, "runs": self.runs })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Summary<'a> {
    scenario: Scenario,
    delay: Duration,
    wall: Stat,
    calls: Stat,
    mutating: Stat,
    repeated: Stat,
    chain: Stat,
    /// The run whose wall time is the median (the lower of the two middle ones for an even
    /// count): its chain and timeline are shown as representative.
    median_run: usize,
    measurements: Vec<&'a Measurement>,
}

impl<'a> Summary<'a> {
    fn new(scenario: Scenario, measurements: Vec<&'a Measurement>, delay: Duration) -> Self {
        let stat = |f: &dyn Fn(&Measurement) -> f64| {
            Stat::new(measurements.iter().map(|m| f(m)).collect())
        };
        let mut by_wall: Vec<usize> = (0..measurements.len()).collect();
        by_wall.sort_by_key(|&i| measurements[i].wall);
        Summary {
            scenario,
            delay,
            wall: stat(&|m| ms(m.wall)),
            calls: stat(&|m| m.calls.len() as f64),
            mutating: stat(&|m| m.mutating() as f64),
            repeated: stat(&|m| m.repeated_count() as f64),
            chain: stat(&|m| m.chain().len() as f64),
            median_run: by_wall[(by_wall.len() - 1) / 2],
            measurements,
        }
    }

    fn chain_floor_ms(&self) -> f64 {
        self.chain.median * ms(self.delay)
    }

    fn design_floor_ms(&self) -> f64 {
        self.scenario.design_chain().len() as f64 * ms(self.delay)
    }

    /// The median wall time as a multiple of a floor; none at zero delay, where floors are 0.
    fn ratio(&self, floor_ms: f64) -> Option<f64> {
        (floor_ms > 0.0).then(|| self.wall.median / floor_ms)
    }

    /// The target and whether it is met; `None` when the delay is not the targets' 100 ms.
    fn target(&self) -> Option<(String, bool)> {
        (self.delay == TARGET_DELAY).then(|| self.scenario.target(self))
    }
}

/// `ecsctl --help` wall times in ms, after one untimed run (to have the binary in page cache).
fn time_help(binary: &Path, runs: u32) -> Stat {
    let once = || {
        let started = Instant::now();
        let status = Command::new(binary)
            .arg("--help")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run ecsctl --help");
        assert!(status.success(), "ecsctl --help failed: {status}");
        ms(started.elapsed())
    };
    once();
    Stat::new((0..runs).map(|_| once()).collect())
}

/// The short commit id, and whether the working tree differs from it.
fn git_commit() -> (String, bool) {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    (commit, dirty)
}

// ---- output ----

fn times(ratio: Option<f64>) -> String {
    ratio.map_or("-".to_owned(), |r| format!("{r:.2}"))
}

fn seconds(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}

fn report(
    options: &Options,
    binary: &Path,
    size: u64,
    help: &Stat,
    commit: &str,
    dirty: bool,
    summaries: &[Summary],
) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "\necsctl benchmark: {} ms added to every AWS call, {} run(s) per scenario, each on a fresh emulator",
        options.delay_ms, options.runs
    );
    let _ = writeln!(
        w,
        "commit {commit}{}, binary {} ({:.1} MB, {size} bytes)\n",
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        },
        binary.display(),
        size as f64 / 1e6,
    );
    let _ = writeln!(
        w,
        "{:<10} {:>7}  {:<13} {:>6} {:>8} {:>8} {:>6} {:>8} {:>9} {:>8} {:>8}  target",
        "scenario",
        "median",
        "min–max",
        "calls",
        "mutating",
        "repeated",
        "chain",
        "chain fl",
        "design fl",
        "×chain",
        "×design"
    );
    for s in summaries {
        let target = match s.target() {
            Some((text, true)) => format!("ok ({text})"),
            Some((text, false)) => format!("MISSED ({text})"),
            None => "-".to_owned(),
        };
        let _ = writeln!(
            w,
            "{:<10} {:>7}  {:<13} {:>6} {:>8} {:>8} {:>6} {:>8} {:>9} {:>8} {:>8}  {target}",
            s.scenario.name(),
            seconds(s.wall.median),
            format!("{:.2}–{:.2} s", s.wall.min / 1000.0, s.wall.max / 1000.0),
            s.calls.count(),
            s.mutating.count(),
            s.repeated.count(),
            s.chain.count(),
            format!("{:.0} ms", s.chain_floor_ms()),
            format!("{:.0} ms", s.design_floor_ms()),
            times(s.ratio(s.chain_floor_ms())),
            times(s.ratio(s.design_floor_ms())),
        );
    }
    let help_ok = help.median < ms(HELP_TARGET);
    let _ = writeln!(
        w,
        "\n`ecsctl --help`: {:.1} ms median of {} ({:.1}–{:.1} ms), target < {} ms: {}",
        help.median,
        help.runs.len(),
        help.min,
        help.max,
        HELP_TARGET.as_millis(),
        if help_ok { "ok" } else { "MISSED" }
    );
    let _ = writeln!(
        w,
        "repeated = calls asking what the run had already asked (same action and input; destroy's \
         final check re-asks by design)\nchain = the longest run of calls each starting after the \
         previous answered (median); fl = floor = chain × delay; ×chain, ×design = median ÷ floor"
    );

    let _ = writeln!(
        w,
        "\nWhere the time goes (the median run of each scenario; offsets from the process start):"
    );
    for s in summaries {
        let m = s.measurements[s.median_run];
        let chain = m.chain();
        let b = m.breakdown(s.delay);
        let _ = writeln!(
            w,
            "\n{} (run {}, {}, exit {}): a chain of {} calls; {:.0} ms before the first call, \
             {:.0} ms of delay + {:.0} ms of emulator in the chain's calls, {:.0} ms between them, \
             {:.0} ms after the last",
            s.scenario.name(),
            s.median_run + 1,
            seconds(ms(m.wall)),
            m.code.map_or("-".to_owned(), |c| c.to_string()),
            chain.len(),
            ms(b.before_first),
            ms(b.delays),
            ms(b.emulator),
            ms(b.between),
            ms(b.after_last),
        );
        let mut previous: Option<&Call> = None;
        for call in &chain {
            let gap = previous.map_or(String::new(), |p| {
                format!("+{:.0} ms after", ms(call.started - p.finished))
            });
            let _ = writeln!(
                w,
                "  {:>6.0} ms  {:>4.0} ms  {:<16} {:<4} {}{}",
                ms(call.started - m.began),
                ms(call.finished - call.started),
                gap,
                call.service,
                call.action,
                if call.mutating { " *" } else { "" },
            );
            previous = Some(call);
        }
        let repeated = m.repeated();
        if !repeated.is_empty() {
            let list: Vec<String> = repeated.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
            let _ = writeln!(w, "  asked more than once: {}", list.join(", "));
        }
        let _ = writeln!(
            w,
            "  design chain: {}",
            s.scenario.design_chain().join(" → ")
        );
    }
    let _ = writeln!(w, "\n(* = mutating call)");
    out
}

fn to_json(
    options: &Options,
    binary: &Path,
    size: u64,
    help: &Stat,
    commit: &str,
    dirty: bool,
    summaries: &[Summary],
) -> Value {
    let timestamp = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format timestamp");
    let scenarios: Vec<Value> = summaries.iter().map(scenario_json).collect();
    let all_met = summaries
        .iter()
        .map(|s| s.target().map(|(_, met)| met))
        .chain([Some(help.median < ms(HELP_TARGET))])
        .collect::<Option<Vec<bool>>>()
        .map(|met| met.into_iter().all(|m| m));
    json!({
        "commit": commit,
        "dirty": dirty,
        "timestamp": timestamp,
        "delay_ms": options.delay_ms,
        "runs": options.runs,
        "binary": {
            "path": binary,
            "bytes": size,
            "mb": (size as f64 / 1e6 * 10.0).round() / 10.0,
        },
        "help_ms": help.to_json(),
        "help_target_met": help.median < ms(HELP_TARGET),
        "scenarios": scenarios,
        // null when the delay is not the one the targets are stated for.
        "all_targets_met": all_met,
    })
}

fn scenario_json(s: &Summary) -> Value {
    let m = s.measurements[s.median_run];
    let b = m.breakdown(s.delay);
    let offset = |t: Instant| (ms(t.saturating_duration_since(m.began)) * 10.0).round() / 10.0;
    let call_json = |c: &Call| {
        json!({
            "service": c.service,
            "action": c.action,
            "mutating": c.mutating,
            "status": c.status,
            "start_ms": offset(c.started),
            "end_ms": offset(c.finished),
        })
    };
    let (target, met) = match s.target() {
        Some((text, met)) => (Some(text), Some(met)),
        None => (None, None),
    };
    json!({
        "name": s.scenario.name(),
        "command": format!("ecsctl {}", s.scenario.args(POOL).join(" ")),
        "wall_ms": s.wall.to_json(),
        "calls": s.calls.to_json(),
        "mutating_calls": s.mutating.to_json(),
        "repeated_calls": s.repeated.to_json(),
        "chain_length": s.chain.to_json(),
        "chain_floor_ms": s.chain_floor_ms(),
        "design_chain": s.scenario.design_chain(),
        "design_floor_ms": s.design_floor_ms(),
        "ratio_to_chain_floor": s.ratio(s.chain_floor_ms()),
        "ratio_to_design_floor": s.ratio(s.design_floor_ms()),
        "target": target,
        "target_met": met,
        "median_run": {
            "run": s.median_run + 1,
            "exit_code": m.code,
            "wall_ms": ms(m.wall),
            "before_first_call_ms": ms(b.before_first),
            "chain_delay_ms": ms(b.delays),
            "chain_emulator_ms": ms(b.emulator),
            "between_chain_calls_ms": ms(b.between),
            "after_last_call_ms": ms(b.after_last),
            "chain": m.chain().into_iter().map(call_json).collect::<Vec<_>>(),
            "repeated": m.repeated(),
            "calls": m.calls.iter().map(call_json).collect::<Vec<_>>(),
        },
    })
}
