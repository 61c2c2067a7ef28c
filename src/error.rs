//! The one error type of the library, with messages a user can act on.
//!
//! Each boundary has its own error (config, secrets, connections, state, ...); they
//! meet here. Retryability is decided here, once: callers ask
//! [`Error::is_retryable`] instead of inspecting messages.

use crate::aws::{BadSettings, MissingSetting};
use crate::config::ConfigErrors;
use crate::connect::ConnectError;
use crate::diagnose::Class;
use crate::secrets::SecretError;
use crate::state::StateError;

/// Everything that can go wrong in the loader. Messages are lowercase and say what to
/// do; they never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Lambda event the handler does not understand.
    #[error("invalid event: {0}")]
    Event(String),
    /// Work that ran and failed; the message says what and why.
    #[error("{0}")]
    Failed(String),
    /// A command line that cannot work as given.
    #[error("{0}")]
    Usage(String),
    /// A feature this build does not have yet.
    #[error("{0} is not available in this version of redshift-loader")]
    Unsupported(String),
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    Setting(#[from] MissingSetting),
    #[error(transparent)]
    BadSettings(#[from] BadSettings),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl Error {
    /// Whether running the same thing again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Event(_)
            | Error::Usage(_)
            | Error::Failed(_)
            | Error::Unsupported(_)
            | Error::File { .. }
            | Error::Config(_)
            | Error::Setting(_)
            | Error::BadSettings(_) => false,
            Error::Secret(e) => {
                matches!(e, SecretError::Unreadable { error, .. } if error.is_retryable())
            }
            // Refused connections and server-side trouble pass; auth and TLS do not.
            Error::Connect(ConnectError::Connect { code, class, .. }) => match code {
                Some(code) => {
                    code.starts_with("08") || code.starts_with("53") || code.starts_with("57P")
                }
                None => matches!(class, Class::Refused | Class::Unreachable),
            },
            Error::Connect(ConnectError::TlsSettings { .. }) => false,
            Error::State(e) => e.is_retryable(),
        }
    }

    /// A short, stable name for the kind of failure (Lambda's `errorType`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Event(_) => "InvalidEvent",
            Error::Usage(_) => "Usage",
            Error::Failed(_) => "Failed",
            Error::Unsupported(_) => "Unsupported",
            Error::File { .. } => "File",
            Error::Config(_) => "InvalidConfig",
            Error::Setting(_) => "MissingSetting",
            Error::BadSettings(_) => "InvalidSetting",
            Error::Secret(_) => "Secret",
            Error::Connect(_) => "Connect",
            Error::State(_) => "State",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
