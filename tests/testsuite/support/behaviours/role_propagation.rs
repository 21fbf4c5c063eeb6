//! [`RoleNotYetValid`]: IAM roles propagate to ECS a while after they are created.

use std::collections::HashMap;
use std::sync::Mutex;

use super::read_after_create::xml_value;
use crate::support::proxy::{Answer, Behaviour, Exchange};

/// RegisterTaskDefinition answers `ClientException: Role is not valid` while a role it names
/// (`executionRoleArn`, `taskRoleArn`) is not yet valid to ECS: until the role has been created
/// while this behaviour plays, and for `times` RegisterTaskDefinition calls after that. IAM is
/// eventually consistent ("changes … are not immediately visible", IAM user guide, Troubleshoot
/// IAM); ECS validates the roles at registration. Play it before the roles are created: a role
/// that existed before is never made valid.
pub struct RoleNotYetValid {
    times: usize,
    /// Roles created while playing, by ARN, and how many more registrations refuse them.
    created: Mutex<HashMap<String, usize>>,
}

impl RoleNotYetValid {
    pub fn for_calls(times: usize) -> RoleNotYetValid {
        RoleNotYetValid {
            times,
            created: Mutex::default(),
        }
    }
}

impl Behaviour for RoleNotYetValid {
    fn name(&self) -> &'static str {
        "role-not-yet-valid"
    }

    fn answer(&self, request: &Exchange) -> Option<Answer> {
        if request.action != "RegisterTaskDefinition" {
            return None;
        }
        let body = request.json();
        let roles = ["executionRoleArn", "taskRoleArn"].map(|field| body[field].as_str());
        let mut created = self.created.lock().expect("role state");
        let mut valid = true;
        for role in roles.into_iter().flatten() {
            match created.get_mut(role) {
                None => valid = false,
                Some(0) => {}
                Some(left) => {
                    *left -= 1;
                    valid = false;
                }
            }
        }
        (!valid).then(|| request.error(400, "ClientException", "Role is not valid"))
    }

    fn rewrite(&self, request: &Exchange, answer: &mut Answer) {
        if request.action != "CreateRole" || !answer.status.is_success() {
            return;
        }
        if let Some(arn) = xml_value(&String::from_utf8_lossy(&answer.body), "Arn") {
            (self.created.lock().expect("role state")).insert(arn.to_owned(), self.times);
        }
    }
}
