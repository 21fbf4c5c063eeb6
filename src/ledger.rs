//! The ledger: one JSON file per pool recording every resource ecsctl created (to delete later) and
//! every resource it only used (never to delete). It is saved atomically after each creation, so a run
//! killed at any moment leaves a ledger that names everything that exists. It never holds the API key.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::StackSpec;

const FORMAT: u32 = 1;

/// What kind of AWS resource a record names; also decides how it is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum ResourceKind {
    Secret,
    LogGroup,
    Role,
    Vpc,
    Subnet,
    InternetGateway,
    RouteTable,
    SecurityGroup,
    Cluster,
    TaskDefinition,
    Service,
    /// A Prefect work pool (not AWS's, but created and deleted the same way).
    WorkPool,
    Queue,
    EventRule,
    /// Only GuardDuty's, in the pool's own VPC: never created by ecsctl, removed by destroy.
    VpcEndpoint,
}

impl ResourceKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::LogGroup => "log group",
            Self::Role => "IAM role",
            Self::Vpc => "VPC",
            Self::Subnet => "subnet",
            Self::InternetGateway => "internet gateway",
            Self::RouteTable => "route table",
            Self::SecurityGroup => "security group",
            Self::Cluster => "cluster",
            Self::TaskDefinition => "task definition",
            Self::Service => "service",
            Self::WorkPool => "work pool",
            Self::Queue => "SQS queue",
            Self::EventRule => "EventBridge rule",
            Self::VpcEndpoint => "VPC endpoint",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub step: String,
    pub kind: ResourceKind,
    /// The ARN where the resource has one, else its id or name.
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub format: u32,
    pub pool: String,
    pub account: String,
    pub region: String,
    /// The non-secret inputs of the last bootstrap; absent when rebuilt from tags.
    pub spec: Option<StackSpec>,
    /// Created by ecsctl, in creation order: destroy deletes these.
    pub created: Vec<Record>,
    /// Found and used (a VPC passed with --vpc-id): destroy never deletes these.
    pub used: Vec<Record>,
}

impl Ledger {
    pub fn new(pool: &str, account: &str, region: &str) -> Self {
        Self {
            format: FORMAT,
            pool: pool.to_string(),
            account: account.to_string(),
            region: region.to_string(),
            spec: None,
            created: Vec::new(),
            used: Vec::new(),
        }
    }

    pub fn created_by<'a>(&'a self, step: &'a str) -> impl Iterator<Item = &'a Record> {
        self.created.iter().filter(move |r| r.step == step)
    }
}

/// Where a pool's ledger and lock live: `<state>/<account>/<region>/<pool>.json`.
#[derive(Debug, Clone)]
pub struct LedgerPaths {
    pub file: PathBuf,
    pub lock: PathBuf,
}

impl LedgerPaths {
    pub fn new(state_dir: &Path, account: &str, region: &str, pool: &str) -> Self {
        let dir = state_dir.join(account).join(region);
        Self {
            file: dir.join(format!("{pool}.json")),
            lock: dir.join(format!("{pool}.lock")),
        }
    }

    fn dir(&self) -> &Path {
        self.file.parent().expect("ledger path has a directory")
    }
}

/// Reads a pool's ledger, checking it is ours and belongs to this pool, account and region.
pub fn load(
    paths: &LedgerPaths,
    pool: &str,
    account: &str,
    region: &str,
) -> Result<Option<Ledger>> {
    let text = match fs::read_to_string(&paths.file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read the ledger {}", paths.file.display()))
        }
    };
    let ledger: Ledger = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "the ledger {} is not a valid ecsctl ledger ({e}). Move it aside; `ecsctl status` and `ecsctl destroy` can find the pool's resources by their tags without it",
            paths.file.display()
        )
    })?;
    if ledger.format != FORMAT {
        bail!(
            "the ledger {} has format {}, this ecsctl understands format {FORMAT}; use a matching ecsctl version",
            paths.file.display(),
            ledger.format
        );
    }
    if ledger.pool != pool || ledger.account != account || ledger.region != region {
        bail!(
            "the ledger {} belongs to pool '{}' in account {} region {}, not pool '{pool}' in account {account} region {region}; move it aside or fix --state-dir",
            paths.file.display(),
            ledger.pool,
            ledger.account,
            ledger.region
        );
    }
    Ok(Some(ledger))
}

