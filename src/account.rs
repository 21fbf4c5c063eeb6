//! The pool's lock and a copy of its ledger, kept in the AWS account itself (SSM Parameter Store,
//! in the pool's region), where a team's laptops and CI runners meet.
//!
//! - The lock is the parameter `/ecsctl/<pool>/lock`, created with `Overwrite=false`: SSM creates
//!   it for exactly one caller, so two runs from any machines never both hold it. It names its
//!   holder (who, where, since) and is deleted on release. A holder killed with SIGKILL leaves it
//!   behind: `ecsctl unlock` breaks it and says whose it broke (as `terraform force-unlock`).
//! - The ledger copy is `/ecsctl/<pool>/ledger`, rewritten in the background after each change
//!   (one write in flight at a time), so a runner without the local ledger sees what a run killed
//!   on another machine had recorded.
//!
//! Runs take the lock lazily: they look without it, and only a run with something to change takes
//! it, then checks nobody changed the pool since it looked (the ledger copy's version).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use aws_sdk_ssm::types::{ParameterTier, ParameterType};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::aws::{is_code, Aws, AwsResultExt};
use crate::ledger::{Ledger, Record};

const ALREADY_EXISTS: &str = "ParameterAlreadyExists";
const NOT_FOUND: &[&str] = &["ParameterNotFound"];

/// Who holds (or held) a pool's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// `user@host`.
    pub who: String,
    pub pid: u32,
    pub command: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

impl Holder {
    fn me(command: &str) -> Self {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .or_else(|| env("HOSTNAME"))
            .unwrap_or_else(|| "unknown-host".into());
        let user = env("USER")
            .or_else(|| env("LOGNAME"))
            .unwrap_or_else(|| "unknown".into());
        Self {
            who: format!("{user}@{host}"),
            pid: std::process::id(),
            command: command.to_string(),
            since: OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }
    }

    /// `alice@laptop (pid 42) running `ecsctl bootstrap` since 2026-…Z`.
    pub fn describe(&self) -> String {
        let since = self
            .since
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        format!(
            "{} (pid {}) running `ecsctl {}` since {since}",
            self.who, self.pid, self.command
        )
    }
}

/// What the account holds for a pool, read at once.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub holder: Option<Holder>,
    pub ledger: Option<Ledger>,
    /// The ledger copy's SSM version; changes whenever a run records something.
    pub ledger_version: Option<i64>,
}

/// A pool's parameters in the account.
#[derive(Debug, Clone)]
pub struct AccountState {
    ssm: aws_sdk_ssm::Client,
    pool: String,
    lock: String,
    ledger: String,
}

impl AccountState {
    pub fn new(aws: &Aws, pool: &str) -> Self {
        Self {
            ssm: aws.ssm.clone(),
            pool: pool.to_string(),
            lock: format!("/ecsctl/{pool}/lock"),
            ledger: format!("/ecsctl/{pool}/ledger"),
        }
    }

    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// The lock and the ledger copy, in one call.
    pub async fn read(&self) -> Result<Seen> {
        let out = self
            .ssm
            .get_parameters()
            .names(&self.lock)
            .names(&self.ledger)
            .send()
            .await
            .aws(format!(
                "reading pool '{}''s lock and ledger in SSM",
                self.pool
            ))?;
        let mut seen = Seen::default();
        for p in out.parameters() {
            let value = p.value().unwrap_or_default();
            if p.name() == Some(self.lock.as_str()) {
                seen.holder = Some(serde_json::from_str(value).unwrap_or_else(|_| Holder {
                    who: value.to_string(),
                    pid: 0,
                    command: "?".into(),
                    since: OffsetDateTime::UNIX_EPOCH,
                }));
            } else if p.name() == Some(self.ledger.as_str()) {
                seen.ledger = serde_json::from_str(value).ok();
                seen.ledger_version = Some(p.version());
            }
        }
        Ok(seen)
    }

