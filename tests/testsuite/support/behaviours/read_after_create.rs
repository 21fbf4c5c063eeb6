//! [`NotYetVisible`]: EC2's read-after-create eventual consistency.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::support::proxy::{Answer, Behaviour, Exchange};

/// The EC2 creates whose new id is held back, and where their answer carries it.
const CREATES: &[(&str, &str)] = &[
    ("CreateVpc", "vpcId"),
    ("CreateSubnet", "subnetId"),
    ("CreateInternetGateway", "internetGatewayId"),
    ("CreateRouteTable", "routeTableId"),
    ("CreateSecurityGroup", "groupId"),
];

/// An id an EC2 Create returned is `*.NotFound` to the next `times` calls that name it (as a
/// parameter, not in a filter), then it is visible. AWS documents this as EC2's eventual
/// consistency ("Eventual consistency in the Amazon EC2 API": a resource just created may not be
/// visible to the next call, which then fails with `Invalid<Resource>ID.NotFound`); the SDK does
/// not retry those codes.
pub struct NotYetVisible {
    times: usize,
    /// Each new id and how many more calls it stays unseen.
    unseen: Mutex<HashMap<String, usize>>,
}

impl NotYetVisible {
    pub fn for_calls(times: usize) -> NotYetVisible {
        NotYetVisible {
            times,
            unseen: Mutex::default(),
        }
    }
}

/// The code EC2 gives for an unknown id of this kind, by its prefix.
fn not_found_code(id: &str) -> Option<&'static str> {
    let (prefix, _) = id.split_once('-')?;
    Some(match prefix {
        "vpc" => "InvalidVpcID.NotFound",
        "subnet" => "InvalidSubnetID.NotFound",
        "igw" => "InvalidInternetGatewayID.NotFound",
        "rtb" => "InvalidRouteTableID.NotFound",
        "sg" => "InvalidGroup.NotFound",
        _ => return None,
    })
}

/// The text between `<tag>` and `</tag>`, first occurrence.
pub fn xml_value<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..end])
}

impl Behaviour for NotYetVisible {
    fn name(&self) -> &'static str {
        "not-yet-visible"
    }

    fn answer(&self, request: &Exchange) -> Option<Answer> {
        if request.service != "ec2" {
            return None;
        }
        let mut unseen = self.unseen.lock().expect("not-yet-visible state");
        let named = url::form_urlencoded::parse(request.body.as_bytes())
            .filter(|(key, _)| !key.starts_with("Filter") && !key.starts_with("TagSpecification"))
            .map(|(_, value)| value.into_owned())
            .find(|value| unseen.get(value).is_some_and(|left| *left > 0))?;
        *unseen.get_mut(&named)? -= 1;
        let code = not_found_code(&named)?;
        Some(request.error(400, code, &format!("The ID '{named}' does not exist")))
    }

    fn rewrite(&self, request: &Exchange, answer: &mut Answer) {
        let Some((_, tag)) = CREATES.iter().find(|(action, _)| *action == request.action) else {
            return;
        };
        if !answer.status.is_success() {
            return;
        }
        if let Some(id) = xml_value(&String::from_utf8_lossy(&answer.body), tag) {
            (self.unseen.lock().expect("not-yet-visible state")).insert(id.to_owned(), self.times);
        }
    }
}
