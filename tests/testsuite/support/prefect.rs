//! Prefect for the tests: a real Prefect server (prefect and prefect-aws from PyPI, pinned, in the
//! virtualenv `./scripts/install-prefect` makes), started once per test process on a free loopback
//! port and shared by every test in it, a REST client for arranging and checking its work pools,
//! and the settings handed to ecsctl when a run must never reach Prefect.
//!
//! The server keeps its state (sqlite) in a temporary `PREFECT_HOME`. It is killed when the test
//! process ends, however it ends: normally through an exit handler that also removes that
//! directory, and by the kernel (`PR_SET_PDEATHSIG`) if the process is killed or crashes, so CI
//! never leaves one behind.
//!
//! Because the server is shared, pool names must be unique across the whole test binary:
//! [`claim_pool`] panics when two tests bootstrap the same pool.
//!
//! To run Prefect's own CLI or Python against the server (e.g. `prefect worker start`), use
//! [`PrefectServer::command`].

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A Prefect Cloud workspace's API URL, as `prefect cloud login` sets `PREFECT_API_URL`: for runs
/// that stop before any call (bad input) or must never reach Prefect.
pub const API_URL: &str = "https://api.prefect.cloud/api/accounts/0f9a1c2e-1111-2222-3333-444455556666/workspaces/9e8d7c6b-aaaa-bbbb-cccc-ddddeeeeffff";
/// A planted API key: unusual enough that finding it in any output or file means a leak. The
/// test server has no authentication and ignores it.
pub const API_KEY: &str = "pnu_planted_key_8c2f0e91d4";

/// What `./scripts/install-prefect` pins; the fixture refuses another version.
const PREFECT_VERSION: &str = "3.9.1";
/// How long the server may take to answer `GET /api/health` (about 15 s on a quiet 2-core
/// machine; a loaded CI machine gets more).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How often readiness is re-checked while starting.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Tries with a fresh port when the one picked was taken before the server could bind it.
const START_ATTEMPTS: usize = 3;
/// The server's stdout and stderr, in its home.
const LOG_FILE: &str = "server.log";

/// The virtualenv holding prefect and prefect-aws: `$ECSCTL_PREFECT_VENV`, by default
/// `~/.cache/ecsctl/prefect-venv` (as in `./scripts/install-prefect`).
pub fn venv() -> PathBuf {
    if let Some(dir) = std::env::var_os("ECSCTL_PREFECT_VENV") {
        return dir.into();
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    Path::new(&home).join(".cache/ecsctl/prefect-venv")
}

/// The shared server, started by the first caller (the others wait for it). Panics, naming
/// `./scripts/install-prefect`, when Prefect is not installed, and with the server's log when it
/// does not start: a test that needs Prefect never passes without it.
pub fn server() -> &'static PrefectServer {
    static SERVER: OnceLock<Result<PrefectServer, String>> = OnceLock::new();
    match SERVER.get_or_init(PrefectServer::start) {
        Ok(server) => server,
        Err(e) => panic!("{e}"),
    }
}

/// The running Prefect server.
pub struct PrefectServer {
    /// `http://127.0.0.1:PORT`.
    url: String,
    /// Its `PREFECT_HOME` (database, log); the CLI runs of [`PrefectServer::command`] get their
    /// own home below it.
    home: PathBuf,
    /// Exit status once the server has ended (it should not while tests run).
    exited: Arc<Mutex<Option<ExitStatus>>>,
}

impl PrefectServer {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What `PREFECT_API_URL` is for this server: [`PrefectServer::url`] + `/api`.
    pub fn api_url(&self) -> String {
        format!("{}/api", self.url)
    }

