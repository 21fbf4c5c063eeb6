//! Finding the pool's network: what is tagged for it, the user's VPC and subnets when reused, and
//! the plan items they make.

use super::*;
pub(super) fn filter(name: impl Into<String>, value: impl Into<String>) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Lists everything tagged for the pool: five independent reads, sent together.
pub(super) async fn find_tagged(cx: &Context) -> Result<Tagged> {
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
    let (vpcs, subnets) = (vpcs.aws(doing("VPCs"))?, subnets.aws(doing("subnets"))?);
    let gateways = gateways.aws(doing("internet gateways"))?;
    let (tables, groups) = (
        tables.aws(doing("route tables"))?,
        groups.aws(doing("security groups"))?,
    );
    let mut tags = BTreeMap::new();
    let mut keep = |id: Option<&str>, list: &[ec2::Tag]| {
        let pairs = list
            .iter()
            .filter_map(|t| Some((t.key()?.into(), t.value()?.into())));
        tags.insert(id.unwrap_or_default().to_string(), pairs.collect());
    };
    vpcs.vpcs().iter().for_each(|v| keep(v.vpc_id(), v.tags()));
    subnets
        .subnets()
        .iter()
        .for_each(|v| keep(v.subnet_id(), v.tags()));
    (gateways.internet_gateways().iter()).for_each(|v| keep(v.internet_gateway_id(), v.tags()));
    (tables.route_tables().iter()).for_each(|v| keep(v.route_table_id(), v.tags()));
    (groups.security_groups().iter()).for_each(|v| keep(v.group_id(), v.tags()));
    let mut tagged = Tagged {
        tags,
        vpcs: (vpcs.vpcs().iter())
            .filter_map(|v| v.vpc_id().map(str::to_string))
            .collect(),
        subnets: subnets.subnets().iter().filter_map(subnet).collect(),
        gateways: (gateways.internet_gateways().iter())
            .filter_map(gateway)
            .collect(),
        route_tables: (tables.route_tables().iter())
            .filter_map(route_table)
            .collect(),
        groups: (groups.security_groups().iter())
            .filter_map(|g| {
                Some(Group {
                    id: g.group_id()?.to_string(),
                    vpc_id: g.vpc_id().unwrap_or_default().to_string(),
                    ingress: g.ip_permissions().to_vec(),
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

pub(super) fn subnet(s: &ec2::Subnet) -> Option<Subnet> {
    let id = s.subnet_id()?.to_string();
    let name = (s.tags().iter())
        .find(|t| t.key() == Some("Name"))
        .and_then(|t| t.value())
        .unwrap_or(&id)
        .to_string();
    Some(Subnet {
        vpc_id: s.vpc_id().unwrap_or_default().to_string(),
        az: s.availability_zone().unwrap_or_default().to_string(),
        zone_id: s.availability_zone_id().unwrap_or_default().to_string(),
        cidr: s.cidr_block().unwrap_or_default().to_string(),
        name,
        id,
    })
}

pub(super) fn gateway(g: &ec2::InternetGateway) -> Option<Gateway> {
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

pub(super) fn route_table(rt: &ec2::RouteTable) -> Option<RouteTable> {
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

pub(super) fn present_or_missing(id: Option<&str>) -> ItemState {
    id.map_or(ItemState::Missing, |id| ItemState::Present {
        id: id.to_string(),
    })
}

/// Drift bootstrap repairs in place; `how` says what it does.
pub(super) fn drifted(id: &str, what: &str, how: &'static str) -> ItemState {
    ItemState::drifted(id, what, Remedy::Update(Some(how)))
}

pub(super) fn create_items(
    cx: &Context,
    cur: &Current,
    dns_hostnames: Option<bool>,
) -> Vec<PlanItem> {
    let network = &cx.names.network;
    let vpc = match (cur.vpc, dns_hostnames) {
        (Some(id), Some(false)) => drifted(id, "DNS hostnames are off", "will be turned on"),
        (id, _) => present_or_missing(id),
    };
    let mut items = vec![PlanItem::new(ResourceKind::Vpc, network, vpc)];
    for s in &cur.subnets {
        let state = if cur.route_table.is_some_and(|rt| rt.associates(&s.id)) {
            ItemState::Present { id: s.id.clone() }
        } else {
            drifted(
                &s.id,
                "not associated with the route table",
                "will be associated",
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
        (Some(g), _) => drifted(&g.id, "not attached to the VPC", "will be attached"),
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
            "no route 0.0.0.0/0 to the internet gateway",
            "will be added",
        ),
    };
    items.push(PlanItem::new(ResourceKind::RouteTable, network, table));
    items.push(group_item(cx, cur.group));
    items
}

/// ecsctl's security group lets nothing in: an inbound rule someone added is revoked.
fn group_item(cx: &Context, group: Option<&Group>) -> PlanItem {
    let name = &cx.names.security_group;
    let state = match group {
        Some(g) if !g.ingress.is_empty() => {
            let what = g
                .ingress_rules()
                .iter()
                .map(|rule| format!("ingress {rule} is open: revoke ingress {rule} from {name}"))
                .collect::<Vec<_>>()
                .join("; ");
            ItemState::drifted(&g.id, what, Remedy::Update(None))
        }
        g => present_or_missing(g.map(|g| g.id.as_str())),
    };
    PlanItem::new(ResourceKind::SecurityGroup, name, state)
}

pub(super) fn reuse_items(
    cx: &Context,
    found: &Found,
    vpc_id: &str,
    subnet_ids: &[String],
) -> Vec<PlanItem> {
    let used = |id: &str| ItemState::Used { id: id.to_string() };
    let reused = &found.reused;
    let vpc = match &reused.vpc_pool {
        // Another pool's network: that pool's destroy would delete the subnets this one runs in.
        Some(other) if other != cx.pool() => ItemState::Foreign {
            id: format!("{vpc_id}, the network of ecsctl pool '{other}'"),
        },
        _ if reused.vpc_exists => used(vpc_id),
        _ => ItemState::Missing,
    };
    let mut items = vec![PlanItem::new(ResourceKind::Vpc, vpc_id, vpc)];
    // A subnet in another VPC is caught by bootstrap; later it can only have been deleted.
    for id in subnet_ids {
        let item = match reused.subnets.iter().find(|s| &s.id == id) {
            Some(s) => {
                let item = PlanItem::new(ResourceKind::Subnet, &s.name, used(id));
                match reused.egress_detail(id) {
                    Some(detail) => item.with_detail(detail),
                    None => item,
                }
            }
            None => PlanItem::new(ResourceKind::Subnet, id, ItemState::Missing),
        };
        items.push(item);
    }
    items.push(group_item(cx, found.tagged.group_in(vpc_id)));
    items
}

/// Lists what is tagged for the pool but not part of its network (all of it when the inputs are
/// unknown), so status shows it and destroy's final check sees it.
pub(super) fn add_leftovers(cx: &Context, tagged: &Tagged, items: &mut Vec<PlanItem>) {
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
pub(super) fn missing_slots(existing: &[&Subnet]) -> Vec<(&'static str, &'static str)> {
    let wanted = SUBNET_SLOTS.len().saturating_sub(existing.len());
    (SUBNET_SLOTS.iter())
        .filter(|(cidr, _)| !existing.iter().any(|s| s.cidr == *cidr))
        .take(wanted)
        .copied()
        .collect()
}
