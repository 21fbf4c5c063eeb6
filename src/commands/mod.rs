//! The commands. Each one validates its inputs before any AWS call, opens a [`Session`] on the pool
//! (credentials, ledger, lock), and hands the work to the engine.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use crate::account::{self, AccountState};
use crate::aws::{self, Aws, AwsTarget, Identity};
use crate::cli::GlobalArgs;
use crate::config::{self, InputError};
use crate::engine::StepFailure;
use crate::error::CliError;
use crate::ledger::{self, Ledger, LedgerHandle, LedgerPaths, PoolLock};
use crate::prefect::Auth;
use crate::progress::{self, Progress};
use crate::steps::{Context, ItemState, Names, PrefectAccess, Run, StepPlan};
use outcome::{Journal, Tracking};

pub mod bootstrap;
pub mod destroy;
mod lock;
pub mod outcome;
mod secret_file;
pub mod status;
pub mod unlock;

/// Settings every command shares, validated.
pub struct Common {
    pub target: AwsTarget,
    pub state_dir: PathBuf,
    pub progress: Arc<dyn Progress>,
    /// What the run has done so far; prints its result (see [`outcome`]).
    pub journal: Arc<Journal>,
}

impl Common {
    pub fn from_args(args: GlobalArgs, journal: Arc<Journal>) -> Result<Self, CliError> {
        let mut problems = Vec::new();
        let region = args
            .region
            .as_deref()
            .map(config::validate_region)
            .transpose()
            .map_err(|e| problems.push(e))
            .ok()
            .flatten();
        if args.region.is_none() {
            // aws-config reads these itself; a malformed one would otherwise surface only as a
            // confusing failure of the first AWS call.
            if let Some((var, value)) = env_var(&["AWS_REGION", "AWS_DEFAULT_REGION"]) {
                if let Err(e) = config::validate_region_from(var, &value) {
                    problems.push(e);
                }
            }
        }
        let endpoint_url = match (args.endpoint_url.as_deref(), env_var(&["AWS_ENDPOINT_URL"])) {
            (Some(url), _) => Some(config::validate_endpoint_url(url)),
            (None, Some((var, url))) => Some(config::validate_endpoint_url_from(var, &url)),
            (None, None) => None,
        }
        .transpose()
        .map_err(|e| problems.push(e))
        .ok()
        .flatten();
        let state_dir = config::state_dir(args.state_dir)
            .map_err(|e| problems.push(e))
            .ok();
        let profile = match (args.profile, env_var(&["AWS_PROFILE"])) {
            (Some(p), _) if p.trim().is_empty() => {
                problems.push(InputError("--profile is empty".into()));
                None
            }
            (Some(p), _) => Some(("--profile", p)),
            (None, Some((var, p))) => Some((var, p)),
            (None, None) => None,
        };
        if let Some((source, name)) = &profile {
            if let Err(e) = known_profile(source, name) {
                problems.push(e);
            }
        }
        if !problems.is_empty() {
            return Err(bad_inputs(problems));
        }
        let color = !args.no_color && std::env::var_os("NO_COLOR").is_none();
        Ok(Self {
            target: AwsTarget {
                region,
                profile: profile.map(|(_, name)| name),
                endpoint_url,
            },
            state_dir: state_dir.unwrap_or_default(),
            progress: Arc::new(Tracking {
                inner: progress::for_stderr(color, args.verbose),
                journal: journal.clone(),
            }),
            journal,
        })
    }

    /// Prints the result on stdout, as text or JSON (once; see [`Journal::print`]).
    pub fn print(&self, text: &str, json: &serde_json::Value) {
        self.journal.print(text, json);
    }
}

/// A selected profile must exist in the shared config or credentials file, as the aws CLI insists.
fn known_profile(source: &str, name: &str) -> Result<(), InputError> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(default))
    };
    let (config, credentials) = (
        file("AWS_CONFIG_FILE", ".aws/config"),
        file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
    );
    let read = |path: &PathBuf| std::fs::read_to_string(path).unwrap_or_default();
    let found = config::profile_names(&read(&config), &read(&credentials));
    let files = format!("{} or {}", config.display(), credentials.display());
    config::validate_profile(source, name, &found, &files)
}

