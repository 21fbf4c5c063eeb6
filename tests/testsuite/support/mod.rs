//! Test harness shared by the integration tests: a local AWS emulator, a recording and
//! fault-injecting proxy in front of it that also plays AWS behaviours the emulator lacks
//! (`behaviours`), SDK clients for checking results, an account inventory for before/after
//! comparisons, a runner for the `ecsctl` binary, the Prefect settings handed to it, and a
//! normaliser for comparing what a person reads.

pub mod aws;
pub mod behaviours;
pub mod cli;
pub mod emulator;
pub mod iam;
pub mod inventory;
pub mod pool;
pub mod prefect;
pub mod proxy;
pub mod running;
pub mod stack;
pub mod terminal;
pub mod text;
