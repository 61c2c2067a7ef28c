//! A stand-in for the Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`), so the real
//! binary runs as it does inside Lambda: it polls `GET /2018-06-01/runtime/invocation/next`
//! for an event (with the request id, deadline and function ARN headers) and posts the
//! result to `/response` or `/error`.
//!
//! `invoke` queues an event and waits for the function's answer.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};

/// What the function answered for one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(serde_json::Value),
    /// The error document (`errorType`, `errorMessage`).
    Error(serde_json::Value),
}

struct Pending {
    id: String,
    payload: serde_json::Value,
    deadline_ms: u128,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Pending>,
    waiting: HashMap<String, oneshot::Sender<Outcome>>,
    init_error: Option<serde_json::Value>,
    /// When the function first asked for an event: the end of its init phase.
    first_poll: Option<Instant>,
}

pub struct RuntimeApi {
    port: u16,
    function_arn: String,
    state: Arc<Mutex<State>>,
    queued: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    /// Binds 127.0.0.1 on a free port; events carry `function_arn`.
    pub async fn start(function_arn: &str) -> Result<RuntimeApi> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State::default()));
        let queued = Arc::new(Notify::new());
        let arn = function_arn.to_string();
        let (s, q) = (state.clone(), queued.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (s, q, arn) = (s.clone(), q.clone(), arn.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (s, q, arn) = (s.clone(), q.clone(), arn.clone());
                        async move { Ok::<_, Infallible>(answer(req, &s, &q, &arn).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(RuntimeApi {
            port,
            function_arn: function_arn.to_string(),
            state,
            queued,
            task,
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn function_arn(&self) -> &str {
        &self.function_arn
    }

    /// Hands `payload` to the function with `time_limit` to run, and waits (at most
    /// `time_limit` plus a little) for its answer.
    pub async fn invoke(
        &self,
        payload: serde_json::Value,
        time_limit: Duration,
    ) -> Result<Outcome> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.state.lock().expect("runtime lock");
            state.waiting.insert(id.clone(), tx);
            state.queue.push_back(Pending {
                id,
                payload,
                deadline_ms: (now + time_limit).as_millis(),
            });
        }
        self.queued.notify_waiters();
        match tokio::time::timeout(time_limit + Duration::from_secs(30), rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(anyhow!("the runtime API dropped the invocation")),
            Err(_) => Err(anyhow!(
                "the function did not answer within {time_limit:?} (+30 s); init error: {:?}",
                self.init_error()
            )),
        }
    }

    /// When the function first polled `invocation/next`, i.e. when its init ended (as
    /// Lambda's `Init Duration` counts it).
    pub fn first_poll(&self) -> Option<Instant> {
        self.state.lock().expect("runtime lock").first_poll
    }

    /// What the function reported to `/runtime/init/error`, if it failed to start.
    pub fn init_error(&self) -> Option<serde_json::Value> {
        self.state.lock().expect("runtime lock").init_error.clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    req: Request<Incoming>,
    state: &Mutex<State>,
    queued: &Notify,
    arn: &str,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let rest = path.strip_prefix("/2018-06-01/runtime/");
    match (method, rest) {
        (Method::GET, Some("invocation/next")) => loop {
            state
                .lock()
                .expect("runtime lock")
                .first_poll
                .get_or_insert_with(Instant::now);
            // Register interest before looking, so a push between the two is not missed.
            let notified = queued.notified();
            let next = state.lock().expect("runtime lock").queue.pop_front();
            if let Some(p) = next {
                return Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "application/json")
                    .header("lambda-runtime-aws-request-id", &p.id)
                    .header("lambda-runtime-deadline-ms", p.deadline_ms.to_string())
                    .header("lambda-runtime-invoked-function-arn", arn)
                    .header("lambda-runtime-trace-id", format!("Root=1-{}", p.id))
                    .body(Full::new(Bytes::from(p.payload.to_string())))
                    .expect("valid response");
            }
            notified.await;
        },
        (Method::POST, Some(rest)) => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&body).into())
            });
            let mut state = state.lock().expect("runtime lock");
            if rest == "init/error" {
                state.init_error = Some(doc);
            } else if let Some((id, kind)) = rest
                .strip_prefix("invocation/")
                .and_then(|r| r.rsplit_once('/'))
            {
                let outcome = match kind {
                    "response" => Outcome::Response(doc),
                    "error" => Outcome::Error(doc),
                    _ => return status(StatusCode::NOT_FOUND),
                };
                match state.waiting.remove(id) {
                    Some(tx) => {
                        let _ = tx.send(outcome);
                    }
                    None => return status(StatusCode::BAD_REQUEST),
                }
            } else {
                return status(StatusCode::NOT_FOUND);
            }
            status(StatusCode::ACCEPTED)
        }
        _ => status(StatusCode::NOT_FOUND),
    }
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .body(Full::new(Bytes::new()))
        .expect("valid response")
}
