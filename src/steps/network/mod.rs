//! `network`: where the worker's tasks run. Either ecsctl's own VPC (10.0.0.0/16, DNS hostnames on)
//! with one public subnet in each of two Fargate-capable zones, an internet gateway, a route table
//! sending 0.0.0.0/0 to it, and a security group with no inbound rules; or the user's VPC and subnets
//! (`--vpc-id`, `--subnet-ids`), used but never changed or deleted, plus ecsctl's security group in it.
//!
//! Only resources tagged `ecsctl:pool=P` are ecsctl's. Creation runs in three rounds of concurrent
//! calls, each needing ids from the one before; a re-run where everything exists makes no change.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, bail, Result};
use async_trait::async_trait;
use aws_sdk_ec2::types::{
    self as ec2, AttachmentStatus, AttributeBooleanValue, Filter, ResourceType,
    RouteTableAssociationStateCode, TagSpecification,
};
use futures::future::join_all;

use super::own::{not_ours, record_found, tag};
use super::retag::{self, TagChanges};
use super::wait::retry_while;
use super::{
    Context, ItemState, PlanItem, Remedy, Run, Seen, Step, StepPlan, StepReport, TAG_POOL,
};
use crate::aws::{is_code, AwsResultExt};
use crate::config::{fargate_runs_in, NetworkChoice};
use crate::ledger::ResourceKind;

mod create;
mod delete;
mod guardduty;
mod look;
mod reuse;

use create::{apply_create, apply_reuse, dns_hostnames};
use delete::{
    delete_gateway, delete_group, delete_route_table, delete_subnet, delete_vpc, disassociate,
    tally, targets,
};
use look::{add_leftovers, create_items, find_tagged, reuse_items};
use reuse::{find_reused, Reused};

const NAME: &str = "network";
const VPC_CIDR: &str = "10.0.0.0/16";
const ANYWHERE: &str = "0.0.0.0/0";
/// The two public subnets ecsctl creates: CIDR block and Name-tag suffix.
const SUBNET_SLOTS: [(&str, &str); 2] = [("10.0.0.0/20", "a"), ("10.0.16.0/20", "b")];
/// Answers that mean what we delete (or detach) is already gone.
const GONE: &[&str] = &[
    "InvalidVpcID.NotFound",
    "InvalidSubnetID.NotFound",
    "InvalidInternetGatewayID.NotFound",
    "InvalidRouteTableID.NotFound",
    "InvalidGroup.NotFound",
    "InvalidAssociationID.NotFound",
    "Gateway.NotAttached",
];

#[derive(Debug, Clone)]
struct Subnet {
    id: String,
    vpc_id: String,
    az: String,
    /// The zone's id (`use1-az1`), the same in every account.
    zone_id: String,
    cidr: String,
    /// The Name tag, else the id.
    name: String,
}

#[derive(Debug, Clone)]
struct Gateway {
    id: String,
    /// The VPCs it is attached (or attaching) to.
    vpcs: Vec<String>,
}

impl Gateway {
    fn attached_to(&self, vpc: &str) -> bool {
        self.vpcs.iter().any(|v| v == vpc)
    }
}

#[derive(Debug, Clone)]
struct RouteTable {
    id: String,
    vpc_id: String,
    /// Where 0.0.0.0/0 goes (empty when not to a gateway); `None` without such a route.
    default_target: Option<String>,
    /// Subnet associations, which block deleting the table (even those of deleted subnets).
    associations: Vec<Association>,
}

impl RouteTable {
    fn associates(&self, subnet: &str) -> bool {
        self.associations.iter().any(|a| a.subnet_id == subnet)
    }
}

#[derive(Debug, Clone)]
struct Association {
    id: String,
    subnet_id: String,
}

#[derive(Debug, Clone)]
struct Group {
    id: String,
    vpc_id: String,
    /// Inbound rules: ecsctl's group has none, so any here was added by someone else.
    ingress: Vec<ec2::IpPermission>,
}

impl Group {
    /// The group's inbound rules as a person reads them: "tcp/22 from 0.0.0.0/0".
    fn ingress_rules(&self) -> Vec<String> {
        self.ingress.iter().map(rule_text).collect()
    }
}

/// One inbound permission: protocol, ports and where from.
fn rule_text(p: &ec2::IpPermission) -> String {
    let protocol = match p.ip_protocol() {
        Some("-1") | None => "all traffic".to_string(),
        Some(proto) => match (p.from_port(), p.to_port()) {
            (Some(from), Some(to)) if from == to => format!("{proto}/{from}"),
            (Some(from), Some(to)) => format!("{proto}/{from}-{to}"),
            _ => proto.to_string(),
        },
    };
    let sources: Vec<&str> = (p.ip_ranges().iter().filter_map(|r| r.cidr_ip()))
        .chain(p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6()))
        .chain(p.user_id_group_pairs().iter().filter_map(|g| g.group_id()))
        .chain(
            p.prefix_list_ids()
                .iter()
                .filter_map(|l| l.prefix_list_id()),
        )
        .collect();
    format!("{protocol} from {}", sources.join(", "))
}