/// The first of these environment variables that is set and not empty, with its value.
fn env_var(names: &[&'static str]) -> Option<(&'static str, String)> {
    names.iter().find_map(|name| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .map(|v| (*name, v))
    })
}

pub fn bad_inputs(problems: Vec<InputError>) -> CliError {
    CliError::BadInput(format!("invalid input:\n{}", config::InputErrors(problems)))
}

/// Whether we may ask questions: not with --yes, not in CI, not without a terminal.
pub fn interactive(yes: bool) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    !yes && !ci && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// A pool, opened: who we are, its ledger (this machine's and the account's copy, merged), what
/// the account says of its lock, and (unless read-only) this machine's lock.
pub struct Session {
    pub aws: Aws,
    pub identity: Identity,
    pub paths: LedgerPaths,
    pub ledger: Option<Ledger>,
    pub account: AccountState,
    pub seen: account::Seen,
    _lock: Option<PoolLock>,
}

impl Session {
    /// Connects, finds the account, takes the lock (when `lock_as` names the command) and reads
    /// the ledger. A corrupt or foreign ledger is bad input: it is left untouched.
    pub async fn open(
        common: &Common,
        pool: &str,
        lock_as: Option<&str>,
        wait_lock: bool,
    ) -> Result<Self, CliError> {
        let aws = aws::connect(&common.target).await?;
        let account = AccountState::new(&aws, pool);
        // The account's copy is read alongside the first call: it adds no round trip.
        let (identity, seen) = tokio::join!(aws.identity(), account.read());
        let (identity, seen) = (identity?, seen?);
        let paths = LedgerPaths::new(&common.state_dir, &identity.account, &identity.region, pool);
        let lock = match lock_as {
            Some(command) => Some(take_lock(common, &paths, pool, command, wait_lock).await?),
            None => None,
        };
        let ledger = ledger::load(&paths, pool, &identity.account, &identity.region)
            .map_err(|e| CliError::BadInput(format!("{e:#}")))?;
        Ok(Self {
            ledger: account::merge(ledger, seen.ledger.clone()),
            aws,
            identity,
            paths,
            account,
            seen,
            _lock: lock,
        })
    }

    /// Takes in what the account says now (after waiting for or taking its lock).
    pub fn absorb(&mut self, seen: account::Seen) {
        self.ledger = account::merge(self.ledger.take(), seen.ledger.clone());
        self.seen = seen;
    }

    /// Says so when the pool has no ledger here: its resources are then found by their tags.
    pub fn note_if_no_ledger(&self, common: &Common, pool: &str) {
        if self.ledger.is_none() {
            common.progress.message(&format!(
                "no ledger for pool '{pool}' at {}; finding its resources by their ecsctl:pool tag and the {} IAM path",
                self.paths.file.display(),
                crate::steps::IAM_PATH
            ));
        }
    }

    /// The step context for this session.
    pub fn context(
        &self,
        pool: &str,
        spec: Option<config::StackSpec>,
        run: Run,
        persist: bool,
        progress: Arc<dyn Progress>,
    ) -> Context {
        let ledger = self
            .ledger
            .clone()
            .unwrap_or_else(|| Ledger::new(pool, &self.identity.account, &self.identity.region));
        Context {
            aws: self.aws.clone(),
            identity: self.identity.clone(),
            names: Names::new(pool, &self.identity.region).keeping_recorded(&ledger),
            spec,
            ledger: LedgerHandle::new(ledger, self.paths.clone(), persist),
            progress,
            run,
            outputs: Default::default(),
            shared: Default::default(),
            prefect: Default::default(),
        }
    }
}

