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
    RouteTableAssociationStateCode, Tag, TagSpecification,
};
use futures::future::join_all;

use super::{
    retry_while, set_output, Context, ItemState, PlanItem, Seen, Step, StepPlan, StepReport,
    TAG_POOL,
};
use crate::aws::{describe, has_code, message_contains, AwsResultExt};
use crate::config::NetworkChoice;
use crate::ledger::ResourceKind;

const NAME: &str = "network";
const VPC_CIDR: &str = "10.0.0.0/16";
const ANYWHERE: &str = "0.0.0.0/0";
/// The two public subnets ecsctl creates: CIDR block and Name-tag suffix.
const SUBNET_SLOTS: [(&str, &str); 2] = [("10.0.0.0/20", "a"), ("10.0.16.0/20", "b")];
/// Zone ids where Fargate is not offered.
const NO_FARGATE_ZONES: &[&str] = &["use1-az3", "usw1-az2", "cac1-az3"];
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
}

/// Everything tagged for the pool, sorted by id (subnets by zone).
#[derive(Debug, Clone, Default)]
struct Tagged {
    vpcs: Vec<String>,
    subnets: Vec<Subnet>,
    gateways: Vec<Gateway>,
    route_tables: Vec<RouteTable>,
    groups: Vec<Group>,
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
}

/// Reuse mode: what exists of the VPC and subnets the user named.
#[derive(Debug, Clone, Default)]
struct Reused {
    vpc_exists: bool,
    /// Those of the named subnets that exist, sorted by zone.
    subnets: Vec<Subnet>,
}

impl Reused {
    /// Why the named VPC and subnets cannot be used; empty when they can.
    fn problems(&self, vpc_id: &str, subnet_ids: &[String], region: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.vpc_exists {
            problems.push(format!(
                "VPC {vpc_id} (--vpc-id) does not exist in {region}"
            ));
        }
        for id in subnet_ids {
            match self.subnets.iter().find(|s| &s.id == id) {
                None => problems.push(format!(
                    "subnet {id} (--subnet-ids) does not exist in {region}"
                )),
                Some(s) if s.vpc_id != vpc_id => problems.push(format!(
                    "subnet {id} is in VPC {}, not in {vpc_id} (--vpc-id)",
                    s.vpc_id
                )),
                Some(_) => {}
            }
        }
        problems
    }

    /// Fails, naming each bad id, unless the VPC and subnets can be used.
    fn check(&self, cx: &Context, vpc_id: &str, subnet_ids: &[String]) -> Result<()> {
        let problems = self.problems(vpc_id, subnet_ids, &cx.identity.region);
        if !problems.is_empty() {
            bail!(
                "cannot use the network you named: {}. Check the ids and --region, or leave out --vpc-id and --subnet-ids to let ecsctl create a VPC",
                problems.join("; ")
            );
        }
        Ok(())
    }
}

/// The network the worker runs in, once applied.
struct Network {
    vpc_id: String,
    subnets: Vec<Subnet>,
    group_id: String,
}

