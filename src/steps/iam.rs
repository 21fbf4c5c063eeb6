//! IAM role handling shared by the `execution-role` and `worker-role` steps: both are a role under
//! `/ecsctl/` trusting ECS tasks, with managed policies and one inline policy.

use anyhow::{Context as _, Result};
use serde_json::Value;

use super::own::{destroy_targets, global_owned, left_alone, not_ours, record_found, tag};
use super::retag::{self, TagChanges, Tagged};
use super::{policy, Context, ItemState, Remedy, StepReport, IAM_PATH, TAG_REGION};
use crate::aws::AwsResultExt;
use crate::ledger::ResourceKind;

const NOT_FOUND: &[&str] = &["NoSuchEntity"];
pub const TRUST_POLICY: &str = include_str!("../../templates/ecs-tasks-trust-policy.json");

/// The role a step wants.
#[derive(Debug, Clone)]
pub struct RoleSpec {
    pub step: &'static str,
    pub name: String,
    pub description: String,
    pub managed_policy_arns: Vec<String>,
    /// Whether other attached managed policies are detached (the user's list is the whole truth).
    pub only_these_managed: bool,
    pub inline: Option<InlinePolicy>,
}

/// The role's one inline policy.
#[derive(Debug, Clone)]
pub struct InlinePolicy {
    pub name: &'static str,
    /// `None` when it cannot be known yet (it names a resource that does not exist yet).
    pub document: Option<Value>,
}

/// The role as it is in IAM.
#[derive(Debug, Clone)]
pub struct FoundRole {
    pub arn: String,
    pub owned: bool,
    pub trust_policy: Option<Value>,
    pub managed_policy_arns: Vec<String>,
    pub inline_policy: Option<Value>,
    /// Inline policies other than ecsctl's, with their documents (when readable).
    pub other_inline: Vec<(String, Option<Value>)>,
    pub tags: TagChanges,
}

/// Fills `{{NAME}}` placeholders in a policy template and parses it.
pub fn render_policy(template: &str, values: &[(&str, &str)]) -> Result<Value> {
    let mut text = template.to_string();
    for (name, value) in values {
        text = text.replace(&format!("{{{{{name}}}}}"), value);
    }
    serde_json::from_str(&text).context("internal error: a policy template is not valid JSON")
}

/// IAM returns policy documents URL-encoded.
fn decode_policy(raw: &str) -> Option<Value> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    serde_json::from_str(&decoded).ok()
}

/// The role's policies: attached managed ones, ecsctl's inline one and the names of all inline.
struct Policies {
    attached: Vec<String>,
    ours: Option<Value>,
    inline_names: Vec<String>,
}

/// Reads the role's attached and inline policies, all at once; `None` if the role is gone.
async fn read_policies(
    cx: &Context,
    name: &str,
    inline_policy_name: Option<&str>,
) -> Result<Option<Policies>> {
    let iam = &cx.aws.iam;
    let ours = async {
        match inline_policy_name {
            Some(policy) => {
                let read = iam.get_role_policy().role_name(name).policy_name(policy);
                Some(read.send().await)
            }
            None => None,
        }
    };
    let (attached, names, ours) = tokio::join!(
        iam.list_attached_role_policies().role_name(name).send(),
        iam.list_role_policies().role_name(name).send(),
        ours
    );
    let doing = |what: &str| format!("{what} of IAM role {name}");
    let Some(attached) = attached.found(NOT_FOUND, doing("listing the managed policies"))? else {
        return Ok(None);
    };
    let Some(names) = names.found(NOT_FOUND, doing("listing the inline policies"))? else {
        return Ok(None);
    };
    let ours = match ours {
        Some(read) => read
            .found(NOT_FOUND, doing("reading the inline policy"))?
            .and_then(|p| decode_policy(p.policy_document())),
        None => None,
    };
    Ok(Some(Policies {
        attached: (attached.attached_policies().iter())
            .filter_map(|p| p.policy_arn().map(str::to_string))
            .collect(),
        ours,
        inline_names: names.policy_names().to_vec(),
    }))
}

