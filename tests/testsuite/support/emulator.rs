//! A private moto server per test, so tests can run in parallel without sharing state. It runs
//! through `scripts/moto_server.py`, which fixes moto's RunTask for containers without their own
//! memory (what prefect-aws registers); [`Emulator::start_unpatched`] runs moto as released.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long moto may take to start listening and answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The server's stdout and stderr, in its temp dir.
const LOG_FILE: &str = "moto.log";
/// How often readiness is re-checked while starting.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// The emulator with moto's RunTask fixed, run by the virtualenv's Python.
const WRAPPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/moto_server.py");

/// A running moto server on a free loopback port; killed when dropped.
pub struct Emulator {
    child: Child,
    endpoint: String,
    /// Holds [`LOG_FILE`] for as long as the server runs.
    dir: TempDir,
}

impl Emulator {
    /// Starts moto from the virtualenv at `$ECSCTL_VENV` (default `~/.cache/ecsctl/venv`)
    /// through `scripts/moto_server.py` and waits until it answers HTTP. Panics, with the
    /// server's log, if it does not within 30 s.
    pub fn start() -> Emulator {
        let python = venv().join("bin/python");
        Emulator::start_program(&python, &[WRAPPER])
    }

    /// Like [`Emulator::start`], but moto exactly as released, without the RunTask fix: only to
    /// show that the fix is needed.
    pub fn start_unpatched() -> Emulator {
        Emulator::start_program(&venv().join("bin/moto_server"), &[])
    }

    fn start_program(program: &Path, args: &[&str]) -> Emulator {
        assert!(
            program.exists() && venv().join("bin/moto_server").exists(),
            "{} not found: run ./scripts/install-emulator first",
            venv().join("bin/moto_server").display()
        );
        let dir = tempfile::tempdir().expect("create emulator temp dir");
        let log = File::create(dir.path().join(LOG_FILE)).expect("create emulator log");
        // Port 0: the OS picks a free port and moto reports it in its start-up banner, which
        // avoids the race of probing for a free port and handing it over.
        let child = Command::new(program)
            .args(args)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        // Built before waiting so that a panic while waiting still kills the process.
        let mut emulator = Emulator {
            child,
            endpoint: String::new(),
            dir,
        };
        emulator.endpoint = emulator.wait_until_ready();
        emulator
    }

    /// Base URL of the server, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// Everything the server has written so far (start-up banner, one line per request).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join(LOG_FILE)).unwrap_or_default()
    }

    fn wait_until_ready(&mut self) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut endpoint = None;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll moto_server") {
                panic!(
                    "moto_server exited with {status} while starting:\n{}",
                    self.log()
                );
            }
            if endpoint.is_none() {
                endpoint = announced_endpoint(&self.log());
            }
            if let Some(url) = &endpoint {
                if answers_http(url) {
                    return url.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "moto_server not ready after {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Errors mean the process is already gone, which is what we want.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn venv() -> PathBuf {
    if let Some(dir) = std::env::var_os("ECSCTL_VENV") {
        return dir.into();
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    Path::new(&home).join(".cache/ecsctl/venv")
}

/// The URL from werkzeug's banner line ` * Running on http://127.0.0.1:PORT`.
fn announced_endpoint(log: &str) -> Option<String> {
    let rest = &log[log.find("Running on http://")? + "Running on ".len()..];
    let url = rest.split_whitespace().next()?;
    Some(url.to_owned())
}

/// Whether `GET /moto-api/config` gets a 2xx answer (moto's cheapest endpoint).
fn answers_http(endpoint: &str) -> bool {
    let addr = endpoint.trim_start_matches("http://");
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let request = format!("GET /moto-api/config HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut response = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .and_then(|()| stream.read_to_string(&mut response))
        .is_ok()
        && response
            .split_whitespace()
            .nth(1)
            .is_some_and(|status| status.starts_with('2'))
}
