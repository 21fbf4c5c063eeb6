//! One validator per input: each checks a single flag (or the answer to its question) and phrases
//! what is wrong for the user.

use std::time::Duration;

use super::{
    err, join, FlowRunCapacity, InputError, NetworkChoice, LOG_RETENTION_DAYS, MAX_POOL_NAME_LEN,
};

const MAX_DESIRED_COUNT: u32 = 100;
const MAX_USER_TAGS: usize = 40;

/// Pool names become parts of IAM, ECS, Secrets Manager and CloudWatch names and of the worker's
/// command line, so only the characters all of them accept are allowed.
pub fn validate_pool_name(pool: &str) -> Result<String, InputError> {
    let fix = "use 1-40 letters, digits, '-' or '_', starting with a letter or digit (e.g. --pool my-ecs-pool)";
    if pool.is_empty() {
        return Err(err(format!("the pool name is empty: {fix}")));
    }
    if pool.len() > MAX_POOL_NAME_LEN {
        return Err(err(format!(
            "the pool name '{pool}' is {} characters long: {fix}",
            pool.len()
        )));
    }
    if pool.to_ascii_lowercase().starts_with("prefect") {
        return Err(err(format!(
            "the pool name '{pool}' starts with 'prefect', which Prefect reserves for its own pools: choose another name (e.g. --pool my-ecs-pool)"
        )));
    }
    if !pool.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(err(format!(
            "the pool name '{pool}' must start with a letter or digit: {fix}"
        )));
    }
    if let Some(bad) = pool
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(err(format!(
            "the pool name '{pool}' contains {bad:?}: {fix}"
        )));
    }
    Ok(pool.to_string())
}

/// The worker only talks to the API over HTTP(S); a Prefect Cloud URL must name a workspace.
pub fn validate_api_url(raw: &str) -> Result<String, InputError> {
    let example = "e.g. https://api.prefect.cloud/api/accounts/<account-id>/workspaces/<workspace-id> or http://prefect.internal:4200/api";
    let trimmed = raw.trim();
    let url = url::Url::parse(trimmed).map_err(|e| {
        err(format!(
            "the Prefect API URL '{raw}' is not a URL ({e}); {example}"
        ))
    })?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(err(format!(
            "the Prefect API URL '{raw}' must start with https:// or http://; {example}"
        )));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(err(format!(
            "the Prefect API URL '{raw}' has no host; {example}"
        )));
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err(
            "the Prefect API URL must not contain credentials; pass the key with PREFECT_API_KEY instead",
        ));
    }
    if host == "api.prefect.cloud" || host == "app.prefect.cloud" {
        let segments: Vec<&str> = url.path().trim_end_matches('/').split('/').collect();
        let is_workspace_url = matches!(
            segments.as_slice(),
            ["", "api", "accounts", account, "workspaces", workspace]
                if is_uuid(account) && is_uuid(workspace)
        );
        if host != "api.prefect.cloud" || !is_workspace_url {
            return Err(err(format!(
                "'{raw}' is not a Prefect Cloud workspace API URL; it looks like https://api.prefect.cloud/api/accounts/<account-id>/workspaces/<workspace-id> (run `prefect config view` to see yours)"
            )));
        }
    }
    Ok(trimmed.trim_end_matches('/').to_string())
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Whether a Prefect API URL is Prefect Cloud's, which always needs an API key.
pub fn is_prefect_cloud(api_url: &str) -> bool {
    url::Url::parse(api_url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.ends_with("prefect.cloud")))
        .unwrap_or(false)
}

/// Whether a URL points at the machine it is used on: a Fargate task can never reach it there.
pub fn is_loopback(api_url: &str) -> bool {
    match url::Url::parse(api_url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

pub fn validate_flow_run_capacity(raw: &str) -> Result<FlowRunCapacity, InputError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "fargate" => Ok(FlowRunCapacity::Fargate),
        "spot" | "fargate-spot" | "fargate_spot" => Ok(FlowRunCapacity::Spot),
        _ => Err(err(format!(
            "--flow-run-capacity '{raw}' is not one of: fargate, spot"
        ))),
    }
}

