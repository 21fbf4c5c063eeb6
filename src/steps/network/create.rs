//! Creating the pool's network in rounds of concurrent calls, each needing ids from the one
//! before, and using the user's network where one is given.

use std::time::Duration;

use super::look::{filter, missing_slots};
use super::*;

/// How long a call waits for AWS to show an id created in this run (seconds, as a rule).
const VISIBILITY_WAIT: Duration = Duration::from_secs(30);
/// What EC2 answers about an id it does not show (yet).
const NOT_YET_VISIBLE: &[&str] = &[
    "InvalidVpcID.NotFound",
    "InvalidSubnetID.NotFound",
    "InvalidInternetGatewayID.NotFound",
    "InvalidRouteTableID.NotFound",
    "InvalidGroup.NotFound",
];
/// Records what was found by tag, so destroy deletes it even if its tags are lost later.
pub(super) fn adopt(cx: &Context, existing: &[(ResourceKind, &str)]) -> Result<()> {
    for &(kind, id) in existing {
        record_found(cx, NAME, kind, id)?;
    }
    Ok(())
}

/// The id of what exists, or of what `create` makes now (then `true`).
pub(super) async fn ensure<Fut>(
    existing: Option<&str>,
    create: impl FnOnce() -> Fut,
) -> Result<(String, bool)>
where
    Fut: Future<Output = Result<String>>,
{
    match existing {
        Some(id) => Ok((id.to_string(), false)),
        None => Ok((create().await?, true)),
    }
}

/// Notes a creation in the report and gives back the id.
pub(super) fn note_created(
    report: &mut StepReport,
    kind: ResourceKind,
    (id, created): (String, bool),
) -> String {
    if created {
        report.change(format!("created {} {id}", kind.label()));
    }
    id
}

/// The Fargate zones, asked only when there are subnets to create.
async fn zones_for(cx: &Context, slots: &[(&str, &str)]) -> Result<Vec<String>> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    fargate_zones(cx).await
}

pub(super) async fn apply_create(
    cx: &Context,
    found: &Found,
    report: &mut StepReport,
) -> Result<Network> {
    let cur = found.tagged.current();
    adopt(cx, &cur.existing())?;
    let slots = missing_slots(&cur.subnets);

    // Round 1: nothing here needs another's id. join! (not try_join!) lets every create finish
    // and be recorded even when another call fails.
    let (zones, vpc, gateway) = tokio::join!(
        zones_for(cx, &slots),
        ensure(cur.vpc, || create_vpc(cx)),
        ensure(cur.gateway.map(|g| g.id.as_str()), || create_gateway(cx)),
    );
    // A VPC made now, or one look found with DNS hostnames off (a run that stopped right after
    // creating it, or a change by hand).
    let vpc_new = vpc.as_ref().is_ok_and(|(_, new)| *new);
    let gateway_new = gateway.as_ref().is_ok_and(|(_, new)| *new);
    let set_dns = found.dns_hostnames == Some(false) || vpc_new;
    let vpc_id = note_created(report, ResourceKind::Vpc, vpc?);
    let gateway_id = note_created(report, ResourceKind::InternetGateway, gateway?);
    let attached = cur
        .gateway
        .is_some_and(|g| g.id == gateway_id && g.attached_to(&vpc_id));
    // The first two Fargate zones by name, less those the remaining subnets already use.
    let free_zones = (zones?.into_iter().take(2))
        .filter(|z| !cur.subnets.iter().any(|s| &s.az == z))
        .collect::<Vec<_>>();

    // Round 2: everything that needs only the VPC (which AWS may not show yet if it is new).
    let (dns, new_subnets, attach, table, group) = tokio::join!(
        async {
            match set_dns {
                true => once_visible(vpc_new, || enable_dns_hostnames(cx, &vpc_id)).await,
                false => Ok(()),
            }
        },
        join_all(
            (slots.iter().zip(&free_zones)).map(|(&(cidr, suffix), az)| {
                let vpc_id = vpc_id.as_str();
                once_visible(vpc_new, move || create_subnet(cx, vpc_id, cidr, suffix, az))
            })
        ),
        async {
            let fresh = vpc_new || gateway_new;
            match attached {
                true => Ok(None),
                false => (once_visible(fresh, || attach_gateway(cx, &gateway_id, &vpc_id)).await)
                    .map(Some),
            }
        },
        ensure(cur.route_table.map(|rt| rt.id.as_str()), || {
            once_visible(vpc_new, || create_route_table(cx, &vpc_id))
        }),
        ensure(cur.group.map(|g| g.id.as_str()), || {
            once_visible(vpc_new, || create_group(cx, &vpc_id))
        }),
    );
    let table_created = table.as_ref().is_ok_and(|(_, created)| *created);
    let table_id = note_created(report, ResourceKind::RouteTable, table?);
    let group_id = note_created(report, ResourceKind::SecurityGroup, group?);
    close_ingress(cx, cur.group, report).await?;
    let subnets = with_new_subnets(&cur.subnets, new_subnets, report)?;
    dns?;
    if let Some(change) = attach? {
        report.change(change);
    }

    let existing_table = cur.route_table.filter(|_| !table_created);
    let fresh = table_created || gateway_new || subnets.len() > cur.subnets.len();
    let ids = RouteIds(&table_id, &gateway_id, fresh);
    route_subnets(cx, existing_table, ids, &subnets, report).await?;

    report.resource("internet gateway", &gateway_id);
    report.resource("route table", &table_id);
    Ok(Network {
        vpc_id,
        subnets,
        group_id,
    })
}