/// Prefect credentials for destroy and status from PREFECT_API_KEY / PREFECT_API_AUTH_STRING,
/// checked before any call like bootstrap's: a key pasted with an invisible character is bad
/// input, not silently replaced by the pool's own secret.
pub fn prefect_auth_from_env() -> Result<Option<Auth>, CliError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let key = env("PREFECT_API_KEY").map(|k| config::validate_api_key(&k));
    let auth_string = env("PREFECT_API_AUTH_STRING").map(|a| config::validate_auth_string(&a));
    let problems: Vec<InputError> = [key.clone(), auth_string.clone()]
        .into_iter()
        .flatten()
        .filter_map(Result::err)
        .collect();
    if !problems.is_empty() {
        return Err(bad_inputs(problems));
    }
    let key = key.and_then(Result::ok).map(Auth::Key);
    Ok(key.or(auth_string.and_then(Result::ok).map(Auth::AuthString)))
}

/// Prefect for destroy and status: the URL of the last bootstrap (or PREFECT_API_URL) and the
/// credentials from the environment; without them the steps read the pool's own secrets.
pub fn prefect_from_env(spec: Option<&config::StackSpec>, auth: Option<Auth>) -> PrefectAccess {
    let url = std::env::var("PREFECT_API_URL")
        .ok()
        .filter(|v| !v.is_empty());
    PrefectAccess {
        api_url: spec.map(|s| s.prefect_api_url.clone()).or(url),
        auth,
    }
}

/// Takes the pool's lock. When another run holds it and `wait` is set, says who and waits, off
/// the async threads so that Ctrl-C still ends the wait.
async fn take_lock(
    common: &Common,
    paths: &LedgerPaths,
    pool: &str,
    command: &str,
    wait: bool,
) -> Result<PoolLock, CliError> {
    let held = match PoolLock::acquire(paths, pool, command, false) {
        Ok(lock) => return Ok(lock),
        Err(e) if !wait => return Err(CliError::Failed(e)),
        Err(e) => match e.downcast::<ledger::LockedError>() {
            Ok(held) => held,
            Err(e) => return Err(CliError::Failed(e)),
        },
    };
    common.progress.message(&format!(
        "pool '{pool}' is locked by another ecsctl run ({}); waiting for it to finish…",
        held.holder
    ));
    let (paths, pool, command) = (paths.clone(), pool.to_string(), command.to_string());
    tokio::task::spawn_blocking(move || PoolLock::acquire(&paths, &pool, &command, true))
        .await
        .map_err(|e| CliError::Failed(e.into()))?
        .map_err(CliError::Failed)
}

/// Joins step failures into one error that names each step.
pub fn step_failures(doing: &str, failures: &[StepFailure]) -> anyhow::Error {
    let lines: Vec<String> = failures.iter().map(|f| format!("  - {f}")).collect();
    anyhow::anyhow!("{doing} failed:\n{}", lines.join("\n"))
}

/// One line per resource: a symbol, the kind, the name and what will happen.
pub fn render_plan(plans: &[StepPlan]) -> String {
    let mut out = String::new();
    for plan in plans {
        for item in &plan.items {
            let (symbol, what) = match &item.state {
                ItemState::Missing => ("+", "create".to_string()),
                ItemState::Present { id } => ("=", format!("in place ({id})")),
                ItemState::Drifted { id, drift } => {
                    ("~", format!("update ({id}): {}", drift.plan_text()))
                }
                ItemState::Used { id } => ("·", format!("yours, used as is ({id})")),
                ItemState::Foreign { id } => ("!", format!("exists but is not ecsctl's ({id})")),
            };
            let what = match &item.detail {
                Some(detail) => format!("{what}; {detail}"),
                None => what,
            };
            out.push_str(&format!(
                "  {symbol} {:<16} {:<18} {:<40} {what}\n",
                plan.step,
                item.kind.label(),
                item.name
            ));
        }
    }
    out
}

/// The pool from the flag or env, or a prompt on a terminal, or a bad-input error naming the flag.
pub fn require_pool(pool: Option<String>, yes: bool) -> Result<String, CliError> {
    match pool {
        Some(p) => Ok(config::validate_pool_name(&p)?),
        None if interactive(yes) => Ok(crate::prompt::ask_pool()?),
        None => Err(CliError::BadInput(
            "missing input: the pool name (--pool or ECSCTL_POOL)".into(),
        )),
    }
}
