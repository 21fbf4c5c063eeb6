//! An ecsctl process started with [`super::cli::Invocation::spawn`] and still running: its output
//! so far, signals, and waiting for it with a deadline (a test never hangs on a stuck child).

use std::io::Read;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cli::Output;

/// How often a condition on the process is checked again while waiting for it.
const POLL: Duration = Duration::from_millis(20);

pub struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Takes over a child whose stdout and stderr are piped, collecting both as they come.
    pub fn new(mut child: Child) -> Running {
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(pipe) = child.stdout.take() {
            readers.push(collect(pipe, stdout.clone()));
        }
        if let Some(pipe) = child.stderr.take() {
            readers.push(collect(pipe, stderr.clone()));
        }
        Running {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything written to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr buffer")).into_owned()
    }

    /// Waits until stderr contains `needle`; false if `timeout` passes or the process exits first.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr_so_far().contains(needle) {
                return true;
            }
            if self.has_exited() || Instant::now() >= deadline {
                // One last look: the line may have come with the exit.
                return self.stderr_so_far().contains(needle);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether the process has ended (it is reaped if so).
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("poll ecsctl").is_some()
    }

    /// Sends a signal by name (`INT`, `TERM`, …) with kill(1); libc is not a dependency.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// SIGKILL, as a crash or an OOM kill would, and reap it.
    pub fn kill(&mut self) {
        // An error means it has already exited, which is as good.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit and returns what it printed. Kills it and panics, with its
    /// output so far, if it does not exit within `timeout`.
    pub fn finish(mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll ecsctl") {
                break status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "ecsctl (pid {}) still running after {timeout:?}; killed it. stderr so far:\n{}",
                    self.pid(),
                    self.stderr_so_far()
                );
            }
            std::thread::sleep(POLL);
        };
        for reader in self.readers.drain(..) {
            reader.join().expect("output reader thread");
        }
        let text = |buffer: &Arc<Mutex<Vec<u8>>>| {
            String::from_utf8_lossy(&buffer.lock().expect("output buffer")).into_owned()
        };
        Output {
            code: status.code(),
            stdout: text(&self.stdout),
            stderr: text(&self.stderr),
        }
    }
}

impl Drop for Running {
    /// A test that fails half-way leaves no ecsctl behind.
    fn drop(&mut self) {
        if !self.has_exited() {
            self.kill();
        }
    }
}

fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0_u8; 4096];
        // Ends at EOF (the process exited) or on a read error (nothing more will come).
        while let Ok(n @ 1..) = pipe.read(&mut chunk) {
            into.lock()
                .expect("output buffer")
                .extend_from_slice(&chunk[..n]);
        }
    })
}
