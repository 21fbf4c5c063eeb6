//! The service's network follows the stack: the subnets and security group the network step
//! hands over (recreated after a deletion, or the user's with `--vpc-id`), and the public IP the
//! network step decided (on in ecsctl's own public subnets; for reused subnets, by their routes).
//! A difference, made by a changed stack or by hand, is drift that one UpdateService repairs.

use anyhow::Result;
use aws_sdk_ecs::types::{AssignPublicIp, AwsVpcConfiguration, NetworkConfiguration, Service};

use crate::ledger::ResourceKind;
use crate::steps::shared::recorded_network;
use crate::steps::Context;

/// ecsctl's own subnets are public: tasks need a public IP to pull the image and reach Prefect.
const OWN_SUBNETS_PUBLIC_IP: bool = true;

/// The network part of a service: subnets and security groups (sorted) and the public IP
/// (`None` in a wanted network: not known before the network step reads reused subnets' routes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ServiceNetwork {
    subnets: Vec<String>,
    security_groups: Vec<String>,
    public_ip: Option<bool>,
}

impl ServiceNetwork {
    pub fn new(
        mut subnets: Vec<String>,
        mut security_groups: Vec<String>,
        public_ip: Option<bool>,
    ) -> Self {
        subnets.sort();
        security_groups.sort();
        Self {
            subnets,
            security_groups,
            public_ip,
        }
    }

    /// What the service runs with now; `None` when ECS reports no awsvpc configuration.
    pub fn of(service: &Service) -> Option<Self> {
        let vpc = service
            .network_configuration()
            .and_then(|n| n.awsvpc_configuration())?;
        Some(Self::new(
            vpc.subnets().to_vec(),
            vpc.security_groups().to_vec(),
            Some(vpc.assign_public_ip() == Some(&AssignPublicIp::Enabled)),
        ))
    }

    /// What the stack hands over in this run (the network step has applied).
    pub fn wanted(cx: &Context) -> Result<Self> {
        Ok(Self::new(
            cx.outputs.subnet_ids.get()?.clone(),
            vec![cx.outputs.security_group_id.get()?.clone()],
            Some(*cx.outputs.assign_public_ip.get()?),
        ))
    }

    /// What the inputs and ledger say the stack's network is ([`recorded_network`]), for a look
    /// before the network step has applied (and for status); an empty list of subnets or groups
    /// when they record none.
    pub fn recorded(cx: &Context) -> Self {
        let network = recorded_network(cx);
        // Reused subnets' public IP follows their routes, which only the network step reads.
        let ledger = cx.ledger.snapshot();
        let own = ledger.used.iter().all(|r| r.kind != ResourceKind::Subnet);
        Self::new(
            network.subnet_ids,
            network.security_group_id.into_iter().collect(),
            own.then_some(OWN_SUBNETS_PUBLIC_IP),
        )
    }

    /// How `self` (the service's) differs from `want`, in words; an empty list of subnets or
    /// groups in `want` means unknown, not none.
    pub fn differences(&self, want: &Self) -> Vec<String> {
        let mut what = Vec::new();
        if !want.subnets.is_empty() && self.subnets != want.subnets {
            what.push(format!(
                "runs in subnets {} (the stack's: {})",
                self.subnets.join(", "),
                want.subnets.join(", ")
            ));
        }
        if !want.security_groups.is_empty() && self.security_groups != want.security_groups {
            what.push(format!(
                "uses security group {} (the stack's: {})",
                self.security_groups.join(", "),
                want.security_groups.join(", ")
            ));
        }
        if want
            .public_ip
            .is_some_and(|want| self.public_ip != Some(want))
        {
            let (is, was) = if self.public_ip == Some(true) {
                ("on", "off")
            } else {
                ("off", "on")
            };
            what.push(format!("public IP turned {is} (wanted {was})"));
        }
        what
    }

    pub fn sdk(&self) -> Result<NetworkConfiguration> {
        let public_ip = if self.public_ip.unwrap_or(OWN_SUBNETS_PUBLIC_IP) {
            AssignPublicIp::Enabled
        } else {
            AssignPublicIp::Disabled
        };
        let vpc = AwsVpcConfiguration::builder()
            .set_subnets(Some(self.subnets.clone()))
            .set_security_groups(Some(self.security_groups.clone()))
            .assign_public_ip(public_ip)
            .build()?;
        Ok(NetworkConfiguration::builder()
            .awsvpc_configuration(vpc)
            .build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(subnets: &[&str], groups: &[&str], public_ip: bool) -> ServiceNetwork {
        let own = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect();
        ServiceNetwork::new(own(subnets), own(groups), Some(public_ip))
    }

    #[test]
    fn the_same_network_in_another_order_is_no_difference() {
        let a = net(&["subnet-b", "subnet-a"], &["sg-1"], true);
        assert!(a
            .differences(&net(&["subnet-a", "subnet-b"], &["sg-1"], true))
            .is_empty());
    }

    #[test]
    fn each_difference_is_named() {
        let service = net(&["subnet-a"], &["sg-1"], false);
        let want = net(&["subnet-c"], &["sg-2"], true);
        let what = service.differences(&want);
        assert_eq!(what.len(), 3, "{what:?}");
        assert!(what[0].contains("subnet-a") && what[0].contains("subnet-c"));
        assert!(what[1].contains("sg-1") && what[1].contains("sg-2"));
        assert_eq!(what[2], "public IP turned off (wanted on)");
        // A ledger that records no network knows only the public IP.
        let unknown = net(&[], &[], true);
        assert_eq!(
            service.differences(&unknown),
            ["public IP turned off (wanted on)"]
        );
    }
}
