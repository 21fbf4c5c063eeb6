//! The Prefect settings the tests hand to ecsctl. ecsctl never calls Prefect; it only checks
//! these and passes them on to the worker (the URL in the task definition, the key in a secret).

/// A Prefect Cloud workspace's API URL, as `prefect cloud login` sets `PREFECT_API_URL`.
pub const API_URL: &str = "https://api.prefect.cloud/api/accounts/0f9a1c2e-1111-2222-3333-444455556666/workspaces/9e8d7c6b-aaaa-bbbb-cccc-ddddeeeeffff";
/// A self-hosted Prefect server's API URL: where a test needs a second, different URL.
pub const SERVER_API_URL: &str = "http://prefect.internal:4200/api";
/// A planted API key: unusual enough that finding it in any output or file means a leak.
pub const API_KEY: &str = "pnu_planted_key_8c2f0e91d4";
