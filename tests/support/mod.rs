//! Test harness shared by the integration tests: a local AWS emulator, a recording and
//! fault-injecting proxy in front of it, SDK clients for checking results, an account
//! inventory for before/after comparisons, and a runner for the `ecsctl` binary.
//!
//! Each test file includes this with `mod support;` and uses only part of it, so items unused
//! by one particular test binary are expected.
#![allow(dead_code)]

pub mod aws;
pub mod cli;
pub mod emulator;
pub mod inventory;
pub mod pool;
pub mod proxy;
pub mod running;
pub mod stack;
pub mod terminal;
