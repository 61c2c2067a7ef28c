//! Jobs in DynamoDB: apply, read back, list, delete; from the library and the CLI.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use redshift_loader::state::StateError;

use crate::support::{text, World};

const ONE_TABLE: &str = "  - source: public.orders\n";

#[tokio::test]
async fn applied_job_reads_back_equal_and_versions_guard_writes() {
    let w = World::new().await;
    let job = w.job("shop", ONE_TABLE);
    let store = &w.app.store;
    assert_eq!(store.get_job("shop").await.unwrap(), None);
    let v1 = store.put_job(&job, None, Utc::now()).await.unwrap();
    assert_eq!(v1, 1);
    let stored = store.require_job("shop").await.unwrap();
    assert_eq!(stored.job, job);
    assert_eq!(stored.version, 1);

    // Creating again, or writing over a version someone else replaced, is refused.
    assert!(matches!(
        store.put_job(&job, None, Utc::now()).await,
        Err(StateError::Conflict { .. })
    ));
    let mut changed = job.clone();
    changed.frequency = 600;
    assert_eq!(
        store.put_job(&changed, Some(1), Utc::now()).await.unwrap(),
        2
    );
    assert!(matches!(
        store.put_job(&job, Some(1), Utc::now()).await,
        Err(StateError::Conflict { .. })
    ));
    assert_eq!(store.require_job("shop").await.unwrap().job.frequency, 600);
}

#[tokio::test]
async fn stored_job_holds_references_not_secrets() {
    let w = World::new().await;
    let tables = ONE_TABLE;
    let yaml = format!(
        "name: refs\nsource:\n  url_secret: prod/source\ndestination:\n  url_ssm: /prod/redshift\n  iam_role: arn:aws:iam::123456789012:role/copy\nfrequency: 300\ntables:\n{tables}"
    );
    w.apply_yaml(&yaml).await;
    let item = w
        .stack
        .moto
        .dynamodb_client()
        .await
        .get_item()
        .table_name(&w.names.state_table)
        .key("pk", AttributeValue::S("JOB#refs".into()))
        .key("sk", AttributeValue::S("CONFIG".into()))
        .send()
        .await
        .unwrap();
    let config = item.item().unwrap()["config"].as_s().unwrap().clone();
    assert!(
        config.contains("\"url_secret\":\"prod/source\""),
        "{config}"
    );
    assert!(
        config.contains("\"url_ssm\":\"/prod/redshift\""),
        "{config}"
    );
}