/// Everything tagged for the pool, sorted by id (subnets by zone).
#[derive(Debug, Clone, Default)]
struct Tagged {
    vpcs: Vec<String>,
    subnets: Vec<Subnet>,
    gateways: Vec<Gateway>,
    route_tables: Vec<RouteTable>,
    groups: Vec<Group>,
    /// Each one's tags, by id.
    tags: BTreeMap<String, Vec<(String, String)>>,
}

/// The pool's own network as found (create mode): what apply completes.
struct Current<'a> {
    vpc: Option<&'a str>,
    subnets: Vec<&'a Subnet>,
    gateway: Option<&'a Gateway>,
    route_table: Option<&'a RouteTable>,
    group: Option<&'a Group>,
}

impl Tagged {
    /// Picks the pool's VPC and its parts. A second tagged VPC could only come from a bug or a
    /// race; it is left out here and listed for destroy.
    fn current(&self) -> Current<'_> {
        let vpc = self.vpcs.first().map(String::as_str);
        let in_vpc = |id: &str| Some(id) == vpc;
        Current {
            vpc,
            subnets: self.subnets.iter().filter(|s| in_vpc(&s.vpc_id)).collect(),
            // One attached to the VPC, else a detached one (a run killed before attaching it).
            gateway: self
                .gateways
                .iter()
                .find(|g| vpc.is_some_and(|v| g.attached_to(v)))
                .or_else(|| self.gateways.iter().find(|g| g.vpcs.is_empty())),
            route_table: self.route_tables.iter().find(|rt| in_vpc(&rt.vpc_id)),
            group: vpc.and_then(|v| self.group_in(v)),
        }
    }

    /// The tag changes of each of them (worked out at look, while the ledger still has the last
    /// bootstrap's tags); EC2's `Name` is ecsctl's own, set at creation.
    fn tag_changes(&self, cx: &Context) -> BTreeMap<String, TagChanges> {
        let changes = |have: &Vec<(String, String)>| {
            let have = have.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            TagChanges::for_resource(cx, have, &["Name"])
        };
        (self.tags.iter())
            .map(|(id, have)| (id.clone(), changes(have)))
            .collect()
    }

    fn group_in(&self, vpc: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.vpc_id == vpc)
    }

    fn all(&self) -> Vec<(ResourceKind, &str)> {
        let vpcs = self.vpcs.iter().map(|id| (ResourceKind::Vpc, id.as_str()));
        let subnets = self
            .subnets
            .iter()
            .map(|s| (ResourceKind::Subnet, s.id.as_str()));
        let gateways =
            (self.gateways.iter()).map(|g| (ResourceKind::InternetGateway, g.id.as_str()));
        let tables =
            (self.route_tables.iter()).map(|rt| (ResourceKind::RouteTable, rt.id.as_str()));
        let groups = (self.groups.iter()).map(|g| (ResourceKind::SecurityGroup, g.id.as_str()));
        vpcs.chain(subnets)
            .chain(gateways)
            .chain(tables)
            .chain(groups)
            .collect()
    }
}

impl Current<'_> {
    fn existing(&self) -> Vec<(ResourceKind, &str)> {
        let subnets = self
            .subnets
            .iter()
            .map(|s| (ResourceKind::Subnet, s.id.as_str()));
        (self.vpc.map(|id| (ResourceKind::Vpc, id)).into_iter())
            .chain(subnets)
            .chain(
                self.gateway
                    .map(|g| (ResourceKind::InternetGateway, g.id.as_str())),
            )
            .chain(
                self.route_table
                    .map(|rt| (ResourceKind::RouteTable, rt.id.as_str())),
            )
            .chain(
                self.group
                    .map(|g| (ResourceKind::SecurityGroup, g.id.as_str())),
            )
            .collect()
    }

    /// Whether the route table sends 0.0.0.0/0 to the pool's gateway.
    fn routes_out(&self) -> bool {
        match (self.route_table, self.gateway) {
            (Some(rt), Some(g)) => rt.default_target.as_deref() == Some(g.id.as_str()),
            _ => false,
        }
    }
}

/// What look saw, for apply and destroy.
#[derive(Debug, Clone, Default)]
struct Found {
    tagged: Tagged,
    reused: Reused,
    /// Whether the pool's own VPC has DNS hostnames on; `None` without one (or in reuse mode).
    dns_hostnames: Option<bool>,
    /// The tag changes of what is tagged for the pool, by id.
    tag_changes: BTreeMap<String, TagChanges>,
    /// What GuardDuty added to the pool's own VPCs (destroy only).
    guardduty: guardduty::SideResources,
}

