//! Real AWS SDK clients for arranging and checking state in the emulator, independent of ecsctl.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_sts::config::Credentials;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// Region every test uses unless it says otherwise.
pub const REGION: &str = "us-east-1";
/// Static credentials; the emulator accepts any.
pub const ACCESS_KEY_ID: &str = "testing";
pub const SECRET_ACCESS_KEY: &str = "testing";

/// One client per service ecsctl touches, all sharing one endpoint, region and credentials.
#[derive(Clone, Debug)]
pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub iam: aws_sdk_iam::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub sts: aws_sdk_sts::Client,
    /// Where ecsctl keeps each pool's lock and ledger copy.
    pub ssm: aws_sdk_ssm::Client,
}

impl Clients {
    /// Clients for `endpoint` (the emulator, or a proxy in front of it) in [`REGION`].
    pub async fn new(endpoint: &str) -> Clients {
        Clients::with_region(endpoint, REGION).await
    }

    pub async fn with_region(endpoint: &str, region: &str) -> Clients {
        // The same TLS stack as ecsctl (rustls + ring), so tests add no second one to the build.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .endpoint_url(endpoint)
            .region(Region::new(region.to_owned()))
            .credentials_provider(Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "ecsctl-tests",
            ))
            .load()
            .await;
        Clients {
            ecs: aws_sdk_ecs::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            events: aws_sdk_eventbridge::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
        }
    }

    /// A new internet gateway attached to `vpc`.
    pub async fn attached_internet_gateway(&self, vpc: &str) -> String {
        let gateway = self.ec2.create_internet_gateway().send().await.unwrap();
        let gateway = gateway
            .internet_gateway()
            .unwrap()
            .internet_gateway_id()
            .unwrap();
        (self.ec2.attach_internet_gateway())
            .internet_gateway_id(gateway)
            .vpc_id(vpc)
            .send()
            .await
            .unwrap();
        gateway.to_owned()
    }
}
