//! A sorted snapshot of everything ecsctl could create in one account and region, for checks
//! like "bootstrap then destroy leaves the account exactly as it was".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use aws_sdk_ecs::types::TaskDefinitionStatus;
use aws_sdk_secretsmanager::operation::list_secrets::ListSecretsOutput;

use super::aws::Clients;

/// All resources of the kinds ecsctl manages, each list sorted. Equal snapshots mean nothing
/// of these kinds was created, deleted or changed in between.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    pub roles: Vec<Role>,
    pub secrets: Vec<Secret>,
    pub log_groups: Vec<LogGroup>,
    pub vpcs: Vec<Vpc>,
    pub subnets: Vec<Subnet>,
    pub internet_gateways: Vec<InternetGateway>,
    pub route_tables: Vec<RouteTable>,
    pub security_groups: Vec<SecurityGroup>,
    /// ACTIVE clusters only.
    pub clusters: Vec<Cluster>,
    /// ARNs of ACTIVE task definition revisions.
    pub task_definitions: Vec<String>,
    /// SQS queue URLs.
    pub queues: Vec<String>,
    /// EventBridge rule names on the default bus.
    pub rules: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Role {
    pub name: String,
    pub path: String,
    pub managed_policies: Vec<String>,
    pub inline_policies: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Secret {
    pub name: String,
    /// Deleted with a recovery window: invisible by default, but its name is still taken.
    pub scheduled_for_deletion: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogGroup {
    pub name: String,
    pub retention_days: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vpc {
    pub id: String,
    pub cidr: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub az: String,
    pub cidr: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct InternetGateway {
    pub id: String,
    /// IDs of the VPCs it is attached to.
    pub attachments: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteTable {
    pub id: String,
    pub vpc_id: String,
    /// `destination -> target`, e.g. `0.0.0.0/0 -> igw-123`.
    pub routes: Vec<String>,
    /// Associated subnet IDs, or `main` for the VPC's main table.
    pub associations: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub vpc_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cluster {
    pub arn: String,
    /// ARNs of its services that are not INACTIVE (i.e. ACTIVE or still DRAINING).
    pub services: Vec<String>,
}

impl Inventory {
    /// Lists everything through `clients`. Panics if any call fails, since a partial
    /// snapshot would make comparisons meaningless.
    pub async fn take(clients: &Clients) -> Inventory {
        Inventory::try_take(clients)
            .await
            .unwrap_or_else(|e| panic!("taking inventory: {e:?}"))
    }

    async fn try_take(clients: &Clients) -> anyhow::Result<Inventory> {
        let (roles, secrets, log_groups, network, ecs, queues, rules) = tokio::join!(
            roles(clients),
            secrets(clients),
            log_groups(clients),
            network(clients),
            ecs(clients),
            queues(clients),
            rules(clients),
        );
        let (vpcs, subnets, internet_gateways, route_tables, security_groups) = network?;
        let (clusters, task_definitions) = ecs?;
        Ok(Inventory {
            roles: sorted(roles?),
            secrets: sorted(secrets?),
            log_groups: sorted(log_groups?),
            vpcs: sorted(vpcs),
            subnets: sorted(subnets),
            internet_gateways: sorted(internet_gateways),
            route_tables: sorted(route_tables),
            security_groups: sorted(security_groups),
            clusters: sorted(clusters),
            task_definitions: sorted(task_definitions),
            queues: sorted(queues?),
            rules: sorted(rules?),
        })
    }

    /// One line per resource: `- ...` only in `self`, `+ ...` only in `other`. Empty if equal.
    pub fn diff(&self, other: &Inventory) -> String {
        let (before, after) = (self.lines(), other.lines());
        let removed = before.difference(&after).map(|line| format!("- {line}\n"));
        let added = after.difference(&before).map(|line| format!("+ {line}\n"));
        removed.chain(added).collect()
    }

    /// Panics with the [`Inventory::diff`] if `after` differs from `self`.
    pub fn assert_unchanged(&self, after: &Inventory) {
        assert!(
            self == after,
            "account changed (- before, + after):\n{}",
            self.diff(after)
        );
    }

    fn lines(&self) -> BTreeSet<String> {
        fn debug<T: Debug>(items: &[T]) -> impl Iterator<Item = String> + '_ {
            items.iter().map(|item| format!("{item:?}"))
        }
        debug(&self.roles)
            .chain(debug(&self.secrets))
            .chain(debug(&self.log_groups))
            .chain(debug(&self.vpcs))
            .chain(debug(&self.subnets))
            .chain(debug(&self.internet_gateways))
            .chain(debug(&self.route_tables))
            .chain(debug(&self.security_groups))
            .chain(debug(&self.clusters))
            .chain(
                self.task_definitions
                    .iter()
                    .map(|arn| format!("TaskDefinition {arn}")),
            )
            .chain(self.queues.iter().map(|url| format!("Queue {url}")))
            .chain(self.rules.iter().map(|name| format!("Rule {name}")))
            .collect()
    }
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

fn owned(value: Option<&str>) -> String {
    value.unwrap_or_default().to_owned()
}

async fn roles(clients: &Clients) -> anyhow::Result<Vec<Role>> {
    let iam = &clients.iam;
    let listed = iam
        .list_roles()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?;
    let mut roles = Vec::new();
    for role in listed {
        let name = role.role_name();
        let managed = iam
            .list_attached_role_policies()
            .role_name(name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await?;
        let inline = iam
            .list_role_policies()
            .role_name(name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await?;
        roles.push(Role {
            name: name.to_owned(),
            path: role.path().to_owned(),
            managed_policies: sorted(managed.iter().map(|p| owned(p.policy_arn())).collect()),
            inline_policies: sorted(inline),
        });
    }
    Ok(roles)
}

async fn secrets(clients: &Clients) -> anyhow::Result<Vec<Secret>> {
    let pages = clients
        .secrets
        .list_secrets()
        .include_planned_deletion(true)
        .into_paginator()
        .send()
        .try_collect()
        .await?;
    Ok(pages
        .iter()
        .flat_map(ListSecretsOutput::secret_list)
        .map(|secret| Secret {
            name: owned(secret.name()),
            scheduled_for_deletion: secret.deleted_date().is_some(),
        })
        .collect())
}

async fn queues(clients: &Clients) -> anyhow::Result<Vec<String>> {
    let listed = clients.sqs.list_queues().send().await?;
    Ok(listed.queue_urls().to_vec())
}

async fn rules(clients: &Clients) -> anyhow::Result<Vec<String>> {
    let listed = clients.events.list_rules().send().await?;
    Ok(listed
        .rules()
        .iter()
        .map(|rule| owned(rule.name()))
        .collect())
}

async fn log_groups(clients: &Clients) -> anyhow::Result<Vec<LogGroup>> {
    let listed = clients
        .logs
        .describe_log_groups()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?;
    Ok(listed
        .iter()
        .map(|group| LogGroup {
            name: owned(group.log_group_name()),
            retention_days: group.retention_in_days(),
        })
        .collect())
}

type Network = (
    Vec<Vpc>,
    Vec<Subnet>,
    Vec<InternetGateway>,
    Vec<RouteTable>,
    Vec<SecurityGroup>,
);

async fn network(clients: &Clients) -> anyhow::Result<Network> {
    let ec2 = &clients.ec2;
    let (vpcs, subnets, gateways, tables, groups) = tokio::join!(
        ec2.describe_vpcs()
            .into_paginator()
            .items()
            .send()
            .try_collect(),
        ec2.describe_subnets()
            .into_paginator()
            .items()
            .send()
            .try_collect(),
        ec2.describe_internet_gateways()
            .into_paginator()
            .items()
            .send()
            .try_collect(),
        ec2.describe_route_tables()
            .into_paginator()
            .items()
            .send()
            .try_collect(),
        ec2.describe_security_groups()
            .into_paginator()
            .items()
            .send()
            .try_collect(),
    );
    let vpcs = vpcs?
        .iter()
        .map(|vpc| Vpc {
            id: owned(vpc.vpc_id()),
            cidr: owned(vpc.cidr_block()),
            tags: vpc
                .tags()
                .iter()
                .map(|tag| (owned(tag.key()), owned(tag.value())))
                .collect(),
        })
        .collect();
    let subnets = subnets?
        .iter()
        .map(|subnet| Subnet {
            id: owned(subnet.subnet_id()),
            vpc_id: owned(subnet.vpc_id()),
            az: owned(subnet.availability_zone()),
            cidr: owned(subnet.cidr_block()),
        })
        .collect();
    let gateways = gateways?
        .iter()
        .map(|gateway| InternetGateway {
            id: owned(gateway.internet_gateway_id()),
            attachments: sorted(
                gateway
                    .attachments()
                    .iter()
                    .map(|a| owned(a.vpc_id()))
                    .collect(),
            ),
        })
        .collect();
    let tables = tables?
        .iter()
        .map(|table| RouteTable {
            id: owned(table.route_table_id()),
            vpc_id: owned(table.vpc_id()),
            routes: sorted(table.routes().iter().map(route).collect()),
            associations: sorted(
                table
                    .associations()
                    .iter()
                    .map(|a| match a.subnet_id() {
                        Some(subnet) => subnet.to_owned(),
                        None if a.main() == Some(true) => "main".to_owned(),
                        None => owned(a.gateway_id()),
                    })
                    .collect(),
            ),
        })
        .collect();
    let groups = groups?
        .iter()
        .map(|group| SecurityGroup {
            id: owned(group.group_id()),
            name: owned(group.group_name()),
            vpc_id: owned(group.vpc_id()),
        })
        .collect();
    Ok((vpcs, subnets, gateways, tables, groups))
}

fn route(route: &aws_sdk_ec2::types::Route) -> String {
    let destination = route
        .destination_cidr_block()
        .or(route.destination_ipv6_cidr_block())
        .or(route.destination_prefix_list_id());
    let target = route
        .gateway_id()
        .or(route.nat_gateway_id())
        .or(route.network_interface_id());
    format!("{} -> {}", owned(destination), owned(target))
}

async fn ecs(clients: &Clients) -> anyhow::Result<(Vec<Cluster>, Vec<String>)> {
    let ecs = &clients.ecs;
    let arns: Vec<String> = ecs
        .list_clusters()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?;
    let mut clusters = Vec::new();
    // DescribeClusters takes at most 100 ARNs, DescribeServices at most 10.
    for batch in arns.chunks(100) {
        let described = ecs
            .describe_clusters()
            .set_clusters(Some(batch.to_vec()))
            .send()
            .await?;
        for cluster in described.clusters() {
            if cluster.status() == Some("ACTIVE") {
                let arn = owned(cluster.cluster_arn());
                let services = services(clients, &arn).await?;
                clusters.push(Cluster { arn, services });
            }
        }
    }
    let task_definitions = ecs
        .list_task_definitions()
        .status(TaskDefinitionStatus::Active)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?;
    Ok((clusters, task_definitions))
}

async fn services(clients: &Clients, cluster: &str) -> anyhow::Result<Vec<String>> {
    let ecs = &clients.ecs;
    let arns: Vec<String> = ecs
        .list_services()
        .cluster(cluster)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?;
    let mut services = Vec::new();
    for batch in arns.chunks(10) {
        let described = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(batch.to_vec()))
            .send()
            .await?;
        services.extend(
            described
                .services()
                .iter()
                .filter(|service| service.status() != Some("INACTIVE"))
                .map(|service| owned(service.service_arn())),
        );
    }
    Ok(sorted(services))
}