/// The network the worker runs in, once applied.
struct Network {
    vpc_id: String,
    subnets: Vec<Subnet>,
    group_id: String,
}

/// Brings the tags of the pool's resources that existed before this run in line: one call for
/// all of those that need the same change.
async fn retag_existing(
    cx: &Context,
    tag_changes: &BTreeMap<String, TagChanges>,
    existing: &[String],
    report: &mut StepReport,
) -> Result<()> {
    let mut batches: Vec<(TagChanges, Vec<String>)> = Vec::new();
    for id in existing {
        let Some(changes) = tag_changes.get(id).cloned() else {
            continue;
        };
        match batches.iter_mut().find(|(c, _)| *c == changes) {
            Some((_, ids)) => ids.push(id.clone()),
            None => batches.push((changes, vec![id.clone()])),
        }
    }
    let calls = batches.into_iter().map(|(changes, ids)| async move {
        let what = ids.join(", ");
        retag::apply(cx, retag::Tagged::Ec2(ids), &what, &changes).await
    });
    report.changes.extend(
        futures::future::try_join_all(calls)
            .await?
            .into_iter()
            .flatten(),
    );
    Ok(())
}

#[derive(Default)]
pub struct NetworkStep {
    seen: Seen<Found>,
}

/// The VPC the ledger records but the tag lookup did not find: if it still exists, someone took
/// its pool tag off. It is shown as not ecsctl's (bootstrap stops) rather than as missing, which
/// would build a second network beside it. One extra read, only in that case.
async fn mark_untagged_vpc(
    cx: &Context,
    recorded: Option<&str>,
    tagged: &Tagged,
    items: &mut [PlanItem],
) -> Result<()> {
    let Some(vpc) = recorded.filter(|v| !tagged.vpcs.iter().any(|t| t == v)) else {
        return Ok(());
    };
    let found = cx
        .aws
        .ec2
        .describe_vpcs()
        .filters(look::filter("vpc-id", vpc))
        .send()
        .await
        .aws(format!("looking up the pool's recorded VPC {vpc}"))?;
    if found.vpcs().is_empty() {
        return Ok(());
    }
    for item in items.iter_mut().filter(|i| i.kind == ResourceKind::Vpc) {
        item.state = ItemState::Foreign {
            id: format!("{vpc}, recorded as the pool's but without its {TAG_POOL} tag"),
        };
    }
    Ok(())
}

