//! AWS errors as data: what we were doing, AWS's error code and its message. Retries and "already
//! gone" decisions match the code; the text is for people. (The few answers AWS gives only in
//! words live in [`super::messages`].)

use std::error::Error as StdError;
use std::fmt::{self, Debug, Display};

use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// A failed AWS call. Displays as "{doing} failed: {code}: {message}" (or, for a call that never
/// got an answer, the SDK's whole cause chain).
#[derive(Debug)]
pub struct AwsError {
    /// What we were doing, e.g. "creating the VPC".
    pub doing: String,
    /// AWS's error code, e.g. `DependencyViolation`; `None` when no answer came (network, timeout).
    pub code: Option<String>,
    /// AWS's message, when it gave one.
    pub message: Option<String>,
    /// The SDK's own description, for errors without a code.
    cause: String,
}

impl Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.code, &self.message) {
            (Some(code), Some(msg)) => write!(f, "{} failed: {code}: {msg}", self.doing),
            (Some(code), None) => write!(f, "{} failed: {code}", self.doing),
            _ => write!(f, "{} failed: {}", self.doing, self.cause),
        }
    }
}

impl StdError for AwsError {}

impl AwsError {
    pub fn new<E, R>(doing: impl Display, e: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + StdError + 'static,
        R: Debug,
    {
        Self {
            doing: doing.to_string(),
            code: e.code().map(str::to_string),
            message: e.message().map(str::to_string),
            cause: DisplayErrorContext(e).to_string(),
        }
    }

    pub fn has_code(&self, codes: &[&str]) -> bool {
        self.code.as_deref().is_some_and(|c| codes.contains(&c))
    }
}

/// The AWS error inside an error chain, if an AWS call is what failed.
pub fn aws_error(e: &anyhow::Error) -> Option<&AwsError> {
    e.chain().find_map(|c| c.downcast_ref::<AwsError>())
}

/// Whether an error is an AWS answer with one of these codes.
pub fn is_code(e: &anyhow::Error, codes: &[&str]) -> bool {
    aws_error(e).is_some_and(|a| a.has_code(codes))
}

/// Turns SDK results into [`AwsError`]s that say what we were doing and what AWS answered.
pub trait AwsResultExt<T> {
    /// Wraps an error with what we were doing, e.g. "creating the VPC".
    fn aws(self, doing: impl Display) -> anyhow::Result<T>;
    /// `Ok(None)` when AWS answers with one of these error codes (NotFound is an answer, not a failure).
    fn found(self, not_found: &[&str], doing: impl Display) -> anyhow::Result<Option<T>>;
    /// `Ok(false)` for these codes (e.g. deleting what is already gone), `Ok(true)` on success.
    fn done_unless(self, gone: &[&str], doing: impl Display) -> anyhow::Result<bool>;
}

impl<T, E, R> AwsResultExt<T> for Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    fn aws(self, doing: impl Display) -> anyhow::Result<T> {
        self.map_err(|e| AwsError::new(doing, &e).into())
    }

    fn found(self, not_found: &[&str], doing: impl Display) -> anyhow::Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                let error = AwsError::new(doing, &e);
                if error.has_code(not_found) {
                    Ok(None)
                } else {
                    Err(error.into())
                }
            }
        }
    }

    fn done_unless(self, gone: &[&str], doing: impl Display) -> anyhow::Result<bool> {
        self.found(gone, doing).map(|v| v.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(code: &str, message: &str) -> AwsError {
        AwsError {
            doing: "deleting subnet subnet-1".into(),
            code: Some(code.into()),
            message: Some(message.into()),
            cause: "service error".into(),
        }
    }

    #[test]
    fn the_code_decides_even_under_context() {
        let e = anyhow::Error::new(answered("DependencyViolation", "has dependencies"))
            .context("step network");
        assert!(is_code(&e, &["DependencyViolation"]));
        assert!(!is_code(&e, &["InvalidSubnetID.NotFound"]));
        // A message that merely mentions a code is not that code.
        let e = anyhow::Error::new(answered("InvalidParameter", "not a DependencyViolation"));
        assert!(!is_code(&e, &["DependencyViolation"]));
        assert!(!is_code(
            &anyhow::anyhow!("DependencyViolation"),
            &["DependencyViolation"]
        ));
    }

    #[test]
    fn it_reads_as_what_we_did_and_what_aws_said() {
        assert_eq!(
            answered("DependencyViolation", "has dependencies").to_string(),
            "deleting subnet subnet-1 failed: DependencyViolation: has dependencies"
        );
        let unanswered = AwsError {
            code: None,
            message: None,
            ..answered("x", "y")
        };
        assert_eq!(
            unanswered.to_string(),
            "deleting subnet subnet-1 failed: service error"
        );
    }
}
