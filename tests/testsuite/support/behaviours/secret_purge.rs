//! [`SecretPurging`]: a force-deleted secret is purged asynchronously.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::support::proxy::{Answer, Behaviour, Exchange};

/// After `DeleteSecret` with `ForceDeleteWithoutRecovery`, the secret stays visible for the next
/// `times` calls that name it (by name or ARN): DescribeSecret shows it with a `DeletedDate` (the moment of the
/// delete), GetSecretValue and RestoreSecret refuse it, and CreateSecret of its name answers
/// `InvalidRequestException` ("… already scheduled for deletion"). AWS documents the forced
/// delete as asynchronous (DeleteSecret API reference: "the operation is performed
/// asynchronously"); the emulator removes it at once.
pub struct SecretPurging {
    times: usize,
    /// The last description seen of each secret, by name and by ARN.
    described: Mutex<HashMap<String, Value>>,
    /// Secrets being purged.
    purging: Mutex<Vec<Purge>>,
}

impl SecretPurging {
    pub fn for_calls(times: usize) -> SecretPurging {
        SecretPurging {
            times,
            described: Mutex::default(),
            purging: Mutex::default(),
        }
    }

    /// How many calls were answered as if the secret were still there.
    pub fn purging_left(&self) -> usize {
        let purging = self.purging.lock().expect("purge state");
        purging.iter().map(|p| p.left).sum()
    }
}

/// A secret being purged: its description as DescribeSecret now gives it, and how many more
/// calls it stays visible.
struct Purge {
    description: Value,
    left: usize,
}

impl Purge {
    fn is(&self, id: &str) -> bool {
        ["ARN", "Name"]
            .iter()
            .any(|key| self.description[key] == json!(id))
    }
}

/// A successful awsJson answer with `body`.
fn json_answer(body: &Value) -> Answer {
    let mut headers = HeaderMap::new();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    Answer {
        status: StatusCode::OK,
        headers,
        body: Bytes::from(body.to_string()),
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

impl Behaviour for SecretPurging {
    fn name(&self) -> &'static str {
        "secret-purging"
    }

    fn answer(&self, request: &Exchange) -> Option<Answer> {
        let body = request.json();
        let named = match request.action.as_str() {
            "CreateSecret" => body["Name"].as_str(),
            "DescribeSecret" | "GetSecretValue" | "RestoreSecret" | "PutSecretValue" => {
                body["SecretId"].as_str()
            }
            _ => None,
        }?;
        let mut purging = self.purging.lock().expect("purge state");
        let purge = purging.iter_mut().find(|p| p.is(named) && p.left > 0)?;
        purge.left -= 1;
        Some(match request.action.as_str() {
            "DescribeSecret" => json_answer(&purge.description),
            "CreateSecret" => request.error(
                400,
                "InvalidRequestException",
                "You can't create this secret because a secret with this name is already scheduled for deletion.",
            ),
            _ => request.error(
                400,
                "InvalidRequestException",
                "You can't perform this operation on the secret because it was marked for deletion.",
            ),
        })
    }

    fn rewrite(&self, request: &Exchange, answer: &mut Answer) {
        if !answer.status.is_success() {
            return;
        }
        let body = request.json();
        match request.action.as_str() {
            "DescribeSecret" => {
                let description = answer.json();
                let mut described = self.described.lock().expect("purge state");
                for key in ["ARN", "Name"] {
                    if let Some(id) = description[key].as_str() {
                        described.insert(id.to_owned(), description.clone());
                    }
                }
            }
            "DeleteSecret" if body["ForceDeleteWithoutRecovery"] == json!(true) => {
                let described = self.described.lock().expect("purge state");
                let Some(mut description) = body["SecretId"]
                    .as_str()
                    .and_then(|id| described.get(id))
                    .cloned()
                else {
                    return;
                };
                description["DeletedDate"] = json!(now_secs());
                (self.purging.lock().expect("purge state")).push(Purge {
                    description,
                    left: self.times,
                });
            }
            _ => {}
        }
    }
}
