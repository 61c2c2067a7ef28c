//! TLS as libpq means it, on both sides: a source PostgreSQL and the Redshift emulator,
//! each serving a certificate from a private CA (as RDS does), reached with every
//! `sslmode`, with and without `sslrootcert`; then a sync with `verify-full` on both.

use redshift_loader::config::{Format, Job};
use redshift_loader::connect::connect;
use redshift_loader::secrets::{parse_url, Role};
use testkit::pg::PgCluster;
use testkit::redshift::{EmulatorConfig, RedshiftEmulator};
use testkit::tls::TestCa;

use crate::support::World;

/// Connects with `query` appended to `base` and says whether the session is TLS
/// (`probe` answers that on the server), or the error's text.
async fn attempt(role: Role, base: &str, query: &str, probe: &str) -> Result<bool, String> {
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}{query}");
    let db = parse_url(role, &url.into(), "test").map_err(|e| e.to_string())?;
    let client = connect(role, &db).await.map_err(|e| e.to_string())?;
    let row = client
        .query_one(probe, &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get::<_, bool>(0))
}

const PG_SSL: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

/// What each mode does, as a table: (query, Ok(tls) or Err(part of the message)).
type Case<'a> = (String, Result<bool, &'a str>);

async fn check(role: Role, base: &str, probe: &str, cases: Vec<Case<'_>>) {
    for (query, expected) in cases {
        let got = attempt(role, base, &query, probe).await;
        match (&got, &expected) {
            (Ok(tls), Ok(want)) if tls == want => {}
            (Err(e), Err(part)) if e.contains(part) => {
                let side = if role == Role::Source {
                    "source database"
                } else {
                    "destination database"
                };
                assert!(e.starts_with(side), "{query}: {e}");
            }
            _ => panic!("{role} with {query}: got {got:?}, expected {expected:?}"),
        }
    }
}

#[tokio::test]
async fn every_sslmode_means_what_it_means_in_libpq_at_the_source() {
    let ca = TestCa::new("source").unwrap();
    let other = TestCa::new("other").unwrap();
    // Issued for a name, not for the address connected to: verify-ca passes, verify-full
    // only when the URL names the host (with hostaddr to reach it).
    let cert = ca.issue("db", &["DNS:db.test"]).unwrap();
    let cluster = PgCluster::start("tls").await.unwrap();
    cluster.enable_tls(&cert).await.unwrap();
    let admin = cluster.connect("postgres").await.unwrap();
    admin
        .batch_execute("CREATE ROLE tls_only LOGIN")
        .await
        .unwrap();
    cluster
        .hba_prepend("hostnossl all tls_only 127.0.0.1/32 reject")
        .await
        .unwrap();

    let port = cluster.port();
    let by_address = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let by_name = format!("postgres://postgres@db.test:{port}/postgres?hostaddr=127.0.0.1");
    let root = format!("sslrootcert={}", ca.ca_pem().display());
    let wrong_root = format!("sslrootcert={}", other.ca_pem().display());
    check(
        Role::Source,
        &by_address,
        PG_SSL,
        vec![
            ("sslmode=disable".into(), Ok(false)),
            // libpq's default: TLS when offered, nothing checked.
            ("application_name=default".into(), Ok(true)),
            ("sslmode=prefer".into(), Ok(true)),
            // The point of the mode: encrypted, though no CA vouches for the server
            // (RDS's certificates without its bundle).
            ("sslmode=require".into(), Ok(true)),
            (format!("sslmode=require&{root}"), Ok(true)),
            // A root file makes require check the chain, as in libpq.
            (
                format!("sslmode=require&{wrong_root}"),
                Err("invalid peer certificate"),
            ),
            (format!("sslmode=verify-ca&{root}"), Ok(true)),
            (
                format!("sslmode=verify-ca&{wrong_root}"),
                Err("invalid peer certificate"),
            ),
            (
                format!("sslmode=verify-full&{root}"),
                Err("certificate not valid for name"),
            ),
            ("sslmode=verify-ca".into(), Err("needs sslrootcert=FILE")),
            ("sslmode=verify-full".into(), Err("needs sslrootcert=FILE")),
            // The public roots do not hold a private CA (nor RDS's).
            (
                "sslmode=verify-full&sslrootcert=system".into(),
                Err("UnknownIssuer"),
            ),
            (
                "sslmode=require&sslrootcert=system".into(),
                Err("only sslmode=verify-full is safe"),
            ),
            (
                format!(
                    "sslmode=verify-ca&sslrootcert={}-missing",
                    ca.ca_pem().display()
                ),
                Err("cannot read sslrootcert"),
            ),
            // allow: plain when the server takes it.
            ("sslmode=allow".into(), Ok(false)),
        ],
    )
    .await;
    check(
        Role::Source,
        &by_name,
        PG_SSL,
        vec![(format!("sslmode=verify-full&{root}"), Ok(true))],
    )
    .await;

    // allow: TLS when the server refuses plain (pg_hba: hostnossl ... reject).
    let tls_only = format!("postgres://tls_only@127.0.0.1:{port}/postgres");
    wait_until_refused_plain(&tls_only).await;
    check(
        Role::Source,
        &tls_only,
        PG_SSL,
        vec![
            ("sslmode=allow".into(), Ok(true)),
            ("sslmode=disable".into(), Err("no encryption")),
        ],
    )
    .await;
}