/// The documents of inline policies someone else put on the role (read only when there are any).
async fn read_others(
    cx: &Context,
    name: &str,
    others: Vec<String>,
) -> Result<Vec<(String, Option<Value>)>> {
    futures::future::try_join_all(others.into_iter().map(|policy| async move {
        let read = cx.aws.iam.get_role_policy().role_name(name);
        let document = read
            .policy_name(&policy)
            .send()
            .await
            .found(
                NOT_FOUND,
                format!("reading inline policy {policy} of IAM role {name}"),
            )?
            .and_then(|p| decode_policy(p.policy_document()));
        Ok((policy, document))
    }))
    .await
}

/// Reads the role and its policies, all at once for a role the ledger knows.
pub async fn look(
    cx: &Context,
    name: &str,
    inline_policy_name: Option<&str>,
) -> Result<Option<FoundRole>> {
    // A role the ledger knows is read whole at once; on a first bootstrap it is missing, and
    // asking for its policies alongside would be calls for nothing.
    let ledger = cx.ledger.snapshot();
    let known = ledger
        .created
        .iter()
        .chain(&ledger.used)
        .any(|r| r.kind == ResourceKind::Role && r.id == name);
    let get = cx.aws.iam.get_role().role_name(name).send();
    let (role, early) = if known {
        let (role, early) = tokio::join!(get, read_policies(cx, name, inline_policy_name));
        (role, Some(early))
    } else {
        (get.await, None)
    };
    let Some(role) = role.found(NOT_FOUND, format!("reading IAM role {name}"))? else {
        return Ok(None);
    };
    let policies = match early {
        Some(early) => early?,
        None => read_policies(cx, name, inline_policy_name).await?,
    };
    let (Some(role), Some(policies)) = (role.role(), policies) else {
        return Ok(None);
    };
    let others = (policies.inline_names.into_iter())
        .filter(|p| Some(p.as_str()) != inline_policy_name)
        .collect();
    let tags = || role.tags().iter().map(|t| (t.key(), t.value()));
    Ok(Some(FoundRole {
        arn: role.arn().to_string(),
        owned: global_owned(cx, tags(), known),
        tags: TagChanges::for_resource(cx, tags(), &[]),
        trust_policy: role.assume_role_policy_document().and_then(decode_policy),
        managed_policy_arns: policies.attached,
        inline_policy: policies.ours,
        other_inline: read_others(cx, name, others).await?,
    }))
}

/// A managed policy's name: the last part of its ARN.
fn policy_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn trust_is_ours(found: &FoundRole) -> bool {
    let trust: Value = serde_json::from_str(TRUST_POLICY).unwrap_or_default();
    found
        .trust_policy
        .as_ref()
        .is_some_and(|t| policy::same(t, &trust))
}

/// Whether ecsctl's inline policy needs writing: missing, or granting other than wanted.
fn inline_differs(found: &FoundRole, wanted: &Value) -> bool {
    !found
        .inline_policy
        .as_ref()
        .is_some_and(|have| policy::same(have, wanted))
}

/// What differs between the role and the wanted one, each with what bootstrap does about it;
/// empty when nothing does.
pub fn differences(found: &FoundRole, spec: &RoleSpec) -> Vec<String> {
    let role = &spec.name;
    let mut diffs = Vec::new();
    if !trust_is_ours(found) {
        diffs.push(format!(
            "trust policy differs: restore ecsctl's trust policy on {role}"
        ));
    }
    for arn in &spec.managed_policy_arns {
        if !found.managed_policy_arns.contains(arn) {
            let short = policy_name(arn);
            diffs.push(format!(
                "managed policy {short} is not attached: attach {short} to {role}"
            ));
        }
    }
    for arn in extra_managed(found, spec) {
        let short = policy_name(arn);
        diffs.push(format!(
            "managed policy {short} ({arn}) is attached: detach {short} from {role}"
        ));
    }
    for (policy, document) in &found.other_inline {
        let grants = document
            .as_ref()
            .map_or_else(|| "unreadable".to_string(), super::policy::summarise);
        diffs.push(format!(
            "inline policy {policy} ({grants}) is not ecsctl's: delete inline policy {policy} from {role}"
        ));
    }
    if let Some(inline) = &spec.inline {
        let name = inline.name;
        match (&inline.document, &found.inline_policy) {
            (Some(wanted), Some(have)) if !policy::same(have, wanted) => diffs.push(format!(
                "inline policy {name} was changed ({}): rewrite inline policy {name} of {role}",
                policy::changes(have, wanted).join("; ")
            )),
            (_, None) => diffs.push(format!(
                "inline policy {name} is missing: write inline policy {name} of {role}"
            )),
            _ => {}
        }
    }
    diffs
}