#[async_trait]
impl Step for NetworkStep {
    fn name(&self) -> &'static str {
        NAME
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &[]
    }

    async fn look(&self, cx: &Context) -> Result<StepPlan> {
        let choice = cx.spec.as_ref().map(|s| &s.network);
        let reused = async {
            match choice {
                Some(NetworkChoice::Reuse { vpc_id, subnet_ids }) => {
                    find_reused(cx, vpc_id, subnet_ids).await
                }
                _ => Ok(Reused::default()),
            }
        };
        // A run that failed or was killed right after CreateVpc left DNS hostnames off. The
        // ledger usually knows the VPC already, so its setting is read alongside the tag lookups.
        let creating = matches!(choice, Some(NetworkChoice::Create));
        let recorded_vpc = cx.recorded(NAME, ResourceKind::Vpc).into_iter().next();
        let early_dns = async {
            match (&recorded_vpc, creating) {
                (Some(vpc), true) => Some(dns_hostnames(cx, vpc).await),
                _ => None,
            }
        };
        let (tagged, reused, early_dns, guardduty) =
            tokio::join!(find_tagged(cx), reused, early_dns, guardduty::find(cx));
        let tagged = tagged?;
        let own_vpcs = targets(cx, &tagged)
            .remove(&ResourceKind::Vpc)
            .unwrap_or_default();
        let guardduty = guardduty?.within(&own_vpcs);
        let dns_hostnames = match (creating, tagged.current().vpc) {
            (true, Some(vpc)) if recorded_vpc.as_deref() == Some(vpc) => match early_dns {
                Some(result) => result?,
                None => dns_hostnames(cx, vpc).await?,
            },
            (true, Some(vpc)) => dns_hostnames(cx, vpc).await?,
            _ => None,
        };
        let found = Found {
            tag_changes: tagged.tag_changes(cx),
            tagged,
            reused: reused?,
            dns_hostnames,
            guardduty,
        };
        let mut items = match choice {
            Some(NetworkChoice::Create) => {
                create_items(cx, &found.tagged.current(), found.dns_hostnames)
            }
            Some(NetworkChoice::Reuse { vpc_id, subnet_ids }) => {
                // Bootstrap stops here. Status and destroy show the problem as items instead,
                // so a pool whose VPC is gone can still be destroyed.
                if cx.is_bootstrap() {
                    found.reused.check(cx, vpc_id, subnet_ids)?;
                }
                reuse_items(cx, &found, vpc_id, subnet_ids)
            }
            None => Vec::new(),
        };
        for item in &mut items {
            if let Some(changes) = item.state.id().and_then(|id| found.tag_changes.get(id)) {
                item.state = changes.onto(item.state.clone());
            }
        }
        if creating {
            mark_untagged_vpc(cx, recorded_vpc.as_deref(), &found.tagged, &mut items).await?;
        }
        add_leftovers(cx, &found.tagged, &mut items);
        items.extend(found.guardduty.items());
        self.seen.put(found);
        Ok(StepPlan { step: NAME, items })
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let found = self.seen.get()?;
        let mut report = StepReport::default();
        // ecsctl's own subnets are public; the user's say by their routes.
        let (mut network, existing, public_ip) = match &cx.spec()?.network {
            NetworkChoice::Create => {
                let existing = (found.tagged.current().existing().into_iter())
                    .map(|(_, id)| id.to_string())
                    .collect();
                (apply_create(cx, &found, &mut report).await?, existing, true)
            }
            NetworkChoice::Reuse { vpc_id, subnet_ids } => {
                found.reused.check(cx, vpc_id, subnet_ids)?;
                let group = found.tagged.group_in(vpc_id).map(|g| g.id.clone());
                let network = apply_reuse(cx, &found, vpc_id, &mut report).await?;
                let existing = group.into_iter().collect::<Vec<_>>();
                (network, existing, found.reused.public_ip())
            }
        };
        retag_existing(cx, &found.tag_changes, &existing, &mut report).await?;
        network
            .subnets
            .sort_by(|a, b| (&a.az, &a.id).cmp(&(&b.az, &b.id)));
        report.resource("vpc", &network.vpc_id);
        for s in &network.subnets {
            report.resource("subnets", &s.id);
        }
        report.resource("security group", &network.group_id);
        cx.outputs.vpc_id.set(network.vpc_id);
        cx.outputs
            .subnet_ids
            .set(network.subnets.into_iter().map(|s| s.id).collect());
        cx.outputs.security_group_id.set(network.group_id);
        cx.outputs.assign_public_ip.set(public_ip);
        Ok(report)
    }

    async fn destroy(&self, cx: &Context) -> Result<StepReport> {
        let found = self.seen.get()?;
        let targets = targets(cx, &found.tagged);
        let ids = |kind: ResourceKind| targets.get(&kind).into_iter().flatten();
        let mut report = StepReport::default();

        // A route table cannot be deleted while associated, even to subnets already deleted.
        let tables = ids(ResourceKind::RouteTable).collect::<BTreeSet<_>>();
        let associations = (found.tagged.route_tables.iter())
            .filter(|rt| tables.contains(&rt.id))
            .flat_map(|rt| rt.associations.iter().map(move |a| (rt, a)));
        tally(
            &mut report,
            join_all(associations.map(|(rt, a)| disassociate(cx, &rt.id, a))).await,
        )?;

        // GuardDuty's endpoint holds network interfaces in the subnets and its group.
        let side = &found.guardduty;
        tally(
            &mut report,
            [guardduty::delete_endpoints(cx, &side.endpoints).await],
        )?;

        // On AWS these wait for Fargate's (and the endpoint's) network interfaces to be released.
        let (groups, side_groups, subnets) = tokio::join!(
            join_all(ids(ResourceKind::SecurityGroup).map(|id| delete_group(cx, id))),
            join_all(
                side.groups
                    .iter()
                    .map(|g| guardduty::delete_group(cx, &g.id))
            ),
            join_all(ids(ResourceKind::Subnet).map(|id| delete_subnet(cx, id))),
        );
        tally(
            &mut report,
            groups.into_iter().chain(side_groups).chain(subnets),
        )?;

        // Neither depends on the other; detaching the gateway needs the public IPs gone.
        let attachments = |id: &str| {
            (found.tagged.gateways.iter())
                .find(|g| g.id == id)
                .map(|g| g.vpcs.clone())
                .unwrap_or_default()
        };
        let (tables, gateways) = tokio::join!(
            join_all(ids(ResourceKind::RouteTable).map(|id| delete_route_table(cx, id))),
            join_all(ids(ResourceKind::InternetGateway).map(|id| delete_gateway(
                cx,
                id,
                attachments(id)
            ))),
        );
        tally(&mut report, tables.into_iter().chain(gateways))?;

        let vpcs = join_all(ids(ResourceKind::Vpc).map(|id| delete_vpc(cx, id))).await;
        tally(&mut report, vpcs)?;
        Ok(report)
    }
}
