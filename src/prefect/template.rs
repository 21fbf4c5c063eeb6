//! ecsctl's part of a work pool's base job template. A template has `variables` (a JSON schema:
//! `variables.properties.<name>.default` is what a flow run gets unless its deployment says
//! otherwise) and a `job_configuration` that references them as `"{{ name }}"`. ecsctl owns the
//! defaults of a few variables and never touches anything else in the template.

use serde_json::{json, Map, Value};

/// One variable whose default ecsctl sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Owned {
    pub name: &'static str,
    pub default: Value,
}

/// Where a variable is referenced when a template lacks it: its place in `job_configuration`.
fn reference_path(name: &str) -> &'static [&'static str] {
    match name {
        "task_role_arn" => &["task_run_request", "overrides", "taskRoleArn"],
        "launch_type" => &["task_run_request", "launchType"],
        "capacity_provider_strategy" => &["task_run_request", "capacityProviderStrategy"],
        // Every other variable ecsctl owns is a field of the worker's job configuration.
        _ => &[],
    }
}

/// The JSON-schema type a declared variable gets.
fn schema_type(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        _ => "string",
    }
}

/// The variables whose default differs from what ecsctl wants, or which the template lacks
/// (declared or referenced), by name.
pub fn differences(template: &Value, owned: &[Owned]) -> Vec<&'static str> {
    owned
        .iter()
        .filter(|o| {
            template.pointer(&default_pointer(o.name)) != Some(&o.default)
                || !is_referenced(template, o.name)
        })
        .map(|o| o.name)
        .collect()
}

/// Sets ecsctl's defaults, declaring and referencing any variable the template lacks (an older
/// template has no `prefect_api_key_secret_arn`). Leaves everything else as it is.
pub fn apply(template: &Value, owned: &[Owned]) -> Value {
    let mut out = if template.is_object() {
        template.clone()
    } else {
        json!({})
    };
    for o in owned {
        let properties = object_at(&mut out, &["variables", "properties"]);
        let variable = properties
            .entry(o.name)
            .or_insert_with(|| json!({ "title": title(o.name), "type": schema_type(&o.default) }));
        if let Value::Object(v) = variable {
            v.insert("default".into(), o.default.clone());
        }
        if !is_referenced(&out, o.name) {
            let path = reference_path(o.name);
            let (parent, key) = match path.split_last() {
                Some((key, parent)) => (parent, *key),
                None => (&[][..], o.name),
            };
            let mut at = vec!["job_configuration"];
            at.extend_from_slice(parent);
            object_at(&mut out, &at).insert(key.into(), json!(format!("{{{{ {} }}}}", o.name)));
        }
    }
    out
}

/// Removes ecsctl's defaults (not the variables: they are the user's template's), for a pool
/// ecsctl configured but did not create.
pub fn remove(template: &Value, names: &[&str]) -> Value {
    let mut out = template.clone();
    for name in names {
        if let Some(Value::Object(v)) = out.pointer_mut(&format!("/variables/properties/{name}")) {
            v.remove("default");
        }
    }
    out
}

/// Whether the job configuration uses the variable anywhere.
fn is_referenced(template: &Value, name: &str) -> bool {
    let needle = format!("{{{{ {name} }}}}");
    template
        .get("job_configuration")
        .is_some_and(|job| contains_text(job, &needle))
}

fn contains_text(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => s.contains(needle),
        Value::Array(items) => items.iter().any(|v| contains_text(v, needle)),
        Value::Object(map) => map.values().any(|v| contains_text(v, needle)),
        _ => false,
    }
}

fn default_pointer(name: &str) -> String {
    format!("/variables/properties/{name}/default")
}

/// The object at `path`, made (and made an object) where missing.
fn object_at<'a>(value: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut at = value;
    for key in path {
        if !at.is_object() {
            *at = json!({});
        }
        at = at
            .as_object_mut()
            .expect("made an object just above")
            .entry(*key)
            .or_insert_with(|| json!({}));
    }
    if !at.is_object() {
        *at = json!({});
    }
    at.as_object_mut().expect("made an object just above")
}

/// "prefect_api_key_secret_arn" → "Prefect Api Key Secret Arn", as Prefect titles fields.
fn title(name: &str) -> String {
    name.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        })
        .collect::<Vec<String>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of prefect-aws's ECS template, cut down to what these tests touch.
    fn stock() -> Value {
        json!({
            "job_configuration": {
                "cluster": "{{ cluster }}",
                "vpc_id": "{{ vpc_id }}",
                "env": "{{ env }}",
                "task_run_request": {
                    "launchType": "{{ launch_type }}",
                    "overrides": { "taskRoleArn": "{{ task_role_arn }}" }
                }
            },
            "variables": {
                "type": "object",
                "properties": {
                    "cluster": { "type": "string", "title": "Cluster" },
                    "vpc_id": { "type": "string", "title": "VPC ID" },
                    "env": { "type": "object", "default": { "MINE": "1" } },
                    "launch_type": { "type": "string", "default": "FARGATE" },
                    "task_role_arn": { "type": "string" }
                }
            }
        })
    }

    fn owned() -> Vec<Owned> {
        vec![
            Owned {
                name: "cluster",
                default: json!("arn:aws:ecs:r:1:cluster/ecsctl-p"),
            },
            Owned {
                name: "task_role_arn",
                default: json!("arn:aws:iam::1:role/ecsctl/flow"),
            },
            Owned {
                name: "prefect_api_key_secret_arn",
                default: json!("arn:secret"),
            },
        ]
    }

    #[test]
    fn only_ecsctls_defaults_change_and_a_missing_variable_is_declared_and_referenced() {
        let before = stock();
        assert_eq!(
            differences(&before, &owned()),
            ["cluster", "task_role_arn", "prefect_api_key_secret_arn"]
        );
        let after = apply(&before, &owned());
        assert_eq!(differences(&after, &owned()), Vec::<&str>::new());
        // The user's own settings stay.
        assert_eq!(
            after["variables"]["properties"]["env"]["default"],
            json!({ "MINE": "1" })
        );
        assert_eq!(after["job_configuration"]["env"], "{{ env }}");
        // An existing reference is not duplicated; a missing one is added where the worker reads it.
        assert_eq!(
            after["job_configuration"]["task_run_request"]["overrides"]["taskRoleArn"],
            "{{ task_role_arn }}"
        );
        assert_eq!(
            after["job_configuration"]["prefect_api_key_secret_arn"],
            "{{ prefect_api_key_secret_arn }}"
        );
        assert_eq!(
            after["variables"]["properties"]["prefect_api_key_secret_arn"]["type"],
            "string"
        );
        // Applying again changes nothing.
        assert_eq!(apply(&after, &owned()), after);
    }

    #[test]
    fn removing_takes_away_only_the_defaults() {
        let configured = apply(&stock(), &owned());
        let removed = remove(&configured, &["cluster", "task_role_arn"]);
        assert_eq!(
            removed["variables"]["properties"]["cluster"],
            json!({ "type": "string", "title": "Cluster" })
        );
        assert_eq!(
            removed["variables"]["properties"]["env"]["default"],
            json!({ "MINE": "1" })
        );
        assert_eq!(
            removed["job_configuration"],
            configured["job_configuration"]
        );
    }

    #[test]
    fn an_empty_template_gets_everything_it_needs() {
        let made = apply(&json!({}), &owned());
        assert!(differences(&made, &owned()).is_empty());
        assert_eq!(made["job_configuration"]["cluster"], "{{ cluster }}");
    }
}