#[derive(Default)]
pub struct NetworkStep {
    seen: Seen<Found>,
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
        let recorded_vpc = cx
            .recorded(NAME)
            .into_iter()
            .find(|r| r.kind == ResourceKind::Vpc)
            .map(|r| r.id);
        let early_dns = async {
            match (&recorded_vpc, creating) {
                (Some(vpc), true) => Some(dns_hostnames(cx, vpc).await),
                _ => None,
            }
        };
        let (tagged, reused, early_dns) = tokio::join!(find_tagged(cx), reused, early_dns);
        let tagged = tagged?;
        let dns_hostnames = match (creating, tagged.current().vpc) {
            (true, Some(vpc)) if recorded_vpc.as_deref() == Some(vpc) => match early_dns {
                Some(result) => result?,
                None => dns_hostnames(cx, vpc).await?,
            },
            (true, Some(vpc)) => dns_hostnames(cx, vpc).await?,
            _ => None,
        };
        let found = Found {
            tagged,
            reused: reused?,
            dns_hostnames,
        };
        let mut items = match choice {
            Some(NetworkChoice::Create) => {
                create_items(cx, &found.tagged.current(), found.dns_hostnames)
            }
            Some(NetworkChoice::Reuse { vpc_id, subnet_ids }) => {
                // Bootstrap (the run with an API key) stops here. Status and destroy show the
                // problem as items instead, so a pool whose VPC is gone can still be destroyed.
                if cx.api_key.is_some() {
                    found.reused.check(cx, vpc_id, subnet_ids)?;
                }
                reuse_items(cx, &found, vpc_id, subnet_ids)
            }
            None => Vec::new(),
        };
        add_leftovers(cx, &found.tagged, &mut items);
        self.seen.put(found);
        Ok(StepPlan { step: NAME, items })
    }

    async fn apply(&self, cx: &Context) -> Result<StepReport> {
        let found = self.seen.get()?;
        let mut report = StepReport::default();
        let mut network = match &cx.spec()?.network {
            NetworkChoice::Create => apply_create(cx, &found, &mut report).await?,
            NetworkChoice::Reuse { vpc_id, subnet_ids } => {
                found.reused.check(cx, vpc_id, subnet_ids)?;
                apply_reuse(cx, &found, vpc_id, &mut report).await?
            }
        };
        network
            .subnets
            .sort_by(|a, b| (&a.az, &a.id).cmp(&(&b.az, &b.id)));
        report.resource("vpc", &network.vpc_id);
        for s in &network.subnets {
            report.resource("subnets", &s.id);
        }
        report.resource("security group", &network.group_id);
        set_output(&cx.outputs.vpc_id, network.vpc_id);
        set_output(
            &cx.outputs.subnet_ids,
            network.subnets.into_iter().map(|s| s.id).collect(),
        );
        set_output(&cx.outputs.security_group_id, network.group_id);
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

        // On AWS both wait for Fargate's network interfaces to be released.
        let (groups, subnets) = tokio::join!(
            join_all(ids(ResourceKind::SecurityGroup).map(|id| delete_group(cx, id))),
            join_all(ids(ResourceKind::Subnet).map(|id| delete_subnet(cx, id))),
        );
        tally(&mut report, groups.into_iter().chain(subnets))?;

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

// ---- look ----

fn filter(name: impl Into<String>, value: impl Into<String>) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Lists everything tagged for the pool: five independent reads, sent together.
async fn find_tagged(cx: &Context) -> Result<Tagged> {
    let ec2 = &cx.aws.ec2;
    let pool = || filter(format!("tag:{TAG_POOL}"), cx.pool());
    let (vpcs, subnets, gateways, tables, groups) = tokio::join!(
        ec2.describe_vpcs().filters(pool()).send(),
        ec2.describe_subnets().filters(pool()).send(),
        ec2.describe_internet_gateways().filters(pool()).send(),
        ec2.describe_route_tables().filters(pool()).send(),
        ec2.describe_security_groups().filters(pool()).send(),
    );
    let doing = |what: &str| format!("listing the {what} tagged {TAG_POOL}={}", cx.pool());
    let mut tagged = Tagged {
        vpcs: (vpcs.aws(doing("VPCs"))?.vpcs().iter())
            .filter_map(|v| v.vpc_id().map(str::to_string))
            .collect(),
        subnets: (subnets.aws(doing("subnets"))?.subnets().iter())
            .filter_map(subnet)
            .collect(),
        gateways: (gateways
            .aws(doing("internet gateways"))?
            .internet_gateways()
            .iter())
        .filter_map(gateway)
        .collect(),
        route_tables: (tables.aws(doing("route tables"))?.route_tables().iter())
            .filter_map(route_table)
            .collect(),
        groups: (groups
            .aws(doing("security groups"))?
            .security_groups()
            .iter())
        .filter_map(|g| {
            Some(Group {
                id: g.group_id()?.to_string(),
                vpc_id: g.vpc_id().unwrap_or_default().to_string(),
            })
        })
        .collect(),
    };
    tagged.vpcs.sort();
    tagged
        .subnets
        .sort_by(|a, b| (&a.az, &a.id).cmp(&(&b.az, &b.id)));
    tagged.gateways.sort_by(|a, b| a.id.cmp(&b.id));
    tagged.route_tables.sort_by(|a, b| a.id.cmp(&b.id));
    tagged.groups.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(tagged)
}

fn subnet(s: &ec2::Subnet) -> Option<Subnet> {
    let id = s.subnet_id()?.to_string();
    let name = (s.tags().iter())
        .find(|t| t.key() == Some("Name"))
        .and_then(|t| t.value())
        .unwrap_or(&id)
        .to_string();
    Some(Subnet {
        vpc_id: s.vpc_id().unwrap_or_default().to_string(),
        az: s.availability_zone().unwrap_or_default().to_string(),
        cidr: s.cidr_block().unwrap_or_default().to_string(),
        name,
        id,
    })
}

fn gateway(g: &ec2::InternetGateway) -> Option<Gateway> {
    let gone = |a: &&ec2::InternetGatewayAttachment| {
        matches!(
            a.state(),
            Some(AttachmentStatus::Detached | AttachmentStatus::Detaching)
        )
    };
    Some(Gateway {
        id: g.internet_gateway_id()?.to_string(),
        vpcs: (g.attachments().iter())
            .filter(|a| !gone(a))
            .filter_map(|a| a.vpc_id().map(str::to_string))
            .collect(),
    })
}

fn route_table(rt: &ec2::RouteTable) -> Option<RouteTable> {
    let live = |a: &&ec2::RouteTableAssociation| {
        !a.main().unwrap_or(false)
            && !matches!(
                a.association_state().and_then(|s| s.state()),
                Some(
                    RouteTableAssociationStateCode::Disassociated
                        | RouteTableAssociationStateCode::Disassociating
                )
            )
    };
    Some(RouteTable {
        id: rt.route_table_id()?.to_string(),
        vpc_id: rt.vpc_id().unwrap_or_default().to_string(),
        default_target: (rt.routes().iter())
            .find(|r| r.destination_cidr_block() == Some(ANYWHERE))
            .map(|r| r.gateway_id().unwrap_or_default().to_string()),
        associations: (rt.associations().iter())
            .filter(live)
            .filter_map(|a| {
                Some(Association {
                    id: a.route_table_association_id()?.to_string(),
                    subnet_id: a.subnet_id()?.to_string(),
                })
            })
            .collect(),
    })
}

/// Looks up the user's VPC and subnets. Filters (not ids) so that a missing id comes back as an
/// empty answer rather than an error, and the problem can name exactly which id is wrong.
async fn find_reused(cx: &Context, vpc_id: &str, subnet_ids: &[String]) -> Result<Reused> {
    let ec2 = &cx.aws.ec2;
    let subnet_filter = Filter::builder()
        .name("subnet-id")
        .set_values(Some(subnet_ids.to_vec()))
        .build();
    let (vpcs, subnets) = tokio::join!(
        ec2.describe_vpcs().filters(filter("vpc-id", vpc_id)).send(),
        ec2.describe_subnets().filters(subnet_filter).send(),
    );
    let vpcs = vpcs.aws(format!("looking up VPC {vpc_id} (--vpc-id)"))?;
    let subnets = subnets.aws(format!(
        "looking up subnets {} (--subnet-ids)",
        subnet_ids.join(", ")
    ))?;
    let mut subnets: Vec<Subnet> = subnets.subnets().iter().filter_map(subnet).collect();
    subnets.sort_by(|a, b| (&a.az, &a.id).cmp(&(&b.az, &b.id)));
    Ok(Reused {
        vpc_exists: !vpcs.vpcs().is_empty(),
        subnets,
    })
}

fn present_or_missing(id: Option<&str>) -> ItemState {
    id.map_or(ItemState::Missing, |id| ItemState::Present {
        id: id.to_string(),
    })
}

fn drifted(id: &str, what: &str) -> ItemState {
    ItemState::Drifted {
        id: id.to_string(),
        what: what.to_string(),
    }
}

fn create_items(cx: &Context, cur: &Current, dns_hostnames: Option<bool>) -> Vec<PlanItem> {
    let network = &cx.names.network;
    let vpc = match (cur.vpc, dns_hostnames) {
        (Some(id), Some(false)) => drifted(id, "DNS hostnames are off (will be turned on)"),
        (id, _) => present_or_missing(id),
    };
    let mut items = vec![PlanItem::new(ResourceKind::Vpc, network, vpc)];
    for s in &cur.subnets {
        let state = if cur.route_table.is_some_and(|rt| rt.associates(&s.id)) {
            ItemState::Present { id: s.id.clone() }
        } else {
            drifted(
                &s.id,
                "not associated with the route table (will be associated)",
            )
        };
        items.push(PlanItem::new(ResourceKind::Subnet, &s.name, state));
    }
    for (_, suffix) in missing_slots(&cur.subnets) {
        let name = format!("{network}-{suffix}");
        items.push(PlanItem::new(
            ResourceKind::Subnet,
            name,
            ItemState::Missing,
        ));
    }
    let gateway = match (cur.gateway, cur.vpc) {
        (None, _) => ItemState::Missing,
        (Some(g), Some(vpc)) if g.attached_to(vpc) => ItemState::Present { id: g.id.clone() },
        (Some(g), _) => drifted(&g.id, "not attached to the VPC (will be attached)"),
    };
    items.push(PlanItem::new(
        ResourceKind::InternetGateway,
        network,
        gateway,
    ));
    let table = match cur.route_table {
        None => ItemState::Missing,
        Some(rt) if cur.routes_out() => ItemState::Present { id: rt.id.clone() },
        Some(rt) => drifted(
            &rt.id,
            "no route 0.0.0.0/0 to the internet gateway (will be added)",
        ),
    };
    items.push(PlanItem::new(ResourceKind::RouteTable, network, table));
    items.push(PlanItem::new(
        ResourceKind::SecurityGroup,
        &cx.names.security_group,
        present_or_missing(cur.group.map(|g| g.id.as_str())),
    ));
    items
}

fn reuse_items(cx: &Context, found: &Found, vpc_id: &str, subnet_ids: &[String]) -> Vec<PlanItem> {
    let used = |id: &str| ItemState::Used { id: id.to_string() };
    let reused = &found.reused;
    let vpc = if reused.vpc_exists {
        used(vpc_id)
    } else {
        ItemState::Missing
    };
    let mut items = vec![PlanItem::new(ResourceKind::Vpc, vpc_id, vpc)];
    // A subnet in another VPC is caught by bootstrap; later it can only have been deleted.
    for id in subnet_ids {
        let item = match reused.subnets.iter().find(|s| &s.id == id) {
            Some(s) => PlanItem::new(ResourceKind::Subnet, &s.name, used(id)),
            None => PlanItem::new(ResourceKind::Subnet, id, ItemState::Missing),
        };
        items.push(item);
    }
    items.push(PlanItem::new(
        ResourceKind::SecurityGroup,
        &cx.names.security_group,
        present_or_missing(found.tagged.group_in(vpc_id).map(|g| g.id.as_str())),
    ));
    items
}

/// Lists what is tagged for the pool but not part of its network (all of it when the inputs are
/// unknown), so status shows it and destroy's final check sees it.
fn add_leftovers(cx: &Context, tagged: &Tagged, items: &mut Vec<PlanItem>) {
    let listed: BTreeSet<String> = items
        .iter()
        .filter_map(|i| i.state.id().map(str::to_string))
        .collect();
    for (kind, id) in tagged.all() {
        if !listed.contains(id) {
            let name = match kind {
                ResourceKind::SecurityGroup => &cx.names.security_group,
                ResourceKind::Subnet => (tagged.subnets.iter())
                    .find(|s| s.id == id)
                    .map_or(&cx.names.network, |s| &s.name),
                _ => &cx.names.network,
            };
            let state = ItemState::Present { id: id.to_string() };
            items.push(PlanItem::new(kind, name, state));
        }
    }
}

/// The subnet slots to fill so the VPC has two subnets, avoiding CIDRs already taken.
fn missing_slots(existing: &[&Subnet]) -> Vec<(&'static str, &'static str)> {
    let wanted = SUBNET_SLOTS.len().saturating_sub(existing.len());
    (SUBNET_SLOTS.iter())
        .filter(|(cidr, _)| !existing.iter().any(|s| s.cidr == *cidr))
        .take(wanted)
        .copied()
        .collect()
}

// ---- apply ----

/// Records what was found by tag but is missing from the ledger (a run killed between create and
/// record), so destroy deletes it even if its tags are lost later.
fn adopt(cx: &Context, existing: &[(ResourceKind, &str)]) -> Result<()> {
    let known = cx.recorded(NAME);
    for &(kind, id) in existing {
        if !known.iter().any(|r| r.kind == kind && r.id == id) {
            cx.ledger.created(NAME, kind, id)?;
        }
    }
    Ok(())
}

/// The id of what exists, or of what `create` makes now (then `true`).
async fn ensure<Fut>(existing: Option<&str>, create: impl FnOnce() -> Fut) -> Result<(String, bool)>
where
    Fut: Future<Output = Result<String>>,
{
    match existing {
        Some(id) => Ok((id.to_string(), false)),
        None => Ok((create().await?, true)),
    }
}

/// Notes a creation in the report and gives back the id.
fn note_created(
    report: &mut StepReport,
    kind: ResourceKind,
    (id, created): (String, bool),
) -> String {
    if created {
        report.change(format!("created {} {id}", kind.label()));
    }
    id
}

async fn apply_create(cx: &Context, found: &Found, report: &mut StepReport) -> Result<Network> {
    let cur = found.tagged.current();
    adopt(cx, &cur.existing())?;
    let slots = missing_slots(&cur.subnets);

    // Round 1: nothing here needs another's id. join! (not try_join!) lets every create finish
    // and be recorded even when another call fails.
    let (zones, vpc, gateway) = tokio::join!(
        async {
            if slots.is_empty() {
                Ok(Vec::new())
            } else {
                fargate_zones(cx).await
            }
        },
        ensure(cur.vpc, || create_vpc(cx)),
        ensure(cur.gateway.map(|g| g.id.as_str()), || create_gateway(cx)),
    );
    // A VPC made now, or one look found with DNS hostnames off (a run that stopped right after
    // creating it, or a change by hand).
    let set_dns = found.dns_hostnames == Some(false) || vpc.as_ref().is_ok_and(|(_, new)| *new);
    let vpc_id = note_created(report, ResourceKind::Vpc, vpc?);
    let gateway_id = note_created(report, ResourceKind::InternetGateway, gateway?);
    let attached = cur
        .gateway
        .is_some_and(|g| g.id == gateway_id && g.attached_to(&vpc_id));
    // The first two Fargate zones by name, less those the remaining subnets already use.
    let free_zones = (zones?.into_iter().take(2))
        .filter(|z| !cur.subnets.iter().any(|s| &s.az == z))
        .collect::<Vec<_>>();

    // Round 2: everything that needs only the VPC.
    let (dns, new_subnets, attach, table, group) = tokio::join!(
        async {
            if set_dns {
                enable_dns_hostnames(cx, &vpc_id).await
            } else {
                Ok(())
            }
        },
        join_all(
            (slots.iter().zip(&free_zones))
                .map(|(&(cidr, suffix), az)| create_subnet(cx, &vpc_id, cidr, suffix, az))
        ),
        async {
            if attached {
                Ok(None)
            } else {
                attach_gateway(cx, &gateway_id, &vpc_id).await.map(Some)
            }
        },
        ensure(cur.route_table.map(|rt| rt.id.as_str()), || {
            create_route_table(cx, &vpc_id)
        }),
        ensure(cur.group.map(|g| g.id.as_str()), || create_group(
            cx, &vpc_id
        )),
    );
    let table_created = table.as_ref().is_ok_and(|(_, created)| *created);
    let table_id = note_created(report, ResourceKind::RouteTable, table?);
    let group_id = note_created(report, ResourceKind::SecurityGroup, group?);
    let mut subnets: Vec<Subnet> = cur.subnets.iter().map(|&s| s.clone()).collect();
    for created in new_subnets {
        let created = created?;
        report.change(format!("created subnet {} in {}", created.id, created.az));
        subnets.push(created);
    }
    dns?;
    if let Some(change) = attach? {
        report.change(change);
    }

    // Round 3: the default route (AWS wants the gateway attached first) and the associations.
    let existing_table = cur.route_table.filter(|_| !table_created);
    let current_target = existing_table.and_then(|rt| rt.default_target.as_deref());
    let unassociated = (subnets.iter())
        .filter(|s| !existing_table.is_some_and(|rt| rt.associates(&s.id)))
        .collect::<Vec<_>>();
    let (route, associations) = tokio::join!(
        route_to_gateway(cx, &table_id, &gateway_id, current_target),
        join_all(unassociated.iter().map(|s| associate(cx, &table_id, &s.id))),
    );
    if let Some(change) = route? {
        report.change(change);
    }
    for change in associations {
        report.change(change?);
    }

    report.resource("internet gateway", &gateway_id);
    report.resource("route table", &table_id);
    Ok(Network {
        vpc_id,
        subnets,
        group_id,
    })
}

/// Uses the user's VPC and subnets (recorded as used, so destroy leaves them) and puts the pool's
/// security group in that VPC.
async fn apply_reuse(
    cx: &Context,
    found: &Found,
    vpc_id: &str,
    report: &mut StepReport,
) -> Result<Network> {
    let used = cx.ledger.snapshot().used;
    let subnets = (found.reused.subnets.iter()).map(|s| (ResourceKind::Subnet, s.id.as_str()));
    for (kind, id) in std::iter::once((ResourceKind::Vpc, vpc_id)).chain(subnets) {
        if !used.iter().any(|r| r.kind == kind && r.id == id) {
            cx.ledger.used(NAME, kind, id)?;
        }
    }
    let existing = found.tagged.group_in(vpc_id).map(|g| g.id.as_str());
    if let Some(id) = existing {
        adopt(cx, &[(ResourceKind::SecurityGroup, id)])?;
    }
    let group = ensure(existing, || create_group(cx, vpc_id)).await?;
    Ok(Network {
        vpc_id: vpc_id.to_string(),
        subnets: found.reused.subnets.clone(),
        group_id: note_created(report, ResourceKind::SecurityGroup, group),
    })
}

/// Tags for a new resource: the pool's tags and a Name (replacing a user's `Name` tag).
fn tag_spec(cx: &Context, resource: ResourceType, name: &str) -> TagSpecification {
    let tags = (cx.tags(NAME).into_iter())
        .filter(|(k, _)| k != "Name")
        .chain([("Name".to_string(), name.to_string())])
        .map(|(k, v)| Tag::builder().key(k).value(v).build());
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(tags.collect()))
        .build()
}

