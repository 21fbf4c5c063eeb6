//! The judgement behind `ecsctl status`: plain facts in (what the step looks found, the ledger,
//! the service as ECS describes it, recently stopped tasks, the worker's last log lines, the work
//! pool and its workers as Prefect describes them), a
//! [`Report`] out, with a verdict (healthy / unhealthy / not bootstrapped), the reasons in plain
//! words and the command or flag that fixes each. No AWS or Prefect calls and no SDK types live
//! here: `commands::status` reads AWS and Prefect and converts the answers into [`Facts`].
//!
//! # `ecsctl status --output json`
//!
//! [`Report`] *is* the JSON document `status --output json` prints on stdout: one object whose
//! fields are documented on [`Report`] and the types it holds. The shape is stable: every field
//! is always present (`null` or `[]` when there is nothing to say), times are RFC 3339 strings in
//! UTC, and fields are only ever added. The exit code agrees with `verdict`: 0 for `"healthy"`,
//! 1 for `"unhealthy"` and `"not-bootstrapped"`.

mod causes;
mod facts;
mod judge;
mod observer;
mod prefect;
mod render;
mod report;
#[cfg(test)]
mod tests;

pub use facts::Facts;
pub use judge::report;
pub use observer::ObserverInfo;
pub use prefect::{PrefectFacts, PrefectInfo, PrefectRead, PrefectTrouble};
pub use render::render_text;
pub use report::{Health, LedgerInfo, LogInfo, LogLine, Reason, Report, Resource, ResourceState};
