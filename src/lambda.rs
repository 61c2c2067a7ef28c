//! The AWS Lambda front door: builds clients once per container, then serves events.

use std::process::ExitCode;

use lambda_runtime::{service_fn, LambdaEvent};
use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;

/// The common envelope of every event: `{"action": "...", ...}`.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub action: String,
}

/// Parses an event's envelope, naming what is wrong with it.
pub fn parse_envelope(payload: &Value) -> Result<Envelope, Error> {
    Envelope::deserialize(payload).map_err(|e| Error::Event(e.to_string()))
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let envelope = parse_envelope(&event.payload)?;
    Err(Error::Unsupported(format!("action {:?}", envelope.action)))
}

/// Runs the Lambda runtime loop until the container is shut down.
pub fn main() -> ExitCode {
    crate::logging::init(true);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(lambda_runtime::run(service_fn(handler))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_envelope;
    use serde_json::json;

    #[test]
    fn envelope_names_the_missing_field() {
        let err = parse_envelope(&json!({"job": "shop"})).unwrap_err();
        assert_eq!(err.to_string(), "invalid event: missing field `action`");
        assert_eq!(
            parse_envelope(&json!({"action": "run"})).unwrap().action,
            "run"
        );
    }
}