fn missing_id(call: &str) -> anyhow::Error {
    anyhow!("{call} returned no id")
}

/// Availability zones where Fargate runs, sorted by name; fails unless there are two.
async fn fargate_zones(cx: &Context) -> Result<Vec<String>> {
    let out = (cx.aws.ec2.describe_availability_zones())
        .filters(filter("state", "available"))
        .filters(filter("zone-type", "availability-zone"))
        .send()
        .await
        .aws("listing the availability zones")?;
    let mut zones: Vec<String> = (out.availability_zones().iter())
        .filter(|z| !z.zone_id().is_some_and(|id| NO_FARGATE_ZONES.contains(&id)))
        .filter_map(|z| z.zone_name().map(str::to_string))
        .collect();
    zones.sort();
    if zones.len() < 2 {
        bail!(
            "region {} has {} available zone(s) where Fargate runs ({}), and ecsctl needs two for its subnets; choose another --region, or pass --vpc-id and --subnet-ids",
            cx.identity.region,
            zones.len(),
            zones.join(", ")
        );
    }
    Ok(zones)
}

/// Whether DNS hostnames are on in a VPC; `None` if the VPC is gone (deleted since it was listed).
async fn dns_hostnames(cx: &Context, vpc_id: &str) -> Result<Option<bool>> {
    let out = (cx.aws.ec2.describe_vpc_attribute())
        .vpc_id(vpc_id)
        .attribute(ec2::VpcAttributeName::EnableDnsHostnames)
        .send()
        .await
        .found(
            &["InvalidVpcID.NotFound"],
            format!("reading the DNS hostnames setting of VPC {vpc_id}"),
        )?;
    Ok(out.map(|out| {
        out.enable_dns_hostnames()
            .and_then(|v| v.value())
            .unwrap_or(false)
    }))
}