/// An IAM managed policy ARN: AWS's (`arn:aws:iam::aws:policy/…`) or an account's.
pub fn validate_policy_arn(raw: &str) -> Result<String, InputError> {
    let ok = iam_arn_parts(raw).is_some_and(|(account, kind)| {
        (account == "aws" || is_account(account)) && kind == "policy"
    });
    if ok {
        Ok(raw.to_string())
    } else {
        Err(err(format!(
            "--flow-run-policy-arn '{raw}' is not an IAM policy ARN (e.g. arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess or arn:aws:iam::123456789012:policy/my-flows)"
        )))
    }
}

/// An IAM role ARN of an account (`arn:aws:iam::123456789012:role/…`).
pub fn validate_role_arn(raw: &str) -> Result<String, InputError> {
    let ok =
        iam_arn_parts(raw).is_some_and(|(account, kind)| is_account(account) && kind == "role");
    if ok {
        Ok(raw.to_string())
    } else {
        Err(err(format!(
            "--flow-run-role-arn '{raw}' is not an IAM role ARN (e.g. arn:aws:iam::123456789012:role/my-flow-runs)"
        )))
    }
}

/// (account, resource type) of `arn:<partition>:iam::<account>:<type>/<path and name>`.
fn iam_arn_parts(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let (kind, name) = resource.split_once('/')?;
    let valid_name = !name.is_empty()
        && name.len() <= 512
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_/".contains(c));
    (partition.starts_with("aws") && valid_name).then_some((account, kind))
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.chars().all(|c| c.is_ascii_digit())
}

pub fn validate_image(image: &str) -> Result<String, InputError> {
    if image.is_empty() || image.len() > 255 || image.chars().any(|c| c.is_whitespace()) {
        return Err(err(format!(
            "the image '{image}' is not a container image reference: use e.g. --image prefecthq/prefect-aws:0.7.12-python3.12"
        )));
    }
    Ok(image.to_string())
}

pub fn validate_desired_count(count: u32) -> Result<u32, InputError> {
    if count > MAX_DESIRED_COUNT {
        return Err(err(format!(
            "--desired-count {count} is more than {MAX_DESIRED_COUNT} workers; one worker can run many flows, so use a smaller number"
        )));
    }
    Ok(count)
}

pub fn validate_log_retention(days: u32) -> Result<u32, InputError> {
    if !LOG_RETENTION_DAYS.contains(&days) {
        return Err(err(format!(
            "--log-retention-days {days} is not a CloudWatch Logs retention: use one of {}",
            join(LOG_RETENTION_DAYS)
        )));
    }
    Ok(days)
}

/// `KEY=VALUE` pairs within the limits every tagged service shares; `ecsctl:` and `aws:` are reserved.
pub fn parse_tags(raw: &[String]) -> Result<Vec<(String, String)>, InputError> {
    let allowed = |c: char| c.is_alphanumeric() || " _.:/=+-@".contains(c);
    let mut tags: Vec<(String, String)> = Vec::new();
    for item in raw {
        let Some((key, value)) = item.split_once('=') else {
            return Err(err(format!(
                "--tag '{item}' is not KEY=VALUE (e.g. --tag team=data)"
            )));
        };
        let (key, value) = (key.trim(), value.trim());
        // AWS counts characters, not bytes: 256 × 'é' is a valid value.
        let (key_len, value_len) = (key.chars().count(), value.chars().count());
        if key_len == 0 || key_len > 128 {
            return Err(err(format!(
                "--tag '{item}': the key is {key_len} characters long; AWS allows 1 to 128"
            )));
        }
        if value_len > 256 {
            return Err(err(format!(
                "--tag '{key}=…': the value is {value_len} characters long; AWS allows at most 256"
            )));
        }
        if let Some(bad) = key.chars().chain(value.chars()).find(|c| !allowed(*c)) {
            return Err(err(format!(
                "--tag '{item}' has {}: keys and values may hold only letters, digits, spaces and _.:/=+-@",
                super::secret::describe_in_text(bad)
            )));
        }
        let lower = key.to_lowercase();
        if lower.starts_with("aws:") || lower.starts_with("ecsctl:") {
            return Err(err(format!(
                "--tag '{item}': keys starting with 'aws:' or 'ecsctl:' are reserved"
            )));
        }
        if let Some((first, _)) = tags.iter().find(|(k, _)| k.to_lowercase() == lower) {
            return Err(err(if first == key {
                format!("--tag '{key}' is given more than once")
            } else {
                format!(
                    "--tag '{first}' and --tag '{key}' differ only in case, and IAM treats tag keys without regard to case: they would be one key. Keep one of them"
                )
            }));
        }
        tags.push((key.to_string(), value.to_string()));
    }
    if tags.len() > MAX_USER_TAGS {
        return Err(err(format!(
            "{} --tag values given; at most {MAX_USER_TAGS} fit beside ecsctl's own tags",
            tags.len()
        )));
    }
    Ok(tags)
}

