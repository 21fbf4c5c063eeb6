//! `secret`: the Secrets Manager secrets holding the worker's Prefect credentials — the API key
//! (Prefect Cloud, or a self-hosted server that wants one) and the basic-auth string of a
//! self-hosted server — each in its own secret, only when given. The task definition injects them
//! into the worker by ARN, so a credential never sits in plain text in ECS.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{anyhow, Result};
use async_trait::async_trait;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;

use super::context::SecretArns;
use super::own::{not_ours, record_found, tag};
use super::retag::{self, TagChanges, Tagged};
use super::wait::retry_while;
use super::{Context, ItemState, PlanItem, Remedy, Run, Seen, Step, StepPlan, StepReport};
use crate::aws::{messages, time_of, AwsResultExt};
use crate::config::ApiKey;
use crate::ledger::ResourceKind;

const NAME: &str = "secret";
const NOT_FOUND: &[&str] = &["ResourceNotFoundException"];
/// How long a new secret waits for AWS to finish purging a force-deleted one of the same name
/// (seconds, as a rule).
const PURGE_WAIT: Duration = Duration::from_secs(120);

/// Whether a secret's deletion date has come: a forced delete (no recovery window) dates it now,
/// and from then on AWS is purging it: it can be neither restored nor created again until gone.
/// A recovery window puts the date at least 7 days ahead, and the secret can be restored.
fn being_purged(deleted: Option<&aws_smithy_types::DateTime>) -> bool {
    time_of(deleted).is_some_and(|date| date <= time::OffsetDateTime::now_utc())
}

/// Which of the two secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    ApiKey,
    AuthString,
}

impl Which {
    /// In this order in plans and reports: the API key first, as before there were two.
    const BOTH: [Which; 2] = [Which::ApiKey, Which::AuthString];

    fn name(self, cx: &Context) -> &str {
        match self {
            Which::ApiKey => &cx.names.secret,
            Which::AuthString => &cx.names.auth_string_secret,
        }
    }

    /// What the secret holds, in messages.
    fn what(self) -> &'static str {
        match self {
            Which::ApiKey => "API key",
            Which::AuthString => "API auth string",
        }
    }

    /// The value to store: only a bootstrap has one, and only for the credentials it was given.
    fn value(self, cx: &Context) -> Option<&ApiKey> {
        match self {
            Which::ApiKey => cx.api_key(),
            Which::AuthString => cx.credentials()?.auth_string.as_ref(),
        }
    }

    /// Whether the stack has this secret: a bootstrap's given credentials, otherwise the last
    /// bootstrap's inputs. Without them (no ledger) the API key, as every pool had before
    /// self-hosted servers were supported; the auth string only when it is found.
    fn wanted(self, cx: &Context) -> bool {
        if cx.is_bootstrap() {
            return self.value(cx).is_some();
        }
        match (&cx.spec, self) {
            (Some(spec), Which::ApiKey) => spec.credentials.api_key,
            (Some(spec), Which::AuthString) => spec.credentials.auth_string,
            (None, which) => which == Which::ApiKey,
        }
    }

    /// Whether `look` reads it. A bootstrap reads only the secrets it stores (so one with just an
    /// API key makes the same calls as before); destroy and status look for both names.
    fn looked(self, cx: &Context) -> bool {
        !cx.is_bootstrap() || self.value(cx).is_some()
    }
}

#[derive(Debug, Clone)]
struct Found {
    arn: String,
    owned: bool,
    scheduled_for_deletion: bool,
    /// Whether the stored value is the one we were given; `None` when unknown or not asked.
    value_matches: Option<bool>,
    tags: TagChanges,
}

/// What `look` saw of one secret it read.
#[derive(Debug, Clone)]
struct Looked {
    which: Which,
    found: Option<Found>,
}

