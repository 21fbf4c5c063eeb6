//! Flags, environment and prompt answers → validated settings.
//!
//! Everything here is pure: no AWS calls and no terminal I/O, so every rule is unit-tested. Validation
//! collects *all* problems at once, so a user fixes their command line in one go.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const DEFAULT_IMAGE: &str = "prefecthq/prefect-aws:latest";
pub const DEFAULT_CPU: u32 = 512;
pub const DEFAULT_MEMORY: u32 = 1024;
pub const DEFAULT_DESIRED_COUNT: u32 = 1;
pub const DEFAULT_LOG_RETENTION_DAYS: u32 = 30;
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long destroy waits for a service to drain and for AWS to release network interfaces.
pub const DEFAULT_TEARDOWN_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Longest pool name whose derived names (e.g. the 64-character IAM role `ecsctl-<pool>-execution`)
/// stay within every AWS limit.
pub const MAX_POOL_NAME_LEN: usize = 40;
const MAX_DESIRED_COUNT: u32 = 100;
const MAX_USER_TAGS: usize = 40;

/// Retention values CloudWatch Logs accepts (PutRetentionPolicy rejects anything else).
pub const LOG_RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// The Prefect API key. Deliberately not `Serialize`, and `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where the worker's network comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum NetworkChoice {
    /// ecsctl creates (and later deletes) a VPC with two public subnets.
    Create,
    /// The user's VPC and subnets, used but never deleted.
    Reuse {
        vpc_id: String,
        subnet_ids: Vec<String>,
    },
}

/// The non-secret inputs of a bootstrap; also what the ledger records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackSpec {
    pub prefect_api_url: String,
    pub image: String,
    pub cpu: u32,
    pub memory: u32,
    pub desired_count: u32,
    pub log_retention_days: u32,
    pub tags: Vec<(String, String)>,
    pub network: NetworkChoice,
}

/// Everything `bootstrap` needs, validated.
#[derive(Debug, Clone)]
pub struct BootstrapSettings {
    pub pool: String,
    pub spec: StackSpec,
    pub api_key: ApiKey,
    pub dry_run: bool,
    /// `None` with `--no-wait`.
    pub wait_timeout: Option<Duration>,
}

/// Bootstrap inputs as gathered from flags, environment and prompts, before validation.
#[derive(Debug, Clone, Default)]
pub struct BootstrapInputs {
    pub pool: Option<String>,
    pub prefect_api_url: Option<String>,
    pub api_key: Option<String>,
    pub image: Option<String>,
    pub cpu: Option<u32>,
    pub memory: Option<u32>,
    pub desired_count: Option<u32>,
    pub log_retention_days: Option<u32>,
    pub tags: Vec<String>,
    pub vpc_id: Option<String>,
    pub subnet_ids: Vec<String>,
    pub dry_run: bool,
    pub no_wait: bool,
    pub wait_timeout: Option<String>,
}

/// One thing wrong with the inputs, phrased for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// All problems found in one set of inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputErrors(pub Vec<InputError>);

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {e}")?;
        }
        Ok(())
    }
}

fn err(msg: impl Into<String>) -> InputError {
    InputError(msg.into())
}

impl BootstrapInputs {
    /// Checks what flags and environment gave, before any question is asked: a typo in a flag is
    /// reported at once, not after the user has answered every question. What the questions
    /// will ask for stands in as a valid placeholder.
    pub fn validate_given(&self) -> Result<(), InputErrors> {
        let mut probe = self.clone();
        probe.pool.get_or_insert_with(|| "placeholder".into());
        probe
            .prefect_api_url
            .get_or_insert_with(|| "http://placeholder/api".into());
        probe.api_key.get_or_insert_with(|| "placeholder".into());
        probe.validate().map(|_| ())
    }

