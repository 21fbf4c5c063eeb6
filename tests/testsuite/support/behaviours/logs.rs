//! CloudWatch Logs as it is on AWS: a stream's `lastEventTimestamp` is updated eventually, "up to
//! an hour after ingestion" in the worst case
//! (<https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_LogStream.html>),
//! so DescribeLogStreams ordered by `LastEventTime` can list a busy new stream below an old one.

use serde_json::Value;

use super::super::proxy::{Answer, Behaviour, Exchange};

/// DescribeLogStreams shows `stream` without a last event time yet (its events not yet
/// accounted for), and orders the answer by last event time accordingly.
pub struct LastEventTimeLags {
    pub stream: String,
}

impl Behaviour for LastEventTimeLags {
    fn name(&self) -> &'static str {
        "last-event-time-lags"
    }

    fn rewrite(&self, request: &Exchange, answer: &mut Answer) {
        if request.action != "DescribeLogStreams" || !answer.status.is_success() {
            return;
        }
        let mut body = answer.json();
        let Some(streams) = body["logStreams"].as_array_mut() else {
            return;
        };
        for s in streams.iter_mut() {
            if s["logStreamName"] == self.stream.as_str() {
                if let Some(s) = s.as_object_mut() {
                    s.remove("lastEventTimestamp");
                }
            }
        }
        if request.json()["orderBy"] == "LastEventTime" {
            let last = |s: &Value| s["lastEventTimestamp"].as_i64().unwrap_or(0);
            streams.sort_by_key(|s| last(s));
            if request.json()["descending"] == true {
                streams.reverse();
            }
        }
        answer.set_json(&body);
    }
}