async fn create_vpc(cx: &Context) -> Result<String> {
    let name = &cx.names.network;
    let out = (cx.aws.ec2.create_vpc())
        .cidr_block(VPC_CIDR)
        .tag_specifications(tag_spec(cx, ResourceType::Vpc, name))
        .send()
        .await
        .aws(format!("creating VPC {name} ({VPC_CIDR})"))?;
    let id = (out.vpc().and_then(|v| v.vpc_id())).ok_or_else(|| missing_id("CreateVpc"))?;
    cx.ledger.created(NAME, ResourceKind::Vpc, id)?;
    Ok(id.to_string())
}

async fn create_gateway(cx: &Context) -> Result<String> {
    let name = &cx.names.network;
    let out = (cx.aws.ec2.create_internet_gateway())
        .tag_specifications(tag_spec(cx, ResourceType::InternetGateway, name))
        .send()
        .await
        .aws(format!("creating internet gateway {name}"))?;
    let id = (out.internet_gateway())
        .and_then(|g| g.internet_gateway_id())
        .ok_or_else(|| missing_id("CreateInternetGateway"))?;
    cx.ledger.created(NAME, ResourceKind::InternetGateway, id)?;
    Ok(id.to_string())
}

/// Tasks reach ECR and Prefect by name; only made for a VPC created in this run.
async fn enable_dns_hostnames(cx: &Context, vpc_id: &str) -> Result<()> {
    (cx.aws.ec2.modify_vpc_attribute())
        .vpc_id(vpc_id)
        .enable_dns_hostnames(AttributeBooleanValue::builder().value(true).build())
        .send()
        .await
        .aws(format!("turning on DNS hostnames in VPC {vpc_id}"))?;
    Ok(())
}