/// Attached managed policies the spec does not want, when it wants only its own.
fn extra_managed<'a>(found: &'a FoundRole, spec: &RoleSpec) -> Vec<&'a String> {
    found
        .managed_policy_arns
        .iter()
        .filter(|arn| spec.only_these_managed && !spec.managed_policy_arns.contains(arn))
        .collect()
}

pub fn state(found: &Option<FoundRole>, spec: &RoleSpec) -> ItemState {
    match found {
        None => ItemState::Missing,
        Some(f) if !f.owned => ItemState::Foreign { id: f.arn.clone() },
        Some(f) => {
            let diffs = differences(f, spec);
            f.tags.onto(if diffs.is_empty() {
                ItemState::Present { id: f.arn.clone() }
            } else {
                ItemState::drifted(&f.arn, diffs.join("; "), Remedy::Update(None))
            })
        }
    }
}

/// Creates the role if missing and brings its policies in line.
pub async fn apply(
    cx: &Context,
    spec: &RoleSpec,
    found: Option<FoundRole>,
    report: &mut StepReport,
) -> Result<()> {
    let name = &spec.name;
    let found = match found {
        Some(f) if !f.owned => return Err(not_ours(cx, "an IAM role", name)),
        Some(f) => {
            record_found(cx, spec.step, ResourceKind::Role, name)?;
            f
        }
        None => {
            let created = create(cx, spec).await?;
            report.change(format!("created IAM role {name}"));
            created
        }
    };

    // The remaining fixes are independent of each other.
    let what = format!("IAM role {name}");
    let (trust_change, attached, detached, inline_change, deleted, retagged) = tokio::try_join!(
        restore_trust(cx, name, &found),
        attach_missing(cx, spec, &found),
        detach_extra(cx, spec, &found),
        put_inline(cx, spec, &found),
        delete_other_inline(cx, name, &found),
        retag::apply(cx, Tagged::Role(name), &what, &found.tags),
    )?;
    report.changes.extend(retagged);
    for change in trust_change
        .into_iter()
        .chain(attached)
        .chain(detached)
        .chain(inline_change)
        .chain(deleted)
    {
        report.change(format!("{change} on IAM role {name}"));
    }
    report.resource("role", &found.arn);
    Ok(())
}

async fn attach_missing(cx: &Context, spec: &RoleSpec, found: &FoundRole) -> Result<Vec<String>> {
    let name = &spec.name;
    let missing = spec
        .managed_policy_arns
        .iter()
        .filter(|arn| !found.managed_policy_arns.contains(arn));
    futures::future::try_join_all(missing.map(|arn| async move {
        cx.aws
            .iam
            .attach_role_policy()
            .role_name(name)
            .policy_arn(arn)
            .send()
            .await
            .aws(format!("attaching {arn} to IAM role {name}"))?;
        Ok(format!("attached {arn}"))
    }))
    .await
}

async fn detach_extra(cx: &Context, spec: &RoleSpec, found: &FoundRole) -> Result<Vec<String>> {
    let name = &spec.name;
    futures::future::try_join_all(
        extra_managed(found, spec)
            .into_iter()
            .map(|arn| async move {
                detach_policy(cx, name, arn).await?;
                Ok(format!("detached {arn}"))
            }),
    )
    .await
}

async fn put_inline(cx: &Context, spec: &RoleSpec, found: &FoundRole) -> Result<Option<String>> {
    let Some(inline) = &spec.inline else {
        return Ok(None);
    };
    let document = inline
        .document
        .as_ref()
        .context("internal error: the inline policy is not known at apply time")?;
    if !inline_differs(found, document) {
        return Ok(None);
    }
    let name = &spec.name;
    cx.aws
        .iam
        .put_role_policy()
        .role_name(name)
        .policy_name(inline.name)
        .policy_document(document.to_string())
        .send()
        .await
        .aws(format!(
            "writing inline policy {} of IAM role {name}",
            inline.name
        ))?;
    Ok(Some(format!("wrote inline policy {}", inline.name)))
}

