//! The test kit's own servers: the Invoke recorder, moto, a PostgreSQL replica, and
//! `testkit up`.

use std::time::{Duration, Instant};

use testkit::stack::shared;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A raw HTTP/1.1 POST (the recorder speaks plain HTTP like the Lambda endpoint).
async fn post(endpoint: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn invoke_recorder_answers_202_and_keeps_payloads_per_function() {
    let stack = shared();
    let endpoint = stack.invoke.endpoint();
    let function = testkit::moto::unique_name("fn");
    let response = post(
        &endpoint,
        &format!("/2015-03-31/functions/{function}/invocations"),
        &[("X-Amz-Invocation-Type", "Event")],
        r#"{"action":"run","job":"shop","hop":2}"#,
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    let other = testkit::moto::unique_name("fn");
    post(
        &endpoint,
        &format!("/2015-03-31/functions/{other}/invocations"),
        &[],
        "{}",
    )
    .await;

    let mine = stack.invoke.take(&function);
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].invocation_type, "Event");
    assert_eq!(mine[0].payload["hop"], 2);
    assert!(stack.invoke.take(&function).is_empty(), "take removes");
    let theirs = stack.invoke.take(&other);
    assert_eq!(theirs[0].invocation_type, "RequestResponse");
}

#[tokio::test]
async fn moto_serves_s3_and_dynamodb_with_unique_names() {
    let stack = shared();
    let bucket = stack.moto.create_bucket().await.unwrap();
    assert_ne!(bucket, stack.moto.create_bucket().await.unwrap());
    let s3 = stack.moto.s3_client().await;
    s3.put_object()
        .bucket(&bucket)
        .key("a/b.txt")
        .body(b"hello".to_vec().into())
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket(&bucket)
        .key("a/b.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"hello"
    );

    let table = stack.state_table().await.unwrap();
    let described = stack
        .moto
        .dynamodb_client()
        .await
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = described
        .table()
        .unwrap()
        .key_schema()
        .iter()
        .map(|k| k.attribute_name().to_string())
        .collect();
    assert_eq!(keys, ["pk", "sk"]);
}

#[tokio::test]
async fn a_replica_serves_what_its_primary_committed_and_refuses_writes() {
    let primary = testkit::pg::PgCluster::start("primary").await.unwrap();
    let replica = primary.start_replica("replica").await.unwrap();
    assert_ne!(replica.port(), primary.port());
    // Made after the base backup: it reaches the replica by streaming.
    let db = primary.create_database().await.unwrap();
    primary
        .connect(&db)
        .await
        .unwrap()
        .batch_execute("CREATE TABLE t (id int, v text); INSERT INTO t VALUES (1, 'one')")
        .await
        .unwrap();
    replica.wait_for_replay(&primary).await.unwrap();

    let r = replica.connect(&db).await.unwrap();
    let rows: Vec<(i32, String)> = r
        .query("SELECT id, v FROM t", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(rows, [(1, "one".to_string())]);
    let standby: bool = r
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(standby);
    let refused = r
        .batch_execute("INSERT INTO t VALUES (2, 'two')")
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION),
        "{refused}"
    );
    // The primary is not a standby: waiting on it as if it were says so.
    let err = primary.wait_for_replay(&replica).await.unwrap_err();
    assert!(err.to_string().contains("is not a standby"), "{err}");
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(cmdline);
            }
        }
    }
    found
}

#[tokio::test]
async fn testkit_up_prints_a_working_environment_and_cleans_up_on_sigterm() {
    let dir = std::env::temp_dir().join(testkit::moto::unique_name("up"));
    std::fs::create_dir_all(&dir).unwrap();
    let env_file = dir.join("env.sh");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_testkit"))
        .args(["up", "--env-file", env_file.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let started = Instant::now();
    while !env_file.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .await
                .unwrap();
            panic!("testkit up exited with {status}:\n{err}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "testkit up did not get ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = std::fs::read_to_string(&env_file).unwrap();
    let var = |name: &str| -> String {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"));
        line.split_once('=')
            .unwrap()
            .1
            .trim_matches('\'')
            .to_string()
    };

    // The databases it names exist and answer, the emulator included.
    let source = testkit::pg::connect_url(&var("SOURCE_DATABASE_URL"))
        .await
        .unwrap();
    source
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .unwrap();
    let redshift = testkit::pg::connect_url(&var("REDSHIFT_DATABASE_URL"))
        .await
        .unwrap();
    let one: i32 = redshift.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    // The state table and bucket it names exist in its moto.
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(var("AWS_ENDPOINT_URL"))
        .region(aws_config::Region::new(var("AWS_REGION")))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&sdk)
        .describe_table()
        .table_name(var("LOADER_STATE_TABLE"))
        .send()
        .await
        .unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.head_bucket()
        .bucket(var("LOADER_STAGING_BUCKET"))
        .send()
        .await
        .unwrap();
    drop((source, redshift));

    // SIGTERM stops it and everything it started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("testkit up stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    let needle = format!("testkit-{pid}-");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_mentioning(&needle);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
