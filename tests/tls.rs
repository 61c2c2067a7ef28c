//! TLS to PostgreSQL-protocol servers: `sslmode` and `sslrootcert` honoured, against a
//! cluster serving a certificate from a CA made for the test.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use redshift_loader::secrets::{parse_url, Role};
use testkit::pg::PgCluster;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a server certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=redshift-loader test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

#[tokio::test]
async fn sslmode_and_sslrootcert_are_honoured() {
    let cluster = PgCluster::start("tls").await.unwrap();
    let dir = cluster.dir().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir);
    // The server reads its key as its own user, with no access for others.
    let owner = std::fs::metadata(cluster.dir()).unwrap();
    for f in ["server.pem", "server.key"] {
        let p = dir.join(f);
        std::os::unix::fs::chown(&p, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    std::os::unix::fs::chown(&dir, Some(owner.uid()), Some(owner.gid())).unwrap();
    let admin = cluster.connect("postgres").await.unwrap();
    // ALTER SYSTEM refuses multi-statement (implicit transaction) queries: one each.
    for statement in [
        format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'",
            dir.join("server.pem").display()
        ),
        format!(
            "ALTER SYSTEM SET ssl_key_file = '{}'",
            dir.join("server.key").display()
        ),
        "ALTER SYSTEM SET ssl = on".to_string(),
        "SELECT pg_reload_conf()".to_string(),
    ] {
        admin.batch_execute(&statement).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let url = |query: &str| {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{query}",
            cluster.port()
        )
    };
    let ssl_in_use = |client: tokio_postgres::Client| async move {
        client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get::<_, bool>(0)
    };
    let ca = dir.join("ca.pem");

    // require + the CA: TLS, verified.
    let db = parse_url(
        Role::Source,
        &url(&format!("sslmode=require&sslrootcert={}", ca.display())).into(),
        "test",
    )
    .unwrap();
    let client = redshift_loader::connect::connect(Role::Source, &db)
        .await
        .unwrap();
    assert!(ssl_in_use(client).await);

    // verify-full is read as require with verification (rustls always verifies).
    let db = parse_url(
        Role::Destination,
        &url(&format!("sslmode=verify-full&sslrootcert={}", ca.display())).into(),
        "test",
    )
    .unwrap();
    let client = redshift_loader::connect::connect(Role::Destination, &db)
        .await
        .unwrap();
    assert!(ssl_in_use(client).await);

    // require without the CA: refused, and the error says what to add.
    let db = parse_url(Role::Source, &url("sslmode=require").into(), "test").unwrap();
    let err = redshift_loader::connect::connect(Role::Source, &db)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("source database 127.0.0.1:"), "{err}");
    assert!(err.contains("sslrootcert"), "{err}");

    // disable: plain, even though the server offers TLS.
    let db = parse_url(Role::Source, &url("sslmode=disable").into(), "test").unwrap();
    let client = redshift_loader::connect::connect(Role::Source, &db)
        .await
        .unwrap();
    assert!(!ssl_in_use(client).await);
}
