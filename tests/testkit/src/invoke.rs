//! A stand-in for the Lambda `Invoke` API that records what it is sent.
//!
//! moto's Lambda cannot record asynchronous invocations without Docker, so tests of
//! self re-invocation point `AWS_ENDPOINT_URL_LAMBDA` (or the Lambda client's endpoint)
//! here, then replay the recorded payloads into the handler.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One recorded `Invoke` call.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub function: String,
    /// `Event`, `RequestResponse` or `DryRun` (the `X-Amz-Invocation-Type` header;
    /// `RequestResponse` when absent, as in the real API).
    pub invocation_type: String,
    pub payload: serde_json::Value,
}

#[derive(Debug)]
pub struct InvokeRecorder {
    port: u16,
    recorded: Arc<Mutex<Vec<Invocation>>>,
    task: tokio::task::JoinHandle<()>,
}

impl InvokeRecorder {
    /// Binds 127.0.0.1 on a free port and serves on the current runtime.
    pub async fn start() -> Result<InvokeRecorder> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let shared = recorded.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(answer(req, &shared).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(InvokeRecorder {
            port,
            recorded,
            task,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything recorded so far, oldest first.
    pub fn recorded(&self) -> Vec<Invocation> {
        self.recorded.lock().expect("recorder lock").clone()
    }

    /// Removes and returns the invocations of `function`, oldest first. Tests sharing
    /// one recorder use distinct function names.
    pub fn take(&self, function: &str) -> Vec<Invocation> {
        let mut all = self.recorded.lock().expect("recorder lock");
        let (mine, rest): (Vec<_>, Vec<_>) = all.drain(..).partition(|i| i.function == function);
        *all = rest;
        mine
    }
}

impl Drop for InvokeRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    req: Request<Incoming>,
    recorded: &Mutex<Vec<Invocation>>,
) -> Response<Full<Bytes>> {
    // POST /2015-03-31/functions/{FunctionName}/invocations
    let function = req
        .uri()
        .path()
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|rest| rest.strip_suffix("/invocations"))
        .map(percent_decode);
    let Some(function) = function.filter(|_| req.method() == Method::POST) else {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "unknown route",
        );
    };
    let invocation_type = req
        .headers()
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse")
        .to_string();
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                "body",
            )
        }
    };
    let payload = if body.is_empty() {
        serde_json::Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    &format!("Could not parse request body into json: {e}"),
                )
            }
        }
    };
    let status = match invocation_type.as_str() {
        "Event" => StatusCode::ACCEPTED,
        "DryRun" => StatusCode::NO_CONTENT,
        _ => StatusCode::OK,
    };
    recorded.lock().expect("recorder lock").push(Invocation {
        function,
        invocation_type,
        payload,
    });
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::new()))
        .expect("valid response")
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "Type": "User", "message": message }).to_string();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-errortype", kind)
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

/// Function names and ARNs arrive percent-encoded (`:` as `%3A`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decode_handles_arns_and_plain_names() {
        assert_eq!(percent_decode("loader"), "loader");
        assert_eq!(
            percent_decode("arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Aloader"),
            "arn:aws:lambda:us-east-1:1:function:loader"
        );
        assert_eq!(percent_decode("trailing%3"), "trailing%3");
        assert_eq!(percent_decode("%"), "%");
    }
}
