//! How a command ends, and the exit code each ending maps to. A leaf: the commands and the
//! prompts both return it, and `main` turns it into the process exit status.

use crate::config::InputError;

/// How a command ends, mapped to the process exit code by `main`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Wrong or missing input: exit 2, nothing was changed.
    #[error("{0}")]
    BadInput(String),
    /// AWS or local failure: exit 1.
    #[error("{0:#}")]
    Failed(anyhow::Error),
    /// Ctrl-C (SIGINT): exit 130, 128 + the signal's number, as shells report it.
    #[error("interrupted (Ctrl-C)")]
    Interrupted,
    /// SIGTERM (what CI sends to cancel a job), handled like Ctrl-C: exit 143 (128 + 15).
    #[error("terminated (SIGTERM)")]
    Terminated,
    /// The command ran and printed its report, which says the pool is unhealthy (or not
    /// bootstrapped): exit 1, with this one-line summary on stderr.
    #[error("{0}")]
    Unhealthy(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::BadInput(_) => 2,
            Self::Failed(_) | Self::Unhealthy(_) => 1,
            Self::Interrupted => 130,
            Self::Terminated => 143,
        }
    }
}

impl From<InputError> for CliError {
    fn from(e: InputError) -> Self {
        Self::BadInput(e.0)
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        Self::Failed(e)
    }
}
