//! The Prefect REST API, as far as ecsctl uses it: the work pool and its workers. Like [`crate::aws`],
//! errors keep what we were doing and what Prefect answered (the HTTP status decides, not the text).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::config::ApiKey;

pub mod template;

/// How a run authenticates to Prefect.
#[derive(Clone)]
pub enum Auth {
    /// Prefect Cloud (or a server behind a key): `Authorization: Bearer <key>`.
    Key(ApiKey),
    /// A self-hosted server with basic auth: `PREFECT_API_AUTH_STRING` as `user:password`.
    AuthString(ApiKey),
}

/// A client of one Prefect API (a Cloud workspace or a server).
#[derive(Clone)]
pub struct Prefect {
    http: reqwest::Client,
    api_url: String,
    auth: Option<Auth>,
}

/// A work pool as Prefect describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkPool {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub base_job_template: Value,
    #[serde(default)]
    pub is_paused: bool,
}

/// A worker polling a pool.
#[derive(Debug, Clone, Deserialize)]
pub struct Worker {
    pub name: String,
    /// `ONLINE` or `OFFLINE`.
    pub status: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_heartbeat_time: Option<OffsetDateTime>,
    #[serde(default)]
    pub heartbeat_interval_seconds: Option<i64>,
}

/// A failed Prefect call: what we were doing, the HTTP status (when an answer came) and Prefect's words.
#[derive(Debug)]
pub struct PrefectError {
    pub doing: String,
    pub status: Option<u16>,
    pub detail: String,
}

impl fmt::Display for PrefectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} failed: HTTP {status}: {}", self.doing, self.detail),
            None => write!(f, "{} failed: {}", self.doing, self.detail),
        }
    }
}

impl std::error::Error for PrefectError {}

/// Whether an error is a Prefect answer with this HTTP status.
pub fn is_status(e: &anyhow::Error, status: u16) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<PrefectError>())
        .any(|p| p.status == Some(status))
}

/// Tries per call: connection failures, 429 and 5xx are retried with backoff (0.2 s doubling to
/// 3.2 s, about 6 s in all: a busy server's 503s pass; a dead one fails in seconds).
const ATTEMPTS: u32 = 6;