/// The subnets that were there and those created now (each noted in the report).
fn with_new_subnets(
    existing: &[&Subnet],
    created: Vec<Result<Subnet>>,
    report: &mut StepReport,
) -> Result<Vec<Subnet>> {
    let mut subnets: Vec<Subnet> = existing.iter().map(|&s| s.clone()).collect();
    for created in created {
        let created = created?;
        report.change(format!("created subnet {} in {}", created.id, created.az));
        subnets.push(created);
    }
    Ok(subnets)
}

/// The route table and gateway round 3 routes with, and whether an id it uses is from this run.
struct RouteIds<'a>(&'a str, &'a str, bool);

/// Round 3: the default route (AWS wants the gateway attached first) and the subnets'
/// associations with the table. `existing_table` is the table as the look saw it, if not new.
async fn route_subnets(
    cx: &Context,
    existing_table: Option<&RouteTable>,
    ids: RouteIds<'_>,
    subnets: &[Subnet],
    report: &mut StepReport,
) -> Result<()> {
    let RouteIds(table_id, gateway_id, fresh) = ids;
    let current_target = existing_table.and_then(|rt| rt.default_target.as_deref());
    let unassociated = (subnets.iter())
        .filter(|s| !existing_table.is_some_and(|rt| rt.associates(&s.id)))
        .collect::<Vec<_>>();
    let (route, associations) = tokio::join!(
        once_visible(fresh, || route_to_gateway(
            cx,
            table_id,
            gateway_id,
            current_target
        )),
        join_all(
            (unassociated.iter())
                .map(|s| once_visible(fresh, move || associate(cx, table_id, &s.id)))
        ),
    );
    if let Some(change) = route? {
        report.change(change);
    }
    for change in associations {
        report.change(change?);
    }
    Ok(())
}

/// Uses the user's VPC and subnets (recorded as used, so destroy leaves them) and puts the pool's
/// security group in that VPC.
pub(super) async fn apply_reuse(
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
    close_ingress(cx, found.tagged.group_in(vpc_id), report).await?;
    Ok(Network {
        vpc_id: vpc_id.to_string(),
        subnets: found.reused.subnets.clone(),
        group_id: note_created(report, ResourceKind::SecurityGroup, group),
    })
}

/// Revokes every inbound rule on ecsctl's own security group (found by its pool tag): it is
/// made with none, and the worker needs none.
async fn close_ingress(cx: &Context, group: Option<&Group>, report: &mut StepReport) -> Result<()> {
    let Some(group) = group.filter(|g| !g.ingress.is_empty()) else {
        return Ok(());
    };
    let id = &group.id;
    (cx.aws.ec2.revoke_security_group_ingress())
        .group_id(id)
        .set_ip_permissions(Some(group.ingress.clone()))
        .send()
        .await
        .aws(format!("revoking the inbound rules of security group {id}"))?;
    for rule in group.ingress_rules() {
        report.change(format!("revoked ingress {rule} from security group {id}"));
    }
    Ok(())
}

/// EC2 is eventually consistent: an id a create returned a moment ago can be `*.NotFound` to the
/// next call, and the SDK does not retry that. A call naming an id from this run (`fresh`) is
/// retried on those codes within [`VISIBILITY_WAIT`]; one naming only ids that were already
/// there runs once (NotFound then means it is gone).
async fn once_visible<T, Fut>(fresh: bool, call: impl FnMut() -> Fut) -> Result<T>
where
    Fut: Future<Output = Result<T>>,
{
    let wait = if fresh {
        VISIBILITY_WAIT
    } else {
        Duration::ZERO
    };
    retry_while(wait, |e| is_code(e, NOT_YET_VISIBLE), call).await
}