    /// Validates every input and returns settings, or every problem found.
    pub fn validate(self) -> Result<BootstrapSettings, InputErrors> {
        let mut errors = Vec::new();
        let mut missing = Vec::new();

        let pool = match self.pool.as_deref() {
            None => {
                missing.push("the pool name (--pool or ECSCTL_POOL)");
                None
            }
            Some(p) => keep(validate_pool_name(p), &mut errors),
        };
        let prefect_api_url = match self.prefect_api_url.as_deref() {
            None => {
                missing.push("the Prefect API URL (--prefect-api-url or PREFECT_API_URL)");
                None
            }
            Some(u) => keep(validate_api_url(u), &mut errors),
        };
        let api_key = match self.api_key.as_deref() {
            None => {
                missing.push(
                    "the Prefect API key (PREFECT_API_KEY, or --prefect-api-key-file PATH|-)",
                );
                None
            }
            Some(k) => keep(validate_api_key(k), &mut errors),
        };
        if !missing.is_empty() {
            errors.insert(
                0,
                err(format!(
                    "missing input, and not prompting because the run is non-interactive: {}",
                    missing.join("; ")
                )),
            );
        }

        let image = keep(
            validate_image(self.image.as_deref().unwrap_or(DEFAULT_IMAGE)),
            &mut errors,
        );
        let cpu = self.cpu.unwrap_or_else(|| {
            // A memory size with no CPU given keeps the default CPU if that allows it, else gets
            // the smallest CPU size that does (the same choice the CPU question offers).
            let sizes = cpu_sizes_for(self.memory);
            match sizes.first() {
                Some(&smallest) if !sizes.contains(&DEFAULT_CPU) => smallest,
                _ => DEFAULT_CPU,
            }
        });
        let memory = self.memory.unwrap_or(match self.cpu {
            // A bigger CPU with no memory given gets that size's smallest memory.
            Some(c) => fargate_memory_options(c)
                .first()
                .copied()
                .unwrap_or(DEFAULT_MEMORY),
            None => DEFAULT_MEMORY,
        });
        let size = keep(validate_task_size(cpu, memory), &mut errors);
        let desired_count = keep(
            validate_desired_count(self.desired_count.unwrap_or(DEFAULT_DESIRED_COUNT)),
            &mut errors,
        );
        let log_retention_days = keep(
            validate_log_retention(
                self.log_retention_days
                    .unwrap_or(DEFAULT_LOG_RETENTION_DAYS),
            ),
            &mut errors,
        );
        let tags = keep(parse_tags(&self.tags), &mut errors);
        let network = keep(
            validate_network(self.vpc_id.as_deref(), &self.subnet_ids),
            &mut errors,
        );
        let wait_timeout = match (self.no_wait, self.wait_timeout.as_deref()) {
            (true, Some(_)) => {
                errors.push(err(
                    "--no-wait and --wait-timeout contradict each other: drop one of them",
                ));
                None
            }
            (true, None) => Some(None),
            (false, None) => Some(Some(DEFAULT_WAIT_TIMEOUT)),
            (false, Some(t)) => keep(parse_duration(t), &mut errors).map(Some),
        };

        match (
            pool,
            prefect_api_url,
            api_key,
            image,
            size,
            desired_count,
            log_retention_days,
            tags,
            network,
            wait_timeout,
        ) {
            (
                Some(pool),
                Some(prefect_api_url),
                Some(api_key),
                Some(image),
                Some(()),
                Some(desired_count),
                Some(log_retention_days),
                Some(tags),
                Some(network),
                Some(wait_timeout),
            ) if errors.is_empty() => Ok(BootstrapSettings {
                pool,
                spec: StackSpec {
                    prefect_api_url,
                    image,
                    cpu,
                    memory,
                    desired_count,
                    log_retention_days,
                    tags,
                    network,
                },
                api_key,
                dry_run: self.dry_run,
                wait_timeout,
            }),
            _ => Err(InputErrors(errors)),
        }
    }
}

