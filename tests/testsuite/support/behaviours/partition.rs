//! [`CallerPartition`]: the caller's account lives in another partition than `aws`.

use bytes::Bytes;

use crate::support::proxy::{Answer, Behaviour, Exchange};

/// Answers `sts:GetCallerIdentity` with the caller's ARN in `partition` (`arn:<partition>:sts::…`),
/// as AWS does in the China, GovCloud or European Sovereign Cloud partitions, whose region names
/// (`eusc-de-east-1`) need not say so. Everything else the emulator answers as usual (in `aws`).
pub struct CallerPartition {
    partition: &'static str,
}

impl CallerPartition {
    pub fn new(partition: &'static str) -> CallerPartition {
        CallerPartition { partition }
    }
}

impl Behaviour for CallerPartition {
    fn name(&self) -> &'static str {
        "caller-partition"
    }

    fn rewrite(&self, request: &Exchange, answer: &mut Answer) {
        if request.action != "GetCallerIdentity" || !answer.status.is_success() {
            return;
        }
        let body = String::from_utf8_lossy(&answer.body)
            .replace("<Arn>arn:aws:", &format!("<Arn>arn:{}:", self.partition));
        answer.body = Bytes::from(body);
        answer.headers.remove(hyper::header::CONTENT_LENGTH);
    }
}
