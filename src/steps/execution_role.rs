//! `execution-role`: the role ECS itself uses to start the worker: pull the image, write logs and
//! read the secrets holding the worker's Prefect credentials — those secrets and nothing else.

use anyhow::Result;
use async_trait::async_trait;
use serde_json::Value;

use super::iam::{self, FoundRole, InlinePolicy, RoleSpec};
use super::{Context, Seen, Step, StepPlan, StepReport};
use crate::ledger::ResourceKind;

const NAME: &str = "execution-role";
const POLICY_TEMPLATE: &str = include_str!("../../templates/execution-role-policy.json");
const INLINE_POLICY_NAME: &str = "ecsctl-read-prefect-api-key";
/// The template's statements: reading the API key secret, reading the auth-string secret, and,
/// for a worker with neither, one that grants nothing (IAM refuses a policy without statements).
const READ_API_KEY: &str = "ReadThisPoolsPrefectApiKey";
const READ_AUTH_STRING: &str = "ReadThisPoolsPrefectApiAuthString";
const READ_NONE: &str = "ReadNoPrefectSecret";

#[derive(Default)]
pub struct ExecutionRoleStep {
    seen: Seen<Option<FoundRole>>,
}

/// The secrets the inline policy is about.
struct PolicySecrets<'a> {
    /// The ARNs of the secrets in use, if any.
    api_key: Option<&'a str>,
    auth_string: Option<&'a str>,
    /// The pool's two secret names as ARNs without Secrets Manager's random suffix.
    api_key_name_arn: String,
    auth_string_name_arn: String,
}

impl<'a> PolicySecrets<'a> {
    fn new(cx: &Context, api_key: Option<&'a str>, auth_string: Option<&'a str>) -> Self {
        let prefix = format!("{}:secret:", cx.arn_prefix("secretsmanager"));
        Self {
            api_key,
            auth_string,
            api_key_name_arn: format!("{prefix}{}", cx.names.secret),
            auth_string_name_arn: format!("{prefix}{}", cx.names.auth_string_secret),
        }
    }
}

/// The inline policy: `secretsmanager:GetSecretValue` on exactly the secrets in use (one statement
/// each), or, with none, a statement denying it on the pool's secret names — a valid policy that
/// grants nothing and takes back what an earlier bootstrap with a secret granted.
fn inline_policy(secrets: &PolicySecrets) -> Result<Value> {
    let mut policy = iam::render_policy(
        POLICY_TEMPLATE,
        &[
            ("API_KEY_SECRET_ARN", secrets.api_key.unwrap_or_default()),
            (
                "AUTH_STRING_SECRET_ARN",
                secrets.auth_string.unwrap_or_default(),
            ),
            ("API_KEY_SECRET_NAME_ARN", &secrets.api_key_name_arn),
            ("AUTH_STRING_SECRET_NAME_ARN", &secrets.auth_string_name_arn),
        ],
    )?;
    let none = secrets.api_key.is_none() && secrets.auth_string.is_none();
    let keep = |sid: &str| match sid {
        READ_API_KEY => secrets.api_key.is_some(),
        READ_AUTH_STRING => secrets.auth_string.is_some(),
        READ_NONE => none,
        _ => false,
    };
    if let Some(Value::Array(statements)) = policy.get_mut("Statement") {
        statements.retain(|st| keep(st["Sid"].as_str().unwrap_or_default()));
    }
    Ok(policy)
}

/// The inline policy as far as `look` knows it: it names the secrets in use by their ARNs, whose
/// suffix is random, so they come from the ledger; `None` while one in use is not recorded yet.
fn policy_for_look(cx: &Context) -> Result<Option<Value>> {
    let (api_key, auth_string) = match cx.credentials() {
        Some(given) => (given.api_key.is_some(), given.auth_string.is_some()),
        None => match &cx.spec {
            Some(spec) => (spec.credentials.api_key, spec.credentials.auth_string),
            None => return Ok(None),
        },
    };
    let recorded = cx.recorded("secret", ResourceKind::Secret);
    let names = PolicySecrets::new(cx, None, None);
    // Secrets Manager's ARN is the name, a dash and six random characters.
    let arn_of = |name_arn: &str| {
        recorded
            .iter()
            .find(|arn| arn.len() == name_arn.len() + 7 && arn.starts_with(&format!("{name_arn}-")))
            .map(String::as_str)
    };
    let api_key_arn = arn_of(&names.api_key_name_arn);
    let auth_string_arn = arn_of(&names.auth_string_name_arn);
    if (api_key && api_key_arn.is_none()) || (auth_string && auth_string_arn.is_none()) {
        return Ok(None);
    }
    let secrets = PolicySecrets::new(
        cx,
        api_key_arn.filter(|_| api_key),
        auth_string_arn.filter(|_| auth_string),
    );
    inline_policy(&secrets).map(Some)
}

