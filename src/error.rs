//! The one error type of the library, with messages a user can act on.
//!
//! Retryability is decided here, once: callers ask [`Error::is_retryable`] instead of
//! inspecting messages.

/// Everything that can go wrong in the loader. Messages are lowercase and say what to
/// do; they never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Lambda event the handler does not understand.
    #[error("invalid event: {0}")]
    Event(String),
    /// A feature this build does not have yet.
    #[error("{0} is not available in this version of redshift-loader")]
    Unsupported(String),
}

impl Error {
    /// Whether running the same thing again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Event(_) | Error::Unsupported(_) => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A short, stable name for the kind of failure (Lambda's `errorType`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Event(_) => "InvalidEvent",
            Error::Unsupported(_) => "Unsupported",
        }
    }
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(e: Error) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.kind().to_string(),
            error_message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn bad_input_is_not_retryable() {
        assert!(!Error::Event("missing action".into()).is_retryable());
        assert_eq!(
            Error::Event("missing field `action`".into()).to_string(),
            "invalid event: missing field `action`"
        );
    }
}
