//! Resolving a job's database references (`url`, `url_env`, `url_secret`, `url_ssm`)
//! into connection settings, at run time, without ever printing a password.
//!
//! A Secrets Manager secret may hold a URL or RDS-style JSON (`host`, `port`,
//! `username`, `password`, `dbname`, optional `sslmode`); an SSM parameter holds a URL
//! (SecureString, read with decryption). Resolved settings are never stored.

use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::aws_error::{AwsError, Resource};
use crate::config::UrlRef;
use crate::tls::{Mode, Roots, Tls};

/// Which database a reference is for, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Destination,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Source => "source",
            Role::Destination => "destination",
        })
    }
}

/// Connection settings for one database. `Debug` hides the password (tokio-postgres
/// redacts it, and the raw text is a [`SecretString`]).
#[derive(Clone)]
pub struct DbConfig {
    /// Everything but TLS, which [`crate::connect`] sets from `tls` per attempt.
    pub pg: tokio_postgres::Config,
    /// `sslmode` and `sslrootcert`, as libpq reads them ([`crate::tls`]).
    pub tls: Tls,
    /// Where the settings came from, for messages: `secret arn:...`, `env SOURCE_URL`.
    pub origin: String,
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("host", &self.pg.get_hosts())
            .field("port", &self.pg.get_ports())
            .field("user", &self.pg.get_user())
            .field("dbname", &self.pg.get_dbname())
            .field("tls", &self.tls)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl DbConfig {
    /// `host:port/dbname` for messages; never the user's password.
    pub fn describe(&self) -> String {
        let host = match self.pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.pg.get_ports().first().copied().unwrap_or(5432);
        let db = self
            .pg
            .get_dbname()
            .or(self.pg.get_user())
            .unwrap_or_default();
        format!("{host}:{port}/{db}")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{role} database: environment variable {name} is not set")]
    EnvMissing { role: Role, name: String },
    /// Secrets Manager or SSM refused or failed: the line says which secret or
    /// parameter and what to check.
    #[error("{role} database: {error}")]
    Unreadable { role: Role, error: AwsError },
    #[error("{role} database: {origin} does not hold a usable connection: {reason}")]
    Invalid {
        role: Role,
        origin: String,
        reason: String,
    },
}

/// The AWS clients secret references need.
#[derive(Debug, Clone)]
pub struct SecretClients {
    pub secrets_manager: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
}

/// Resolves a reference into connection settings.
pub async fn resolve(
    role: Role,
    reference: &UrlRef,
    clients: &SecretClients,
) -> Result<DbConfig, SecretError> {
    match reference {
        UrlRef::Url(url) => parse_url(role, &SecretString::from(url.clone()), "the job's url"),
        UrlRef::Env(name) => {
            let value = std::env::var(name).map_err(|_| SecretError::EnvMissing {
                role,
                name: name.clone(),
            })?;
            parse_url(
                role,
                &SecretString::from(value),
                &format!("environment variable {name}"),
            )
        }
        UrlRef::Secret(id) => {
            let out = clients
                .secrets_manager
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .map_err(|e| SecretError::Unreadable {
                    role,
                    error: AwsError::of(
                        "GetSecretValue",
                        Resource::Secret {
                            id,
                            field: &format!("{role}.url_secret"),
                        },
                        &e,
                    ),
                })?;
            let text = out.secret_string().ok_or_else(|| SecretError::Invalid {
                role,
                origin: format!("secret {id}"),
                reason: "it has no SecretString (binary secrets are not supported)".into(),
            })?;
            parse_secret_text(
                role,
                &SecretString::from(text.to_string()),
                &format!("secret {id}"),
            )
        }
        UrlRef::Ssm(name) => {
            let out = clients
                .ssm
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| SecretError::Unreadable {
                    role,
                    error: AwsError::of(
                        "GetParameter",
                        Resource::Parameter {
                            name,
                            field: &format!("{role}.url_ssm"),
                        },
                        &e,
                    ),
                })?;
            let value =
                out.parameter()
                    .and_then(|p| p.value())
                    .ok_or_else(|| SecretError::Invalid {
                        role,
                        origin: format!("SSM parameter {name}"),
                        reason: "it has no value".into(),
                    })?;
            parse_secret_text(
                role,
                &SecretString::from(value.to_string()),
                &format!("SSM parameter {name}"),
            )
        }
    }
}

/// Secret text is a URL, or JSON in the RDS secret format.
pub fn parse_secret_text(
    role: Role,
    text: &SecretString,
    origin: &str,
) -> Result<DbConfig, SecretError> {
    if text.expose_secret().trim_start().starts_with('{') {
        parse_rds_json(role, text, origin)
    } else {
        parse_url(role, text, origin)
    }
}

#[derive(Deserialize)]
struct RdsSecret {
    host: String,
    #[serde(default)]
    port: Option<serde_json::Value>,
    username: String,
    password: SecretString,
    #[serde(default, alias = "database")]
    dbname: Option<String>,
    #[serde(default)]
    sslmode: Option<String>,
    #[serde(default)]
    sslrootcert: Option<String>,
}

fn parse_rds_json(role: Role, text: &SecretString, origin: &str) -> Result<DbConfig, SecretError> {
    let invalid = |reason: String| SecretError::Invalid {
        role,
        origin: origin.to_string(),
        reason,
    };
    // serde_json's messages name fields and positions, never values.
    let secret: RdsSecret = serde_json::from_str(text.expose_secret())
        .map_err(|e| invalid(format!("JSON secret: {e}")))?;
    let port = match &secret.port {
        None => 5432,
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| invalid("JSON secret: port is not a port number".into()))?,
        Some(serde_json::Value::String(s)) => s
            .parse()
            .map_err(|_| invalid("JSON secret: port is not a port number".into()))?,
        Some(_) => return Err(invalid("JSON secret: port is not a port number".into())),
    };
    let mut pg = tokio_postgres::Config::new();
    pg.host(&secret.host)
        .port(port)
        .user(&secret.username)
        .password(secret.password.expose_secret());
    if let Some(db) = &secret.dbname {
        pg.dbname(db);
    }
    // RDS's secrets carry no sslmode; RDS accepts TLS, so ask for it.
    let mode = match secret.sslmode.as_deref() {
        None => Mode::Require,
        Some(text) => Mode::parse(text).ok_or_else(|| {
            invalid(format!(
                "JSON secret: sslmode {text:?} is not one of {}",
                Mode::NAMES
            ))
        })?,
    };
    Ok(DbConfig {
        pg,
        tls: Tls {
            mode: Some(mode),
            roots: secret
                .sslrootcert
                .as_deref()
                .map_or(Roots::Unset, Roots::parse),
        },
        origin: origin.to_string(),
    })
}

