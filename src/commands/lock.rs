//! The account-side lock for a run that has something to change: taken only then (a run that
//! finds everything in place changes nothing, not even a lock), after which the look is checked
//! to be still valid, and released on every way out.

use std::time::Duration;

use super::{Common, Session};
use crate::account::{self, Mirror};
use crate::error::CliError;
use crate::steps::Context;

/// How long a run waiting for the lock (`--wait-lock`) waits between two looks at it, at first
/// and at most.
const POLL_FIRST: Duration = Duration::from_millis(500);
const POLL_MAX: Duration = Duration::from_secs(5);

/// The account lock, held.
pub struct Held {
    mirror: Mirror,
}

/// Takes the pool's lock in the account, or fails naming its holder, or (with `wait`) waits.
/// Returns it with what the account says now when the look before it may be stale: someone held
/// the lock, or recorded something, since the session read the account.
pub async fn acquire(
    common: &Common,
    session: &Session,
    command: &str,
    wait: bool,
) -> Result<(Held, Option<account::Seen>), CliError> {
    let pool = &session.account;
    let mut waited = false;
    let mut pause = POLL_FIRST;
    loop {
        match pool.try_lock(command).await? {
            None => break,
            Some(holder) if !wait => {
                return Err(CliError::Failed(account::locked(
                    session.account.pool(),
                    &holder,
                )))
            }
            Some(holder) => {
                if !waited {
                    common.progress.message(&format!(
                        "pool '{}' is locked by another ecsctl run ({}); waiting for it to finish…",
                        session.account.pool(),
                        holder.describe()
                    ));
                }
                waited = true;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(POLL_MAX);
            }
        }
    }
    let held = Held {
        mirror: pool.mirror(),
    };
    // Anyone who changed the pool since the session looked held the lock meanwhile, and
    // recorded what they made in the account's copy before releasing it.
    let now = match pool.read().await {
        Ok(now) => now,
        Err(e) => {
            let _ = pool.release(&held.mirror, true).await;
            return Err(CliError::Failed(e));
        }
    };
    let stale = waited
        || session.seen.holder.is_some()
        || now.ledger_version != session.seen.ledger_version;
    Ok((held, stale.then_some(now)))
}

/// Releases a lock taken early, for a run that stops with `error` before changing anything.
pub async fn give_back(
    lock: Option<(Held, Option<account::Seen>)>,
    common: &Common,
    session: &Session,
    error: CliError,
) -> Result<(), CliError> {
    match lock {
        Some((held, _)) => held.release(common, session, true, Err(error)).await,
        None => Err(error),
    }
}

impl Held {
    /// From now on every change of `cx`'s ledger is copied to the account.
    pub fn mirror_ledger(&self, cx: &Context) {
        let mirror = self.mirror.clone();
        cx.ledger
            .observe(std::sync::Arc::new(move |l| mirror.send(l)));
        // The first copy: what this run starts from (it may have been only local until now).
        self.mirror.send(&cx.ledger.snapshot());
    }

    /// Releases the lock; `keep_ledger` false after a destroy that left nothing. A failure to
    /// release is reported with the way out; `result` (the run's own) comes first.
    pub async fn release<T>(
        self,
        common: &Common,
        session: &Session,
        keep_ledger: bool,
        result: Result<T, CliError>,
    ) -> Result<T, CliError> {
        if let Err(e) = session.account.release(&self.mirror, keep_ledger).await {
            common.progress.message(&format!(
                "warning: could not release pool '{pool}''s lock in the account ({e:#}); if no run of it is going on, run `ecsctl unlock --pool {pool}`",
                pool = session.account.pool()
            ));
        }
        result
    }
}