#[tokio::test]
async fn delete_refuses_while_a_lease_is_held_and_removes_everything_after() {
    let w = World::new().await;
    let job = w.apply("leased", ONE_TABLE).await;
    let dynamo = w.stack.moto.dynamodb_client().await;
    let lease = |expires: i64| {
        dynamo
            .put_item()
            .table_name(&w.names.state_table)
            .item("pk", AttributeValue::S("JOB#leased".into()))
            .item("sk", AttributeValue::S("LEASE#public.orders".into()))
            .item("owner", AttributeValue::S("run-1".into()))
            .item("expires_at", AttributeValue::N(expires.to_string()))
    };
    lease(Utc::now().timestamp() + 600).send().await.unwrap();
    let err = w
        .app
        .store
        .delete_job(&job.name, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::LeaseHeld { .. }), "{err}");
    assert!(err.to_string().contains("run-1"), "{err}");
    assert!(w.app.store.get_job("leased").await.unwrap().is_some());

    // An expired lease does not block; everything of the job goes.
    lease(Utc::now().timestamp() - 1).send().await.unwrap();
    w.app.store.delete_job(&job.name, Utc::now()).await.unwrap();
    assert_eq!(w.app.store.get_job("leased").await.unwrap(), None);
    let left = dynamo
        .query()
        .table_name(&w.names.state_table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("JOB#leased".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(left.count(), 0);
}

#[tokio::test]
async fn cli_applies_lists_shows_and_deletes_jobs() {
    let w = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.yaml");
    std::fs::write(&file, w.job_yaml("shop", ONE_TABLE)).unwrap();
    let path = file.to_str().unwrap();

    let out = w.cli(&["jobs", "apply", "-f", path]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("job shop: created (version 1)"), "{stdout}");

    let out = w.cli(&["jobs", "apply", "-f", path]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("job shop: unchanged"), "{stdout}");

    // A change shows as a diff.
    std::fs::write(
        &file,
        w.job_yaml("shop", ONE_TABLE)
            .replace("frequency: 300", "frequency: 900"),
    )
    .unwrap();
    let out = w.cli(&["jobs", "apply", "-f", path, "--dry-run"]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("-frequency: 300\n+frequency: 900"),
        "{stdout}"
    );
    assert!(stdout.contains("would change"), "{stdout}");
    assert_eq!(w.app.store.require_job("shop").await.unwrap().version, 1);
    let out = w.cli(&["jobs", "apply", "-f", path]);
    assert!(text(&out).0.contains("job shop: updated (version 2)"));

    let out = w.cli(&["jobs", "list"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(
        stdout.contains("shop") && stdout.contains("900s"),
        "{stdout}"
    );

    let out = w.cli(&["--json", "jobs", "show", "shop"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["job"]["frequency"], 900);
    assert_eq!(shown["tables"][0]["source"], "public.orders");

    let out = w.cli(&["jobs", "delete", "shop"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = w.cli(&["jobs", "show", "shop"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "error: job shop does not exist; create it with `redshift-loader jobs apply -f FILE`"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn cli_reports_a_bad_job_file_by_field_and_stores_nothing() {
    let w = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    let yaml = w.job_yaml(
        "bad",
        "  - source: public.a\n  - source: public.b\n  - source: public.c\n    copy_mode: UPSERT\n",
    );
    std::fs::write(&file, yaml).unwrap();
    let out = w.cli(&["jobs", "apply", "-f", file.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("tables[2].copy_mode: unknown value \"UPSERT\", expected INSERT_ONLY, INSERT_AND_UPDATE or FULL_DATA_SYNC"),
        "{stderr}"
    );
    assert_eq!(w.app.store.get_job("bad").await.unwrap(), None);
}

/// A value of the wrong type no longer hides the file's other mistakes.
#[tokio::test]
async fn cli_reports_type_errors_and_validation_errors_together() {
    let w = World::new().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("both.yaml");
    let yaml = w
        .job_yaml(
            "both",
            "  - source: public.a\n    copy_mode: UPSERT\n  - source: public.b\n    import_chunk_size: 0\n",
        )
        .replace("frequency: 300", "frequency: 300\nat: '25:00'");
    std::fs::write(&file, yaml).unwrap();
    let out = w.cli(&["jobs", "apply", "-f", file.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let path = file.display();
    assert_eq!(
        stderr,
        format!(
            "error: {path}: tables[0].copy_mode: unknown value \"UPSERT\", expected INSERT_ONLY, INSERT_AND_UPDATE or FULL_DATA_SYNC\n\
             {path}: at[0]: \"25:00\" is not a Clockwork time: the hour is over 23 (write 'HH:MM', '**:MM', 'HH:**', optionally after a weekday: 'Monday 12:00')\n\
             {path}: tables[1].import_chunk_size: must be at least 1\n"
        )
    );
    assert_eq!(w.app.store.get_job("both").await.unwrap(), None);
}

#[tokio::test]
async fn cli_without_state_table_says_which_variable_to_set() {
    let w = World::new().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_redshift-loader"))
        .args(["jobs", "list"])
        .env_clear()
        .envs(
            w.env
                .iter()
                .filter(|(k, _)| k != "LOADER_STATE_TABLE")
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("LOADER_STATE_TABLE is not set"), "{stderr}");
}

#[test]
fn example_job_file_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/job.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let job = redshift_loader::config::Job::parse(&text, redshift_loader::config::Format::Yaml)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(job.tables.len(), 3);
}
