//! TLS as libpq means `sslmode` and `sslrootcert`, so that a connection string that
//! works with `psql` works here:
//!
//! | `sslmode`     | TLS                                  | server certificate checked      |
//! |---------------|--------------------------------------|---------------------------------|
//! | `disable`     | never                                | —                               |
//! | `allow`       | only if the server refuses plain     | only with an `sslrootcert` file |
//! | `prefer`      | if the server offers it (default)    | only with an `sslrootcert` file |
//! | `require`     | always                               | only with an `sslrootcert` file |
//! | `verify-ca`   | always                               | chain, against the roots        |
//! | `verify-full` | always                               | chain and host name             |
//!
//! "Only with an `sslrootcert` file" is libpq's rule that a root file, when there is
//! one, makes `require` (and the weaker modes) behave as `verify-ca`. Without one they
//! encrypt and check nothing but the handshake's signature: what RDS users get from
//! `psql` with `sslmode=require` and no bundle.
//!
//! The roots: `sslrootcert=FILE` (PEM; e.g. the RDS bundle), or `sslrootcert=system`,
//! the public web roots built into the binary (Mozilla's list), which, as in libpq 16,
//! forces `verify-full` and refuses a weaker mode. Without `sslrootcert`, a verifying
//! mode checks Redshift against the public roots (its certificates chain to Amazon's
//! public roots) and refuses to guess for a source (libpq fails there too): RDS and
//! Aurora certificates come from Amazon RDS's own CA, which no public list holds.
//!
//! The policy (which mode, which roots, what to verify) is pure; [`connector`] builds
//! the rustls configuration from it.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::secrets::Role;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    pub const NAMES: &'static str = "disable, allow, prefer, require, verify-ca, verify-full";

    pub fn parse(text: &str) -> Option<Mode> {
        Some(match text {
            "disable" => Mode::Disable,
            "allow" => Mode::Allow,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Allow => "allow",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

/// libpq's `sslrootcert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// Not given.
    Unset,
    /// `system`: the public web roots.
    System,
    /// A PEM file of CA certificates.
    File(PathBuf),
}

impl Roots {
    pub fn parse(text: &str) -> Roots {
        match text {
            "system" => Roots::System,
            path => Roots::File(PathBuf::from(path)),
        }
    }
}

/// A connection's TLS settings as given (`sslmode` absent: `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: Option<Mode>,
    pub roots: Roots,
}

/// How to connect: whether to use TLS, and what to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub mode: Mode,
    pub verify: Verify,
}

/// What is checked of the server's certificate when TLS is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    /// Nothing but the handshake's signature (the certificate's key signed it).
    Nothing,
    /// The chain up to one of the roots.
    Chain(TrustedRoots),
    /// The chain, and that the certificate names the host connected to.
    ChainAndName(TrustedRoots),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedRoots {
    Public,
    File(PathBuf),
}

