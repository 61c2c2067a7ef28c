//! Run coordination as a real account sees it: schedules delivered late, twice, or
//! overlapping a continuation chain; a lease taken over mid-chunk; two copies of one
//! continuation at once; a job that cannot finish in one invocation; tables in parallel.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use redshift_loader::config::{Job, TableRef};
use redshift_loader::lambda::Handler;
use redshift_loader::sync::{self, Options, Step, MARK};
use serde_json::{json, Value};

use crate::support::World;
use crate::sync::{assert_same, ok, rows, setup_job, TIMING};

fn handler(w: &World) -> Handler {
    Handler::from_lookup(w.app.clone(), |_| None).unwrap()
}

/// A handler whose deadline is always past: one table, one chunk per invocation.
fn hurried(w: &World) -> Handler {
    let mut h = handler(w);
    h.margin = Duration::from_secs(3600);
    h
}

const FIFTEEN: Duration = Duration::from_secs(900);

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn scheduled(job: &str, time: DateTime<Utc>) -> Value {
    json!({"action": "run", "job": job, "scheduled_time": time.to_rfc3339(),
           "execution_id": uuid::Uuid::new_v4().simple().to_string()})
}

async fn count(w: &World, table: &str) -> i64 {
    w.warehouse()
        .await
        .query_one(&format!("SELECT count(*) FROM analytics.{table}"), &[])
        .await
        .unwrap()
        .get(0)
}

async fn events_job(w: &World, name: &str, extra: &str) -> Job {
    w.source()
        .await
        .batch_execute(
            "CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL);
             INSERT INTO events (kind) SELECT 'e' || i FROM generate_series(1, 5) i;",
        )
        .await
        .unwrap();
    let yaml = w
        .job_yaml(name, "  - source: public.events\n")
        .replace("frequency: 300\n", &format!("frequency: 300\n{extra}"));
    let job = w.apply_yaml(&yaml).await;
    setup_job(w, &job).await;
    job
}

async fn insert_event(w: &World) {
    w.source()
        .await
        .batch_execute("INSERT INTO events (kind) VALUES ('more')")
        .await
        .unwrap();
}

#[tokio::test]
async fn frequency_equal_to_the_schedule_period_runs_on_every_fire() {
    let w = World::with_own_source().await;
    events_job(&w, "every", "").await;
    let h = handler(&w);
    let t0 = at("2026-11-25T07:00:00Z");
    for k in 0..4 {
        insert_event(&w).await;
        let fire = t0 + chrono::Duration::seconds(300 * k);
        let out = h.handle(scheduled("every", fire), FIFTEEN).await.unwrap();
        let report = &out["tables"][0]["report"];
        assert_eq!(report["skipped"], Value::Null, "fire {k}: {out}");
        assert!(report["rows"].as_u64().unwrap() >= 1, "fire {k}: {out}");
    }
    // A fire two minutes after the last is not due: a skip, and the last success stays.
    let before = w
        .app
        .store
        .get_table_document(
            "every",
            &TableRef::new("public", "events"),
            sync::LAST_SUCCESS,
        )
        .await
        .unwrap()
        .unwrap();
    let early = t0 + chrono::Duration::seconds(900 + 120);
    let out = h.handle(scheduled("every", early), FIFTEEN).await.unwrap();
    let skipped = out["tables"][0]["report"]["skipped"].as_str().unwrap();
    assert!(
        skipped.starts_with("not due until 2026-11-25 07:20:00Z"),
        "{skipped}"
    );
    let after = w
        .app
        .store
        .get_table_document(
            "every",
            &TableRef::new("public", "events"),
            sync::LAST_SUCCESS,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before, after, "a skip is not a success");
    assert_eq!(count(&w, "events").await, 9);
}

