//! `status` and `runs` through the CLI, on a stack with a healthy, a lagging and a
//! failing table (its source table dropped after setup), in tables and in JSON.

use redshift_loader::config::TableRef;
use serde_json::Value;

use crate::support::{text, World};

fn json(out: &std::process::Output) -> Value {
    let (stdout, stderr) = text(out);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

fn table<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == name)
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

fn setup_ok(w: &World, job: &str) {
    let out = w.cli(&["setup", job]);
    assert!(out.status.success(), "{:?}", text(&out));
}

/// A stack where `shop` has a healthy table (orders), one behind by an hour of updates
/// (visits) and one with rows past its integer key (events); `broken` has a table whose
/// source was dropped after setup.
async fn stack() -> World {
    let w = World::with_own_source().await;
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL);
             INSERT INTO orders SELECT i, '2024-01-01 00:00:00+00'::timestamptz + i * interval '10 seconds'
               FROM generate_series(1, 3) i;
             CREATE TABLE visits (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL);
             INSERT INTO visits SELECT i, '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 second'
               FROM generate_series(1, 20) i;
             CREATE TABLE events (id bigint PRIMARY KEY, kind text);
             INSERT INTO events SELECT i, 'k' FROM generate_series(1, 50) i;
             CREATE TABLE gone (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL);
             INSERT INTO gone VALUES (1, '2024-01-01 00:00:00+00');",
        )
        .await
        .unwrap();
    w.apply(
        "shop",
        "  - { source: public.orders, copy_mode: INSERT_AND_UPDATE, primary_key: id, updated_key: updated_at }\n\
         \x20 - { source: public.visits, copy_mode: INSERT_AND_UPDATE, primary_key: id, updated_key: updated_at }\n\
         \x20 - { source: public.events, copy_mode: INSERT_ONLY, primary_key: id }\n\
         \x20 - { source: public.archive, disabled: true }\n",
    )
    .await;
    w.apply(
        "broken",
        "  - { source: public.gone, copy_mode: INSERT_AND_UPDATE, primary_key: id, updated_key: updated_at }\n",
    )
    .await;
    setup_ok(&w, "shop");
    setup_ok(&w, "broken");
    let out = w.cli(&["run", "shop"]);
    assert!(out.status.success(), "{:?}", text(&out));
    // Events gets a second run of its own, so its totals add up across runs.
    let source = w.source().await;
    source
        .batch_execute("INSERT INTO events SELECT i, 'k' FROM generate_series(51, 60) i")
        .await
        .unwrap();
    let out = w.cli(&["run", "shop", "--table", "public.events", "--force"]);
    assert!(out.status.success(), "{:?}", text(&out));
    // Now the source moves on: visits by an hour past its mark, events by 10 ids.
    source
        .batch_execute(
            "INSERT INTO visits VALUES (21, '2024-01-01 01:00:20+00');
             INSERT INTO events SELECT i, 'k' FROM generate_series(61, 70) i;
             DROP TABLE gone;",
        )
        .await
        .unwrap();
    let out = w.cli(&["run", "broken"]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    w
}

