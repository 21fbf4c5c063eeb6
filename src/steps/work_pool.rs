//! `work-pool`: the Prefect work pool the worker polls, pointed at this stack. Without it, flow
//! runs go to the account's `default` cluster and default VPC. ecsctl creates the pool from the
//! ECS template the server offers, or, in a pool that exists (the user's, or one a worker made),
//! sets only its own variables' defaults and leaves the rest of the template as it is.

use anyhow::{anyhow, bail, Result};
use async_trait::async_trait;
use serde_json::{json, Value};

use super::shared::{prefect, recorded_network, work_pool_at_look};
use super::{Context, ItemState, Remedy, Run, Seen, Step, StepPlan, StepReport};
use crate::aws::AwsResultExt;
use crate::config::FlowRunCapacity;
use crate::ledger::ResourceKind;
use crate::prefect::template::{self, Owned};
use crate::prefect::{is_status, Prefect, WorkPool};

const NAME: &str = "work-pool";
/// The variables whose defaults ecsctl sets (and removes again from a pool it did not create).
pub const OWNED: &[&str] = &[
    "cluster",
    "vpc_id",
    "network_configuration",
    "execution_role_arn",
    "task_role_arn",
    "prefect_api_key_secret_arn",
    "prefect_api_auth_string_secret_arn",
    "configure_cloudwatch_logs",
    "cloudwatch_logs_options",
    "launch_type",
    "capacity_provider_strategy",
    "match_latest_revision_in_family",
    "labels",
];

#[derive(Default)]
pub struct WorkPoolStep {
    seen: Seen<Looked>,
}

#[derive(Debug, Clone, Default)]
struct Looked {
    pool: Option<WorkPool>,
    /// The ECS template the server offers, read during the look when bootstrap will create the
    /// pool, so that creating it is one call after the network exists, not two.
    stock_template: Option<Value>,
}

/// What this stack is, as the pool's variables see it. Known exactly at apply; at look, what a
/// step creates this run is known only from the ledger of an earlier run (`None` otherwise).
#[derive(Debug, Clone, Default)]
pub struct Stack {
    pub cluster_arn: String,
    pub vpc_id: Option<String>,
    pub subnet_ids: Option<Vec<String>>,
    pub security_group_id: Option<String>,
    pub execution_role_arn: String,
    pub task_role_arn: String,
    pub api_key_secret_arn: Option<String>,
    pub auth_string_secret_arn: Option<String>,
    pub log_group: String,
    pub region: String,
    pub capacity: FlowRunCapacity,
    pub pool: String,
}

/// ecsctl's defaults for this stack; a value not known yet is left out (not compared, not set).
pub fn owned_defaults(stack: &Stack) -> Vec<Owned> {
    let (launch_type, strategy) = match stack.capacity {
        FlowRunCapacity::Fargate => ("FARGATE", json!([])),
        FlowRunCapacity::Spot => (
            "FARGATE_SPOT",
            json!([{ "capacityProvider": "FARGATE_SPOT", "weight": 1 }]),
        ),
    };
    let mut owned = vec![
        own("cluster", json!(stack.cluster_arn)),
        own("execution_role_arn", json!(stack.execution_role_arn)),
        own("task_role_arn", json!(stack.task_role_arn)),
        own("configure_cloudwatch_logs", json!(true)),
        // No awslogs-create-group: the execution role may write logs, not create groups, so
        // the group is ecsctl's (the worker would otherwise set it to "true").
        own(
            "cloudwatch_logs_options",
            json!({
                "awslogs-group": stack.log_group,
                "awslogs-region": stack.region,
                "awslogs-stream-prefix": "flow-run",
                "awslogs-create-group": "false",
            }),
        ),
        own("launch_type", json!(launch_type)),
        own("capacity_provider_strategy", strategy),
        // One task definition revision per flow configuration, not one per worker restart.
        own("match_latest_revision_in_family", json!(true)),
        own("labels", json!({ "ecsctl:pool": stack.pool })),
    ];
    if let Some(vpc) = &stack.vpc_id {
        owned.push(own("vpc_id", json!(vpc)));
    }
    // network_configuration needs vpc_id beside it (prefect-aws refuses it alone).
    if let (Some(_), Some(subnets), Some(group)) =
        (&stack.vpc_id, &stack.subnet_ids, &stack.security_group_id)
    {
        // In one order, whoever lists them: the look reads the ledger, apply the network step.
        let mut subnets = subnets.clone();
        subnets.sort();
        owned.push(own(
            "network_configuration",
            json!({ "subnets": subnets, "securityGroups": [group], "assignPublicIp": "ENABLED" }),
        ));
    }
    // Without the key's secret, the worker copies its API key in plain text into every RunTask.
    if let Some(arn) = &stack.api_key_secret_arn {
        owned.push(own("prefect_api_key_secret_arn", json!(arn)));
    }
    if let Some(arn) = &stack.auth_string_secret_arn {
        owned.push(own("prefect_api_auth_string_secret_arn", json!(arn)));
    }
    owned
}

