//! Errors a user can act on, through `setup` and `run` on the local stack: refused
//! connections, wrong passwords, TLS a server does not offer, missing tables, missing
//! privileges — on the source and on Redshift. Each is one line that names the database
//! (`source database host:port/db`), the object and what to check, and no output ever
//! holds the password.

use std::collections::BTreeMap;

use redshift_loader::config::{Format, Job};
use serde_json::Value;
use testkit::pg::PgCluster;

use crate::support::{text, World};

/// In every URL these tests write; it must never come out.
const PASSWORD: &str = "Pw-never-printed-7c1e";

const CONNECT_HINT: &str = "check the host and port, and that the server accepts connections from here (security group, VPC, NAT)";
const TLS_HINT: &str = "check sslmode (require and verify-* need a server with SSL on) and that sslrootcert= names the CA that issued the server's certificate (RDS: the region's bundle, README \"Reaching RDS over TLS\"); verify-full also needs the host name in it";
const SOURCE_GRANT: &str = "grant SELECT on the table and USAGE on its schema to the loader's user (see README: source user)";
const REDSHIFT_GRANT: &str = "grant the loader user CREATE and USAGE on the schema, SELECT/INSERT/DELETE on its tables, and CREATE on the database while the schema does not exist (see README: Redshift user)";

fn url(user: &str, port: u16, db: &str, query: &str) -> String {
    format!("postgres://{user}:{PASSWORD}@127.0.0.1:{port}/{db}?{query}")
}

/// The URLs of each job these tests write, by job name (unique in this file): they
/// hold the password, so a job may not store them; the jobs read them from the
/// environment variables `SRC_<job>` and `DST_<job>`, which [`cli`] sets.
static URLS: std::sync::Mutex<BTreeMap<String, (String, String)>> =
    std::sync::Mutex::new(BTreeMap::new());

/// Creates or replaces job `name` with these URLs.
async fn apply(w: &World, name: &str, source: &str, destination: &str, tables: &str) {
    URLS.lock().unwrap().insert(
        name.to_string(),
        (source.to_string(), destination.to_string()),
    );
    let yaml = format!(
        "name: {name}\nsource:\n  url_env: SRC_{name}\ndestination:\n  url_env: DST_{name}\n  \
         schema: analytics\n  iam_role: arn:aws:iam::123456789012:role/redshift-copy\n\
         frequency: 300\ntables:\n{tables}"
    );
    let job = Job::parse(&yaml, Format::Yaml).unwrap();
    let version = w.app.store.get_job(name).await.unwrap().map(|s| s.version);
    w.app
        .store
        .put_job(&job, version, chrono::Utc::now())
        .await
        .unwrap();
}

/// Runs the CLI with the jobs' URLs in its environment; checks the password stayed
/// in; returns (exit code, stdout, stderr).
fn cli(w: &World, args: &[&str]) -> (Option<i32>, String, String) {
    let urls = URLS.lock().unwrap().clone();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_redshift-loader"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(w.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs(urls.iter().flat_map(|(job, (source, destination))| {
            [
                (format!("SRC_{job}"), source.clone()),
                (format!("DST_{job}"), destination.clone()),
            ]
        }))
        .output()
        .expect("the redshift-loader binary runs");
    let (stdout, stderr) = text(&out);
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "the password was printed:\n{stdout}\n{stderr}"
    );
    (out.status.code(), stdout, stderr)
}

/// The one `error: ` line of stderr (log lines aside).
fn error_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    lines[0]
}