/// Tags for a new resource: the pool's tags and a Name (replacing a user's `Name` tag).
pub(super) fn tag_spec(cx: &Context, resource: ResourceType, name: &str) -> TagSpecification {
    let tags = (cx.tags(NAME).into_iter())
        .filter(|(k, _)| k != "Name")
        .chain([("Name".to_string(), name.to_string())])
        .map(|(k, v)| tag::ec2(k, v));
    TagSpecification::builder()
        .resource_type(resource)
        .set_tags(Some(tags.collect()))
        .build()
}

pub(super) fn missing_id(call: &str) -> anyhow::Error {
    anyhow!("{call} returned no id")
}

/// Availability zones where Fargate runs, sorted by name; fails unless there are two.
pub(super) async fn fargate_zones(cx: &Context) -> Result<Vec<String>> {
    let out = (cx.aws.ec2.describe_availability_zones())
        .filters(filter("state", "available"))
        .filters(filter("zone-type", "availability-zone"))
        .send()
        .await
        .aws("listing the availability zones")?;
    let mut zones: Vec<String> = (out.availability_zones().iter())
        .filter(|z| z.zone_id().is_none_or(fargate_runs_in))
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
pub(super) async fn dns_hostnames(cx: &Context, vpc_id: &str) -> Result<Option<bool>> {
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

pub(super) async fn create_vpc(cx: &Context) -> Result<String> {
    let name = &cx.names.network;
    let out = (cx.aws.ec2.create_vpc())
        .cidr_block(VPC_CIDR)
        .tag_specifications(tag_spec(cx, ResourceType::Vpc, name))
        .send()
        .await
        .aws(format!("creating VPC {name} ({VPC_CIDR})"))
        .map_err(|e| over_quota(cx, e, "VpcLimitExceeded", "VPCs"))?;
    let id = (out.vpc().and_then(|v| v.vpc_id())).ok_or_else(|| missing_id("CreateVpc"))?;
    cx.ledger.created(NAME, ResourceKind::Vpc, id)?;
    Ok(id.to_string())
}

/// A region at its quota of VPCs or internet gateways (five each by default): say so, and how to
/// go on without a new one.
fn over_quota(cx: &Context, e: anyhow::Error, code: &str, what: &str) -> anyhow::Error {
    if !is_code(&e, &[code]) {
        return e;
    }
    e.context(format!(
        "region {} already has as many {what} as its quota allows (5 by default): pass --vpc-id and --subnet-ids to run the worker in a VPC you have, delete a VPC you no longer use, or ask for a higher quota in Service Quotas",
        cx.identity.region
    ))
}

pub(super) async fn create_gateway(cx: &Context) -> Result<String> {
    let name = &cx.names.network;
    let out = (cx.aws.ec2.create_internet_gateway())
        .tag_specifications(tag_spec(cx, ResourceType::InternetGateway, name))
        .send()
        .await
        .aws(format!("creating internet gateway {name}"))
        .map_err(|e| over_quota(cx, e, "InternetGatewayLimitExceeded", "internet gateways"))?;
    let id = (out.internet_gateway())
        .and_then(|g| g.internet_gateway_id())
        .ok_or_else(|| missing_id("CreateInternetGateway"))?;
    cx.ledger.created(NAME, ResourceKind::InternetGateway, id)?;
    Ok(id.to_string())
}

/// Tasks reach ECR and Prefect by name; only made for a VPC created in this run.
pub(super) async fn enable_dns_hostnames(cx: &Context, vpc_id: &str) -> Result<()> {
    (cx.aws.ec2.modify_vpc_attribute())
        .vpc_id(vpc_id)
        .enable_dns_hostnames(AttributeBooleanValue::builder().value(true).build())
        .send()
        .await
        .aws(format!("turning on DNS hostnames in VPC {vpc_id}"))?;
    Ok(())
}

pub(super) async fn create_subnet(
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
        zone_id: (out.subnet().and_then(|s| s.availability_zone_id()))
            .unwrap_or_default()
            .to_string(),
        cidr: cidr.to_string(),
        name,
    })
}

pub(super) async fn attach_gateway(cx: &Context, gateway_id: &str, vpc_id: &str) -> Result<String> {
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

pub(super) async fn create_route_table(cx: &Context, vpc_id: &str) -> Result<String> {
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
pub(super) async fn create_group(cx: &Context, vpc_id: &str) -> Result<String> {
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
        .aws(format!("creating security group {name} in VPC {vpc_id}"))
        .map_err(|e| {
            if is_code(&e, &["InvalidGroup.Duplicate"]) {
                not_ours(cx, "a security group", &format!("{name} in VPC {vpc_id}"))
            } else {
                e
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
pub(super) async fn route_to_gateway(
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

pub(super) async fn associate(cx: &Context, table_id: &str, subnet_id: &str) -> Result<String> {
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