fn own(name: &'static str, default: Value) -> Owned {
    Owned { name, default }
}

/// The stack as far as the look can know it: names are derived, the network is what the inputs
/// and ledger tell ([`recorded_network`]), and the secrets are the newest recorded.
fn stack_at_look(cx: &Context) -> Stack {
    let network = recorded_network(cx);
    let ledger = cx.ledger.snapshot();
    let secret = |name: &str| {
        let prefix = format!(":secret:{name}-");
        (ledger.created.iter().rev())
            .filter(|r| r.kind == ResourceKind::Secret)
            .find(|r| r.id.contains(&prefix))
            .map(|r| r.id.clone())
    };
    Stack {
        vpc_id: network.vpc_id,
        subnet_ids: (!network.subnet_ids.is_empty()).then_some(network.subnet_ids),
        security_group_id: network.security_group_id,
        api_key_secret_arn: secret(&cx.names.secret),
        auth_string_secret_arn: secret(&cx.names.auth_string_secret),
        ..stack_known(cx)
    }
}

/// What is derived from names and inputs alone.
fn stack_known(cx: &Context) -> Stack {
    Stack {
        cluster_arn: format!("{}:cluster/{}", cx.arn_prefix("ecs"), cx.names.cluster),
        execution_role_arn: cx.role_arn(&cx.names.execution_role),
        task_role_arn: cx.flow_run_role_arn(),
        log_group: cx.names.flow_run_log_group.clone(),
        region: cx.identity.region.clone(),
        capacity: cx
            .spec
            .as_ref()
            .map(|s| s.flow_run.capacity)
            .unwrap_or_default(),
        pool: cx.pool().to_string(),
        ..Stack::default()
    }
}

/// The stack exactly, from what the steps before this one made.
fn stack_at_apply(cx: &Context) -> Result<Stack> {
    let o = &cx.outputs;
    Ok(Stack {
        cluster_arn: o.cluster_arn.get()?.clone(),
        vpc_id: Some(o.vpc_id.get()?.clone()),
        subnet_ids: Some(o.subnet_ids.get()?.clone()),
        security_group_id: Some(o.security_group_id.get()?.clone()),
        task_role_arn: o.flow_run_role_arn.get()?.clone(),
        api_key_secret_arn: o.secret_arns.get()?.api_key.clone(),
        auth_string_secret_arn: o.secret_arns.get()?.auth_string.clone(),
        ..stack_known(cx)
    })
}

/// The region whose stack this Prefect pool serves, when it is another region's: one work pool
/// points its flow runs at one cluster, so the same pool name bootstrapped in a second region
/// (same Prefect workspace) must neither take it over nor, on destroy, delete it.
fn serving_other_region(cx: &Context, pool: &WorkPool) -> Option<String> {
    let cluster = pool
        .base_job_template
        .pointer("/variables/properties/cluster/default")?
        .as_str()?;
    let region = cluster.split(':').nth(3)?;
    let ours = cluster.ends_with(&format!(":cluster/{}", cx.names.cluster));
    (ours && region != cx.identity.region).then(|| region.to_string())
}