    /// Everything the server has written so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.home.join(LOG_FILE)).unwrap_or_default()
    }

    /// A client of the server's REST API, straight to it (not through any test proxy).
    pub fn api(&self) -> PrefectApi {
        PrefectApi::new(&self.api_url())
    }

    /// `program` from the Prefect virtualenv (`prefect`, `python`, …) set up to talk to this
    /// server: `PREFECT_API_URL` (override it with `.env` to go through a proxy), a private
    /// `PREFECT_HOME`, the virtualenv first on `PATH`, no inherited `PREFECT_*` settings, no
    /// analytics, stdin closed.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let bin = venv().join("bin");
        let mut command = Command::new(bin.join(program.as_ref()));
        clear_prefect_env(&mut command);
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin];
        paths.extend(std::env::split_paths(&path));
        let client_home = self.home.join("client");
        fs::create_dir_all(&client_home).expect("create the Prefect client's home");
        command
            .env(
                "PATH",
                std::env::join_paths(paths).expect("a PATH without separators in its parts"),
            )
            .env("PREFECT_HOME", client_home)
            .env("PREFECT_API_URL", self.api_url())
            .env("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
            .env("DO_NOT_TRACK", "1")
            .stdin(Stdio::null());
        command
    }

    fn start() -> Result<PrefectServer, String> {
        let prefect = venv().join("bin/prefect");
        if !prefect.exists() {
            return Err(format!(
                "{} not found: run ./scripts/install-prefect first (the integration tests need a \
                 real Prefect server)",
                prefect.display()
            ));
        }
        check_version()?;
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match PrefectServer::start_once(&prefect) {
                Ok(server) => return Ok(server),
                // Only a lost race for the port is worth another try.
                Err((e, true)) => failures.push(e),
                Err((e, false)) => return Err(e),
            }
        }
        Err(failures.join("\n\n"))
    }

    /// One try; the error says whether the port was taken (then a new port may work).
    fn start_once(prefect: &Path) -> Result<PrefectServer, (String, bool)> {
        let home = tempfile::Builder::new()
            .prefix("ecsctl-prefect-")
            .tempdir()
            .map_err(|e| (format!("create PREFECT_HOME: {e}"), false))?
            .keep();
        let log = File::create(home.join(LOG_FILE))
            .map_err(|e| (format!("create the Prefect server's log: {e}"), false))?;
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(prefect);
        clear_prefect_env(&mut command);
        command
            .args(["server", "start", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .env("PREFECT_HOME", &home)
            .env("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
            .env("DO_NOT_TRACK", "1")
            // The dashboard is not needed and costs start-up time.
            .env("PREFECT_UI_ENABLED", "false")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // Killed by the kernel when the thread that started it ends: that thread lives
                // as long as the test process (see below).
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent died before prctl: nobody would ever stop this server.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let exited = Arc::new(Mutex::new(None));
        let (started, pid) = std::sync::mpsc::channel();
        // The keeper thread starts the server and waits for it; it never ends while the server
        // runs, so PR_SET_PDEATHSIG fires only when the whole test process is gone.
        std::thread::Builder::new()
            .name("prefect-server".into())
            .spawn({
                let exited = exited.clone();
                move || match command.spawn() {
                    Ok(mut child) => {
                        let _ = started.send(Ok(child.id()));
                        let status = child.wait().expect("wait for the Prefect server");
                        *exited.lock().expect("exit status lock") = Some(status);
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                    }
                }
            })
            .expect("start the Prefect server's keeper thread");
        let pid = pid
            .recv()
            .expect("the keeper thread reports")
            .map_err(|e| (format!("start {}: {e}", prefect.display()), false))?;
        register_cleanup(pid, home.clone(), exited.clone());
        let server = PrefectServer { url, home, exited };
        server.wait_until_ready(pid)?;
        Ok(server)
    }

    fn wait_until_ready(&self, pid: u32) -> Result<(), (String, bool)> {
        let started = Instant::now();
        loop {
            if let Some(status) = *self.exited.lock().expect("exit status lock") {
                let log = self.log();
                let port_taken = log.contains("address already in use");
                return Err((
                    format!("the Prefect server exited with {status} while starting:\n{log}"),
                    port_taken,
                ));
            }
            if answers_health(&self.url) {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                kill(pid);
                return Err((
                    format!(
                        "the Prefect server at {} did not answer GET /api/health within \
                         {START_TIMEOUT:?}:\n{}",
                        self.url,
                        self.log()
                    ),
                    false,
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// Inherited Prefect settings (a developer's profile, a Cloud URL) must not steer the tests.
fn clear_prefect_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PREFECT_") {
            command.env_remove(&key);
        }
    }
}

/// The venv's prefect must be the pinned one: another version is another server.
fn check_version() -> Result<(), String> {
    let python = venv().join("bin/python");
    let out = Command::new(&python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('prefect'))",
        ])
        .output()
        .map_err(|e| format!("run {}: {e}", python.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if version == PREFECT_VERSION {
        Ok(())
    } else {
        Err(format!(
            "{} has prefect {version:?}, the tests need {PREFECT_VERSION}: run \
             ./scripts/install-prefect",
            venv().display()
        ))
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("loopback address").port()
}

fn kill(pid: u32) {
    // SAFETY: a plain syscall on a pid we started.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// A server the exit handler stops (unless it has exited) and whose home it removes.
type Started = (u32, PathBuf, Arc<Mutex<Option<ExitStatus>>>);
static CLEANUP: Mutex<Vec<Started>> = Mutex::new(Vec::new());

/// Kills the server and removes its home when the test process exits normally (statics are
/// never dropped, so a `Drop` would never run).
fn register_cleanup(pid: u32, home: PathBuf, exited: Arc<Mutex<Option<ExitStatus>>>) {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    CLEANUP
        .lock()
        .expect("cleanup list")
        .push((pid, home, exited));
    REGISTERED.get_or_init(|| {
        // SAFETY: registering a plain function with no arguments.
        unsafe {
            libc::atexit(cleanup_at_exit);
        }
    });
}

extern "C" fn cleanup_at_exit() {
    let Ok(servers) = CLEANUP.lock() else {
        return;
    };
    for (pid, home, exited) in servers.iter() {
        // An exited server's pid may belong to another process by now.
        if exited.lock().is_ok_and(|status| status.is_none()) {
            kill(*pid);
        }
        let _ = fs::remove_dir_all(home);
    }
}

/// Whether `GET /api/health` answers 200.
fn answers_health(url: &str) -> bool {
    let addr = url.trim_start_matches("http://");
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let request = format!("GET /api/health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut response = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .and_then(|()| stream.read_to_string(&mut response))
        .is_ok()
        && response.split_whitespace().nth(1) == Some("200")
}

/// Records that the test `owner` bootstraps `pool` on the shared server, and panics if another
/// test already did: two tests on one Prefect pool would see each other's pool.
pub fn claim_pool(pool: &str, owner: &str) {
    static CLAIMS: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let first = CLAIMS
        .get_or_init(Mutex::default)
        .lock()
        // A panic below never holds the lock, but be safe: the map itself is always whole.
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(pool.to_owned())
        .or_insert_with(|| owner.to_owned())
        .clone();
    assert!(
        first == owner,
        "tests `{first}` and `{owner}` both bootstrap pool '{pool}': the Prefect server is shared \
         by the whole test process, so each test needs pool names of its own"
    );
}

/// A work pool's REST API, for arranging and checking state independent of ecsctl.
#[derive(Clone)]
pub struct PrefectApi {
    api_url: String,
    http: reqwest::Client,
}

impl PrefectApi {
    pub fn new(api_url: &str) -> PrefectApi {
        PrefectApi {
            api_url: api_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// `GET /work_pools/{name}`: the pool, or `None` on 404.
    pub async fn pool(&self, name: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!("{}/work_pools/{name}", self.api_url))
            .send()
            .await
            .expect("reach the Prefect server");
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        Some(json_of(response, &format!("GET /work_pools/{name}")).await)
    }

    /// `POST /work_pools/` with this type and base job template (`None`: Prefect's choice).
    pub async fn create_pool(&self, name: &str, kind: &str, template: Option<Value>) -> Value {
        let mut body = json!({ "name": name, "type": kind });
        if let Some(template) = template {
            body["base_job_template"] = template;
        }
        let response = self
            .http
            .post(format!("{}/work_pools/", self.api_url))
            .json(&body)
            .send()
            .await
            .expect("reach the Prefect server");
        json_of(response, &format!("POST /work_pools/ {name}")).await
    }

    /// `DELETE /work_pools/{name}`.
    pub async fn delete_pool(&self, name: &str) {
        let response = self
            .http
            .delete(format!("{}/work_pools/{name}", self.api_url))
            .send()
            .await
            .expect("reach the Prefect server");
        json_of(response, &format!("DELETE /work_pools/{name}")).await;
    }

    /// `PATCH /work_pools/{name}` with a whole new base job template.
    pub async fn set_template(&self, name: &str, template: &Value) {
        let response = self
            .http
            .patch(format!("{}/work_pools/{name}", self.api_url))
            .json(&json!({ "base_job_template": template }))
            .send()
            .await
            .expect("reach the Prefect server");
        json_of(response, &format!("PATCH /work_pools/{name}")).await;
    }
}

/// The body of a successful answer as JSON (`null` when empty); panics on an error status.
async fn json_of(response: reqwest::Response, what: &str) -> Value {
    let status = response.status();
    let text = response.text().await.expect("read Prefect's answer");
    assert!(status.is_success(), "{what}: HTTP {status}: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
    }
}
