//! Every `LOADER_*` and `IMPORT_*` variable is checked when the CLI or the function
//! starts: a bad one stops it before any work, with the variable's name.

use std::time::Duration;

use crate::support::{text, World};

/// One bad value of each variable, and the start of the line that must name it.
const BAD: &[(&str, &str)] = &[
    ("IMPORT_ROW_LIMIT", "abc"),
    ("IMPORT_CHUNK_SIZE", "0"),
    ("LOADER_LEASE_SECONDS", "20"),
    ("LOADER_LOOKBACK_SECONDS", "10 minutes"),
    ("LOADER_CATCHUP_WINDOW", "-5"),
    ("LOADER_TABLE_CONCURRENCY", "0"),
    ("LOADER_TABLES_PER_INVOCATION", "many"),
    ("LOADER_FANOUT_LIMIT", "0"),
    ("LOADER_DEADLINE_MARGIN_SECONDS", "soon"),
    ("LOADER_S3_FORCE_PATH_STYLE", "on"),
    ("LOADER_STATE_TABLE", "my table"),
    ("LOADER_STAGING_BUCKET", "s3://bucket/staging"),
    ("LOADER_STAGING_PREFIX", "s3://bucket/staging"),
    ("LOADER_COPY_ROLE_ARN", "redshift-copy"),
    ("LOADER_SCHEDULE_GROUP", "my group"),
    ("LOADER_SCHEDULER_ROLE_ARN", "scheduler"),
    ("LOADER_FUNCTION_NAME", "my function"),
    ("LOADER_FUNCTION_ARN", "redshift-loader"),
];

#[tokio::test]
async fn the_cli_refuses_each_bad_variable_by_name_before_any_work() {
    let w = World::new().await;
    w.apply("shop", "  - source: public.orders\n").await;
    for (name, value) in BAD {
        let out = w.cli_with(&["run", "shop"], &[(name, value)]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}={value}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: {name}: ")),
            "{name}={value}: {stderr}"
        );
        assert_eq!(stdout, "", "{name}={value}: nothing ran");
    }
    // Nothing was recorded: the run never started.
    let out = w.cli(&["--json", "runs", "shop"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs["runs"], serde_json::json!([]), "{runs}");
}

#[tokio::test]
async fn the_function_refuses_a_bad_variable_at_start_up() {
    let w = World::new().await;
    let api = testkit::runtime::RuntimeApi::start(&format!(
        "arn:aws:lambda:us-east-1:123456789012:function:{}",
        w.function
    ))
    .await
    .unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_redshift-loader"))
        .env_clear()
        .envs(w.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", &w.function)
        .env("LOADER_LEASE_SECONDS", "20m ")
        .env("IMPORT_ROW_LIMIT", "lots")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the function stops at start-up")
        .unwrap();
    assert!(!out.status.success());
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        logs.contains(
            "IMPORT_ROW_LIMIT: expected a whole number of rows of at least 1, got \\\"lots\\\""
        ),
        "{logs}"
    );
    assert!(
        !logs.contains("LOADER_LEASE_SECONDS"),
        "20m is a duration: {logs}"
    );
    // Lambda is told why, so the invocation's error is the reason, not an exit code.
    let reported = api.init_error().expect("an init error was reported");
    assert_eq!(reported["errorType"], "Runtime.InitError", "{reported}");
    assert!(
        reported["errorMessage"]
            .as_str()
            .unwrap()
            .contains("IMPORT_ROW_LIMIT: expected a whole number of rows"),
        "{reported}"
    );
}