#[tokio::test]
async fn a_scheduled_time_inside_at_delivered_three_minutes_late_still_runs() {
    let w = World::with_own_source().await;
    events_job(&w, "late", "at: '12:59'\n").await;
    let h = handler(&w);
    // Scheduled for 12:59, delivered whenever this test runs (minutes or hours later).
    let out = h
        .handle(scheduled("late", at("2026-11-25T12:59:00Z")), FIFTEEN)
        .await
        .unwrap();
    assert_eq!(out["tables"][0]["report"]["rows"], 5, "{out}");
    // A fire scheduled for a minute `at` does not name is skipped, whenever it arrives.
    let out = h
        .handle(scheduled("late", at("2026-11-26T13:00:00Z")), FIFTEEN)
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
async fn the_same_scheduled_time_delivered_twice_runs_once() {
    let w = World::with_own_source().await;
    events_job(&w, "twice", "").await;
    let event = scheduled("twice", at("2026-11-25T07:00:00Z"));
    // Two deliveries at the same moment, by two containers.
    let (one, two) = (handler(&w), handler(&w));
    let (a, b) = tokio::join!(
        one.handle(event.clone(), FIFTEEN),
        two.handle(event.clone(), FIFTEEN)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let skipped: Vec<&Value> = [&a, &b]
        .into_iter()
        .filter(|o| o["skipped"].is_string())
        .collect();
    assert_eq!(skipped.len(), 1, "{a}\n{b}");
    assert!(
        skipped[0]["skipped"]
            .as_str()
            .unwrap()
            .ends_with("was delivered before"),
        "{}",
        skipped[0]
    );
    // A third, later: still recognised.
    insert_event(&w).await;
    let c = handler(&w).handle(event.clone(), FIFTEEN).await.unwrap();
    assert!(c["skipped"].is_string(), "{c}");
    assert_eq!(count(&w, "events").await, 5);
    // Lambda's own retry of an invocation keeps its request id: that one runs again.
    let h = handler(&w);
    let event = scheduled("twice", at("2026-11-25T07:05:00Z"));
    h.handle_request(event.clone(), FIFTEEN, "request-1")
        .await
        .unwrap();
    let retried = h.handle_request(event, FIFTEEN, "request-1").await.unwrap();
    assert!(!retried["skipped"].is_string(), "{retried}");
    assert_eq!(count(&w, "events").await, 6);
}

/// At one step of one chunk, another run takes the table's lease (as after this run's
/// lease expired): written straight into DynamoDB, as that run would.
struct TakeLeaseAt {
    step: Step,
    chunk: u64,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    job: String,
}

impl sync::Observer for TakeLeaseAt {
    fn step(&self, table: &TableRef, step: Step, chunk: u64, _: u64) -> Result<(), String> {
        if step == self.step && chunk == self.chunk {
            let put = self
                .dynamodb
                .put_item()
                .table_name(&self.table)
                .item("pk", AttributeValue::S(format!("JOB#{}", self.job)))
                .item("sk", AttributeValue::S(format!("LEASE#{table}")))
                .item("owner", AttributeValue::S("the-other-run".into()))
                .item(
                    "expires_at",
                    AttributeValue::N((Utc::now().timestamp() + 600).to_string()),
                );
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current()
                    .block_on(put.send())
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_is_taken_over_mid_chunk_cannot_commit_it() {
    let w = World::with_own_source().await;
    let job = events_job(&w, "taken", "").await;
    let events = TableRef::new("public", "events");
    for step in [Step::Extracted, Step::Staged] {
        let options = Options {
            run_id: format!("losing-{step:?}"),
            force: true,
            observer: Some(Arc::new(TakeLeaseAt {
                step,
                chunk: 1,
                dynamodb: w.app.clients.dynamodb.clone(),
                table: w.names.state_table.clone(),
                job: "taken".into(),
            })),
            ..Options::default()
        };
        let outcomes = sync::run(&w.app, &job, &options, TIMING).await.unwrap();
        let error = outcomes[0].result.as_ref().unwrap_err().to_string();
        assert!(
            error.contains("lost its lease to run the-other-run before committing"),
            "{step:?}: {error}"
        );
        // Nothing was committed, and the mark did not move.
        assert_eq!(count(&w, "events").await, 0, "{step:?}");
        let mark = w.app.store.get_table_document("taken", &events, MARK).await;
        assert_eq!(mark.unwrap(), None, "{step:?}");
        // The other run finishes (its lease goes); the next run loads everything.
        w.app
            .store
            .release_lease("taken", &events, "the-other-run")
            .await
            .unwrap();
    }
    let options = Options {
        run_id: "after".into(),
        force: true,
        ..Options::default()
    };
    let outcomes = sync::run(&w.app, &job, &options, TIMING).await.unwrap();
    assert_eq!(ok(&outcomes[0]).rows, 5);
    assert_same(
        &w,
        "SELECT id, kind FROM events ORDER BY id",
        "SELECT id, kind FROM analytics.events ORDER BY id",
    )
    .await;
}

async fn orders_job(w: &World, name: &str, rows_per_table: u32, tables: u32) -> Job {
    let mut ddl = String::new();
    let mut yaml = String::new();
    for t in 0..tables {
        ddl.push_str(&format!(
            "CREATE TABLE t{t} (id bigserial PRIMARY KEY, v int NOT NULL);
             INSERT INTO t{t} (v) SELECT i FROM generate_series(1, {rows_per_table}) i;"
        ));
        yaml.push_str(&format!(
            "  - source: public.t{t}\n    import_chunk_size: 4\n"
        ));
    }
    w.source().await.batch_execute(&ddl).await.unwrap();
    let job = w.apply(name, &yaml).await;
    setup_job(w, &job).await;
    job
}

/// Feeds recorded continuations back until there are none; how many there were.
async fn drain(w: &World, h: &Handler) -> usize {
    let mut hops = 0;
    loop {
        let recorded = w.stack.invoke.take(&w.function);
        if recorded.is_empty() {
            return hops;
        }
        for r in recorded {
            hops += 1;
            h.handle(r.payload, FIFTEEN).await.unwrap();
        }
    }
}

#[tokio::test]
async fn two_copies_of_one_continuation_at_once_leave_the_data_equal_and_write_no_key_twice() {
    let w = World::with_own_source().await;
    w.app
        .clients
        .s3
        .put_bucket_versioning()
        .bucket(&w.names.bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    orders_job(&w, "copies", 30, 1).await;
    let h = hurried(&w);
    h.handle(json!({"action": "run", "job": "copies"}), FIFTEEN)
        .await
        .unwrap();
    let recorded = w.stack.invoke.take(&w.function);
    assert_eq!(recorded.len(), 1);
    let continuation = recorded[0].payload.clone();
    // The same continuation twice at once; and a third that differs in its run id, so
    // the delivery claim does not stop it: the lease hand-over does (only one
    // invocation takes over the leases the previous one handed on).
    let mut forged = continuation.clone();
    forged["run_id"] = json!("another-run");
    let (one, two, three) = (hurried(&w), hurried(&w), hurried(&w));
    let (a, b, c) = tokio::join!(
        one.handle(continuation.clone(), FIFTEEN),
        two.handle(continuation.clone(), FIFTEEN),
        three.handle(forged, FIFTEEN)
    );
    let outs = [a.unwrap(), b.unwrap(), c.unwrap()];
    let ran: Vec<&Value> = outs
        .iter()
        .filter(|o| o["tables"][0]["report"]["rows"].as_u64().unwrap_or(0) > 0)
        .collect();
    assert_eq!(ran.len(), 1, "{outs:#?}");
    let skips = outs
        .iter()
        .filter(|o| o["skipped"].is_string() || o["tables"][0]["report"]["skipped"].is_string());
    assert_eq!(skips.count(), 2, "{outs:#?}");
    // Only the copy that ran continues.
    drain(&w, &h).await;
    assert_same(
        &w,
        "SELECT id, v FROM t0 ORDER BY id",
        "SELECT id, v FROM analytics.t0 ORDER BY id",
    )
    .await;
    let versions = w
        .app
        .clients
        .s3
        .list_object_versions()
        .bucket(&w.names.bucket)
        .send()
        .await
        .unwrap();
    let mut seen = std::collections::HashMap::new();
    for v in versions.versions() {
        *seen
            .entry(v.key().unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    assert!(!seen.is_empty());
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "written more than once: {twice:?}");
}

#[tokio::test]
async fn a_job_of_12_tables_past_its_deadline_finishes_in_continuations_and_none_starves() {
    let w = World::with_own_source().await;
    let tables = 12;
    let job = orders_job(&w, "wide", 3, tables).await;
    let h = hurried(&w);
    let first = h
        .handle(json!({"action": "run", "job": "wide"}), FIFTEEN)
        .await
        .unwrap();
    // The deadline is checked before each table: the first four (as many as run at
    // once) started, the rest wait for a continuation.
    let reports: Vec<&Value> = first["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["report"])
        .collect();
    assert_eq!(
        reports.iter().filter(|r| r["deferred"] == true).count(),
        8,
        "{first}"
    );
    let hops = drain(&w, &h).await;
    assert_eq!(hops, 2, "four tables per invocation");
    for t in 0..tables {
        assert_eq!(count(&w, &format!("t{t}")).await, 3, "t{t}");
    }
    // Scheduled runs whose continuations are lost (say, the chain's function was
    // throttled): each run starts with the tables run least recently, so in 3 fires of
    // 4 tables every table gets its turn.
    for t in 0..tables {
        w.source()
            .await
            .batch_execute(&format!("INSERT INTO t{t} (v) VALUES (100)"))
            .await
            .unwrap();
    }
    let t0 = Utc::now() + chrono::Duration::hours(1);
    for k in 0..3 {
        let fire = t0 + chrono::Duration::seconds(300 * k);
        h.handle(scheduled("wide", fire), FIFTEEN).await.unwrap();
        w.stack.invoke.take(&w.function);
    }
    for t in 0..tables {
        assert_eq!(count(&w, &format!("t{t}")).await, 4, "t{t} starved");
    }
    let _ = job;
}

#[tokio::test]
async fn a_schedule_overlapping_a_chain_records_skips_not_failures() {
    let w = World::with_own_source().await;
    orders_job(&w, "overlap", 30, 1).await;
    let h = hurried(&w);
    h.handle(json!({"action": "run", "job": "overlap"}), FIFTEEN)
        .await
        .unwrap();
    let continuation = w.stack.invoke.take(&w.function);
    assert_eq!(continuation.len(), 1);
    // The schedule fires while the chain holds the table (handed over, not released).
    let out = h
        .handle(
            scheduled("overlap", Utc::now() + chrono::Duration::hours(1)),
            FIFTEEN,
        )
        .await
        .expect("a skip is not an error");
    let skipped = out["tables"][0]["report"]["skipped"].as_str().unwrap();
    assert!(
        skipped.starts_with("being loaded by run lambda-"),
        "{skipped}"
    );
    let t0 = TableRef::new("public", "t0");
    let error = w
        .app
        .store
        .get_table_document("overlap", &t0, sync::LAST_ERROR)
        .await
        .unwrap();
    assert_eq!(error, None);
    // The chain goes on and finishes.
    h.handle(continuation[0].payload.clone(), FIFTEEN)
        .await
        .unwrap();
    drain(&w, &h).await;
    assert_eq!(count(&w, "t0").await, 30);
    let status = w.cli(&["status", "overlap"]);
    assert!(status.status.success(), "{status:?}");
}

/// Records when each table's run was busy: from its first step to its end.
#[derive(Default)]
struct Intervals(Mutex<Vec<(String, Instant, Option<Instant>)>>);

impl sync::Observer for Intervals {
    fn step(&self, table: &TableRef, _: Step, _: u64, _: u64) -> Result<(), String> {
        let mut all = self.0.lock().unwrap();
        if !all.iter().any(|(t, _, _)| t == &table.to_string()) {
            all.push((table.to_string(), Instant::now(), None));
        }
        Ok(())
    }

    fn finished(&self, table: &TableRef, _: bool) {
        let mut all = self.0.lock().unwrap();
        if let Some(entry) = all.iter_mut().find(|(t, _, _)| t == &table.to_string()) {
            entry.2 = Some(Instant::now());
        }
    }
}

async fn overlaps(w: &World, job: &Job, concurrency: usize) -> usize {
    let seen = Arc::new(Intervals::default());
    let options = Options {
        run_id: format!("parallel-{concurrency}"),
        force: true,
        from_scratch: true,
        observer: Some(seen.clone()),
        ..Options::default()
    };
    let timing = sync::Timing {
        table_concurrency: concurrency,
        ..TIMING
    };
    let outcomes = sync::run(&w.app, job, &options, timing).await.unwrap();
    for o in &outcomes {
        ok(o);
    }
    let all = seen.0.lock().unwrap();
    let mut pairs = 0;
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            let (a0, a1, b0, b1) = (a.1, a.2.unwrap(), b.1, b.2.unwrap());
            if a0 < b1 && b0 < a1 {
                pairs += 1;
            }
        }
    }
    pairs
}

#[tokio::test]
async fn tables_load_at_once_up_to_the_concurrency_each_on_its_own_connections() {
    let w = World::with_own_source().await;
    let job = orders_job(&w, "parallel", 40, 4).await;
    assert_eq!(overlaps(&w, &job, 1).await, 0, "one at a time");
    assert!(overlaps(&w, &job, 4).await > 0, "four at once overlap");
    for t in 0..4 {
        assert_same(
            &w,
            &format!("SELECT id, v FROM t{t} ORDER BY id"),
            &format!("SELECT id, v FROM analytics.t{t} ORDER BY id"),
        )
        .await;
    }
    let _ = rows;
}

#[tokio::test]
async fn a_job_with_many_tables_fans_out_and_each_part_runs_once() {
    let w = World::with_own_source().await;
    orders_job(&w, "many", 5, 7).await;
    let mut h = handler(&w);
    h.fan_out = redshift_loader::lambda::FanOut {
        tables_per_invocation: 2,
        limit: 3,
    };
    let first = h
        .handle(json!({"action": "run", "job": "many"}), FIFTEEN)
        .await
        .unwrap();
    let mine: Vec<String> = first["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(mine.len(), 3, "{first}");
    let parts = w.stack.invoke.take(&w.function);
    assert_eq!(
        parts.len(),
        2,
        "7 tables, 2 an invocation, at most 3 invocations"
    );
    let mut all = mine.clone();
    for p in &parts {
        assert_eq!(p.invocation_type, "Event");
        assert_eq!(p.payload["run_id"], first["run_id"]);
        for t in p.payload["tables"].as_array().unwrap() {
            all.push(t.as_str().unwrap().to_string());
        }
    }
    all.sort();
    let expected: Vec<String> = (0..7).map(|t| format!("public.t{t}")).collect();
    assert_eq!(all, expected, "every table in exactly one part");
    // The parts run at once, each on its own tables; a second delivery of one does
    // nothing.
    let (a, b) = tokio::join!(
        h.handle(parts[0].payload.clone(), FIFTEEN),
        h.handle(parts[1].payload.clone(), FIFTEEN)
    );
    for out in [a.unwrap(), b.unwrap()] {
        for t in out["tables"].as_array().unwrap() {
            assert_eq!(t["report"]["rows"], 5, "{out}");
        }
    }
    let again = h.handle(parts[0].payload.clone(), FIFTEEN).await.unwrap();
    assert!(again["skipped"].is_string(), "{again}");
    assert_eq!(drain(&w, &h).await, 0);
    for t in 0..7 {
        assert_eq!(count(&w, &format!("t{t}")).await, 5, "t{t}");
    }
}