fn is_aws_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|hex| {
        (8..=17).contains(&hex.len()) && hex.chars().all(|c| c.is_ascii_hexdigit())
    })
}

pub fn validate_network(
    vpc_id: Option<&str>,
    subnet_ids: &[String],
) -> Result<NetworkChoice, InputError> {
    match (vpc_id, subnet_ids.is_empty()) {
        (None, true) => Ok(NetworkChoice::Create),
        (None, false) => Err(err(
            "--subnet-ids needs --vpc-id: name the VPC the subnets belong to",
        )),
        (Some(_), true) => Err(err(
            "--vpc-id needs --subnet-ids: name the subnets (comma-separated) the worker should run in",
        )),
        (Some(vpc), false) => {
            if !is_aws_id(vpc, "vpc-") {
                return Err(err(format!(
                    "--vpc-id '{vpc}' is not a VPC id (vpc- followed by 8 or 17 hex digits)"
                )));
            }
            let mut subnets: Vec<String> = Vec::new();
            for s in subnet_ids {
                let s = s.trim();
                if !is_aws_id(s, "subnet-") {
                    return Err(err(format!(
                        "--subnet-ids: '{s}' is not a subnet id (subnet- followed by 8 or 17 hex digits)"
                    )));
                }
                if subnets.iter().any(|x| x == s) {
                    return Err(err(format!("--subnet-ids: '{s}' is listed twice")));
                }
                subnets.push(s.to_string());
            }
            if subnets.len() > 16 {
                return Err(err("--subnet-ids: ECS takes at most 16 subnets"));
            }
            Ok(NetworkChoice::Reuse {
                vpc_id: vpc.to_string(),
                subnet_ids: subnets,
            })
        }
    }
}