#[tokio::test]
async fn status_shows_healthy_lagging_and_failing_tables() {
    let w = stack().await;

    let out = w.cli(&["--json", "status", "shop"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let status = json(&out);
    assert_eq!(status["exit_code"], 0);
    assert_eq!(status["max_lag_seconds"], Value::Null);
    let names: Vec<&str> = status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "public.orders",
            "public.visits",
            "public.events",
            "public.archive"
        ]
    );

    let orders = table(&status, "public.orders");
    assert_eq!(orders["job"], "shop");
    assert_eq!(orders["mode"], "INSERT_AND_UPDATE");
    assert_eq!(orders["state"], "ok");
    assert_eq!(orders["disabled"], false);
    assert_eq!(orders["lag_key"], "updated_at");
    assert_eq!(orders["source_newest"], "2024-01-01 00:00:30+00");
    assert_eq!(orders["mark"], "2024-01-01 00:00:30+00, 3");
    assert_eq!(orders["behind"], false);
    assert_eq!(orders["lag_seconds"], 0);
    assert_eq!(orders["lag_unknown"], Value::Null);
    assert_eq!(orders["lag_basis"], "caught_up");
    assert_eq!(orders["rows_last_run"], 3);
    assert_eq!(orders["rows_total"], 3);
    assert_eq!(orders["last_run_ok"], true);
    assert_eq!(orders["error"], Value::Null);
    assert_eq!(orders["lease_owner"], Value::Null);
    assert!(orders["last_success_at"].is_string(), "{orders}");

    // An hour of updates past the mark: the lag is the updated key's distance.
    let visits = table(&status, "public.visits");
    assert_eq!(visits["source_newest"], "2024-01-01 01:00:20+00");
    assert_eq!(visits["mark"], "2024-01-01 00:00:20+00, 20");
    assert_eq!(visits["behind"], true);
    assert_eq!(visits["lag_seconds"], 3600);
    assert_eq!(visits["lag_basis"], "key");
    assert_eq!(visits["state"], "ok", "no --max-lag given");

    // INSERT_ONLY: the newest primary key against the mark; rows add up across runs.
    let events = table(&status, "public.events");
    assert_eq!(events["mode"], "INSERT_ONLY");
    assert_eq!(events["lag_key"], "id");
    assert_eq!(events["source_newest"], "70");
    assert_eq!(events["mark"], "60");
    assert_eq!(events["behind"], true);
    assert_eq!(events["lag_basis"], "since_success");
    assert_eq!(events["rows_last_run"], 10);
    assert_eq!(events["rows_total"], 60);

    let archive = table(&status, "public.archive");
    assert_eq!(archive["state"], "disabled");
    assert_eq!(archive["disabled"], true);

    // --max-lag: 30 minutes is exceeded by visits (exit 2), two hours is not.
    let out = w.cli(&["--json", "status", "shop", "--max-lag", "30m"]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    let status = json(&out);
    assert_eq!(status["max_lag_seconds"], 1800);
    assert_eq!(table(&status, "public.visits")["state"], "lagging");
    assert_eq!(table(&status, "public.orders")["state"], "ok");
    let out = w.cli(&["status", "shop", "--max-lag", "2h"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));

    // The failing table: exit 1, whatever --max-lag says; the error in one line.
    let out = w.cli(&["--json", "status", "broken", "--max-lag", "1d"]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let status = json(&out);
    let gone = table(&status, "public.gone");
    assert_eq!(gone["state"], "failing");
    assert_eq!(gone["last_run_ok"], false);
    assert_eq!(gone["rows_total"], 0);
    let error = gone["error"].as_str().unwrap();
    let at = format!(
        "source database 127.0.0.1:{}/{}",
        w.source_port(),
        w.names.source_db
    );
    assert_eq!(
        error,
        format!(
            "table public.gone: {at}: relation \"public.gone\" does not exist — check the table's `source` in the job; if it was dropped or renamed, fix the job and run setup again"
        )
    );
    // Its lag cannot be measured: the table is gone; the reason says so.
    assert_eq!(gone["lag_seconds"], Value::Null);
    assert!(
        gone["lag_unknown"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{at}: relation \"public.gone\" does not exist")),
        "{gone}"
    );

    // Every job, as a table for people.
    let out = w.cli(&["status"]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let (stdout, _) = text(&out);
    for expected in [
        "rows last/total",
        "0s (caught up)",
        "3 / 3",
        "1h (updated_at 2024-01-01 01:00:20+00 at the source, 2024-01-01 00:00:20+00, 20 loaded)",
        "behind: id 70 at the source, 60 loaded (at most ",
        "10 / 60",
        "disabled",
        "failing: table public.gone: source database 127.0.0.1:",
    ] {
        assert!(stdout.contains(expected), "{expected:?} not in\n{stdout}");
    }
}

#[tokio::test]
async fn status_shows_the_lease_and_what_dynamodb_knows_when_the_source_is_down() {
    let w = stack().await;
    let orders = TableRef::new("public", "orders");
    let now = chrono::Utc::now();
    let until = now + chrono::Duration::seconds(600);
    w.app
        .store
        .acquire_lease("shop", &orders, "cli-test-holder", now, until)
        .await
        .unwrap();
    let status = json(&w.cli(&["--json", "status", "shop"]));
    let row = table(&status, "public.orders");
    assert_eq!(row["state"], "running");
    assert_eq!(row["lease_owner"], "cli-test-holder");
    assert_eq!(
        row["lease_expires_at"].as_str().unwrap(),
        chrono::DateTime::from_timestamp(until.timestamp(), 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    );
    w.app
        .store
        .release_lease("shop", &orders, "cli-test-holder")
        .await
        .unwrap();

    // Point the job at a port nobody listens on: DynamoDB's part is still shown.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let stored = w.app.store.require_job("shop").await.unwrap();
    let mut job = stored.job.clone();
    let yaml = w
        .job_yaml("shop", "  - { source: public.orders }\n")
        .replace(
            &format!("127.0.0.1:{}/", w.source_port()),
            &format!("127.0.0.1:{closed}/"),
        );
    job.source = redshift_loader::config::Job::parse(&yaml, redshift_loader::config::Format::Yaml)
        .unwrap()
        .source;
    w.app
        .store
        .put_job(&job, Some(stored.version), chrono::Utc::now())
        .await
        .unwrap();
    let out = w.cli(&["--json", "status", "shop"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let status = json(&out);
    let reason = format!(
        "source database 127.0.0.1:{closed}/{}: connection refused — check the host and port, and that the server accepts connections from here (security group, VPC, NAT)",
        w.names.source_db
    );
    for name in ["public.orders", "public.visits", "public.events"] {
        let row = table(&status, name);
        assert_eq!(row["lag_unknown"], reason.as_str(), "{row}");
        assert_eq!(row["lag_seconds"], Value::Null);
        assert_eq!(row["behind"], Value::Null);
        assert!(row["last_success_at"].is_string(), "{row}");
        assert!(row["rows_total"].as_u64().unwrap() > 0, "{row}");
    }
    // --max-lag then compares the time since the last success (seconds here).
    let out = w.cli(&["status", "shop", "--max-lag", "1h"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("unknown: source database 127.0.0.1:"),
        "{stdout}"
    );
}

#[tokio::test]
async fn runs_lists_history_newest_first() {
    let w = stack().await;
    let out = w.cli(&["--json", "runs", "shop"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let runs = json(&out);
    assert_eq!(runs["job"], "shop");
    let list = runs["runs"].as_array().unwrap();
    // The first run did three tables, the second one.
    assert_eq!(list.len(), 4, "{runs}");
    assert_eq!(list[0]["table"], "public.events");
    assert_eq!(list[0]["rows"], 10);
    assert_eq!(list[0]["outcome"], "ok");
    assert_ne!(list[0]["run_id"], list[1]["run_id"]);
    // Newest first by when each table's run ended (tables of one run load at once).
    let finished: Vec<&str> = list
        .iter()
        .map(|r| r["finished_at"].as_str().unwrap())
        .collect();
    let mut sorted = finished.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(finished, sorted, "newest first");
    for r in list {
        assert!(r["seconds"].as_f64().unwrap() >= 0.0, "{r}");
        assert!(r["bytes"].as_u64().unwrap() > 0, "{r}");
        assert!(r["run_id"].as_str().unwrap().starts_with("cli-"), "{r}");
        assert_eq!(r["error"], Value::Null);
    }
    let first_run = &list[1]["run_id"];
    assert!(list[1..].iter().all(|r| &r["run_id"] == first_run));

    // One table, and a limit.
    let out = w.cli(&[
        "--json",
        "runs",
        "shop",
        "--table",
        "public.events",
        "--limit",
        "1",
    ]);
    let only = json(&out);
    let only = only["runs"].as_array().unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0], list[0]);
    let out = w.cli(&["--json", "runs", "shop", "--table", "public.orders"]);
    let orders = json(&out);
    let orders = orders["runs"].as_array().unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["rows"], 3);

    // A failed run, for people: outcome and the error's line.
    let out = w.cli(&["runs", "broken"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let (stdout, _) = text(&out);
    for expected in [
        "run id",
        "outcome",
        "public.gone",
        "failed",
        "relation \"public.gone\" does not exist",
    ] {
        assert!(stdout.contains(expected), "{expected:?} not in\n{stdout}");
    }
    // A table the job does not have is a usage error.
    let out = w.cli(&["runs", "shop", "--table", "public.nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out).1.trim(),
        "error: job shop has no table public.nope"
    );
}
