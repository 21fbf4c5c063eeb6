//! An HTTP/1 reverse proxy between ecsctl and the emulator that records every AWS call and can
//! inject faults (throttling, server errors, dropped connections) and latency. In front of any
//! other HTTP server (the Prefect server) it records plain REST calls the same way, as
//! `METHOD /path` (see [`Call::action`]).
//!
//! Beyond faults, it can play **AWS behaviours** the emulator lacks (see [`Behaviour`] and
//! `support/behaviours/`): answer a request the way AWS would at that moment (an id not yet
//! visible, a role not yet valid), or rewrite the emulator's answer (a deployment that failed).
//!
//! It runs on its own thread and runtime, so it keeps serving while a test blocks on a child
//! process, and works from sync and async tests alike.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::TcpListener as StdTcpListener;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A failure the proxy answers with instead of forwarding the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400 with the protocol's throttling error code, which the SDK retries.
    Throttle,
    /// HTTP 500 with the protocol's internal-error code.
    ServerError,
    /// Close the connection without answering.
    Drop,
    /// HTTP 403 with the protocol's access-denied code: a caller without the permission.
    AccessDenied,
}

/// One request as seen by the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Position among all requests since start (or the last [`Proxy::clear`]), from 0.
    pub index: usize,
    /// Signing name from the credential scope: `ecs`, `iam`, `ec2`, `secretsmanager`, `logs`, `sts`;
    /// `http` for a request without AWS credentials (a REST call, e.g. to Prefect).
    pub service: String,
    /// Operation name, e.g. `CreateCluster`; for a REST call the method and path without the
    /// query, e.g. `POST /api/work_pools/`.
    pub action: String,
    /// False for Describe*, List* and Get* operations; for a REST call, false for GET, HEAD and
    /// OPTIONS and for a POST to a path ending in `/filter` or `/count` (Prefect's reads that
    /// take a body, e.g. `POST /api/work_pools/P/workers/filter`).
    pub mutating: bool,
    /// HTTP status returned to the caller; `None` if the connection was dropped.
    pub status: Option<u16>,
    /// The injected fault, if any; faulted requests never reach the emulator.
    pub fault: Option<Fault>,
    /// The [`Behaviour`] that answered instead of the emulator, if one did (by its name).
    pub played_by: Option<&'static str>,
    /// When the proxy received the request, and when it answered (or dropped) it, including
    /// any added latency: the benchmark finds the chain of calls that waited on each other.
    pub started: Instant,
    pub finished: Instant,
    /// A hash of the request body (the operation's input; signatures live in headers), so two
    /// calls with the same action and digest asked the same question.
    pub body_digest: u64,
    /// The request body as text (a form, JSON or XML), e.g. to see which role a call was about.
    pub body: String,
}