fn keep<T>(result: Result<T, InputError>, errors: &mut Vec<InputError>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

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

/// Keys are single tokens; whitespace inside one is always a copy-paste accident.
pub fn validate_api_key(raw: &str) -> Result<ApiKey, InputError> {
    // A key file usually ends with a newline; that is not part of the key.
    let key = raw.trim_end_matches(['\n', '\r']);
    if key.trim().is_empty() {
        return Err(err(
            "the Prefect API key is empty: set PREFECT_API_KEY or pass --prefect-api-key-file with a non-empty file",
        ));
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err(
            "the Prefect API key contains whitespace or control characters: check PREFECT_API_KEY or the key file holds just the key",
        ));
    }
    if key.len() > 4096 {
        return Err(err(
            "the Prefect API key is longer than 4096 characters: check the key file holds just the key",
        ));
    }
    Ok(ApiKey(key.to_string()))
}

pub fn validate_image(image: &str) -> Result<String, InputError> {
    if image.is_empty() || image.len() > 255 || image.chars().any(|c| c.is_whitespace()) {
        return Err(err(format!(
            "the image '{image}' is not a container image reference: use e.g. --image prefecthq/prefect-aws:latest"
        )));
    }
    Ok(image.to_string())
}

/// Memory sizes (MiB) Fargate allows for a CPU size; empty when the CPU size itself is invalid.
pub fn fargate_memory_options(cpu: u32) -> Vec<u32> {
    let gib = |n: u32| n * 1024;
    match cpu {
        256 => vec![512, 1024, 2048],
        512 => (1..=4).map(gib).collect(),
        1024 => (2..=8).map(gib).collect(),
        2048 => (4..=16).map(gib).collect(),
        4096 => (8..=30).map(gib).collect(),
        8192 => (16..=60).step_by(4).map(gib).collect(),
        16384 => (32..=120).step_by(8).map(gib).collect(),
        _ => Vec::new(),
    }
}

pub const FARGATE_CPU_SIZES: &[u32] = &[256, 512, 1024, 2048, 4096, 8192, 16384];

/// The Fargate CPU sizes that allow `memory` (all of them when no memory is given).
pub fn cpu_sizes_for(memory: Option<u32>) -> Vec<u32> {
    FARGATE_CPU_SIZES
        .iter()
        .copied()
        .filter(|cpu| memory.is_none_or(|m| fargate_memory_options(*cpu).contains(&m)))
        .collect()
}

/// Fargate rejects other combinations at RegisterTaskDefinition; catch them before any call.
pub fn validate_task_size(cpu: u32, memory: u32) -> Result<(), InputError> {
    let options = fargate_memory_options(cpu);
    if options.is_empty() {
        return Err(err(format!(
            "--cpu {cpu} is not a Fargate CPU size: use one of {}",
            join(FARGATE_CPU_SIZES)
        )));
    }
    if !options.contains(&memory) {
        return Err(err(format!(
            "--memory {memory} is not allowed with --cpu {cpu} on Fargate: use one of {}",
            describe_range(&options)
        )));
    }
    Ok(())
}