/// Writes the ledger so a reader (or a crash) sees the old or the new file, never a torn one.
pub fn save_atomically(paths: &LedgerPaths, ledger: &Ledger) -> Result<()> {
    create_private_dir(paths.dir())?;
    let json = serde_json::to_vec_pretty(ledger)?;
    let mut tmp = tempfile::NamedTempFile::new_in(paths.dir())
        .with_context(|| format!("cannot write in {}", paths.dir().display()))?;
    // NamedTempFile is created 0600 already; the rename keeps that mode.
    tmp.write_all(&json)?;
    tmp.as_file().sync_all()?;
    tmp.persist(&paths.file)
        .with_context(|| format!("cannot replace {}", paths.file.display()))?;
    // Make the rename itself durable.
    File::open(paths.dir())?.sync_all()?;
    Ok(())
}

pub fn remove(paths: &LedgerPaths) -> Result<()> {
    match fs::remove_file(&paths.file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", paths.file.display()))
        }
        _ => Ok(()),
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
    }
    // Tighten a directory someone else created with a looser umask.
    let mode = fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// An exclusive lock on a pool, held for the life of the value (the OS drops it if the process dies).
#[derive(Debug)]
pub struct PoolLock {
    _file: File,
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[error("pool '{pool}' is locked by another ecsctl run ({holder}); wait for it to finish, or pass --wait-lock to wait")]
pub struct LockedError {
    pub pool: String,
    pub holder: String,
}

impl PoolLock {
    /// Takes the pool's lock, or fails naming who holds it; with `wait`, blocks until it is free.
    pub fn acquire(paths: &LedgerPaths, pool: &str, command: &str, wait: bool) -> Result<Self> {
        create_private_dir(paths.dir())?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&paths.lock)
            .with_context(|| format!("cannot open the lock file {}", paths.lock.display()))?;
        if wait {
            file.lock()?;
        } else if let Err(e) = file.try_lock() {
            match e {
                std::fs::TryLockError::WouldBlock => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = if holder.trim().is_empty() {
                        "holder unknown".to_string()
                    } else {
                        holder.trim().to_string()
                    };
                    return Err(LockedError {
                        pool: pool.to_string(),
                        holder,
                    }
                    .into());
                }
                std::fs::TryLockError::Error(e) => return Err(e.into()),
            }
        }
        // Say who holds it, for the run that finds it locked.
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        write!(
            file,
            "pid {} `ecsctl {command}` since {}",
            std::process::id(),
            OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        )?;
        file.sync_all()?;
        Ok(Self { _file: file })
    }
}

/// Told of each saved change (the copy in the account is kept by one).
pub type Observer = Arc<dyn Fn(&Ledger) + Send + Sync>;

/// The ledger shared by steps running concurrently; every change is saved before it returns.
#[derive(Clone)]
pub struct LedgerHandle {
    inner: Arc<Mutex<Ledger>>,
    paths: Arc<LedgerPaths>,
    /// A dry run reads the ledger but never writes it.
    persist: bool,
    /// Why the last save failed, while the file on disk lags behind what happened (each save
    /// writes the whole ledger, so the next good save catches up).
    unsaved: Arc<Mutex<Option<String>>>,
    observer: Arc<Mutex<Option<Observer>>>,
}