/// Parses a `postgres://` (or `postgresql://`, `redshift://`) URL or a key=value
/// string. `sslmode` and `sslrootcert` are taken out and kept as [`Tls`] (libpq's six
/// modes; tokio-postgres knows three).
pub fn parse_url(role: Role, url: &SecretString, origin: &str) -> Result<DbConfig, SecretError> {
    let invalid = |reason: String| SecretError::Invalid {
        role,
        origin: origin.to_string(),
        reason,
    };
    let raw = url.expose_secret().trim();
    let raw = match raw.strip_prefix("redshift://") {
        Some(rest) => format!("postgres://{rest}"),
        None => raw.to_string(),
    };
    let (base, query) = match raw.split_once('?') {
        Some((b, q)) => (b.to_string(), Some(q.to_string())),
        None => (raw.clone(), None),
    };
    let mut tls = Tls {
        mode: None,
        roots: Roots::Unset,
    };
    let mut kept = Vec::new();
    for pair in query
        .iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("sslrootcert", v)) => tls.roots = Roots::parse(v),
            Some(("sslmode", v)) => {
                tls.mode = Some(Mode::parse(v).ok_or_else(|| {
                    invalid(format!("sslmode {v:?} is not one of {}", Mode::NAMES))
                })?)
            }
            _ => kept.push(pair.to_string()),
        }
    }
    let cleaned = if kept.is_empty() {
        base
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    if !(cleaned.starts_with("postgres://") || cleaned.starts_with("postgresql://")) {
        return Err(invalid(
            "expected a URL starting with postgres://, postgresql:// or redshift://".into(),
        ));
    }
    // tokio-postgres's parse errors name the option, never its value.
    let pg = tokio_postgres::Config::from_str(&cleaned)
        .map_err(|e| invalid(format!("not a valid PostgreSQL URL ({e})")))?;
    if pg.get_hosts().is_empty() {
        return Err(invalid("the URL names no host".into()));
    }
    Ok(DbConfig {
        pg,
        tls,
        origin: origin.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> SecretString {
        SecretString::from(text.to_string())
    }

    #[test]
    fn url_with_password_parses_and_debug_hides_it() {
        let c = parse_url(
            Role::Source,
            &s("postgres://app:hunter2@db.internal:6432/shop?sslmode=require&sslrootcert=/opt/rds.pem"),
            "test",
        )
        .unwrap();
        assert_eq!(c.pg.get_user(), Some("app"));
        assert_eq!(c.pg.get_password(), Some(&b"hunter2"[..]));
        assert_eq!(
            c.tls,
            Tls {
                mode: Some(Mode::Require),
                roots: Roots::File("/opt/rds.pem".into())
            }
        );
        assert_eq!(c.describe(), "db.internal:6432/shop");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn verify_full_and_redshift_scheme_are_understood() {
        let c = parse_url(
            Role::Destination,
            &s("redshift://loader@cluster.abc.eu-west-1.redshift.amazonaws.com:5439/dev?sslmode=verify-full"),
            "test",
        )
        .unwrap();
        assert_eq!(c.tls.mode, Some(Mode::VerifyFull));
        assert_eq!(c.tls.roots, Roots::Unset);
        assert_eq!(c.pg.get_ports(), &[5439]);
        let c = parse_url(
            Role::Source,
            &s("postgres://h/db?sslmode=allow&sslrootcert=system"),
            "t",
        )
        .unwrap();
        assert_eq!(
            c.tls,
            Tls {
                mode: Some(Mode::Allow),
                roots: Roots::System
            }
        );
        let c = parse_url(Role::Source, &s("postgres://h/db"), "t").unwrap();
        assert_eq!(c.tls.mode, None);
    }

    #[test]
    fn bad_urls_say_why_without_the_password() {
        for (url, expected) in [
            ("mysql://u:secretpw@h/db", "expected a URL starting with"),
            (
                "postgres://u:secretpw@h/db?bogus=1",
                "not a valid PostgreSQL URL",
            ),
            (
                "postgres://u:secretpw@h/db?sslmode=verify_full",
                "sslmode \"verify_full\" is not one of disable, allow, prefer, require, verify-ca, verify-full",
            ),
        ] {
            let e = parse_url(Role::Source, &s(url), "secret x")
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("source database: secret x does not hold a usable connection: "),
                "{e}"
            );
            assert!(e.contains(expected), "{e}");
            assert!(!e.contains("secretpw"), "{e}");
        }
    }

    #[test]
    fn rds_json_secret_builds_a_config() {
        let c = parse_secret_text(
            Role::Source,
            &s(r#"{"engine":"postgres","host":"db","port":"5433","username":"ro","password":"p@ss:w/rd","dbname":"shop"}"#),
            "secret shop-ro",
        )
        .unwrap();
        assert_eq!(c.pg.get_password(), Some(&b"p@ss:w/rd"[..]));
        assert_eq!(c.pg.get_ports(), &[5433]);
        assert_eq!(c.pg.get_dbname(), Some("shop"));
        assert_eq!(
            c.tls.mode,
            Some(Mode::Require),
            "RDS's secrets name no sslmode"
        );
        let e = parse_secret_text(
            Role::Source,
            &s(r#"{"host":"db","password":"topsecret"}"#),
            "secret x",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("missing field `username`"), "{e}");
        assert!(!e.contains("topsecret"), "{e}");
    }
}
