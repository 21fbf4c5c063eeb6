//! IAM policy documents compared by what they grant, not by how they are written: IAM keeps a
//! document as it was put, so `"Action": "s3:GetObject"` and `["s3:GetObject"]`, statements in
//! another order, a `Sid` or action names in another case are the same policy. Differences are
//! told as the statements one has and the other lacks ("allows iam:* on *").

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// One statement in a canonical form: lists sorted and deduplicated, action names in lower case
/// (IAM matches them without case), `Sid` dropped, condition values always lists.
fn canonical_statement(statement: &Value) -> Value {
    let Value::Object(fields) = statement else {
        return statement.clone();
    };
    let mut out = Map::new();
    for (key, value) in fields {
        let value = match key.as_str() {
            "Sid" => continue,
            "Action" | "NotAction" => set(value, |s| s.to_lowercase()),
            "Resource" | "NotResource" => set(value, str::to_string),
            "Condition" => canonical_condition(value),
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

/// A string or a list of strings as a sorted list without repeats.
fn set(value: &Value, each: impl Fn(&str) -> String) -> Value {
    let items: BTreeSet<String> = match value {
        Value::String(s) => [each(s)].into(),
        Value::Array(all) => all.iter().filter_map(Value::as_str).map(&each).collect(),
        other => return other.clone(),
    };
    Value::Array(items.into_iter().map(Value::String).collect())
}

/// `{"StringEquals": {"aws:SourceArn": "x"}}` with every value as a sorted list.
fn canonical_condition(value: &Value) -> Value {
    let Value::Object(operators) = value else {
        return value.clone();
    };
    let operators = operators.iter().map(|(op, keys)| {
        let keys = match keys {
            Value::Object(keys) => Value::Object(
                keys.iter()
                    .map(|(k, v)| (k.clone(), set(v, str::to_string)))
                    .collect(),
            ),
            other => other.clone(),
        };
        (op.clone(), keys)
    });
    Value::Object(operators.collect())
}

/// The document's statements in canonical form, as a set.
fn statements(document: &Value) -> BTreeSet<String> {
    let all = match &document["Statement"] {
        Value::Array(all) => all.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    };
    all.into_iter()
        .map(|s| canonical_statement(s).to_string())
        .collect()
}

/// Whether two documents grant the same: the same version and the same statements.
pub fn same(a: &Value, b: &Value) -> bool {
    a["Version"] == b["Version"] && statements(a) == statements(b)
}

/// "allows iam:* on *", "denies s3:GetObject on arn:…", as a person reads a statement.
pub fn summary(statement: &Value) -> String {
    let words = |key: &str| match &statement[key] {
        Value::String(s) => Some(s.clone()),
        Value::Array(all) => Some(
            all.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        _ => None,
    };
    let verb = match statement["Effect"].as_str() {
        Some("Deny") => "denies",
        _ => "allows",
    };
    let actions = words("Action")
        .or_else(|| words("NotAction").map(|a| format!("everything but {a}")))
        .unwrap_or_default();
    let resources = words("Resource")
        .or_else(|| words("NotResource").map(|r| format!("everything but {r}")))
        .unwrap_or_default();
    let condition = if statement.get("Condition").is_some() {
        " under a condition"
    } else {
        ""
    };
    format!("{verb} {actions} on {resources}{condition}")
}

/// Every statement of a document, summarised; "grants nothing" without any.
pub fn summarise(document: &Value) -> String {
    let summaries: Vec<String> = match &document["Statement"] {
        Value::Array(all) => all.iter().map(summary).collect(),
        Value::Null => Vec::new(),
        one => vec![summary(one)],
    };
    if summaries.is_empty() {
        "grants nothing".to_string()
    } else {
        summaries.join("; ")
    }
}

/// How `found` differs from `wanted`: the statements it has that `wanted` lacks, then those it
/// lacks. Empty when they grant the same.
pub fn changes(found: &Value, wanted: &Value) -> Vec<String> {
    let raw = |document: &Value| -> Vec<Value> {
        match &document["Statement"] {
            Value::Array(all) => all.clone(),
            Value::Null => Vec::new(),
            one => vec![one.clone()],
        }
    };
    let (have, want) = (statements(found), statements(wanted));
    let mut out = Vec::new();
    for st in raw(found) {
        if !want.contains(&canonical_statement(&st).to_string()) {
            out.push(summary(&st));
        }
    }
    for st in raw(wanted) {
        if !have.contains(&canonical_statement(&st).to_string()) {
            out.push(format!("no longer {}", summary(&st)));
        }
    }
    if out.is_empty() && found["Version"] != wanted["Version"] {
        out.push(format!(
            "version {} (wanted {})",
            found["Version"], wanted["Version"]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grant(resource: Value) -> Value {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "ReadThisPoolsPrefectApiKey",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": resource
            }]
        })
    }

    #[test]
    fn the_same_grant_written_another_way_is_the_same() {
        let written = json!({
            "Version": "2012-10-17",
            "Statement": {
                "Effect": "Allow",
                "Action": ["SecretsManager:GetSecretValue", "secretsmanager:getsecretvalue"],
                "Resource": ["arn:s"]
            }
        });
        assert!(same(&written, &grant(json!("arn:s"))));
        assert!(changes(&written, &grant(json!("arn:s"))).is_empty());
        let reordered = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "a:B", "Resource": "*",
             "Condition": {"StringEquals": {"k": "v"}}},
            {"Effect": "Deny", "Action": "c:D", "Resource": ["y", "x"]}]});
        let original = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": ["c:D"], "Resource": ["x", "y"]},
            {"Effect": "Allow", "Action": ["a:B"], "Resource": "*",
             "Condition": {"StringEquals": {"k": ["v"]}}}]});
        assert!(same(&reordered, &original));
    }

    #[test]
    fn a_widened_grant_says_what_it_now_allows_and_what_it_no_longer_does() {
        let widened = grant(json!("*"));
        let wanted = grant(json!("arn:s"));
        assert!(!same(&widened, &wanted));
        assert_eq!(
            changes(&widened, &wanted),
            [
                "allows secretsmanager:GetSecretValue on *",
                "no longer allows secretsmanager:GetSecretValue on arn:s"
            ]
        );
        let version = json!({"Statement": wanted["Statement"].clone()});
        assert_eq!(
            changes(&version, &wanted),
            [r#"version null (wanted "2012-10-17")"#]
        );
    }

    #[test]
    fn statements_read_as_a_person_says_them() {
        let admin = json!({"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]});
        assert_eq!(summarise(&admin), "allows iam:* on *");
        let st = json!({"Effect": "Deny", "NotAction": ["s3:*", "ec2:*"], "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}});
        assert_eq!(
            summary(&st),
            "denies everything but s3:*, ec2:* on * under a condition"
        );
        assert_eq!(
            summarise(&json!({"Version": "2012-10-17"})),
            "grants nothing"
        );
    }
}