impl std::fmt::Debug for LedgerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerHandle")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl LedgerHandle {
    pub fn new(ledger: Ledger, paths: LedgerPaths, persist: bool) -> Self {
        Self {
            inner: Arc::new(Mutex::new(ledger)),
            paths: Arc::new(paths),
            persist,
            unsaved: Arc::default(),
            observer: Arc::default(),
        }
    }

    /// Why the ledger on disk misses changes of this run, if its last save failed.
    pub fn unsaved(&self) -> Option<String> {
        self.unsaved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// From now on, `observer` is told of every saved change.
    pub fn observe(&self, observer: Observer) {
        *self.observer.lock().unwrap_or_else(|p| p.into_inner()) = Some(observer);
    }

    pub fn snapshot(&self) -> Ledger {
        self.lock().clone()
    }

    pub fn paths(&self) -> &LedgerPaths {
        &self.paths
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // A panic elsewhere must not stop us recording what exists.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change` and saves, unless `change` says it changed nothing.
    fn update(&self, change: impl FnOnce(&mut Ledger) -> bool) -> Result<()> {
        let mut ledger = self.lock();
        if change(&mut ledger) && self.persist {
            let saved = save_atomically(&self.paths, &ledger);
            *self.unsaved.lock().unwrap_or_else(|p| p.into_inner()) =
                saved.as_ref().err().map(|e| format!("{e:#}"));
            // The account's copy is told even when the local save failed: it may be the only one.
            if let Some(observer) = &*self.observer.lock().unwrap_or_else(|p| p.into_inner()) {
                observer(&ledger);
            }
            saved
                .with_context(|| format!("cannot save the ledger {}", self.paths.file.display()))?;
        }
        Ok(())
    }

    /// Records a resource ecsctl just created (idempotent: a known id is not added twice).
    pub fn created(&self, step: &str, kind: ResourceKind, id: &str) -> Result<()> {
        self.update(|l| {
            let known = l.created.iter().any(|r| r.kind == kind && r.id == id);
            if !known {
                l.created.push(Record {
                    step: step.to_string(),
                    kind,
                    id: id.to_string(),
                    at: OffsetDateTime::now_utc(),
                });
            }
            !known
        })
    }

    /// Records a resource ecsctl uses but did not create.
    pub fn used(&self, step: &str, kind: ResourceKind, id: &str) -> Result<()> {
        self.update(|l| {
            let known = l.used.iter().any(|r| r.kind == kind && r.id == id);
            if !known {
                l.used.push(Record {
                    step: step.to_string(),
                    kind,
                    id: id.to_string(),
                    at: OffsetDateTime::now_utc(),
                });
            }
            !known
        })
    }

    /// Forgets a resource that has been deleted.
    pub fn forget(&self, kind: ResourceKind, id: &str) -> Result<()> {
        self.update(|l| {
            let before = l.created.len() + l.used.len();
            l.created.retain(|r| !(r.kind == kind && r.id == id));
            l.used.retain(|r| !(r.kind == kind && r.id == id));
            l.created.len() + l.used.len() != before
        })
    }

    pub fn set_spec(&self, spec: &StackSpec) -> Result<()> {
        self.update(|l| {
            let changed = l.spec.as_ref() != Some(spec);
            l.spec = Some(spec.clone());
            changed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn paths(dir: &Path) -> LedgerPaths {
        LedgerPaths::new(dir, "123456789012", "us-east-1", "pool")
    }

    #[test]
    fn saves_privately_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let handle = LedgerHandle::new(
            Ledger::new("pool", "123456789012", "us-east-1"),
            p.clone(),
            true,
        );
        handle
            .created("network", ResourceKind::Vpc, "vpc-1")
            .unwrap();
        handle
            .created("network", ResourceKind::Vpc, "vpc-1")
            .unwrap();
        handle
            .used("network", ResourceKind::Subnet, "subnet-1")
            .unwrap();
        let loaded = load(&p, "pool", "123456789012", "us-east-1")
            .unwrap()
            .unwrap();
        assert_eq!(loaded.created.len(), 1);
        assert_eq!(loaded.used.len(), 1);
        assert_eq!(
            fs::metadata(&p.file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(p.dir()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        handle.forget(ResourceKind::Vpc, "vpc-1").unwrap();
        assert!(load(&p, "pool", "123456789012", "us-east-1")
            .unwrap()
            .unwrap()
            .created
            .is_empty());
    }

    #[test]
    fn dry_run_handle_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let handle = LedgerHandle::new(Ledger::new("pool", "1", "r"), p.clone(), false);
        handle
            .created("cluster", ResourceKind::Cluster, "arn")
            .unwrap();
        assert!(!p.file.exists());
    }

    #[test]
    fn a_failed_save_is_remembered_until_a_save_catches_up() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the state directory should be: no save can succeed, even as root.
        let blocked = dir.path().join("state");
        fs::write(&blocked, "").unwrap();
        let p = paths(&blocked);
        let handle = LedgerHandle::new(Ledger::new("pool", "1", "r"), p.clone(), true);
        assert_eq!(handle.unsaved(), None);
        let e = handle.created("cluster", ResourceKind::Cluster, "arn-1");
        assert!(format!("{:#}", e.unwrap_err()).contains("cannot save the ledger"));
        assert!(handle.unsaved().is_some());

        fs::remove_file(&blocked).unwrap();
        handle
            .created("network", ResourceKind::Vpc, "vpc-1")
            .unwrap();
        assert_eq!(handle.unsaved(), None);
        let saved = load(&p, "pool", "1", "r").unwrap().unwrap();
        assert_eq!(
            saved.created.len(),
            2,
            "the good save carries the earlier record too"
        );
    }

    #[test]
    fn rejects_corrupt_and_foreign_ledgers() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        fs::create_dir_all(p.dir()).unwrap();
        fs::write(&p.file, "{not json").unwrap();
        let e = load(&p, "pool", "123456789012", "us-east-1").unwrap_err();
        assert!(e.to_string().contains("not a valid ecsctl ledger"), "{e}");

        save_atomically(&p, &Ledger::new("other", "123456789012", "us-east-1")).unwrap();
        let e = load(&p, "pool", "123456789012", "us-east-1").unwrap_err();
        assert!(e.to_string().contains("belongs to pool 'other'"), "{e}");
    }

    #[test]
    fn second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let _first = PoolLock::acquire(&p, "pool", "bootstrap", false).unwrap();
        let e = PoolLock::acquire(&p, "pool", "destroy", false).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("locked by another ecsctl run"), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
    }
}