    /// Takes the lock if nobody holds it: `Ok(None)` when taken, else who holds it.
    pub async fn try_lock(&self, command: &str) -> Result<Option<Holder>> {
        let me = Holder::me(command);
        let put = self
            .ssm
            .put_parameter()
            .name(&self.lock)
            .value(serde_json::to_string(&me)?)
            .r#type(ParameterType::String)
            .description("ecsctl: the run holding this pool (delete with `ecsctl unlock`)")
            .overwrite(false)
            .send()
            .await
            .aws(format!("taking pool '{}''s lock in SSM", self.pool));
        match put {
            Ok(_) => {
                *HELD.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.clone());
                Ok(None)
            }
            Err(e) if is_code(&e, &[ALREADY_EXISTS]) => {
                // Released between the two calls: the caller tries again.
                Ok(Some(
                    self.read().await?.holder.unwrap_or_else(|| Holder::me("?")),
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// Releases the lock, writing the last ledger copy alongside; with `keep_ledger` false (after
    /// a destroy that left nothing) the copy is deleted with the lock instead.
    pub async fn release(&self, mirror: &Mirror, keep_ledger: bool) -> Result<()> {
        let written = if keep_ledger {
            // The last copy and the release go out together: a run taking the lock right after
            // finds anything the copy might still lack by its tags, like any unrecorded resource.
            let last = async {
                match mirror.close().await {
                    Some(ledger) => self.put_ledger(&ledger).await,
                    None => Ok(()),
                }
            };
            let (written, deleted) = tokio::join!(last, self.delete(vec![self.lock.clone()]));
            deleted?;
            written
        } else {
            // No write may land after the copy is deleted.
            mirror.close().await;
            let _done = mirror.writing.lock().await;
            self.delete(vec![self.lock.clone(), self.ledger.clone()])
                .await
        };
        HELD.lock().unwrap_or_else(|p| p.into_inner()).take();
        // A background write that failed is written again above: only the last one counts.
        written
    }

    async fn delete(&self, names: Vec<String>) -> Result<()> {
        self.ssm
            .delete_parameters()
            .set_names(Some(names))
            .send()
            .await
            .aws(format!("releasing pool '{}''s lock in SSM", self.pool))?;
        Ok(())
    }

    /// Deletes the lock whoever holds it; returns whom it belonged to.
    pub async fn break_lock(&self) -> Result<Option<Holder>> {
        let holder = self.read().await?.holder;
        if holder.is_some() {
            self.ssm
                .delete_parameter()
                .name(&self.lock)
                .send()
                .await
                .done_unless(NOT_FOUND, format!("deleting pool '{}''s lock", self.pool))?;
        }
        Ok(holder)
    }

    /// Deletes a ledger copy left behind by a pool that no longer exists.
    pub async fn forget_ledger(&self) -> Result<()> {
        self.ssm
            .delete_parameter()
            .name(&self.ledger)
            .send()
            .await
            .done_unless(
                NOT_FOUND,
                format!("deleting pool '{}''s ledger copy", self.pool),
            )?;
        Ok(())
    }

    async fn put_ledger(&self, ledger: &Ledger) -> Result<()> {
        self.ssm
            .put_parameter()
            .name(&self.ledger)
            .value(serde_json::to_string(ledger)?)
            .r#type(ParameterType::String)
            // Standard (free, 4 KB) while it fits; SSM moves a larger ledger to Advanced.
            .tier(ParameterTier::IntelligentTiering)
            .overwrite(true)
            .send()
            .await
            .aws(format!("copying pool '{}''s ledger to SSM", self.pool))?;
        Ok(())
    }

    /// A background writer that copies each new ledger to the account, one write at a time,
    /// skipping versions overtaken while a write was in flight.
    pub fn mirror(&self) -> Mirror {
        let (tx, mut rx) = watch::channel::<(u64, Option<Ledger>)>((0, None));
        let mirror = Mirror {
            tx: Arc::new(tx),
            writing: Arc::default(),
            closed: Arc::default(),
            started: Arc::default(),
        };
        let (state, writer) = (self.clone(), mirror.clone());
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                // Held while writing, so that release can wait for the write in flight.
                let _writing = writer.writing.lock().await;
                if writer.closed.load(Ordering::SeqCst) {
                    break;
                }
                let (generation, Some(ledger)) = rx.borrow_and_update().clone() else {
                    continue;
                };
                writer.started.store(generation, Ordering::SeqCst);
                if state.put_ledger(&ledger).await.is_err() {
                    // Release writes it again.
                    writer.started.store(0, Ordering::SeqCst);
                }
            }
        });
        mirror
    }
}

/// The lock this process holds, so that Ctrl-C (which drops the command midway) still frees it.
static HELD: Mutex<Option<AccountState>> = Mutex::new(None);

/// After an interrupt: releases the lock this process holds, if any, leaving the ledger copy as
/// the background writer last wrote it.
pub async fn release_after_interrupt() {
    let held = HELD.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(state) = held {
        let _ = state.ssm.delete_parameter().name(&state.lock).send().await;
    }
}

/// The sending side of [`AccountState::mirror`].
#[derive(Debug, Clone)]
pub struct Mirror {
    tx: Arc<watch::Sender<(u64, Option<Ledger>)>>,
    /// `true` while the writer may still write; a write in flight holds it.
    writing: Arc<tokio::sync::Mutex<()>>,
    /// Set by release: the writer starts no more writes.
    closed: Arc<AtomicBool>,
    /// The generation of the ledger last sent (or being sent) by the writer.
    started: Arc<AtomicU64>,
}

impl Mirror {
    /// Queues `ledger` to be copied (the latest queued wins).
    pub fn send(&self, ledger: &Ledger) {
        self.tx.send_modify(|(generation, slot)| {
            *generation += 1;
            *slot = Some(ledger.clone());
        });
    }

