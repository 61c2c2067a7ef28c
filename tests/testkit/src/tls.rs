//! A private certificate authority for TLS tests, as RDS has its own: a CA and server
//! certificates it signs, made with the `openssl` command line in a scratch directory.
//! Servers use them as files (PostgreSQL) or as a rustls configuration (the Redshift
//! emulator); the loader is given the CA's PEM as `sslrootcert`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::process::Scratch;

#[derive(Debug)]
pub struct TestCa {
    scratch: Scratch,
}

/// A server certificate and its key, signed by a [`TestCa`].
#[derive(Debug, Clone)]
pub struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA; `name` labels its directory and its subject.
    pub fn new(name: &str) -> Result<TestCa> {
        let scratch = Scratch::new(&format!("ca-{name}"))?;
        openssl(
            scratch.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                &format!("/CN=redshift-loader test CA {name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        )?;
        Ok(TestCa { scratch })
    }

    /// The CA certificate (PEM): what the loader gets as `sslrootcert`.
    pub fn ca_pem(&self) -> PathBuf {
        self.scratch.path().join("ca.pem")
    }

    /// A server certificate for `names` (subjectAltName entries such as `IP:127.0.0.1`
    /// or `DNS:db.test`), stored as `<label>.pem` and `<label>.key`.
    pub fn issue(&self, label: &str, names: &[&str]) -> Result<ServerCert> {
        let dir = self.scratch.path();
        let ext = dir.join(format!("{label}.ext"));
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
                names.join(",")
            ),
        )?;
        let (key, csr, cert) = (
            format!("{label}.key"),
            format!("{label}.csr"),
            format!("{label}.pem"),
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={label}"),
            ],
        )?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "2",
                "-extfile",
                &format!("{label}.ext"),
            ],
        )?;
        Ok(ServerCert {
            cert: dir.join(cert),
            key: dir.join(key),
        })
    }
}

impl ServerCert {
    /// A rustls server configuration presenting this certificate.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("reading {}", self.cert.display()))?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("reading {}", self.key.display()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        Ok(Arc::new(config))
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .context("running openssl (install the openssl package)")?;
    if !out.status.success() {
        bail!(
            "openssl {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
