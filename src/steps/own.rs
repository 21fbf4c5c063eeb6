//! Ownership, the same for every step: a resource is ecsctl's when it carries the pool's tag or
//! the ledger records creating it. A same-named resource that is neither is never adopted, and
//! one someone else took over is never deleted.

use anyhow::{anyhow, Result};

use super::{Context, TAG_POOL, TAG_REGION};
use crate::ledger::ResourceKind;

/// The error for a same-named resource ecsctl did not create, e.g. `not_ours(cx, "a log group", name)`.
pub fn not_ours(cx: &Context, what: &str, name: &str) -> anyhow::Error {
    anyhow!(
        "{what} named {name} already exists but was not created by ecsctl for pool '{pool}' (it has no {TAG_POOL}={pool} tag); delete or rename it, or use another --pool",
        pool = cx.pool()
    )
}

/// Whether an account-global resource (an IAM role) is this pool's stack's in this region: it
/// carries the pool's tag and this region's. One from before roles carried the region has no
/// region tag; it is ours only where a ledger records it, so another region never adopts it.
pub fn global_owned<'a>(
    cx: &Context,
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    recorded: bool,
) -> bool {
    let tags: Vec<(&str, &str)> = tags.into_iter().collect();
    let region = tags.iter().find(|(k, _)| *k == TAG_REGION).map(|(_, v)| *v);
    cx.owns(tags.iter().copied())
        && match region {
            Some(region) => region == cx.identity.region,
            None => recorded,
        }
}

/// Records what the look found by the pool's tag. Usually the ledger knows it already (recording
/// is idempotent); when it does not, a run was killed between creating it and recording it.
pub fn record_found(cx: &Context, step: &str, kind: ResourceKind, id: &str) -> Result<()> {
    cx.ledger.created(step, kind, id)
}

/// What destroy deletes of one kind: the ledger's records, plus what the look found carrying the
/// pool's tag (`found_owned`) that the ledger lacks.
pub fn destroy_targets<'a>(
    cx: &Context,
    step: &str,
    kind: ResourceKind,
    found_owned: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let mut targets = cx.recorded(step, kind);
    for id in found_owned {
        if !targets.iter().any(|t| t == id) {
            targets.push(id.to_string());
        }
    }
    targets
}

/// What destroy says of a recorded resource whose name someone else has since taken over.
pub fn left_alone(cx: &Context, what: &str) -> String {
    format!(
        "left {what}: it no longer carries the {TAG_POOL}={} tag",
        cx.pool()
    )
}

/// The pool's tags in each service's SDK type, for `cx.sdk_tags(step, …)`.
pub mod tag {
    pub fn ecs(key: String, value: String) -> aws_sdk_ecs::types::Tag {
        aws_sdk_ecs::types::Tag::builder()
            .key(key)
            .value(value)
            .build()
    }

    pub fn ec2(key: String, value: String) -> aws_sdk_ec2::types::Tag {
        aws_sdk_ec2::types::Tag::builder()
            .key(key)
            .value(value)
            .build()
    }

    /// IAM's builder checks for the key and value, which are always there.
    pub fn iam(
        key: String,
        value: String,
    ) -> Result<aws_sdk_iam::types::Tag, aws_sdk_iam::error::BuildError> {
        aws_sdk_iam::types::Tag::builder()
            .key(key)
            .value(value)
            .build()
    }

    pub fn secrets(key: String, value: String) -> aws_sdk_secretsmanager::types::Tag {
        aws_sdk_secretsmanager::types::Tag::builder()
            .key(key)
            .value(value)
            .build()
    }
}

/// Whether ECS tags mark a resource as this pool's.
pub fn ecs_owned(cx: &Context, tags: &[aws_sdk_ecs::types::Tag]) -> bool {
    cx.owns(
        tags.iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
    )
}