fn state(cx: &Context, pool: &Option<WorkPool>) -> ItemState {
    let name = cx.pool();
    match pool {
        None => ItemState::Missing,
        Some(p) if serving_other_region(cx, p).is_some() => ItemState::Foreign {
            id: format!(
                "{name}, serving this pool's stack in {}",
                serving_other_region(cx, p).unwrap_or_default()
            ),
        },
        Some(p) if p.kind != "ecs" => ItemState::Foreign {
            id: format!("{name} (type {})", p.kind),
        },
        Some(p) => {
            let differ =
                template::differences(&p.base_job_template, &owned_defaults(&stack_at_look(cx)));
            if differ.is_empty() {
                ItemState::Present {
                    id: name.to_string(),
                }
            } else {
                ItemState::drifted(
                    name,
                    format!("defaults not pointing at this stack: {}", differ.join(", ")),
                    Remedy::Update(Some("will be set; the rest of the template stays")),
                )
            }
        }
    }
}

/// A pool's type can never be changed: an existing pool of another type cannot be used.
fn wrong_type(cx: &Context, pool: &WorkPool) -> anyhow::Error {
    anyhow!(
        "the Prefect work pool '{}' exists with type '{}', and a pool's type can never be changed: the ECS worker needs type 'ecs'. Use another --pool, or delete that pool in Prefect (`prefect work-pool delete {}`) if nothing else uses it",
        cx.pool(),
        pool.kind,
        cx.pool()
    )
}

async fn client(cx: &Context) -> Result<&Prefect> {
    prefect(cx).await?.ok_or_else(|| {
        anyhow!("internal error: no Prefect API URL in a run that changes the work pool")
    })
}

/// Creates the pool from the server's ECS template with ecsctl's defaults. A worker that started
/// first may have made it meanwhile: then it is updated like any existing pool.
async fn create(
    cx: &Context,
    stock: &Value,
    owned: &[Owned],
    report: &mut StepReport,
) -> Result<()> {
    let prefect = client(cx).await?;
    let name = cx.pool();
    match prefect
        .create_work_pool(name, &template::apply(stock, owned))
        .await
    {
        Ok(()) => {
            cx.ledger.created(NAME, ResourceKind::WorkPool, name)?;
            report.change(format!("created Prefect work pool {name}"));
            Ok(())
        }
        Err(e) if is_status(&e, 409) => {
            let pool = prefect
                .work_pool(name)
                .await?
                .ok_or_else(|| anyhow!("Prefect work pool {name} was created and deleted meanwhile; run bootstrap again"))?;
            update(cx, &pool, owned, report).await
        }
        Err(e) => Err(e),
    }
}

/// Sets ecsctl's defaults in an existing pool, writing only when one differs.
async fn update(
    cx: &Context,
    pool: &WorkPool,
    owned: &[Owned],
    report: &mut StepReport,
) -> Result<()> {
    if pool.kind != "ecs" {
        return Err(wrong_type(cx, pool));
    }
    let name = cx.pool();
    if !cx
        .recorded(NAME, ResourceKind::WorkPool)
        .iter()
        .any(|p| p == name)
    {
        cx.ledger.used(NAME, ResourceKind::WorkPool, name)?;
    }
    let differ = template::differences(&pool.base_job_template, owned);
    if differ.is_empty() {
        return Ok(());
    }
    let template = template::apply(&pool.base_job_template, owned);
    client(cx).await?.update_template(name, &template).await?;
    report.change(format!(
        "set the defaults of Prefect work pool {name}: {}",
        differ.join(", ")
    ));
    Ok(())
}