/// The `error` of the only table of a `--json` setup or run.
fn table_error(stdout: &str) -> String {
    let v: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let tables = v["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 1, "{v}");
    assert_eq!(tables[0]["ok"], false, "{v}");
    tables[0]["error"].as_str().unwrap().to_string()
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

const ONE_TABLE: &str = "  - source: public.items\n";

async fn with_items(w: &World) {
    w.source()
        .await
        .batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a')")
        .await
        .unwrap();
}

#[tokio::test]
async fn refused_connections_name_the_database_and_what_to_check() {
    let w = World::new().await;
    with_items(&w).await;
    let port = closed_port();
    let source_port = w.stack.source.port();
    let (src_db, dw_db) = (&w.names.source_db, &w.names.warehouse_db);

    apply(
        &w,
        "refused",
        &url("loader", port, src_db, "sslmode=disable"),
        &w.redshift_url(),
        ONE_TABLE,
    )
    .await;
    let (code, _, stderr) = cli(&w, &["setup", "refused"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        error_line(&stderr),
        format!(
            "error: source database 127.0.0.1:{port}/{src_db}: connection refused — {CONNECT_HINT}"
        )
    );

    apply(
        &w,
        "refused",
        &url("postgres", source_port, src_db, "sslmode=disable"),
        &url("loader", port, dw_db, "sslmode=disable"),
        ONE_TABLE,
    )
    .await;
    let (code, _, stderr) = cli(&w, &["run", "refused"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        error_line(&stderr),
        format!("error: destination database 127.0.0.1:{port}/{dw_db}: connection refused — {CONNECT_HINT}")
    );
}

#[tokio::test]
async fn tls_required_by_the_job_but_not_offered_by_the_server() {
    let w = World::new().await;
    with_items(&w).await;
    let (src_db, dw_db) = (&w.names.source_db, &w.names.warehouse_db);
    let source_port = w.stack.source.port();
    let redshift_port = w.stack.emulator.port();
    let tls_error = "error performing TLS handshake: server does not support TLS";

    apply(
        &w,
        "tls",
        &url("postgres", source_port, src_db, "sslmode=require"),
        &w.redshift_url(),
        ONE_TABLE,
    )
    .await;
    let (code, _, stderr) = cli(&w, &["setup", "tls"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        error_line(&stderr),
        format!(
            "error: source database 127.0.0.1:{source_port}/{src_db}: {tls_error} — {TLS_HINT}"
        )
    );

    apply(
        &w,
        "tls",
        &url("postgres", source_port, src_db, "sslmode=disable"),
        &url("postgres", redshift_port, dw_db, "sslmode=require"),
        ONE_TABLE,
    )
    .await;
    let (code, _, stderr) = cli(&w, &["run", "tls"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        error_line(&stderr),
        format!("error: destination database 127.0.0.1:{redshift_port}/{dw_db}: {tls_error} — {TLS_HINT}")
    );
}

/// A cluster that asks user `loader` for its password (scram-sha-256), with `db`.
async fn password_cluster() -> (PgCluster, String) {
    let cluster = PgCluster::start("auth").await.unwrap();
    let admin = cluster.connect("postgres").await.unwrap();
    admin
        .batch_execute("CREATE ROLE loader LOGIN PASSWORD 'the-right-one'")
        .await
        .unwrap();
    let db = cluster.create_database().await.unwrap();
    let hba = cluster.dir().join("data").join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host all loader 127.0.0.1/32 scram-sha-256\n{rules}"),
    )
    .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    // The postmaster reads the rules when it handles the reload signal; wait until a
    // wrong password is refused (and check that the right one is taken).
    let wrong = format!(
        "postgres://loader:wrong@127.0.0.1:{}/{db}?sslmode=disable",
        cluster.port()
    );
    let mut refused = false;
    for _ in 0..400 {
        match tokio_postgres::connect(&wrong, tokio_postgres::NoTls).await {
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD) => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(25)).await,
        }
    }
    assert!(refused, "the cluster never asked for a password");
    let right = format!(
        "postgres://loader:the-right-one@127.0.0.1:{}/{db}?sslmode=disable",
        cluster.port()
    );
    // The handshake (and so authentication) is done when connect returns.
    let _session = tokio_postgres::connect(&right, tokio_postgres::NoTls)
        .await
        .expect("the right password is taken");
    (cluster, db)
}

#[tokio::test]
async fn wrong_password_is_an_authentication_failure_that_never_shows_the_password() {
    let w = World::new().await;
    with_items(&w).await;
    let (cluster, db) = password_cluster().await;
    let port = cluster.port();
    let src_db = &w.names.source_db;

    apply(
        &w,
        "auth",
        &url("loader", port, &db, "sslmode=disable"),
        &w.redshift_url(),
        ONE_TABLE,
    )
    .await;
    let (code, _, stderr) = cli(&w, &["setup", "auth"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        error_line(&stderr),
        format!(
            "error: source database 127.0.0.1:{port}/{db}: password authentication failed for user \"loader\" — \
             check the user and password in the job's source url/url_secret, and that the server lets this user connect from here"
        )
    );

    // The same cluster as the destination (a wrong Redshift password fails the same way).
    apply(
        &w,
        "auth",
        &url("postgres", w.stack.source.port(), src_db, "sslmode=disable"),
        &url("loader", port, &db, "sslmode=disable"),
        ONE_TABLE,
    )
    .await;
    let (code, _, stderr) = cli(&w, &["--json", "setup", "auth"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        error_line(&stderr),
        format!(
            "error: destination database 127.0.0.1:{port}/{db}: password authentication failed for user \"loader\" — \
             check the user and password in the job's destination url/url_secret (see README: Redshift user)"
        )
    );
}

#[tokio::test]
async fn missing_tables_and_missing_privileges_on_both_sides() {
    let w = World::new().await;
    with_items(&w).await;
    let (src_db, dw_db) = (w.names.source_db.clone(), w.names.warehouse_db.clone());
    let source_port = w.stack.source.port();
    let redshift_port = w.stack.emulator.port();
    let source_at = format!("source database 127.0.0.1:{source_port}/{src_db}");
    let destination_at = format!("destination database 127.0.0.1:{redshift_port}/{dw_db}");
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let reader = format!("reader_{}", &suffix[..12]);
    let writer = format!("writer_{}", &suffix[..12]);
    let admin_source = url("postgres", source_port, &src_db, "sslmode=disable");
    let admin_redshift = url("postgres", redshift_port, &dw_db, "sslmode=disable");
    // Roles without the privileges a loader needs (loopback trusts them: no password).
    w.source()
        .await
        .batch_execute(&format!("CREATE ROLE {reader} LOGIN"))
        .await
        .unwrap();
    w.warehouse()
        .await
        .batch_execute(&format!(
            "CREATE ROLE {writer} LOGIN; CREATE SCHEMA analytics; GRANT CREATE ON DATABASE \"{dw_db}\" TO {writer};"
        ))
        .await
        .unwrap();

    // A source table that is not there: setup says which, where, and what to check.
    apply(
        &w,
        "missing",
        &admin_source,
        &admin_redshift,
        "  - source: public.nope\n",
    )
    .await;
    let (code, stdout, _) = cli(&w, &["--json", "setup", "missing"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        table_error(&stdout),
        format!(
            "table public.nope: {source_at}: source table public.nope does not exist — \
             check the table's `source` in the job (schema and name, case included)"
        )
    );

    // A source user that may not read the table: setup says so before any run.
    let reader_url = url(&reader, source_port, &src_db, "sslmode=disable");
    apply(&w, "privs", &reader_url, &admin_redshift, ONE_TABLE).await;
    let (code, stdout, _) = cli(&w, &["--json", "setup", "privs"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        table_error(&stdout),
        format!("table public.items: {source_at}: source table public.items: permission denied for table public.items — {SOURCE_GRANT}")
    );

    // A Redshift user without CREATE on the schema (before anyone created the table).
    let writer_url = url(&writer, redshift_port, &dw_db, "sslmode=disable");
    apply(&w, "rsprivs", &admin_source, &writer_url, ONE_TABLE).await;
    let (code, stdout, _) = cli(&w, &["--json", "setup", "rsprivs"]);
    assert_eq!(code, Some(1));
    let error = table_error(&stdout);
    assert!(
        error.starts_with(&format!(
            "table public.items: {destination_at}: Redshift refused `CREATE TABLE"
        )),
        "{error}"
    );
    assert!(
        error.ends_with(&format!(
            ": permission denied for schema analytics — {REDSHIFT_GRANT}"
        )),
        "{error}"
    );
    assert!(!error.contains('\n'), "{error}");

    // Set up by an administrator, then run by that user: the source refuses the read.
    apply(&w, "privs", &admin_source, &admin_redshift, ONE_TABLE).await;
    let (code, stdout, stderr) = cli(&w, &["setup", "privs"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    apply(&w, "privs", &reader_url, &admin_redshift, ONE_TABLE).await;
    let (code, stdout, _) = cli(&w, &["--json", "run", "privs"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        table_error(&stdout),
        format!(
            "table public.items: {source_at}: permission denied for table public.items — {SOURCE_GRANT}"
        )
    );

    apply(&w, "privs", &admin_source, &admin_redshift, ONE_TABLE).await;

    // The Redshift table dropped behind the loader's back: the run says to set it up.
    w.warehouse()
        .await
        .batch_execute("DROP TABLE analytics.items")
        .await
        .unwrap();
    let (code, stdout, _) = cli(&w, &["--json", "run", "privs", "--force"]);
    assert_eq!(code, Some(1));
    let error = table_error(&stdout);
    assert!(
        error.starts_with(&format!("table public.items: {destination_at}: ")),
        "{error}"
    );
    assert!(
        error.ends_with(
            "relation \"analytics.items\" does not exist — run `redshift-loader setup JOB` to create it (or with `--table T --rebuild` to recreate it)"
        ),
        "{error}"
    );

    w.source()
        .await
        .batch_execute(&format!("DROP ROLE {reader}"))
        .await
        .unwrap();
    w.warehouse()
        .await
        .batch_execute(&format!("DROP OWNED BY {writer}; DROP ROLE {writer}"))
        .await
        .unwrap();
}

/// What no line a user sees may hold: the SDK's debug structure.
fn assert_no_sdk_debug(out: &str) {
    for debris in [
        "Error {",
        "unhandled error",
        "service error",
        "dispatch failure",
    ] {
        assert!(!out.contains(debris), "{debris:?} in:\n{out}");
    }
}

#[tokio::test]
async fn a_missing_staging_bucket_is_one_line_that_names_the_setting() {
    let w = World::new().await;
    with_items(&w).await;
    w.apply("nobucket", ONE_TABLE).await;
    let out = w.cli(&["setup", "nobucket"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let bucket = testkit::moto::unique_name("missing");
    let out = w.cli_with(
        &["--json", "run", "nobucket"],
        &[("LOADER_STAGING_BUCKET", &bucket)],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_no_sdk_debug(&stdout);
    assert_no_sdk_debug(&stderr);
    let error = table_error(&stdout);
    assert!(
        error.starts_with(&format!(
            "table public.items: staging s3://{bucket}/staging/nobucket/public.items/"
        )),
        "{error}"
    );
    assert!(
        error.ends_with(&format!(
            ".csv.zst: S3 bucket {bucket} does not exist — check LOADER_STAGING_BUCKET and AWS_REGION"
        )),
        "{error}"
    );
    // `status` shows the same line as the table's last error.
    let out = w.cli(&["--json", "status", "nobucket"]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains(&format!("S3 bucket {bucket} does not exist")),
        "{stdout}"
    );
    assert_no_sdk_debug(&stdout);
}

#[tokio::test]
async fn a_missing_state_table_is_one_line_that_names_the_setting() {
    let w = World::new().await;
    let table = testkit::moto::unique_name("missing");
    for args in [&["jobs", "list"][..], &["run", "shop"], &["status"]] {
        let out = w.cli_with(args, &[("LOADER_STATE_TABLE", &table)]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}{stderr}");
        assert_eq!(
            error_line(&stderr),
            format!("error: DynamoDB table {table} does not exist — check LOADER_STATE_TABLE and AWS_REGION"),
            "{args:?}"
        );
        assert_no_sdk_debug(&stderr);
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_and_missing_credentials_say_what_to_check() {
    let w = World::new().await;
    let table = &w.names.state_table;
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let out = w.cli_with(&["jobs", "list"], &[("AWS_ENDPOINT_URL", &endpoint)]);
    let (_, stderr) = text(&out);
    assert_eq!(
        error_line(&stderr),
        format!("error: DynamoDB could not be reached for Scan on DynamoDB table {table} — check the network (inside a VPC: a VPC endpoint or NAT), AWS_REGION and AWS_ENDPOINT_URL*")
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_redshift-loader"))
        .args(["jobs", "list"])
        .env_clear()
        .envs(
            w.env
                .iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY")
                })
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(
        error_line(&stderr),
        format!("error: DynamoDB refused the AWS credentials for Scan on DynamoDB table {table} (none were found) — check AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, and renew an expired session")
    );
    assert_no_sdk_debug(&stderr);
}
