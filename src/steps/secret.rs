//! `secret`: the Secrets Manager secret holding the Prefect API key. The task definition injects it
//! into the worker by ARN, so the key never sits in plain text in ECS.

use anyhow::Result;
use async_trait::async_trait;

use super::own::{destroy_targets, not_ours, record_found, tag};
use super::{Context, ItemState, Remedy, Seen, Step, StepPlan, StepReport};
use crate::aws::AwsResultExt;
use crate::ledger::ResourceKind;

const NAME: &str = "secret";
const NOT_FOUND: &[&str] = &["ResourceNotFoundException"];

#[derive(Debug, Clone)]
struct Found {
    arn: String,
    owned: bool,
    scheduled_for_deletion: bool,
    /// Whether the stored value is the key we were given; `None` when unknown or not asked.
    value_matches: Option<bool>,
}

#[derive(Default)]
pub struct SecretStep {
    seen: Seen<Option<Found>>,
}

impl SecretStep {
    fn state(cx: &Context, found: &Option<Found>) -> ItemState {
        match found {
            None => ItemState::Missing,
            Some(f) if !f.owned => ItemState::Foreign { id: f.arn.clone() },
            // A destroy that keeps a recovery window has nothing left to do with it.
            Some(f) if f.scheduled_for_deletion && cx.teardown().secret_recovery_days.is_some() => {
                ItemState::Missing
            }
            Some(f) if f.scheduled_for_deletion => {
                ItemState::drifted(&f.arn, "scheduled for deletion", Remedy::Restore)
            }
            Some(f) if f.value_matches == Some(false) => ItemState::drifted(
                &f.arn,
                "holds a different API key",
                Remedy::Update(Some("a new version will be stored")),
            ),
            Some(f) => ItemState::Present { id: f.arn.clone() },
        }
    }
}

#[async_trait]
impl Step for SecretStep {
    fn name(&self) -> &'static str {
        NAME
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &[]
    }

    async fn look(&self, cx: &Context) -> Result<StepPlan> {
        let name = &cx.names.secret;
        let describe = cx.aws.secrets.describe_secret().secret_id(name).send();
        // The value is compared only when we have a key to compare with (bootstrap).
        let value = async {
            match cx.api_key() {
                Some(_) => Some(
                    cx.aws
                        .secrets
                        .get_secret_value()
                        .secret_id(name)
                        .send()
                        .await,
                ),
                None => None,
            }
        };
        let (described, value) = tokio::join!(describe, value);
        let found = described
            .found(NOT_FOUND, format!("describing secret {name}"))?
            .map(|d| {
                let owned = cx.owns(
                    d.tags()
                        .iter()
                        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
                );
                let scheduled_for_deletion = d.deleted_date().is_some();
                // A secret scheduled for deletion cannot be read; its value is then unknown.
                let value_matches = match (cx.api_key(), value) {
                    (Some(key), Some(Ok(v))) => Some(v.secret_string() == Some(key.expose())),
                    _ => None,
                };
                Found {
                    arn: d.arn().unwrap_or(name).to_string(),
                    owned,
                    scheduled_for_deletion,
                    value_matches,
                }
            });
        let plan = StepPlan::one(NAME, ResourceKind::Secret, name, Self::state(cx, &found));
        self.seen.put(found);
        Ok(plan)
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let name = &cx.names.secret;
        let key = cx
            .api_key()
            .ok_or_else(|| anyhow::anyhow!("internal error: bootstrap without an API key"))?;
        let mut report = StepReport::default();
        let arn = match self.seen.get()? {
            None => {
                let created = cx
                    .aws
                    .secrets
                    .create_secret()
                    .name(name)
                    .description(format!(
                        "Prefect API key for the ecsctl worker of pool {}",
                        cx.pool()
                    ))
                    .secret_string(key.expose())
                    .set_tags(Some(cx.sdk_tags(NAME, tag::secrets)))
                    .send()
                    .await
                    .aws(format!("creating secret {name}"))?;
                let arn = created.arn().unwrap_or(name).to_string();
                cx.ledger.created(NAME, ResourceKind::Secret, &arn)?;
                report.change(format!("created secret {name}"));
                arn
            }
            Some(found) if !found.owned => return Err(not_ours(cx, "a secret", name)),
            Some(found) => {
                if found.scheduled_for_deletion {
                    cx.aws
                        .secrets
                        .restore_secret()
                        .secret_id(&found.arn)
                        .send()
                        .await
                        .aws(format!(
                            "restoring secret {name}, which was scheduled for deletion"
                        ))?;
                    report.change(format!(
                        "restored secret {name} (it was scheduled for deletion)"
                    ));
                }
                // After a restore the old value is unknown, so store ours to be sure.
                if found.scheduled_for_deletion || found.value_matches == Some(false) {
                    cx.aws
                        .secrets
                        .put_secret_value()
                        .secret_id(&found.arn)
                        .secret_string(key.expose())
                        .send()
                        .await
                        .aws(format!("storing the new API key in secret {name}"))?;
                    cx.outputs.secret_rotated.raise();
                    report.change(format!("stored a new API key version in secret {name}"));
                }
                record_found(cx, NAME, ResourceKind::Secret, &found.arn)?;
                found.arn
            }
        };
        report.resource("secret", &arn);
        cx.outputs.secret_arn.set(arn);
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        let found = self.seen.get()?.filter(|f| f.owned);
        let targets = destroy_targets(
            cx,
            NAME,
            ResourceKind::Secret,
            found.as_ref().map(|f| f.arn.as_str()),
        );
        let recovery_days = cx.teardown().secret_recovery_days;
        // Scheduling it again would fail ("marked deleted"); without a window it is purged.
        let already_scheduled = |arn: &str| {
            recovery_days.is_some()
                && found
                    .as_ref()
                    .is_some_and(|f| f.arn == arn && f.scheduled_for_deletion)
        };
        let mut report = StepReport::default();
        for arn in targets {
            if already_scheduled(&arn) {
                cx.ledger.forget(ResourceKind::Secret, &arn)?;
                continue;
            }
            let request = cx.aws.secrets.delete_secret().secret_id(&arn);
            let request = match recovery_days {
                Some(days) => request.recovery_window_in_days(i64::from(days)),
                // Without recovery, so the pool can be bootstrapped again at once.
                None => request.force_delete_without_recovery(true),
            };
            let deleted = request
                .send()
                .await
                .done_unless(NOT_FOUND, format!("deleting secret {arn}"))?;
            cx.ledger.forget(ResourceKind::Secret, &arn)?;
            if deleted {
                report.change(match recovery_days {
                    Some(days) => format!("scheduled secret {arn} for deletion in {days} days"),
                    None => format!("deleted secret {arn}"),
                });
            }
        }
        Ok(report)
    }
}
