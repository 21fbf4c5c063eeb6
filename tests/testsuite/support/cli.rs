//! Runs the `ecsctl` binary as a child process in a clean, test-owned environment.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

use super::aws::{ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY};
use super::prefect::{self, API_KEY, API_URL};

/// What every ecsctl run of one test shares: the AWS endpoint, the Prefect API and a private
/// state directory, so that ledgers persist from one command to the next but never leak between
/// tests.
pub struct Ecsctl {
    endpoint: String,
    home: TempDir,
    binary: PathBuf,
    /// `PREFECT_API_URL` of [`Ecsctl::bootstrap`]: a Cloud workspace ecsctl must never reach
    /// ([`API_URL`]) unless [`Ecsctl::with_prefect`] set a real server.
    prefect_api_url: String,
    /// With a real server: the test (its thread's name) whose pools these are, for
    /// [`prefect::claim_pool`].
    prefect_owner: Option<String>,
}

impl Ecsctl {
    /// Runs will talk to `endpoint` (a [`super::proxy::Proxy`] or the emulator itself).
    pub fn new(endpoint: impl Into<String>) -> Ecsctl {
        Ecsctl::with_binary(endpoint, env!("CARGO_BIN_EXE_ecsctl"))
    }

    /// Like [`Ecsctl::new`], running the executable at `binary` instead of the one Cargo built
    /// for this test (the benchmark runs the release build).
    pub fn with_binary(endpoint: impl Into<String>, binary: impl Into<PathBuf>) -> Ecsctl {
        let home = tempfile::tempdir().expect("create ecsctl temp dir");
        std::fs::create_dir(home.path().join("state")).expect("create state dir");
        Ecsctl {
            endpoint: endpoint.into(),
            home,
            binary: binary.into(),
            prefect_api_url: API_URL.to_owned(),
            prefect_owner: None,
        }
    }

    /// Bootstraps go to the Prefect API at `api_url` (e.g. a proxy in front of the shared test
    /// server, `http://127.0.0.1:PORT/api`). Each pool bootstrapped is claimed for the test
    /// creating this runner (see [`prefect::claim_pool`]).
    pub fn with_prefect(mut self, api_url: impl Into<String>) -> Ecsctl {
        self.prefect_api_url = api_url.into();
        self.prefect_owner = Some(
            std::thread::current()
                .name()
                .unwrap_or("an unnamed thread")
                .to_owned(),
        );
        self
    }

    /// The `PREFECT_API_URL` bootstraps get.
    pub fn prefect_api_url(&self) -> &str {
        &self.prefect_api_url
    }

    /// The directory passed as `ECSCTL_STATE_DIR`.
    pub fn state_dir(&self) -> PathBuf {
        self.home.path().join("state")
    }

    /// An `ecsctl <args>` run, to be refined with [`Invocation::env`] and friends.
    pub fn cmd<I, S>(&self, args: I) -> Invocation
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        self.claim_bootstrapped_pool(&args);
        let mut command = Command::new(&self.binary);
        for (key, _) in std::env::vars_os() {
            if steers_ecsctl(&key.to_string_lossy()) {
                command.env_remove(&key);
            }
        }
        command
            .args(args)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env("AWS_REGION", REGION)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            // Files that do not exist: ~/.aws/config and ~/.aws/credentials stay out of it.
            .env("AWS_CONFIG_FILE", self.missing_file("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.missing_file("aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("ECSCTL_STATE_DIR", self.state_dir())
            .stdin(Stdio::null());
        Invocation(command)
    }

    /// `ecsctl bootstrap --pool <pool> --yes --no-wait` with the Prefect settings in the
    /// environment ([`Ecsctl::prefect_api_url`], [`API_KEY`]): the run a script would make.
    /// Refine it with [`Invocation::args`] or override a setting with [`Invocation::env`].
    pub fn bootstrap(&self, pool: &str) -> Invocation {
        self.cmd(["bootstrap", "--pool", pool, "--yes", "--no-wait"])
            .env("PREFECT_API_URL", &self.prefect_api_url)
            .env("PREFECT_API_KEY", API_KEY)
    }

    /// For `bootstrap --pool P …` on the shared Prefect server: P is this test's.
    fn claim_bootstrapped_pool<S: AsRef<OsStr>>(&self, args: &[S]) {
        let Some(owner) = &self.prefect_owner else {
            return;
        };
        let args: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
        if args.first() != Some(&OsStr::new("bootstrap")) {
            return;
        }
        if let Some(pool) = args
            .windows(2)
            .find(|pair| pair[0] == "--pool")
            .map(|pair| pair[1].to_string_lossy())
        {
            prefect::claim_pool(&pool, owner);
        }
    }

    /// `ecsctl destroy --pool <pool> --yes`.
    pub fn destroy(&self, pool: &str) -> Invocation {
        self.cmd(["destroy", "--pool", pool, "--yes"])
    }

    fn missing_file(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }
}

/// An endpoint on a loopback port that was bound and closed again, so connecting is refused:
/// for runs that must not reach AWS at all, or must fail at once when they try.
pub fn refused_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let address = listener.local_addr().expect("loopback address");
    format!("http://{address}")
}

/// Whether an inherited variable would change how ecsctl runs: an AWS profile or per-service
/// endpoint, Prefect settings, or `CI=true` (which forces non-interactive mode).
fn steers_ecsctl(key: &str) -> bool {
    key == "CI"
        || ["AWS_", "PREFECT_", "ECSCTL_"]
            .iter()
            .any(|prefix| key.starts_with(prefix))
}

/// One ecsctl run being set up.
pub struct Invocation(Command);

impl Invocation {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Invocation {
        self.0.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Invocation
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.0.args(args);
        self
    }

    /// Sets (or overrides) an environment variable, e.g. `PREFECT_API_KEY`.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Invocation {
        self.0.env(key, value);
        self
    }

    /// Reads standard input from `file` (e.g. `/dev/zero`) instead of nothing.
    pub fn stdin_from(mut self, file: &std::path::Path) -> Invocation {
        let file = std::fs::File::open(file).expect("open the file for stdin");
        self.0.stdin(file);
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Invocation {
        self.0.env_remove(key);
        self
    }

    /// Runs to completion and captures the output.
    pub fn run(mut self) -> Output {
        self.0.output().expect("run ecsctl").into()
    }

    /// Starts without waiting, stdout and stderr piped (e.g. to kill it mid-run).
    pub fn spawn(mut self) -> Child {
        self.0
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ecsctl")
    }

    /// The prepared command, e.g. for `rexpect::session::spawn_command` to drive prompts.
    pub fn into_command(self) -> Command {
        self.0
    }
}

/// What a finished ecsctl run printed and how it exited.
#[derive(Clone, Debug)]
pub struct Output {
    /// Exit code; `None` if killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Output {
    fn from(output: std::process::Output) -> Output {
        Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics, showing both streams, unless the exit code is 0.
    pub fn assert_success(&self) -> &Output {
        self.assert_code(0)
    }

    /// Panics, showing both streams, unless the exit code is `code`.
    pub fn assert_code(&self, code: i32) -> &Output {
        assert_eq!(
            self.code,
            Some(code),
            "ecsctl exited with {:?}, expected {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }
}