/// A running proxy. Clones share the same recording and fault settings; the server stops when
/// the last clone is dropped.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
    url: String,
    _server: Arc<Server>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream` (e.g. the emulator endpoint).
    pub fn start(upstream: &str) -> Proxy {
        let listener = StdTcpListener::bind("127.0.0.1:0").expect("bind proxy port");
        listener
            .set_nonblocking(true)
            .expect("make listener non-blocking");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            // No pooled upstream connections: a pooled one that the emulator closed while idle
            // would surface as a spurious connection error that the test did not inject.
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build_http(),
            state: Mutex::default(),
            stalled: Condvar::new(),
        });
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::spawn({
            let shared = shared.clone();
            move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime")
                    .block_on(serve(listener, shared, stopped));
            }
        });
        Proxy {
            shared,
            url,
            _server: Arc::new(Server {
                stop: Some(stop),
                thread: Some(thread),
            }),
        }
    }

    /// Base URL to hand to ecsctl or an SDK client as the endpoint.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Every completed request so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        let mut calls = self.shared.state().calls.clone();
        calls.sort_by_key(|call| call.index);
        calls
    }

    /// The completed requests that could have changed something.
    pub fn mutating_calls(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|call| call.mutating)
            .collect()
    }

    /// Forgets recorded calls and restarts numbering at 0, so that [`Proxy::fail_nth`] can
    /// count from a point in the test. Faults and latency stay as they are.
    pub fn clear(&self) {
        let mut state = self.shared.state();
        state.calls.clear();
        state.next_index = 0;
        state.mutating_seen = 0;
    }

    /// Fails the request with this index (see [`Call::index`]) once.
    pub fn fail_nth(&self, index: usize, fault: Fault) {
        self.shared.state().nth.insert(index, fault);
    }

    /// Fails every request for `action` (e.g. `"CreateService"`) until [`Proxy::clear_faults`].
    pub fn fail_action(&self, action: &str, fault: Fault) {
        self.shared.state().actions.insert(action.to_owned(), fault);
    }

    /// Fails about `fraction` (0.0..=1.0) of all requests. Which ones is a pure function of
    /// `seed` and the request index, so a run can be repeated.
    pub fn fail_fraction(&self, fraction: f64, seed: u64, fault: Fault) {
        self.shared.state().random = Some(RandomFaults {
            fraction,
            seed,
            fault,
        });
    }

    /// Fails every mutating request whose ordinal among mutating requests (counting from 0
    /// since start or [`Proxy::clear`]) is `n` or more, until [`Proxy::clear_faults`]; reads
    /// still pass. That is AWS refusing every change from call `n` on, retries included (each
    /// retry is a new request with a later ordinal), so the call at `n` fails for good.
    pub fn fail_mutating_from(&self, n: usize, fault: Fault) {
        self.shared.state().mutating_from = Some((n, fault));
    }

    /// Removes all pending and persistent faults.
    pub fn clear_faults(&self) {
        let mut state = self.shared.state();
        state.nth.clear();
        state.actions.clear();
        state.random = None;
        state.mutating_from = None;
    }

    /// Lets the `n`th mutating request (counting from 0 since start or [`Proxy::clear`]) reach the
    /// emulator, then never answers it: the resource exists but the caller never hears so.
    /// That is the moment a killed run leaves something created but not yet recorded.
    pub fn stall_mutating(&self, n: usize) {
        let mut state = self.shared.state();
        state.stall_at = Some(n);
        state.stalled = false;
    }

    /// Blocks until the stalled request has reached the emulator; false if `timeout` passes first.
    pub fn wait_for_stall(&self, timeout: Duration) -> bool {
        let state = self.shared.state();
        let (state, _) = self
            .shared
            .stalled
            .wait_timeout_while(state, timeout, |s| !s.stalled)
            .expect("proxy state lock");
        state.stalled
    }

    /// Delays every request by `latency` before answering it, like a distant AWS region.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.state().latency = latency;
    }

    /// Plays `behaviour` on every later request, after the ones added before it, until
    /// [`Proxy::stop_behaviours`]. Faults take precedence: a faulted request is not shown to it.
    pub fn play(&self, behaviour: impl Behaviour + 'static) {
        self.shared.state().behaviours.push(Arc::new(behaviour));
    }

    /// Stops every behaviour added with [`Proxy::play`].
    pub fn stop_behaviours(&self) {
        self.shared.state().behaviours.clear();
    }
}

/// Something real AWS does that the emulator does not, played by the proxy (see
/// `support/behaviours/`). Both hooks see every request that is not faulted, in arrival order,
/// on the proxy's thread: keep them quick, and keep what they remember (what was created, how
/// often something was asked) behind a `Mutex` inside.
pub trait Behaviour: Send + Sync {
    /// A short name, recorded in [`Call::played_by`] when [`Behaviour::answer`] answers.
    fn name(&self) -> &'static str;

    /// Answers `request` instead of the emulator (AWS's answer at that moment), or `None` to let
    /// it through. The first behaviour that answers wins; the emulator never sees the request.
    fn answer(&self, _request: &Exchange) -> Option<Answer> {
        None
    }

    /// Sees, and may rewrite, the emulator's answer to `request`.
    fn rewrite(&self, _request: &Exchange, _answer: &mut Answer) {}
}

/// A request as a [`Behaviour`] sees it.
pub struct Exchange {
    /// Signing name (`ecs`, `ec2`, …) or `http`, as in [`Call::service`].
    pub service: String,
    /// Operation name (`CreateVpc`), as in [`Call::action`].
    pub action: String,
    /// The request body: JSON for awsJson services, a form for IAM, STS and EC2.
    pub body: String,
    protocol: Protocol,
}

impl Exchange {
    /// The body as JSON (awsJson services: ECS, Secrets Manager, Logs, SQS, …); `Null` otherwise.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// An AWS error shaped for this request's protocol, as the SDK parses it: `code` is the
    /// error code (`InvalidVpcID.NotFound`, `ClientException`), `status` its HTTP status.
    pub fn error(&self, status: u16, code: &str, message: &str) -> Answer {
        let status = StatusCode::from_u16(status).expect("a valid HTTP status");
        aws_error(self.protocol, status, [code; 3], message)
    }
}

/// An HTTP answer a [`Behaviour`] makes or rewrites.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (awsJson answers); `Null` if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Replaces the body with `value`.
    pub fn set_json(&mut self, value: &serde_json::Value) {
        self.body = Bytes::from(value.to_string());
        self.headers.remove(hyper::header::CONTENT_LENGTH);
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

/// Stops the server thread when the last [`Proxy`] clone goes away.
struct Server {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A panic on the proxy thread would already have failed the requests it served.
            let _ = thread.join();
        }
    }
}

struct Shared {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    state: Mutex<State>,
    /// Signalled when a request stalled by [`Proxy::stall_mutating`] has been forwarded.
    stalled: Condvar,
}

#[derive(Default)]
struct State {
    next_index: usize,
    calls: Vec<Call>,
    nth: BTreeMap<usize, Fault>,
    actions: HashMap<String, Fault>,
    random: Option<RandomFaults>,
    /// From [`Proxy::fail_mutating_from`]: the first failing mutating ordinal, and how.
    mutating_from: Option<(usize, Fault)>,
    latency: Duration,
    mutating_seen: usize,
    stall_at: Option<usize>,
    stalled: bool,
    behaviours: Vec<Arc<dyn Behaviour>>,
}

struct RandomFaults {
    fraction: f64,
    seed: u64,
    fault: Fault,
}

impl RandomFaults {
    fn hits(&self, index: usize) -> bool {
        // splitmix64: a well-mixed hash of (seed, index), mapped to [0, 1).
        let mut z = self.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) < self.fraction
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("proxy state lock")
    }

    /// Numbers a new request and decides whether it is faulted or stalled.
    fn admit(&self, action: &str, mutating: bool) -> (usize, Option<Fault>, Duration, bool) {
        let mut state = self.state();
        let index = state.next_index;
        state.next_index += 1;
        let mut stall = false;
        // This request's ordinal among mutating requests, if it is one.
        let mutating_ordinal = mutating.then_some(state.mutating_seen);
        if mutating {
            stall = state.stall_at == Some(state.mutating_seen);
            state.mutating_seen += 1;
            if stall {
                state.stall_at = None;
            }
        }
        let fault = state
            .nth
            .remove(&index)
            .or_else(|| state.actions.get(action).copied())
            .or_else(|| {
                let (from, fault) = state.mutating_from?;
                (mutating_ordinal? >= from).then_some(fault)
            })
            .or_else(|| {
                let random = state.random.as_ref()?;
                random.hits(index).then_some(random.fault)
            });
        (index, fault, state.latency, stall && fault.is_none())
    }
}

async fn serve(listener: StdTcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let listener = TcpListener::from_std(listener).expect("register proxy listener");
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => panic!("proxy accept failed: {e}"),
            },
            _ = &mut stop => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(shared.clone(), request));
            // Errors are dropped-connection faults or callers hanging up: nothing to report.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let op = Operation::parse(&parts.method, parts.uri.path(), &parts.headers, &body);
    let body_digest = {
        let mut hasher = DefaultHasher::new();
        body.hash(&mut hasher);
        hasher.finish()
    };
    // Ordinals count changes to the stack: ecsctl's own lock and ledger copy in SSM come and go
    // with timing, so they are neither counted nor refused or stalled by ordinal.
    let counted = op.mutating && op.service != "ssm";
    let (index, fault, latency, stall) = shared.admit(&op.action, counted);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let exchange = Exchange {
        service: op.service,
        action: op.action,
        body: String::from_utf8_lossy(&body).into_owned(),
        protocol: op.protocol,
    };
    let mut played_by = None;
    let response = match fault {
        None => {
            let behaviours = shared.state().behaviours.clone();
            let played = behaviours
                .iter()
                .find_map(|b| Some((b.name(), b.answer(&exchange)?)));
            let answer = match played {
                Some((name, answer)) => {
                    played_by = Some(name);
                    answer
                }
                None => {
                    let request = Request::from_parts(parts, Full::new(body));
                    let mut answer = forward(&shared, request).await;
                    for behaviour in &behaviours {
                        behaviour.rewrite(&exchange, &mut answer);
                    }
                    answer
                }
            };
            Some(answer.into_response())
        }
        Some(Fault::Drop) => None,
        Some(fault) => Some(error_response(fault, op.protocol)),
    };
    shared.state().calls.push(Call {
        index,
        mutating: op.mutating,
        service: exchange.service,
        action: exchange.action,
        status: response.as_ref().map(|r| r.status().as_u16()),
        fault,
        played_by,
        started,
        finished: Instant::now(),
        body_digest,
        body: exchange.body,
    });
    if stall {
        shared.state().stalled = true;
        shared.stalled.notify_all();
        // Hold the answer until the caller goes away (hyper then drops this future).
        std::future::pending::<()>().await;
    }
    // Returning an error makes hyper close the connection without a response.
    response.ok_or_else(|| std::io::Error::other("injected fault: dropped connection"))
}

/// AWS reads are Describe*, List* and Get* (including STS `GetCallerIdentity`); all else may mutate.
fn is_mutating(action: &str) -> bool {
    !["Describe", "List", "Get"]
        .iter()
        .any(|prefix| action.starts_with(prefix))
}

/// Sends the request to the emulator; an unreachable emulator becomes a 502.
async fn forward(shared: &Shared, mut request: Request<Full<Bytes>>) -> Answer {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = format!("{}{path}", shared.upstream)
        .parse()
        .expect("upstream URL");
    let result = async {
        let response = shared.client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        anyhow::Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    result.await.unwrap_or_else(|e| Answer {
        status: StatusCode::BAD_GATEWAY,
        headers: HeaderMap::new(),
        body: Bytes::from(format!("proxy: upstream failed: {e:#}")),
    })
}

/// REST reads: GET, HEAD, OPTIONS, and a POST whose body is a query (Prefect's `…/filter` and
/// `…/count` endpoints).
fn is_rest_write(method: &Method, path: &str) -> bool {
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => false,
        Method::POST => !(path.ends_with("/filter") || path.ends_with("/count")),
        _ => true,
    }
}

/// The wire protocol decides how errors must be shaped for the SDK to recognise them. These are
/// the only three the six SDK crates speak (none uses rpcv2Cbor with `/service/S/operation/O`),
/// plus plain REST with JSON for anything that is not AWS.
#[derive(Clone, Copy)]
enum Protocol {
    /// awsJson 1.x: operation in `X-Amz-Target` (ECS, Secrets Manager, CloudWatch Logs).
    Json,
    /// awsQuery: `Action=` in a form body (IAM, STS).
    Query,
    /// ec2Query: like awsQuery, with EC2's own error envelope.
    Ec2,
    /// Not AWS (no SigV4 credential): a REST API answering errors as `{"detail": …}`, as
    /// Prefect's does.
    Rest,
}

struct Operation {
    service: String,
    action: String,
    protocol: Protocol,
    mutating: bool,
}

impl Operation {
    fn parse(method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Operation {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        // `Credential=AKID/20240101/us-east-1/ecs/aws4_request, SignedHeaders=...`
        let Some(service) = header("authorization")
            .and_then(|auth| auth.split("Credential=").nth(1))
            .and_then(|scope| scope.split('/').nth(3))
        else {
            return Operation {
                service: "http".to_owned(),
                action: format!("{method} {path}"),
                protocol: Protocol::Rest,
                mutating: is_rest_write(method, path),
            };
        };
        let service = service.to_owned();
        let (action, protocol) = match header("x-amz-target") {
            // `AmazonEC2ContainerServiceV20141113.CreateCluster`
            Some(target) => (target.rsplit('.').next().map(str::to_owned), Protocol::Json),
            // `Action=CreateRole&Version=2010-05-08&...`
            None => (
                url::form_urlencoded::parse(body)
                    .find(|(key, _)| key == "Action")
                    .map(|(_, value)| value.into_owned()),
                if service == "ec2" {
                    Protocol::Ec2
                } else {
                    Protocol::Query
                },
            ),
        };
        let action = action.unwrap_or_else(|| "unknown".to_owned());
        Operation {
            mutating: is_mutating(&action),
            action,
            service,
            protocol,
        }
    }
}

fn error_response(fault: Fault, protocol: Protocol) -> Response<Full<Bytes>> {
    // (status, [awsJson code, awsQuery code, ec2Query code], message)
    let (status, codes, message) = match fault {
        Fault::Throttle => (
            StatusCode::BAD_REQUEST,
            ["ThrottlingException", "Throttling", "RequestLimitExceeded"],
            "Rate exceeded",
        ),
        Fault::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            ["InternalFailure", "InternalFailure", "InternalError"],
            "Injected server error",
        ),
        Fault::AccessDenied => (
            StatusCode::FORBIDDEN,
            [
                "AccessDeniedException",
                "AccessDenied",
                "UnauthorizedOperation",
            ],
            "User is not authorized to perform this operation",
        ),
        Fault::Drop => unreachable!("dropped connections have no response"),
    };
    // What a REST server says when it throttles: 429.
    let status = match (protocol, fault) {
        (Protocol::Rest, Fault::Throttle) => StatusCode::TOO_MANY_REQUESTS,
        _ => status,
    };
    aws_error(protocol, status, codes, message).into_response()
}

/// An error answer in `protocol`'s envelope; `codes` are its awsJson, awsQuery and ec2Query codes.
fn aws_error(protocol: Protocol, status: StatusCode, codes: [&str; 3], message: &str) -> Answer {
    let [json, query, ec2] = codes;
    let mut headers = HeaderMap::new();
    let mut content_type = |value: &'static str| {
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(value),
        )
    };
    let body = match protocol {
        Protocol::Rest => {
            content_type("application/json");
            format!(r#"{{"detail":"{message}"}}"#)
        }
        Protocol::Json => {
            content_type("application/x-amz-json-1.1");
            headers.insert(
                "x-amzn-ErrorType",
                json.parse().expect("an error code is a header value"),
            );
            format!(r#"{{"__type":"{json}","message":"{message}"}}"#)
        }
        Protocol::Query => {
            content_type("text/xml");
            let kind = if status.is_client_error() {
                "Sender"
            } else {
                "Receiver"
            };
            format!(
                "<ErrorResponse><Error><Type>{kind}</Type><Code>{query}</Code>\
                 <Message>{message}</Message></Error><RequestId>x</RequestId></ErrorResponse>"
            )
        }
        Protocol::Ec2 => {
            content_type("text/xml");
            format!(
                "<Response><Errors><Error><Code>{ec2}</Code><Message>{message}</Message>\
                 </Error></Errors><RequestID>x</RequestID></Response>"
            )
        }
    };
    Answer {
        status,
        headers,
        body: Bytes::from(body),
    }
}
