//! Database errors a user can act on: refused connections, failed authentication, TLS,
//! missing tables, missing privileges — on the source and on Redshift — each told in
//! one line that says what happened and what to check.
//!
//! [`Facts::of`] takes what matters out of a `tokio_postgres::Error` (the SQLSTATE,
//! the server's message, the I/O error kind, whether TLS failed); everything after that
//! is pure: [`classify`] decides by SQLSTATE and error kind (never by the server's
//! text), [`explain`] writes the line. The caller says which database (`source
//! database 127.0.0.1:5432/shop`); no part of a line ever holds a password.

use std::io::ErrorKind;

use crate::secrets::Role;

/// What a PostgreSQL-protocol error tells.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// The server's SQLSTATE, when it answered with an error.
    pub code: Option<String>,
    /// The server's message (`permission denied for table orders`), or the client's
    /// error chain when the server did not answer.
    pub message: String,
    /// The server's DETAIL, if any.
    pub detail: Option<String>,
    /// The kind of the I/O error underneath, when there is one.
    pub io: Option<ErrorKind>,
    /// TLS could not be set up (handshake, certificate, or no TLS at the server).
    pub tls: bool,
}

impl Facts {
    pub fn of(e: &tokio_postgres::Error) -> Facts {
        if let Some(db) = e.as_db_error() {
            return Facts {
                code: Some(db.code().code().to_string()),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                ..Facts::default()
            };
        }
        let mut io = None;
        let mut tls = false;
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = source {
            if let Some(i) = s.downcast_ref::<std::io::Error>() {
                io.get_or_insert(i.kind());
                tls |= i.get_ref().is_some_and(|inner| inner.is::<rustls::Error>());
            }
            tls |= s.is::<rustls::Error>();
            source = s.source();
        }
        // tokio-postgres reports every TLS set-up failure (including a server without
        // TLS under sslmode=require) as its TLS error kind, which only its text shows.
        tls |= e.to_string().starts_with("error performing TLS handshake");
        Facts {
            message: crate::connect::error_chain(e),
            io,
            tls,
            ..Facts::default()
        }
    }
}

/// The failures a user can do something about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Nothing listens at host:port (or a firewall says no).
    Refused,
    /// No route, no answer in time.
    Unreachable,
    /// Wrong password, unknown user, or the server does not let this user in (28P01,
    /// 28000).
    AuthFailed,
    /// TLS could not be set up.
    Tls,
    /// The database named in the URL does not exist (3D000).
    NoDatabase,
    /// A table or schema does not exist (42P01, 3F000).
    MissingObject,
    /// The user lacks a privilege (42501).
    PermissionDenied,
    Other,
}

pub fn classify(f: &Facts) -> Class {
    match f.code.as_deref() {
        Some("28P01" | "28000") => Class::AuthFailed,
        Some("3D000") => Class::NoDatabase,
        Some("42P01" | "3F000") => Class::MissingObject,
        Some("42501") => Class::PermissionDenied,
        Some(_) => Class::Other,
        None if f.tls => Class::Tls,
        None => match f.io {
            Some(ErrorKind::ConnectionRefused) => Class::Refused,
            Some(
                ErrorKind::TimedOut
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::AddrNotAvailable,
            ) => Class::Unreachable,
            _ => Class::Other,
        },
    }
}

/// What to check, by class and database.
fn hint(class: Class, role: Role) -> Option<&'static str> {
    Some(match (class, role) {
        (Class::Refused | Class::Unreachable, _) => {
            "check the host and port, and that the server accepts connections from here (security group, VPC, NAT)"
        }
        (Class::AuthFailed, Role::Source) => {
            "check the user and password in the job's source url/url_secret, and that the server lets this user connect from here"
        }
        (Class::AuthFailed, Role::Destination) => {
            "check the user and password in the job's destination url/url_secret (see README: Redshift user)"
        }
        (Class::Tls, _) => {
            "check sslmode (require and verify-* need a server with SSL on) and that sslrootcert= names the CA that issued the server's certificate (RDS: the region's bundle, README \"Reaching RDS over TLS\"); verify-full also needs the host name in it"
        }
        (Class::NoDatabase, Role::Source) => "check the database name in the job's source url",
        (Class::NoDatabase, Role::Destination) => {
            "check the database name in the job's destination url"
        }
        (Class::MissingObject, Role::Source) => {
            "check the table's `source` in the job; if it was dropped or renamed, fix the job and run setup again"
        }
        (Class::MissingObject, Role::Destination) => {
            "run `redshift-loader setup JOB` to create it (or with `--table T --rebuild` to recreate it)"
        }
        (Class::PermissionDenied, Role::Source) => {
            "grant SELECT on the table and USAGE on its schema to the loader's user (see README: source user)"
        }
        (Class::PermissionDenied, Role::Destination) => {
            "grant the loader user CREATE and USAGE on the schema, SELECT/INSERT/DELETE on its tables, and CREATE on the database while the schema does not exist (see README: Redshift user)"
        }
        (Class::Other, _) => return None,
    })
}

/// One line: what happened — what to check. The caller puts the database in front.
pub fn explain(role: Role, f: &Facts) -> String {
    let class = classify(f);
    let what = match class {
        Class::Refused => "connection refused".to_string(),
        Class::Other => match &f.detail {
            Some(d) => format!("{} ({d})", f.message),
            None => f.message.clone(),
        },
        _ => f.message.clone(),
    };
    let line = match hint(class, role) {
        Some(h) => format!("{what} — {h}"),
        None => what,
    };
    one_line(&line)
}