async fn create_subnet(
    cx: &Context,
    vpc_id: &str,
    cidr: &str,
    suffix: &str,
    az: &str,
) -> Result<Subnet> {
    let name = format!("{}-{suffix}", cx.names.network);
    // AvailabilityZone, not AvailabilityZoneId: moto marks the latter default-for-AZ.
    let out = (cx.aws.ec2.create_subnet())
        .vpc_id(vpc_id)
        .cidr_block(cidr)
        .availability_zone(az)
        .tag_specifications(tag_spec(cx, ResourceType::Subnet, &name))
        .send()
        .await
        .aws(format!("creating subnet {name} ({cidr}) in {az}"))?;
    let id =
        (out.subnet().and_then(|s| s.subnet_id())).ok_or_else(|| missing_id("CreateSubnet"))?;
    cx.ledger.created(NAME, ResourceKind::Subnet, id)?;
    Ok(Subnet {
        id: id.to_string(),
        vpc_id: vpc_id.to_string(),
        az: az.to_string(),
        cidr: cidr.to_string(),
        name,
    })
}

async fn attach_gateway(cx: &Context, gateway_id: &str, vpc_id: &str) -> Result<String> {
    (cx.aws.ec2.attach_internet_gateway())
        .internet_gateway_id(gateway_id)
        .vpc_id(vpc_id)
        .send()
        .await
        .aws(format!(
            "attaching internet gateway {gateway_id} to VPC {vpc_id}"
        ))?;
    Ok(format!(
        "attached internet gateway {gateway_id} to VPC {vpc_id}"
    ))
}

