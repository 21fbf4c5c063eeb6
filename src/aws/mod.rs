//! AWS SDK clients from aws-config. Beside them: [`error`], AWS errors kept typed (the code decides,
//! never the text); [`messages`], the few cases where AWS says what happened only in words; and
//! [`ecs`], ECS's answers as plain data shared by the steps and `status`.

pub mod ecs;
pub mod error;
pub mod messages;

use std::time::Duration;

use anyhow::anyhow;
use aws_config::meta::region::ProvideRegion;
use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls;

use crate::config::InputError;
pub use error::{is_code, AwsResultExt};

/// Where to send calls, as given on the command line (the SDK reads the environment itself).
#[derive(Debug, Clone, Default)]
pub struct AwsTarget {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
}

/// One client per service, sharing one connection pool and retry policy.
#[derive(Debug, Clone)]
pub struct Aws {
    pub ecs: aws_sdk_ecs::Client,
    pub iam: aws_sdk_iam::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub sts: aws_sdk_sts::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub region: String,
}

/// The account and region a run works in; together with the pool they name the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    pub region: String,
    pub partition: String,
}

/// Loads the SDK configuration. Makes no AWS call; fails (as bad input) only when no region is set.
pub async fn connect(target: &AwsTarget) -> Result<Aws, InputError> {
    // One TLS stack (rustls + ring) keeps the build small and needs no C toolchain beyond gcc.
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client.clone())
        // Throttling storms and flaky networks are survivable with more, shorter-spaced attempts.
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(max_attempts())
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_secs(5)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        );
    let Some(region) = region(target).await else {
        return Err(InputError(
            "no AWS region: pass --region, set AWS_REGION, or set a region in your AWS profile"
                .into(),
        ));
    };
    if let Some(profile) = &target.profile {
        // A chosen profile wins over keys in the environment, as with the aws CLI's --profile
        // (the SDK's default chain would try the environment's keys first).
        let provider_config = ProviderConfig::default()
            .with_http_client(http_client.clone())
            .with_region(Some(Region::new(region.clone())));
        loader = loader.profile_name(profile).credentials_provider(
            ProfileFileCredentialsProvider::builder()
                .configure(&provider_config)
                .profile_name(profile)
                .build(),
        );
    }
    loader = loader.region(Region::new(region.clone()));
    if let Some(url) = &target.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let config: SdkConfig = loader.load().await;
    Ok(Aws {
        ecs: aws_sdk_ecs::Client::new(&config),
        iam: aws_sdk_iam::Client::new(&config),
        ec2: aws_sdk_ec2::Client::new(&config),
        secrets: aws_sdk_secretsmanager::Client::new(&config),
        logs: aws_sdk_cloudwatchlogs::Client::new(&config),
        sqs: aws_sdk_sqs::Client::new(&config),
        events: aws_sdk_eventbridge::Client::new(&config),
        sts: aws_sdk_sts::Client::new(&config),
        ssm: aws_sdk_ssm::Client::new(&config),
        region,
    })
}

/// The region: `--region`; else a chosen profile's; else `AWS_REGION` or `AWS_DEFAULT_REGION`
/// (an empty one counts as unset, as for the aws CLI); else the default profile's.
async fn region(target: &AwsTarget) -> Option<String> {
    let of_profile = |name: Option<&str>| {
        let mut provider = ProfileFileRegionProvider::builder();
        if let Some(name) = name {
            provider = provider.profile_name(name);
        }
        async move { provider.build().region().await.map(|r| r.to_string()) }
    };
    if let Some(region) = &target.region {
        return Some(region.clone());
    }
    if let Some(profile) = &target.profile {
        if let Some(region) = of_profile(Some(profile)).await {
            return Some(region);
        }
    }
    let env = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|r| !r.trim().is_empty()));
    match env {
        Some(region) => Some(region),
        None => of_profile(None).await,
    }
}

/// SDK attempts per call (the first try included). `ECSCTL_MAX_ATTEMPTS` (1-20) overrides the
/// default of 8; tests that make AWS refuse a call for good set it low, so that each such call
/// fails in a fraction of a second instead of after eight attempts with up to 5 s between them.
/// An unusable value is ignored: this is a tuning knob, not an input that can be wrong.
fn max_attempts() -> u32 {
    std::env::var("ECSCTL_MAX_ATTEMPTS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| (1..=20).contains(n))
        .unwrap_or(8)
}

impl Aws {
    /// Who we are. Wrong credentials are not retried at all; a wrong endpoint (connection
    /// refused) is, like throttling, so the waits stay short: it fails within seconds, while a
    /// throttling storm already raging at this first call is still ridden out.
    pub async fn identity(&self) -> anyhow::Result<Identity> {
        let out = self
            .sts
            .get_caller_identity()
            .customize()
            .config_override(aws_sdk_sts::config::Config::builder().retry_config(
                RetryConfig::standard()
                    .with_max_attempts(max_attempts())
                    .with_initial_backoff(Duration::from_millis(100))
                    .with_max_backoff(Duration::from_secs(1)),
            ))
            .send()
            .await
            .aws("checking the AWS credentials (sts:GetCallerIdentity)")
            .map_err(|e| {
                e.context(
                    "check your credentials (aws configure / AWS_PROFILE), --region and --endpoint-url",
                )
            })?;
        let account = out
            .account()
            .ok_or_else(|| anyhow!("sts:GetCallerIdentity returned no account"))?
            .to_string();
        let partition = out
            .arn()
            .and_then(partition_of_arn)
            .ok_or_else(|| {
                anyhow!("sts:GetCallerIdentity returned no ARN to take the partition from")
            })?
            .to_string();
        Ok(Identity {
            account,
            partition,
            region: self.region.clone(),
        })
    }
}

/// An SDK timestamp as a `time` value (whole seconds are all AWS's consoles show).
pub fn time_of(t: Option<&aws_smithy_types::DateTime>) -> Option<time::OffsetDateTime> {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.secs()).ok())
}

/// The partition of an ARN (`arn:<partition>:…`). The caller's own ARN says which partition the
/// account is in; a region's prefix does not (new partitions such as `aws-eusc` keep appearing).
fn partition_of_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    match (parts.next(), parts.next()) {
        (Some("arn"), Some(partition)) if !partition.is_empty() => Some(partition),
        _ => None,
    }
}

/// The domain of a partition's endpoints (botocore's `partitions.json`, `dnsSuffix`).
pub fn dns_suffix(partition: &str) -> &'static str {
    match partition {
        "aws-cn" => "amazonaws.com.cn",
        "aws-eusc" => "amazonaws.eu",
        "aws-iso" => "c2s.ic.gov",
        "aws-iso-b" => "sc2s.sgov.gov",
        "aws-iso-e" => "cloud.adc-e.uk",
        "aws-iso-f" => "csp.hci.ic.gov",
        _ => "amazonaws.com",
    }
}

#[cfg(test)]
mod tests {
    use super::partition_of_arn;

    #[test]
    fn the_partition_is_read_from_the_callers_arn() {
        for (arn, partition) in [
            ("arn:aws:sts::123456789012:assumed-role/r/s", Some("aws")),
            ("arn:aws-cn:iam::123456789012:user/u", Some("aws-cn")),
            (
                "arn:aws-eusc:sts::123456789012:assumed-role/r/s",
                Some("aws-eusc"),
            ),
            ("arn::iam::1:user/u", None),
            ("not-an-arn", None),
        ] {
            assert_eq!(partition_of_arn(arn), partition, "{arn}");
        }
    }
}