/// The wanted role; `document` is the inline policy, `None` while it cannot be known.
fn role_spec(cx: &Context, document: Option<Value>) -> RoleSpec {
    RoleSpec {
        step: NAME,
        name: cx.names.execution_role.clone(),
        description: format!(
            "ECS task execution role of the ecsctl Prefect worker for pool {}",
            cx.pool()
        ),
        managed_policy_arns: vec![format!(
            "arn:{}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
            cx.identity.partition
        )],
        // ecsctl's own role: a managed policy someone else attached is detached.
        only_these_managed: true,
        inline: Some(InlinePolicy {
            name: INLINE_POLICY_NAME,
            document,
        }),
    }
}

#[async_trait]
impl Step for ExecutionRoleStep {
    fn name(&self) -> &'static str {
        NAME
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["secret"]
    }

    async fn look(&self, cx: &Context) -> Result<StepPlan> {
        let found = iam::look(cx, &cx.names.execution_role, Some(INLINE_POLICY_NAME)).await?;
        let state = iam::state(&found, &role_spec(cx, policy_for_look(cx)?));
        self.seen.put(found);
        Ok(StepPlan::one(
            NAME,
            ResourceKind::Role,
            &cx.names.execution_role,
            state,
        ))
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let arns = cx.outputs.secret_arns.get()?;
        let secrets = PolicySecrets::new(cx, arns.api_key.as_deref(), arns.auth_string.as_deref());
        let spec = role_spec(cx, Some(inline_policy(&secrets)?));
        let mut report = StepReport::default();
        iam::apply(cx, &spec, self.seen.get()?, &mut report).await?;
        if !report.changes.is_empty() {
            cx.outputs.worker_iam_changed.raise();
        }
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        iam::destroy(cx, NAME, self.seen.get()?, &cx.names.execution_role).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_ARN: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecsctl/p/prefect-api-key-AbCdEf";
    const AUTH_ARN: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecsctl/p/prefect-api-auth-string-GhIjKl";

    fn secrets<'a>(api_key: Option<&'a str>, auth_string: Option<&'a str>) -> PolicySecrets<'a> {
        let prefix = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecsctl/p/";
        PolicySecrets {
            api_key,
            auth_string,
            api_key_name_arn: format!("{prefix}prefect-api-key"),
            auth_string_name_arn: format!("{prefix}prefect-api-auth-string"),
        }
    }

    fn statements(policy: &Value) -> &Vec<Value> {
        policy["Statement"]
            .as_array()
            .expect("a list of statements")
    }

    /// (effect, action, resources) of each statement.
    fn grants(policy: &Value) -> Vec<(String, String, Vec<String>)> {
        statements(policy)
            .iter()
            .map(|st| {
                let resources = match &st["Resource"] {
                    Value::Array(all) => all.iter().map(|r| r.as_str().unwrap().into()).collect(),
                    one => vec![one.as_str().unwrap().to_string()],
                };
                (
                    st["Effect"].as_str().unwrap().into(),
                    st["Action"].as_str().unwrap().into(),
                    resources,
                )
            })
            .collect()
    }

    #[test]
    fn with_only_an_api_key_the_policy_is_the_one_bootstraps_always_wrote() {
        // A pool bootstrapped before self-hosted servers were supported sees no change.
        let before = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "ReadThisPoolsPrefectApiKey",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": KEY_ARN
            }]
        });
        assert_eq!(
            inline_policy(&secrets(Some(KEY_ARN), None)).unwrap(),
            before
        );
    }

    #[test]
    fn each_secret_in_use_is_readable_and_nothing_else() {
        let read = |arn: &str| {
            (
                "Allow".to_string(),
                "secretsmanager:GetSecretValue".to_string(),
                vec![arn.to_string()],
            )
        };
        let both = inline_policy(&secrets(Some(KEY_ARN), Some(AUTH_ARN))).unwrap();
        assert_eq!(grants(&both), [read(KEY_ARN), read(AUTH_ARN)]);
        let auth_only = inline_policy(&secrets(None, Some(AUTH_ARN))).unwrap();
        assert_eq!(grants(&auth_only), [read(AUTH_ARN)]);
        assert_eq!(
            statements(&auth_only)[0]["Sid"],
            "ReadThisPoolsPrefectApiAuthString"
        );
        for policy in [&both, &auth_only] {
            assert!(!policy.to_string().contains('*'), "{policy}");
        }
    }

    #[test]
    fn without_a_secret_the_policy_is_valid_and_grants_nothing() {
        let policy = inline_policy(&secrets(None, None)).unwrap();
        // IAM refuses a policy with no statement; the one left only denies.
        assert_eq!(
            grants(&policy),
            [(
                "Deny".to_string(),
                "secretsmanager:GetSecretValue".to_string(),
                vec![
                    "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecsctl/p/prefect-api-key-??????".to_string(),
                    "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecsctl/p/prefect-api-auth-string-??????".to_string(),
                ]
            )]
        );
        assert!(!policy.to_string().contains('*'), "{policy}");
        assert!(!policy.to_string().contains("{{"), "{policy}");
    }
}