/// `600`, `90s`, `10m` or `1h`: between 1 second and 2 hours.
pub fn parse_duration(raw: &str) -> Result<Duration, InputError> {
    let bad = || {
        err(format!(
            "--wait-timeout '{raw}' is not a duration: use seconds (600) or a unit (90s, 10m, 1h), at most 2h"
        ))
    };
    let raw_trimmed = raw.trim();
    let (number, unit) = match raw_trimmed
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit())
    {
        Some((i, _)) => raw_trimmed.split_at(i),
        None => (raw_trimmed, "s"),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if secs == 0 || secs > 7200 {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

pub fn validate_secret_recovery_days(days: u32) -> Result<u32, InputError> {
    if !(7..=30).contains(&days) {
        return Err(err(format!(
            "--secret-recovery-days {days}: Secrets Manager allows 7 to 30 days"
        )));
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_and_loopback_urls_are_told_apart() {
        assert!(is_prefect_cloud(
            "https://api.prefect.cloud/api/accounts/a/workspaces/w"
        ));
        assert!(!is_prefect_cloud("http://prefect.internal:4200/api"));
        assert!(is_loopback("http://127.0.0.1:4200/api"));
        assert!(is_loopback("http://127.3.2.1/api"));
        assert!(is_loopback("http://localhost:4200/api"));
        assert!(is_loopback("http://[::1]:4200/api"));
        assert!(!is_loopback("http://10.0.0.5:4200/api"));
        assert!(!is_loopback("https://api.prefect.cloud/api"));
    }

    #[test]
    fn pool_names() {
        assert!(validate_pool_name("a").is_ok());
        assert!(validate_pool_name("Pool_1-x").is_ok());
        assert!(validate_pool_name(&"p".repeat(40)).is_ok());
        for bad in [
            "",
            "-pool",
            "_x",
            "my pool",
            "pool/1",
            "pööl",
            "a.b",
            &"p".repeat(41),
        ] {
            assert!(validate_pool_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn api_urls() {
        let cloud = "https://api.prefect.cloud/api/accounts/0f9a1c2e-1111-2222-3333-444455556666/workspaces/9e8d7c6b-aaaa-bbbb-cccc-ddddeeeeffff";
        assert_eq!(validate_api_url(&format!("{cloud}/")).unwrap(), cloud);
        assert!(validate_api_url("http://localhost:4200/api").is_ok());
        for bad in [
            "prefect.example.com",
            "ftp://x/api",
            "https://api.prefect.cloud/api",
            "https://app.prefect.cloud/account/1/workspace/2",
            "https://user:pw@prefect.example.com/api",
            "http://",
        ] {
            assert!(validate_api_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tags() {
        assert_eq!(
            parse_tags(&["team=data".into(), "cost center=42".into(), "empty=".into()]).unwrap(),
            vec![
                ("team".into(), "data".into()),
                ("cost center".into(), "42".into()),
                ("empty".into(), "".into())
            ]
        );
        for bad in ["novalue", "=v", "aws:x=1", "ecsctl:pool=x", "k=v;rm"] {
            assert!(parse_tags(&[bad.into()]).is_err(), "{bad:?} accepted");
        }
        assert!(parse_tags(&["a=1".into(), "a=2".into()]).is_err());
        let case = parse_tags(&["Team=a".into(), "team=b".into()])
            .unwrap_err()
            .0;
        assert!(
            case.contains("'Team' and --tag 'team' differ only in case"),
            "{case}"
        );
        // Lengths in characters, as AWS counts them: 'é' is two bytes.
        let e = "é";
        assert!(parse_tags(&[format!("k={}", e.repeat(256))]).is_ok());
        assert!(parse_tags(&[format!("{}=v", e.repeat(128))]).is_ok());
        let long_key = parse_tags(&[format!("{}=v", e.repeat(129))]).unwrap_err().0;
        assert!(
            long_key.contains("the key is 129 characters long; AWS allows 1 to 128"),
            "{long_key}"
        );
        let long_value = parse_tags(&[format!("k={}", e.repeat(257))]).unwrap_err().0;
        assert!(
            long_value.contains("the value is 257 characters long"),
            "{long_value}"
        );
        for text in [long_key, long_value] {
            assert!(!text.contains("letters,"), "{text}");
        }
        let hidden = parse_tags(&["team=da\u{200b}ta".into()]).unwrap_err().0;
        assert!(hidden.contains("U+200B"), "{hidden}");
    }

    #[test]
    fn networks() {
        assert_eq!(validate_network(None, &[]).unwrap(), NetworkChoice::Create);
        let reuse = validate_network(
            Some("vpc-0123abcd"),
            &["subnet-0123abcd".into(), "subnet-4567ef01".into()],
        )
        .unwrap();
        assert!(matches!(reuse, NetworkChoice::Reuse { subnet_ids, .. } if subnet_ids.len() == 2));
        assert!(validate_network(Some("vpc-0123abcd"), &[]).is_err());
        assert!(validate_network(None, &["subnet-0123abcd".into()]).is_err());
        assert!(validate_network(Some("vpc-xyz"), &["subnet-0123abcd".into()]).is_err());
        assert!(validate_network(Some("vpc-0123abcd"), &["sn-1".into()]).is_err());
        assert!(validate_network(
            Some("vpc-0123abcd"),
            &["subnet-0123abcd".into(), "subnet-0123abcd".into()]
        )
        .is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("600").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "0", "-5", "5d", "m", "3h", "1.5m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn retention_and_counts() {
        assert!(validate_log_retention(30).is_ok());
        assert!(validate_log_retention(31).is_err());
        assert!(validate_desired_count(0).is_ok());
        assert!(validate_desired_count(101).is_err());
        assert!(validate_secret_recovery_days(7).is_ok());
        assert!(validate_secret_recovery_days(6).is_err());
    }
}