/// A TLS setting that cannot work, named the way the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("sslmode={mode} checks the server's certificate, so it needs sslrootcert=FILE (the CA bundle that issued it: for RDS and Aurora the region's bundle from https://truststore.pki.rds.amazonaws.com, see README \"Reaching RDS over TLS\") or sslrootcert=system for a certificate from a public CA")]
    SourceNeedsRoots { mode: &'static str },
    #[error("sslrootcert=system trusts any public CA, so only sslmode=verify-full is safe with it (as in libpq); sslmode={mode} was given")]
    SystemNeedsVerifyFull { mode: &'static str },
}

impl Tls {
    /// libpq's rules, with one difference: a verifying mode without `sslrootcert`
    /// trusts the public roots for Redshift (whose certificates chain to them) where
    /// libpq would look for `~/.postgresql/root.crt`.
    pub fn plan(&self, role: Role) -> Result<Plan, PolicyError> {
        let mode = match (self.mode, &self.roots) {
            (None, Roots::System) => Mode::VerifyFull,
            (None, _) => Mode::Prefer,
            (Some(m), _) => m,
        };
        let file = match &self.roots {
            Roots::File(p) => Some(TrustedRoots::File(p.clone())),
            _ => None,
        };
        let verify = match (mode, &self.roots) {
            (Mode::VerifyFull, Roots::System) => Verify::ChainAndName(TrustedRoots::Public),
            (m, Roots::System) => {
                return Err(PolicyError::SystemNeedsVerifyFull { mode: m.as_str() })
            }
            (Mode::Disable, _) => Verify::Nothing,
            (Mode::VerifyCa | Mode::VerifyFull, Roots::Unset) if role == Role::Source => {
                return Err(PolicyError::SourceNeedsRoots {
                    mode: mode.as_str(),
                })
            }
            (Mode::VerifyCa, _) => Verify::Chain(file.unwrap_or(TrustedRoots::Public)),
            (Mode::VerifyFull, _) => Verify::ChainAndName(file.unwrap_or(TrustedRoots::Public)),
            (Mode::Allow | Mode::Prefer | Mode::Require, _) => match file {
                Some(roots) => Verify::Chain(roots),
                None => Verify::Nothing,
            },
        };
        Ok(Plan { mode, verify })
    }
}

/// The roots could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read sslrootcert {path}: {reason}")]
pub struct RootsError {
    pub path: String,
    pub reason: String,
}

/// The rustls client configuration for `verify`.
pub fn client_config(verify: &Verify) -> Result<rustls::ClientConfig, RootsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match verify {
        Verify::Nothing => Arc::new(SignatureOnly(provider.clone())),
        Verify::Chain(roots) => Arc::new(ChainOnly(webpki(roots, &provider)?)),
        Verify::ChainAndName(roots) => webpki(roots, &provider)?,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the safe default versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

fn webpki(
    roots: &TrustedRoots,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, RootsError> {
    let mut store = rustls::RootCertStore::empty();
    match roots {
        TrustedRoots::Public => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        TrustedRoots::File(path) => {
            let failed = |reason: String| RootsError {
                path: path.display().to_string(),
                reason,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| failed(e.to_string()))?;
            if certs.is_empty() {
                return Err(failed("it holds no PEM certificate".into()));
            }
            for cert in certs {
                store.add(cert).map_err(|e| failed(e.to_string()))?;
            }
        }
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| RootsError {
            path: match roots {
                TrustedRoots::Public => "system".into(),
                TrustedRoots::File(p) => p.display().to_string(),
            },
            reason: e.to_string(),
        })
}

/// `verify-ca`: the chain is checked as `verify-full` checks it; only a certificate
/// for another name is accepted. (webpki checks the name after the chain, so a name
/// error means the chain was good.)
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require` without roots: any certificate, but the handshake must be signed by its
/// key (so the session is with whoever holds it, even if nobody vouches for them).
#[derive(Debug)]
struct SignatureOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for SignatureOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(mode: Option<&str>, roots: Option<&str>, role: Role) -> Result<Plan, PolicyError> {
        Tls {
            mode: mode.map(|m| Mode::parse(m).unwrap()),
            roots: roots.map_or(Roots::Unset, Roots::parse),
        }
        .plan(role)
    }

    fn file(p: &str) -> TrustedRoots {
        TrustedRoots::File(PathBuf::from(p))
    }

    #[test]
    fn modes_parse_and_print_as_libpq_spells_them() {
        for name in Mode::NAMES.split(", ") {
            assert_eq!(Mode::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(Mode::parse("verify_full"), None);
        assert_eq!(Mode::parse("REQUIRE"), None);
    }

    #[test]
    fn require_without_roots_encrypts_and_checks_nothing() {
        for role in [Role::Source, Role::Destination] {
            let p = plan(Some("require"), None, role).unwrap();
            assert_eq!((p.mode, p.verify), (Mode::Require, Verify::Nothing));
        }
    }

    #[test]
    fn a_root_file_makes_the_weaker_modes_verify_the_chain() {
        for mode in ["allow", "prefer", "require", "verify-ca"] {
            let p = plan(Some(mode), Some("/opt/rds.pem"), Role::Source).unwrap();
            assert_eq!(p.verify, Verify::Chain(file("/opt/rds.pem")), "{mode}");
        }
        let p = plan(Some("verify-full"), Some("/opt/rds.pem"), Role::Source).unwrap();
        assert_eq!(p.verify, Verify::ChainAndName(file("/opt/rds.pem")));
        let p = plan(Some("disable"), Some("/opt/rds.pem"), Role::Source).unwrap();
        assert_eq!(p.verify, Verify::Nothing);
    }

    #[test]
    fn without_sslmode_the_default_is_prefer() {
        let p = plan(None, None, Role::Source).unwrap();
        assert_eq!((p.mode, p.verify), (Mode::Prefer, Verify::Nothing));
    }

    #[test]
    fn a_verifying_source_needs_roots_and_redshift_defaults_to_the_public_ones() {
        for mode in ["verify-ca", "verify-full"] {
            let e = plan(Some(mode), None, Role::Source).unwrap_err();
            assert_eq!(e, PolicyError::SourceNeedsRoots { mode });
            assert!(e.to_string().contains("sslrootcert="), "{e}");
        }
        assert_eq!(
            plan(Some("verify-ca"), None, Role::Destination)
                .unwrap()
                .verify,
            Verify::Chain(TrustedRoots::Public)
        );
        assert_eq!(
            plan(Some("verify-full"), None, Role::Destination)
                .unwrap()
                .verify,
            Verify::ChainAndName(TrustedRoots::Public)
        );
    }

    #[test]
    fn system_roots_mean_verify_full_and_refuse_weaker_modes() {
        let p = plan(None, Some("system"), Role::Source).unwrap();
        assert_eq!(
            (p.mode, p.verify),
            (Mode::VerifyFull, Verify::ChainAndName(TrustedRoots::Public))
        );
        for mode in ["disable", "allow", "prefer", "require", "verify-ca"] {
            let e = plan(Some(mode), Some("system"), Role::Destination).unwrap_err();
            assert_eq!(e, PolicyError::SystemNeedsVerifyFull { mode });
        }
    }

    #[test]
    fn a_missing_or_empty_root_file_is_named() {
        let e = client_config(&Verify::Chain(file("/nonexistent/ca.pem"))).unwrap_err();
        assert_eq!(e.path, "/nonexistent/ca.pem");
        let dir = std::env::temp_dir().join(format!("tls-empty-{}", std::process::id()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        let e = client_config(&Verify::ChainAndName(TrustedRoots::File(dir.clone()))).unwrap_err();
        assert!(e.reason.contains("no PEM certificate"), "{e}");
        std::fs::remove_file(dir).unwrap();
    }

    #[test]
    fn every_plan_builds_a_configuration() {
        for verify in [
            Verify::Nothing,
            Verify::Chain(TrustedRoots::Public),
            Verify::ChainAndName(TrustedRoots::Public),
        ] {
            client_config(&verify).unwrap();
        }
    }
}
