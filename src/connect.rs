//! Opening a PostgreSQL-protocol connection (source or Redshift) with TLS as libpq
//! means `sslmode` and `sslrootcert` (the policy is [`crate::tls`]).

use tokio_postgres::config::SslMode;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::secrets::{DbConfig, Role};
use crate::tls::{self, Mode};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TLS settings cannot work (a verifying mode without roots, unreadable roots).
    #[error("{role} database {target}: {reason}")]
    TlsSettings {
        role: Role,
        target: String,
        reason: String,
    },
    #[error("{role} database {target}: {reason}")]
    Connect {
        role: Role,
        target: String,
        reason: String,
        /// The server's SQLSTATE, when it answered with an error.
        code: Option<String>,
        class: crate::diagnose::Class,
    },
}

/// Connects and drives the connection on the current runtime.
pub async fn connect(role: Role, db: &DbConfig) -> Result<Client, ConnectError> {
    let target = db.describe();
    let settings = |reason: String| ConnectError::TlsSettings {
        role,
        target: target.clone(),
        reason,
    };
    let plan = db.tls.plan(role).map_err(|e| settings(e.to_string()))?;
    let connector = || {
        tls::client_config(&plan.verify)
            .map(MakeRustlsConnect::new)
            .map_err(|e| settings(e.to_string()))
    };
    let attempt = match plan.mode {
        Mode::Disable => plain(db).await,
        // libpq's `allow`: plain first, TLS if the server turns that down.
        Mode::Allow => match plain(db).await {
            Err(e) if e.as_db_error().is_some() => {
                with_tls(db, SslMode::Require, connector()?).await
            }
            other => other,
        },
        // tokio-postgres's `prefer` is libpq's: TLS when the server offers it.
        Mode::Prefer => with_tls(db, SslMode::Prefer, connector()?).await,
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => {
            with_tls(db, SslMode::Require, connector()?).await
        }
    };
    attempt.map_err(|e| connect_error(role, &target, &e))
}

async fn plain(db: &DbConfig) -> Result<Client, tokio_postgres::Error> {
    let mut pg = db.pg.clone();
    let (client, connection) = pg
        .ssl_mode(SslMode::Disable)
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(drive(connection));
    Ok(client)
}

async fn with_tls(
    db: &DbConfig,
    mode: SslMode,
    connector: MakeRustlsConnect,
) -> Result<Client, tokio_postgres::Error> {
    let mut pg = db.pg.clone();
    let (client, connection) = pg.ssl_mode(mode).connect(connector).await?;
    tokio::spawn(drive(connection));
    Ok(client)
}

/// Runs a connection until it closes.
async fn drive<T>(connection: tokio_postgres::Connection<tokio_postgres::Socket, T>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "connection closed");
    }
}

/// One line that says which database and what to check (see [`crate::diagnose`]).
pub fn connect_error(role: Role, target: &str, e: &tokio_postgres::Error) -> ConnectError {
    let facts = crate::diagnose::Facts::of(e);
    ConnectError::Connect {
        role,
        target: target.to_string(),
        reason: crate::diagnose::explain(role, &facts),
        code: facts.code.clone(),
        class: crate::diagnose::classify(&facts),
    }
}

/// An error and its sources on one line. (AWS SDK errors read better through
/// [`crate::aws_error::AwsError`]; here, at least, an AWS error's metadata reads as
/// `code: message`, not as the SDK's debug structure.)
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = match s.downcast_ref::<aws_sdk_s3::error::ErrorMetadata>() {
            Some(meta) => [meta.code(), meta.message()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": "),
            None => s.to_string(),
        };
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    /// What an SDK "unhandled" error looks like: a text, and the metadata under it.
    #[derive(Debug)]
    struct Unhandled(aws_sdk_s3::error::ErrorMetadata);

    impl std::fmt::Display for Unhandled {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("unhandled error (NoSuchBucket)")
        }
    }

    impl std::error::Error for Unhandled {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn aws_error_metadata_reads_as_code_and_message() {
        let meta = aws_sdk_s3::error::ErrorMetadata::builder()
            .code("NoSuchBucket")
            .message("The specified bucket does not exist")
            .build();
        assert_eq!(
            error_chain(&Unhandled(meta)),
            "unhandled error (NoSuchBucket): NoSuchBucket: The specified bucket does not exist"
        );
    }
}
