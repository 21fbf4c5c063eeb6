//! ecsctl on a pseudo-terminal (rexpect), for driving its prompts as a person would.

use std::fs::File;
use std::process::Stdio;
use std::time::Duration;

use rexpect::process::WaitStatus;
use rexpect::session::{spawn_command, PtySession};

use super::cli::Ecsctl;

/// ecsctl running on a pseudo-terminal, with everything it has shown so far.
pub struct Terminal {
    pub session: PtySession,
    /// The pty's master side, for reading and changing the terminal's modes.
    pub master: File,
    pub shown: String,
}

impl Terminal {
    /// Starts `ecsctl <args>`; each later wait for the screen gives up after `timeout`.
    pub fn start(ecsctl: &Ecsctl, args: &[&str], timeout: Duration) -> Terminal {
        // `cmd` removes CI from the environment: CI=true would make the run non-interactive.
        let mut command = ecsctl.cmd(args).env("TERM", "xterm").into_command();
        // rexpect points stdin/stdout/stderr at the pty before exec; the runner's Stdio::null()
        // would replace stdin again at exec, so inherit (i.e. keep the pty).
        command
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        let session = spawn_command(command, Some(timeout.as_millis() as u64))
            .expect("spawn ecsctl on a pty");
        let master = session.process().get_file_handle().expect("pty master");
        Terminal {
            session,
            master,
            shown: String::new(),
        }
    }

    /// Waits until `text` is on the screen.
    pub fn expect(&mut self, text: &str) {
        match self.session.exp_string(text) {
            Ok(before) => {
                self.shown.push_str(&before);
                self.shown.push_str(text);
            }
            Err(e) => panic!(
                "waiting for {text:?}: {e}\n--- terminal so far:\n{}",
                self.shown
            ),
        }
    }

    pub fn send_line(&mut self, line: &str) {
        self.session.send_line(line).expect("write to the pty");
        self.session.flush().expect("flush the pty");
    }

    pub fn send(&mut self, text: &str) {
        self.session.send(text).expect("write to the pty");
        self.session.flush().expect("flush the pty");
    }

    /// Reads to the end and returns the exit code.
    pub fn finish(&mut self) -> i32 {
        match self.session.exp_eof() {
            Ok(rest) => self.shown.push_str(&rest),
            Err(e) => panic!(
                "waiting for ecsctl to exit: {e}\n--- terminal so far:\n{}",
                self.shown
            ),
        }
        match self.session.process().wait().expect("wait for ecsctl") {
            WaitStatus::Exited(_, code) => code,
            other => panic!("ecsctl ended with {other:?}\n--- terminal:\n{}", self.shown),
        }
    }
}