/// Whether the secret holds the value given. A secret without a current value holds a different
/// one; a read that failed for any other reason (throttled past the retries, a 5xx, AccessDenied)
/// leaves it unknown, and bootstrap stops rather than say "no change" and keep an old key.
fn value_matches(
    name: &str,
    which: Which,
    want: &ApiKey,
    read: Result<Option<GetSecretValueOutput>>,
) -> Result<bool> {
    let what = which.what();
    match read {
        Ok(Some(v)) => Ok(v.secret_string() == Some(want.expose())),
        Ok(None) => Ok(false),
        Err(e) => Err(e.context(format!(
            "cannot tell whether secret {name} holds the {what} given, so nothing was changed; \
             run bootstrap again once the read succeeds (it needs secretsmanager:GetSecretValue on the secret)"
        ))),
    }
}

#[derive(Default)]
pub struct SecretStep {
    seen: Seen<Vec<Looked>>,
}

impl SecretStep {
    fn state(cx: &Context, which: Which, found: &Option<Found>) -> ItemState {
        let state = match found {
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
                format!("holds a different {}", which.what()),
                Remedy::Update(Some("a new version will be stored")),
            ),
            Some(f) => ItemState::Present { id: f.arn.clone() },
        };
        match found {
            Some(f) if f.owned => f.tags.onto(state),
            _ => state,
        }
    }

    /// The plan item of a secret `look` read, if it belongs in the plan: one the stack has, or
    /// one that exists. A secret the stack no longer has that is on its way out is left to its
    /// deletion, except by destroy, which finishes it.
    fn item(cx: &Context, looked: &Looked) -> Option<PlanItem> {
        let Looked { which, found } = looked;
        let include = match found {
            None => which.wanted(cx),
            Some(f) if f.scheduled_for_deletion && !which.wanted(cx) => {
                matches!(cx.run, Run::Destroy(_))
            }
            Some(_) => true,
        };
        include.then(|| {
            PlanItem::new(
                ResourceKind::Secret,
                which.name(cx),
                Self::state(cx, *which, found),
            )
        })
    }

    /// Describes one secret and, when there is a value to compare with, reads it: both at once.
    async fn look_one(cx: &Context, which: Which) -> Result<Looked> {
        let name = which.name(cx);
        let describe = cx.aws.secrets.describe_secret().secret_id(name).send();
        // The value is compared only when we have one to compare with (bootstrap).
        let value = async {
            match which.value(cx) {
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
        let Some(d) = described
            .found(NOT_FOUND, format!("describing secret {name}"))?
            // A force-deleted secret can still be described for a while: it is gone all the same.
            .filter(|d| !being_purged(d.deleted_date()))
        else {
            return Ok(Looked { which, found: None });
        };
        let tags = || {
            (d.tags().iter()).map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        };
        let owned = cx.owns(tags());
        let scheduled_for_deletion = d.deleted_date().is_some();
        // A secret scheduled for deletion cannot be read; its value is then unknown (and
        // rewritten after the restore). A foreign one is refused before its value matters.
        let value_matches = match (which.value(cx), value) {
            (Some(want), Some(read)) if owned && !scheduled_for_deletion => {
                let doing = format!("reading the stored {} of secret {name}", which.what());
                Some(value_matches(
                    name,
                    which,
                    want,
                    read.found(NOT_FOUND, doing),
                )?)
            }
            _ => None,
        };
        let found = Found {
            arn: d.arn().unwrap_or(name).to_string(),
            owned,
            scheduled_for_deletion,
            value_matches,
            tags: TagChanges::for_resource(cx, tags(), &[]),
        };
        Ok(Looked {
            which,
            found: Some(found),
        })
    }

    /// Creates the secret. Right after a destroy AWS may still be purging the old one of the same
    /// name (a forced delete is asynchronous) and refuses the name until it is gone: that is
    /// waited out, within [`PURGE_WAIT`].
    async fn create(cx: &Context, which: Which, value: &ApiKey) -> Result<String> {
        let name = which.name(cx);
        let noted = AtomicBool::new(false);
        let created = retry_while(PURGE_WAIT, messages::secret_name_being_purged, || async {
            let result = cx
                .aws
                .secrets
                .create_secret()
                .name(name)
                .description(format!(
                    "Prefect {} for the ecsctl worker of pool {}",
                    which.what(),
                    cx.pool()
                ))
                .secret_string(value.expose())
                .set_tags(Some(cx.sdk_tags(NAME, tag::secrets)))
                .send()
                .await
                .aws(format!("creating secret {name}"));
            if matches!(&result, Err(e) if messages::secret_name_being_purged(e))
                && !noted.swap(true, Ordering::SeqCst)
            {
                cx.progress.note(
                    NAME,
                    &format!("AWS is still deleting the previous secret {name}; waiting for the name to be free"),
                );
            }
            result
        })
        .await?;
        Ok(created.arn().unwrap_or(name).to_string())
    }

    /// Creates the secret, or restores it and stores the value where they differ; returns its ARN.
    async fn apply_one(cx: &Context, looked: &Looked, report: &mut StepReport) -> Result<String> {
        let which = looked.which;
        let name = which.name(cx);
        let what = which.what();
        let value = which
            .value(cx)
            .ok_or_else(|| anyhow!("internal error: no {what} to store in secret {name}"))?;
        let found = match &looked.found {
            None => {
                let arn = Self::create(cx, which, value).await?;
                cx.ledger.created(NAME, ResourceKind::Secret, &arn)?;
                report.change(format!("created secret {name}"));
                return Ok(arn);
            }
            Some(found) if !found.owned => return Err(not_ours(cx, "a secret", name)),
            Some(found) => found,
        };
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
                .secret_string(value.expose())
                .send()
                .await
                .aws(format!("storing the new {what} in secret {name}"))?;
            cx.outputs.secret_rotated.raise();
            report.change(format!("stored a new {what} version in secret {name}"));
        }
        record_found(cx, NAME, ResourceKind::Secret, &found.arn)?;
        let what = format!("secret {name}");
        let retagged = retag::apply(cx, Tagged::Secret(&found.arn), &what, &found.tags);
        report.changes.extend(retagged.await?);
        Ok(found.arn.clone())
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
        let reads = Which::BOTH
            .into_iter()
            .filter(|which| which.looked(cx))
            .map(|which| Self::look_one(cx, which));
        let looked = futures::future::try_join_all(reads).await?;
        let plan = StepPlan {
            step: NAME,
            items: looked.iter().filter_map(|l| Self::item(cx, l)).collect(),
        };
        self.seen.put(looked);
        Ok(plan)
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let mut report = StepReport::default();
        let mut arns = SecretArns::default();
        // In a bootstrap, look read exactly the secrets there are values for.
        for looked in self.seen.get()? {
            let arn = Self::apply_one(cx, &looked, &mut report).await?;
            report.resource("secret", &arn);
            match looked.which {
                Which::ApiKey => arns.api_key = Some(arn),
                Which::AuthString => arns.auth_string = Some(arn),
            }
        }
        cx.outputs.secret_arns.set(arns);
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        let found: Vec<Found> = self
            .seen
            .get()?
            .into_iter()
            .filter_map(|l| l.found)
            .filter(|f| f.owned)
            .collect();
        // The ledger's records, plus what the look found carrying the pool's tag.
        let mut targets = cx.recorded(NAME, ResourceKind::Secret);
        for f in &found {
            if !targets.contains(&f.arn) {
                targets.push(f.arn.clone());
            }
        }
        let recovery_days = cx.teardown().secret_recovery_days;
        // Scheduling it again would fail ("marked deleted"); without a window it is purged.
        let already_scheduled = |arn: &str| {
            recovery_days.is_some()
                && found
                    .iter()
                    .any(|f| f.arn == arn && f.scheduled_for_deletion)
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

#[cfg(test)]
mod tests {
    use super::being_purged;
    use aws_smithy_types::DateTime;

    #[test]
    fn a_deletion_date_that_has_come_means_the_secret_is_being_purged() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let at = |secs: i64| DateTime::from_secs(now + secs);
        // A forced delete dates it now; a window that ran out dates it in the past.
        assert!(being_purged(Some(&at(0))));
        assert!(being_purged(Some(&at(-86_400))));
        // A recovery window dates it days ahead: it can still be restored.
        assert!(!being_purged(Some(&at(7 * 86_400))));
        assert!(!being_purged(None));
    }
}