fn join(values: &[u32]) -> String {
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_range(values: &[u32]) -> String {
    if values.len() <= 4 {
        return join(values);
    }
    let step = values[1] - values[0];
    format!(
        "{}-{} in steps of {step}",
        values[0],
        values[values.len() - 1]
    )
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
        if key.is_empty() || key.len() > 128 || !key.chars().all(allowed) {
            return Err(err(format!(
                "--tag '{item}': the key must be 1-128 letters, digits, spaces or _.:/=+-@"
            )));
        }
        if value.len() > 256 || !value.chars().all(allowed) {
            return Err(err(format!(
                "--tag '{item}': the value must be at most 256 letters, digits, spaces or _.:/=+-@"
            )));
        }
        let lower = key.to_ascii_lowercase();
        if lower.starts_with("aws:") || lower.starts_with("ecsctl:") {
            return Err(err(format!(
                "--tag '{item}': keys starting with 'aws:' or 'ecsctl:' are reserved"
            )));
        }
        if tags.iter().any(|(k, _)| k == key) {
            return Err(err(format!("--tag '{key}' is given more than once")));
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

/// A region name such as `us-east-1` or `us-gov-west-1`.
pub fn validate_region(region: &str) -> Result<String, InputError> {
    validate_region_from("--region", region)
}

/// Like [`validate_region`], naming where the value came from (a flag or an environment variable).
pub fn validate_region_from(source: &str, region: &str) -> Result<String, InputError> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty();
    if !ok {
        return Err(err(format!(
            "{source} '{region}' is not an AWS region name (e.g. us-east-1, eu-west-2)"
        )));
    }
    Ok(region.to_string())
}

pub fn validate_endpoint_url(raw: &str) -> Result<String, InputError> {
    validate_endpoint_url_from("--endpoint-url", raw)
}

/// Like [`validate_endpoint_url`], naming where the value came from.
pub fn validate_endpoint_url_from(source: &str, raw: &str) -> Result<String, InputError> {
    match url::Url::parse(raw) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some() => {
            Ok(raw.to_string())
        }
        _ => Err(err(format!(
            "{source} '{raw}' is not an http(s) URL (e.g. http://localhost:5000)"
        ))),
    }
}

pub fn validate_secret_recovery_days(days: u32) -> Result<u32, InputError> {
    if !(7..=30).contains(&days) {
        return Err(err(format!(
            "--secret-recovery-days {days}: Secrets Manager allows 7 to 30 days"
        )));
    }
    Ok(days)
}

/// The ledger directory: the flag or env var, else XDG's state directory.
pub fn state_dir(explicit: Option<PathBuf>) -> Result<PathBuf, InputError> {
    if let Some(dir) = explicit {
        if dir.as_os_str().is_empty() {
            return Err(err("--state-dir / ECSCTL_STATE_DIR is empty"));
        }
        return Ok(dir);
    }
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("ecsctl"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/state/ecsctl")),
        None => Err(err(
            "cannot find a state directory: set ECSCTL_STATE_DIR or HOME",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete() -> BootstrapInputs {
        BootstrapInputs {
            pool: Some("my-ecs-pool".into()),
            prefect_api_url: Some("http://prefect.internal:4200/api".into()),
            api_key: Some("pnu_abc123".into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_fill_everything_optional() {
        let s = complete().validate().unwrap();
        assert_eq!(s.pool, "my-ecs-pool");
        assert_eq!(s.spec.image, DEFAULT_IMAGE);
        assert_eq!((s.spec.cpu, s.spec.memory), (512, 1024));
        assert_eq!(s.spec.desired_count, 1);
        assert_eq!(s.spec.log_retention_days, 30);
        assert_eq!(s.spec.network, NetworkChoice::Create);
        assert_eq!(s.wait_timeout, Some(DEFAULT_WAIT_TIMEOUT));
    }

    #[test]
    fn missing_inputs_are_all_named_with_their_flags() {
        let e = BootstrapInputs::default().validate().unwrap_err();
        let text = e.to_string();
        for needle in [
            "--pool",
            "ECSCTL_POOL",
            "PREFECT_API_URL",
            "PREFECT_API_KEY",
            "--prefect-api-key-file",
        ] {
            assert!(text.contains(needle), "{needle} not in {text}");
        }
    }

    #[test]
    fn all_problems_are_reported_together() {
        let inputs = BootstrapInputs {
            cpu: Some(300),
            log_retention_days: Some(2),
            tags: vec!["novalue".into()],
            ..complete()
        };
        let e = inputs.validate().unwrap_err();
        assert_eq!(e.0.len(), 3, "{e}");
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
    fn api_keys() {
        assert_eq!(validate_api_key("pnu_x\n").unwrap().expose(), "pnu_x");
        for bad in ["", "\n", "pnu x", "pnu\tx", "a\nb"] {
            assert!(validate_api_key(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            format!("{:?}", validate_api_key("secret").unwrap()),
            "ApiKey(<redacted>)"
        );
    }

    #[test]
    fn fargate_sizes() {
        for (cpu, mem) in [
            (256, 512),
            (256, 2048),
            (512, 4096),
            (1024, 2048),
            (4096, 30720),
            (8192, 16384),
            (16384, 122880),
        ] {
            assert!(validate_task_size(cpu, mem).is_ok(), "{cpu}/{mem} rejected");
        }
        for (cpu, mem) in [
            (256, 4096),
            (512, 512),
            (1024, 1024),
            (4096, 31744),
            (8192, 18432),
            (300, 1024),
            (0, 0),
        ] {
            assert!(
                validate_task_size(cpu, mem).is_err(),
                "{cpu}/{mem} accepted"
            );
        }
    }

    #[test]
    fn given_inputs_are_checked_before_questions_fill_the_rest() {
        assert!(BootstrapInputs::default().validate_given().is_ok());
        let memory_only = BootstrapInputs {
            memory: Some(8192),
            ..Default::default()
        };
        assert!(memory_only.validate_given().is_ok());
        assert_eq!(cpu_sizes_for(Some(8192)), vec![1024, 2048, 4096]);
        assert_eq!(cpu_sizes_for(None), FARGATE_CPU_SIZES);
        for bad in [
            BootstrapInputs {
                tags: vec!["novalue".into()],
                ..Default::default()
            },
            BootstrapInputs {
                memory: Some(3000),
                ..Default::default()
            },
            BootstrapInputs {
                cpu: Some(300),
                ..Default::default()
            },
            BootstrapInputs {
                pool: Some("a b".into()),
                ..Default::default()
            },
            BootstrapInputs {
                no_wait: true,
                wait_timeout: Some("5m".into()),
                ..Default::default()
            },
        ] {
            let e = bad.clone().validate_given().unwrap_err();
            assert_eq!(e.0.len(), 1, "{bad:?}: {e}");
            assert!(!e.to_string().contains("missing"), "{e}");
        }
    }

    #[test]
    fn memory_without_cpu_keeps_the_default_cpu_or_takes_the_smallest_allowing_it() {
        let cpu_for = |memory| {
            BootstrapInputs {
                memory: Some(memory),
                ..complete()
            }
            .validate()
            .unwrap()
            .spec
            .cpu
        };
        assert_eq!(cpu_for(2048), 512);
        assert_eq!(cpu_for(8192), 1024);
        assert_eq!(cpu_for(512), 256);
        assert!(BootstrapInputs {
            memory: Some(3000),
            ..complete()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn cpu_without_memory_takes_the_smallest_valid_memory() {
        let s = BootstrapInputs {
            cpu: Some(2048),
            ..complete()
        }
        .validate()
        .unwrap();
        assert_eq!(s.spec.memory, 4096);
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
    fn no_wait_conflicts_with_wait_timeout() {
        let inputs = BootstrapInputs {
            no_wait: true,
            wait_timeout: Some("5m".into()),
            ..complete()
        };
        assert!(inputs
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--no-wait"));
    }

    #[test]
    fn regions() {
        for ok in ["us-east-1", "eu-west-2", "us-gov-west-1", "ap-southeast-3"] {
            assert!(validate_region(ok).is_ok(), "{ok}");
        }
        for bad in ["", "useast1", "us-east", "US-EAST-1", "us-east-1a", "us--1"] {
            assert!(validate_region(bad).is_err(), "{bad:?} accepted");
        }
        // A value from the environment is named by its variable, not by the flag.
        let e = validate_region_from("AWS_REGION", "moon-base").unwrap_err();
        assert!(e.0.starts_with("AWS_REGION 'moon-base'"), "{e}");
        let e = validate_endpoint_url_from("AWS_ENDPOINT_URL", "localhost:5000").unwrap_err();
        assert!(e.0.starts_with("AWS_ENDPOINT_URL 'localhost:5000'"), "{e}");
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
