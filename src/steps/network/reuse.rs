//! The user's own VPC and subnets (`--vpc-id`, `--subnet-ids`): whether the worker can run there,
//! and whether its tasks need a public IP. Each subnet's route table says how it reaches the
//! internet: a default route to an internet gateway needs a public IP; one to a NAT gateway (or a
//! NAT instance, or a transit gateway) does not; with neither, the worker can pull its image and
//! read its secret only through VPC endpoints for ECR, CloudWatch Logs and Secrets Manager.

use super::look::{filter, subnet};
use super::*;

/// The interface endpoints a subnet without a way out needs (`com.amazonaws.<region>.<name>`);
/// ECR's image layers come from S3, through its gateway endpoint.
const PRIVATE_ENDPOINTS: &[&str] = &["ecr.api", "ecr.dkr", "logs", "secretsmanager", "s3"];

/// How a subnet's traffic reaches the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Egress {
    /// A default route to an internet gateway: tasks need a public IP.
    InternetGateway,
    /// A default route through a NAT gateway or instance (or a transit gateway): no public IP.
    Nat,
    /// No default route.
    None,
}

/// Reuse mode: what exists of the VPC and subnets the user named.
#[derive(Debug, Clone, Default)]
pub(super) struct Reused {
    pub vpc_exists: bool,
    /// The ecsctl pool whose network the VPC is, if it is one.
    pub vpc_pool: Option<String>,
    /// Those of the named subnets that exist, sorted by zone.
    pub subnets: Vec<Subnet>,
    /// Each existing subnet's way out, by id.
    pub egress: BTreeMap<String, Egress>,
    /// The endpoint services the VPC has (the last part of their names: `ecr.api`, `logs`).
    pub endpoints: BTreeSet<String>,
}

impl Reused {
    /// Whether the worker's tasks get a public IP: when one of their subnets routes to an
    /// internet gateway (in a subnet behind a NAT an address is unused, not harmful).
    pub fn public_ip(&self) -> bool {
        self.egress.values().any(|e| *e == Egress::InternetGateway)
    }

    /// The endpoints a subnet without a way out would need that the VPC lacks.
    fn missing_endpoints(&self) -> Vec<&'static str> {
        (PRIVATE_ENDPOINTS.iter().copied())
            .filter(|e| !self.endpoints.contains(*e))
            .collect()
    }

    /// What the plan says of a subnet's way out.
    pub fn egress_detail(&self, subnet_id: &str) -> Option<&'static str> {
        Some(match self.egress.get(subnet_id)? {
            Egress::InternetGateway => "routes to an internet gateway: tasks get a public IP",
            Egress::Nat => "routes through a NAT: tasks get no public IP",
            Egress::None => "no route out: tasks reach AWS through the VPC's endpoints",
        })
    }

    /// Why the named VPC and subnets cannot be used; empty when they can.
    fn problems(&self, vpc_id: &str, subnet_ids: &[String], region: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.vpc_exists {
            problems.push(format!(
                "VPC {vpc_id} (--vpc-id) does not exist in {region}"
            ));
        }
        let missing = self.missing_endpoints();
        for id in subnet_ids {
            match self.subnets.iter().find(|s| &s.id == id) {
                None => problems.push(format!(
                    "subnet {id} (--subnet-ids) does not exist in {region}"
                )),
                Some(s) if s.vpc_id != vpc_id => problems.push(format!(
                    "subnet {id} is in VPC {}, not in {vpc_id} (--vpc-id)",
                    s.vpc_id
                )),
                Some(s) if !s.zone_id.is_empty() && !fargate_runs_in(&s.zone_id) => {
                    problems.push(format!(
                        "subnet {id} is in zone {} ({}), where Fargate does not run",
                        s.az, s.zone_id
                    ))
                }
                Some(_) if self.egress.get(id) == Some(&Egress::None) && !missing.is_empty() => {
                    problems.push(format!(
                        "subnet {id} has no route to the internet (0.0.0.0/0 to an internet gateway or a NAT) and VPC {vpc_id} has no endpoints for {}: the worker could neither pull its image nor reach Prefect",
                        missing.join(", ")
                    ))
                }
                Some(_) => {}
            }
        }
        problems
    }

    /// Fails, naming each problem, unless the VPC and subnets can be used.
    pub fn check(&self, cx: &Context, vpc_id: &str, subnet_ids: &[String]) -> Result<()> {
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

/// Looks up the user's VPC and subnets, and the VPC's route tables and endpoints: four reads at
/// once. Filters (not ids) so that a missing id comes back as an empty answer rather than an
/// error, and the problem can name exactly which id is wrong.
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
    let in_vpc = || filter("vpc-id", vpc_id);
    let (vpcs, subnets, tables, endpoints) = tokio::join!(
        ec2.describe_vpcs().filters(in_vpc()).send(),
        ec2.describe_subnets().filters(subnet_filter).send(),
        ec2.describe_route_tables().filters(in_vpc()).send(),
        ec2.describe_vpc_endpoints().filters(in_vpc()).send(),
    );
    let vpcs = vpcs.aws(format!("looking up VPC {vpc_id} (--vpc-id)"))?;
    let subnets = subnets.aws(format!(
        "looking up subnets {} (--subnet-ids)",
        subnet_ids.join(", ")
    ))?;
    let tables = tables.aws(format!("reading the route tables of VPC {vpc_id}"))?;
    let endpoints = endpoints.aws(format!("listing the VPC endpoints of VPC {vpc_id}"))?;
    let mut subnets: Vec<Subnet> = subnets.subnets().iter().filter_map(subnet).collect();
    subnets.sort_by(|a, b| (&a.az, &a.id).cmp(&(&b.az, &b.id)));
    let egress = (subnets.iter())
        .map(|s| (s.id.clone(), egress_of(tables.route_tables(), &s.id)))
        .collect();
    let live = |e: &&ec2::VpcEndpoint| {
        !e.state().is_some_and(|s| {
            ["deleted", "deleting", "failed", "rejected", "expired"]
                .contains(&s.as_str().to_lowercase().as_str())
        })
    };
    let prefix = format!("com.amazonaws.{}.", cx.identity.region);
    let vpc_pool = vpcs.vpcs().iter().flat_map(|v| v.tags()).find_map(|t| {
        (t.key() == Some(TAG_POOL)).then(|| t.value().unwrap_or_default().to_string())
    });
    Ok(Reused {
        vpc_exists: !vpcs.vpcs().is_empty(),
        vpc_pool,
        subnets,
        egress,
        endpoints: (endpoints.vpc_endpoints().iter())
            .filter(live)
            .filter_map(|e| e.service_name()?.strip_prefix(&prefix).map(str::to_string))
            .collect(),
    })
}

