//! Command-line definitions. Only parsing lives here; `config` turns these into validated settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "ecsctl",
    version,
    about = "Stand up, check and tear down a Prefect worker on AWS ECS Fargate",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create (or complete, or update) everything a Prefect ECS worker needs.
    Bootstrap(Box<BootstrapArgs>),
    /// Remove exactly what ecsctl created for a pool.
    Destroy(DestroyArgs),
    /// Report whether a pool's worker is healthy, and why not.
    Status(StatusArgs),
    /// Break a pool's lock left in the account by a run that was killed.
    Unlock(UnlockArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// Options every command understands; they may be given before or after the subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// AWS region [env: AWS_REGION, or the profile's region]
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,

    /// AWS named profile [env: AWS_PROFILE]
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,

    /// Send AWS calls to this endpoint instead of AWS (e.g. a local emulator) [env: AWS_ENDPOINT_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// Where ledgers are kept [default: $XDG_STATE_HOME/ecsctl or ~/.local/state/ecsctl]
    #[arg(long, global = true, env = "ECSCTL_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Result format on stdout
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// More detail on stderr (repeat for more)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// No colours [env: NO_COLOR]
    #[arg(long, global = true)]
    pub no_color: bool,
}

/// Options naming the pool and controlling how a run behaves, shared by every command.
#[derive(Debug, Args)]
pub struct PoolArgs {
    /// Prefect work pool name; every resource is named and tagged after it [env: ECSCTL_POOL]
    #[arg(long, env = "ECSCTL_POOL", value_name = "NAME")]
    pub pool: Option<String>,

    /// If another run holds the pool's lock, wait for it instead of failing
    #[arg(long)]
    pub wait_lock: bool,
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    #[command(flatten)]
    pub pool: PoolArgs,

    /// Prefect API URL the worker connects to [env: PREFECT_API_URL]
    #[arg(long, value_name = "URL")]
    pub prefect_api_url: Option<String>,

    /// Read the Prefect API key from this file ('-' for stdin) instead of PREFECT_API_KEY
    #[arg(long, value_name = "PATH|-")]
    pub prefect_api_key_file: Option<PathBuf>,

    /// Read the basic-auth string of a self-hosted Prefect server (user:password) from this file ('-' for stdin) instead of PREFECT_API_AUTH_STRING
    #[arg(long, value_name = "PATH|-")]
    pub prefect_api_auth_string_file: Option<PathBuf>,

    /// Worker container image [default: prefecthq/prefect-aws:0.7.12-python3.12]
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,

    /// Task CPU units (256, 512, 1024, 2048, 4096, 8192, 16384) [default: 512]
    #[arg(long, value_name = "UNITS")]
    pub cpu: Option<u32>,

    /// Task memory in MiB, valid for the CPU size on Fargate [default: 1024]
    #[arg(long, value_name = "MIB")]
    pub memory: Option<u32>,

    /// Number of worker tasks to run [default: 1]
    #[arg(long, value_name = "N")]
    pub desired_count: Option<u32>,

    /// Days CloudWatch keeps worker logs (a CloudWatch retention value) [default: 30]
    #[arg(long, value_name = "DAYS")]
    pub log_retention_days: Option<u32>,

    /// Extra tag for every resource, KEY=VALUE (repeatable)
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,

    /// Use this existing VPC instead of creating one (needs --subnet-ids); never deleted by ecsctl
    #[arg(long, value_name = "VPC_ID", requires = "subnet_ids")]
    pub vpc_id: Option<String>,

    /// Subnets of --vpc-id to run the worker in, comma-separated
    #[arg(long, value_name = "ID,ID", value_delimiter = ',', requires = "vpc_id")]
    pub subnet_ids: Vec<String>,

    /// Fargate capacity for flow runs: fargate or spot [default: fargate]
    #[arg(long, value_name = "fargate|spot")]
    pub flow_run_capacity: Option<String>,

    /// Managed policy to attach to the flow-run role ecsctl creates, e.g. for S3 (repeatable)
    #[arg(long = "flow-run-policy-arn", value_name = "ARN")]
    pub flow_run_policy_arns: Vec<String>,

    /// Run flows as this existing role instead of ecsctl's flow-run role; never changed or deleted
    #[arg(long, value_name = "ARN")]
    pub flow_run_role_arn: Option<String>,

    /// Never prompt; take every input from flags and environment (also when CI=true or stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Show the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Do not wait for the service to reach its desired running count
    #[arg(long)]
    pub no_wait: bool,

    /// How long to wait for the service to be steady, e.g. 600, 90s, 10m [default: 10m]
    #[arg(long, value_name = "DURATION")]
    pub wait_timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub pool: PoolArgs,

    /// Never prompt (also when CI=true or stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// List what would be deleted and delete nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Keep the deleted secret recoverable for this many days (7-30) instead of deleting it at once
    #[arg(long, value_name = "DAYS")]
    pub secret_recovery_days: Option<u32>,

    /// How long to wait for the service to drain and AWS to release network interfaces, e.g. 90s, 15m [default: 15m]
    #[arg(long, value_name = "DURATION")]
    pub wait_timeout: Option<String>,

    /// Stop the pool's running flow runs (tasks the worker started) instead of refusing to go on
    #[arg(long)]
    pub stop_flow_runs: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub pool: PoolArgs,

    /// Worker log lines to show (0-10000; 0 shows none)
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub log_lines: u32,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Prefect work pool whose lock to break [env: ECSCTL_POOL]
    #[arg(long, env = "ECSCTL_POOL", value_name = "NAME")]
    pub pool: Option<String>,
}
