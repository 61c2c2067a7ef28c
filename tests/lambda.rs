//! The Lambda handler: every sample event, the frequency guard and `at`, and a run
//! that continues itself through recorded self-invocations until caught up.

use std::time::Duration;

use redshift_loader::config::Job;
use redshift_loader::lambda::{Handler, HOP_CAP};
use serde_json::{json, Value};

use crate::support::World;

const SHOP: &str = "CREATE TABLE orders (id serial PRIMARY KEY, total int, updated_at timestamptz NOT NULL);
    CREATE INDEX ON orders (updated_at);
    INSERT INTO orders (total, updated_at) SELECT i, now() - interval '1 hour' + i * interval '1 second'
      FROM generate_series(1, 50) i;";

fn handler(w: &World) -> Handler {
    Handler::from_lookup(w.app.clone(), |_| None).unwrap()
}

/// A handler whose deadline is always past: each invocation loads one chunk.
fn hurried(w: &World) -> Handler {
    let mut h = handler(w);
    h.margin = Duration::from_secs(3600);
    h
}

async fn shop(w: &World, tables: &str) -> Job {
    w.source().await.batch_execute(SHOP).await.unwrap();
    let job = w.apply("shop", tables).await;
    redshift_loader::setup::run(&w.app, &job, &Default::default(), chrono::Utc::now())
        .await
        .unwrap();
    job
}

fn event(name: &str) -> Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

