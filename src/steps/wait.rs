//! Waiting on AWS's eventual states, where there is nothing to wait on but the API.

use std::future::Future;
use std::time::Duration;

use anyhow::Result;

/// Polls `check` until it returns `Some`, or gives `None` after `timeout`. For AWS's eventual
/// states (a service draining, ENIs being released), where there is nothing to wait on but the API.
pub async fn poll_until<T, F, Fut>(
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(Some(v));
        }
        if tokio::time::Instant::now() + every > deadline {
            return Ok(None);
        }
        tokio::time::sleep(every).await;
    }
}

/// Retries `attempt` while `retryable` says its error is one AWS heals by itself (eventual
/// consistency, DependencyViolation while ENIs are released), with backoff, within `timeout`.
pub async fn retry_while<T, F, Fut>(
    timeout: Duration,
    retryable: impl Fn(&anyhow::Error) -> bool,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(200);
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if retryable(&e) && tokio::time::Instant::now() + delay < deadline => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}