/// Deletes the inline policies ecsctl did not put on its own role.
async fn delete_other_inline(cx: &Context, name: &str, found: &FoundRole) -> Result<Vec<String>> {
    futures::future::try_join_all(found.other_inline.iter().map(|(policy, _)| async move {
        delete_inline_policy(cx, name, policy).await?;
        Ok(format!("deleted inline policy {policy}"))
    }))
    .await
}

/// Detaches a managed policy from a role; false when it was not attached (that counts as done).
async fn detach_policy(cx: &Context, name: &str, arn: &str) -> Result<bool> {
    (cx.aws.iam.detach_role_policy())
        .role_name(name)
        .policy_arn(arn)
        .send()
        .await
        .done_unless(NOT_FOUND, format!("detaching {arn} from IAM role {name}"))
}

/// Deletes an inline policy of a role; false when it was already gone (that counts as done).
async fn delete_inline_policy(cx: &Context, name: &str, policy: &str) -> Result<bool> {
    (cx.aws.iam.delete_role_policy())
        .role_name(name)
        .policy_name(policy)
        .send()
        .await
        .done_unless(
            NOT_FOUND,
            format!("deleting inline policy {policy} of IAM role {name}"),
        )
}

/// Puts ecsctl's trust policy back when the role's differs.
async fn restore_trust(cx: &Context, name: &str, found: &FoundRole) -> Result<Option<String>> {
    if trust_is_ours(found) {
        return Ok(None);
    }
    cx.aws
        .iam
        .update_assume_role_policy()
        .role_name(name)
        .policy_document(TRUST_POLICY)
        .send()
        .await
        .aws(format!("restoring the trust policy of IAM role {name}"))?;
    Ok(Some("restored the trust policy".to_string()))
}

/// Creates the role with the trust policy, tagged and under ecsctl's path, and records it.
async fn create(cx: &Context, spec: &RoleSpec) -> Result<FoundRole> {
    let name = &spec.name;
    let region = (TAG_REGION.to_string(), cx.identity.region.clone());
    let tags = cx
        .tags(spec.step)
        .into_iter()
        .chain([region])
        .map(|(k, v)| tag::iam(k, v))
        .collect::<Result<Vec<_>, _>>()
        .context("internal error: building IAM tags")?;
    let created = cx
        .aws
        .iam
        .create_role()
        .role_name(name)
        .path(IAM_PATH)
        .description(&spec.description)
        .assume_role_policy_document(TRUST_POLICY)
        .set_tags(Some(tags))
        .send()
        .await
        .aws(format!("creating IAM role {name}"))?;
    cx.ledger.created(spec.step, ResourceKind::Role, name)?;
    Ok(FoundRole {
        arn: created
            .role()
            .map(|r| r.arn().to_string())
            .unwrap_or_default(),
        owned: true,
        trust_policy: serde_json::from_str(TRUST_POLICY).ok(),
        managed_policy_arns: Vec::new(),
        inline_policy: None,
        other_inline: Vec::new(),
        tags: TagChanges::default(),
    })
}

/// Deletes a role after detaching and deleting its policies (IAM refuses otherwise).
pub async fn delete(cx: &Context, name: &str) -> Result<bool> {
    let iam = &cx.aws.iam;
    let (attached, inline) = tokio::join!(
        iam.list_attached_role_policies().role_name(name).send(),
        iam.list_role_policies().role_name(name).send()
    );
    let Some(attached) = attached.found(
        NOT_FOUND,
        format!("listing the policies of IAM role {name}"),
    )?
    else {
        return Ok(false);
    };
    let inline = inline
        .found(
            NOT_FOUND,
            format!("listing the inline policies of IAM role {name}"),
        )?
        .map(|i| i.policy_names().to_vec())
        .unwrap_or_default();
    let detach = attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn())
        .map(|arn| detach_policy(cx, name, arn));
    let remove_inline = inline
        .iter()
        .map(|policy| delete_inline_policy(cx, name, policy));
    tokio::try_join!(
        futures::future::try_join_all(detach),
        futures::future::try_join_all(remove_inline)
    )?;
    iam.delete_role()
        .role_name(name)
        .send()
        .await
        .done_unless(NOT_FOUND, format!("deleting IAM role {name}"))
}