async fn create_route_table(cx: &Context, vpc_id: &str) -> Result<String> {
    let name = &cx.names.network;
    let out = (cx.aws.ec2.create_route_table())
        .vpc_id(vpc_id)
        .tag_specifications(tag_spec(cx, ResourceType::RouteTable, name))
        .send()
        .await
        .aws(format!("creating route table {name} in VPC {vpc_id}"))?;
    let id = (out.route_table())
        .and_then(|rt| rt.route_table_id())
        .ok_or_else(|| missing_id("CreateRouteTable"))?;
    cx.ledger.created(NAME, ResourceKind::RouteTable, id)?;
    Ok(id.to_string())
}

/// A group with AWS's default all-egress rule and no ingress: the worker only calls out.
async fn create_group(cx: &Context, vpc_id: &str) -> Result<String> {
    let name = &cx.names.security_group;
    let out = (cx.aws.ec2.create_security_group())
        .group_name(name)
        .description(format!(
            "ecsctl worker for pool {}: no inbound, all outbound",
            cx.pool()
        ))
        .vpc_id(vpc_id)
        .tag_specifications(tag_spec(cx, ResourceType::SecurityGroup, name))
        .send()
        .await
        .map_err(|e| {
            if has_code(&e, &["InvalidGroup.Duplicate"]) {
                anyhow!(
                    "a security group named {name} already exists in VPC {vpc_id} but is not tagged {TAG_POOL}={}; ecsctl will not adopt it. Delete or rename it, or use another --pool",
                    cx.pool()
                )
            } else {
                anyhow!(
                    "creating security group {name} in VPC {vpc_id} failed: {}",
                    describe(&e)
                )
            }
        })?;
    let id = out
        .group_id()
        .ok_or_else(|| missing_id("CreateSecurityGroup"))?;
    cx.ledger.created(NAME, ResourceKind::SecurityGroup, id)?;
    Ok(id.to_string())
}

