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

/// Looks up the user's VPC and subnets. Filters (not ids) so that a missing id comes back as an
/// empty answer rather than an error, and the problem can name exactly which id is wrong.
pub(super) async fn find_reused(
    cx: &Context,
    vpc_id: &str,
    subnet_ids: &[String],
) -> Result<Reused> {
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
    let vpc_pool = vpcs.vpcs().iter().flat_map(|v| v.tags()).find_map(|t| {
        (t.key() == Some(TAG_POOL)).then(|| t.value().unwrap_or_default().to_string())
    });
    Ok(Reused {
        vpc_exists: !vpcs.vpcs().is_empty(),
        vpc_pool,
        subnets,
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
    items.push(PlanItem::new(
        ResourceKind::SecurityGroup,
        &cx.names.security_group,
        present_or_missing(cur.group.map(|g| g.id.as_str())),
    ));
    items
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
