//! ecsctl's integration tests: the real binary against a local AWS emulator (moto), through a
//! recording and fault-injecting proxy. One test binary (as in cargo's own testsuite), so the
//! harness in `support` is compiled once and every part of it is used by some test.
//!
//! Run one module with e.g. `cargo test --test testsuite bootstrap::`.

mod support;

mod bad_input;
mod bootstrap;
mod concurrency;
mod credentials;
mod destroy;
mod drift;
mod faults;
mod harness_selftest;
mod interactive;
mod interrupted;
mod ledger_input;
mod observer;
mod output_contracts;
mod real_aws;
mod real_aws_service;
mod regions;
mod security;
mod status;
mod takeover;
mod teams;
mod work_pool;
mod worker;