/// Points 0.0.0.0/0 at the gateway: adds the route, or replaces one going elsewhere (e.g. to a
/// deleted gateway). `None` when it already does.
async fn route_to_gateway(
    cx: &Context,
    table_id: &str,
    gateway_id: &str,
    current: Option<&str>,
) -> Result<Option<String>> {
    let doing =
        format!("routing {ANYWHERE} in route table {table_id} to internet gateway {gateway_id}");
    let ec2 = &cx.aws.ec2;
    match current {
        Some(target) if target == gateway_id => return Ok(None),
        Some(_) => {
            (ec2.replace_route())
                .route_table_id(table_id)
                .destination_cidr_block(ANYWHERE)
                .gateway_id(gateway_id)
                .send()
                .await
                .aws(doing)?;
        }
        None => {
            (ec2.create_route())
                .route_table_id(table_id)
                .destination_cidr_block(ANYWHERE)
                .gateway_id(gateway_id)
                .send()
                .await
                .aws(doing)?;
        }
    }
    Ok(Some(format!(
        "routed {ANYWHERE} in route table {table_id} to internet gateway {gateway_id}"
    )))
}

async fn associate(cx: &Context, table_id: &str, subnet_id: &str) -> Result<String> {
    (cx.aws.ec2.associate_route_table())
        .route_table_id(table_id)
        .subnet_id(subnet_id)
        .send()
        .await
        .aws(format!(
            "associating subnet {subnet_id} with route table {table_id}"
        ))?;
    Ok(format!(
        "associated subnet {subnet_id} with route table {table_id}"
    ))
}

// ---- destroy ----

/// What destroy deletes, by kind: the ledger's records for this step plus what is tagged for the
/// pool, never what the ledger says was only used (the user's VPC and subnets).
fn targets(cx: &Context, tagged: &Tagged) -> BTreeMap<ResourceKind, BTreeSet<String>> {
    let ledger = cx.ledger.snapshot();
    let recorded = ledger.created_by(NAME).map(|r| (r.kind, r.id.as_str()));
    let mut targets: BTreeMap<ResourceKind, BTreeSet<String>> = BTreeMap::new();
    for (kind, id) in recorded.chain(tagged.all()) {
        if !ledger.used.iter().any(|u| u.kind == kind && u.id == id) {
            targets.entry(kind).or_default().insert(id.to_string());
        }
    }
    targets
}