/// Destroy for a role step: the recorded role and the one found by name, if ours.
pub async fn destroy(
    cx: &Context,
    step: &str,
    found: Option<FoundRole>,
    name: &str,
) -> Result<StepReport> {
    // A role recreated under the recorded name by someone else is no longer ecsctl's.
    let foreign = found.as_ref().is_some_and(|f| !f.owned);
    let owned = found.is_some_and(|f| f.owned);
    let targets = destroy_targets(cx, step, ResourceKind::Role, owned.then_some(name));
    let mut report = StepReport::default();
    for role in targets {
        if foreign && role == name {
            report.change(left_alone(cx, &format!("IAM role {role}")));
        } else if delete(cx, &role).await? {
            report.change(format!("deleted IAM role {role}"));
        }
        cx.ledger.forget(ResourceKind::Role, &role)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(inline: Value) -> RoleSpec {
        RoleSpec {
            step: "worker-role",
            name: "r".into(),
            description: String::new(),
            managed_policy_arns: vec!["arn:aws:iam::aws:policy/x".into()],
            only_these_managed: false,
            inline: Some(InlinePolicy {
                name: "p",
                document: Some(inline),
            }),
        }
    }

    fn found(inline: Option<Value>, managed: Vec<String>) -> FoundRole {
        FoundRole {
            arn: "arn:aws:iam::1:role/ecsctl/r".into(),
            owned: true,
            trust_policy: serde_json::from_str(TRUST_POLICY).ok(),
            managed_policy_arns: managed,
            inline_policy: inline,
            other_inline: Vec::new(),
            tags: TagChanges::default(),
        }
    }

    #[test]
    fn renders_placeholders() {
        let v = render_policy(r#"{"Resource":"{{A}}"}"#, &[("A", "arn:x")]).unwrap();
        assert_eq!(v["Resource"], "arn:x");
    }

    #[test]
    fn decodes_url_encoded_documents() {
        assert_eq!(decode_policy("%7B%22a%22%3A1%7D").unwrap()["a"], 1);
    }

    #[test]
    fn finds_each_difference_and_says_what_bootstrap_does() {
        let wanted = serde_json::json!({"Version": "2012-10-17", "Statement": []});
        let mut s = spec(wanted.clone());
        assert!(differences(
            &found(Some(wanted.clone()), s.managed_policy_arns.clone()),
            &s
        )
        .is_empty());
        let d = differences(&found(None, vec![]), &s);
        assert_eq!(d.len(), 2, "{d:?}");
        let widened = serde_json::json!({"Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Action": "iam:*", "Resource": "*"}});
        let d = differences(
            &found(Some(widened.clone()), s.managed_policy_arns.clone()),
            &s,
        );
        assert_eq!(
            d,
            ["inline policy p was changed (allows iam:* on *): rewrite inline policy p of r"]
        );

        // Only ecsctl's own managed policies, and no inline policy but its own.
        s.only_these_managed = true;
        let admin = "arn:aws:iam::aws:policy/AdministratorAccess".to_string();
        let mut f = found(Some(wanted), vec![admin, s.managed_policy_arns[0].clone()]);
        f.other_inline = vec![("escalate".into(), Some(widened))];
        assert_eq!(
            differences(&f, &s),
            [
                "managed policy AdministratorAccess (arn:aws:iam::aws:policy/AdministratorAccess) is attached: detach AdministratorAccess from r",
                "inline policy escalate (allows iam:* on *) is not ecsctl's: delete inline policy escalate from r",
            ]
        );
    }

    #[test]
    fn a_role_without_the_pool_tag_is_foreign() {
        let s = spec(serde_json::json!({}));
        let mut f = found(None, vec![]);
        f.owned = false;
        assert!(matches!(state(&Some(f), &s), ItemState::Foreign { .. }));
    }
}