    /// Stops the background writer. Returns the latest ledger if the writer never started
    /// writing it (the caller writes it, alongside any write in flight); else waits for the
    /// write in flight, which carries it.
    async fn close(&self) -> Option<Ledger> {
        self.closed.store(true, Ordering::SeqCst);
        let (generation, latest) = self.tx.borrow().clone();
        if generation > self.started.load(Ordering::SeqCst) {
            return latest;
        }
        let _done = self.writing.lock().await;
        None
    }
}

/// Local and account records together: a record either side has, once (the local order first).
pub fn merge(local: Option<Ledger>, account: Option<Ledger>) -> Option<Ledger> {
    let (mut local, account) = match (local, account) {
        (Some(l), Some(a)) => (l, a),
        (l, a) => return l.or(a),
    };
    let add = |into: &mut Vec<Record>, from: Vec<Record>| {
        for r in from {
            if !into.iter().any(|k| k.kind == r.kind && k.id == r.id) {
                into.push(r);
            }
        }
    };
    add(&mut local.created, account.created);
    add(&mut local.used, account.used);
    if local.spec.is_none() {
        local.spec = account.spec;
    }
    Some(local)
}

/// The error for a pool another run holds.
pub fn locked(pool: &str, holder: &Holder) -> anyhow::Error {
    anyhow!(
        "pool '{pool}' is locked by another ecsctl run ({}); wait for it to finish, or pass --wait-lock to wait. If that run was killed, break its lock with `ecsctl unlock --pool {pool}`",
        holder.describe()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::ResourceKind;

    fn record(kind: ResourceKind, id: &str) -> Record {
        Record {
            step: "s".into(),
            kind,
            id: id.into(),
            at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn merging_keeps_each_record_once() {
        let mut local = Ledger::new("p", "1", "r");
        local.created.push(record(ResourceKind::Vpc, "vpc-1"));
        let mut account = Ledger::new("p", "1", "r");
        account.created.push(record(ResourceKind::Vpc, "vpc-1"));
        account.created.push(record(ResourceKind::Cluster, "c"));
        let merged = merge(Some(local.clone()), Some(account.clone())).unwrap();
        let ids: Vec<&str> = merged.created.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["vpc-1", "c"]);
        assert_eq!(merge(None, Some(account.clone())), Some(account));
        assert_eq!(merge(Some(local.clone()), None), Some(local));
    }

    #[test]
    fn the_locked_error_names_the_holder_and_the_way_out() {
        let h: Holder = serde_json::from_str(
            r#"{"who":"ci@runner-7","pid":42,"command":"bootstrap","since":"2026-01-02T03:04:05Z"}"#,
        )
        .unwrap();
        let text = locked("p", &h).to_string();
        for needle in [
            "ci@runner-7 (pid 42) running `ecsctl bootstrap` since 2026-01-02T03:04:05Z",
            "--wait-lock",
            "ecsctl unlock --pool p",
        ] {
            assert!(text.contains(needle), "{needle:?} not in {text}");
        }
    }
}