impl Prefect {
    pub fn new(api_url: &str, auth: Option<Auth>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            api_url: api_url.trim_end_matches('/').to_string(),
            auth,
        })
    }

    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The pool, or `None` when Prefect has none by that name.
    pub async fn work_pool(&self, name: &str) -> anyhow::Result<Option<WorkPool>> {
        let doing = format!("reading Prefect work pool {name}");
        match self
            .call(reqwest::Method::GET, &pool_path(name), None, &doing)
            .await
        {
            Ok(v) => Ok(Some(serde_json::from_value(v)?)),
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates an ECS pool with this base job template.
    pub async fn create_work_pool(&self, name: &str, template: &Value) -> anyhow::Result<()> {
        let body = json!({ "name": name, "type": "ecs", "base_job_template": template });
        let doing = format!("creating Prefect work pool {name}");
        self.call(reqwest::Method::POST, "/work_pools/", Some(&body), &doing)
            .await
            .map(drop)
    }

    /// Replaces the pool's whole base job template (Prefect has no partial update of it).
    pub async fn update_template(&self, name: &str, template: &Value) -> anyhow::Result<()> {
        let body = json!({ "base_job_template": template });
        let doing = format!("updating the job template of Prefect work pool {name}");
        self.call(
            reqwest::Method::PATCH,
            &pool_path(name),
            Some(&body),
            &doing,
        )
        .await
        .map(drop)
    }

    /// Deletes the pool; `false` when it was already gone.
    pub async fn delete_work_pool(&self, name: &str) -> anyhow::Result<bool> {
        let doing = format!("deleting Prefect work pool {name}");
        match self
            .call(reqwest::Method::DELETE, &pool_path(name), None, &doing)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_status(&e, 404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The ECS base job template the server offers for new pools (prefect-aws's, as the server
    /// knows it; an offline server serves the copy it shipped with).
    pub async fn ecs_default_template(&self) -> anyhow::Result<Value> {
        let doing = "reading the ECS job template Prefect offers";
        let metadata = self
            .call(
                reqwest::Method::GET,
                "/collections/views/aggregate-worker-metadata",
                None,
                doing,
            )
            .await?;
        metadata
            .pointer("/prefect-aws/ecs/default_base_job_configuration")
            .cloned()
            .ok_or_else(|| {
                anyhow::anyhow!("{doing}: the server lists no ECS worker (prefect-aws) template")
            })
    }

    /// The pool's workers, online or not.
    pub async fn workers(&self, pool: &str) -> anyhow::Result<Vec<Worker>> {
        let doing = format!("listing the workers of Prefect work pool {pool}");
        let path = format!("{}/workers/filter", pool_path(pool));
        let body = json!({ "limit": 200 });
        let listed = self
            .call(reqwest::Method::POST, &path, Some(&body), &doing)
            .await?;
        Ok(serde_json::from_value(listed)?)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        doing: &str,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.api_url);
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            let mut request = self.http.request(method.clone(), &url);
            request = match &self.auth {
                Some(Auth::Key(key)) => request.bearer_auth(key.expose()),
                Some(Auth::AuthString(auth)) => {
                    let (user, password) =
                        auth.expose().split_once(':').unwrap_or((auth.expose(), ""));
                    request.basic_auth(user, Some(password))
                }
                None => request,
            };
            if let Some(body) = body {
                request = request.json(body);
            }
            let failure = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    let text = response.text().await.unwrap_or_default();
                    return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let detail = response.text().await.unwrap_or_default();
                    PrefectError {
                        doing: doing.to_string(),
                        status: Some(status),
                        detail: detail_of(&detail),
                    }
                }
                Err(e) => PrefectError {
                    doing: doing.to_string(),
                    status: None,
                    detail: error_chain(&e),
                },
            };
            let transient = failure.status.is_none_or(|s| s == 429 || s >= 500);
            if !transient || attempt == ATTEMPTS {
                return Err(failure.into());
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        unreachable!("the last attempt returns")
    }
}

/// What a path segment escapes: everything but RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn pool_path(name: &str) -> String {
    format!(
        "/work_pools/{}",
        percent_encoding::utf8_percent_encode(name, SEGMENT)
    )
}

/// Prefect's `{"detail": …}`, or the body as it came.
fn detail_of(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("detail")
                .map(|d| d.as_str().map_or(d.to_string(), str::to_string))
        })
        .unwrap_or_else(|| body.trim().chars().take(300).collect())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Whether a worker log line says its ECS observer failed (prefect-aws's own words): crashed,
/// gave up polling, or found no queue.
pub fn observer_trouble(line: &str) -> bool {
    [
        "ECS observer task crashed",
        "ECS observer has crashed",
        "SQS polling exceeded maximum backoff attempts",
        "This worker will continue to submit ECS tasks, but event replication",
    ]
    .iter()
    .any(|words| line.contains(words))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observer_in_trouble_is_recognised_in_the_workers_words() {
        assert!(observer_trouble(
            "12:00:01.000 | ERROR | prefect_aws.observers.ecs - ECS observer task crashed"
        ));
        assert!(observer_trouble(
            "ECS observer has crashed 6 times, giving up on automatic restarts"
        ));
        assert!(observer_trouble("SQS queue 'q' does not exist in region 'r'. This worker will continue to submit ECS tasks, but event replication and crash detection will not work."));
        assert!(!observer_trouble("Worker 'ECSWorker 7c0e' started!"));
    }

    #[test]
    fn pool_names_are_escaped_in_paths() {
        assert_eq!(pool_path("my pool"), "/work_pools/my%20pool");
        assert_eq!(pool_path("p-1_x"), "/work_pools/p-1_x");
    }

    #[test]
    fn prefects_detail_is_what_an_error_says() {
        assert_eq!(
            detail_of(r#"{"detail":"Work pool not found."}"#),
            "Work pool not found."
        );
        assert_eq!(detail_of("Internal Server Error"), "Internal Server Error");
    }
}
