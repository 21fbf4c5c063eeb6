//! Reading IAM policy documents as IAM returns them (URL-encoded JSON).

use serde_json::Value;

/// A policy document from IAM, decoded and parsed.
pub fn decode_policy(raw: &str) -> Value {
    let text = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .expect("a UTF-8 policy");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("policy is not JSON ({e}): {text}"))
}

/// The policy's statements, whether it has one or a list.
pub fn statements(policy: &Value) -> Vec<Value> {
    match &policy["Statement"] {
        Value::Array(all) => all.clone(),
        one => vec![one.clone()],
    }
}

/// A policy field that may be a string or a list of strings (or absent), as a list.
pub fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().expect("a string").to_string())
            .collect(),
        Value::String(s) => vec![s.clone()],
        Value::Null => Vec::new(),
        other => panic!("not a string or a list of strings: {other}"),
    }
}
