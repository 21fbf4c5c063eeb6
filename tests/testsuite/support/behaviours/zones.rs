//! [`ZoneIdIs`]: an account whose zone has another id.

use bytes::Bytes;

use crate::support::proxy::{Answer, Behaviour, Exchange};

/// DescribeSubnets answers give zone id `to` where the emulator says `from`. Zone names map to
/// zone ids per account on AWS (the "AZ IDs" page of the RAM user guide), and older accounts have
/// zones newer ones lack, such as `usw1-az2`, where Fargate does not run; the emulator maps every
/// account the same way.
pub struct ZoneIdIs {
    from: &'static str,
    to: &'static str,
}

impl ZoneIdIs {
    pub fn instead_of(to: &'static str, from: &'static str) -> ZoneIdIs {
        ZoneIdIs { from, to }
    }
}

impl Behaviour for ZoneIdIs {
    fn name(&self) -> &'static str {
        "zone-id-is"
    }

    fn rewrite(&self, request: &Exchange, answer: &mut Answer) {
        if request.action != "DescribeSubnets" || !answer.status.is_success() {
            return;
        }
        let tag = |id: &str| format!("<availabilityZoneId>{id}</availabilityZoneId>");
        let body = String::from_utf8_lossy(&answer.body).replace(&tag(self.from), &tag(self.to));
        answer.body = Bytes::from(body);
        answer.headers.remove(hyper::header::CONTENT_LENGTH);
    }
}