/// Adds the changes to the report; fails with every error at once, so one stuck resource does
/// not hide another.
fn tally(
    report: &mut StepReport,
    results: impl IntoIterator<Item = Result<Option<String>>>,
) -> Result<()> {
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(Some(change)) => report.change(change),
            Ok(None) => {}
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(())
}

fn is_dependency_violation(e: &anyhow::Error) -> bool {
    message_contains(e, "DependencyViolation")
}

/// Runs `call` until AWS stops answering DependencyViolation (Fargate's network interfaces being
/// released), saying once that it waits. `call` answers whether it did anything.
async fn patiently<Fut>(cx: &Context, what: &str, call: impl Fn() -> Fut) -> Result<bool>
where
    Fut: Future<Output = Result<bool>>,
{
    let noted = AtomicBool::new(false);
    retry_while(cx.teardown_timeout, is_dependency_violation, || async {
        let result = call().await;
        if matches!(&result, Err(e) if is_dependency_violation(e))
            && !noted.swap(true, Ordering::SeqCst)
        {
            cx.progress.note(
                NAME,
                &format!("{what} is still in use; retrying while AWS releases it"),
            );
        }
        result
    })
    .await
}

/// Deletes one resource patiently, then forgets it; the change when it existed.
async fn delete<Fut>(
    cx: &Context,
    kind: ResourceKind,
    id: &str,
    call: impl Fn() -> Fut,
) -> Result<Option<String>>
where
    Fut: Future<Output = Result<bool>>,
{
    let what = format!("{} {id}", kind.label());
    let deleted = patiently(cx, &what, call).await?;
    cx.ledger.forget(kind, id)?;
    Ok(deleted.then(|| format!("deleted {what}")))
}

async fn disassociate(cx: &Context, table_id: &str, a: &Association) -> Result<Option<String>> {
    (cx.aws.ec2.disassociate_route_table())
        .association_id(&a.id)
        .send()
        .await
        .done_unless(
            GONE,
            format!(
                "disassociating subnet {} from route table {table_id}",
                a.subnet_id
            ),
        )?;
    Ok(None)
}

async fn delete_group(cx: &Context, id: &str) -> Result<Option<String>> {
    delete(cx, ResourceKind::SecurityGroup, id, move || async move {
        (cx.aws.ec2.delete_security_group())
            .group_id(id)
            .send()
            .await
            .done_unless(GONE, format!("deleting security group {id}"))
    })
    .await
}

async fn delete_subnet(cx: &Context, id: &str) -> Result<Option<String>> {
    delete(cx, ResourceKind::Subnet, id, move || async move {
        (cx.aws.ec2.delete_subnet())
            .subnet_id(id)
            .send()
            .await
            .done_unless(GONE, format!("deleting subnet {id}"))
    })
    .await
}

async fn delete_route_table(cx: &Context, id: &str) -> Result<Option<String>> {
    delete(cx, ResourceKind::RouteTable, id, move || async move {
        (cx.aws.ec2.delete_route_table())
            .route_table_id(id)
            .send()
            .await
            .done_unless(GONE, format!("deleting route table {id}"))
    })
    .await
}

/// Detaches the gateway from the VPCs look saw it attached to, then deletes it.
async fn delete_gateway(cx: &Context, id: &str, vpcs: Vec<String>) -> Result<Option<String>> {
    for vpc in &vpcs {
        let what = format!("the VPC {vpc} of internet gateway {id}");
        patiently(cx, &what, move || async move {
            (cx.aws.ec2.detach_internet_gateway())
                .internet_gateway_id(id)
                .vpc_id(vpc)
                .send()
                .await
                .done_unless(
                    GONE,
                    format!("detaching internet gateway {id} from VPC {vpc}"),
                )
        })
        .await?;
    }
    delete(cx, ResourceKind::InternetGateway, id, move || async move {
        (cx.aws.ec2.delete_internet_gateway())
            .internet_gateway_id(id)
            .send()
            .await
            .done_unless(GONE, format!("deleting internet gateway {id}"))
    })
    .await
}

async fn delete_vpc(cx: &Context, id: &str) -> Result<Option<String>> {
    delete(cx, ResourceKind::Vpc, id, move || async move {
        (cx.aws.ec2.delete_vpc())
            .vpc_id(id)
            .send()
            .await
            .done_unless(GONE, format!("deleting VPC {id}"))
    })
    .await
}