async fn warehouse_count(w: &World) -> i64 {
    w.warehouse()
        .await
        .query_one("SELECT count(*) FROM analytics.orders", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn every_sample_event_goes_through_the_handler() {
    let w = World::with_own_source().await;
    shop(&w, "  - source: public.orders\n").await;
    let h = handler(&w);
    let minutes = Duration::from_secs(900);

    let out = h.handle(event("setup.json"), minutes).await.unwrap();
    assert_eq!(out["tables"][0]["ok"], true, "{out}");

    let out = h.handle(event("scheduled.json"), minutes).await.unwrap();
    assert_eq!(out["tables"][0]["report"]["rows"], 50, "{out}");

    let out = h.handle(event("backfill.json"), minutes).await.unwrap();
    assert_eq!(
        out["tables"][0]["report"]["rows"], 50,
        "from scratch: {out}"
    );

    let out = h.handle(event("continuation.json"), minutes).await.unwrap();
    assert_eq!(out["run_id"], "lambda-20261125T070000-0a1b2c3d");
    assert_eq!(out["hop"], 3);
    assert_eq!(out["tables"][0]["ok"], true, "{out}");
    assert_eq!(warehouse_count(&w).await, 50);
    assert!(
        w.stack.invoke.take(&w.function).is_empty(),
        "nothing was left to continue"
    );

    let out = h.handle(event("verify.json"), minutes).await.unwrap();
    assert_eq!(out["drift"], false, "{out}");
    assert_eq!(
        out["tables"][0]["verdict"]["only_source"]["count"], 0,
        "{out}"
    );
}

#[tokio::test]
async fn scheduled_runs_obey_the_frequency_and_at_and_manual_ones_can_force() {
    let w = World::with_own_source().await;
    shop(&w, "  - source: public.orders\n").await;
    let h = handler(&w);
    let minutes = Duration::from_secs(900);
    h.handle(json!({"action": "run", "job": "shop"}), minutes)
        .await
        .unwrap();
    let out = h
        .handle(json!({"action": "run", "job": "shop"}), minutes)
        .await
        .unwrap();
    let skipped = out["tables"][0]["report"]["skipped"]
        .as_str()
        .unwrap_or_default();
    assert!(skipped.contains("not due until"), "{out}");
    let out = h
        .handle(
            json!({"action": "run", "job": "shop", "force": true}),
            minutes,
        )
        .await
        .unwrap();
    assert!(out["tables"][0]["report"]["skipped"].is_null(), "{out}");

    // A job whose `at` is two hours from now is not run by its schedule.
    let hour = (chrono::Utc::now() + chrono::Duration::hours(2)).format("%H:%M");
    let mut job = w.app.store.require_job("shop").await.unwrap();
    job.job.at = Some(redshift_loader::config::At(vec![hour.to_string()]));
    w.app
        .store
        .put_job(&job.job, Some(job.version), chrono::Utc::now())
        .await
        .unwrap();
    let out = h
        .handle(json!({"action": "run", "job": "shop"}), minutes)
        .await
        .unwrap();
    assert!(
        out["skipped"]
            .as_str()
            .unwrap()
            .contains("is not a time the job's `at`"),
        "{out}"
    );
}

#[tokio::test]
async fn a_run_out_of_time_continues_itself_until_caught_up() {
    let w = World::with_own_source().await;
    shop(&w, "  - source: public.orders\n    import_chunk_size: 8\n").await;
    let h = hurried(&w);
    let first = h
        .handle(
            json!({"action": "run", "job": "shop"}),
            Duration::from_secs(900),
        )
        .await
        .unwrap();
    assert_eq!(
        first["tables"][0]["report"]["rows"], 8,
        "one chunk, then out of time"
    );
    let run_id = first["run_id"].as_str().unwrap().to_string();
    let mut hops = 0;
    loop {
        let recorded = w.stack.invoke.take(&w.function);
        if recorded.is_empty() {
            break;
        }
        assert_eq!(recorded.len(), 1);
        let payload = recorded[0].payload.clone();
        assert_eq!(recorded[0].invocation_type, "Event");
        assert_eq!(payload["run_id"], run_id.as_str());
        assert_eq!(payload["tables"], json!(["public.orders"]));
        hops += 1;
        assert_eq!(payload["hop"], hops);
        h.handle(payload, Duration::from_secs(900)).await.unwrap();
    }
    assert_eq!(hops, 6, "50 rows in chunks of 8: 7 invocations");
    assert_eq!(warehouse_count(&w).await, 50);
    let sum: i64 = w
        .warehouse()
        .await
        .query_one("SELECT sum(total)::bigint FROM analytics.orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sum, 50 * 51 / 2);
}

#[tokio::test]
async fn a_chain_past_the_hop_cap_is_refused_and_reported() {
    let w = World::with_own_source().await;
    shop(&w, "  - source: public.orders\n").await;
    let err = handler(&w)
        .handle(
            json!({"action": "run", "job": "shop", "tables": ["public.orders"], "run_id": "r", "hop": HOP_CAP + 1}),
            Duration::from_secs(900),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("reached the cap of {HOP_CAP} invocations")),
        "{err}"
    );
    assert_eq!(warehouse_count(&w).await, 0);
}

#[tokio::test]
async fn a_bad_event_names_the_problem() {
    let w = World::with_own_source().await;
    let err = handler(&w)
        .handle(json!({"action": "run"}), Duration::from_secs(900))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(err, "invalid event: missing field `job`");
    let err = handler(&w)
        .handle(
            json!({"action": "run", "job": "shop", "tables": "public.orders"}),
            Duration::from_secs(900),
        )
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "invalid event: tables: invalid type: string \"public.orders\", expected a list of \"schema.table\""
    );
}

/// The real binary under the Lambda Runtime API: it polls for events as it does in AWS,
/// loads the table, and reports errors through the runtime's error route.
#[tokio::test]
async fn the_binary_serves_events_from_the_lambda_runtime_api() {
    let w = World::with_own_source().await;
    shop(&w, "  - source: public.orders\n").await;
    let arn = format!(
        "arn:aws:lambda:us-east-1:123456789012:function:{}",
        w.function
    );
    let api = testkit::runtime::RuntimeApi::start(&arn).await.unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_redshift-loader"))
        .env_clear()
        .envs(w.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", &w.function)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/test")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    let out = api
        .invoke(event("backfill.json"), Duration::from_secs(900))
        .await
        .unwrap();
    let testkit::runtime::Outcome::Response(out) = out else {
        panic!("{out:?}")
    };
    assert_eq!(out["tables"][0]["report"]["rows"], 50, "{out}");
    assert_eq!(warehouse_count(&w).await, 50);

    // The same process serves the next event; a bad one comes back as an error.
    let out = api
        .invoke(
            json!({"action": "run", "job": "nope"}),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let testkit::runtime::Outcome::Error(doc) = out else {
        panic!("{out:?}")
    };
    assert!(
        doc["errorMessage"].as_str().unwrap_or("").contains("nope"),
        "{doc}"
    );
    assert!(api.init_error().is_none());
    assert!(api.first_poll().is_some(), "the runtime API saw no poll");
    child.kill().await.unwrap();

    // Logs are JSON lines with job, table and run id; each table run also printed its
    // CloudWatch embedded-metric-format line.
    let out = child.wait_with_output().await.unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let emf = lines
        .iter()
        .find(|l| l.get("_aws").is_some())
        .unwrap_or_else(|| panic!("no EMF line in {lines:?}"));
    assert_eq!(emf["Job"], "shop");
    assert_eq!(emf["Table"], "public.orders");
    assert_eq!(emf["RowsLoaded"], 50);
    assert_eq!(emf["Failures"], 0);
    assert_eq!(
        emf["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "RedshiftLoader"
    );
    let chunk = lines
        .iter()
        .find(|l| l["message"] == "chunk loaded")
        .unwrap_or_else(|| panic!("no chunk line in {lines:?}"));
    assert_eq!(chunk["span"]["job"], "shop", "{chunk}");
    assert_eq!(chunk["span"]["table"], "public.orders", "{chunk}");
    assert_eq!(chunk["span"]["run_id"], emf["RunId"], "{chunk}");
    let summary = lines
        .iter()
        .find(|l| l["message"] == "table run")
        .unwrap_or_else(|| panic!("no summary line in {lines:?}"));
    assert_eq!(summary["rows"], 50, "{summary}");
    assert_eq!(summary["table"], "public.orders");
    assert!(summary["run_id"].as_str().unwrap().starts_with("lambda-"));
    assert!(summary["rows_per_second"].as_f64().is_some(), "{summary}");
    // The init is logged once, step by step, before the first poll (make coldstart).
    let init: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "init finished")
        .collect();
    assert_eq!(init.len(), 1, "{lines:?}");
    assert!(init[0]["total_ms"].as_f64().is_some(), "{}", init[0]);
    let steps: Vec<&str> = init[0]["steps_ms"]
        .as_str()
        .unwrap()
        .split(' ')
        .map(|s| s.split('=').next().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["runtime", "settings", "aws_config", "clients", "handler"]
    );
}

#[tokio::test]
async fn a_verify_out_of_time_hands_the_tables_left_to_a_continuation() {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE refunds (id serial PRIMARY KEY, amount int);
             INSERT INTO refunds (amount) SELECT g FROM generate_series(1, 20) g;
             CREATE TABLE notes (id serial PRIMARY KEY, body text);
             INSERT INTO notes (body) SELECT 'n' || g FROM generate_series(1, 20) g;",
        )
        .await
        .unwrap();
    let job = shop(
        &w,
        "  - source: public.orders\n  - source: public.refunds\n    copy_mode: INSERT_ONLY\n  - source: public.notes\n    copy_mode: INSERT_ONLY\n",
    )
    .await;
    crate::sync::run(&w, &job).await;
    // Each invocation's deadline is past: one table each, the rest continued.
    let h = hurried(&w);
    let mut payload = json!({"action": "verify", "job": "shop"});
    let mut verified = Vec::new();
    for hop in 0..3 {
        let out = h
            .handle(payload.clone(), Duration::from_secs(900))
            .await
            .unwrap();
        assert_eq!(out["drift"], false, "{out}");
        assert_eq!(out["tables"].as_array().unwrap().len(), 1, "{out}");
        verified.push(out["tables"][0]["table"].as_str().unwrap().to_string());
        let recorded = w.stack.invoke.take(&w.function);
        if hop == 2 {
            assert!(recorded.is_empty(), "the last table continues nothing");
            assert_eq!(out["continued"], json!([]));
            break;
        }
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].invocation_type, "Event");
        payload = recorded[0].payload.clone();
        assert_eq!(payload["action"], "verify");
        assert_eq!(payload["tables"], out["continued"]);
    }
    assert_eq!(
        verified,
        ["public.orders", "public.refunds", "public.notes"],
        "each table once, in order"
    );
}

#[tokio::test]
async fn a_verify_at_the_end_of_its_invocation_stops_unfinished_not_equal() {
    let w = World::with_own_source().await;
    let job = shop(&w, "  - source: public.orders\n").await;
    crate::sync::run(&w, &job).await;
    // No time left: the table starts (the first always does), its comparison does not.
    let out = handler(&w)
        .handle(json!({"action": "verify", "job": "shop"}), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(out["unfinished"], json!(["public.orders"]), "{out}");
    assert_eq!(out["tables"][0]["verdict"]["unfinished"], true, "{out}");
    assert_eq!(out["tables"][0]["verdict"]["ranges"], 0, "{out}");
    // With time, it finishes and says nothing of it.
    let out = handler(&w)
        .handle(
            json!({"action": "verify", "job": "shop"}),
            Duration::from_secs(900),
        )
        .await
        .unwrap();
    assert_eq!(out["unfinished"], json!([]), "{out}");
    assert!(out["tables"][0]["verdict"]["unfinished"].is_null(), "{out}");
    assert_eq!(out["drift"], false, "{out}");
}