/// The reload that brings the hba line in is asynchronous.
async fn wait_until_refused_plain(url: &str) {
    let started = std::time::Instant::now();
    while testkit::pg::connect_url(&format!("{url}?sslmode=disable"))
        .await
        .is_ok()
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the hba line is not in force"
        );
        // Polling the postmaster's reload; nothing to wait on but a new session.
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// An emulator serving `cert`'s certificate, in front of the stack's warehouse.
async fn tls_emulator(
    w: &World,
    cert: &testkit::tls::ServerCert,
    require_ssl: bool,
) -> RedshiftEmulator {
    RedshiftEmulator::start(EmulatorConfig {
        backend_host: w.stack.warehouse.host().to_string(),
        backend_port: w.stack.warehouse.port(),
        backend_user: w.stack.warehouse.user().to_string(),
        s3: w.stack.moto.s3_client().await,
        serverless: false,
        iam_role: None,
        slices: Some(testkit::redshift::DEFAULT_SLICES),
        tls: Some(cert.server_config().unwrap()),
        require_ssl,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn every_sslmode_means_what_it_means_in_libpq_at_redshift() {
    let w = World::new().await;
    let ca = TestCa::new("redshift").unwrap();
    let cert = ca.issue("cluster", &["DNS:cluster.test"]).unwrap();
    // Like a cluster with require_ssl: a session that gets in is a TLS session.
    let emulator = tls_emulator(&w, &cert, true).await;
    let db = &w.names.warehouse_db;
    let port = emulator.port();
    let by_address = format!("redshift://postgres@127.0.0.1:{port}/{db}");
    let by_name = format!("redshift://postgres@cluster.test:{port}/{db}?hostaddr=127.0.0.1");
    let root = format!("sslrootcert={}", ca.ca_pem().display());
    let probe = "SELECT TRUE";
    check(
        Role::Destination,
        &by_address,
        probe,
        vec![
            ("sslmode=disable".into(), Err("SSL off")),
            // allow tries plain, is turned away, then uses TLS.
            ("sslmode=allow".into(), Ok(true)),
            ("sslmode=prefer".into(), Ok(true)),
            ("sslmode=require".into(), Ok(true)),
            // Without sslrootcert Redshift is checked against the public roots, which
            // a real cluster's certificate chains to and this private CA does not.
            ("sslmode=verify-ca".into(), Err("UnknownIssuer")),
            (format!("sslmode=verify-ca&{root}"), Ok(true)),
            (
                format!("sslmode=verify-full&{root}"),
                Err("certificate not valid for name"),
            ),
        ],
    )
    .await;
    check(
        Role::Destination,
        &by_name,
        probe,
        vec![
            (format!("sslmode=verify-full&{root}"), Ok(true)),
            ("sslmode=verify-full".into(), Err("UnknownIssuer")),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_sync_runs_with_verify_full_on_both_sides() {
    let w = World::with_own_source().await;
    let ca = TestCa::new("both").unwrap();
    let source = w.own_source().expect("its own source");
    source
        .enable_tls(&ca.issue("db", &["DNS:db.test"]).unwrap())
        .await
        .unwrap();
    // The source refuses plain sessions from here on: the run cannot fall back.
    source
        .hba_prepend("hostnossl all postgres 127.0.0.1/32 reject")
        .await
        .unwrap();
    let emulator = tls_emulator(
        &w,
        &ca.issue("cluster", &["DNS:cluster.test"]).unwrap(),
        true,
    )
    .await;
    let root = ca.ca_pem().display().to_string();
    let source_url = format!(
        "postgres://postgres@db.test:{}/{}?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={root}",
        source.port(),
        w.names.source_db
    );
    wait_until_refused_plain(&format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        source.port(),
        w.names.source_db
    ))
    .await;
    let admin = testkit::pg::connect_url(&format!(
        "postgres://postgres@127.0.0.1:{}/{}?sslmode=require",
        source.port(),
        w.names.source_db
    ))
    .await;
    // testkit's connect_url is plain only; write through the loader's own connector.
    assert!(admin.is_err(), "plain sessions are refused now");
    let db = parse_url(Role::Source, &source_url.clone().into(), "test").unwrap();
    let writer = connect(Role::Source, &db).await.unwrap();
    writer
        .batch_execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);
             INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 250) g;",
        )
        .await
        .unwrap();
    let yaml = format!(
        "name: tls\n\
         source:\n  url: {source_url}\n\
         destination:\n  url: redshift://postgres@cluster.test:{}/{}?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={root}\n  \
         schema: analytics\n  iam_role: arn:aws:iam::123456789012:role/redshift-copy\n\
         frequency: 300\n\
         tables:\n  - source: public.items\n    copy_mode: INSERT_ONLY\n",
        emulator.port(),
        w.names.warehouse_db
    );
    let job = Job::parse(&yaml, Format::Yaml).unwrap();
    crate::sync::setup_job(&w, &job).await;
    let outcomes = crate::sync::run(&w, &job).await;
    assert_eq!(crate::sync::ok(&outcomes[0]).rows, 250);
    let count: i64 = w
        .warehouse()
        .await
        .query_one("SELECT count(*) FROM analytics.items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 250);
}