/// A subnet's way out: through the table associated with it, else the VPC's main table.
fn egress_of(tables: &[ec2::RouteTable], subnet_id: &str) -> Egress {
    let associated = |main: bool| {
        tables.iter().find(|t| {
            t.associations().iter().any(|a| {
                if main {
                    a.main().unwrap_or(false)
                } else {
                    a.subnet_id() == Some(subnet_id)
                }
            })
        })
    };
    let Some(table) = associated(false).or_else(|| associated(true)) else {
        return Egress::None;
    };
    let default = (table.routes().iter()).find(|r| {
        r.destination_cidr_block() == Some(ANYWHERE)
            && r.state() != Some(&ec2::RouteState::Blackhole)
    });
    match default {
        Some(r) if r.gateway_id().is_some_and(|g| g.starts_with("igw-")) => Egress::InternetGateway,
        Some(r)
            if r.nat_gateway_id().is_some()
                || r.instance_id().is_some()
                || r.network_interface_id().is_some()
                || r.transit_gateway_id().is_some() =>
        {
            Egress::Nat
        }
        _ => Egress::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(main: bool, subnet: Option<&str>, route: Option<ec2::Route>) -> ec2::RouteTable {
        let association = ec2::RouteTableAssociation::builder()
            .main(main)
            .set_subnet_id(subnet.map(str::to_string))
            .build();
        ec2::RouteTable::builder()
            .associations(association)
            .set_routes(route.map(|r| vec![r]))
            .build()
    }

    fn default_route() -> ec2::builders::RouteBuilder {
        ec2::Route::builder().destination_cidr_block(ANYWHERE)
    }

    #[test]
    fn a_subnets_way_out_is_its_own_tables_default_route_else_the_main_tables() {
        let igw = default_route().gateway_id("igw-1").build();
        let nat = default_route().nat_gateway_id("nat-1").build();
        let dead = default_route()
            .gateway_id("igw-2")
            .state(ec2::RouteState::Blackhole)
            .build();
        let local = ec2::Route::builder()
            .destination_cidr_block("10.0.0.0/16")
            .gateway_id("local")
            .build();
        let tables = [
            table(true, None, Some(igw)),
            table(false, Some("subnet-nat"), Some(nat)),
            table(false, Some("subnet-dead"), Some(dead)),
            table(false, Some("subnet-local"), Some(local)),
        ];
        for (subnet, want) in [
            ("subnet-main", Egress::InternetGateway),
            ("subnet-nat", Egress::Nat),
            ("subnet-dead", Egress::None),
            ("subnet-local", Egress::None),
        ] {
            assert_eq!(egress_of(&tables, subnet), want, "{subnet}");
        }
        assert_eq!(egress_of(&[], "subnet-x"), Egress::None);
    }

    #[test]
    fn a_public_ip_when_any_subnet_routes_to_an_internet_gateway() {
        let reused = |egress: &[Egress]| Reused {
            egress: (egress.iter().enumerate())
                .map(|(i, e)| (format!("subnet-{i}"), *e))
                .collect(),
            ..Reused::default()
        };
        assert!(reused(&[Egress::Nat, Egress::InternetGateway]).public_ip());
        assert!(!reused(&[Egress::Nat, Egress::None]).public_ip());
    }
}