/// [`explain`] for an error at hand.
pub fn explain_error(role: Role, e: &tokio_postgres::Error) -> String {
    explain(role, &Facts::of(e))
}

/// Newlines and runs of spaces become one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str, message: &str) -> Facts {
        Facts {
            code: Some(code.into()),
            message: message.into(),
            ..Facts::default()
        }
    }

    fn client(message: &str, io: Option<ErrorKind>, tls: bool) -> Facts {
        Facts {
            message: message.into(),
            io,
            tls,
            ..Facts::default()
        }
    }

    #[test]
    fn classes_come_from_sqlstate_and_error_kind() {
        let cases = [
            (
                server(
                    "28P01",
                    "password authentication failed for user \"loader\"",
                ),
                Class::AuthFailed,
            ),
            (
                server("28000", "no pg_hba.conf entry for host \"10.0.0.1\""),
                Class::AuthFailed,
            ),
            (
                server("3D000", "database \"shop\" does not exist"),
                Class::NoDatabase,
            ),
            (
                server("42P01", "relation \"public.orders\" does not exist"),
                Class::MissingObject,
            ),
            (
                server("3F000", "schema \"analytics\" does not exist"),
                Class::MissingObject,
            ),
            (
                server("42501", "permission denied for schema analytics"),
                Class::PermissionDenied,
            ),
            (
                server("22007", "invalid input syntax for type timestamp"),
                Class::Other,
            ),
            // The server's text never decides: a refused-looking message with a code is Other.
            (server("XX000", "Connection refused"), Class::Other),
            (
                client(
                    "error connecting to server: Connection refused (os error 111)",
                    Some(ErrorKind::ConnectionRefused),
                    false,
                ),
                Class::Refused,
            ),
            (
                client(
                    "error connecting to server: timed out",
                    Some(ErrorKind::TimedOut),
                    false,
                ),
                Class::Unreachable,
            ),
            (
                client(
                    "error performing TLS handshake: server does not support TLS",
                    None,
                    true,
                ),
                Class::Tls,
            ),
            (
                client(
                    "error performing TLS handshake: invalid peer certificate: UnknownIssuer",
                    Some(ErrorKind::InvalidData),
                    true,
                ),
                Class::Tls,
            ),
            (
                client("connection closed", Some(ErrorKind::UnexpectedEof), false),
                Class::Other,
            ),
        ];
        for (facts, class) in cases {
            assert_eq!(classify(&facts), class, "{facts:?}");
        }
    }

    #[test]
    fn each_class_gets_one_line_with_what_to_check() {
        let cases = [
            (
                Role::Source,
                server("28P01", "password authentication failed for user \"loader\""),
                "password authentication failed for user \"loader\" — check the user and password in the job's source url/url_secret, and that the server lets this user connect from here",
            ),
            (
                Role::Destination,
                server("28P01", "password authentication failed for user \"loader\""),
                "password authentication failed for user \"loader\" — check the user and password in the job's destination url/url_secret (see README: Redshift user)",
            ),
            (
                Role::Destination,
                server("42501", "permission denied for schema analytics"),
                "permission denied for schema analytics — grant the loader user CREATE and USAGE on the schema, SELECT/INSERT/DELETE on its tables, and CREATE on the database while the schema does not exist (see README: Redshift user)",
            ),
            (
                Role::Source,
                server("42501", "permission denied for table orders"),
                "permission denied for table orders — grant SELECT on the table and USAGE on its schema to the loader's user (see README: source user)",
            ),
            (
                Role::Source,
                server("42P01", "relation \"public.orders\" does not exist"),
                "relation \"public.orders\" does not exist — check the table's `source` in the job; if it was dropped or renamed, fix the job and run setup again",
            ),
            (
                Role::Destination,
                server("42P01", "relation \"analytics.orders\" does not exist"),
                "relation \"analytics.orders\" does not exist — run `redshift-loader setup JOB` to create it (or with `--table T --rebuild` to recreate it)",
            ),
            (
                Role::Source,
                client("error connecting to server: Connection refused (os error 111)", Some(ErrorKind::ConnectionRefused), false),
                "connection refused — check the host and port, and that the server accepts connections from here (security group, VPC, NAT)",
            ),
            (
                Role::Destination,
                client("error performing TLS handshake: server does not support TLS", None, true),
                "error performing TLS handshake: server does not support TLS — check sslmode (require and verify-* need a server with SSL on) and that sslrootcert= names the CA that issued the server's certificate (RDS: the region's bundle, README \"Reaching RDS over TLS\"); verify-full also needs the host name in it",
            ),
            (
                Role::Source,
                server("3D000", "database \"shop\" does not exist"),
                "database \"shop\" does not exist — check the database name in the job's source url",
            ),
            (
                Role::Source,
                Facts {
                    detail: Some("Key (id)=(1)\nalready exists.".into()),
                    ..server("23505", "duplicate key value")
                },
                "duplicate key value (Key (id)=(1) already exists.)",
            ),
        ];
        for (role, facts, line) in cases {
            assert_eq!(explain(role, &facts), line);
        }
    }
}
