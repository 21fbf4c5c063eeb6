//! What GuardDuty adds to a VPC that ran Fargate tasks with runtime monitoring on: an interface
//! endpoint for `guardduty-data` and a security group `GuardDutyManagedSecurityGroup-<vpc>`. They
//! are not ecsctl's, but they keep the pool's own subnets and VPC from being deleted, so destroy
//! removes them there — never in a VPC the user passed in, which destroy does not delete.

use super::look::filter;
use super::*;

/// The group GuardDuty names after the VPC it serves.
const GROUP_PREFIX: &str = "GuardDutyManagedSecurityGroup-";

/// GuardDuty's side resources in the pool's own VPCs.
#[derive(Debug, Clone, Default)]
pub(super) struct SideResources {
    /// Endpoint ids.
    pub endpoints: Vec<String>,
    pub groups: Vec<Group>,
}

/// The endpoint service's name in the region.
fn service_name(cx: &Context) -> String {
    format!("com.amazonaws.{}.guardduty-data", cx.identity.region)
}

/// Lists GuardDuty's endpoints and groups in the region, for destroy only (by name, so it needs
/// no VPC id and runs alongside the tag lookups); [`SideResources::within`] keeps the pool's.
pub(super) async fn find(cx: &Context) -> Result<SideResources> {
    if !matches!(cx.run, Run::Destroy(_)) {
        return Ok(SideResources::default());
    }
    let ec2 = &cx.aws.ec2;
    let (endpoints, groups) = tokio::join!(
        ec2.describe_vpc_endpoints()
            .filters(filter("service-name", service_name(cx)))
            .send(),
        ec2.describe_security_groups()
            .filters(filter("group-name", format!("{GROUP_PREFIX}*")))
            .send(),
    );
    let endpoints = endpoints.aws("listing GuardDuty's VPC endpoints")?;
    let groups = groups.aws("listing GuardDuty's security groups")?;
    // AWS spells endpoint states in lower case ("deleted"), its API model capitalised.
    let gone = |state: Option<&ec2::State>| {
        state.is_some_and(|s| ["deleted", "deleting"].contains(&s.as_str().to_lowercase().as_str()))
    };
    Ok(SideResources {
        endpoints: (endpoints.vpc_endpoints().iter())
            .filter(|e| !gone(e.state()))
            .filter_map(|e| Some(format!("{} {}", e.vpc_id()?, e.vpc_endpoint_id()?)))
            .collect(),
        groups: (groups.security_groups().iter())
            .filter(|g| {
                g.group_name() == g.vpc_id().map(|v| format!("{GROUP_PREFIX}{v}")).as_deref()
            })
            .filter_map(|g| {
                Some(Group {
                    id: g.group_id()?.to_string(),
                    vpc_id: g.vpc_id()?.to_string(),
                    ingress: g.ip_permissions().to_vec(),
                })
            })
            .collect(),
    })
}

impl SideResources {
    /// Those in `vpcs` (the pool's own VPCs, never a reused one).
    pub(super) fn within(self, vpcs: &BTreeSet<String>) -> SideResources {
        let endpoints = (self.endpoints.into_iter())
            .filter_map(|e| {
                let (vpc, id) = e.split_once(' ')?;
                vpcs.contains(vpc).then(|| id.to_string())
            })
            .collect();
        let groups = (self.groups.into_iter())
            .filter(|g| vpcs.contains(&g.vpc_id))
            .collect();
        SideResources { endpoints, groups }
    }

    /// Plan items: destroy shows them, and its final check names any still there.
    pub(super) fn items(&self) -> Vec<PlanItem> {
        let present = |id: &str| ItemState::Present { id: id.to_string() };
        let endpoints = (self.endpoints.iter())
            .map(|id| PlanItem::new(ResourceKind::VpcEndpoint, "guardduty-data", present(id)));
        let groups = self.groups.iter().map(|g| {
            let name = format!("{GROUP_PREFIX}{}", g.vpc_id);
            PlanItem::new(ResourceKind::SecurityGroup, name, present(&g.id))
        });
        (endpoints.chain(groups))
            .map(|item| item.with_detail("added by GuardDuty; blocks deleting the VPC"))
            .collect()
    }
}

/// Deletes the endpoints (AWS then releases their network interfaces, which the deletes of the
/// groups and subnets wait out).
pub(super) async fn delete_endpoints(cx: &Context, ids: &[String]) -> Result<Option<String>> {
    if ids.is_empty() {
        return Ok(None);
    }
    let doing = format!("deleting GuardDuty's VPC endpoint(s) {}", ids.join(", "));
    let out = (cx.aws.ec2.delete_vpc_endpoints())
        .set_vpc_endpoint_ids(Some(ids.to_vec()))
        .send()
        .await
        .aws(&doing)?;
    // Refusals come back per endpoint, not as an error; an endpoint already gone is done.
    let refused: Vec<String> = (out.unsuccessful().iter())
        .filter_map(|u| {
            let e = u.error()?;
            let code = e.code().unwrap_or_default();
            (code != "InvalidVpcEndpointId.NotFound").then(|| {
                let id = u.resource_id().unwrap_or_default();
                format!("{id}: {code}: {}", e.message().unwrap_or_default())
            })
        })
        .collect();
    if !refused.is_empty() {
        bail!("{doing} failed: {}", refused.join("; "));
    }
    Ok(Some(format!(
        "deleted GuardDuty's VPC endpoint(s) {}",
        ids.join(", ")
    )))
}

/// GuardDuty's group, deleted as patiently as the pool's own (its endpoint's interfaces go first).
pub(super) async fn delete_group(cx: &Context, id: &str) -> Result<Option<String>> {
    let what = format!("GuardDuty's security group {id}");
    let what = what.as_str();
    let deleted = delete::patiently(cx, what, move || async move {
        (cx.aws.ec2.delete_security_group())
            .group_id(id)
            .send()
            .await
            .done_unless(GONE, format!("deleting {what}"))
    })
    .await?;
    Ok(deleted.then(|| format!("deleted {what}")))
}