/// Whether a task definition family is one the ECS worker registered for this pool's flow runs:
/// prefect-aws names them `prefect_<pool>_<deployment or flow id>`.
fn is_flow_run_family(pool: &str, family: &str) -> bool {
    family
        .strip_prefix(&format!("prefect_{pool}_"))
        .is_some_and(|id| id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
}

/// Deregisters and deletes every revision of the pool's flow-run families; how many families.
async fn remove_flow_run_definitions(cx: &Context) -> Result<usize> {
    let ecs = &cx.aws.ecs;
    let prefix = format!("prefect_{}_", cx.pool());
    let listed: Vec<String> = ecs
        .list_task_definition_families()
        .family_prefix(&prefix)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .aws(format!("listing the task definition families {prefix}*"))?;
    let families: Vec<&String> = listed
        .iter()
        .filter(|f| is_flow_run_family(cx.pool(), f))
        .collect();
    for family in &families {
        let revisions: Vec<String> = ecs
            .list_task_definitions()
            .family_prefix(family.as_str())
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws(format!("listing the revisions of task definition {family}"))?;
        for arn in &revisions {
            ecs.deregister_task_definition()
                .task_definition(arn)
                .send()
                .await
                .aws(format!("deregistering task definition {arn}"))?;
        }
        for batch in revisions.chunks(10) {
            ecs.delete_task_definitions()
                .set_task_definitions(Some(batch.to_vec()))
                .send()
                .await
                .aws(format!(
                    "deleting the revisions of task definition {family}"
                ))?;
        }
    }
    Ok(families.len())
}

#[async_trait]
impl Step for WorkPoolStep {
    fn name(&self) -> &'static str {
        NAME
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &[
            "cluster",
            "network",
            "execution-role",
            "flow-run-role",
            "secret",
            "log-group",
        ]
    }

    async fn look(&self, cx: &Context) -> Result<StepPlan> {
        let Some(prefect) = prefect(cx).await? else {
            // No ledger and no PREFECT_API_URL: nothing to look at in Prefect.
            self.seen.put(Looked::default());
            return Ok(StepPlan {
                step: NAME,
                items: Vec::new(),
            });
        };
        // A first bootstrap reads the template it will create the pool from alongside; a later
        // one (the ledger knows the pool) reads it only if the pool has gone meanwhile.
        let ledger = cx.ledger.snapshot();
        let known = ledger
            .created
            .iter()
            .chain(&ledger.used)
            .any(|r| r.kind == ResourceKind::WorkPool);
        let stock = async {
            if cx.is_bootstrap() && !known {
                prefect.ecs_default_template().await.map(Some)
            } else {
                Ok(None)
            }
        };
        let (pool, stock_template) = tokio::try_join!(work_pool_at_look(cx), stock)?;
        if let Some(p) = pool
            .as_ref()
            .filter(|p| p.kind != "ecs" && cx.is_bootstrap())
        {
            return Err(wrong_type(cx, p));
        }
        let mut state = state(cx, &pool);
        // A pool ecsctl did not create is the user's: destroy only takes its defaults away.
        let created = cx
            .recorded(NAME, ResourceKind::WorkPool)
            .iter()
            .any(|p| p == cx.pool());
        if !created && matches!(cx.run, Run::Destroy(_)) && state.is_owned() {
            state = ItemState::Used {
                id: cx.pool().to_string(),
            };
        }
        let plan = StepPlan::one(NAME, ResourceKind::WorkPool, cx.pool(), state);
        self.seen.put(Looked {
            pool,
            stock_template,
        });
        Ok(plan)
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let owned = owned_defaults(&stack_at_apply(cx)?);
        let mut report = StepReport::default();
        let looked = self.seen.get()?;
        match (&looked.pool, looked.stock_template) {
            (Some(pool), _) => update(cx, pool, &owned, &mut report).await?,
            (None, Some(stock)) => create(cx, &stock, &owned, &mut report).await?,
            (None, None) => {
                let stock = client(cx).await?.ecs_default_template().await?;
                create(cx, &stock, &owned, &mut report).await?
            }
        }
        report.resource("work pool", cx.pool());
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        let mut report = StepReport::default();
        let name = cx.pool();
        let created = cx
            .recorded(NAME, ResourceKind::WorkPool)
            .iter()
            .any(|p| p == name);
        let Some(pool) = self.seen.get()?.pool else {
            cx.ledger.forget(ResourceKind::WorkPool, name)?;
            return Ok(report);
        };
        if let Some(region) = serving_other_region(cx, &pool) {
            report.change(format!(
                "left Prefect work pool {name}: it serves this pool's stack in {region}"
            ));
            cx.ledger.forget(ResourceKind::WorkPool, name)?;
            return Ok(report);
        }
        let prefect = client(cx).await?;
        if created {
            let (deleted, families) = tokio::try_join!(
                prefect.delete_work_pool(name),
                remove_flow_run_definitions(cx)
            )?;
            if deleted {
                report.change(format!("deleted Prefect work pool {name}"));
            }
            if families > 0 {
                report.change(format!(
                    "deleted the task definitions of {families} flow-run famil{} the worker registered",
                    if families == 1 { "y" } else { "ies" }
                ));
            }
        } else if pool.kind == "ecs" {
            // Not ecsctl's pool: only the defaults ecsctl set go; the user's settings stay.
            let cleaned = template::remove(&pool.base_job_template, OWNED);
            if cleaned != pool.base_job_template {
                prefect.update_template(name, &cleaned).await?;
                report.change(format!(
                    "removed ecsctl's defaults from Prefect work pool {name} (not created by ecsctl, so it stays)"
                ));
            }
        } else {
            bail!(
                "Prefect work pool {name} has type '{}'; ecsctl never changed it",
                pool.kind
            );
        }
        cx.ledger.forget(ResourceKind::WorkPool, name)?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack() -> Stack {
        Stack {
            cluster_arn: "arn:aws:ecs:us-east-1:1:cluster/ecsctl-p".into(),
            vpc_id: Some("vpc-1".into()),
            subnet_ids: Some(vec!["subnet-b".into(), "subnet-a".into()]),
            security_group_id: Some("sg-1".into()),
            execution_role_arn: "arn:aws:iam::1:role/ecsctl/ecsctl-p-execution".into(),
            task_role_arn: "arn:aws:iam::1:role/ecsctl/ecsctl-p-use1-flow-run".into(),
            api_key_secret_arn: Some(
                "arn:aws:secretsmanager:us-east-1:1:secret:ecsctl/p/prefect-api-key-AbC".into(),
            ),
            auth_string_secret_arn: None,
            log_group: "/ecsctl/p/flow-runs".into(),
            region: "us-east-1".into(),
            capacity: FlowRunCapacity::Fargate,
            pool: "p".into(),
        }
    }

    fn default_of<'a>(owned: &'a [Owned], name: &str) -> Option<&'a Value> {
        owned.iter().find(|o| o.name == name).map(|o| &o.default)
    }

    #[test]
    fn flow_runs_go_to_this_stack_with_the_key_from_its_secret() {
        let owned = owned_defaults(&stack());
        assert_eq!(
            default_of(&owned, "cluster"),
            Some(&json!("arn:aws:ecs:us-east-1:1:cluster/ecsctl-p"))
        );
        assert_eq!(
            default_of(&owned, "network_configuration"),
            Some(
                &json!({ "subnets": ["subnet-a", "subnet-b"], "securityGroups": ["sg-1"], "assignPublicIp": "ENABLED" })
            )
        );
        assert!(default_of(&owned, "prefect_api_key_secret_arn").is_some());
        assert_eq!(
            default_of(&owned, "prefect_api_auth_string_secret_arn"),
            None
        );
        let logs = default_of(&owned, "cloudwatch_logs_options").unwrap();
        assert_eq!(logs["awslogs-group"], "/ecsctl/p/flow-runs");
        assert_eq!(logs["awslogs-create-group"], "false");
        assert_eq!(
            default_of(&owned, "labels"),
            Some(&json!({ "ecsctl:pool": "p" }))
        );
        assert!(
            owned.iter().all(|o| OWNED.contains(&o.name)),
            "OWNED lists every default ecsctl sets"
        );
    }

    #[test]
    fn flow_run_families_are_the_workers_for_this_pool_only() {
        let id = "0f9a1c2e-1111-2222-3333-444455556666";
        assert!(is_flow_run_family("p", &format!("prefect_p_{id}")));
        assert!(
            !is_flow_run_family("p", &format!("prefect_p_x_{id}")),
            "pool p_x's"
        );
        assert!(
            !is_flow_run_family("p", "prefect_p_mine"),
            "the user's own family"
        );
        assert!(!is_flow_run_family("p", "ecsctl-p-worker"));
    }

    #[test]
    fn spot_capacity_is_a_capacity_provider_strategy() {
        let owned = owned_defaults(&Stack {
            capacity: FlowRunCapacity::Spot,
            ..stack()
        });
        assert_eq!(
            default_of(&owned, "launch_type"),
            Some(&json!("FARGATE_SPOT"))
        );
        assert_eq!(
            default_of(&owned, "capacity_provider_strategy"),
            Some(&json!([{ "capacityProvider": "FARGATE_SPOT", "weight": 1 }]))
        );
    }

    #[test]
    fn the_network_is_set_only_with_its_vpc() {
        let owned = owned_defaults(&Stack {
            vpc_id: None,
            ..stack()
        });
        assert_eq!(default_of(&owned, "network_configuration"), None);
        assert_eq!(default_of(&owned, "vpc_id"), None);
    }
}
