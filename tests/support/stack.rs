//! The usual test setup: an emulator, a recording proxy in front of it, an ecsctl runner that
//! talks to the proxy, and SDK clients that go straight to the emulator (so a test's own checks
//! are not recorded as ecsctl's calls). Test files add their own helpers with `impl Stack`.

use super::aws::Clients;
use super::cli::Ecsctl;
use super::emulator::Emulator;
use super::proxy::Proxy;

pub struct Stack {
    pub emulator: Emulator,
    pub proxy: Proxy,
    pub ecsctl: Ecsctl,
    pub aws: Clients,
}

impl Stack {
    pub async fn start() -> Stack {
        let emulator = Emulator::start();
        let proxy = Proxy::start(&emulator.endpoint());
        let ecsctl = Ecsctl::new(proxy.url());
        let aws = Clients::new(&emulator.endpoint()).await;
        // The emulator's first answer takes seconds; take that hit here, not inside a timeout.
        aws.sts.get_caller_identity().send().await.unwrap();
        Stack {
            emulator,
            proxy,
            ecsctl,
            aws,
        }
    }

    /// The actions of the mutating calls ecsctl made since the proxy was last cleared.
    pub fn mutating_actions(&self) -> Vec<String> {
        self.proxy
            .mutating_calls()
            .into_iter()
            .map(|c| c.action)
            .collect()
    }
}
