//! Opening a PostgreSQL-protocol connection (source or Redshift) with TLS as the
//! settings ask: `sslmode=disable` plain, `prefer` TLS when offered, `require` TLS
//! with the server certificate verified against the public roots plus `sslrootcert`.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::secrets::{DbConfig, Role};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{role} database {target}: cannot read sslrootcert {path}: {reason}")]
    RootCert {
        role: Role,
        target: String,
        path: String,
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
pub async fn connect(role: Role, db: &DbConfig) -> Result<tokio_postgres::Client, ConnectError> {
    let target = db.describe();
    let client = if db.pg.get_ssl_mode() == SslMode::Disable {
        let (client, connection) = db
            .pg
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| connect_error(role, &target, &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed");
            }
        });
        client
    } else {
        let tls = tls_connector(role, db)?;
        let (client, connection) = db
            .pg
            .connect(tls)
            .await
            .map_err(|e| connect_error(role, &target, &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed");
            }
        });
        client
    };
    Ok(client)
}

fn tls_connector(role: Role, db: &DbConfig) -> Result<MakeRustlsConnect, ConnectError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &db.root_cert {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ConnectError::RootCert {
                role,
                target: db.describe(),
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        for cert in certs {
            roots.add(cert).map_err(|e| ConnectError::RootCert {
                role,
                target: db.describe(),
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::RootCert {
            role,
            target: db.describe(),
            path: String::new(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
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
