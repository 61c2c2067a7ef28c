//! Connection references resolved from Secrets Manager and SSM (in moto), and the
//! password kept out of every Debug, error and log line.

use aws_sdk_ssm::types::ParameterType;
use redshift_loader::config::UrlRef;
use redshift_loader::secrets::{self, Role};

use crate::support::{text, World};

const PASSWORD: &str = "Pa55-w0rd-that-must-never-leak";

#[tokio::test]
async fn rds_format_secret_resolves_and_connects_without_showing_the_password() {
    let w = World::new().await;
    let name = format!("prod/source-{}", w.names.source_db);
    let secret = serde_json::json!({
        "engine": "postgres", "host": "127.0.0.1", "port": w.stack.source.port(),
        "username": "postgres", "password": PASSWORD, "dbname": w.names.source_db,
        // Without it the loader insists on TLS (RDS secrets name RDS, which has it);
        // the test cluster has none.
        "sslmode": "disable",
    });
    w.app
        .clients
        .secrets
        .secrets_manager
        .create_secret()
        .name(&name)
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap();
    let db = secrets::resolve(
        Role::Source,
        &UrlRef::Secret(name.clone()),
        &w.app.clients.secrets,
    )
    .await
    .unwrap();
    assert!(!format!("{db:?}").contains(PASSWORD), "{db:?}");
    assert!(!db.describe().contains(PASSWORD));
    assert!(
        db.describe().contains(&w.names.source_db),
        "{}",
        db.describe()
    );
    // The test cluster trusts local connections, so the password is sent and ignored;
    // what matters is that host, port, user and database came from the secret.
    let client = redshift_loader::source::open(&db).await.unwrap();
    let row = client
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), w.names.source_db);
}

#[tokio::test]
async fn ssm_securestring_url_resolves_and_connects() {
    let w = World::new().await;
    let name = format!("/loader/{}/redshift", w.names.warehouse_db);
    let url = format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{}?sslmode=disable",
        w.stack.emulator.port(),
        w.names.warehouse_db
    );
    w.app
        .clients
        .secrets
        .ssm
        .put_parameter()
        .name(&name)
        .value(&url)
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let db = secrets::resolve(
        Role::Destination,
        &UrlRef::Ssm(name),
        &w.app.clients.secrets,
    )
    .await
    .unwrap();
    assert!(!format!("{db:?}").contains(PASSWORD));
    let client = redshift_loader::warehouse::open(&db).await.unwrap();
    let row = client.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}

#[tokio::test]
async fn missing_secret_and_parameter_are_named_in_the_error() {
    let w = World::new().await;
    let err = secrets::resolve(
        Role::Source,
        &UrlRef::Secret("does/not/exist".into()),
        &w.app.clients.secrets,
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "source database: secret does/not/exist does not exist — check the job's source.url_secret and AWS_REGION"
    );
    let err = secrets::resolve(
        Role::Destination,
        &UrlRef::Ssm("/nope".into()),
        &w.app.clients.secrets,
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "destination database: SSM parameter /nope does not exist — check the job's destination.url_ssm and AWS_REGION"
    );
}

#[tokio::test]
async fn password_never_reaches_logs_or_errors_when_a_connection_fails() {
    let w = World::new().await;
    // A secret pointing at a port nobody listens on: setup must fail, loudly, and
    // still not print the password, even with debug logging.
    let dead_port = testkit::process::free_port().unwrap();
    let name = format!("prod/dead-{}", w.names.source_db);
    let url = format!("postgres://loader:{PASSWORD}@127.0.0.1:{dead_port}/shop?sslmode=disable");
    w.app
        .clients
        .secrets
        .secrets_manager
        .create_secret()
        .name(&name)
        .secret_string(&url)
        .send()
        .await
        .unwrap();
    let yaml = w.job_yaml("leaky", "  - source: public.orders\n").replacen(
        &format!("  url: {}\n", w.source_url()),
        &format!("  url_secret: {name}\n"),
        1,
    );
    assert!(yaml.contains("url_secret"), "{yaml}");
    w.apply_yaml(&yaml).await;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_redshift-loader"))
        .args(["setup", "leaky"])
        .env_clear()
        .envs(w.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("source database"), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{dead_port}")),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "password in stderr:\n{stderr}");
    assert!(!stdout.contains(PASSWORD), "password in stdout:\n{stdout}");
}
